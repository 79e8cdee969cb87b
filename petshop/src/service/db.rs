//! Connecting to the database and bringing its schema up to date.

use std::time::Duration;

use migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

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
            opts.max_connections(8).min_connections(1);
        }
    } else {
        opts.max_connections(16).min_connections(1);
    }
    let mut db = Database::connect(opts).await?;
    if url.starts_with("sqlite:") {
        // WAL lets readers run beside the writer; NORMAL sync is safe under WAL.
        use sea_orm::ConnectionTrait;
        db.execute_unprepared("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
            .await?;
    }
    Migrator::up(&db, None).await?;
    db.set_metric_callback(on_query);
    Ok(db)
}
