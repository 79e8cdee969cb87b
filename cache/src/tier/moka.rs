//! L1: an in-process tier on `moka::future::Cache`, bounded by bytes, TTL per entry.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::Expiry;
use moka::notification::RemovalCause;

use crate::clock::default_clock;
use crate::stats::{Operation, Outcome};
use crate::tier::{Cache, FillToken, Hit, TierKind};
use crate::{CacheError, Clock, Entry, Key, TierSnapshot, TierStats, Ttl};

/// Invalidation counters are striped by key hash: a collision only refuses a fill.
const GUARD_STRIPES: usize = 1024;

/// Default byte budget of an L1 tier: 64 MiB.
pub const DEFAULT_L1_MAX_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Clone)]
struct Slot {
    entry: Entry,
    /// Clock time after which the entry is dead, whatever moka still holds.
    expires_at: Duration,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<Key, Slot> for PerEntryTtl {
    fn expire_after_create(&self, _: &Key, slot: &Slot, _: Instant) -> Option<Duration> {
        Some(slot.ttl)
    }

    fn expire_after_update(
        &self,
        _: &Key,
        slot: &Slot,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(slot.ttl)
    }
}

/// Builds a [`MokaTier`].
#[must_use]
#[derive(Debug)]
pub struct MokaTierBuilder {
    max_bytes: u64,
    clock: Arc<dyn Clock>,
}

impl Default for MokaTierBuilder {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_L1_MAX_BYTES,
            clock: default_clock(),
        }
    }
}

impl MokaTierBuilder {
    /// The byte budget, against which each entry is charged what it holds in memory
    /// ([`Entry::weight`]: key, payload, tags, decoded copy and moka's bookkeeping).
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// The clock expiry is checked against (tests pass a [`crate::clock::ManualClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The tier, or [`CacheError::Config`] for a zero budget.
    pub fn build(self) -> Result<MokaTier, CacheError> {
        if self.max_bytes == 0 {
            return Err(CacheError::Config("L1 max_bytes must be above 0".into()));
        }
        let stats = Arc::new(TierStats::default());
        let listener_stats = stats.clone();
        let cache = moka::future::Cache::builder()
            .name("l1")
            .max_capacity(self.max_bytes)
            .weigher(|key: &Key, slot: &Slot| {
                u32::try_from(slot.entry.weight(key.as_str().len())).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .eviction_listener(move |_key, _slot, cause| match cause {
                RemovalCause::Size => listener_stats.eviction(),
                RemovalCause::Expired => listener_stats.expiration(),
                RemovalCause::Explicit | RemovalCause::Replaced => {}
            })
            .build();
        Ok(MokaTier {
            inner: Arc::new(Inner {
                cache,
                clock: self.clock,
                stats,
                max_bytes: self.max_bytes,
                stripes: (0..GUARD_STRIPES).map(|_| AtomicU64::new(0)).collect(),
                locks: (0..GUARD_STRIPES)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
                epoch: AtomicU64::new(0),
            }),
        })
    }
}

struct Inner {
    cache: moka::future::Cache<Key, Slot>,
    clock: Arc<dyn Clock>,
    stats: Arc<TierStats>,
    max_bytes: u64,
    /// Invalidation counters per stripe of keys, for the fill-race guard.
    stripes: Box<[AtomicU64]>,
    /// One lock per stripe: a conditional store checks its token and inserts, and an
    /// invalidation counts and deletes, each as one step, so no reader ever sees a
    /// refused fill in between. Only misses, writes and invalidations take it.
    locks: Box<[tokio::sync::Mutex<()>]>,
    /// Advanced by `clear`: every token taken before a flush is stale.
    epoch: AtomicU64,
}

impl Inner {
    fn index(key: &Key) -> usize {
        let h = xxhash_rust::xxh3::xxh3_64(key.as_str().as_bytes());
        (h % GUARD_STRIPES as u64) as usize
    }

    fn stripe(&self, key: &Key) -> &AtomicU64 {
        &self.stripes[Self::index(key)]
    }

    async fn lock(&self, key: &Key) -> tokio::sync::MutexGuard<'_, ()> {
        self.locks[Self::index(key)].lock().await
    }

    fn token(&self, key: &Key) -> (u64, u64) {
        (
            self.epoch.load(Ordering::SeqCst),
            self.stripe(key).load(Ordering::SeqCst),
        )
    }
}

/// The in-process tier. Cheap to clone: clones share the same entries.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use cache::tier::{Cache, Entry, MokaTier};
/// use cache::{KeyBuilder, Ttl};
///
/// let l1 = MokaTier::builder().max_bytes(1 << 20).build().unwrap();
/// let key = KeyBuilder::new("app").unwrap().namespace("pet").unwrap().id(1);
/// l1.set(&key, Entry::new(&b"rex"[..], 2, 0), Ttl::secs(60)).await.unwrap();
/// let hit = l1.get(&key).await.unwrap().unwrap();
/// assert_eq!(hit.entry.payload().as_ref(), b"rex");
/// # });
/// ```
#[derive(Clone)]
pub struct MokaTier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MokaTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MokaTier")
            .field("max_bytes", &self.inner.max_bytes)
            .field("weighted_size", &self.inner.cache.weighted_size())
            .finish()
    }
}

impl MokaTier {
    /// A builder with a 64 MiB budget and the system clock.
    pub fn builder() -> MokaTierBuilder {
        MokaTierBuilder::default()
    }

    /// The configured byte budget.
    #[must_use]
    pub fn max_bytes(&self) -> u64 {
        self.inner.max_bytes
    }

    /// Bytes currently charged (after pending maintenance; see [`MokaTier::run_pending_tasks`]).
    #[must_use]
    pub fn weighted_size(&self) -> u64 {
        self.inner.cache.weighted_size()
    }

    /// Entries currently held (approximate until maintenance runs).
    #[must_use]
    pub fn entry_count(&self) -> u64 {
        self.inner.cache.entry_count()
    }

    /// Runs moka's pending maintenance (evictions, expirations) now.
    pub async fn run_pending_tasks(&self) {
        self.inner.cache.run_pending_tasks().await;
    }
}

#[async_trait]
impl Cache for MokaTier {
    fn name(&self) -> &'static str {
        "l1"
    }

    async fn get(&self, key: &Key) -> Result<Option<Hit>, CacheError> {
        let inner = &self.inner;
        let began = Instant::now();
        let Some(slot) = inner.cache.get(key).await else {
            inner.stats.miss();
            inner.stats.timed(Operation::Get, Outcome::Miss, began);
            return Ok(None);
        };
        let now = inner.clock.now();
        if now >= slot.expires_at {
            inner.cache.invalidate(key).await;
            inner.stats.expiration();
            inner.stats.miss();
            inner.stats.timed(Operation::Get, Outcome::Miss, began);
            return Ok(None);
        }
        inner.stats.hit();
        inner.stats.timed(Operation::Get, Outcome::Hit, began);
        Ok(Some(Hit {
            entry: slot.entry,
            tier: TierKind::L1,
            ttl_left: Some(slot.expires_at - now),
        }))
    }

    async fn set(&self, key: &Key, entry: Entry, ttl: Ttl) -> Result<(), CacheError> {
        let inner = &self.inner;
        let ttl = ttl.as_duration();
        let slot = Slot {
            entry: entry.compacted(),
            expires_at: inner.clock.now() + ttl,
            ttl,
        };
        inner.cache.insert(key.clone(), slot).await;
        inner.stats.set();
        Ok(())
    }

    async fn delete(&self, key: &Key) -> Result<(), CacheError> {
        self.inner.cache.invalidate(key).await;
        self.inner.stats.delete();
        Ok(())
    }

    async fn fill_token(&self, key: &Key) -> Result<FillToken, CacheError> {
        Ok(FillToken {
            l1: Some(self.inner.token(key)),
            l2: None,
        })
    }

    async fn set_if_unchanged(
        &self,
        key: &Key,
        entry: Entry,
        ttl: Ttl,
        token: &FillToken,
    ) -> Result<bool, CacheError> {
        let Some(seen) = token.l1 else {
            return self.set(key, entry, ttl).await.map(|()| true);
        };
        let _locked = self.inner.lock(key).await;
        if self.inner.token(key) != seen {
            return Ok(false);
        }
        self.set(key, entry, ttl).await?;
        Ok(true)
    }

    async fn replace(
        &self,
        key: &Key,
        entry: Entry,
        ttl: Ttl,
        token: &FillToken,
    ) -> Result<bool, CacheError> {
        let _locked = self.inner.lock(key).await;
        if let Some(seen) = token.l1
            && self.inner.token(key) != seen
        {
            return Ok(false);
        }
        // Advance: a reader's fill that took its token before this store is refused.
        self.inner.stripe(key).fetch_add(1, Ordering::SeqCst);
        self.set(key, entry, ttl).await?;
        Ok(true)
    }

    async fn invalidate(&self, key: &Key) -> Result<FillToken, CacheError> {
        let _locked = self.inner.lock(key).await;
        self.inner.stripe(key).fetch_add(1, Ordering::SeqCst);
        self.inner.cache.invalidate(key).await;
        self.inner.stats.delete();
        self.fill_token(key).await
    }

    /// Nothing is shared in-process: single-flight already makes one load per key.
    async fn try_lease(&self, _key: &Key, _owner: &str, _ttl: Ttl) -> Result<bool, CacheError> {
        Ok(true)
    }

    async fn release_lease(&self, _key: &Key, _owner: &str) -> Result<(), CacheError> {
        Ok(())
    }

    async fn clear(&self) -> Result<(), CacheError> {
        self.inner.epoch.fetch_add(1, Ordering::SeqCst);
        self.inner.cache.invalidate_all();
        self.inner.cache.run_pending_tasks().await;
        Ok(())
    }

    fn stats(&self) -> Vec<TierSnapshot> {
        vec![self.inner.stats.snapshot("l1")]
    }

    fn record_decode_failure(&self, tier: TierKind) {
        if tier == TierKind::L1 {
            self.inner.stats.decode_failure();
        }
    }
}
