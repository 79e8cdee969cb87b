//! A rate limiter for a service's clients: a fixed number of requests per client in a
//! fixed window, counted on Redis so that one limit holds across every instance, and
//! counted in process while Redis cannot be reached.
//!
//! * **Fixed window.** A client's window starts at its first request and lasts
//!   `window`; the count starts again after it. (A client can therefore send up to twice
//!   the limit across a window boundary; a sliding window would cost a sorted set per
//!   client.)
//! * **One atomic step.** Redis counts with one script (`INCR`, and `PEXPIRE` when the
//!   window starts), so concurrent requests through several instances never both see
//!   the last free slot.
//! * **Fallback.** When Redis fails, is slow (every call is bounded by the tier's
//!   `op_timeout`) or its breaker is open, the request is counted in process instead:
//!   the limit then holds per instance. [`RateLimiter::counter`] says which one counted
//!   last (the pet shop reports it in `/ready`).
//! * **No raw client keys in Redis.** A client key (an IP address, an API key) is hashed
//!   with xxh3-128 before it names a counter.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use xxhash_rust::xxh3::xxh3_128;

use crate::CacheError;
use crate::tier::RedisTier;

/// At most this many clients are counted in process; past it, expired windows are
/// dropped, and if that is not enough every local window starts again.
const MAX_LOCAL_CLIENTS: usize = 100_000;

/// Where a request was counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// On Redis: the limit holds across every instance.
    Shared,
    /// In this process: Redis could not be reached (or none is configured), so the
    /// limit holds per instance.
    Local,
}

impl Counter {
    /// `shared` or `local`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Local => "local",
        }
    }
}

/// The answer for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is within the limit.
    pub allowed: bool,
    /// The limit: requests per window.
    pub limit: u64,
    /// Requests left in this window after this one.
    pub remaining: u64,
    /// Time until the window ends (and the count starts again).
    pub reset: Duration,
    /// Where it was counted.
    pub counted_by: Counter,
}

#[derive(Debug)]
struct LocalWindow {
    started: Instant,
    count: u64,
}

/// Counts requests per client; see the [module docs](self).
#[derive(Debug)]
pub struct RateLimiter {
    limit: u64,
    window: Duration,
    shared: Option<RedisTier>,
    local: Mutex<HashMap<u128, LocalWindow>>,
    last_local: AtomicBool,
    local_counts: AtomicU64,
    rejected: AtomicU64,
}

impl RateLimiter {
    /// `limit` requests per client in each `window`, counted in process until
    /// [`shared`](Self::shared) gives it a Redis tier.
    ///
    /// # Errors
    /// [`CacheError::Config`] if `limit` is 0 or `window` is under a millisecond.
    pub fn new(limit: u64, window: Duration) -> Result<Self, CacheError> {
        if limit == 0 {
            return Err(CacheError::Config(
                "a rate limit must allow at least one request".into(),
            ));
        }
        if window < Duration::from_millis(1) {
            return Err(CacheError::Config(
                "a rate-limit window must be at least 1 ms".into(),
            ));
        }
        Ok(Self {
            limit,
            window,
            shared: None,
            local: Mutex::new(HashMap::new()),
            last_local: AtomicBool::new(false),
            local_counts: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        })
    }

    /// Counts on `tier` (it needs a key prefix), so the limit holds across instances.
    #[must_use]
    pub fn shared(mut self, tier: RedisTier) -> Self {
        self.shared = Some(tier);
        self
    }

    /// The limit: requests per window.
    #[must_use]
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The window.
    #[must_use]
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Where the last request was counted (`Local` if none is configured to be shared).
    #[must_use]
    pub fn counter(&self) -> Counter {
        if self.shared.is_none() || self.last_local.load(Ordering::Relaxed) {
            Counter::Local
        } else {
            Counter::Shared
        }
    }

    /// Requests counted in process because Redis could not be reached (or none is
    /// configured).
    #[must_use]
    pub fn local_counts(&self) -> u64 {
        self.local_counts.load(Ordering::Relaxed)
    }

    /// Requests refused so far.
    #[must_use]
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Counts one request of `client` (an IP address, an API key: any string) and says
    /// whether it is allowed.
    pub async fn check(&self, client: &str) -> Decision {
        let hash = xxh3_128(client.as_bytes());
        let (count, reset, counted_by) = match self.count_shared(hash).await {
            Some((count, reset)) => (count, reset, Counter::Shared),
            None => {
                let (count, reset) = self.count_local(hash);
                (count, reset, Counter::Local)
            }
        };
        let allowed = count <= self.limit;
        if !allowed {
            self.rejected.fetch_add(1, Ordering::Relaxed);
        }
        Decision {
            allowed,
            limit: self.limit,
            remaining: self.limit.saturating_sub(count),
            reset,
            counted_by,
        }
    }

    async fn count_shared(&self, hash: u128) -> Option<(u64, Duration)> {
        let tier = self.shared.as_ref()?;
        match tier
            .count_request(&format!("{hash:032x}"), self.window)
            .await
        {
            Ok(counted) => {
                self.last_local.store(false, Ordering::Relaxed);
                Some(counted)
            }
            Err(error) => {
                if !self.last_local.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%error, "rate limit: redis unreachable, counting in process");
                }
                None
            }
        }
    }

    fn count_local(&self, hash: u128) -> (u64, Duration) {
        self.local_counts.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut windows = self
            .local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() >= MAX_LOCAL_CLIENTS && !windows.contains_key(&hash) {
            windows.retain(|_, w| now.duration_since(w.started) < self.window);
            if windows.len() >= MAX_LOCAL_CLIENTS {
                windows.clear();
            }
        }
        let window = windows.entry(hash).or_insert(LocalWindow {
            started: now,
            count: 0,
        });
        if now.duration_since(window.started) >= self.window {
            *window = LocalWindow {
                started: now,
                count: 0,
            };
        }
        window.count += 1;
        let reset = self
            .window
            .saturating_sub(now.duration_since(window.started));
        (window.count, reset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_limit_or_window_is_refused() {
        assert!(RateLimiter::new(0, Duration::from_secs(1)).is_err());
        assert!(RateLimiter::new(1, Duration::ZERO).is_err());
    }

    #[tokio::test]
    async fn without_redis_each_client_has_its_own_local_window() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60)).unwrap();
        let a: Vec<Decision> = futures::future::join_all((0..3).map(|_| limiter.check("a"))).await;
        assert_eq!(
            a.iter()
                .map(|d| (d.allowed, d.remaining))
                .collect::<Vec<_>>(),
            [(true, 1), (true, 0), (false, 0)]
        );
        assert!(
            a.iter()
                .all(|d| d.counted_by == Counter::Local && d.limit == 2)
        );
        assert!(a[2].reset <= Duration::from_secs(60) && a[2].reset > Duration::from_secs(50));
        assert!(
            limiter.check("b").await.allowed,
            "another client is not limited by a's count"
        );
        assert_eq!((limiter.rejected(), limiter.local_counts()), (1, 4));
        assert_eq!(limiter.counter(), Counter::Local);
    }

    #[tokio::test]
    async fn a_local_window_starts_again_once_it_is_over() {
        let limiter = RateLimiter::new(1, Duration::from_millis(30)).unwrap();
        assert!(limiter.check("a").await.allowed);
        assert!(!limiter.check("a").await.allowed);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(limiter.check("a").await.allowed);
    }
}
