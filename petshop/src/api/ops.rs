//! `/health`, `/ready`, `/metrics`.

use poem::web::Data;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::api::Tag;
use crate::api::rate_limit::Mode;
use crate::state::AppState;

/// The operational endpoints.
#[derive(Debug, Clone, Copy)]
pub struct OpsApi;

/// Liveness.
#[derive(Object, Debug)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// The state of one dependency.
#[derive(Object, Debug, Clone)]
pub struct Component {
    /// `up`, `down`, `degraded` or `disabled`.
    pub status: String,
    /// Why it is not `up`.
    #[oai(skip_serializing_if_is_none)]
    pub detail: Option<String>,
}

/// Readiness, per dependency.
#[derive(Object, Debug)]
pub struct Readiness {
    /// `ready`, `degraded` (Redis down: served from the database), `draining` (shutting
    /// down: still serving, but send no more) or `unavailable` (the database is down).
    pub status: String,
    /// The database.
    pub database: Component,
    /// The Redis tier.
    pub redis: Component,
    /// Where the rate limiter counts requests: `off` (`RATE_LIMIT` unset), `shared` (on
    /// Redis: one limit across instances) or `local` (in this process: no Redis tier,
    /// or Redis cannot be reached now, so the limit holds per instance).
    pub rate_limit: Mode,
}

/// Readiness.
#[derive(ApiResponse, Debug)]
pub enum ReadyResponse {
    /// Ready, or degraded but serving.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// The database is unreachable, or the instance is shutting down.
    #[oai(status = 503)]
    Unavailable(Json<Readiness>),
}

/// Prometheus metrics.
#[derive(ApiResponse, Debug)]
pub enum MetricsResponse {
    /// Prometheus text exposition format 0.0.4.
    #[oai(
        status = 200,
        content_type = "text/plain; version=0.0.4; charset=utf-8"
    )]
    Ok(PlainText<String>),
}

#[OpenApi(tag = "Tag::Ops")]
impl OpsApi {
    /// Liveness: the process answers. Never rate limited.
    #[oai(path = "/health", method = "get", operation_id = "health")]
    async fn health(&self) -> Json<Health> {
        Json(Health {
            status: "ok".into(),
        })
    }

    /// Readiness: the database must answer; a Redis that does not makes it `degraded`;
    /// from the moment shutdown begins it is `draining` (503), so a load balancer stops
    /// sending before the instance stops. `rate_limit` says where requests are counted.
    /// Never rate limited.
    #[oai(path = "/ready", method = "get", operation_id = "ready")]
    async fn ready(&self, state: Data<&AppState>) -> ReadyResponse {
        let database = match state.db.ping().await {
            Ok(()) => Component {
                status: "up".into(),
                detail: None,
            },
            Err(e) => {
                tracing::warn!(error = %e, "readiness: database ping failed");
                Component {
                    status: "down".into(),
                    detail: Some("database ping failed".into()),
                }
            }
        };
        let health = state.cache.redis_health().await;
        let redis_reachable = health.as_ref().is_some_and(|h| h.up && !h.breaker_open);
        let redis = match health {
            None => Component {
                status: "disabled".into(),
                detail: None,
            },
            Some(h) if h.is_healthy() => Component {
                status: "up".into(),
                detail: None,
            },
            Some(h) => Component {
                status: "degraded".into(),
                detail: Some(if !h.up {
                    "redis unreachable: serving from L1 and the database".into()
                } else if h.breaker_open {
                    "circuit breaker open: serving from L1 and the database".into()
                } else {
                    "backplane not subscribed: L1 bypassed, serving from Redis".into()
                }),
            },
        };
        let rate_limit = match &state.rate_limit {
            None => Mode::Off,
            Some(limiter) => limiter.mode(redis_reachable),
        };
        let db_up = database.status == "up";
        let draining = state.draining.is_draining();
        let status = if draining {
            "draining"
        } else if !db_up {
            "unavailable"
        } else if redis.status == "degraded" {
            "degraded"
        } else {
            "ready"
        };
        let body = Json(Readiness {
            status: status.into(),
            database,
            redis,
            rate_limit,
        });
        if db_up && !draining {
            ReadyResponse::Ready(body)
        } else {
            ReadyResponse::Unavailable(body)
        }
    }

    /// Prometheus metrics: HTTP, database queries, cache tiers, rate limiting. Never
    /// rate limited.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self, state: Data<&AppState>) -> MetricsResponse {
        MetricsResponse::Ok(PlainText(state.metrics.render()))
    }
}
