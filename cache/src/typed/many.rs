//! Batch loads: many keys in one lookup (one pass over L1, one L2 round trip for what it
//! lacks, one per slot on a cluster), their misses in one loader call, single-flight
//! per key.
//!
//! Each missing key is joined or led as a single read's would be: a load of it that has
//! not begun (another caller's, single or batch) is joined; otherwise the batch leads
//! it, and callers arriving until it begins reading the key join it: until its loader
//! is called, or, for a key whose turn the batch waited for, until it looks again (what
//! that look finds is handed over at once). Loads of one key still
//! run one at a time: the batch takes its keys' loading locks in key order, so two
//! batches never wait on each other. Each loaded value is filled through its own fill
//! guard, with its own tags and TTL.
//!
//! # Details
//!
//! A batch does not take the distributed lease (its misses are one load already) and
//! serves nothing stale: a hit judged [`Verdict::Stale`] is reloaded, and a failed load
//! fails the batch. A key the loader does not return has no value: it is left out of the
//! answer and not stored (return `Option` values to cache "not found").

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};

use futures::future::join_all;
use tokio::sync::{OwnedMutexGuard, oneshot};
use tracing::Instrument as _;

use super::guarded::Filled;
use super::single_flight::{Flight, Landed, overtaken};
use super::{CacheValue, ReadOptions, TypedCache, Validate, Verdict};
use crate::codec::Codec;
use crate::typed::{Fetched, Source};
use crate::{CacheError, Key, Ttl};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a batch load leaves for a key its loader did not return: no value.
struct Absent;

/// A missing key the batch leads or joins.
struct Missing {
    /// Its place in the batch.
    at: usize,
    key: Key,
    flight: Arc<Flight>,
    loading: Arc<tokio::sync::Mutex<()>>,
}

/// A batch load under way: the cache, the ids (and keys) wanted, the loader, the TTL
/// of each value, the options.
struct Batch<'a, C: Codec, I, T, F, P> {
    cache: &'a TypedCache<C>,
    wanted: &'a [(I, Option<Key>)],
    loader: &'a F,
    ttl_for: &'a P,
    options: &'a ReadOptions<T>,
}

impl<C: Codec> TypedCache<C> {
    /// The values of `wanted` (an id, and its key; `None`: read it from the source
    /// without the cache), in order: hits from the cache, the rest from one call of
    /// `loader` with the ids missing, each stored for `ttl_for` of it. Ids the loader
    /// does not return are left out.
    pub(crate) async fn get_or_load_many<I, T, F, Fut, R, E, P>(
        &self,
        wanted: Vec<(I, Option<Key>)>,
        ttl_for: P,
        loader: F,
        options: &ReadOptions<T>,
    ) -> Result<Vec<(I, Fetched<T>)>, CacheError>
    where
        I: Clone + Eq + Hash,
        T: CacheValue,
        F: Fn(Vec<I>) -> Fut,
        Fut: Future<Output = Result<R, E>>,
        R: IntoIterator<Item = (I, T)>,
        E: Into<BoxError>,
        P: Fn(&T) -> Option<Ttl>,
    {
        let keys: Vec<Key> = wanted.iter().filter_map(|(_, k)| k.clone()).collect();
        let mut found = self
            .lookup_many::<T>(&keys, options.validate.as_deref())
            .await
            .into_iter();
        let mut out: Vec<Option<Fetched<T>>> = Vec::with_capacity(wanted.len());
        let (mut uncached, mut lead, mut joined) = (Vec::new(), Vec::new(), Vec::new());
        for (at, (_, key)) in wanted.iter().enumerate() {
            let hit = match key {
                None => {
                    uncached.push(at);
                    None
                }
                Some(_) => found.next().flatten(),
            };
            if let (None, Some(key)) = (&hit, key) {
                let (flight, loading, leads) = self.join_or_lead(key);
                let missing = Missing {
                    at,
                    key: key.clone(),
                    flight,
                    loading,
                };
                if leads { &mut lead } else { &mut joined }.push(missing);
            }
            out.push(hit);
        }
        if !(lead.is_empty() && joined.is_empty() && uncached.is_empty()) {
            let batch = Batch {
                cache: self,
                wanted: &wanted,
                loader: &loader,
                ttl_for: &ttl_for,
                options,
            };
            batch
                .load_missing(&mut out, &uncached, &lead, &joined)
                .await?;
        }
        Ok(wanted
            .into_iter()
            .zip(out)
            .filter_map(|((id, _), fetched)| Some((id, fetched?)))
            .collect())
    }

    /// The hits among `keys` (in order) that `validate` judges current.
    async fn lookup_many<T: CacheValue>(
        &self,
        keys: &[Key],
        validate: Option<&dyn Validate>,
    ) -> Vec<Option<Fetched<T>>> {
        if keys.is_empty() {
            return Vec::new();
        }
        let span = tracing::trace_span!("cache.lookup_many", cache.tier = self.inner.cache.name());
        let hits = match self.inner.cache.get_many(keys).instrument(span).await {
            Ok(hits) => hits,
            Err(e) => {
                tracing::debug!(keys = keys.len(), error = %e, "cache read failed: treated as misses");
                Vec::new()
            }
        };
        let mut hits = hits.into_iter();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let judged = match hits.next().flatten() {
                Some(hit) => self.judged::<T>(key, hit, validate).await,
                None => None,
            };
            out.push(
                judged
                    .filter(|(_, _, verdict)| *verdict == Verdict::Current)
                    .map(|(fetched, _, _)| fetched),
            );
        }
        out
    }

    /// The load of `key` a batch arriving now shares, its loading lock, and whether
    /// the batch leads it (nobody has claimed it yet).
    fn join_or_lead(&self, key: &Key) -> (Arc<Flight>, Arc<tokio::sync::Mutex<()>>, bool) {
        let (flight, loading) = self.join(key);
        let leads = !flight.claimed.swap(true, SeqCst);
        (flight, loading, leads)
    }
}

impl<C, I, T, F, Fut, R, E, P> Batch<'_, C, I, T, F, P>
where
    C: Codec,
    I: Clone + Eq + Hash,
    T: CacheValue,
    F: Fn(Vec<I>) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    R: IntoIterator<Item = (I, T)>,
    E: Into<BoxError>,
    P: Fn(&T) -> Option<Ttl>,
{
    /// Fills `out` for the keys the batch leads (one loader call, with the `uncached`
    /// ids) and for those it joined (another caller's load).
    async fn load_missing(
        &self,
        out: &mut [Option<Fetched<T>>],
        uncached: &[usize],
        lead: &[Missing],
        joined: &[Missing],
    ) -> Result<(), CacheError> {
        let mut senders = HashMap::with_capacity(lead.len());
        let led = join_all(lead.iter().map(|m| {
            let (tx, rx) = oneshot::channel::<Result<Landed, CacheError>>();
            senders.insert(m.at, tx);
            m.flight.cell.get_or_init(|| async move {
                rx.await.unwrap_or_else(|_| {
                    Err(CacheError::Config("the batch load was dropped".into()))
                })
            })
        }));
        let took_over = AtomicUsize::new(0);
        let shared = join_all(joined.iter().map(|m| {
            let item = [(self.wanted[m.at].0.clone(), Some(m.key.clone()))];
            let took_over = &took_over;
            m.flight.cell.get_or_init(move || async move {
                // Its leader was cancelled before loading: load it here.
                took_over.fetch_add(1, Relaxed);
                let result = self
                    .load_batch(&item, &[&m.flight])
                    .await
                    .map(|mut v| landed(v.remove(&item[0].0), Source::Miss));
                self.cache.end_flight(&m.key, &m.flight);
                result
            })
        }));
        let driver = self.lead(uncached, lead, senders);
        let (from_source, led, shared) = tokio::join!(driver, led, shared);
        let coalesced = joined.len() - took_over.load(Relaxed);
        self.cache
            .inner
            .loader
            .coalesced
            .fetch_add(coalesced as u64, Relaxed);
        let miss = if self.cache.inner.cache.is_bypass() {
            Source::Bypass
        } else {
            Source::Miss
        };
        for (at, value) in from_source? {
            out[at] = Some(Fetched {
                value,
                source: Source::Bypass,
            });
        }
        let mut again = Vec::new();
        for (m, result) in lead.iter().zip(led).chain(joined.iter().zip(shared)) {
            let landed = result.clone()?;
            let source = if landed.source.is_hit() {
                landed.source
            } else {
                miss
            };
            if let Ok(v) = landed.value.clone().downcast::<T>() {
                out[m.at] = Some(Fetched {
                    value: T::clone(&v),
                    source,
                });
            } else if !landed.value.is::<Absent>() {
                // Another caller loaded a different type under this key.
                again.push((self.wanted[m.at].0.clone(), Some(m.key.clone())));
            }
        }
        if !again.is_empty() {
            let mut values = self.load_batch(&again, &[]).await?;
            for (at, (id, _)) in self.wanted.iter().enumerate() {
                if out[at].is_none()
                    && let Some(value) = values.remove(id)
                {
                    out[at] = Some(Fetched {
                        value,
                        source: miss,
                    });
                }
            }
        }
        Ok(())
    }

    /// The batch's own load: takes the loading locks of the keys it leads (in key
    /// order), looks again for those another load was filling, loads the rest with the
    /// `uncached` ids in one call, and hands each led key its value. Returns the
    /// uncached ids' values.
    async fn lead(
        &self,
        uncached: &[usize],
        lead: &[Missing],
        mut senders: HashMap<usize, oneshot::Sender<Result<Landed, CacheError>>>,
    ) -> Result<Vec<(usize, T)>, CacheError> {
        let mut order: Vec<&Missing> = lead.iter().collect();
        order.sort_by(|a, b| a.key.cmp(&b.key));
        let mut turns: HashMap<usize, OwnedMutexGuard<()>> = HashMap::with_capacity(order.len());
        let mut waited = Vec::new();
        for m in order {
            match m.loading.clone().try_lock_owned() {
                Ok(turn) => {
                    turns.insert(m.at, turn);
                }
                Err(_) => {
                    turns.insert(m.at, m.loading.clone().lock_owned().await);
                    waited.push(m);
                }
            }
        }
        // A load this batch waited for may have filled its key meanwhile. The look is a
        // read for everyone who joined: from here on, newcomers wait for the next load.
        for m in &waited {
            m.flight.started.store(true, SeqCst);
        }
        let keys: Vec<Key> = waited.iter().map(|m| m.key.clone()).collect();
        let found = self
            .cache
            .lookup_many::<T>(&keys, self.options.validate.as_deref())
            .await;
        let mut done: HashSet<usize> = HashSet::new();
        for (m, hit) in waited.iter().zip(found) {
            if let Some(hit) = hit {
                // Handed over now, not after the load of the rest: whoever joined did so
                // before the look, so what it found is no older than their arrival.
                let landed = Landed {
                    value: Arc::new(hit.value),
                    source: hit.source,
                };
                if let Some(tx) = senders.remove(&m.at) {
                    let _ = tx.send(Ok(landed));
                }
                self.cache.end_flight(&m.key, &m.flight);
                turns.remove(&m.at);
                done.insert(m.at);
            }
        }
        let to_load: Vec<&Missing> = lead.iter().filter(|m| !done.contains(&m.at)).collect();
        let items: Vec<(I, Option<Key>)> = to_load
            .iter()
            .map(|m| (self.wanted[m.at].0.clone(), Some(m.key.clone())))
            .chain(uncached.iter().map(|&at| (self.wanted[at].0.clone(), None)))
            .collect();
        let flights: Vec<&Flight> = to_load.iter().map(|m| &*m.flight).collect();
        let loaded = if items.is_empty() {
            Ok(HashMap::new())
        } else {
            self.load_batch(&items, &flights).await
        };
        for m in &to_load {
            self.cache.end_flight(&m.key, &m.flight);
        }
        let mut values = match loaded {
            Ok(values) => values,
            Err(e) => {
                for (_, tx) in senders {
                    let _ = tx.send(Err(e.clone()));
                }
                return Err(e);
            }
        };
        for m in &to_load {
            let value = values.get(&self.wanted[m.at].0).cloned();
            if let Some(tx) = senders.remove(&m.at) {
                let _ = tx.send(Ok(landed(value, Source::Miss)));
            }
        }
        drop(turns);
        Ok(uncached
            .iter()
            .filter_map(|&at| Some((at, values.remove(&self.wanted[at].0)?)))
            .collect())
    }

    /// One call of the loader for `items`' ids; each value whose item has a key is
    /// stored under it through that key's fill guard (token taken before the call),
    /// unless a write overtook it. `flights` are marked begun just before the call.
    async fn load_batch(
        &self,
        items: &[(I, Option<Key>)],
        flights: &[&Flight],
    ) -> Result<HashMap<I, T>, CacheError> {
        let cache = &self.cache.inner.cache;
        let tokens = if self.cache.inner.fill_guard {
            join_all(items.iter().map(|(_, key)| async move {
                match key {
                    Some(key) => Some(cache.fill_token(key).await.unwrap_or_default()),
                    None => None,
                }
            }))
            .await
        } else {
            vec![None; items.len()]
        };
        let as_of = self.options.as_of();
        for flight in flights {
            flight.started.store(true, SeqCst);
        }
        self.cache.inner.loader.calls.fetch_add(1, Relaxed);
        let began = std::time::Instant::now();
        let ids: Vec<I> = items.iter().map(|(id, _)| id.clone()).collect();
        let timeout = self.cache.inner.stale.as_ref().and_then(|s| s.load_timeout);
        let loaded: Result<R, BoxError> = match timeout {
            None => (self.loader)(ids).await.map_err(Into::into),
            Some(limit) => match tokio::time::timeout(limit, (self.loader)(ids)).await {
                Ok(loaded) => loaded.map_err(Into::into),
                Err(_) => {
                    self.cache.inner.loader.timeouts.fetch_add(1, Relaxed);
                    Err(format!("the load took longer than {limit:?}").into())
                }
            },
        };
        self.cache.inner.loader.timed(loaded.is_ok(), began);
        let mut values: HashMap<I, T> = match loaded {
            Ok(values) => values.into_iter().collect(),
            Err(e) => {
                self.cache.inner.loader.errors.fetch_add(1, Relaxed);
                return Err(CacheError::Loader(Arc::from(e)));
            }
        };
        let asked: HashSet<&I> = items.iter().map(|(id, _)| id).collect();
        values.retain(|id, _| asked.contains(id));
        join_all(items.iter().zip(&tokens).filter_map(|((id, key), token)| {
            let (key, value) = (key.as_ref()?, values.get(id)?);
            let ttl = (self.ttl_for)(value)?;
            Some(async move {
                let stamp = self.options.stamp(as_of, value);
                let filled = if overtaken(key, stamp.as_ref(), self.options).await {
                    Filled::Refused
                } else {
                    self.cache
                        .fill(key, value, ttl, token.as_ref(), stamp)
                        .await
                };
                tracing::trace!(key = %key, ?filled, "loaded in a batch");
            })
        }))
        .await;
        Ok(values)
    }
}

/// What a load of one key leaves for its joiners: its value, or [`Absent`].
fn landed<T: CacheValue>(value: Option<T>, source: Source) -> Landed {
    Landed {
        value: match value {
            Some(v) => Arc::new(v),
            None => Arc::new(Absent),
        },
        source,
    }
}

#[cfg(test)]
mod tests;
