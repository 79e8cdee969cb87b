//! L2: a shared tier on Redis: one server through a self-reconnecting
//! `ConnectionManager`, or a Redis Cluster through a `ClusterConnection`
//! ([`RedisTier::cluster_builder`]); the same API and guarantees either way.
//!
//! Every operation is bounded by a timeout and guarded by a circuit breaker; failures
//! are counted and returned as `Err` for the caller ([`crate::tier::TieredCache`],
//! [`crate::CacheClient`]) to swallow or queue. Reads pipeline `GET` with `PTTL` so a
//! promotion into L1 knows how long the shared entry has left. Writes are
//! `SET key value PX ttl`. Nothing on the request path scans keys; only
//! [`crate::tier::Cache::clear`] does (`SCAN` + `UNLINK` of our prefix), for the admin flush.
//!
//! This module is the only place that speaks Redis: the entries (`cache.rs`), the
//! version counters and the generation (`counters.rs`), tag versions (`tags.rs`), strict
//! writes' holds and the instances' L1 leases (`holds.rs`), the
//! backplane's publish and subscribe (`pubsub.rs`), a write's step in one round trip
//! (`step.rs`), the Lua scripts (`scripts.rs`) and
//! every key suffix (`keys.rs`), over either kind of connection (`connection.rs`),
//! with or without TLS (`tls.rs`, for `rediss://`); what a cluster does differently
//! lives in `cluster.rs`, and the Redis ACL all of it needs in `acl.rs` ([`RedisAcl`]).
//!
//! # Generations
//!
//! Every entry is written with the tier's *generation* (`{prefix}:gen`, a counter that
//! never goes back) as it was when its load began, and a read accepts an entry only if
//! its generation is the current one, fetched in the same round trip. Starting a new
//! generation ([`RedisTier::bump_generation`]) makes every entry written before it
//! unreachable at once, with no `SCAN`: the client does it when Redis comes back after
//! a fault, so nothing a failed invalidation should have removed is ever read again.

mod acl;
mod cache;
mod cluster;
mod connection;
mod counters;
mod holds;
mod keys;
mod pubsub;
mod rate;
mod raw;
mod scripts;
mod step;
mod tags;
mod tls;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use self::acl::RedisAcl;
use self::connection::{Connection, Subscriber, Target};
pub(crate) use self::holds::HoldPlan;
pub(crate) use self::step::{KeyStep, StepDone, StepPlan};
pub use self::tls::RedisTls;
#[cfg(any(test, feature = "test-util"))]
pub(crate) use self::tls::install_ring_if_none;
use crate::breaker::{Breaker, Permit};
use crate::clock::default_clock;
use crate::stats::{Operation, Outcome, RoundTrip};
use crate::{CacheError, Clock, TierStats};

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

/// Builds a [`RedisTier`].
#[must_use]
#[derive(Debug)]
pub struct RedisTierBuilder {
    target: Target,
    tls: Option<RedisTls>,
    prefix: Option<String>,
    op_timeout: Duration,
    connect_timeout: Duration,
    breaker_threshold: u32,
    breaker_cooldown: Duration,
    clock: Arc<dyn Clock>,
}

impl RedisTierBuilder {
    /// The key prefix [`crate::tier::Cache::clear`] removes (normally [`crate::KeyBuilder::prefix`]).
    /// Without one, `clear` refuses to run rather than touch keys that are not ours.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// TLS for `rediss://` URLs: a private CA, a client certificate for mutual TLS.
    /// Without it, `rediss://` trusts the public roots; with it, every URL must be
    /// `rediss://` (`build` says so otherwise). Every connection of the tier uses it.
    pub fn tls(mut self, tls: RedisTls) -> Self {
        self.tls = Some(tls);
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
        let (con, subscriber) = Connection::open(
            &self.target,
            self.tls.as_ref(),
            self.op_timeout,
            self.connect_timeout,
        )?;
        Ok(RedisTier {
            inner: Arc::new(Inner {
                con,
                subscriber,
                prefix: self.prefix,
                op_timeout: self.op_timeout,
                breaker: Breaker::new(
                    self.breaker_threshold,
                    self.breaker_cooldown,
                    self.clock.clone(),
                ),
                clock: self.clock,
                stats: TierStats::default(),
                generation: AtomicU64::new(0),
                tag_seq: AtomicU64::new(0),
                faults: AtomicU64::new(0),
            }),
        })
    }
}

struct Inner {
    con: Connection,
    subscriber: Subscriber,
    prefix: Option<String>,
    op_timeout: Duration,
    breaker: Breaker,
    clock: Arc<dyn Clock>,
    stats: TierStats,
    /// The last generation Redis reported (0: not known yet).
    generation: AtomicU64,
    /// The highest tag sequence Redis reported (0: not known yet).
    tag_seq: AtomicU64,
    /// Times the breaker opened.
    faults: AtomicU64,
}

/// The shared tier. Cheap to clone: clones share the connection and the breaker.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// use cache::testing::RedisServer;
/// use cache::tier::{Cache, Entry, RedisTier};
/// use cache::{KeyBuilder, Ttl};
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
    /// A builder for the server at `url` (`redis://host:port/db`, or `rediss://` for
    /// TLS: see [`RedisTierBuilder::tls`]).
    pub fn builder(url: impl Into<String>) -> RedisTierBuilder {
        Self::builder_for(Target::Node(url.into()))
    }

    /// A builder for the Redis Cluster reached through `seeds` (`redis://host:port`, one
    /// or more of its nodes; the rest are discovered). Entries spread over the cluster's
    /// slots; what stays together is described in the crate's README ("Redis Cluster").
    ///
    /// ```no_run
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use cache::tier::RedisTier;
    /// let l2 = RedisTier::cluster_builder(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
    ///     .prefix("app")
    ///     .build()
    ///     .unwrap();
    /// # });
    /// ```
    pub fn cluster_builder<S: Into<String>>(
        seeds: impl IntoIterator<Item = S>,
    ) -> RedisTierBuilder {
        Self::builder_for(Target::Cluster(seeds.into_iter().map(Into::into).collect()))
    }

    fn builder_for(target: Target) -> RedisTierBuilder {
        RedisTierBuilder {
            target,
            tls: None,
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

    /// The key prefix this tier owns, if it was given one.
    #[must_use]
    pub fn prefix(&self) -> Option<&str> {
        self.inner.prefix.as_deref()
    }

    /// The bound on each operation.
    #[must_use]
    pub fn op_timeout(&self) -> Duration {
        self.inner.op_timeout
    }

    /// Whether this tier speaks to a Redis Cluster.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        self.inner.con.is_cluster()
    }

    /// `PING` (on a cluster: every master), bounded by the operation timeout and guarded
    /// by the breaker.
    pub async fn ping(&self) -> Result<(), CacheError> {
        self.run("ping", |mut con| async move {
            redis::cmd("PING").query_async::<()>(&mut con).await
        })
        .await
    }

    /// `PING` past an open breaker, bounded by the operation timeout; success closes
    /// the breaker. For the one task that must learn as soon as Redis is back.
    pub(crate) async fn probe(&self) -> Result<(), CacheError> {
        let inner = &self.inner;
        let mut con = inner.con.clone();
        inner.stats.round_trip(RoundTrip::Health);
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<()>(&mut con);
        match tokio::time::timeout(inner.op_timeout, ping).await {
            Ok(Ok(())) => {
                inner.breaker.success();
                Ok(())
            }
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(CacheError::Timeout(inner.op_timeout)),
        }
    }

    /// How many times the breaker has opened: a count that moves when Redis failed
    /// for long enough that this instance may have missed other instances' writes.
    #[must_use]
    pub fn faults(&self) -> u64 {
        self.inner.faults.load(Ordering::SeqCst)
    }

    /// The generation last seen in Redis (0 before the first read).
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::SeqCst)
    }

    fn learn_generation(&self, generation: u64) {
        self.inner.generation.store(generation, Ordering::SeqCst);
    }

    /// The highest tag sequence seen in Redis (0 before the first read): a load that
    /// begins now is at least this recent.
    #[must_use]
    pub fn tag_sequence(&self) -> u64 {
        self.inner.tag_seq.load(Ordering::SeqCst)
    }

    fn learn_tag_sequence(&self, seq: u64) {
        self.inner.tag_seq.fetch_max(seq, Ordering::SeqCst);
    }

    /// Runs `op` on a clone of the connection under the breaker and the timeout.
    async fn run<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, CacheError>
    where
        F: FnOnce(Connection) -> Fut + Send,
        Fut: Future<Output = redis::RedisResult<T>> + Send,
    {
        let inner = &self.inner;
        if let Permit::Skip(left) = inner.breaker.permit() {
            inner.stats.short_circuit();
            return Err(CacheError::CircuitOpen(left));
        }
        let kind = round_trip_of(what);
        inner.stats.round_trip(kind);
        let began = Instant::now();
        let timed = operation_of(what, kind);
        let err = match tokio::time::timeout(inner.op_timeout, op(inner.con.clone())).await {
            Ok(Ok(v)) => {
                if let Some(operation) = timed {
                    inner.stats.timed(operation, Outcome::Ok, began);
                }
                inner.breaker.success();
                return Ok(v);
            }
            Ok(Err(e)) => CacheError::from(e),
            Err(_) => CacheError::Timeout(inner.op_timeout),
        };
        if let Some(operation) = timed {
            inner.stats.timed(operation, Outcome::Error, began);
        }
        inner.stats.error();
        if err.is_transient() {
            if inner.breaker.failure() {
                inner.faults.fetch_add(1, Ordering::SeqCst);
                tracing::warn!(error = %err, "redis tier failing: circuit breaker opened");
            }
        } else {
            // The server answered: it is up, whatever it said.
            inner.breaker.success();
        }
        tracing::debug!(op = what, error = %err, "redis tier operation failed");
        Err(err)
    }

    /// Runs `script` with `keys` and `args` (see [`RedisTier::run`]).
    async fn eval<T>(
        &self,
        what: &'static str,
        script: &'static redis::Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<T, CacheError>
    where
        T: redis::FromRedisValue + Send,
    {
        self.run(what, |mut con| async move {
            let mut invocation = script.prepare_invoke();
            for key in &keys {
                invocation.key(key);
            }
            for arg in &args {
                invocation.arg(arg);
            }
            invocation.invoke_async(&mut con).await
        })
        .await
    }
}

/// What `what` (of round-trip `kind`) is timed as, by [`RedisTier::run`]; `None` for
/// the entry reads, which their callers time with the hit or miss they came to.
fn operation_of(what: &str, kind: RoundTrip) -> Option<Operation> {
    match (what, kind) {
        ("get", _) => None,
        (_, RoundTrip::Read) => Some(Operation::Get),
        ("publish", _) => Some(Operation::Publish),
        _ => Some(Operation::Script),
    }
}

/// What the operation called `what` is for, in the tier's round-trip counts.
fn round_trip_of(what: &str) -> RoundTrip {
    match what {
        "get" | "get_raw" | "read_versions" | "read_tags" | "read_generation" => RoundTrip::Read,
        "fill_token" | "set_if_unchanged" | "set" | "set_raw" | "try_lease" | "release_lease" => {
            RoundTrip::Fill
        }
        "write_step" | "invalidate" | "replace" | "bump_counters" | "bump_tags" | "delete" => {
            RoundTrip::Write
        }
        "hold_key" | "hold" | "release_key" | "release" => RoundTrip::Strict,
        "count_request" => RoundTrip::RateLimit,
        "clear" | "bump_generation" => RoundTrip::Admin,
        "ping" => RoundTrip::Health,
        _ => RoundTrip::Backplane,
    }
}
