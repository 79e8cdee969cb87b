//! The front door: [`CacheClient`], a strategy in front of a source of truth, coherent
//! across instances and honest across Redis faults.
//!
//! It composes the pieces: the tiers ([`crate::tier`]), the typed layer with
//! single-flight and the fill-race guard ([`crate::typed`]), namespace version counters
//! (`versions.rs`), the pub/sub backplane that keeps every instance's L1 coherent
//! (`backplane.rs`), the write protocol of each [`Strategy`] (`write.rs`) and its
//! steps, each one round trip to Redis (`step.rs`), the recovery queue of what a write could not tell Redis (`recovery.rs`) and the task
//! that replays it (`replayer.rs`), and the holds of other instances' strict writes
//! (`holds.rs`).

pub(crate) mod backplane;
mod builder;
pub(crate) mod effect;
mod holds;
mod judge;
mod lag;
mod read;
mod read_many;
pub(crate) mod recovery;
mod replayer;
pub(crate) mod step;
mod strict;
pub(crate) mod tags;
pub(crate) mod versions;
mod write;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use self::backplane::{Backplane, BackplaneSnapshot};
pub use self::builder::CacheClientBuilder;
use self::holds::Holds;
use self::judge::Judge;
pub use self::read::{Plain, Read, RefreshAhead, Soft, Verified};
pub use self::read_many::ReadMany;
use self::recovery::{Recovery, RecoverySnapshot};
use self::tags::TagVersions;
use self::versions::Versions;
pub use self::write::{WriteConsistency, WriteTicket};
use crate::codec::{Bincode, Codec};
use crate::stats::CacheStats;
use crate::tier::{MokaTier, RedisTier, TieredCache};
use crate::typed::{CacheValue, Fetched, ReadOptions, TagClock, TagsOf, TypedCache};
use crate::{CacheError, Key, Namespace, Params, Strategy, Topology, Ttl};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a read is for, within a namespace.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    /// One entity by id.
    Id(i64),
    /// A query by its parameters.
    Query(Params),
    /// A parameterless query or aggregate by a fixed name.
    Fixed(&'static str),
}

/// Counters of a client: its tiers and loaders, its backplane, its recovery queue.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ClientStats {
    /// Tier and loader counters.
    pub cache: CacheStats,
    /// The backplane's, when there is one.
    pub backplane: Option<BackplaneSnapshot>,
    /// Effects of writes waiting for Redis, replayed, overflowed.
    pub recovery: RecoverySnapshot,
    /// The longest soft-invalidation bound of its namespaces, if any has one.
    pub soft_bound: Option<Duration>,
    /// What the staleness probe found, when it is on.
    pub probe: Option<crate::probe::ProbeSnapshot>,
}

pub(crate) struct Inner<C: Codec> {
    strategy: Strategy,
    topology: Topology,
    consistency: WriteConsistency,
    typed: TypedCache<C>,
    l1: Option<MokaTier>,
    l2: Option<RedisTier>,
    /// Both tiers, when there are two (for the L1 half of a write's store).
    tiered: Option<TieredCache>,
    versions: Arc<Versions>,
    tags: Arc<TagVersions>,
    backplane: Option<Backplane>,
    holds: Arc<Holds>,
    /// Judges hits; per namespace root where soft invalidation is on.
    judge: Arc<Judge>,
    soft_judges: std::collections::HashMap<String, Arc<Judge>>,
    recovery: Arc<Recovery>,
    negative_ttl: Option<Ttl>,
    entities: Vec<(Namespace, Vec<Namespace>)>,
    /// Who this client's strict writes are from when it has no backplane (with one,
    /// its instance id).
    writer: String,
    /// How many strict writes this client has begun (their hold ids count up).
    holds_made: std::sync::atomic::AtomicU64,
    replayer: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The staleness probe, when reads are sampled.
    probe: Option<Arc<crate::probe::Probe>>,
    /// A test's deliberately broken invalidation: writes' cache-side steps do nothing.
    broken_invalidation: bool,
}

impl<C: Codec> Drop for Inner<C> {
    fn drop(&mut self) {
        if let Ok(mut task) = self.replayer.lock()
            && let Some(task) = task.take()
        {
            task.abort();
        }
    }
}

/// A cache in front of a source of truth: the one entry point of the library.
///
/// Reads go through the tiers with single-flight loads and the fill-race guard; writes
/// follow the [`Strategy`]'s protocol ([`CacheClient::begin_write`] → write the source →
/// [`CacheClient::finish_write`]). With an L1 and Redis, a backplane keeps every
/// instance's L1 coherent, and L1 is bypassed whenever it cannot. A write whose
/// cache-side step cannot reach Redis is queued and replayed once Redis answers;
/// meanwhile this instance reads what it concerns from the source.
///
/// Cheap to clone: clones share everything.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use cache::{CacheClient, KeyBuilder, Source, Strategy, Ttl};
/// use cache::tier::MokaTier;
///
/// let keys = KeyBuilder::new("shop").unwrap();
/// let (pet, pets) = (keys.namespace("pet").unwrap(), keys.namespace("pets").unwrap());
/// let client = CacheClient::builder(&keys)
///     .strategy(Strategy::WriteThrough)
///     .l1(MokaTier::builder())
///     .entity(&pet, &[&pets])
///     .build()
///     .unwrap();
///
/// let read = client
///     .get_entity(&pet, 1, Ttl::secs(60), || async { Ok::<_, std::io::Error>(Some("Rex".to_string())) })
///     .await
///     .unwrap();
/// assert_eq!(read.source, Source::Miss);
///
/// // A write: begin, write the source, finish with the stored value.
/// let ticket = client.begin_write(&pet, Some(1)).await.unwrap();
/// client.finish_write(ticket, 1, Some(&"Max".to_string()), Ttl::secs(60)).await;
///
/// let read = client
///     .get_entity(&pet, 1, Ttl::secs(60), || async { Ok::<Option<String>, std::io::Error>(unreachable!()) })
///     .await
///     .unwrap();
/// assert_eq!((read.value.as_deref(), read.source), (Some("Max"), Source::HitL1));
/// # });
/// ```
pub struct CacheClient<C: Codec = Bincode> {
    inner: Arc<Inner<C>>,
}

impl<C: Codec> Clone for CacheClient<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<C: Codec> std::fmt::Debug for CacheClient<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheClient")
            .field("strategy", &self.inner.strategy)
            .field("topology", &self.inner.topology)
            .field("consistency", &self.inner.consistency)
            .field("backplane", &self.inner.backplane)
            .finish_non_exhaustive()
    }
}

impl CacheClient<Bincode> {
    /// A builder for a client whose keys live under `keys`' prefix. With no tier set,
    /// it caches nothing ([`Topology::None`]).
    pub fn builder(keys: &crate::KeyBuilder) -> CacheClientBuilder<Bincode> {
        CacheClientBuilder::new(keys)
    }
}

impl<C: Codec> CacheClient<C> {
    /// The strategy writes follow.
    #[must_use]
    pub fn strategy(&self) -> Strategy {
        self.inner.strategy
    }

    /// The tiers in use.
    #[must_use]
    pub fn topology(&self) -> Topology {
        self.inner.topology
    }

    /// Whether writes are refused when Redis cannot be told first.
    #[must_use]
    pub fn write_consistency(&self) -> WriteConsistency {
        self.inner.consistency
    }

    /// The typed cache underneath (low level: it bypasses the strategy and recovery).
    #[must_use]
    pub fn typed(&self) -> &TypedCache<C> {
        &self.inner.typed
    }

    /// The in-process tier, if any (its size and budget).
    #[must_use]
    pub fn l1(&self) -> Option<&MokaTier> {
        self.inner.l1.as_ref()
    }

    /// The Redis tier, if any (its health: `ping`, `is_degraded`).
    #[must_use]
    pub fn l2(&self) -> Option<&RedisTier> {
        self.inner.l2.as_ref()
    }

    /// Counters of every tier, the loaders, the backplane and the recovery queue.
    #[must_use]
    pub fn stats(&self) -> ClientStats {
        ClientStats {
            cache: self.inner.typed.stats(),
            backplane: self.inner.backplane.as_ref().map(Backplane::snapshot),
            recovery: self.inner.recovery.snapshot(),
            soft_bound: self.inner.soft_judges.values().filter_map(|j| j.soft).max(),
            probe: self.inner.probe.as_ref().map(|p| p.snapshot()),
        }
    }

    /// `None` without a backplane; otherwise whether it is connected (L1 in use).
    #[must_use]
    pub fn backplane_connected(&self) -> Option<bool> {
        self.inner.backplane.as_ref().map(Backplane::is_connected)
    }

    /// Waits up to `timeout` for the backplane to connect; true if it did (or there is none).
    pub async fn wait_for_backplane(&self, timeout: Duration) -> bool {
        let Some(bp) = &self.inner.backplane else {
            return true;
        };
        let deadline = tokio::time::Instant::now() + timeout;
        while !bp.is_connected() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Stops this instance's backplane and L1 (reads go to Redis and the source) and
    /// gives its L1 lease back: strict writes on other instances stop waiting for it at
    /// once, instead of for its lease to run out. Call it when the service shuts down.
    pub async fn close(&self) {
        if let Some(bp) = &self.inner.backplane {
            bp.close().await;
        }
    }

    /// This instance's id on the backplane, if it has one.
    #[must_use]
    pub fn instance_id(&self) -> Option<&str> {
        self.inner.backplane.as_ref().map(Backplane::instance)
    }

    fn groups_of(&self, entity: &Namespace) -> Vec<Namespace> {
        self.inner
            .entities
            .iter()
            .filter(|(e, _)| e.root() == entity.root())
            .flat_map(|(_, groups)| groups.iter().cloned())
            .collect()
    }

    fn is_versioned(&self, ns: &Namespace) -> bool {
        self.inner.strategy == Strategy::Versioned
            || self
                .inner
                .entities
                .iter()
                .any(|(_, groups)| groups.iter().any(|g| g.root() == ns.root()))
    }

    /// The key a read of `part` in `ns` uses now (with the namespace's version where
    /// it has one). `Err` when the version cannot be read (Redis unreachable and no
    /// trusted local copy), or for an invalid fixed name.
    pub async fn key(&self, ns: &Namespace, part: &Part) -> Result<Key, CacheError> {
        if !self.is_versioned(ns) {
            return key_of(ns, part);
        }
        let version = self.inner.versions.current(ns).await?;
        key_of(&ns.versioned(version.value), part)
    }

    /// The key of a read, or `None` when the cache must not answer it now: a write this
    /// instance could not yet tell Redis about concerns it, another instance is in the
    /// middle of a strict write of it, or its version is unknown.
    async fn cacheable_key(&self, ns: &Namespace, part: &Part) -> Result<Option<Key>, CacheError> {
        let Some(current) = self.cacheable_ns(ns).await? else {
            return Ok(None);
        };
        Ok(self.unblocked(ns, key_of(&current, part)?))
    }

    /// The keys of a batch of reads in `ns` (see [`CacheClient::cacheable_key`]): the
    /// namespace's version is read once for all of them.
    async fn cacheable_keys(
        &self,
        ns: &Namespace,
        parts: &[Part],
    ) -> Result<Vec<Option<Key>>, CacheError> {
        let Some(current) = self.cacheable_ns(ns).await? else {
            return Ok(vec![None; parts.len()]);
        };
        parts
            .iter()
            .map(|part| Ok(self.unblocked(ns, key_of(&current, part)?)))
            .collect()
    }

    /// `ns` at its current version (itself when it has none), or `None` when the cache
    /// must not answer any read of it now: a pending or held write concerns all of it,
    /// or its version is held or unknown.
    async fn cacheable_ns(&self, ns: &Namespace) -> Result<Option<Namespace>, CacheError> {
        let (recovery, holds) = (&self.inner.recovery, &self.inner.holds);
        recovery.note_faults(self.faults_seen());
        if recovery.blocks_root(ns.root()) || holds.blocks(ns.root(), None) {
            return Ok(None);
        }
        if !self.is_versioned(ns) {
            return Ok(Some(ns.clone()));
        }
        match self.inner.versions.current(ns).await {
            Ok(version) if version.held => Ok(None),
            Ok(version) => Ok(Some(ns.versioned(version.value))),
            Err(CacheError::Config(e)) => Err(CacheError::Config(e)),
            Err(e) => {
                tracing::debug!(namespace = ns.root(), error = %e, "version unknown: reading the source");
                Ok(None)
            }
        }
    }

    /// `key` (in `ns`), unless a write this instance could not yet tell Redis about or
    /// another instance's strict write concerns it.
    fn unblocked(&self, ns: &Namespace, key: Key) -> Option<Key> {
        let (recovery, holds) = (&self.inner.recovery, &self.inner.holds);
        let blocked = recovery.blocks_key(&key) || holds.blocks(ns.root(), Some(&key));
        (!blocked).then_some(key)
    }

    /// How reads in `ns` judge hits, and stamp fills with `tags_of` (if any).
    fn options<T>(&self, ns: &Namespace, tags_of: Option<TagsOf<T>>) -> ReadOptions<T> {
        let judge = self
            .inner
            .soft_judges
            .get(ns.root())
            .unwrap_or(&self.inner.judge)
            .clone();
        let tags = self.inner.tags.clone();
        ReadOptions {
            validate: Some(judge),
            tags: tags_of.map(|t| (Arc::new(move || tags.as_of()) as TagClock, t)),
        }
    }

    /// A read of one entity by id; "not found" is cached for the negative TTL, if set.
    pub async fn get_entity<T, F, Fut, E>(
        &self,
        ns: &Namespace,
        id: i64,
        ttl: Ttl,
        loader: F,
    ) -> Result<Fetched<Option<T>>, CacheError>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
        E: Into<BoxError>,
    {
        let Some(key) = self.cacheable_key(ns, &Part::Id(id)).await? else {
            return self.inner.typed.load_uncached(loader).await;
        };
        let negative = self.inner.negative_ttl;
        self.inner
            .typed
            .get_or_load_with(
                &key,
                |v: &Option<T>| if v.is_some() { Some(ttl) } else { negative },
                loader,
                &self.options(ns, None),
            )
            .await
    }
}

/// The key of `part` in `ns` (already at its version, if it has one).
fn key_of(ns: &Namespace, part: &Part) -> Result<Key, CacheError> {
    Ok(match part {
        Part::Id(id) => ns.id(*id),
        Part::Query(params) => ns.query(params),
        Part::Fixed(name) => ns.fixed(name)?,
    })
}
