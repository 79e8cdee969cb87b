//! L1 in front of L2: reads try the nearest tier first, writes and deletes reach both.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use async_trait::async_trait;
use tracing::Instrument as _;

use crate::tier::{Cache, FillToken, Hit, TierKind};
use crate::{CacheError, Entry, Key, TierSnapshot, Ttl};

/// Builds a [`TieredCache`].
#[must_use]
#[derive(Debug)]
pub struct TieredCacheBuilder {
    l1: Arc<dyn Cache>,
    l2: Arc<dyn Cache>,
    l1_max_ttl: Option<Ttl>,
}

impl TieredCacheBuilder {
    /// Caps how long any entry lives in L1, below its shared TTL. Shorter L1 lives bound
    /// how long one instance can serve a value another instance has replaced.
    pub fn l1_max_ttl(mut self, ttl: Ttl) -> Self {
        self.l1_max_ttl = Some(ttl);
        self
    }

    /// The tiered cache.
    #[must_use]
    pub fn build(self) -> TieredCache {
        TieredCache {
            inner: Arc::new(self),
            l1_on: L1Switch::default(),
        }
    }
}

/// Turns the L1 tier of a [`TieredCache`] off and on (clones share the switch), and
/// bounds L1 by a lease.
///
/// The backplane turns L1 off while it cannot hear other instances' invalidations (the
/// rule of Redis client-side caching: no invalidation channel, no local copies): reads
/// and writes then go to L2 only, and nothing is promoted. With a backplane, L1 also
/// answers only under a lease this instance renews in Redis: a strict write on another
/// instance waits for this one to acknowledge its hold, or for the lease to run out, so
/// an L1 hit is served only if the lease held before the lookup still holds after it.
#[derive(Clone, Debug)]
pub struct L1Switch {
    on: Arc<AtomicBool>,
    /// Until when L1 may answer, in nanoseconds since [`BASE`]; `u64::MAX`: no lease needed.
    until: Arc<AtomicU64>,
}

/// The origin of lease times.
static BASE: LazyLock<Instant> = LazyLock::new(Instant::now);

fn since_base(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(*BASE).as_nanos()).unwrap_or(u64::MAX - 1)
}

impl Default for L1Switch {
    fn default() -> Self {
        Self {
            on: Arc::new(AtomicBool::new(true)),
            until: Arc::new(AtomicU64::new(u64::MAX)),
        }
    }
}

impl L1Switch {
    /// Whether L1 is in use.
    #[must_use]
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::SeqCst)
    }

    /// Puts L1 in use (`true`) or bypasses it (`false`).
    pub fn set(&self, on: bool) {
        self.on.store(on, Ordering::SeqCst);
    }

    /// From now on L1 answers only under a lease: none yet.
    pub(crate) fn require_lease(&self) {
        self.until.store(0, Ordering::SeqCst);
    }

    /// L1 may answer until `until`.
    pub(crate) fn lease_until(&self, until: Instant) {
        self.until.store(since_base(until), Ordering::SeqCst);
    }

    /// Whether a lease was granted and ran out (never, without one).
    pub(crate) fn lapsed(&self) -> bool {
        let until = self.until.load(Ordering::SeqCst);
        until != 0 && !self.holds(until)
    }

    /// The lease now, to check with [`L1Switch::holds`] after a lookup.
    fn lease(&self) -> u64 {
        self.until.load(Ordering::SeqCst)
    }

    /// Whether the lease `until` (taken before a lookup) still holds now.
    fn holds(&self, until: u64) -> bool {
        until == u64::MAX || since_base(Instant::now()) < until
    }
}

/// L1 → L2. An L2 hit is promoted into L1 for no longer than the shared entry has left
/// (and no longer than [`TieredCacheBuilder::l1_max_ttl`]), so an L1 copy never
/// outlives the shared one. A failing tier is logged and skipped: reads fall through to
/// the next tier (or the caller's loader), writes still reach the healthy tier.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use cache::testing::RedisServer;
/// use cache::tier::{Cache, Entry, MokaTier, RedisTier, TierKind, TieredCache};
/// use cache::{KeyBuilder, Ttl};
///
/// let redis = RedisServer::spawn(); // a throwaway redis-server, killed on drop
/// let l1 = MokaTier::builder().build().unwrap();
/// let l2 = RedisTier::builder(redis.url()).prefix("app").build().unwrap();
/// let both = TieredCache::builder(l1.clone(), l2.clone()).build();
///
/// let key = KeyBuilder::new("app").unwrap().namespace("pet").unwrap().id(1);
/// l2.set(&key, Entry::new(&b"rex"[..], 2, 0), Ttl::secs(60)).await.unwrap();
/// assert_eq!(both.get(&key).await.unwrap().unwrap().tier, TierKind::L2);
/// assert_eq!(both.get(&key).await.unwrap().unwrap().tier, TierKind::L1); // promoted
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct TieredCache {
    inner: Arc<TieredCacheBuilder>,
    l1_on: L1Switch,
}

impl TieredCache {
    /// A builder over the tiers `l1` (near) and `l2` (shared).
    pub fn builder(l1: impl Cache, l2: impl Cache) -> TieredCacheBuilder {
        TieredCacheBuilder {
            l1: Arc::new(l1),
            l2: Arc::new(l2),
            l1_max_ttl: None,
        }
    }

    /// The switch that bypasses L1 (see [`L1Switch`]).
    #[must_use]
    pub fn l1_switch(&self) -> L1Switch {
        self.l1_on.clone()
    }

    /// The L1 half of a writer's store, once the shared tier took it: stores `entry` in
    /// L1 unless L1's copy was invalidated since `token` (false then). While L1 is
    /// bypassed (this instance cannot hear other instances' writes), it must not gain a
    /// copy that could outlive one: only its guard advances, so racing fills are
    /// refused all the same.
    pub(crate) async fn replace_local(
        &self,
        key: &Key,
        entry: Entry,
        ttl: Ttl,
        token: &FillToken,
    ) -> bool {
        if self.l1_on.is_on() {
            let stored = self
                .inner
                .l1
                .replace(key, entry, self.l1_ttl(ttl), token)
                .await;
            swallow("l1", "replace", stored.map(Some)).unwrap_or(false)
        } else {
            swallow(
                "l1",
                "invalidate",
                self.inner.l1.invalidate(key).await.map(Some),
            );
            true
        }
    }

    fn l1_ttl(&self, ttl: Ttl) -> Ttl {
        self.inner.l1_max_ttl.map_or(ttl, |cap| ttl.min(cap))
    }

    /// Copies an L2 hit into L1, unless L1's copy of the key was invalidated since
    /// `seen` was taken (before the L2 read): a promotion is a fill, and must not
    /// resurrect a value an invalidation arriving meanwhile removed.
    async fn promote(&self, key: &Key, hit: &Hit, seen: &FillToken) {
        if !self.l1_on.is_on() {
            return;
        }
        let cap = self
            .inner
            .l1_max_ttl
            .unwrap_or(Ttl::secs(Ttl::MAX.as_secs()));
        let Some(ttl) = hit.ttl_left.and_then(|left| cap.clamp_to(left)) else {
            return;
        };
        let promoted = self
            .inner
            .l1
            .set_if_unchanged(key, hit.entry.clone(), ttl, seen)
            .await;
        if let Err(e) = promoted {
            tracing::debug!(key = %key, error = %e, "promotion into L1 failed");
        }
    }
}

fn swallow<T: Default>(tier: &'static str, op: &'static str, r: Result<T, CacheError>) -> T {
    r.unwrap_or_else(|e| {
        tracing::debug!(tier, op, error = %e, "cache tier skipped");
        T::default()
    })
}

#[async_trait]
impl Cache for TieredCache {
    fn name(&self) -> &'static str {
        "l1+l2"
    }

    async fn get(&self, key: &Key) -> Result<Option<Hit>, CacheError> {
        let lease = self.l1_on.lease();
        if self.l1_on.is_on()
            && let Some(hit) = swallow(
                "l1",
                "get",
                self.inner
                    .l1
                    .get(key)
                    .instrument(tracing::trace_span!("cache.lookup", cache.tier = "l1"))
                    .await,
            )
            && self.l1_on.holds(lease)
        {
            return Ok(Some(hit));
        }
        let seen = swallow("l1", "fill_token", self.inner.l1.fill_token(key).await);
        let hit = swallow(
            "l2",
            "get",
            self.inner
                .l2
                .get(key)
                .instrument(tracing::trace_span!("cache.lookup", cache.tier = "l2"))
                .await,
        );
        if let Some(hit) = &hit {
            self.promote(key, hit, &seen).await;
        }
        Ok(hit)
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Hit>>, CacheError> {
        let lease = self.l1_on.lease();
        let mut out = if self.l1_on.is_on() {
            swallow("l1", "get_many", self.inner.l1.get_many(keys).await)
        } else {
            Vec::new()
        };
        if !self.l1_on.holds(lease) {
            out.clear();
        }
        out.resize(keys.len(), None);
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| out[i].is_none()).collect();
        if missing.is_empty() {
            return Ok(out);
        }
        let wanted: Vec<Key> = missing.iter().map(|&i| keys[i].clone()).collect();
        let mut seen = Vec::with_capacity(wanted.len());
        for key in &wanted {
            seen.push(swallow(
                "l1",
                "fill_token",
                self.inner.l1.fill_token(key).await,
            ));
        }
        let found = swallow("l2", "get_many", self.inner.l2.get_many(&wanted).await);
        for ((i, hit), seen) in missing.into_iter().zip(found).zip(&seen) {
            if let Some(hit) = &hit {
                self.promote(&keys[i], hit, seen).await;
            }
            out[i] = hit;
        }
        Ok(out)
    }

    async fn set(&self, key: &Key, entry: Entry, ttl: Ttl) -> Result<(), CacheError> {
        swallow(
            "l2",
            "set",
            self.inner.l2.set(key, entry.clone(), ttl).await,
        );
        if self.l1_on.is_on() {
            swallow(
                "l1",
                "set",
                self.inner.l1.set(key, entry, self.l1_ttl(ttl)).await,
            );
        }
        Ok(())
    }

    async fn fill_token(&self, key: &Key) -> Result<FillToken, CacheError> {
        let l2 = swallow(
            "l2",
            "fill_token",
            self.inner.l2.fill_token(key).await.map(Some),
        );
        let l1 = swallow(
            "l1",
            "fill_token",
            self.inner.l1.fill_token(key).await.map(Some),
        );
        Ok(FillToken {
            l1: l1.and_then(|t| t.l1),
            l2: l2.and_then(|t| t.l2),
        })
    }

    async fn set_if_unchanged(
        &self,
        key: &Key,
        entry: Entry,
        ttl: Ttl,
        token: &FillToken,
    ) -> Result<bool, CacheError> {
        // The shared tier decides: a refused L2 fill means an invalidation happened.
        // Without an L2 token (Redis was unreachable when loading began) L2 is skipped.
        let shared = if token.l2.is_some() {
            self.inner
                .l2
                .set_if_unchanged(key, entry.clone(), ttl, token)
                .await
        } else {
            Ok(true)
        };
        if let Ok(false) = shared {
            return Ok(false);
        }
        if let Err(e) = &shared {
            tracing::debug!(key = %key, error = %e, "guarded L2 fill skipped");
        }
        if !self.l1_on.is_on() {
            return Ok(shared.unwrap_or(false));
        }
        let local = swallow(
            "l1",
            "set_if_unchanged",
            self.inner
                .l1
                .set_if_unchanged(key, entry, self.l1_ttl(ttl), token)
                .await,
        );
        Ok(local)
    }

    async fn replace(
        &self,
        key: &Key,
        entry: Entry,
        ttl: Ttl,
        token: &FillToken,
    ) -> Result<bool, CacheError> {
        // Without an L2 token the shared tier was not reached when the write began: its
        // state is unknown, so the store cannot be guarded there.
        let shared = match token.l2 {
            Some(_) => self.inner.l2.replace(key, entry.clone(), ttl, token).await,
            None => Err(CacheError::Config(
                "no shared fill token: the shared tier was unreachable".into(),
            )),
        };
        if let Ok(false) = shared {
            return Ok(false);
        }
        let local = self.replace_local(key, entry, ttl, token).await;
        shared.map(|_| local)
    }

    async fn invalidate(&self, key: &Key) -> Result<FillToken, CacheError> {
        let shared = self.inner.l2.invalidate(key).await;
        // L1 is invalidated whatever happened to L2: this instance never serves the old copy.
        let l1 = swallow(
            "l1",
            "invalidate",
            self.inner.l1.invalidate(key).await.map(Some),
        );
        Ok(FillToken {
            l1: l1.and_then(|t| t.l1),
            l2: shared?.l2,
        })
    }

    async fn try_lease(&self, key: &Key, owner: &str, ttl: Ttl) -> Result<bool, CacheError> {
        self.inner.l2.try_lease(key, owner, ttl).await
    }

    async fn release_lease(&self, key: &Key, owner: &str) -> Result<(), CacheError> {
        self.inner.l2.release_lease(key, owner).await
    }

    async fn delete(&self, key: &Key) -> Result<(), CacheError> {
        // Shared tier first: a reader between the two steps finds at worst the old L1
        // copy (as before the delete), never re-promotes the old shared one after it.
        swallow("l2", "delete", self.inner.l2.delete(key).await);
        swallow("l1", "delete", self.inner.l1.delete(key).await);
        Ok(())
    }

    async fn clear(&self) -> Result<(), CacheError> {
        let l2 = self.inner.l2.clear().await;
        self.inner.l1.clear().await?;
        l2
    }

    fn stats(&self) -> Vec<TierSnapshot> {
        let mut s = self.inner.l1.stats();
        s.extend(self.inner.l2.stats());
        s
    }

    fn record_decode_failure(&self, tier: TierKind) {
        self.inner.l1.record_decode_failure(tier);
        self.inner.l2.record_decode_failure(tier);
    }
}
