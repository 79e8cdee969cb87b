//! Strategies: how reads and writes of a source of truth go through the cache.
//!
//! | strategy | on a write of an entity | next read of it |
//! |----------|-------------------------|-----------------|
//! | [`StrategyKind::CacheAside`] | invalidate its key (every tier, every instance) | a miss, loaded and filled |
//! | [`StrategyKind::WriteThrough`] | store the new value in every tier | a hit |
//! | [`StrategyKind::Versioned`] | bump the namespace version: every old key is unreachable | a miss under the new version |
//!
//! **Groups** (lists, aggregates: whatever depends on many entities) are invalidated
//! the same way in all three: each group namespace has a version counter that is part
//! of its keys, and a write bumps it (`INCR`, one round trip for all groups of the
//! write). No `KEYS`, no `SCAN`, no sets of member keys to maintain; the cost is one
//! counter per group and that old entries stay in memory until their TTL, which the
//! byte-bounded L1 and Redis' own TTLs make harmless.
//!
//! **Coherence**: with a shared tier and an L1, every invalidation goes out on the
//! [backplane](self::backplane); L1 is bypassed whenever the backplane is down.
//! Loads fill through the fill-race guard ([`crate::FillToken`]) and, optionally, a
//! distributed lease ([`crate::LeaseConfig`]). Entity reads can cache "not found" for a
//! short [`StrategyBuilder::negative_ttl`].

pub(crate) mod backplane;
mod cache_aside;
mod versioned;
pub(crate) mod versions;
mod write_through;

use std::str::FromStr;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use self::backplane::{Backplane, BackplaneSnapshot};
use self::versions::Versions;
use crate::{
    Bincode, Cache, CacheError, CacheStats, Codec, Fetched, FillToken, Key, LeaseConfig, MokaTier,
    Namespace, NoCache, Params, RedisTier, StaleConfig, TieredCache, Ttl, TypedCache,
};

/// Which strategy a [`Strategy`] follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    /// Lazy loading; writes invalidate.
    CacheAside,
    /// Writes store the new value at once.
    WriteThrough,
    /// Writes bump a namespace version; nothing is deleted.
    Versioned,
}

impl StrategyKind {
    /// Every strategy, in the order the benchmarks report them.
    pub const ALL: [Self; 3] = [Self::CacheAside, Self::WriteThrough, Self::Versioned];

    /// `cache-aside`, `write-through` or `versioned`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CacheAside => "cache-aside",
            Self::WriteThrough => "write-through",
            Self::Versioned => "versioned",
        }
    }
}

impl std::fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StrategyKind {
    type Err = CacheError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                CacheError::Config(format!(
                    "unknown strategy {s:?}: allowed values are cache-aside, write-through, versioned"
                ))
            })
    }
}

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

/// Proof of [`Strategy::begin_write`], handed to [`Strategy::finish_write`].
#[derive(Debug)]
#[must_use = "finish the write once the source has acknowledged it"]
pub struct WriteTicket {
    entity: Namespace,
    token: Option<FillToken>,
}

/// Builds a [`Strategy`].
#[must_use]
#[derive(Debug)]
pub struct StrategyBuilder<C: Codec = Bincode> {
    kind: StrategyKind,
    prefix: String,
    l1: Option<MokaTier>,
    l2: Option<RedisTier>,
    l1_max_ttl: Option<Ttl>,
    backplane: bool,
    fill_guard: bool,
    lease: Option<LeaseConfig>,
    negative_ttl: Option<Ttl>,
    jitter_percent: u8,
    stale: Option<StaleConfig>,
    refresh_ahead: Option<u8>,
    codec: C,
    entities: Vec<(Namespace, Vec<Namespace>)>,
}

impl<C: Codec> StrategyBuilder<C> {
    /// The in-process tier.
    pub fn l1(mut self, l1: MokaTier) -> Self {
        self.l1 = Some(l1);
        self
    }

    /// The shared tier.
    pub fn l2(mut self, l2: RedisTier) -> Self {
        self.l2 = Some(l2);
        self
    }

    /// Caps the life of L1 copies below the shared TTL (see [`crate::TieredCacheBuilder::l1_max_ttl`]).
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

    /// The payload codec.
    pub fn codec<D: Codec>(self, codec: D) -> StrategyBuilder<D> {
        StrategyBuilder {
            kind: self.kind,
            prefix: self.prefix,
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
            codec,
            entities: self.entities,
        }
    }

    /// Serve-stale when a load fails or is too slow (default off; see [`StaleConfig`]).
    pub fn serve_stale(mut self, config: StaleConfig) -> Self {
        self.stale = Some(config);
        self
    }

    /// Refresh-ahead for [`Strategy::get_or_refresh`] reads (default off; see
    /// [`crate::TypedCacheBuilder::refresh_ahead`]).
    pub fn refresh_ahead(mut self, percent: u8) -> Self {
        self.refresh_ahead = Some(percent);
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

    /// The strategy. Starts the backplane (in the background) when L1 and L2 are both
    /// configured; must run inside a Tokio runtime.
    pub fn build(self) -> Strategy<C> {
        let versions = Arc::new(Versions::new(self.l2.clone()));
        let mut backplane = None;
        let cache: Arc<dyn Cache> = match (self.l1, self.l2) {
            (None, None) => Arc::new(NoCache::new()),
            (Some(l1), None) => Arc::new(l1),
            (None, Some(l2)) => Arc::new(l2),
            (Some(l1), Some(l2)) => {
                let mut tiered = TieredCache::builder(l1.clone(), l2.clone());
                if let Some(ttl) = self.l1_max_ttl {
                    tiered = tiered.l1_max_ttl(ttl);
                }
                let tiered = tiered.build();
                if self.backplane {
                    backplane = Some(Backplane::start(
                        &self.prefix,
                        l1,
                        l2,
                        tiered.l1_switch(),
                        versions.clone(),
                    ));
                }
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
        Strategy {
            inner: Arc::new(Inner {
                kind: self.kind,
                typed: typed.build(),
                versions,
                backplane,
                negative_ttl: self.negative_ttl,
                entities: self.entities,
            }),
        }
    }
}

struct Inner<C: Codec> {
    kind: StrategyKind,
    typed: TypedCache<C>,
    versions: Arc<Versions>,
    backplane: Option<Backplane>,
    negative_ttl: Option<Ttl>,
    entities: Vec<(Namespace, Vec<Namespace>)>,
}

/// A cache strategy in front of a source of truth, chosen at run time.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use cache::{KeyBuilder, MokaTier, Part, Params, Source, Strategy, StrategyKind, Ttl};
///
/// let keys = KeyBuilder::new("shop").unwrap();
/// let (pet, pets) = (keys.namespace("pet").unwrap(), keys.namespace("pets").unwrap());
/// let strategy = Strategy::builder(StrategyKind::WriteThrough, &keys)
///     .l1(MokaTier::builder().build().unwrap())
///     .entity(&pet, &[&pets])
///     .build();
///
/// let read = strategy
///     .get_entity(&pet, 1, Ttl::secs(60), || async { Ok::<_, std::io::Error>(Some("Rex".to_string())) })
///     .await
///     .unwrap();
/// assert_eq!(read.source, Source::Miss);
///
/// // A write: begin, write the source, finish with the stored value.
/// let ticket = strategy.begin_write(&pet, Some(1)).await;
/// strategy.finish_write(ticket, 1, Some(&"Max".to_string()), Ttl::secs(60)).await;
///
/// let read = strategy
///     .get_entity(&pet, 1, Ttl::secs(60), || async { Ok::<Option<String>, std::io::Error>(unreachable!()) })
///     .await
///     .unwrap();
/// assert_eq!((read.value.as_deref(), read.source), (Some("Max"), Source::HitL1));
/// # });
/// ```
pub struct Strategy<C: Codec = Bincode> {
    inner: Arc<Inner<C>>,
}

impl<C: Codec> Clone for Strategy<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<C: Codec> std::fmt::Debug for Strategy<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Strategy")
            .field("kind", &self.inner.kind)
            .field("typed", &self.inner.typed)
            .field("backplane", &self.inner.backplane)
            .finish_non_exhaustive()
    }
}

/// Counters of a strategy: its cache's, and its backplane's.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StrategyStats {
    /// Tier and loader counters.
    pub cache: CacheStats,
    /// The backplane's, when there is one.
    pub backplane: Option<BackplaneSnapshot>,
}

impl Strategy<Bincode> {
    /// A builder for `kind`, with keys under `keys`' prefix.
    pub fn builder(kind: StrategyKind, keys: &crate::KeyBuilder) -> StrategyBuilder<Bincode> {
        StrategyBuilder {
            kind,
            prefix: keys.prefix().to_owned(),
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
            codec: Bincode,
            entities: Vec::new(),
        }
    }
}

impl<C: Codec> Strategy<C> {
    /// Which strategy this is.
    #[must_use]
    pub fn kind(&self) -> StrategyKind {
        self.inner.kind
    }

    /// The typed cache underneath.
    #[must_use]
    pub fn cache(&self) -> &TypedCache<C> {
        &self.inner.typed
    }

    /// Counters of every tier, the loaders and the backplane.
    #[must_use]
    pub fn stats(&self) -> StrategyStats {
        StrategyStats {
            cache: self.inner.typed.stats(),
            backplane: self.inner.backplane.as_ref().map(Backplane::snapshot),
        }
    }

    /// `None` without a backplane; otherwise whether it is connected (L1 in use).
    #[must_use]
    pub fn backplane_connected(&self) -> Option<bool> {
        self.inner.backplane.as_ref().map(Backplane::is_connected)
    }

    /// Waits up to `timeout` for the backplane to connect; true if it did (or there is none).
    pub async fn wait_for_backplane(&self, timeout: std::time::Duration) -> bool {
        let Some(bp) = &self.inner.backplane else {
            return true;
        };
        let deadline = tokio::time::Instant::now() + timeout;
        while !bp.is_connected() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        true
    }

    /// This instance's id on the backplane, if it has one.
    #[must_use]
    pub fn instance_id(&self) -> Option<&str> {
        self.inner.backplane.as_ref().map(Backplane::instance)
    }

    fn groups_of(&self, entity: &Namespace) -> Vec<&Namespace> {
        self.inner
            .entities
            .iter()
            .filter(|(e, _)| e.root() == entity.root())
            .flat_map(|(_, groups)| groups.iter())
            .collect()
    }

    fn is_group(&self, ns: &Namespace) -> bool {
        self.inner
            .entities
            .iter()
            .any(|(_, groups)| groups.iter().any(|g| g.root() == ns.root()))
    }

    /// The key a read of `part` in `ns` uses now (with the namespace's version where
    /// it has one).
    pub async fn key(&self, ns: &Namespace, part: &Part) -> Result<Key, CacheError> {
        let ns = if self.inner.kind == StrategyKind::Versioned || self.is_group(ns) {
            ns.versioned(self.inner.versions.current(ns).await)
        } else {
            ns.clone()
        };
        Ok(match part {
            Part::Id(id) => ns.id(*id),
            Part::Query(params) => ns.query(params),
            Part::Fixed(name) => ns.fixed(name)?,
        })
    }

    /// A read of anything (a query, an aggregate) through the cache.
    pub async fn get<T, F, Fut, E>(
        &self,
        ns: &Namespace,
        part: &Part,
        ttl: Ttl,
        loader: F,
    ) -> Result<Fetched<T>, CacheError>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let key = self.key(ns, part).await?;
        self.inner.typed.get_or_load(&key, ttl, loader).await
    }

    /// Like [`Strategy::get`], refreshing a hit near its expiry in the background when
    /// refresh-ahead is on (see [`crate::TypedCache::get_or_refresh`]).
    pub async fn get_or_refresh<T, F, Fut, E>(
        &self,
        ns: &Namespace,
        part: &Part,
        ttl: Ttl,
        loader: F,
    ) -> Result<Fetched<T>, CacheError>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
    {
        let key = self.key(ns, part).await?;
        self.inner.typed.get_or_refresh(&key, ttl, loader).await
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
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let key = self.key(ns, &Part::Id(id)).await?;
        let negative = self.inner.negative_ttl;
        self.inner
            .typed
            .get_or_load_with_ttl(
                &key,
                |v: &Option<T>| if v.is_some() { Some(ttl) } else { negative },
                loader,
            )
            .await
    }

    /// Call before writing entity `id` of `entity` to the source (`None` for a create).
    pub async fn begin_write(&self, entity: &Namespace, id: Option<i64>) -> WriteTicket {
        let token = match (self.inner.kind, id) {
            (StrategyKind::WriteThrough, Some(id)) => {
                Some(write_through::before(self, entity, id).await)
            }
            _ => None,
        };
        WriteTicket {
            entity: entity.clone(),
            token,
        }
    }

    /// Call once the source acknowledged the write of entity `id`: `value` is the stored
    /// entity, or `None` when it was deleted. Invalidates the entity's groups too.
    pub async fn finish_write<T>(&self, ticket: WriteTicket, id: i64, value: Option<&T>, ttl: Ttl)
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        match self.inner.kind {
            StrategyKind::CacheAside => cache_aside::after(self, &ticket.entity, id).await,
            StrategyKind::WriteThrough => {
                write_through::after(self, &ticket.entity, id, ticket.token, value, ttl).await;
            }
            StrategyKind::Versioned => versioned::after(self, &ticket.entity).await,
        }
        if self.inner.kind != StrategyKind::Versioned {
            let groups = self.groups_of(&ticket.entity);
            self.bump(&groups).await;
        }
    }

    /// Invalidates `key` everywhere (this instance's tiers and, through the backplane,
    /// every other instance's L1). Returns the key's state after the invalidation.
    async fn invalidate_everywhere(&self, key: &Key) -> FillToken {
        let token = self.inner.typed.invalidate(key).await;
        if let Some(bp) = &self.inner.backplane {
            bp.publish_evict(key).await;
        }
        token
    }

    async fn bump(&self, namespaces: &[&Namespace]) {
        let bumped = self.inner.versions.bump(namespaces).await;
        if let Some(bp) = &self.inner.backplane {
            bp.publish_versions(&bumped).await;
        }
    }

    /// Empties every tier (Redis: our prefix only) and tells the other instances.
    /// Namespace version counters are kept, so a version never goes back.
    pub async fn flush(&self) -> Result<(), CacheError> {
        let cleared = self.inner.typed.clear().await;
        self.inner.versions.forget();
        if let Some(bp) = &self.inner.backplane {
            bp.publish_flush().await;
        }
        cleared
    }
}
