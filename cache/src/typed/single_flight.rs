//! Single-flight loads: concurrent misses of one key in one process run the loader once;
//! the others wait for its value.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use super::guarded::Filled;
use super::lease::Leased;
use super::{ReadOptions, TypedCache, Verdict};
use crate::codec::Codec;
use crate::tier::{Entry, Hit, TierKind};
use crate::typed::{Fetched, Source};
use crate::{CacheError, Key, Ttl};

type Shared = Arc<dyn Any + Send + Sync>;

/// What a load left for everyone who waited on it.
#[derive(Clone)]
pub(super) struct Landed {
    /// The value, type-erased (callers may have asked for different types).
    value: Shared,
    /// A hit found while waiting for a lease, or a miss.
    source: Source,
    /// The fill was refused because the key was invalidated while it loaded: callers who
    /// joined late must not take the value.
    superseded: bool,
}

pub(super) type Flight = Arc<OnceCell<Result<Landed, CacheError>>>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<C: Codec> TypedCache<C> {
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
        E: Into<BoxError>,
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
        E: Into<BoxError>,
        P: Fn(&T) -> Option<Ttl>,
    {
        self.get_or_load_with(key, ttl_for, loader, &ReadOptions::default())
            .await
    }

    /// Like [`TypedCache::get_or_load_with_ttl`], with hits judged and fills stamped as
    /// `options` says. A hit judged [`Verdict::Stale`] is served (as
    /// [`Source::Stale`]) while another caller reloads the key; the first caller to see
    /// it reloads it, and falls back to it if the load fails.
    pub async fn get_or_load_with<T, F, Fut, E, P>(
        &self,
        key: &Key,
        ttl_for: P,
        loader: F,
        options: &ReadOptions<T>,
    ) -> Result<Fetched<T>, CacheError>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Into<BoxError>,
        P: Fn(&T) -> Option<Ttl>,
    {
        let validate = options.validate.as_deref();
        let fallback = match self.lookup::<T>(key, validate).await {
            Some((hit, _, Verdict::Current)) => return Ok(hit),
            Some((stale, _, _)) => {
                if self.flights().contains_key(key) {
                    // Someone is reloading it already.
                    self.inner.loader.stale_served.fetch_add(1, Relaxed);
                    return Ok(stale);
                }
                Some(stale)
            }
            None => None,
        };
        let miss = if self.inner.cache.is_bypass() {
            Source::Bypass
        } else {
            Source::Miss
        };
        let mut loader = Some(loader);
        for attempt in 0.. {
            let flight = self.flights().entry(key.clone()).or_default().clone();
            let mut led = false;
            let landed = flight
                .get_or_init(|| {
                    led = true;
                    let loader = loader.take();
                    let ttl_for = &ttl_for;
                    async {
                        let result = match loader {
                            Some(loader) => self.load_and_fill(key, ttl_for, loader, options).await,
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
            let landed = match (landed, &fallback) {
                (Ok(landed), _) => landed,
                (Err(e), Some(stale)) => {
                    tracing::warn!(key = %key, error = %e, "reload failed: serving the invalidated value it was to replace");
                    self.inner.loader.stale_served.fetch_add(1, Relaxed);
                    return Ok(stale.clone());
                }
                (Err(e), None) => return self.stale_or(key, e).await,
            };
            // We joined someone else's load and a write overtook it: our read may have
            // begun after that write, so load again rather than return older data.
            if !led && landed.superseded && attempt < 2 && loader.is_some() {
                continue;
            }
            let source = if landed.source.is_hit() {
                landed.source
            } else {
                miss
            };
            if let Ok(v) = landed.value.downcast::<T>() {
                return Ok(Fetched {
                    value: T::clone(&v),
                    source,
                });
            }
            // Another caller loaded a different type under this key: load our own.
            let loader = loader
                .take()
                .ok_or_else(|| CacheError::Config("loader type mismatch".into()))?;
            let own = self.load_and_fill(key, &ttl_for, loader, options).await?;
            let v = own
                .value
                .downcast::<T>()
                .map_err(|_| CacheError::Config("loader type mismatch".into()))?;
            return Ok(Fetched {
                value: T::clone(&v),
                source: miss,
            });
        }
        unreachable!("the loop returns")
    }

    /// Runs `loader` without the cache: no lookup, no fill, no single-flight. For reads
    /// the cache must not answer (see [`Source::Bypass`]).
    pub async fn load_uncached<T, F, Fut, E>(&self, loader: F) -> Result<Fetched<T>, CacheError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Into<BoxError>,
    {
        self.inner.loader.calls.fetch_add(1, Relaxed);
        match loader().await {
            Ok(value) => Ok(Fetched {
                value,
                source: Source::Bypass,
            }),
            Err(e) => {
                self.inner.loader.errors.fetch_add(1, Relaxed);
                Err(CacheError::Loader(Arc::from(e.into())))
            }
        }
    }

    /// A failed load: the last good value when serve-stale has one, else the error.
    async fn stale_or<T>(&self, key: &Key, e: CacheError) -> Result<Fetched<T>, CacheError>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let Some(value) = self.stale_value::<T>(key).await else {
            return Err(e);
        };
        self.inner.loader.stale_served.fetch_add(1, Relaxed);
        tracing::warn!(key = %key, error = %e, "load failed: serving the last good value");
        Ok(Fetched {
            value,
            source: Source::Stale,
        })
    }

    pub(super) fn flights(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<Key, Flight>> {
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

    async fn load_and_fill<T, F, Fut, E, P>(
        &self,
        key: &Key,
        ttl_for: &P,
        loader: F,
        options: &ReadOptions<T>,
    ) -> Result<Landed, CacheError>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Into<BoxError>,
        P: Fn(&T) -> Option<Ttl>,
    {
        let leased = match self
            .await_lease::<T>(key, options.validate.as_deref())
            .await
        {
            Leased::Found(hit) => {
                return Ok(Landed {
                    value: Arc::new(hit.value),
                    source: hit.source,
                    superseded: false,
                });
            }
            Leased::Held => true,
            Leased::NotHeld => false,
        };
        let token = if self.inner.fill_guard {
            Some(self.inner.cache.fill_token(key).await.unwrap_or_default())
        } else {
            None
        };
        let as_of = options.as_of();
        self.inner.loader.calls.fetch_add(1, Relaxed);
        let timeout = self.inner.stale.as_ref().and_then(|s| s.load_timeout);
        let loaded: Result<T, BoxError> = match timeout {
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
                let filled = match ttl_for(&value) {
                    Some(ttl) => {
                        let stamp = options.stamp(as_of, &value);
                        if overtaken(stamp.as_ref(), options).await {
                            // One of its tags was invalidated while it loaded: it may be
                            // older than that write, so it is not stored, and callers who
                            // joined late load again (as for a fill the guard refuses).
                            Filled::Refused
                        } else {
                            self.fill(key, &value, ttl, token.as_ref(), stamp).await
                        }
                    }
                    None => Filled::Skipped,
                };
                Ok(Landed {
                    value: Arc::new(value),
                    source: Source::Miss,
                    superseded: filled == Filled::Refused,
                })
            }
            Err(e) => {
                self.inner.loader.errors.fetch_add(1, Relaxed);
                Err(CacheError::Loader(Arc::from(e)))
            }
        };
        if leased {
            self.release_lease(key).await;
        }
        result
    }
}

/// Whether a value loaded at `stamp`'s sequence, carrying its tags, is already judged
/// invalid: a tag of it was invalidated after its load began.
async fn overtaken<T>(stamp: Option<&(u64, Vec<crate::Tag>)>, options: &ReadOptions<T>) -> bool {
    let (Some((as_of, tags)), Some(validate)) = (stamp, options.validate.as_deref()) else {
        return false;
    };
    if tags.is_empty() {
        return false;
    }
    let probe = Hit {
        entry: Entry::new(bytes::Bytes::new(), crate::codec::RAW_ID, 0)
            .with_tags(*as_of, tags.clone()),
        tier: TierKind::L1,
        ttl_left: None,
    };
    validate.validate(&probe).await != Verdict::Current
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::Notify;

    use crate::tier::MokaTier;
    use crate::typed::{Source, TypedCache};
    use crate::{Key, KeyBuilder, Ttl};

    fn cache() -> (TypedCache, Key) {
        let l1 = MokaTier::builder().build().unwrap();
        let key = KeyBuilder::new("t").unwrap().namespace("n").unwrap().id(1);
        (TypedCache::builder(l1).build(), key)
    }

    /// Waits until `n` callers hold the flight of `key` (the map's copy included).
    async fn until_waiting(cache: &TypedCache, key: &Key, n: usize) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while cache.flights().get(key).map(Arc::strong_count) != Some(n) {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("callers never joined the flight");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiter_whose_load_was_overtaken_by_a_write_loads_again() {
        // Arrange: a slow load is in flight and a second caller has joined it.
        let (cache, key) = cache();
        let (started, gate) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let leader = {
            let (cache, key) = (cache.clone(), key.clone());
            let (started, gate) = (started.clone(), gate.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load(&key, Ttl::secs(60), || async move {
                        started.notify_one();
                        gate.notified().await;
                        Ok::<_, std::io::Error>(1u32)
                    })
                    .await
            })
        };
        // The leader has taken its fill token and is reading the source.
        started.notified().await;
        let waiter = {
            let (cache, key) = (cache.clone(), key.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load(&key, Ttl::secs(60), || async {
                        Ok::<_, std::io::Error>(2u32)
                    })
                    .await
            })
        };
        until_waiting(&cache, &key, 3).await;

        // Act: a write invalidates the key, then the slow load finishes.
        cache.invalidate(&key).await.unwrap();
        gate.notify_one();

        // Assert: the leader gets what it loaded; the waiter does not take that value
        // (its read may have begun after the write) and runs its own loader.
        let leader = leader.await.unwrap().unwrap();
        let waiter = waiter.await.unwrap().unwrap();
        assert_eq!((leader.value, leader.source), (1, Source::Miss));
        assert_eq!((waiter.value, waiter.source), (2, Source::Miss));
        assert_eq!(cache.stats().loader.calls, 2);
        let cached = cache.get::<u32>(&key).await.unwrap();
        assert_eq!(
            cached.value, 2,
            "the refused fill never landed, the retry's did"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiter_asking_for_another_type_runs_its_own_loader() {
        // Arrange: a slow load of a u32 is in flight.
        let (cache, key) = cache();
        let gate = Arc::new(Notify::new());
        let leader = {
            let (cache, key, gate) = (cache.clone(), key.clone(), gate.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load(&key, Ttl::secs(60), || async move {
                        gate.notified().await;
                        Ok::<_, std::io::Error>(7u32)
                    })
                    .await
            })
        };
        until_waiting(&cache, &key, 2).await;

        // Act: a caller asks for a String under the same key, and joins the flight.
        let waiter = {
            let (cache, key) = (cache.clone(), key.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load(&key, Ttl::secs(60), || async {
                        Ok::<_, std::io::Error>("seven".to_string())
                    })
                    .await
            })
        };
        until_waiting(&cache, &key, 3).await;
        gate.notify_one();

        // Assert: each caller gets its own type; the mismatch cost one more load.
        assert_eq!(leader.await.unwrap().unwrap().value, 7);
        let waiter = waiter.await.unwrap().unwrap();
        assert_eq!(
            (waiter.value.as_str(), waiter.source),
            ("seven", Source::Miss)
        );
        assert_eq!(cache.stats().loader.calls, 2);
    }
}
