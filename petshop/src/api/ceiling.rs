//! A benchmark's ceiling of an L2 hit, not part of the service (`petshop` mounts no such
//! route; a program that embeds the service adds it with
//! [`crate::startup::Application::with_routes`]): `GET {path}` answers a stored body,
//! the size of a page, with one Redis `GET` and nothing else (no cache logic, no
//! generation or tag check, no encoding). What an L2 hit would cost if it were just
//! the `GET` of its bytes, behind the same middleware as every route.

use std::sync::Arc;

use bytes::Bytes;
use cache::Ttl;
use poem::http::{HeaderValue, StatusCode, header::CONTENT_TYPE};
use poem::{Response, Route, endpoint::make};
use tokio::sync::OnceCell;

use crate::state::AppState;

/// The name the body is stored under, beside the cache's entries.
const NAME: &str = "bench-ceiling";
/// How long the stored body lives (it is stored again when it is gone).
const TTL: Ttl = Ttl::secs(3600);

/// Adds `GET {path}` to `route`: the first call stores `body` in Redis, every call
/// answers it (`application/json`) from one `GET`. Without Redis among the tiers it
/// answers 503.
pub fn redis_get_route(route: Route, state: &AppState, path: &str, body: Bytes) -> Route {
    let tier = state.cache.redis_tier();
    let stored: Arc<OnceCell<()>> = Arc::default();
    route.at(
        path,
        make(move |_req| {
            let (tier, stored, body) = (tier.clone(), stored.clone(), body.clone());
            async move {
                let Some(tier) = tier else {
                    return Response::builder()
                        .status(StatusCode::SERVICE_UNAVAILABLE)
                        .body("no Redis tier");
                };
                let first = stored
                    .get_or_try_init(|| tier.set_raw(NAME, body.clone(), TTL))
                    .await;
                let got = match first {
                    Ok(()) => tier.get_raw(NAME).await,
                    Err(e) => Err(e),
                };
                match got {
                    Ok(Some(bytes)) => Response::builder()
                        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                        .body(bytes),
                    // Flushed or expired: stored again, answered as it is.
                    Ok(None) => match tier.set_raw(NAME, body.clone(), TTL).await {
                        Ok(()) => Response::builder()
                            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                            .body(body),
                        Err(_) => unavailable(),
                    },
                    Err(_) => unavailable(),
                }
            }
        }),
    )
}

fn unavailable() -> Response {
    Response::builder()
        .status(StatusCode::SERVICE_UNAVAILABLE)
        .body("redis did not answer")
}
