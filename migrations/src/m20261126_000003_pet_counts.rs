//! `pet_count`: how many pets there are of each species and age, kept by triggers.
//!
//! A list's total is a sum over this table's rows of its species and ages (at most a
//! few hundred rows in all), where `COUNT(*)` read every matching index entry (20,000 of
//! them for the cats among 100,000 pets). The triggers update it in the transaction of
//! the write that changes `pet`, so a total read after a write is acknowledged counts it.
//! The migration fills it from the pets already there.
//!
//! SQLite and PostgreSQL get their own trigger syntax; `TRUNCATE pet` (PostgreSQL
//! only: it fires no row triggers) empties the counts too.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

/// See the module docs.
#[derive(DeriveMigrationName)]
pub struct Migration;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS pet_count (
    species VARCHAR(32) NOT NULL,
    age INTEGER NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (species, age)
)";

const FILL: &str = "INSERT INTO pet_count (species, age, n)
    SELECT species, age, COUNT(*) FROM pet GROUP BY species, age";

fn add(species: &str, age: &str, delta: i32) -> String {
    format!(
        "INSERT INTO pet_count (species, age, n) VALUES ({species}, {age}, {delta}) \
         ON CONFLICT (species, age) DO UPDATE SET n = pet_count.n + ({delta})"
    )
}

fn sqlite() -> Vec<String> {
    vec![
        format!(
            "CREATE TRIGGER IF NOT EXISTS pet_count_insert AFTER INSERT ON pet BEGIN {}; END",
            add("NEW.species", "NEW.age", 1)
        ),
        format!(
            "CREATE TRIGGER IF NOT EXISTS pet_count_delete AFTER DELETE ON pet BEGIN {}; END",
            add("OLD.species", "OLD.age", -1)
        ),
        format!(
            "CREATE TRIGGER IF NOT EXISTS pet_count_update AFTER UPDATE OF species, age ON pet \
             WHEN OLD.species IS NOT NEW.species OR OLD.age IS NOT NEW.age BEGIN {}; {}; END",
            add("OLD.species", "OLD.age", -1),
            add("NEW.species", "NEW.age", 1)
        ),
    ]
}

fn postgres() -> Vec<String> {
    vec![
        format!(
            "CREATE OR REPLACE FUNCTION pet_count_row() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF TG_OP IN ('DELETE', 'UPDATE') THEN {}; END IF;
               IF TG_OP IN ('INSERT', 'UPDATE') THEN {}; END IF;
               RETURN NULL;
             END $$",
            add("OLD.species", "OLD.age", -1),
            add("NEW.species", "NEW.age", 1)
        ),
        "CREATE OR REPLACE FUNCTION pet_count_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN TRUNCATE pet_count; RETURN NULL; END $$"
            .into(),
        "DROP TRIGGER IF EXISTS pet_count_change ON pet".into(),
        "CREATE TRIGGER pet_count_change AFTER INSERT OR DELETE OR UPDATE OF species, age ON pet \
         FOR EACH ROW EXECUTE FUNCTION pet_count_row()"
            .into(),
        "DROP TRIGGER IF EXISTS pet_count_truncate ON pet".into(),
        "CREATE TRIGGER pet_count_truncate AFTER TRUNCATE ON pet \
         FOR EACH STATEMENT EXECUTE FUNCTION pet_count_truncate()"
            .into(),
    ]
}

// Same spelling as the trait (see the first migration).
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(CREATE_TABLE).await?;
        db.execute_unprepared("DELETE FROM pet_count").await?;
        db.execute_unprepared(FILL).await?;
        let triggers = match manager.get_database_backend() {
            DatabaseBackend::Postgres => postgres(),
            DatabaseBackend::Sqlite => sqlite(),
            other => {
                return Err(DbErr::Migration(format!(
                    "pet_count: no triggers for {other:?}"
                )));
            }
        };
        for sql in triggers {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let drops: &[&str] = match manager.get_database_backend() {
            DatabaseBackend::Postgres => &[
                "DROP TRIGGER IF EXISTS pet_count_change ON pet",
                "DROP TRIGGER IF EXISTS pet_count_truncate ON pet",
                "DROP FUNCTION IF EXISTS pet_count_row()",
                "DROP FUNCTION IF EXISTS pet_count_truncate()",
            ],
            _ => &[
                "DROP TRIGGER IF EXISTS pet_count_insert",
                "DROP TRIGGER IF EXISTS pet_count_delete",
                "DROP TRIGGER IF EXISTS pet_count_update",
            ],
        };
        for sql in drops {
            db.execute_unprepared(sql).await?;
        }
        db.execute_unprepared("DROP TABLE IF EXISTS pet_count")
            .await
            .map(|_| ())
    }
}
