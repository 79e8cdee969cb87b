//! The pet shop as the benchmarks run it: exactly the service, plus one route of their
//! own behind the same middleware, `GET /bench/bare`, the ceiling of an HTTP hit.
//!
//! The bare endpoint answers the bytes of the hot page ([`crate::workload::HOT_QUERY`]),
//! encoded once at its first call, with the headers of a hit: no query parsing, no
//! cache, no database, no encoding. It is what serving pre-encoded bytes from memory
//! costs on this server, the physical limit a cached hit is measured against (beside
//! `GET /health`, the service's own trivial request). It is not part of the service:
//! `petshop` has no such route.

use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;
use petshop::config::Config;
use petshop::model::PetFilter;
use petshop::startup::{Application, shutdown_signal};
use petshop::state::AppState;
use poem::http::{HeaderValue, StatusCode, header::CONTENT_TYPE};
use poem::{Response, Route, endpoint::make};
use tokio::sync::OnceCell;

/// The path of the ceiling.
pub const BARE_PATH: &str = "/bench/bare";

/// Runs the pet shop the way `petshop` would (same command line), adding the ceiling
/// when it serves.
///
/// # Errors
/// Those of `petshop`.
pub async fn run() -> Result<()> {
    let serve = match std::env::args().nth(1).as_deref() {
        None | Some("serve") => true,
        Some(_) => false,
    };
    if !serve {
        return petshop::cli::run().await;
    }
    let config = Config::from_env()?;
    petshop::telemetry::init(config.log_json);
    let app = Application::build(&config)
        .await?
        .with_routes(Box::new(bare_route));
    app.run_until(shutdown_signal()).await?;
    Ok(())
}

/// The hot page's filter: `species=cat&limit=10`.
fn hot_filter() -> PetFilter {
    PetFilter {
        species: Some("cat".into()),
        min_age: None,
        max_age: None,
        limit: 10,
        offset: 0,
    }
}

/// Adds `GET /bench/bare` to `route`.
pub fn bare_route(route: Route, state: &AppState) -> Route {
    let state = state.clone();
    let body: Arc<OnceCell<Bytes>> = Arc::default();
    let strategy = HeaderValue::from_static(state.cache.strategy_name());
    route.at(
        BARE_PATH,
        make(move |_req| {
            let (state, body, strategy) = (state.clone(), body.clone(), strategy.clone());
            async move {
                let body = body
                    .get_or_try_init(|| async {
                        let filter = hot_filter();
                        let list = state.pets.list(&filter).await?;
                        let page = serde_json::json!({
                            "cached": true,
                            "limit": filter.limit,
                            "offset": filter.offset,
                            "pets": list.pets,
                            "total": list.total,
                        });
                        anyhow::Ok(Bytes::from(serde_json::to_vec(&page)?))
                    })
                    .await
                    .map_err(|e| {
                        poem::Error::from_string(e.to_string(), StatusCode::INTERNAL_SERVER_ERROR)
                    })?
                    .clone();
                Ok::<_, poem::Error>(
                    Response::builder()
                        .status(StatusCode::OK)
                        .header(
                            CONTENT_TYPE,
                            HeaderValue::from_static("application/json; charset=utf-8"),
                        )
                        .header("x-cache", HeaderValue::from_static("HIT-L1"))
                        .header("x-cache-strategy", strategy)
                        .body(body),
                )
            }
        }),
    )
}
