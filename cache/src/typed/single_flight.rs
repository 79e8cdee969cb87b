//! Single-flight loads: concurrent misses of one key in one process share a load, but
//! only one that has not begun yet.
//!
//! A caller joins the load of its key that has not begun reading yet (the cache again,
//! after waiting its turn, or the source); if that load has begun, the caller waits for
//! the next one instead, which it may share with later callers. A load that began
//! before the caller arrived may have read before a write acknowledged before the
//! caller arrived, so its value could be older than that write: never returned to such
//! a caller. Loads of one key run one
//! at a time, so a herd costs at most two loads per key in flight (one running, one
//! gathering its callers), and no older load fills over a newer one in this process.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};

use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use super::CacheValue;
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
    pub(super) value: Shared,
    /// A hit found while waiting for a lease or for the load before, or a miss.
    pub(super) source: Source,
}

/// One load of a key and the callers who joined it before it began.
#[derive(Default)]
pub(super) struct Flight {
    pub(super) cell: OnceCell<Result<Landed, CacheError>>,
    /// Set once the load begins reading what it answers (its leader's turn came): from
    /// then on, new callers wait for the next load.
    pub(super) started: AtomicBool,
    /// Set when a caller takes the lead (a single read entering the load, or a batch
    /// read claiming the key): a batch read joins a claimed load instead of leading it.
    pub(super) claimed: AtomicBool,
}

/// The loads of one key: the one new callers join, and the lock that makes them run one
/// at a time.
#[derive(Clone)]
pub(super) struct Flights {
    pub(super) joinable: Arc<Flight>,
    pub(super) loading: Arc<tokio::sync::Mutex<()>>,
}

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
        T: CacheValue,
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
        T: CacheValue,
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
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Into<BoxError>,
        P: Fn(&T) -> Option<Ttl>,
    {
        let validate = options.validate.as_deref();
        let fallback = match self.lookup::<T>(key, validate).await {
            Some((hit, _, Verdict::Current)) => return Ok(hit),
            Some((stale, _, verdict)) => {
                let age = match verdict {
                    Verdict::Stale(age) => age,
                    _ => std::time::Duration::ZERO,
                };
                if self.flights().contains_key(key) {
                    // Someone is reloading it already.
                    self.inner.loader.served_soft(age);
                    return Ok(stale);
                }
                Some((stale, age))
            }
            None => None,
        };
        let miss = if self.inner.cache.is_bypass() {
            Source::Bypass
        } else {
            Source::Miss
        };
        let mut loader = Some(loader);
        let (flight, loading) = self.join(key);
        let mut led = false;
        let landed = flight
            .cell
            .get_or_init(|| {
                led = true;
                flight.claimed.store(true, SeqCst);
                let loader = loader.take();
                let (ttl_for, flight) = (&ttl_for, flight.clone());
                async move {
                    // One load of a key at a time: a caller who found one under way waits
                    // for it here, then looks again before loading.
                    let (_turn, waited) = match loading.clone().try_lock_owned() {
                        Ok(turn) => (turn, false),
                        Err(_) => (loading.lock_owned().await, true),
                    };
                    // What this load answers is read from here on (the look below, a
                    // hit found while waiting for the lease, the loader): a caller
                    // arriving later might come after a write that read missed, so it
                    // waits for the next load.
                    flight.started.store(true, SeqCst);
                    let found = if waited {
                        self.lookup::<T>(key, options.validate.as_deref()).await
                    } else {
                        None
                    };
                    let result = match (found, loader) {
                        (Some((hit, _, Verdict::Current)), _) => Ok(Landed {
                            value: Arc::new(hit.value),
                            source: hit.source,
                        }),
                        (_, Some(loader)) => {
                            self.load_and_fill(key, ttl_for, loader, options, Some(&flight))
                                .await
                        }
                        (_, None) => Err(CacheError::Config("loader already taken".into())),
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
            (Err(e), Some((stale, age))) => {
                tracing::warn!(key = %key, error = %e, "reload failed: serving the invalidated value it was to replace");
                self.inner.loader.served_soft(*age);
                return Ok(stale.clone());
            }
            (Err(e), None) => return self.stale_or(key, e).await,
        };
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
        let own = self
            .load_and_fill(key, &ttl_for, loader, options, None)
            .await?;
        let v = own
            .value
            .downcast::<T>()
            .map_err(|_| CacheError::Config("loader type mismatch".into()))?;
        Ok(Fetched {
            value: T::clone(&v),
            source: miss,
        })
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
        let began = std::time::Instant::now();
        let loaded = loader().await;
        self.inner.loader.timed(loaded.is_ok(), began);
        match loaded {
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
        let Some((value, age)) = self.stale_value::<T>(key).await else {
            return Err(e);
        };
        self.inner.loader.served_last_good(age);
        tracing::warn!(key = %key, error = %e, "load failed: serving the last good value");
        Ok(Fetched {
            value,
            source: Source::Stale,
        })
    }

    pub(super) fn flights(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<Key, Flights>> {
        // The map holds plain values: a panic elsewhere cannot leave it inconsistent.
        self.inner
            .flights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The load of `key` a caller arriving now may share (one that has not begun), and
    /// the key's loading lock.
    pub(super) fn join(&self, key: &Key) -> (Arc<Flight>, Arc<tokio::sync::Mutex<()>>) {
        let mut flights = self.flights();
        let slot = flights.entry(key.clone()).or_insert_with(|| Flights {
            joinable: Arc::default(),
            loading: Arc::default(),
        });
        if slot.joinable.started.load(SeqCst) {
            slot.joinable = Arc::default();
        }
        (slot.joinable.clone(), slot.loading.clone())
    }

    pub(super) fn end_flight(&self, key: &Key, flight: &Arc<Flight>) {
        let mut flights = self.flights();
        if flights
            .get(key)
            .is_some_and(|f| Arc::ptr_eq(&f.joinable, flight))
        {
            flights.remove(key);
        }
    }

    /// Loads `key` (after the lease, if one is configured) and fills the tiers through
    /// the guard. `flight`, if any, is marked begun just before the loader is called.
    async fn load_and_fill<T, F, Fut, E, P>(
        &self,
        key: &Key,
        ttl_for: &P,
        loader: F,
        options: &ReadOptions<T>,
        flight: Option<&Flight>,
    ) -> Result<Landed, CacheError>
    where
        T: CacheValue,
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
        if let Some(flight) = flight {
            flight.started.store(true, SeqCst);
        }
        self.inner.loader.calls.fetch_add(1, Relaxed);
        let began = std::time::Instant::now();
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
        self.inner.loader.timed(loaded.is_ok(), began);
        let result = match loaded {
            Ok(value) => {
                let filled = match ttl_for(&value) {
                    Some(ttl) => {
                        let stamp = options.stamp(as_of, &value);
                        if overtaken(key, stamp.as_ref(), options).await {
                            // A write overtook it while it loaded, or is in progress: it
                            // may be older than that write, so it is not stored (as for
                            // a fill the guard refuses).
                            Filled::Refused
                        } else {
                            self.fill(key, &value, ttl, token.as_ref(), stamp).await
                        }
                    }
                    None => Filled::Skipped,
                };
                tracing::trace!(key = %key, ?filled, "loaded");
                Ok(Landed {
                    value: Arc::new(value),
                    source: Source::Miss,
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

/// Whether a value just loaded under `key` (carrying `stamp`'s tags, loaded at its
/// sequence) is already judged invalid, so it is not stored: a tag of it was
/// invalidated after its load began, or a write in progress holds the key, its
/// namespace or a tag of it, or its namespace moved to another version.
pub(super) async fn overtaken<T>(
    key: &Key,
    stamp: Option<&(u64, Vec<crate::Tag>)>,
    options: &ReadOptions<T>,
) -> bool {
    let Some(validate) = options.validate.as_deref() else {
        return false;
    };
    let entry = Entry::new(bytes::Bytes::new(), crate::codec::RAW_ID, 0);
    let entry = match stamp {
        Some((as_of, tags)) if !tags.is_empty() => entry.with_tags(*as_of, tags.clone()),
        _ => entry,
    };
    let probe = Hit {
        entry,
        tier: TierKind::L1,
        ttl_left: None,
    };
    validate.validate(key, &probe).await != Verdict::Current
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
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

    /// Waits until `n` callers wait on the load of `key` that new callers join (the map
    /// and the leader's load hold it too).
    async fn until_joined(cache: &TypedCache, key: &Key, n: usize) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while cache
                .flights()
                .get(key)
                .map(|f| Arc::strong_count(&f.joinable))
                != Some(2 + n)
            {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("callers never joined the load");
    }

    /// A load of `value` that says when it has begun and waits for `gate`.
    fn gated(
        cache: &TypedCache,
        key: &Key,
        value: u32,
        begun: Arc<Notify>,
        gate: Arc<Notify>,
    ) -> tokio::task::JoinHandle<crate::typed::Fetched<u32>> {
        let (cache, key) = (cache.clone(), key.clone());
        tokio::spawn(async move {
            cache
                .get_or_load(&key, Ttl::secs(60), || async move {
                    begun.notify_one();
                    gate.notified().await;
                    Ok::<_, std::io::Error>(value)
                })
                .await
                .unwrap()
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_arriving_after_a_load_began_never_takes_its_value() {
        // Arrange: a load has begun (it read the source: 1) and is slow to return.
        let (cache, key) = cache();
        let (begun, gate) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let leader = gated(&cache, &key, 1, begun.clone(), gate.clone());
        begun.notified().await;

        // Act: a write lands and is acknowledged; then a reader arrives, then the slow
        // load returns.
        cache.invalidate(&key).await.unwrap();
        let reader = {
            let (cache, key) = (cache.clone(), key.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load(&key, Ttl::secs(60), || async {
                        Ok::<_, std::io::Error>(2u32)
                    })
                    .await
                    .unwrap()
            })
        };
        until_joined(&cache, &key, 1).await;
        gate.notify_one();

        // Assert: the reader ran a load of its own, after the first; the refused fill of
        // the old value never landed.
        let (leader, reader) = (leader.await.unwrap(), reader.await.unwrap());
        assert_eq!((leader.value, leader.source), (1, Source::Miss));
        assert_eq!((reader.value, reader.source), (2, Source::Miss));
        assert_eq!(cache.stats().loader.calls, 2);
        assert_eq!(cache.stats().loader.coalesced, 0);
        assert_eq!(cache.get::<u32>(&key).await.unwrap().value, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_herd_during_a_load_shares_one_next_load_after_a_write() {
        // Arrange: a load has begun; a write invalidates the key meanwhile.
        let (cache, key) = cache();
        let (begun, gate) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let first = gated(&cache, &key, 1, begun.clone(), gate.clone());
        begun.notified().await;
        cache.invalidate(&key).await.unwrap();

        // Act: ten callers arrive while it runs, then it returns.
        let loads = Arc::new(AtomicU32::new(0));
        let herd: Vec<_> = (0..10)
            .map(|_| {
                let (cache, key, loads) = (cache.clone(), key.clone(), loads.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_load(&key, Ttl::secs(60), || async move {
                            loads.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, std::io::Error>(2u32)
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        until_joined(&cache, &key, 10).await;
        gate.notify_one();

        // Assert: two loads in all, never at once; every caller of the herd got the second.
        assert_eq!(first.await.unwrap().value, 1);
        for caller in herd {
            assert_eq!(caller.await.unwrap().value, 2);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        let stats = cache.stats().loader;
        assert_eq!((stats.calls, stats.coalesced), (2, 9));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn callers_waiting_behind_a_load_take_what_it_filled_if_no_write_came() {
        // Arrange: a load has begun, and three callers wait for the next one.
        let (cache, key) = cache();
        let (begun, gate) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let first = gated(&cache, &key, 1, begun.clone(), gate.clone());
        begun.notified().await;
        let waiting: Vec<_> = (0..3)
            .map(|_| {
                let (cache, key) = (cache.clone(), key.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_load(&key, Ttl::secs(60), || async {
                            Err::<u32, _>(std::io::Error::other("the key is cached by then"))
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        until_joined(&cache, &key, 3).await;

        // Act: the first load returns and fills.
        gate.notify_one();

        // Assert: the next load looked first and found it: one load in all.
        assert_eq!(first.await.unwrap().source, Source::Miss);
        for w in waiting {
            assert_eq!(w.await.unwrap().source, Source::HitL1);
        }
        assert_eq!(cache.stats().loader.calls, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiter_asking_for_another_type_runs_its_own_loader() {
        // Arrange: a slow load of a u32 has begun.
        let (cache, key) = cache();
        let (begun, gate) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let leader = gated(&cache, &key, 7, begun.clone(), gate.clone());
        begun.notified().await;

        // Act: a caller asks for a String under the same key.
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
        until_joined(&cache, &key, 1).await;
        gate.notify_one();

        // Assert: each caller gets its own type; the mismatch cost one more load.
        assert_eq!(leader.await.unwrap().value, 7);
        let waiter = waiter.await.unwrap().unwrap();
        assert_eq!(
            (waiter.value.as_str(), waiter.source),
            ("seven", Source::Miss)
        );
        assert_eq!(cache.stats().loader.calls, 2);
    }
}
