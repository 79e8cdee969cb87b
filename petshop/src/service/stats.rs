//! `GET /stats`: SQL aggregates, one `GROUP BY` query.

use sea_orm::sea_query::Expr;
use sea_orm::{DatabaseConnection, DbErr, EntityTrait, QueryOrder, QuerySelect};

use crate::entity::pet;
use crate::model::{SpeciesStats, StatsData};

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Counts and mean happiness, overall and per species.
///
/// One query groups by species; the overall figures are the count-weighted sums of the
/// groups, so they need no second trip.
#[tracing::instrument(name = "db.load", skip_all, fields(db.query = "stats"))]
pub async fn compute(db: &DatabaseConnection) -> Result<StatsData, DbErr> {
    // AVG of an integer is NUMERIC on PostgreSQL: cast so both databases return a float.
    let rows: Vec<(String, i64, Option<f64>)> = pet::Entity::find()
        .select_only()
        .column(pet::Column::Species)
        .column_as(Expr::cust("COUNT(*)"), "count")
        .column_as(
            Expr::cust("CAST(AVG(happiness) AS DOUBLE PRECISION)"),
            "avg_happiness",
        )
        .group_by(pet::Column::Species)
        .order_by_asc(pet::Column::Species)
        .into_tuple()
        .all(db)
        .await?;
    let total: i64 = rows.iter().map(|(_, n, _)| n).sum();
    let weighted: f64 = rows
        .iter()
        .map(|(_, n, avg)| *n as f64 * avg.unwrap_or(0.0))
        .sum();
    Ok(StatsData {
        total_pets: total.unsigned_abs(),
        avg_happiness: if total == 0 {
            0.0
        } else {
            round2(weighted / total as f64)
        },
        by_species: rows
            .into_iter()
            .map(|(species, count, avg)| SpeciesStats {
                species,
                count: count.unsigned_abs(),
                avg_happiness: round2(avg.unwrap_or(0.0)),
            })
            .collect(),
    })
}
