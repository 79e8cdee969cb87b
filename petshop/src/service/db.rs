//! Connecting to the database and bringing its schema up to date.

use std::time::Duration;

use migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr};

/// The PostgreSQL advisory lock instances take turns under to migrate ("petshop" + 1).
const MIGRATION_LOCK: i64 = 0x7065_7473_686f_7001;
/// How long an instance waits for another one's migrations before it gives up.
const MIGRATION_LOCK_WAIT: &str = "120s";

/// Connects to `url` and applies pending migrations (idempotent).
///
/// `on_query` sees every statement the connection runs (the service counts them for
/// `/metrics`). In-memory SQLite keeps one connection for good: the database lives
/// only as long as a connection to it.
pub async fn connect(
    url: &str,
    on_query: impl Fn(&sea_orm::metric::Info<'_>) + Send + Sync + 'static,
) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(url);
    opts.sqlx_logging(false)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5));
    if url.starts_with("sqlite:") {
        if url.contains(":memory:") || url.contains("mode=memory") {
            opts.max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        } else {
            // On every connection of the pool (a PRAGMA run on one left the other seven
            // at FULL, syncing the log on every commit): WAL lets readers run beside the
            // writer; NORMAL syncs at checkpoints, which under WAL keeps the file
            // consistent through a crash, though a power loss may undo the last commits.
            use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
            opts.max_connections(8)
                .min_connections(1)
                .map_sqlx_sqlite_opts(|o| {
                    o.journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal)
                });
        }
    } else {
        opts.max_connections(16).min_connections(1);
    }
    let mut db = Database::connect(opts).await?;
    migrate(url, &db).await?;
    db.set_metric_callback(on_query);
    Ok(db)
}

/// Applies pending migrations. On PostgreSQL, under a session advisory lock held on a
/// connection of its own: instances started together on one fresh database take turns,
/// and each one after the first finds the work done (`docker compose up --scale`).
async fn migrate(url: &str, db: &DatabaseConnection) -> Result<(), DbErr> {
    if url.starts_with("sqlite:") {
        return Migrator::up(db, None).await;
    }
    let mut opts = ConnectOptions::new(url);
    opts.sqlx_logging(false)
        .max_connections(1)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5));
    let lock = Database::connect(opts).await?;
    lock.execute_unprepared(&format!("SET lock_timeout = '{MIGRATION_LOCK_WAIT}'"))
        .await?;
    lock.execute_unprepared(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .await?;
    let migrated = Migrator::up(db, None).await;
    let unlocked = lock
        .execute_unprepared(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
        .await;
    // Closing the session releases the lock in any case.
    let _ = lock.close().await;
    migrated?;
    unlocked.map(|_| ())
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Statement, TransactionTrait};

    /// Every connection of a file database's pool runs WAL with NORMAL sync, not only
    /// the first one (a PRAGMA run after connecting reached one connection of eight).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_pooled_sqlite_connection_is_wal_with_normal_sync() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("p.db").display());
        let db = super::connect(&url, |_| {}).await.unwrap();
        // Eight transactions open at once hold eight different connections.
        let mut open = Vec::new();
        for _ in 0..8 {
            open.push(db.begin().await.unwrap());
        }
        for tx in &open {
            let pragma = |name: &str| {
                Statement::from_string(tx.get_database_backend(), format!("PRAGMA {name}"))
            };
            let sync = tx
                .query_one_raw(pragma("synchronous"))
                .await
                .unwrap()
                .unwrap();
            let mode = tx
                .query_one_raw(pragma("journal_mode"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                sync.try_get_by_index::<i32>(0).unwrap(),
                1,
                "synchronous=NORMAL"
            );
            assert_eq!(mode.try_get_by_index::<String>(0).unwrap(), "wal");
        }
    }
}
