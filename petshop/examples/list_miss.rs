//! Where a list miss spends its time: the count of every match against the page itself,
//! for the filters `GET /pets` takes, on one seeded SQLite file: with the first schema
//! and the first query shape, then with the list indexes (migration 2) and the page
//! query the service runs now (`age + 0`, see `petshop::service::pets::page`); and the
//! total as the service sums it now, over `pet_count` (migration 3, kept by triggers).
//!
//! ```text
//! cargo run --release -p petshop --example list_miss -- [PETS] [RUNS]
//! ```
//!
//! PETS defaults to 100,000, RUNS (timed repetitions of each query; the median is shown)
//! to 21. The file is made in the temporary directory and removed afterwards.

use std::time::{Duration, Instant};

use migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

/// `(label, WHERE clause)` of each filter measured; `{age}` is the age column, or in the
/// service's page query since the list indexes, the expression `age + 0`.
const FILTERS: &[(&str, &str)] = &[
    ("species=cat", "species = 'cat'"),
    (
        "species=cat&min_age=3&max_age=7",
        "species = 'cat' AND {age} >= 3 AND {age} <= 7",
    ),
    ("min_age=3&max_age=7", "{age} >= 3 AND {age} <= 7"),
    ("(none)", "1 = 1"),
];

async fn median(db: &DatabaseConnection, sql: &str, runs: usize) -> anyhow::Result<Duration> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
            .await?;
        times.push(start.elapsed());
    }
    times.sort();
    Ok(times[runs / 2])
}

async fn measure(
    db: &DatabaseConnection,
    runs: usize,
    page_age: &str,
    deep: u64,
    sum: bool,
) -> anyhow::Result<Vec<[Duration; 4]>> {
    let mut out = Vec::with_capacity(FILTERS.len());
    for (_, filter) in FILTERS {
        let count = format!(
            "SELECT COUNT(*) FROM pet WHERE {}",
            filter.replace("{age}", "age")
        );
        let page = |offset: u64| {
            format!(
                "SELECT * FROM pet WHERE {} ORDER BY id LIMIT 10 OFFSET {offset}",
                filter.replace("{age}", page_age)
            )
        };
        let counted = if sum {
            format!(
                "SELECT COALESCE(SUM(n), 0) FROM pet_count WHERE {}",
                filter.replace("{age}", "age")
            )
        } else {
            count
        };
        out.push([
            median(db, &counted, runs).await?,
            median(db, &page(0), runs).await?,
            median(db, &page(1000), runs).await?,
            median(db, &page(deep), runs).await?,
        ]);
    }
    Ok(out)
}

fn change(before: Duration, after: Duration) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!("{:.2} → {:.2} ms", ms(before), ms(after))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let pets: u64 = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let runs: usize = args.next().map_or(Ok(21), |a| a.parse())?;
    let path = std::env::temp_dir().join(format!("list-miss-{}.sqlite", std::process::id()));
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let db = Database::connect(url.as_str()).await?;
    Migrator::up(&db, Some(1)).await?;
    petshop::service::seed::seed(&db, pets, petshop::service::seed::DEFAULT_SEED).await?;
    let before = measure(&db, runs, "age", pets / 20, false).await?;
    Migrator::up(&db, Some(1)).await?;
    let after = measure(&db, runs, "age + 0", pets / 20, false).await?;
    Migrator::up(&db, None).await?;
    let now = measure(&db, runs, "age + 0", pets / 20, true).await?;
    db.close().await?;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }

    println!("{pets} pets, SQLite, median of {runs} runs; before → after the list indexes\n");
    println!(
        "| filter | count of every match | total from `pet_count` | page (offset 0) | page (offset 1000) | page (offset {}) |",
        pets / 20
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let ms = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1000.0);
    for ((label, _), ((b, a), n)) in FILTERS.iter().zip(before.iter().zip(&after).zip(&now)) {
        println!(
            "| {label} | {} | {} | {} | {} | {} |",
            change(b[0], a[0]),
            ms(n[0]),
            change(b[1], a[1]),
            change(b[2], a[2]),
            change(b[3], a[3]),
        );
    }
    Ok(())
}
