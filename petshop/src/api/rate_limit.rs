//! Rate limiting (`RATE_LIMIT`, off by default): each client may send so many requests
//! per fixed window; the next ones are answered 429.
//!
//! * **The client** is the value of `RATE_LIMIT_KEY_HEADER` (`x-api-key`) when a request
//!   sends it, else the peer IP address of the connection. `X-Forwarded-For` is not
//!   read: behind a proxy every client would share the proxy's address, so send a key.
//!   The key is hashed before it names a counter (see [`cache::limit`]).
//! * **Counted on Redis** when Redis is a cache tier (one atomic script, under the
//!   service's key prefix, bounded by `REDIS_OP_TIMEOUT`), so the limit holds across
//!   instances; in process while Redis cannot be reached (the limit then holds per
//!   instance, and `/ready` says `local`) or when there is none.
//! * **Exempt**: `/health`, `/ready` and `/metrics` ([`EXEMPT`]): probes and scrapes are
//!   never limited, and do not use up a client's window.
//! * **Headers**: every counted answer carries `RateLimit-Limit`, `RateLimit-Remaining`
//!   and `RateLimit-Reset` (seconds, rounded up); a 429 adds `Retry-After` (seconds,
//!   at least 1) and the API's JSON error. Decisions are counted in `/metrics`
//!   (`petshop_rate_limit_requests_total`).

use std::sync::Arc;
use std::time::Duration;

use cache::limit::{Counter, Decision, RateLimiter};
use cache::tier::RedisTier;
use poem::http::{HeaderName, HeaderValue};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::payload::Json;

use crate::api::error::{ApiError, ErrorBody};
use crate::api::middleware::{RouteTemplate, respond};
use crate::config::RateLimit;
use crate::metrics::Metrics;

/// Paths the limiter never counts.
pub const EXEMPT: &[&str] = &["/health", "/ready", "/metrics"];

/// The rate limit of a service: the limiter and how it names clients. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Limiter {
    limiter: Arc<RateLimiter>,
    key_header: Option<HeaderName>,
    shared: bool,
}

/// Where requests are counted now, as `/ready` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum Mode {
    /// `RATE_LIMIT=off`.
    Off,
    /// On Redis: one limit across instances.
    Shared,
    /// In process: no Redis tier, or Redis cannot be reached now.
    Local,
}

impl Limiter {
    /// `rate` per client, on `redis` if given (the cache's Redis tier: its key prefix,
    /// timeout and breaker), else in process. `key_header` names a client's API key.
    ///
    /// # Errors
    /// When `rate` allows no request or its window is under a millisecond, or
    /// `key_header` is not a header name (the configuration rules these out).
    pub fn new(
        rate: RateLimit,
        key_header: Option<&str>,
        redis: Option<RedisTier>,
    ) -> anyhow::Result<Self> {
        let key_header = key_header
            .map(|h| HeaderName::from_bytes(h.as_bytes()))
            .transpose()
            .map_err(|e| anyhow::anyhow!("RATE_LIMIT_KEY_HEADER: {e}"))?;
        let mut limiter = RateLimiter::new(rate.requests, rate.window)
            .map_err(|e| anyhow::anyhow!("RATE_LIMIT: {e}"))?;
        let shared = redis.is_some();
        if let Some(tier) = redis {
            limiter = limiter.shared(tier);
        }
        Ok(Self {
            limiter: Arc::new(limiter),
            key_header,
            shared,
        })
    }

    /// Whether a Redis tier is configured to count on.
    #[must_use]
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// The mode `/ready` reports: `Shared` only if there is a Redis tier, it answers
    /// (`redis_reachable`) and the last request was counted there.
    #[must_use]
    pub fn mode(&self, redis_reachable: bool) -> Mode {
        if self.shared && redis_reachable && self.limiter.counter() == Counter::Shared {
            Mode::Shared
        } else {
            Mode::Local
        }
    }

    /// The client of `req`: its API key if it sends one, else its peer IP address.
    fn client(&self, req: &Request) -> String {
        if let Some(key) = self
            .key_header
            .as_ref()
            .and_then(|h| req.headers().get(h))
            .filter(|v| !v.is_empty())
        {
            let mut client = b"key:".to_vec();
            client.extend_from_slice(key.as_bytes());
            return String::from_utf8_lossy(&client).into_owned();
        }
        let addr = req.remote_addr();
        match addr.as_socket_addr() {
            // The IP alone: a client opens connections from many ports.
            Some(socket) => format!("ip:{}", socket.ip().to_canonical()),
            None => format!("addr:{addr}"),
        }
    }
}

/// Seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn header(n: u64) -> HeaderValue {
    HeaderValue::from(n)
}

/// The 429 answer to `decision`.
fn too_many(decision: &Decision) -> Response {
    let reset = ceil_secs(decision.reset);
    ApiError::TooManyRequests(
        Json(ErrorBody {
            error: format!(
                "too many requests: {} per window allowed; retry in {} s",
                decision.limit,
                reset.max(1)
            ),
            field: None,
        }),
        reset.max(1),
        decision.limit,
        decision.remaining,
        reset,
    )
    .into_response()
}

/// The middleware: see the module docs. Without a limiter (`RATE_LIMIT=off`) every
/// request passes untouched.
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    limiter: Option<Limiter>,
    metrics: Metrics,
}

impl RateLimitLayer {
    /// Limits with `limiter` (if any), counting decisions into `metrics`.
    #[must_use]
    pub fn new(limiter: Option<Limiter>, metrics: Metrics) -> Self {
        Self { limiter, metrics }
    }
}

impl<E: Endpoint> Middleware<E> for RateLimitLayer {
    type Output = RateLimitEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        RateLimitEndpoint {
            inner,
            layer: self.clone(),
        }
    }
}

/// The endpoint [`RateLimitLayer`] wraps around the app.
#[derive(Debug)]
pub struct RateLimitEndpoint<E> {
    inner: E,
    layer: RateLimitLayer,
}

impl<E: Endpoint> Endpoint for RateLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let Some(limiter) = &self.layer.limiter else {
            return Ok(respond(self.inner.call(req).await));
        };
        if EXEMPT.contains(&req.uri().path()) {
            return Ok(respond(self.inner.call(req).await));
        }
        let decision = limiter.limiter.check(&limiter.client(&req)).await;
        self.layer
            .metrics
            .rate_limited(decision.allowed, decision.counted_by);
        let mut resp = if decision.allowed {
            respond(self.inner.call(req).await)
        } else {
            let route = crate::api::allow::spec_route(req.uri().path()).unwrap_or("unmatched");
            let mut resp = too_many(&decision);
            resp.set_data(RouteTemplate(route.to_owned()));
            resp
        };
        let headers = resp.headers_mut();
        headers.insert("ratelimit-limit", header(decision.limit));
        headers.insert("ratelimit-remaining", header(decision.remaining));
        headers.insert("ratelimit-reset", header(ceil_secs(decision.reset)));
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_rounded_up() {
        assert_eq!(ceil_secs(Duration::ZERO), 0);
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(59_001)), 60);
        assert_eq!(ceil_secs(Duration::from_secs(60)), 60);
    }

    #[test]
    fn a_429_carries_retry_after_of_at_least_a_second_and_the_json_error() {
        let decision = Decision {
            allowed: false,
            limit: 10,
            remaining: 0,
            reset: Duration::from_millis(400),
            counted_by: Counter::Local,
        };
        let resp = too_many(&decision);
        assert_eq!(resp.status(), 429);
        let h = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok());
        assert_eq!(h("retry-after"), Some("1"));
        assert_eq!(h("ratelimit-limit"), Some("10"));
        assert_eq!(h("ratelimit-remaining"), Some("0"));
        assert_eq!(h("ratelimit-reset"), Some("1"));
    }

    #[test]
    fn clients_are_their_key_else_their_ip_without_the_port() {
        let rate = RateLimit {
            requests: 1,
            window: Duration::from_secs(1),
        };
        let limiter = Limiter::new(rate, Some("x-api-key"), None).unwrap();
        let peer = |port: u16| {
            use poem::web::{LocalAddr, RemoteAddr};
            let (head, ()) = poem::http::Request::new(()).into_parts();
            let addr = poem::Addr::SocketAddr(([10, 0, 0, 1], port).into());
            let parts = poem::RequestParts::from((
                head,
                LocalAddr::default(),
                RemoteAddr(addr),
                poem::http::uri::Scheme::HTTP,
            ));
            Request::from_parts(parts, poem::Body::empty())
        };
        assert_eq!(limiter.client(&peer(1)), limiter.client(&peer(2)));
        assert_eq!(limiter.client(&peer(1)), "ip:10.0.0.1");
        let keyed = Request::builder().header("x-api-key", "k1").finish();
        assert_eq!(limiter.client(&keyed), "key:k1");
        let by_ip = Limiter::new(rate, None, None).unwrap();
        assert!(by_ip.client(&keyed).starts_with("addr:"));
    }
}
