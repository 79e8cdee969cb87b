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
use crate::stats::LoaderStats;
use crate::tier::{Cache, Hit, TierKind};
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
}

impl Source {
    /// True for [`Source::HitL1`] and [`Source::HitL2`].
    #[must_use]
    pub fn is_hit(self) -> bool {
        matches!(self, Self::HitL1 | Self::HitL2)
    }

    /// The `X-Cache` header value: `HIT-L1`, `HIT-L2`, `MISS` or `BYPASS`.
    #[must_use]
    pub fn as_header(self) -> &'static str {
        match self {
            Self::HitL1 => "HIT-L1",
            Self::HitL2 => "HIT-L2",
            Self::Miss => "MISS",
            Self::Bypass => "BYPASS",
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

type Shared = Arc<dyn Any + Send + Sync>;
type Flight = Arc<OnceCell<Result<Shared, CacheError>>>;

/// Builds a [`TypedCache`].
#[must_use]
#[derive(Debug)]
pub struct TypedCacheBuilder<C: Codec = Bincode> {
    cache: Arc<dyn Cache>,
    codec: C,
    jitter_percent: u8,
    clock: Arc<dyn Clock>,
}

impl<C: Codec> TypedCacheBuilder<C> {
    /// The codec of payloads (default [`Bincode`]).
    pub fn codec<D: Codec>(self, codec: D) -> TypedCacheBuilder<D> {
        TypedCacheBuilder {
            cache: self.cache,
            codec,
            jitter_percent: self.jitter_percent,
            clock: self.clock,
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

    /// The typed cache.
    pub fn build(self) -> TypedCache<C> {
        TypedCache {
            inner: Arc::new(Inner {
                cache: self.cache,
                codec: self.codec,
                jitter_percent: self.jitter_percent,
                clock: self.clock,
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
        match self.inner.cache.get(key).await {
            Ok(Some(hit)) => self.decode(key, hit),
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(key = %key, error = %e, "cache read failed: treated as a miss");
                None
            }
        }
    }

    fn decode<T>(&self, key: &Key, hit: Hit) -> Option<Fetched<T>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let source = Source::from(hit.tier);
        let decoded = if hit.entry.codec_id() == C::ID {
            if let Some(v) = hit.entry.memo::<T>() {
                return Some(Fetched {
                    value: T::clone(&v),
                    source,
                });
            }
            self.inner.codec.decode::<T>(hit.entry.payload())
        } else {
            Err(CacheError::Decode(format!(
                "entry written by codec {} read with codec {}",
                hit.entry.codec_id(),
                C::ID
            )))
        };
        match decoded {
            Ok(v) => {
                let v = Arc::new(v);
                hit.entry.set_memo(v.clone());
                Some(Fetched {
                    value: T::clone(&v),
                    source,
                })
            }
            Err(e) => {
                self.inner.cache.record_decode_failure(hit.tier);
                tracing::warn!(key = %key, tier = ?hit.tier, error = %e, "cached entry does not decode: treated as a miss");
                None
            }
        }
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
        let ttl = ttl.jittered(self.inner.jitter_percent);
        if let Err(e) = self.inner.cache.set(key, entry, ttl).await {
            tracing::debug!(key = %key, error = %e, "cache write skipped");
        }
    }

    /// Removes `key` from every tier. A tier that fails is logged and skipped.
    pub async fn delete(&self, key: &Key) {
        if let Err(e) = self.inner.cache.delete(key).await {
            tracing::debug!(key = %key, error = %e, "cache delete skipped");
        }
    }

    /// The cached value under `key`, or the loader's, stored for `ttl`.
    ///
    /// Concurrent misses on one key in this process run `loader` once; the other callers
    /// wait for its result. A loader error reaches every waiter as
    /// [`CacheError::Loader`] and is not cached. If the caller running the loader is
    /// cancelled, a waiter takes over.
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
        if let Some(hit) = self.get::<T>(key).await {
            return Ok(hit);
        }
        let miss = if self.inner.cache.is_bypass() {
            Source::Bypass
        } else {
            Source::Miss
        };
        let flight = {
            let mut flights = self.flights();
            flights.entry(key.clone()).or_default().clone()
        };
        let mut loader = Some(loader);
        let mut led = false;
        let shared = flight
            .get_or_init(|| {
                led = true;
                let loader = loader.take();
                async {
                    let result = match loader {
                        Some(loader) => self.load_and_fill(key, ttl, loader).await,
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
        let shared = shared?;
        match shared.downcast::<T>() {
            Ok(v) => Ok(Fetched {
                value: T::clone(&v),
                source: miss,
            }),
            // Another caller loaded a different type under this key: load our own.
            Err(_) => match loader.take() {
                Some(loader) => {
                    let v = self.load_and_fill(key, ttl, loader).await?;
                    Ok(Fetched {
                        value: T::clone(
                            v.downcast_ref::<T>()
                                .ok_or_else(|| CacheError::Config("loader type mismatch".into()))?,
                        ),
                        source: miss,
                    })
                }
                None => Err(CacheError::Config("loader type mismatch".into())),
            },
        }
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

    async fn load_and_fill<T, F, Fut, E>(
        &self,
        key: &Key,
        ttl: Ttl,
        loader: F,
    ) -> Result<Shared, CacheError>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.inner.loader.calls.fetch_add(1, Relaxed);
        let value = match loader().await {
            Ok(v) => v,
            Err(e) => {
                self.inner.loader.errors.fetch_add(1, Relaxed);
                return Err(CacheError::Loader(Arc::from(e.into())));
            }
        };
        match self.entry(&value) {
            Ok(entry) => self.store(key, entry, ttl).await,
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "loaded value cannot be encoded: not cached")
            }
        }
        Ok(Arc::new(value))
    }
}
