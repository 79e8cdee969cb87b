//! HTTP handlers, one module per resource, assembled into one OpenAPI service.

pub mod admin;
pub mod allow;
pub mod cached;
pub mod ceiling;
pub mod client_addr;
pub mod error;
pub mod middleware;
pub mod ops;
pub mod pets;
pub mod rate_limit;
pub mod stats;
pub mod ui;

use std::sync::OnceLock;

use poem::{Endpoint, Response};
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

/// The schemas whose objects refuse unknown fields (`#[oai(deny_unknown_fields)]`),
/// which poem-openapi does not write into the spec.
const CLOSED_SCHEMAS: &[&str] = &["NewPet", "PetPatch"];

/// The spec as JSON, exactly as `/openapi.json` serves it: poem-openapi's, with
/// `additionalProperties: false` on [`CLOSED_SCHEMAS`].
#[must_use]
pub fn spec_json() -> String {
    static SPEC: OnceLock<String> = OnceLock::new();
    SPEC.get_or_init(|| {
        let generated = service().spec();
        let Ok(mut spec) = serde_json::from_str::<serde_json::Value>(&generated) else {
            return generated;
        };
        for name in CLOSED_SCHEMAS {
            if let Some(schema) = spec["components"]["schemas"][*name].as_object_mut() {
                schema.insert("additionalProperties".into(), false.into());
            }
        }
        serde_json::to_string_pretty(&spec).unwrap_or(generated)
    })
    .clone()
}

/// `GET /openapi.json`: [`spec_json`].
pub fn spec_endpoint() -> impl Endpoint<Output = Response> {
    let body = spec_json();
    poem::endpoint::make_sync(move |_| {
        Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(body.clone())
    })
}
