//! The typed face of a cache: serde values in, serde values out, loads coalesced.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use crate::clock::default_clock;
use crate::stale::{StaleConfig, StaleStore};
use crate::stats::LoaderStats;
use crate::tier::{Cache, FillToken, Hit, TierKind};
use crate::{Bincode, CacheError, CacheStats, Clock, Codec, Entry, Key, Ttl};

/// Where a value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Source {
    /// The in-process tier.
    HitL1,
    /// The shared tier.
    HitL2,
    /// Not cached: the loader ran (or another caller's load was awaited).
    Miss,
    /// Caching is off ([`crate::NoCache`]): the loader ran.
    Bypass,
    /// The loader failed or timed out and the last good value was served instead
    /// (serve-stale, see [`crate::StaleConfig`]): it may be older than the source.
    Stale,
}

impl Source {
    /// True for [`Source::HitL1`] and [`Source::HitL2`].
    #[must_use]
    pub fn is_hit(self) -> bool {
        matches!(self, Self::HitL1 | Self::HitL2)
    }

    /// True for [`Source::Stale`]: a fallback that may be older than the source.
    #[must_use]
    pub fn is_stale(self) -> bool {
        self == Self::Stale
    }

    /// The `X-Cache` header value: `HIT-L1`, `HIT-L2`, `MISS`, `BYPASS` or `STALE`.
    #[must_use]
    pub fn as_header(self) -> &'static str {
        match self {
            Self::HitL1 => "HIT-L1",
            Self::HitL2 => "HIT-L2",
            Self::Miss => "MISS",
            Self::Bypass => "BYPASS",
            Self::Stale => "STALE",
        }
    }
}

impl From<TierKind> for Source {
    fn from(t: TierKind) -> Self {
        match t {
            TierKind::L1 => Self::HitL1,
            TierKind::L2 => Self::HitL2,
        }
    }
}

/// A value and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched<T> {
    /// The value.
    pub value: T,
    /// Which tier answered, or whether the loader ran.
    pub source: Source,
}

/// Which conditional store: a reader's fill, or a writer's replace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Guarded {
    Fill,
    Replace,
}

type Shared = Arc<dyn Any + Send + Sync>;
/// A load's value, where it came from, and whether its fill was refused because the
/// key was invalidated while it loaded (callers who joined late must not take it).
type Landed = (Shared, Source, bool);
type Flight = Arc<OnceCell<Result<Landed, CacheError>>>;

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

/// The distributed loading lease: N instances missing one key cause one load.
///
/// The instance that takes the lease (`SET {key}:lease NX PX ttl`) loads; the others
/// re-read the shared tier every `poll` for up to `wait`, then load themselves (so a
/// lease holder that dies costs at most `wait`, and its lease expires after `ttl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// How long a lease lives if never released.
    pub ttl: Ttl,
    /// How long a caller without the lease waits for the holder's value.
    pub wait: std::time::Duration,
    /// How often it looks.
    pub poll: std::time::Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            ttl: Ttl::secs(5),
            wait: std::time::Duration::from_secs(2),
            poll: std::time::Duration::from_millis(5),
        }
    }
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
    /// [`crate::FillToken`]). Off, a slow load can fill a value a writer has already
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
    refreshing: Mutex<std::collections::HashSet<Key>>,
    /// Who this cache is when it holds a lease.
    owner: String,
    flights: Mutex<HashMap<Key, Flight>>,
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
/// use cache::{KeyBuilder, MokaTier, Source, Ttl, TypedCache};
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
    /// A builder over `cache` (a tier, [`crate::TieredCache`] or [`crate::NoCache`]).
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
        CacheStats {
            tiers: self.inner.cache.stats(),
            loader: self.inner.loader.snapshot(),
        }
    }

    /// The value under `key`, if a tier has one that decodes as `T`.
    pub async fn get<T>(&self, key: &Key) -> Option<Fetched<T>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.lookup(key).await.map(|(fetched, _)| fetched)
    }

    /// A hit and how long it has left in the tier that had it, when the tier knows.
    async fn lookup<T>(&self, key: &Key) -> Option<(Fetched<T>, Option<std::time::Duration>)>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        match self.inner.cache.get(key).await {
            Ok(Some(hit)) => {
                if let (Some(stale), TierKind::L2) = (&self.inner.stale, hit.tier) {
                    stale.record(key, hit.entry.clone()).await;
                }
                let left = hit.ttl_left;
                self.decode(key, hit).map(|fetched| (fetched, left))
            }
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(key = %key, error = %e, "cache read failed: treated as a miss");
                None
            }
        }
    }

    /// Like [`TypedCache::get_or_load`]; with [`TypedCacheBuilder::refresh_ahead`], a hit
    /// close to its expiry is served and reloaded in the background, so readers of a
    /// hot key never wait for the source. The loader must be callable again and
    /// `'static` (it may run on a background task).
    pub async fn get_or_refresh<T, F, Fut, E>(
        &self,
        key: &Key,
        ttl: Ttl,
        loader: F,
    ) -> Result<Fetched<T>, CacheError>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
    {
        let Some((hit, left)) = self.lookup::<T>(key).await else {
            return self.get_or_load(key, ttl, loader).await;
        };
        if let (Some(percent), Some(left)) = (self.inner.refresh_ahead, left) {
            let threshold = ttl.as_duration() * u32::from(percent) / 100;
            if left < threshold && self.refreshing().insert(key.clone()) {
                let this = self.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    this.refresh(&key, ttl, loader).await;
                    this.refreshing().remove(&key);
                });
            }
        }
        Ok(hit)
    }

    fn refreshing(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<Key>> {
        self.inner
            .refreshing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A background reload: guarded like any fill, so it never overwrites a write.
    async fn refresh<T, F, Fut, E>(&self, key: &Key, ttl: Ttl, loader: F)
    where
        T: Serialize + Clone + Send + Sync + 'static,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let token = self.inner.cache.fill_token(key).await.unwrap_or_default();
        self.inner.loader.calls.fetch_add(1, Relaxed);
        self.inner.loader.refreshes.fetch_add(1, Relaxed);
        match loader().await {
            Ok(value) => {
                self.fill(key, &value, ttl, Some(&token)).await;
            }
            Err(e) => {
                self.inner.loader.errors.fetch_add(1, Relaxed);
                let e: Box<dyn std::error::Error + Send + Sync> = e.into();
                tracing::warn!(key = %key, error = %e, "background refresh failed: the entry expires as usual");
            }
        }
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

    fn entry<T>(&self, value: &T) -> Result<Entry, CacheError>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
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

    /// Removes `key` from every tier and refuses fills based on loads that began before
    /// (see [`FillToken`]). Returns the key's state after the invalidation, for a writer
    /// that wants to store its own value with [`TypedCache::set_if_unchanged`].
    pub async fn invalidate(&self, key: &Key) -> FillToken {
        // Readers arriving from now on start a new load instead of joining one that
        // may have read the source before this write.
        self.flights().remove(key);
        self.forget_stale(key).await;
        self.inner.cache.invalidate(key).await.unwrap_or_else(|e| {
            tracing::debug!(key = %key, error = %e, "cache invalidation skipped");
            FillToken::default()
        })
    }

    /// Stores `value` only if `key` was not invalidated since `token`. Returns whether it
    /// was stored; only an encoding failure is an error.
    pub async fn set_if_unchanged<T>(
        &self,
        key: &Key,
        value: &T,
        ttl: Ttl,
        token: &FillToken,
    ) -> Result<bool, CacheError>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        self.store_if_unchanged(key, value, ttl, token, Guarded::Fill)
            .await
    }

    /// A writer's store of `value` (see [`Cache::replace`]): lands only if `key` was not
    /// invalidated since `token`, and refuses the fills of loads that began before it.
    pub async fn replace<T>(
        &self,
        key: &Key,
        value: &T,
        ttl: Ttl,
        token: &FillToken,
    ) -> Result<bool, CacheError>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        self.flights().remove(key);
        self.store_if_unchanged(key, value, ttl, token, Guarded::Replace)
            .await
    }

    async fn store_if_unchanged<T>(
        &self,
        key: &Key,
        value: &T,
        ttl: Ttl,
        token: &FillToken,
        how: Guarded,
    ) -> Result<bool, CacheError>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        let entry = self.entry(value)?;
        Ok(self
            .guarded_store(key, entry, ttl, token, how)
            .await
            .unwrap_or_else(|e| {
                tracing::debug!(key = %key, error = %e, ?how, "guarded cache write skipped");
                false
            }))
    }

    /// Stores `entry` through the guard (`how`), keeping the serve-stale copy in step:
    /// recorded when it landed, forgotten when a write's value did not.
    async fn guarded_store(
        &self,
        key: &Key,
        entry: Entry,
        ttl: Ttl,
        token: &FillToken,
        how: Guarded,
    ) -> Result<bool, CacheError> {
        let ttl = ttl.jittered(self.inner.jitter_percent);
        let cache = &self.inner.cache;
        let stored = match how {
            Guarded::Fill => cache.set_if_unchanged(key, entry.clone(), ttl, token).await,
            Guarded::Replace => cache.replace(key, entry.clone(), ttl, token).await,
        };
        match stored {
            Ok(true) => self.record_stale(key, entry).await,
            Ok(false) | Err(_) if how == Guarded::Replace => self.forget_stale(key).await,
            _ => {}
        }
        stored
    }

    /// Empties every tier (Redis: this cache's prefix only) and the serve-stale copies.
    pub async fn clear(&self) -> Result<(), CacheError> {
        if let Some(stale) = &self.inner.stale {
            stale.clear();
        }
        self.inner.cache.clear().await
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

    /// The last good value of `key`, when serve-stale is on and has a young enough one.
    async fn stale_value<T>(&self, key: &Key) -> Option<T>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let entry = self
            .inner
            .stale
            .as_ref()?
            .lookup(key, self.inner.clock.as_ref())
            .await?;
        self.value_of::<T>(&entry).ok()
    }

    /// The cached value under `key`, or the loader's, stored for `ttl`.
    ///
    /// Concurrent misses on one key in this process run `loader` once; the other callers
    /// wait for its result. A loader error reaches every waiter as
    /// [`CacheError::Loader`] and is not cached. If the caller running the loader is
    /// cancelled, a waiter takes over. With the fill guard on (the default), the loaded
    /// value is stored only if the key was not invalidated while it loaded.
    pub async fn get_or_load<T, F, Fut, E>(
        &self,
        key: &Key,
        ttl: Ttl,
        loader: F,
    ) -> Result<Fetched<T>, CacheError>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.get_or_load_with_ttl(key, |_: &T| Some(ttl), loader)
            .await
    }

    /// Like [`TypedCache::get_or_load`], with the TTL chosen from the loaded value
    /// (`None`: do not cache it). Negative caching is `Option<T>` values with a short
    /// TTL for `None`.
    pub async fn get_or_load_with_ttl<T, F, Fut, E, P>(
        &self,
        key: &Key,
        ttl_for: P,
        loader: F,
    ) -> Result<Fetched<T>, CacheError>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
        P: Fn(&T) -> Option<Ttl>,
    {
        if let Some(hit) = self.get::<T>(key).await {
            return Ok(hit);
        }
        let miss = if self.inner.cache.is_bypass() {
            Source::Bypass
        } else {
            Source::Miss
        };
        let mut loader = Some(loader);
        for attempt in 0.. {
            let flight = {
                let mut flights = self.flights();
                flights.entry(key.clone()).or_default().clone()
            };
            let mut led = false;
            let landed = flight
                .get_or_init(|| {
                    led = true;
                    let loader = loader.take();
                    let ttl_for = &ttl_for;
                    async {
                        let result = match loader {
                            Some(loader) => self.load_and_fill(key, ttl_for, loader).await,
                            None => Err(CacheError::Config("loader already taken".into())),
                        };
                        self.end_flight(key, &flight);
                        result
                    }
                })
                .await
                .clone();
            if !led {
                self.inner.loader.coalesced.fetch_add(1, Relaxed);
            }
            let (shared, source, superseded) = match landed {
                Ok(landed) => landed,
                Err(e) => {
                    if let Some(value) = self.stale_value::<T>(key).await {
                        self.inner.loader.stale_served.fetch_add(1, Relaxed);
                        tracing::warn!(key = %key, error = %e, "load failed: serving the last good value");
                        return Ok(Fetched {
                            value,
                            source: Source::Stale,
                        });
                    }
                    return Err(e);
                }
            };
            // We joined someone else's load and a write overtook it: our read may have
            // begun after that write, so load again rather than return older data.
            if !led && superseded && attempt < 2 && loader.is_some() {
                continue;
            }
            let source = if source.is_hit() { source } else { miss };
            if let Ok(v) = shared.downcast::<T>() {
                return Ok(Fetched {
                    value: T::clone(&v),
                    source,
                });
            }
            // Another caller loaded a different type under this key: load our own.
            let loader = loader
                .take()
                .ok_or_else(|| CacheError::Config("loader type mismatch".into()))?;
            let (v, _, _) = self.load_and_fill(key, &ttl_for, loader).await?;
            let v = v
                .downcast::<T>()
                .map_err(|_| CacheError::Config("loader type mismatch".into()))?;
            return Ok(Fetched {
                value: T::clone(&v),
                source: miss,
            });
        }
        unreachable!("the loop returns")
    }

    fn flights(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Flight>> {
        // The map holds plain values: a panic elsewhere cannot leave it inconsistent.
        self.inner
            .flights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn end_flight(&self, key: &Key, flight: &Flight) {
        let mut flights = self.flights();
        if flights.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            flights.remove(key);
        }
    }

    /// With a lease configured: take it, or wait for its holder's value in the shared
    /// tier. Returns a value found while waiting, or `None` when this caller must load
    /// (and whether it holds the lease).
    async fn await_lease<T>(&self, key: &Key) -> (Option<Fetched<T>>, bool)
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let Some(lease) = self.inner.lease else {
            return (None, false);
        };
        let deadline = tokio::time::Instant::now() + lease.wait;
        loop {
            match self
                .inner
                .cache
                .try_lease(key, &self.inner.owner, lease.ttl)
                .await
            {
                Ok(true) => return (None, true),
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(key = %key, error = %e, "lease unavailable: loading without it");
                    return (None, false);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return (None, false);
            }
            tokio::time::sleep(lease.poll).await;
            if let Some(hit) = self.get::<T>(key).await {
                return (Some(hit), false);
            }
        }
    }

    async fn load_and_fill<T, F, Fut, E, P>(
        &self,
        key: &Key,
        ttl_for: &P,
        loader: F,
    ) -> Result<Landed, CacheError>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
        P: Fn(&T) -> Option<Ttl>,
    {
        let (found, leased) = self.await_lease::<T>(key).await;
        if let Some(hit) = found {
            return Ok((Arc::new(hit.value), hit.source, false));
        }
        let token = if self.inner.fill_guard {
            Some(self.inner.cache.fill_token(key).await.unwrap_or_default())
        } else {
            None
        };
        self.inner.loader.calls.fetch_add(1, Relaxed);
        let timeout = self.inner.stale.as_ref().and_then(|s| s.load_timeout);
        let loaded: Result<T, Box<dyn std::error::Error + Send + Sync>> = match timeout {
            None => loader().await.map_err(Into::into),
            Some(limit) => match tokio::time::timeout(limit, loader()).await {
                Ok(loaded) => loaded.map_err(Into::into),
                Err(_) => {
                    self.inner.loader.timeouts.fetch_add(1, Relaxed);
                    Err(format!("the load took longer than {limit:?}").into())
                }
            },
        };
        let result = match loaded {
            Ok(value) => {
                let refused = match ttl_for(&value) {
                    Some(ttl) => !self.fill(key, &value, ttl, token.as_ref()).await,
                    None => false,
                };
                Ok((Arc::new(value) as Shared, Source::Miss, refused))
            }
            Err(e) => {
                self.inner.loader.errors.fetch_add(1, Relaxed);
                Err(CacheError::Loader(Arc::from(e)))
            }
        };
        if leased && let Err(e) = self.inner.cache.release_lease(key, &self.inner.owner).await {
            tracing::debug!(key = %key, error = %e, "lease release failed: it expires by itself");
        }
        result
    }

    /// Stores a loaded value; false only when the guard refused it (an invalidation
    /// happened while it loaded).
    async fn fill<T>(&self, key: &Key, value: &T, ttl: Ttl, token: Option<&FillToken>) -> bool
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        let entry = match self.entry(value) {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "loaded value cannot be encoded: not cached");
                return true;
            }
        };
        let Some(token) = token else {
            self.store(key, entry, ttl).await;
            return true;
        };
        match self
            .guarded_store(key, entry, ttl, token, Guarded::Fill)
            .await
        {
            Ok(true) => true,
            Ok(false) => {
                tracing::debug!(key = %key, "fill refused: the key was invalidated while loading");
                false
            }
            Err(e) => {
                tracing::debug!(key = %key, error = %e, "guarded fill skipped");
                true
            }
        }
    }
}
