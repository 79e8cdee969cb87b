//! The typed face of a cache: serde values in, serde values out, loads coalesced.
//!
//! [`TypedCache`] is the layer under [`crate::CacheClient`]: it adds codecs, TTL jitter,
//! single-flight loads and the fill-race guard to any [`Cache`], but it knows nothing of
//! other instances. A `TypedCache` over an L1 in a service that runs twice serves stale
//! reads: use [`crate::CacheClient`] there, which keeps every instance's L1 coherent.
//!
//! One mechanism a file: [`single_flight`](self) loads, batch loads (`many.rs`), guarded
//! stores (`guarded.rs`), the distributed lease (`lease.rs`), refresh-ahead
//! (`refresh.rs`) and what a read returns (`fetched.rs`).

mod fetched;
mod guarded;
mod lease;
mod many;
mod read;
mod refresh;
mod single_flight;

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument as _;

pub use self::fetched::{Fetched, Source};
pub use self::lease::LeaseConfig;
pub use self::read::{ReadOptions, TagClock, TagsOf, Validate, Verdict};
use self::single_flight::Flights;
use crate::clock::default_clock;
use crate::codec::{Bincode, Codec, RAW_ID};
use crate::stale::{StaleConfig, StaleStore};
use crate::stats::{CacheStats, LoaderStats};
use crate::tier::{Cache, Entry, Hit, TierKind};
use crate::{CacheError, Clock, Key, Ttl};

/// What a cached value must be: encodable, decodable, cloneable and shareable across
/// tasks. Every type that is, is one.
pub trait CacheValue: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> CacheValue for T {}

/// Builds a [`TypedCache`].
#[must_use]
#[derive(Debug)]
pub struct TypedCacheBuilder<C: Codec = Bincode> {
    cache: Arc<dyn Cache>,
    codec: C,
    jitter_percent: u8,
    clock: Arc<dyn Clock>,
    fill_guard: bool,
    lease: Option<LeaseConfig>,
    stale: Option<StaleConfig>,
    refresh_ahead: Option<u8>,
}

impl<C: Codec> TypedCacheBuilder<C> {
    /// The codec of payloads (default [`Bincode`]).
    pub fn codec<D: Codec>(self, codec: D) -> TypedCacheBuilder<D> {
        TypedCacheBuilder {
            cache: self.cache,
            codec,
            jitter_percent: self.jitter_percent,
            clock: self.clock,
            fill_guard: self.fill_guard,
            lease: self.lease,
            stale: self.stale,
            refresh_ahead: self.refresh_ahead,
        }
    }

    /// Shortens every TTL written by a random amount of up to `percent` % (default 0).
    pub fn jitter_percent(mut self, percent: u8) -> Self {
        self.jitter_percent = percent.min(100);
        self
    }

    /// The clock of entry timestamps.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Whether loads fill through the fill-race guard (default on; see
    /// [`crate::tier::FillToken`]). Off, a slow load can fill a value a writer has already
    /// replaced; the benchmarks switch it off to show the difference.
    pub fn fill_guard(mut self, on: bool) -> Self {
        self.fill_guard = on;
        self
    }

    /// Coalesces misses across instances with a lease in the shared tier (default off).
    pub fn lease(mut self, lease: LeaseConfig) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Serve-stale: when a load fails (or exceeds [`StaleConfig::load_timeout`]), answer
    /// with the last good value if it is at most [`StaleConfig::max_stale`] old, as
    /// [`Source::Stale`] (default off). A zero `max_stale` or `max_bytes` leaves it off.
    pub fn serve_stale(mut self, config: StaleConfig) -> Self {
        self.stale = Some(config);
        self
    }

    /// Refresh-ahead (stale-while-revalidate before expiry): a hit through
    /// [`TypedCache::get_or_refresh`] with less than `percent` % of its TTL left is
    /// served, and reloaded in the background (once per key at a time, through the
    /// fill-race guard), so a hot key does not expire under load. Default off; `percent`
    /// is clamped to 1..=99.
    pub fn refresh_ahead(mut self, percent: u8) -> Self {
        self.refresh_ahead = Some(percent.clamp(1, 99));
        self
    }

    /// The typed cache.
    pub fn build(self) -> TypedCache<C> {
        TypedCache {
            inner: Arc::new(Inner {
                cache: self.cache,
                codec: self.codec,
                jitter_percent: self.jitter_percent,
                clock: self.clock,
                fill_guard: self.fill_guard,
                lease: self.lease,
                stale: self.stale.and_then(StaleStore::new),
                refresh_ahead: self.refresh_ahead,
                refreshing: Mutex::default(),
                owner: format!("{:016x}", rand::random::<u64>()),
                flights: Mutex::default(),
                loader: LoaderStats::default(),
            }),
        }
    }
}

struct Inner<C> {
    cache: Arc<dyn Cache>,
    codec: C,
    jitter_percent: u8,
    clock: Arc<dyn Clock>,
    fill_guard: bool,
    lease: Option<LeaseConfig>,
    stale: Option<StaleStore>,
    refresh_ahead: Option<u8>,
    /// Keys being refreshed in the background.
    refreshing: Mutex<HashSet<Key>>,
    /// Who this cache is when it holds a lease.
    owner: String,
    flights: Mutex<HashMap<Key, Flights>>,
    loader: LoaderStats,
}

/// Typed reads and writes of serde values over any [`Cache`], with single-flight loads.
///
/// Tier failures never reach the caller: a failed read is a miss, a failed write is
/// skipped (both logged and counted by the tier). Errors come back only from the codec
/// (a value that cannot be encoded) and from loaders.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use cache::tier::MokaTier;
/// use cache::typed::TypedCache;
/// use cache::{KeyBuilder, Source, Ttl};
///
/// let cache = TypedCache::builder(MokaTier::builder().build().unwrap()).build();
/// let key = KeyBuilder::new("app").unwrap().namespace("pet").unwrap().id(7);
///
/// let first = cache
///     .get_or_load(&key, Ttl::secs(60), || async { Ok::<_, std::io::Error>("Rex".to_string()) })
///     .await
///     .unwrap();
/// assert_eq!((first.value.as_str(), first.source), ("Rex", Source::Miss));
///
/// let second = cache
///     .get_or_load(&key, Ttl::secs(60), || async { Ok::<String, std::io::Error>(unreachable!()) })
///     .await
///     .unwrap();
/// assert_eq!(second.source, Source::HitL1);
/// assert_eq!(cache.stats().loader.calls, 1);
/// # });
/// ```
pub struct TypedCache<C: Codec = Bincode> {
    inner: Arc<Inner<C>>,
}

impl<C: Codec> Clone for TypedCache<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<C: Codec> std::fmt::Debug for TypedCache<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedCache")
            .field("cache", &self.inner.cache)
            .field("codec", &C::NAME)
            .finish_non_exhaustive()
    }
}

impl TypedCache<Bincode> {
    /// A builder over `cache` (a tier, [`crate::tier::TieredCache`] or [`crate::tier::NoCache`]).
    pub fn builder(cache: impl Cache) -> TypedCacheBuilder<Bincode> {
        Self::builder_dyn(Arc::new(cache))
    }

    /// A builder over a cache chosen at run time.
    pub fn builder_dyn(cache: Arc<dyn Cache>) -> TypedCacheBuilder<Bincode> {
        TypedCacheBuilder {
            cache,
            codec: Bincode,
            jitter_percent: 0,
            clock: default_clock(),
            fill_guard: true,
            lease: None,
            stale: None,
            refresh_ahead: None,
        }
    }
}

impl<C: Codec> TypedCache<C> {
    /// The untyped cache underneath.
    #[must_use]
    pub fn cache(&self) -> &Arc<dyn Cache> {
        &self.inner.cache
    }

    /// Counters of every tier and of the loaders.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        let mut loader = self.inner.loader.snapshot();
        loader.serve_stale_bound = self.inner.stale.as_ref().map(StaleStore::max_stale);
        CacheStats {
            tiers: self.inner.cache.stats(),
            loader,
        }
    }

    /// The value under `key`, if a tier has one that decodes as `T`.
    pub async fn get<T>(&self, key: &Key) -> Option<Fetched<T>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.lookup(key, None)
            .await
            .filter(|(_, _, verdict)| *verdict == Verdict::Current)
            .map(|(fetched, _, _)| fetched)
    }

    /// A hit, how long it has left in the tier that had it (when the tier knows), and
    /// what `validate` made of it. An invalid hit is no hit.
    async fn lookup<T>(
        &self,
        key: &Key,
        validate: Option<&dyn Validate>,
    ) -> Option<(Fetched<T>, Option<std::time::Duration>, Verdict)>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        // TRACE: with no subscriber asking for it (no trace export, no RUST_LOG=trace),
        // the span is one check of its static callsite.
        let span = tracing::trace_span!("cache.lookup", cache.tier = self.inner.cache.name());
        match self.inner.cache.get(key).instrument(span).await {
            Ok(Some(hit)) => self.judged(key, hit, validate).await,
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(key = %key, error = %e, "cache read failed: treated as a miss");
                None
            }
        }
    }

    /// `hit` as `validate` judges it, decoded; an invalid or undecodable hit is no hit.
    async fn judged<T>(
        &self,
        key: &Key,
        hit: Hit,
        validate: Option<&dyn Validate>,
    ) -> Option<(Fetched<T>, Option<std::time::Duration>, Verdict)>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let verdict = match validate {
            Some(v) => v.validate(key, &hit).await,
            None => Verdict::Current,
        };
        if verdict == Verdict::Invalid {
            return None;
        }
        if let (Some(stale), TierKind::L2, Verdict::Current) =
            (&self.inner.stale, hit.tier, verdict)
        {
            stale.record(key, hit.entry.clone()).await;
        }
        let left = hit.ttl_left;
        let mut fetched = self.decode(key, hit)?;
        if matches!(verdict, Verdict::Stale(_)) {
            fetched.source = Source::Stale;
        }
        Some((fetched, left, verdict))
    }

    fn decode<T>(&self, key: &Key, hit: Hit) -> Option<Fetched<T>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        match self.value_of::<T>(&hit.entry) {
            Ok(value) => Some(Fetched {
                value,
                source: Source::from(hit.tier),
            }),
            Err(e) => {
                self.inner.cache.record_decode_failure(hit.tier);
                tracing::warn!(key = %key, tier = ?hit.tier, error = %e, "cached entry does not decode: treated as a miss");
                None
            }
        }
    }

    /// The value in `entry`: its memo when it has one, else decoded once and memoised.
    fn value_of<T>(&self, entry: &Entry) -> Result<T, CacheError>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        if entry.codec_id() == RAW_ID {
            // Raw bytes: the payload is the value.
            let mut slot: Option<T> = None;
            if let Some(s) = (&mut slot as &mut dyn Any).downcast_mut::<Option<Bytes>>() {
                *s = Some(entry.payload().clone());
            }
            return slot.ok_or_else(|| CacheError::Decode("raw bytes read as another type".into()));
        }
        if entry.codec_id() != C::ID {
            return Err(CacheError::Decode(format!(
                "entry written by codec {} read with codec {}",
                entry.codec_id(),
                C::ID
            )));
        }
        if let Some(v) = entry.memo::<T>() {
            return Ok(T::clone(&v));
        }
        let v = Arc::new(self.inner.codec.decode::<T>(entry.payload())?);
        entry.set_memo(v.clone());
        Ok(T::clone(&v))
    }

    /// The entry of a loaded `value`, carrying its tags (`stamp`) if it has any.
    fn stamped_entry<T>(
        &self,
        value: &T,
        stamp: Option<(u64, Vec<crate::Tag>)>,
    ) -> Result<Entry, CacheError>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        let entry = self.entry(value)?;
        Ok(match stamp {
            Some((as_of, tags)) => entry.with_tags(as_of, tags),
            None => entry,
        })
    }

    fn entry<T>(&self, value: &T) -> Result<Entry, CacheError>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        if let Some(raw) = (value as &dyn Any).downcast_ref::<Bytes>() {
            return Ok(Entry::new(
                raw.clone(),
                RAW_ID,
                self.inner.clock.now_millis(),
            ));
        }
        let bytes = self.inner.codec.encode(value)?;
        let entry = Entry::new(bytes, C::ID, self.inner.clock.now_millis());
        entry.set_memo(Arc::new(value.clone()));
        Ok(entry)
    }

    /// Stores `value` under `key` in every tier for `ttl` (shortened by the jitter).
    ///
    /// Only an encoding failure is an error; a tier that fails is logged and skipped.
    pub async fn set<T>(&self, key: &Key, value: &T, ttl: Ttl) -> Result<(), CacheError>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        let entry = self.entry(value)?;
        self.store(key, entry, ttl).await;
        Ok(())
    }

    async fn store(&self, key: &Key, entry: Entry, ttl: Ttl) {
        if let Some(stale) = &self.inner.stale {
            stale.record(key, entry.clone()).await;
        }
        let ttl = ttl.jittered(self.inner.jitter_percent);
        if let Err(e) = self.inner.cache.set(key, entry, ttl).await {
            tracing::debug!(key = %key, error = %e, "cache write skipped");
        }
    }

    /// Removes `key` from every tier. A tier that fails is logged and skipped.
    pub async fn delete(&self, key: &Key) {
        self.forget_stale(key).await;
        if let Err(e) = self.inner.cache.delete(key).await {
            tracing::debug!(key = %key, error = %e, "cache delete skipped");
        }
    }

    /// Empties every tier (Redis: this cache's prefix only) and the serve-stale copies.
    pub async fn clear(&self) -> Result<(), CacheError> {
        if let Some(stale) = &self.inner.stale {
            stale.clear();
        }
        self.inner.cache.clear().await
    }

    /// The entry of `value` (its codec's bytes), as a fill would store it.
    pub(crate) fn encode<T>(&self, value: &T) -> Result<Entry, CacheError>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        self.entry(value)
    }

    /// The time on the clock of entry timestamps, in ms since the Unix epoch.
    pub(crate) fn now_millis(&self) -> u64 {
        self.inner.clock.now_millis()
    }

    /// `ttl` shortened by the jitter, as every store shortens it.
    pub(crate) fn jittered(&self, ttl: Ttl) -> Ttl {
        ttl.jittered(self.inner.jitter_percent)
    }

    /// Forgets the serve-stale copy of `key` (a write replaces it).
    pub(crate) async fn forget_stale_copy(&self, key: &Key) {
        self.forget_stale(key).await;
    }

    /// Records `entry` as the serve-stale copy of `key` (a write stored it).
    pub(crate) async fn record_stale_copy(&self, key: &Key, entry: Entry) {
        self.record_stale(key, entry).await;
    }

    async fn record_stale(&self, key: &Key, entry: Entry) {
        if let Some(stale) = &self.inner.stale {
            stale.record(key, entry).await;
        }
    }

    async fn forget_stale(&self, key: &Key) {
        if let Some(stale) = &self.inner.stale {
            stale.forget(key).await;
        }
    }

    /// The last good value of `key` and how long ago it was loaded, when serve-stale is
    /// on and has a young enough one.
    async fn stale_value<T>(&self, key: &Key) -> Option<(T, std::time::Duration)>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let entry = self
            .inner
            .stale
            .as_ref()?
            .lookup(key, self.inner.clock.as_ref())
            .await?;
        let age_ms = self
            .inner
            .clock
            .now_millis()
            .saturating_sub(entry.created_ms());
        let value = self.value_of::<T>(&entry).ok()?;
        Some((value, std::time::Duration::from_millis(age_ms)))
    }
}
