//! HTTP handlers, one module per resource, assembled into one OpenAPI service.

pub mod admin;
pub mod error;
pub mod middleware;
pub mod ops;
pub mod pets;
pub mod response_cache;
pub mod stats;
pub mod ui;

use poem_openapi::{OpenApiService, Tags};

/// Groups of operations in the spec.
#[derive(Tags)]
pub enum Tag {
    /// Pets: list, read, create, update, delete.
    Pets,
    /// Aggregates over all pets.
    Stats,
    /// Liveness, readiness, metrics.
    Ops,
    /// Cache counters and administration.
    Cache,
}

/// The header naming where a cached read came from.
pub const X_CACHE: &str = "X-Cache";

/// Every API of the service, as one OpenAPI service.
#[must_use]
pub fn service()
-> OpenApiService<(pets::PetsApi, stats::StatsApi, ops::OpsApi, admin::CacheApi), ()> {
    OpenApiService::new(
        (pets::PetsApi, stats::StatsApi, ops::OpsApi, admin::CacheApi),
        "Pet shop",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "A pet shop whose reads go through a tiered cache (moka L1, Redis L2). Cached reads \
         say where they came from in `X-Cache` (HIT-L1, HIT-L2, MISS, BYPASS, STALE) and the write \
         strategy in `X-Cache-Strategy`. Errors are JSON: `{\"error\": …, \"field\": …}`.",
    )
}

/// The spec as JSON, exactly as `/openapi.json` serves it.
#[must_use]
pub fn spec_json() -> String {
    service().spec()
}
