//! Database migrations for the pet shop.
//!
//! [`Migrator`] lists every migration in order. The service runs [`Migrator::up`] at
//! start-up (idempotent: applied migrations are recorded in `seaql_migrations` and
//! skipped); the `migrations` binary runs `up`, `down` and `status` by hand.

pub use sea_orm_migration::prelude::*;

mod m20250101_000001_create_pet;
mod m20251126_000002_list_indexes;
mod m20261126_000003_pet_counts;

/// The default database: the same SQLite file the service uses.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://petshop.sqlite?mode=rwc";

/// Every migration of the pet shop, oldest first.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20250101_000001_create_pet::Migration),
            Box::new(m20251126_000002_list_indexes::Migration),
            Box::new(m20261126_000003_pet_counts::Migration),
        ]
    }
}

#[cfg(test)]
mod tests {
    use sea_orm_migration::sea_orm::Database;

    use super::*;

    /// `pet_count` against a `GROUP BY` of `pet`.
    async fn counts_agree(db: &sea_orm_migration::sea_orm::DatabaseConnection) {
        use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};
        let rows = |sql: &str| {
            let stmt = Statement::from_string(db.get_database_backend(), sql.to_owned());
            async move {
                let mut out: Vec<(String, i32, i64)> = db
                    .query_all_raw(stmt)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| {
                        (
                            r.try_get_by_index(0).unwrap(),
                            r.try_get_by_index(1).unwrap(),
                            r.try_get_by_index(2).unwrap(),
                        )
                    })
                    .collect();
                out.sort();
                out
            }
        };
        let kept = rows("SELECT species, age, n FROM pet_count WHERE n <> 0").await;
        let counted = rows("SELECT species, age, COUNT(*) FROM pet GROUP BY species, age").await;
        assert_eq!(kept, counted);
    }

    #[tokio::test]
    async fn pet_count_follows_every_write_and_starts_from_the_pets_there() {
        use sea_orm_migration::sea_orm::ConnectionTrait;
        let db = Database::connect("sqlite::memory:").await.unwrap();
        Migrator::up(&db, Some(2)).await.unwrap();
        let insert = |species: &str, age: i32| {
            format!(
                "INSERT INTO pet (name, species, age, happiness, created_at, updated_at) \
                 VALUES ('p', '{species}', {age}, 50, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')"
            )
        };
        for (s, a) in [("cat", 3), ("cat", 3), ("dog", 5)] {
            db.execute_unprepared(&insert(s, a)).await.unwrap();
        }
        Migrator::up(&db, None).await.unwrap();
        counts_agree(&db).await;
        for sql in [
            insert("cat", 4),
            insert("parrot", 1),
            "UPDATE pet SET species = 'dog' WHERE id = 1".into(),
            "UPDATE pet SET age = 9 WHERE id = 2".into(),
            "UPDATE pet SET happiness = 1, name = 'q' WHERE id = 3".into(),
            "UPDATE pet SET species = 'cat', age = 7 WHERE id = 3".into(),
            "DELETE FROM pet WHERE id = 4".into(),
            "DELETE FROM pet WHERE species = 'parrot'".into(),
        ] {
            db.execute_unprepared(&sql).await.unwrap();
            counts_agree(&db).await;
        }
    }

    #[tokio::test]
    async fn migrations_go_up_idempotently_down_and_up_again() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        let schema = SchemaManager::new(&db);

        Migrator::up(&db, None).await.unwrap();
        Migrator::up(&db, None).await.unwrap();
        assert!(schema.has_table("pet").await.unwrap());
        for index in [
            "idx_pet_species_id_age",
            "idx_pet_species_age",
            "idx_pet_age",
        ] {
            assert!(schema.has_index("pet", index).await.unwrap(), "{index}");
        }
        assert!(!schema.has_index("pet", "idx_pet_species_id").await.unwrap());
        assert!(schema.has_table("pet_count").await.unwrap());

        Migrator::down(&db, None).await.unwrap();
        assert!(!schema.has_table("pet").await.unwrap());
        assert!(!schema.has_table("pet_count").await.unwrap());
        Migrator::up(&db, None).await.unwrap();
        assert!(schema.has_table("pet").await.unwrap());
    }
}
