//! The only place the service touches the cache: a thin shell over the cache library's
//! [`cache::CacheClient`].
//!
//! Reads ask this module for a pet, a page of pets or the stats, handing it a loader
//! that queries the database. Writes go through [`crate::service::pets::PetService`],
//! the one place that wraps the database write in [`CacheLayer::begin_write`] and
//! [`CacheLayer::pet_written`] (or [`CacheLayer::pet_deleted`]). The tiers come from
//! `CACHE_TIERS`, the strategy from `CACHE_STRATEGY`; what they do is the library's:
//!
//! | `CACHE_STRATEGY` | a write of pet `id` | the next read of `/pets/{id}` |
//! |---|---|---|
//! | `cache-aside` | invalidates `petshop:pet:id:{id}` in every tier (and every instance's L1) | a miss, loaded and filled |
//! | `write-through` | invalidates the key before the database write, stores the new pet in every tier after it (a delete stores "not found") | a hit |
//! | `versioned` | bumps the `pet` namespace version: every `petshop:pet:v{n}:…` key is unreachable at once | a miss under the new version |
//!
//! Lists (`petshop:pets:q:{hash of the filter}`), their totals and the stats carry
//! **tags**, and a write invalidates only the tags it can change ([`WriteTags`]):
//!
//! | what | carries | invalidated by |
//! |---|---|---|
//! | a page | `pet:{id}` of every pet on it | any change of that pet |
//! | a full page of species `s` (`*`: not filtered by species) | `at:{s}:…`: the blocks of ids up to its last pet's | a create, a delete, a species or age change of a pet of `s` (before or after) whose id is in them |
//! | a page not full, or past id 2^27 | `species:{s}` (`pets:all`) | every create, delete, species or age change in `s` |
//! | the totals (`petshop:counts:f:all`, per species and age) | `counts` | a create, a delete, a species or age change |
//! | the stats | `stats` | a create, a delete, any species, age or happiness change |
//!
//! A page is stored without its total: the response cache writes the total of its
//! filter, summed from the cached counts, into the page's bytes as it answers. So a
//! new pet (its id is past every full page's last) changes only the last pages and
//! the totals, a change of pet 90,000 leaves the first pages of its species as they
//! are, and renaming a pet makes only the pages that show it misses. No write has to
//! find the pages it made stale: each tag has a version, and an entry is current while none of
//! its tags changed after its load began. With `PETS_LIST_MAX_STALE`, an invalidated
//! page may still be served for that long (`X-Cache: STALE`) while it reloads behind.
//!
//! With `l1+l2`, invalidations and version bumps travel to the other instances over the
//! library's Redis pub/sub backplane; while it is disconnected L1 is flushed and bypassed,
//! so a write on another instance is never hidden by a stale local copy. Loads fill
//! through the library's fill guard (a read that loaded the old row before a write
//! cannot store it after the write's invalidation), concurrent misses of one key in one
//! process run the loader once, and `CACHE_LEASE=on` adds a Redis lease so concurrent
//! misses across instances do too. A "not found" pet is cached for [`NOT_FOUND_TTL`] so
//! probing unknown ids does not hammer the database; every strategy replaces it when the
//! id is created.
//!
//! Redis down or slow is never an error: the library counts it, skips Redis (circuit
//! breaker) and the service serves from L1 and the database. A write whose cache-side
//! step cannot reach Redis is queued and replayed when Redis answers, and until then
//! reads of what it touched bypass the cache (`X-Cache: BYPASS`); with
//! `CACHE_WRITE_CONSISTENCY=strict` such writes are refused (503) instead. With no
//! tiers (`CACHE_TIERS=none`) the library passes every read through (`X-Cache: BYPASS`).

use std::future::Future;

use std::sync::Arc;
use std::time::Duration;

use cache::policy::{LeaseConfig, StaleConfig};
use cache::tier::{MokaTier, RedisTier};
use cache::{
    CacheClient, CacheError, ClientStats, Fetched, KeyBuilder, Namespace, Part, Strategy, Tag,
    Topology, Ttl, WriteTicket,
};
use sea_orm::DbErr;

use crate::config::Config;
use crate::model::{Pet, PetCounts, PetFilter, StatsData};

/// The prefix of every key the service writes.
pub const KEY_PREFIX: &str = "petshop";
/// How long a "no such pet" answer is cached.
pub const NOT_FOUND_TTL: Ttl = Ttl::secs(5);

/// The state of the Redis tier, for `/ready`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisHealth {
    /// `PING` answered.
    pub up: bool,
    /// The circuit breaker is open: Redis is being skipped.
    pub breaker_open: bool,
    /// `None` without a backplane (`l2` alone); otherwise whether it is subscribed.
    pub backplane_connected: Option<bool>,
    /// Why `PING` failed.
    pub error: Option<String>,
    /// `PING` failed because the server's TLS certificate is not trusted.
    pub certificate_rejected: bool,
}

impl RedisHealth {
    /// Redis answers, its breaker is closed and the backplane (if any) is up.
    #[must_use]
    pub fn is_healthy(&self) -> bool {
        self.up && !self.breaker_open && self.backplane_connected != Some(false)
    }
}

struct Inner {
    client: CacheClient,
    pet: Namespace,
    /// Encoded answers of `GET /pets/{id}` and `GET /stats`.
    pet_answers: Namespace,
    stats_answers: Namespace,
    stats_refresh_ahead: bool,
    pets: Namespace,
    /// `PETS_LIST_MAX_STALE` is set: pages have soft invalidation.
    lists_soft: bool,
    /// The per species and age counts totals are summed from.
    counts: Namespace,

    stats: Namespace,
    pet_ttl: Ttl,
    list_ttl: Ttl,
    stats_ttl: Ttl,
}

/// Where the cached answers of the HTTP routes live, and for how long.
#[derive(Clone, Debug)]
pub struct Answers {
    /// `GET /pets` pages.
    pub lists: Namespace,
    /// How long a page is kept.
    pub list_ttl: Ttl,
    /// `PETS_LIST_MAX_STALE` is set: pages have soft invalidation.
    pub lists_soft: bool,
    /// `GET /pets/{id}` answers.
    pub pet: Namespace,
    /// How long a pet is kept.
    pub pet_ttl: Ttl,
    /// `GET /stats` answers; `None` with `STATS_REFRESH_AHEAD` (refresh-ahead lives
    /// beneath, in the typed layer: a stored answer in front would hide its hits).
    pub stats: Option<Namespace>,
    /// How long the stats are kept.
    pub stats_ttl: Ttl,
}

/// The service's cache: cheap to clone, shared by every handler.
#[derive(Clone)]
pub struct CacheLayer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheLayer")
            .field("tiers", &self.inner.client.topology().as_str())
            .field("strategy", &self.inner.client.strategy().as_str())
            .finish_non_exhaustive()
    }
}

mod tags;

pub use tags::WriteTags;
use tags::membership_tags;

/// A write in progress: from [`CacheLayer::begin_write`], consumed by
/// [`CacheLayer::pet_written`] or [`CacheLayer::pet_deleted`]. Dropping it (the write
/// did not happen) is harmless.
#[derive(Debug)]
#[must_use = "finish the write once the database has acknowledged it"]
pub struct PetWrite(WriteTicket);

impl PetWrite {
    /// More tags for the write to invalidate (found once the database answered).
    pub fn add_tags(&mut self, tags: WriteTags) {
        self.0.add_tags(tags.0);
    }
}

impl CacheLayer {
    /// The tiers and strategy `config` asks for. Redis is connected lazily: a server that
    /// is down now does not stop the service. Must run inside a Tokio runtime.
    pub fn new(config: &Config) -> Result<Self, CacheError> {
        let keys = KeyBuilder::new(KEY_PREFIX)?;
        let (pet, pets, stats) = (
            keys.namespace("pet")?,
            keys.namespace("pets")?,
            keys.namespace("stats")?,
        );
        let mut builder = CacheClient::builder(&keys)
            .strategy(config.cache_strategy)
            .write_consistency(config.cache_write_consistency)
            .entity(&pet, &[])
            .negative_ttl(NOT_FOUND_TTL)
            .jitter_percent(config.cache_jitter_percent);
        if config.cache_tiers.has_l1() {
            builder = builder.l1(MokaTier::builder().max_bytes(config.l1_max_bytes));
        }
        if config.cache_tiers.has_l2() {
            let l2 = match (&config.redis_cluster_nodes, &config.redis_url) {
                (Some(seeds), _) => RedisTier::cluster_builder(seeds.iter().map(String::as_str)),
                (None, Some(url)) => RedisTier::builder(url.as_str()),
                (None, None) => {
                    return Err(CacheError::Config(
                        "CACHE_TIERS with l2 needs REDIS_URL or REDIS_CLUSTER_NODES".into(),
                    ));
                }
            };
            let l2 = match &config.redis_tls {
                Some(tls) => l2.tls(tls.clone()),
                None => l2,
            };
            builder = builder.l2(l2
                .op_timeout(config.redis_op_timeout)
                .connect_timeout(config.redis_op_timeout.max(Duration::from_millis(250))));
            if config.cache_lease {
                builder = builder.lease(LeaseConfig::default());
            }
        }
        if let Some(max_stale) = config.cache_max_stale {
            builder = builder.serve_stale(StaleConfig {
                max_stale,
                max_bytes: (config.l1_max_bytes / 4).max(1),
                load_timeout: config.cache_load_timeout,
            });
        }
        if let Some(percent) = config.stats_refresh_ahead {
            builder = builder.refresh_ahead(percent);
        }
        if let Some(max_stale) = config.pets_list_max_stale {
            builder = builder.soft_invalidation(&pets, max_stale);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                client: builder.build()?,
                pet_answers: keys.namespace("pet-answers")?,
                stats_answers: keys.namespace("stats-answers")?,
                stats_refresh_ahead: config.stats_refresh_ahead.is_some(),
                lists_soft: config.pets_list_max_stale.is_some(),
                counts: keys.namespace("counts")?,
                pet,
                pets,
                stats,
                pet_ttl: config.pet_ttl,
                list_ttl: config.pets_list_ttl,
                stats_ttl: config.stats_ttl,
            }),
        })
    }

    /// `cache-aside`, `write-through` or `versioned` (the `X-Cache-Strategy` header).
    #[must_use]
    pub fn strategy_name(&self) -> &'static str {
        self.inner.client.strategy().as_str()
    }

    /// The strategy.
    #[must_use]
    pub fn strategy(&self) -> Strategy {
        self.inner.client.strategy()
    }

    /// What writes do while Redis cannot be told.
    #[must_use]
    pub fn write_consistency(&self) -> cache::WriteConsistency {
        self.inner.client.write_consistency()
    }

    /// The tiers.
    #[must_use]
    pub fn topology(&self) -> Topology {
        self.inner.client.topology()
    }

    /// Pet `id` (`None`: no such pet), from the cache or `loader`.
    pub async fn get_pet<F, Fut>(
        &self,
        id: i64,
        loader: F,
    ) -> Result<Fetched<Option<Pet>>, CacheError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Pet>, DbErr>>,
    {
        let i = &self.inner;
        i.client.get_entity(&i.pet, id, i.pet_ttl, loader).await
    }

    /// Pets `ids` (each `None`: no such pet), in the order asked: one batch read of the
    /// cache, `loader` called once with the ids it lacks (it answers the pets it finds).
    pub async fn get_pets<F, Fut>(
        &self,
        ids: &[i64],
        loader: F,
    ) -> Result<Vec<(i64, Fetched<Option<Pet>>)>, CacheError>
    where
        F: Fn(Vec<i64>) -> Fut,
        Fut: Future<Output = Result<Vec<Pet>, DbErr>>,
    {
        let i = &self.inner;
        let pet_ttl = i.pet_ttl;
        i.client
            .read_many(&i.pet, ids.iter().copied(), pet_ttl)
            .ttl_for(move |pet: &Option<Pet>| {
                Some(if pet.is_some() {
                    pet_ttl
                } else {
                    NOT_FOUND_TTL
                })
            })
            .load_many(|missing: Vec<i64>| {
                let found = loader(missing.clone());
                async move {
                    // Every id asked has an answer: the pet, or "no such pet" (cached
                    // for NOT_FOUND_TTL, as a single read caches it).
                    let mut pets: std::collections::HashMap<i64, Pet> =
                        found.await?.into_iter().map(|p| (p.id, p)).collect();
                    Ok::<_, DbErr>(
                        missing
                            .into_iter()
                            .map(|id| (id, pets.remove(&id)))
                            .collect::<Vec<_>>(),
                    )
                }
            })
            .await
    }

    /// The namespaces and TTLs of the cached answers (see [`crate::api::cached`]).
    #[must_use]
    pub fn answers(&self) -> Answers {
        let i = &self.inner;
        Answers {
            lists: i.pets.clone(),
            list_ttl: i.list_ttl,
            lists_soft: i.lists_soft,
            pet: i.pet_answers.clone(),
            pet_ttl: i.pet_ttl,
            stats: (!i.stats_refresh_ahead).then(|| i.stats_answers.clone()),
            stats_ttl: i.stats_ttl,
        }
    }

    /// The library's client (the response cache reads through it).
    #[must_use]
    pub fn client(&self) -> &CacheClient {
        &self.inner.client
    }

    /// The tags of the answer about pet `id`.
    #[must_use]
    pub fn pet_tags(id: i64) -> Vec<Tag> {
        vec![tags::pet(id)]
    }

    /// The tags of the stats.
    #[must_use]
    pub fn stats_tags() -> Vec<Tag> {
        vec![tags::stats()]
    }

    /// The tags of a page of pets (its total is not part of it): each pet shown, and
    /// the pets before its end entering or leaving its species' lists (see `tags`).
    #[must_use]
    pub fn page_tags(filter: &PetFilter, pets: &[Pet]) -> Vec<Tag> {
        let ids: Vec<i64> = pets.iter().map(|p| p.id).collect();
        let mut out: Vec<Tag> = ids.iter().map(|&id| tags::pet(id)).collect();
        out.extend(membership_tags(
            filter.species.as_deref(),
            filter.limit,
            &ids,
        ));
        out
    }

    /// The per species and age counts lists' totals are summed from, from the cache or
    /// `loader` (one entry; every create, delete, species or age change invalidates it).
    pub async fn counts<F, Fut>(&self, loader: F) -> Result<Fetched<PetCounts>, CacheError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<PetCounts, DbErr>>,
    {
        let i = &self.inner;
        let tags_of = |_: &PetCounts| vec![tags::counts()];
        i.client
            .read(&i.counts, Part::Fixed("all"), i.list_ttl)
            .tags(tags_of)
            .load(loader)
            .await
    }

    /// The stats, from the cache or `loader`; with `STATS_REFRESH_AHEAD`, a hit close to
    /// its expiry is served and recomputed in the background (hence a `'static` loader).
    pub async fn stats<F, Fut>(&self, loader: F) -> Result<Fetched<StatsData>, CacheError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<StatsData, DbErr>> + Send + 'static,
    {
        let i = &self.inner;
        let tags_of = |_: &StatsData| vec![tags::stats()];
        i.client
            .read(&i.stats, Part::Fixed("all"), i.stats_ttl)
            .tags(tags_of)
            .refresh_ahead()
            .load(loader)
            .await
    }

    /// Call before writing pet `id` to the database (`None` for a create), with the
    /// tags the write invalidates. `Err(`[`CacheError::WriteRefused`]`)`: strict mode
    /// and Redis cannot be told; the database must not be written.
    pub(crate) async fn begin_write(
        &self,
        id: Option<i64>,
        tags: WriteTags,
    ) -> Result<PetWrite, CacheError> {
        let i = &self.inner;
        Ok(PetWrite(
            i.client.begin_write_tagged(&i.pet, id, tags.0).await?,
        ))
    }

    /// After a create or an update: `pet` is what the database now holds.
    pub(crate) async fn pet_written(&self, write: PetWrite, pet: &Pet) {
        let i = &self.inner;
        i.client
            .finish_write(write.0, pet.id, Some(pet), i.pet_ttl)
            .await;
    }

    /// After pet `id` was deleted.
    pub(crate) async fn pet_deleted(&self, write: PetWrite, id: i64) {
        let i = &self.inner;
        i.client
            .finish_write(write.0, id, None::<&Pet>, i.pet_ttl)
            .await;
    }

    /// Stops using L1 and gives this instance's L1 lease back (at shutdown), so strict
    /// writes on the other instances stop waiting for it.
    pub async fn close(&self) {
        self.inner.client.close().await;
    }

    /// Empties every tier (Redis: our prefix only) and tells the other instances.
    pub async fn flush(&self) -> Result<(), CacheError> {
        self.inner.client.flush().await
    }

    /// Counters of every tier, the loaders, the backplane and the recovery queue.
    #[must_use]
    pub fn cache_stats(&self) -> ClientStats {
        self.inner.client.stats()
    }

    /// Waits up to `timeout` for the backplane (only `l1+l2` has one) to subscribe;
    /// until it does, L1 is bypassed. True if it did or there is none.
    pub async fn wait_for_backplane(&self, timeout: Duration) -> bool {
        self.inner.client.wait_for_backplane(timeout).await
    }

    /// Whether the Redis tier's breaker is open (no round trip); `None` without Redis.
    #[must_use]
    pub fn redis_breaker_open(&self) -> Option<bool> {
        self.inner.client.l2().map(RedisTier::is_degraded)
    }

    /// The Redis tier (a cheap handle on the same connection, prefix, timeout and
    /// breaker), for the rate limiter; `None` when Redis is not a tier.
    #[must_use]
    pub fn redis_tier(&self) -> Option<RedisTier> {
        self.inner.client.l2().cloned()
    }

    /// The Redis tier's health; `None` when Redis is not a tier.
    pub async fn redis_health(&self) -> Option<RedisHealth> {
        let redis = self.inner.client.l2()?;
        let ping = redis.ping().await;
        Some(RedisHealth {
            up: ping.is_ok(),
            breaker_open: redis.is_degraded(),
            backplane_connected: self.inner.client.backplane_connected(),
            certificate_rejected: ping
                .as_ref()
                .is_err_and(CacheError::is_certificate_rejected),
            error: ping.err().map(|e| e.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::tags::{BUCKET, LEVELS, at, tail, up_to};
    use super::{CacheLayer, WriteTags};
    use crate::model::{Pet, PetFilter};

    /// A write of pet `id` reaches a full page ending at pet `last` exactly when `id`'s
    /// bucket is at most `last`'s.
    #[test]
    fn a_write_reaches_the_full_pages_whose_ids_reach_its_bucket_and_no_other() {
        let mut lasts: Vec<i64> = (0..600).collect();
        lasts.extend([
            BUCKET * 1000 - 1,
            BUCKET * 1000,
            BUCKET * 65_535,
            BUCKET * ((1 << LEVELS) - 2),
        ]);
        let mut ids: Vec<i64> = (0..700).step_by(7).collect();
        ids.extend([BUCKET * 999, BUCKET * 1000 + 5, BUCKET * 65_536, i64::MAX]);
        for &last in &lasts {
            let page = up_to(Some("cat"), last).expect("inside the blocks");
            assert!(!page.is_empty() && page.len() <= LEVELS as usize);
            for &id in &ids {
                let write = at(Some("cat"), id);
                let reaches = write.iter().any(|t| page.contains(t));
                assert_eq!(
                    reaches,
                    id / BUCKET <= last / BUCKET,
                    "last {last}, id {id}"
                );
                assert!(!at(Some("dog"), id).iter().any(|t| page.contains(t)));
                assert!(!at(None, id).iter().any(|t| page.contains(t)));
            }
        }
        // Past the blocks, a page carries its species' tail, which every such write bumps.
        assert!(up_to(Some("cat"), BUCKET * ((1 << LEVELS) - 1)).is_none());
        let pets = |ids: &[i64]| -> Vec<Pet> {
            ids.iter()
                .map(|&id| Pet {
                    id,
                    name: "p".into(),
                    species: "cat".into(),
                    age: 1,
                    happiness: 1,
                    created_at: String::new(),
                    updated_at: String::new(),
                })
                .collect()
        };
        let filter = PetFilter {
            species: Some("cat".into()),
            min_age: None,
            max_age: None,
            limit: 2,
            offset: 0,
        };
        let far = i64::MAX - 1;
        for not_full in [pets(&[5]), pets(&[]), pets(&[3, far])] {
            assert!(CacheLayer::page_tags(&filter, &not_full).contains(&tail(Some("cat"))));
        }
        let full = CacheLayer::page_tags(&filter, &pets(&[3, 4]));
        assert!(!full.contains(&tail(Some("cat"))));
        for write in [
            WriteTags::deleted(4, "cat"),
            WriteTags::changed(1, ("dog", 2, 5), ("cat", 2, 5)),
            WriteTags::changed(2, ("cat", 2, 5), ("cat", 3, 5)),
            WriteTags::placed(100, "cat"),
        ] {
            assert!(write.tags().iter().any(|t| full.contains(t)), "{write:?}");
        }
        for write in [
            WriteTags::created("cat"),
            WriteTags::placed(BUCKET, "cat"),
            WriteTags::changed(BUCKET * 3, ("dog", 2, 5), ("cat", 2, 5)),
            WriteTags::changed(1, ("cat", 2, 5), ("cat", 2, 6)),
            WriteTags::touched(1, true),
        ] {
            assert!(!write.tags().iter().any(|t| full.contains(t)), "{write:?}");
        }
    }
}
