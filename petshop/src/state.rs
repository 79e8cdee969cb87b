//! What every handler shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sea_orm::DatabaseConnection;

use crate::api::rate_limit::Limiter;
use crate::cache_layer::CacheLayer;
use crate::config::TrustedProxies;
use crate::metrics::Metrics;
use crate::service::pets::PetService;

/// The database, the cache, the metrics, the admin token and the HTTP layer's settings.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The connection pool.
    pub db: DatabaseConnection,
    /// The only way to the cache.
    pub cache: CacheLayer,
    /// Pets, read through the cache and written with its write protocol.
    pub pets: PetService,
    /// Set when shutdown begins: `/ready` answers 503 from then on.
    pub draining: Draining,
    /// This instance's metrics.
    pub metrics: Metrics,
    /// `ADMIN_TOKEN`; `None` disables the admin endpoints.
    pub admin_token: Option<Arc<str>>,
    /// `RATE_LIMIT`; `None`: off.
    pub rate_limit: Option<Limiter>,
    /// `TRUSTED_PROXIES`: whose forwarding headers name the client of a request.
    pub trusted_proxies: TrustedProxies,
}

/// Whether the instance is shutting down. Clones share the flag.
#[derive(Clone, Debug, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    /// Marks the instance as shutting down.
    pub fn start(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once shutdown has begun.
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
