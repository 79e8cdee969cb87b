//! What every handler shares.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::cache_layer::CacheLayer;
use crate::metrics::Metrics;
use crate::model::PetList;
use crate::service::pets::PetService;

/// The database, the cache, the metrics and the admin token. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The connection pool.
    pub db: DatabaseConnection,
    /// The only way to the cache.
    pub cache: CacheLayer,
    /// Pets, read through the cache and written with its write protocol.
    pub pets: PetService,
    /// This instance's metrics.
    pub metrics: Metrics,
    /// `ADMIN_TOKEN`; `None` disables the admin endpoints.
    pub admin_token: Option<Arc<str>>,
    /// `BENCH_BARE=on`: the one page `GET /bench/bare` serves, loaded by its first call.
    pub bench_bare: Option<Arc<tokio::sync::OnceCell<PetList>>>,
}
