//! The cache's counters as a Prometheus [`Collector`]: read from the cache library at
//! each scrape ([`CacheLayer::cache_stats`]), never copied into metrics as they change.
//!
//! | family | type |
//! |---|---|
//! | `petshop_cache_{hits,misses,sets,deletes,errors,decode_failures,evictions,expirations,short_circuits}_total{tier}` | counter |
//! | `petshop_cache_loader_{calls,errors,coalesced,timeouts,stale_served,refreshes}_total` | counter |
//! | `petshop_cache_recovery_pending` | gauge |
//! | `petshop_cache_recovery_{queued,replayed,overflows,bypassed_reads}_total` | counter |
//! | `petshop_cache_backplane_connected` (with a backplane) | gauge |
//! | `petshop_cache_backplane_{published,received,drops}_total` (with a backplane) | counter |
//! | `petshop_cache_redis_breaker_open` (with Redis) | gauge |
//! | `petshop_cache_redis_round_trips_total{kind}` (with Redis: `read`, `fill`, `write`, `strict`, `backplane`, `health`, `admin`, `rate_limit`) | counter |

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};

use cache::ClientStats;
use cache::stats::{RoundTrip, TierSnapshot};

use crate::cache_layer::CacheLayer;

type TierField = fn(&TierSnapshot) -> u64;

const TIER_COUNTERS: [(&str, &str, TierField); 9] = [
    ("hits", "Reads answered by the tier.", |t| t.hits),
    ("misses", "Reads the tier could not answer.", |t| t.misses),
    ("sets", "Writes into the tier.", |t| t.sets),
    ("deletes", "Deletes sent to the tier.", |t| t.deletes),
    ("errors", "Failed tier operations.", |t| t.errors),
    ("decode_failures", "Entries that did not decode.", |t| {
        t.decode_failures
    }),
    ("evictions", "Entries dropped for space.", |t| t.evictions),
    ("expirations", "Entries dropped by TTL.", |t| t.expirations),
    (
        "short_circuits",
        "Operations skipped by the open circuit breaker.",
        |t| t.short_circuits,
    ),
];

const LOADER_COUNTERS: [(&str, &str); 6] = [
    ("calls", "Loader runs (trips to the database)."),
    ("errors", "Loader runs that failed."),
    (
        "coalesced",
        "Callers that waited for another caller's load.",
    ),
    ("timeouts", "Loads cut short by CACHE_LOAD_TIMEOUT."),
    (
        "stale_served",
        "Answers served stale because the database failed.",
    ),
    (
        "refreshes",
        "Background refreshes started by STATS_REFRESH_AHEAD.",
    ),
];

const RECOVERY_COUNTERS: [(&str, &str); 4] = [
    (
        "queued",
        "Cache-side effects of writes queued because Redis did not answer.",
    ),
    ("replayed", "Queued effects replayed once Redis answered."),
    (
        "overflows",
        "Times the recovery queue overflowed and fell back to a flush.",
    ),
    (
        "bypassed_reads",
        "Reads sent to the database because a queued effect concerned them.",
    ),
];

const BACKPLANE_COUNTERS: [(&str, &str); 3] = [
    ("published", "Invalidations published."),
    ("received", "Invalidations received from other instances."),
    ("drops", "Times the subscription dropped."),
];

fn counter(name: String, help: &str) -> IntCounter {
    IntCounter::with_opts(Opts::new(name, help)).expect("valid metric")
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::with_opts(Opts::new(name, help)).expect("valid metric")
}

/// Every family, unset: built afresh at each scrape and filled from one snapshot, so
/// concurrent scrapes share nothing.
struct Families {
    tiers: Vec<IntCounterVec>,
    loader: Vec<IntCounter>,
    recovery_pending: IntGauge,
    recovery: Vec<IntCounter>,
    backplane_connected: IntGauge,
    backplane: Vec<IntCounter>,
    breaker_open: IntGauge,
    round_trips: IntCounterVec,
}

impl Families {
    fn new() -> Self {
        Self {
            tiers: TIER_COUNTERS
                .iter()
                .map(|(name, help, _)| {
                    IntCounterVec::new(
                        Opts::new(format!("petshop_cache_{name}_total"), *help),
                        &["tier"],
                    )
                    .expect("valid metric")
                })
                .collect(),
            loader: LOADER_COUNTERS
                .iter()
                .map(|(n, h)| counter(format!("petshop_cache_loader_{n}_total"), h))
                .collect(),
            recovery_pending: gauge(
                "petshop_cache_recovery_pending",
                "Cache-side effects of writes waiting for Redis to answer.",
            ),
            recovery: RECOVERY_COUNTERS
                .iter()
                .map(|(n, h)| counter(format!("petshop_cache_recovery_{n}_total"), h))
                .collect(),
            backplane_connected: gauge(
                "petshop_cache_backplane_connected",
                "1 while the invalidation backplane is subscribed (L1 in use).",
            ),
            backplane: BACKPLANE_COUNTERS
                .iter()
                .map(|(n, h)| counter(format!("petshop_cache_backplane_{n}_total"), h))
                .collect(),
            breaker_open: gauge(
                "petshop_cache_redis_breaker_open",
                "1 while the Redis tier's circuit breaker is open.",
            ),
            round_trips: IntCounterVec::new(
                Opts::new(
                    "petshop_cache_redis_round_trips_total",
                    "Round trips to Redis on the command connection, by what they were for.",
                ),
                &["kind"],
            )
            .expect("valid metric"),
        }
    }

    fn collectors(&self) -> Vec<&dyn Collector> {
        let mut all: Vec<&dyn Collector> = Vec::new();
        all.extend(self.tiers.iter().map(|c| c as &dyn Collector));
        all.extend(self.loader.iter().map(|c| c as &dyn Collector));
        all.push(&self.recovery_pending);
        all.extend(self.recovery.iter().map(|c| c as &dyn Collector));
        all.push(&self.backplane_connected);
        all.extend(self.backplane.iter().map(|c| c as &dyn Collector));
        all.push(&self.breaker_open);
        all.push(&self.round_trips);
        all
    }

    /// The families of `stats`; those of absent parts (no backplane, no Redis) left out.
    fn of(stats: &ClientStats, breaker_open: Option<bool>) -> Vec<MetricFamily> {
        let f = Self::new();
        let mut out = Vec::new();
        for (vec, (_, _, get)) in f.tiers.iter().zip(TIER_COUNTERS) {
            for t in &stats.cache.tiers {
                vec.with_label_values(&[t.tier]).inc_by(get(t));
            }
            out.extend(vec.collect());
        }
        let l = &stats.cache.loader;
        let loader = [
            l.calls,
            l.errors,
            l.coalesced,
            l.timeouts,
            l.stale_served,
            l.refreshes,
        ];
        for (c, v) in f.loader.iter().zip(loader) {
            c.inc_by(v);
            out.extend(c.collect());
        }
        let r = &stats.recovery;
        f.recovery_pending
            .set(i64::try_from(r.pending).unwrap_or(i64::MAX));
        out.extend(f.recovery_pending.collect());
        for (c, v) in f
            .recovery
            .iter()
            .zip([r.queued, r.replayed, r.overflows, r.bypassed_reads])
        {
            c.inc_by(v);
            out.extend(c.collect());
        }
        if let Some(bp) = &stats.backplane {
            f.backplane_connected.set(i64::from(bp.connected));
            out.extend(f.backplane_connected.collect());
            for (c, v) in f
                .backplane
                .iter()
                .zip([bp.published, bp.received, bp.drops])
            {
                c.inc_by(v);
                out.extend(c.collect());
            }
        }
        if let Some(open) = breaker_open {
            f.breaker_open.set(i64::from(open));
            out.extend(f.breaker_open.collect());
        }
        if let Some(l2) = stats.cache.tier("l2") {
            for kind in RoundTrip::ALL {
                f.round_trips
                    .with_label_values(&[kind.as_str()])
                    .inc_by(l2.round_trips_of(kind));
            }
            out.extend(f.round_trips.collect());
        }
        out
    }
}

/// See the module docs.
pub struct CacheCollector {
    cache: CacheLayer,
    /// The families' descriptions, for the registry's checks.
    template: Families,
}

impl CacheCollector {
    /// Reports `cache`.
    #[must_use]
    pub fn new(cache: CacheLayer) -> Self {
        Self {
            cache,
            template: Families::new(),
        }
    }
}

impl Collector for CacheCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.template
            .collectors()
            .into_iter()
            .flat_map(Collector::desc)
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        Families::of(&self.cache.cache_stats(), self.cache.redis_breaker_open())
    }
}
