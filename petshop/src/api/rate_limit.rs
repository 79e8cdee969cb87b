//! Rate limiting (`RATE_LIMIT`, off by default): each client may send so many requests
//! per fixed window; the next ones are answered 429.
//!
//! * **The client** is the API key in `RATE_LIMIT_KEY_HEADER` (`x-api-key`) when it is
//!   one of `RATE_LIMIT_API_KEYS_FILE` ([`ApiKeys`]), else the client address of the
//!   request ([`ClientAddr`]: the peer, or behind `TRUSTED_PROXIES` the address they
//!   forward). An unknown key counts against the address like no key at all, so made-up
//!   keys never buy a client more requests. A known key's bucket is named by its SHA-256
//!   (hashed again before it names a counter, see [`cache::limit`]); the raw key is
//!   never kept, logged or sent to Redis.
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

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use cache::limit::{Counter, Decision, RateLimiter};
use cache::tier::RedisTier;
use poem::http::{HeaderName, HeaderValue};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::payload::Json;

use crate::api::client_addr::ClientAddr;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::middleware::{RouteTemplate, respond};
use crate::config::{ApiKeys, KeyId, RateLimit};
use crate::metrics::Metrics;

/// Paths the limiter never counts.
pub const EXEMPT: &[&str] = &["/health", "/ready", "/metrics"];

/// The rate limit of a service: the limiter and how it names clients. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Limiter {
    limiter: Arc<RateLimiter>,
    keys: Option<Arc<KnownKeys>>,
    shared: bool,
}

/// The API keys that get a bucket of their own, and the header they come in.
#[derive(Debug)]
struct KnownKeys {
    header: HeaderName,
    keys: ApiKeys,
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
    /// timeout and breaker), else in process. A request with one of `keys` in
    /// `key_header` is counted by that key; without both, every client by address.
    ///
    /// # Errors
    /// When `rate` allows no request or its window is under a millisecond, or
    /// `key_header` is not a header name (the configuration rules these out).
    pub fn new(
        rate: RateLimit,
        key_header: Option<&str>,
        keys: Option<ApiKeys>,
        redis: Option<RedisTier>,
    ) -> anyhow::Result<Self> {
        let header = key_header
            .map(|h| HeaderName::from_bytes(h.as_bytes()))
            .transpose()
            .map_err(|e| anyhow::anyhow!("RATE_LIMIT_KEY_HEADER: {e}"))?;
        let keys = header
            .zip(keys)
            .map(|(header, keys)| Arc::new(KnownKeys { header, keys }));
        let mut limiter = RateLimiter::new(rate.requests, rate.window)
            .map_err(|e| anyhow::anyhow!("RATE_LIMIT: {e}"))?;
        let shared = redis.is_some();
        if let Some(tier) = redis {
            limiter = limiter.shared(tier);
        }
        Ok(Self {
            limiter: Arc::new(limiter),
            keys,
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

    /// The client of `req`: its API key if it is a known one, else its address.
    fn client(&self, req: &Request) -> Client {
        if let Some(known) = &self.keys
            && let Some(key) = req.headers().get(&known.header)
            && !key.is_empty()
            && let Some(id) = known.keys.find(key.as_bytes())
        {
            return Client::Key(id);
        }
        Client::Addr(ClientAddr::of(req))
    }
}

/// Whom a request is counted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Client {
    /// A known API key.
    Key(KeyId),
    /// An address: the IP alone, as a client opens connections from many ports.
    Addr(ClientAddr),
}

impl fmt::Display for Client {
    /// The name of its bucket: `key:<sha-256 hex>` or `ip:<address>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(id) => write!(f, "key:{id}"),
            Self::Addr(addr) => write!(f, "ip:{addr}"),
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
        let client = limiter.client(&req);
        if let Client::Key(id) = client {
            // The key's hash prefix, as its line in the file starts: which keys are in
            // use (before one is retired), never the key.
            tracing::Span::current().record("api_key", id.short().as_str());
        }
        let decision = limiter.limiter.check(&client.to_string()).await;
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
    fn clients_are_their_known_key_else_their_ip_without_the_port() {
        let rate = RateLimit {
            requests: 1,
            window: Duration::from_secs(1),
        };
        let hash = crate::config::KeyId::of(b"k1").to_string();
        let keys = ApiKeys::parse(&hash).unwrap();
        let limiter = Limiter::new(rate, Some("x-api-key"), Some(keys.clone()), None).unwrap();
        let peer = |port: u16, key: Option<&str>| {
            use poem::web::{LocalAddr, RemoteAddr};
            let mut head = poem::http::Request::new(());
            if let Some(k) = key {
                head.headers_mut().insert("x-api-key", k.parse().unwrap());
            }
            let (head, ()) = head.into_parts();
            let addr = poem::Addr::SocketAddr(([10, 0, 0, 1], port).into());
            let parts = poem::RequestParts::from((
                head,
                LocalAddr::default(),
                RemoteAddr(addr),
                poem::http::uri::Scheme::HTTP,
            ));
            Request::from_parts(parts, poem::Body::empty())
        };
        let bucket = |l: &Limiter, req: &Request| l.client(req).to_string();
        assert_eq!(
            bucket(&limiter, &peer(1, None)),
            bucket(&limiter, &peer(2, None))
        );
        assert_eq!(bucket(&limiter, &peer(1, None)), "ip:10.0.0.1");
        assert_eq!(
            bucket(&limiter, &peer(1, Some("k1"))),
            format!("key:{hash}")
        );
        assert_eq!(bucket(&limiter, &peer(1, Some("made-up"))), "ip:10.0.0.1");
        assert_eq!(
            bucket(&limiter, &peer(1, Some(hash.as_str()))),
            "ip:10.0.0.1"
        );
        // No header to read keys from, or no keys: by address only.
        let by_ip = Limiter::new(rate, None, Some(keys), None).unwrap();
        assert_eq!(bucket(&by_ip, &peer(1, Some("k1"))), "ip:10.0.0.1");
        let no_keys = Limiter::new(rate, Some("x-api-key"), None, None).unwrap();
        assert_eq!(bucket(&no_keys, &peer(1, Some("k1"))), "ip:10.0.0.1");
        let keyless = Request::builder().finish();
        assert_eq!(bucket(&no_keys, &keyless), "ip:unknown");
    }
}
