//! Database migrations for the pet shop.
//!
//! [`Migrator`] lists every migration in order. The service runs [`Migrator::up`] at
//! start-up (idempotent: applied migrations are recorded in `seaql_migrations` and
//! skipped); the `migrations` binary runs `up`, `down` and `status` by hand.

pub use sea_orm_migration::prelude::*;

mod m20250101_000001_create_pet;
mod m20251126_000002_list_indexes;

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
        ]
    }
}

#[cfg(test)]
mod tests {
    use sea_orm_migration::sea_orm::Database;

    use super::*;

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

        Migrator::down(&db, None).await.unwrap();
        assert!(!schema.has_table("pet").await.unwrap());
        Migrator::up(&db, None).await.unwrap();
        assert!(schema.has_table("pet").await.unwrap());
    }
}
