//! L2: a shared tier on Redis through a self-reconnecting `ConnectionManager`.
//!
//! Every operation is bounded by a timeout and guarded by a circuit breaker; failures
//! are counted and returned as `Err` for the caller ([`crate::TieredCache`],
//! [`crate::TypedCache`]) to swallow. Reads pipeline `GET` with `PTTL` so a promotion
//! into L1 knows how long the shared entry has left. Writes are `SET key value PX ttl`.
//! Nothing on the request path scans keys; only [`Cache::clear`] does (`SCAN` + `UNLINK`
//! of our prefix), for the admin flush.

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::breaker::{Breaker, Permit};
use crate::clock::default_clock;
use crate::tier::{Cache, FillToken, Hit, TierKind};
use crate::{CacheError, Clock, Entry, Key, TierSnapshot, TierStats, Ttl};

/// Default bound on one Redis operation.
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_millis(50);
/// Default bound on establishing a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// Default number of consecutive failures that open the breaker.
pub const DEFAULT_BREAKER_THRESHOLD: u32 = 5;
/// Default time the breaker stays open before probing Redis again.
pub const DEFAULT_BREAKER_COOLDOWN: Duration = Duration::from_secs(1);

/// How long an invalidation counter (`{key}:guard`) outlives its last invalidation:
/// far longer than any load, so a token is never compared with a counter that expired.
pub const GUARD_TTL: Duration = Duration::from_secs(3600);

/// Fill only if the key's invalidation counter still reads what the loader saw.
static FILL_IF_UNCHANGED: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local g = redis.call('GET', KEYS[2])
        if (g or '0') == ARGV[1] then
            redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
            return 1
        end
        return 0",
    )
});

/// A writer's store: only if the counter still reads what the writer saw, and advance it.
static REPLACE_IF_UNCHANGED: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local g = redis.call('GET', KEYS[2])
        if (g or '0') == ARGV[1] then
            redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
            redis.call('INCR', KEYS[2])
            redis.call('PEXPIRE', KEYS[2], ARGV[4])
            return 1
        end
        return 0",
    )
});

/// Advance the key's invalidation counter and drop the key, in one step. A counter that
/// is not a number (garbage) is replaced by a fresh random one.
static INVALIDATE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local ok, g = pcall(redis.call, 'INCR', KEYS[2])
        if not ok then
            redis.call('SET', KEYS[2], ARGV[2])
            g = tonumber(ARGV[2])
        end
        redis.call('PEXPIRE', KEYS[2], ARGV[1])
        redis.call('UNLINK', KEYS[1])
        return g",
    )
});

/// Release a lease only if we still own it.
static RELEASE_LEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('DEL', KEYS[1])
        end
        return 0",
    )
});

fn guard_key(key: &Key) -> String {
    format!("{key}:guard")
}

fn lease_key(key: &Key) -> String {
    format!("{key}:lease")
}

/// Builds a [`RedisTier`].
#[must_use]
#[derive(Debug)]
pub struct RedisTierBuilder {
    url: String,
    prefix: Option<String>,
    op_timeout: Duration,
    connect_timeout: Duration,
    breaker_threshold: u32,
    breaker_cooldown: Duration,
    clock: Arc<dyn Clock>,
}

impl RedisTierBuilder {
    /// The key prefix [`Cache::clear`] removes (normally [`crate::KeyBuilder::prefix`]).
    /// Without one, `clear` refuses to run rather than touch keys that are not ours.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// The bound on each operation, connection set-up included (default 50 ms).
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// The bound on establishing a connection (default 250 ms).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Consecutive failures that open the breaker, and how long it stays open.
    pub fn breaker(mut self, threshold: u32, cooldown: Duration) -> Self {
        self.breaker_threshold = threshold;
        self.breaker_cooldown = cooldown;
        self
    }

    /// The clock of the breaker and of envelope timestamps.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The tier. It connects lazily: a Redis that is down now does not fail the build,
    /// and the tier starts answering when Redis comes up. Must run inside a Tokio runtime.
    pub fn build(self) -> Result<RedisTier, CacheError> {
        if self.op_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(CacheError::Config("redis timeouts must be above 0".into()));
        }
        let client = redis::Client::open(self.url.as_str())?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(self.op_timeout))
            .set_connection_timeout(Some(self.connect_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(100));
        let con = client.get_connection_manager_lazy(config)?;
        Ok(RedisTier {
            inner: Arc::new(Inner {
                con,
                client,
                prefix: self.prefix,
                op_timeout: self.op_timeout,
                breaker: Breaker::new(
                    self.breaker_threshold,
                    self.breaker_cooldown,
                    self.clock.clone(),
                ),
                clock: self.clock,
                stats: TierStats::default(),
            }),
        })
    }
}

struct Inner {
    con: ConnectionManager,
    client: redis::Client,
    prefix: Option<String>,
    op_timeout: Duration,
    breaker: Breaker,
    clock: Arc<dyn Clock>,
    stats: TierStats,
}

/// The shared tier. Cheap to clone: clones share the connection and the breaker.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// use cache::testing::RedisServer;
/// use cache::{Cache, Entry, KeyBuilder, RedisTier, Ttl};
///
/// let redis = RedisServer::spawn(); // a throwaway server, killed on drop
/// let l2 = RedisTier::builder(redis.url())
///     .prefix("app")
///     .op_timeout(Duration::from_millis(30))
///     .build()
///     .unwrap();
/// let key = KeyBuilder::new("app").unwrap().namespace("pet").unwrap().id(1);
/// l2.set(&key, Entry::new(&b"rex"[..], 2, 0), Ttl::secs(60)).await.unwrap();
/// let hit = l2.get(&key).await.unwrap().unwrap();
/// assert!(hit.ttl_left.unwrap() <= Duration::from_secs(60));
/// # });
/// ```
#[derive(Clone)]
pub struct RedisTier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTier")
            .field("prefix", &self.inner.prefix)
            .field("op_timeout", &self.inner.op_timeout)
            .field("breaker_open", &self.inner.breaker.is_open())
            .finish_non_exhaustive()
    }
}

impl RedisTier {
    /// A builder for the server at `url` (`redis://host:port/db`).
    pub fn builder(url: impl Into<String>) -> RedisTierBuilder {
        RedisTierBuilder {
            url: url.into(),
            prefix: None,
            op_timeout: DEFAULT_OP_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            breaker_threshold: DEFAULT_BREAKER_THRESHOLD,
            breaker_cooldown: DEFAULT_BREAKER_COOLDOWN,
            clock: default_clock(),
        }
    }

    /// True while the breaker is open or probing (Redis is being skipped).
    #[must_use]
    pub fn is_degraded(&self) -> bool {
        self.inner.breaker.is_open()
    }

    /// A clone of the connection, for strategies that need their own commands.
    #[must_use]
    pub fn connection(&self) -> ConnectionManager {
        self.inner.con.clone()
    }

    /// The client the tier was built from (for dedicated connections such as pub/sub).
    #[must_use]
    pub fn client(&self) -> &redis::Client {
        &self.inner.client
    }

    /// The bound on each operation.
    #[must_use]
    pub fn op_timeout(&self) -> Duration {
        self.inner.op_timeout
    }

    /// `PING`, bounded by the operation timeout and guarded by the breaker.
    pub async fn ping(&self) -> Result<(), CacheError> {
        self.run("ping", |mut con| async move {
            redis::cmd("PING").query_async::<()>(&mut con).await
        })
        .await
    }

    /// Runs `op` on a clone of the connection under the breaker and the timeout.
    pub async fn run<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, CacheError>
    where
        F: FnOnce(ConnectionManager) -> Fut + Send,
        Fut: Future<Output = redis::RedisResult<T>> + Send,
    {
        let inner = &self.inner;
        if let Permit::Skip(left) = inner.breaker.permit() {
            inner.stats.short_circuit();
            return Err(CacheError::CircuitOpen(left));
        }
        let err = match tokio::time::timeout(inner.op_timeout, op(inner.con.clone())).await {
            Ok(Ok(v)) => {
                inner.breaker.success();
                return Ok(v);
            }
            Ok(Err(e)) => CacheError::from(e),
            Err(_) => CacheError::Timeout(inner.op_timeout),
        };
        inner.stats.error();
        if err.is_transient() {
            if inner.breaker.failure() {
                tracing::warn!(error = %err, "redis tier failing: circuit breaker opened");
            }
        } else {
            // The server answered: it is up, whatever it said.
            inner.breaker.success();
        }
        tracing::debug!(op = what, error = %err, "redis tier operation failed");
        Err(err)
    }

    /// One pipelined trip: `GET` + `PTTL` per key. Per-key server errors (`WRONGTYPE`:
    /// someone stored a non-string under our key) are garbage, hence misses.
    async fn fetch(&self, keys: &[Key]) -> Result<Vec<Option<Hit>>, CacheError> {
        let names: Vec<String> = keys.iter().map(|k| k.as_str().to_owned()).collect();
        let values = self
            .run("get", |mut con| async move {
                let mut pipe = redis::pipe();
                pipe.ignore_errors();
                for k in &names {
                    pipe.get(k).pttl(k);
                }
                pipe.query_async::<Vec<redis::Value>>(&mut con).await
            })
            .await?;
        let mut out = Vec::with_capacity(keys.len());
        let mut values = values.into_iter();
        for key in keys {
            let value = values.next().unwrap_or(redis::Value::Nil);
            let pttl = values
                .next()
                .and_then(|v| redis::from_redis_value::<i64>(v).ok())
                .unwrap_or(-1);
            out.push(self.decode(key, value, pttl));
        }
        Ok(out)
    }

    fn decode(&self, key: &Key, value: redis::Value, pttl: i64) -> Option<Hit> {
        let inner = &self.inner;
        let bytes = match value {
            redis::Value::Nil => {
                inner.stats.miss();
                return None;
            }
            redis::Value::BulkString(b) => Bytes::from(b),
            other => {
                inner.stats.decode_failure();
                inner.stats.miss();
                tracing::warn!(key = %key, value = ?other, "non-string value under a cache key: treated as a miss");
                return None;
            }
        };
        match Entry::from_envelope(bytes) {
            Ok((entry, expires_ms)) => {
                let ttl_left = if pttl > 0 {
                    Duration::from_millis(pttl.unsigned_abs())
                } else {
                    // No TTL on the key (written by someone else): trust the envelope.
                    Duration::from_millis(expires_ms.saturating_sub(inner.clock.now_millis()))
                };
                inner.stats.hit();
                Some(Hit {
                    entry,
                    tier: TierKind::L2,
                    ttl_left: Some(ttl_left),
                })
            }
            Err(e) => {
                inner.stats.decode_failure();
                inner.stats.miss();
                tracing::warn!(key = %key, error = %e, "undecodable entry in redis: treated as a miss");
                None
            }
        }
    }
}

impl RedisTier {
    /// Runs one of the guarded-store scripts (`KEYS`: the key, its guard; `ARGV`: the
    /// guard value seen, the envelope, the TTL and the guard's TTL in ms).
    async fn store_if_unchanged(
        &self,
        op: &'static str,
        script: &'static redis::Script,
        key: &Key,
        entry: Entry,
        ttl: Ttl,
        token: &FillToken,
    ) -> Result<bool, CacheError> {
        let Some(seen) = token.l2 else {
            return Ok(false);
        };
        let expires_ms = self.inner.clock.now_millis() + ttl.as_millis();
        let bytes = entry.to_envelope(expires_ms);
        let (k, g, ms) = (key.as_str().to_owned(), guard_key(key), ttl.as_millis());
        let guard_ms = u64::try_from(GUARD_TTL.as_millis()).unwrap_or(u64::MAX);
        let stored: i64 = self
            .run(op, |mut con| async move {
                script
                    .key(&k)
                    .key(&g)
                    .arg(seen.to_string())
                    .arg(bytes)
                    .arg(ms)
                    .arg(guard_ms)
                    .invoke_async(&mut con)
                    .await
            })
            .await?;
        if stored == 1 {
            self.inner.stats.set();
        }
        Ok(stored == 1)
    }
}

#[async_trait]
impl Cache for RedisTier {
    fn name(&self) -> &'static str {
        "l2"
    }

    async fn get(&self, key: &Key) -> Result<Option<Hit>, CacheError> {
        let mut hits = self.fetch(std::slice::from_ref(key)).await?;
        Ok(hits.pop().flatten())
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Hit>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.fetch(keys).await
    }

    async fn set(&self, key: &Key, entry: Entry, ttl: Ttl) -> Result<(), CacheError> {
        let expires_ms = self.inner.clock.now_millis() + ttl.as_millis();
        let bytes = entry.to_envelope(expires_ms);
        let k = key.as_str().to_owned();
        let ms = ttl.as_millis();
        self.run("set", |mut con| async move {
            redis::cmd("SET")
                .arg(&k)
                .arg(bytes)
                .arg("PX")
                .arg(ms)
                .query_async::<()>(&mut con)
                .await
        })
        .await?;
        self.inner.stats.set();
        Ok(())
    }

    async fn delete(&self, key: &Key) -> Result<(), CacheError> {
        let k = key.as_str().to_owned();
        self.run("delete", |mut con| async move {
            redis::cmd("UNLINK")
                .arg(&k)
                .query_async::<()>(&mut con)
                .await
        })
        .await?;
        self.inner.stats.delete();
        Ok(())
    }

    async fn fill_token(&self, key: &Key) -> Result<FillToken, CacheError> {
        let g = guard_key(key);
        let value: Option<String> = self
            .run("fill_token", |mut con| async move {
                redis::cmd("GET").arg(&g).query_async(&mut con).await
            })
            .await?;
        // An unreadable counter (garbage) yields no token: no L2 fill until invalidated.
        let l2 = match value {
            None => Some(0),
            Some(v) => v.parse().ok(),
        };
        Ok(FillToken { l1: None, l2 })
    }

    async fn set_if_unchanged(
        &self,
        key: &Key,
        entry: Entry,
        ttl: Ttl,
        token: &FillToken,
    ) -> Result<bool, CacheError> {
        self.store_if_unchanged(
            "set_if_unchanged",
            &FILL_IF_UNCHANGED,
            key,
            entry,
            ttl,
            token,
        )
        .await
    }

    async fn replace(
        &self,
        key: &Key,
        entry: Entry,
        ttl: Ttl,
        token: &FillToken,
    ) -> Result<bool, CacheError> {
        self.store_if_unchanged("replace", &REPLACE_IF_UNCHANGED, key, entry, ttl, token)
            .await
    }

    async fn invalidate(&self, key: &Key) -> Result<FillToken, CacheError> {
        let (k, g) = (key.as_str().to_owned(), guard_key(key));
        let fresh = rand::random::<u32>();
        let guard_ms = u64::try_from(GUARD_TTL.as_millis()).unwrap_or(u64::MAX);
        let counter: u64 = self
            .run("invalidate", |mut con| async move {
                INVALIDATE
                    .key(&k)
                    .key(&g)
                    .arg(guard_ms)
                    .arg(fresh)
                    .invoke_async(&mut con)
                    .await
            })
            .await?;
        self.inner.stats.delete();
        Ok(FillToken {
            l1: None,
            l2: Some(counter),
        })
    }

    async fn try_lease(&self, key: &Key, owner: &str, ttl: Ttl) -> Result<bool, CacheError> {
        let (l, o, ms) = (lease_key(key), owner.to_owned(), ttl.as_millis());
        let set: Option<String> = self
            .run("try_lease", |mut con| async move {
                redis::cmd("SET")
                    .arg(&l)
                    .arg(&o)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .query_async(&mut con)
                    .await
            })
            .await?;
        Ok(set.is_some())
    }

    async fn release_lease(&self, key: &Key, owner: &str) -> Result<(), CacheError> {
        let (l, o) = (lease_key(key), owner.to_owned());
        self.run("release_lease", |mut con| async move {
            RELEASE_LEASE
                .key(&l)
                .arg(&o)
                .invoke_async::<i64>(&mut con)
                .await
        })
        .await?;
        Ok(())
    }

    async fn clear(&self) -> Result<(), CacheError> {
        let Some(prefix) = self.inner.prefix.clone() else {
            return Err(CacheError::Config(
                "clearing the redis tier needs a key prefix (RedisTierBuilder::prefix)".into(),
            ));
        };
        let pattern = format!("{prefix}:*");
        let mut cursor: u64 = 0;
        // Each SCAN step is its own bounded operation: a big keyspace does not hit one timeout.
        loop {
            let p = pattern.clone();
            let (next, keys): (u64, Vec<String>) = self
                .run("clear", |mut con| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&p)
                        .arg("COUNT")
                        .arg(500)
                        .query_async(&mut con)
                        .await
                })
                .await?;
            // Namespace version counters (`{prefix}:{namespace}:ver`) survive: a counter
            // that restarted could hand out a version whose old keys a slow fill in
            // flight is about to write.
            let keys: Vec<String> = keys
                .into_iter()
                .filter(|k| !crate::Namespace::is_version_key(&prefix, k))
                .collect();
            if !keys.is_empty() {
                self.run("clear", |mut con| async move {
                    redis::cmd("UNLINK")
                        .arg(&keys)
                        .query_async::<()>(&mut con)
                        .await
                })
                .await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    fn stats(&self) -> Vec<TierSnapshot> {
        vec![self.inner.stats.snapshot("l2")]
    }

    fn record_decode_failure(&self, tier: TierKind) {
        if tier == TierKind::L2 {
            self.inner.stats.decode_failure();
        }
    }
}
