//! Builds a [`CacheClient`]: the tiers, the strategy and the policies, wired together.

use crate::probe::{Probe, ProbeConfig};
use std::sync::Arc;

use super::backplane::Backplane;
use super::holds::Holds;
use super::judge::Judge;
use super::recovery::{DEFAULT_RECOVERY_CAPACITY, Recovery};
use super::replayer::replay_forever;
use super::tags::TagVersions;
use super::versions::Versions;
use super::{CacheClient, Inner, WriteConsistency};
use crate::codec::{Bincode, Codec};
use crate::policy::{LeaseConfig, StaleConfig};
use crate::tier::{Cache, MokaTierBuilder, NoCache, RedisTierBuilder, TieredCache};
use crate::typed::TypedCache;
use crate::{CacheError, KeyBuilder, Namespace, Strategy, Topology, Ttl};

/// Builds a [`CacheClient`]. Defaults: cache-aside, no tiers (caching off), writes
/// available during Redis faults, backplane and fill guard on, no lease, no negative
/// caching, no jitter, no serve-stale, no refresh-ahead.
#[must_use]
#[derive(Debug)]
pub struct CacheClientBuilder<C: Codec = Bincode> {
    keys: KeyBuilder,
    strategy: Strategy,
    consistency: WriteConsistency,
    l1: Option<MokaTierBuilder>,
    l2: Option<RedisTierBuilder>,
    l1_max_ttl: Option<Ttl>,
    backplane: bool,
    fill_guard: bool,
    lease: Option<LeaseConfig>,
    negative_ttl: Option<Ttl>,
    jitter_percent: u8,
    stale: Option<StaleConfig>,
    refresh_ahead: Option<u8>,
    recovery_capacity: usize,
    codec: C,
    entities: Vec<(Namespace, Vec<Namespace>)>,
    soft: Vec<(Namespace, std::time::Duration)>,
    probe: Option<ProbeConfig>,
    broken_invalidation: bool,
}

impl CacheClientBuilder<Bincode> {
    pub(super) fn new(keys: &KeyBuilder) -> Self {
        Self {
            keys: keys.clone(),
            strategy: Strategy::default(),
            consistency: WriteConsistency::default(),
            l1: None,
            l2: None,
            l1_max_ttl: None,
            backplane: true,
            fill_guard: true,
            lease: None,
            negative_ttl: None,
            jitter_percent: 0,
            stale: None,
            refresh_ahead: None,
            recovery_capacity: DEFAULT_RECOVERY_CAPACITY,
            codec: Bincode,
            entities: Vec::new(),
            soft: Vec::new(),
            probe: None,
            broken_invalidation: false,
        }
    }
}

impl<C: Codec> CacheClientBuilder<C> {
    /// How writes meet the cache (default [`Strategy::CacheAside`]).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// What a write does when Redis cannot be told (default [`WriteConsistency::Available`]).
    pub fn write_consistency(mut self, consistency: WriteConsistency) -> Self {
        self.consistency = consistency;
        self
    }

    /// An in-process tier, built from `l1`.
    pub fn l1(mut self, l1: MokaTierBuilder) -> Self {
        self.l1 = Some(l1);
        self
    }

    /// A shared Redis tier, built from `l2` with this client's key prefix.
    pub fn l2(mut self, l2: RedisTierBuilder) -> Self {
        self.l2 = Some(l2);
        self
    }

    /// Caps the life of L1 copies below the shared TTL (see
    /// [`crate::tier::TieredCacheBuilder::l1_max_ttl`]).
    pub fn l1_max_ttl(mut self, ttl: Ttl) -> Self {
        self.l1_max_ttl = Some(ttl);
        self
    }

    /// Whether L1 and L2 together use the backplane (default on). Off, another
    /// instance's write reaches this instance's L1 only by TTL: for demonstrations.
    pub fn backplane(mut self, on: bool) -> Self {
        self.backplane = on;
        self
    }

    /// Whether loads fill through the fill-race guard (default on).
    pub fn fill_guard(mut self, on: bool) -> Self {
        self.fill_guard = on;
        self
    }

    /// Coalesces misses across instances with a lease in Redis (default off).
    pub fn lease(mut self, lease: LeaseConfig) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Caches "not found" entity reads for `ttl` (default: not cached).
    pub fn negative_ttl(mut self, ttl: Ttl) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }

    /// Shortens every TTL by up to `percent` % at random.
    pub fn jitter_percent(mut self, percent: u8) -> Self {
        self.jitter_percent = percent;
        self
    }

    /// The payload codec (default [`Bincode`]).
    pub fn codec<D: Codec>(self, codec: D) -> CacheClientBuilder<D> {
        CacheClientBuilder {
            keys: self.keys,
            strategy: self.strategy,
            consistency: self.consistency,
            l1: self.l1,
            l2: self.l2,
            l1_max_ttl: self.l1_max_ttl,
            backplane: self.backplane,
            fill_guard: self.fill_guard,
            lease: self.lease,
            negative_ttl: self.negative_ttl,
            jitter_percent: self.jitter_percent,
            stale: self.stale,
            refresh_ahead: self.refresh_ahead,
            recovery_capacity: self.recovery_capacity,
            codec,
            entities: self.entities,
            soft: self.soft,
            probe: self.probe,
            broken_invalidation: self.broken_invalidation,
        }
    }

    /// Serve-stale when a load fails or is too slow (default off; see [`StaleConfig`]).
    pub fn serve_stale(mut self, config: StaleConfig) -> Self {
        self.stale = Some(config);
        self
    }

    /// Refresh-ahead for [`CacheClient::read`]`.refresh_ahead()` reads (default off; see
    /// [`crate::typed::TypedCacheBuilder::refresh_ahead`]).
    pub fn refresh_ahead(mut self, percent: u8) -> Self {
        self.refresh_ahead = Some(percent);
        self
    }

    /// How many cache-side effects of writes this instance keeps for replay while Redis
    /// is away (default 10,000). Beyond it they fall back to one flush of the prefix.
    pub fn recovery_capacity(mut self, effects: usize) -> Self {
        self.recovery_capacity = effects;
        self
    }

    /// Soft invalidation in namespace `ns`: a tagged entry whose tag was invalidated may
    /// still be served, as [`crate::Source::Stale`], for at most `max_stale` after this
    /// instance learnt of the invalidation, while one caller reloads it. Applies to L1
    /// hits (where the invalidation's arrival is known); elsewhere invalidation is exact.
    pub fn soft_invalidation(mut self, ns: &Namespace, max_stale: std::time::Duration) -> Self {
        self.soft.push((ns.clone(), max_stale));
        self
    }

    /// The staleness probe (default off): a sample of the hits of reads that say how to
    /// version their values ([`crate::read::Read::verify`]) is checked against the
    /// source in the background. See [`ProbeConfig`]; a zero sample leaves it off.
    pub fn probe(mut self, config: ProbeConfig) -> Self {
        self.probe = Some(config);
        self
    }

    /// For tests of what watches the cache (the staleness probe): writes' cache-side
    /// steps do nothing, so this instance keeps serving what writes replaced.
    #[cfg(feature = "test-util")]
    #[doc(hidden)]
    pub fn break_invalidation_for_tests(mut self) -> Self {
        self.broken_invalidation = true;
        self
    }

    /// Declares an entity namespace and the groups a write of one of its entities
    /// invalidates (lists, aggregates).
    pub fn entity(mut self, entity: &Namespace, groups: &[&Namespace]) -> Self {
        self.entities.push((
            entity.clone(),
            groups.iter().map(|g| (*g).clone()).collect(),
        ));
        self
    }

    /// The client. Starts the backplane (with L1 and L2) and the replayer in the
    /// background, so it must run inside a Tokio runtime. Redis is connected lazily: a
    /// server that is down now does not fail the build.
    pub fn build(self) -> Result<CacheClient<C>, CacheError> {
        if self.recovery_capacity == 0 {
            return Err(CacheError::Config(
                "recovery capacity must be above 0".into(),
            ));
        }
        let l1 = self.l1.map(MokaTierBuilder::build).transpose()?;
        let l2 = self
            .l2
            .map(|b| b.prefix(self.keys.prefix()).build())
            .transpose()?;
        let topology = Topology::of(l1.is_some(), l2.is_some());
        let versions = Arc::new(Versions::new(l2.clone()));
        let tags = Arc::new(TagVersions::new(l2.clone()));
        let holds = Arc::new(Holds::default());
        let mut backplane = None;
        let mut both = None;
        let cache: Arc<dyn Cache> = match (&l1, &l2) {
            (None, None) => Arc::new(NoCache::new()),
            (Some(l1), None) => Arc::new(l1.clone()),
            (None, Some(l2)) => Arc::new(l2.clone()),
            (Some(l1), Some(l2)) => {
                let mut tiered = TieredCache::builder(l1.clone(), l2.clone());
                if let Some(ttl) = self.l1_max_ttl {
                    tiered = tiered.l1_max_ttl(ttl);
                }
                let tiered = tiered.build();
                if self.backplane {
                    backplane = Some(Backplane::start(
                        Arc::new(l1.clone()),
                        l2.clone(),
                        tiered.l1_switch(),
                        versions.clone(),
                        tags.clone(),
                        holds.clone(),
                    ));
                }
                both = Some(tiered.clone());
                Arc::new(tiered)
            }
        };
        let mut typed = TypedCache::builder_dyn(cache)
            .codec(self.codec)
            .jitter_percent(self.jitter_percent)
            .fill_guard(self.fill_guard);
        if let Some(lease) = self.lease {
            typed = typed.lease(lease);
        }
        if let Some(stale) = self.stale {
            typed = typed.serve_stale(stale);
        }
        if let Some(percent) = self.refresh_ahead {
            typed = typed.refresh_ahead(percent);
        }
        let recovery = Arc::new(Recovery::new(self.recovery_capacity));
        let judge = |soft| {
            Arc::new(Judge {
                recovery: recovery.clone(),
                holds: holds.clone(),
                tags: tags.clone(),
                versions: versions.clone(),
                soft,
            })
        };
        let soft_judges = self
            .soft
            .iter()
            .map(|(ns, bound)| (ns.root().to_owned(), judge(Some(*bound))))
            .collect();
        let judge = judge(None);
        let inner = Arc::new(Inner {
            strategy: self.strategy,
            topology,
            consistency: self.consistency,
            typed: typed.build(),
            l1,
            l2,
            tiered: both,
            versions,
            tags,
            backplane,
            holds,
            judge,
            soft_judges,
            recovery: recovery.clone(),
            negative_ttl: self.negative_ttl,
            entities: self.entities,
            writer: format!("{:016x}", rand::random::<u64>()),
            holds_made: std::sync::atomic::AtomicU64::new(0),
            replayer: std::sync::Mutex::new(None),
            probe: self.probe.and_then(Probe::new),
            broken_invalidation: self.broken_invalidation,
        });
        let task = tokio::spawn(replay_forever(Arc::downgrade(&inner), recovery));
        if let Ok(mut slot) = inner.replayer.lock() {
            *slot = Some(task);
        }
        Ok(CacheClient { inner })
    }
}
