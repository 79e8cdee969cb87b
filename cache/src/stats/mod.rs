//! Counters per tier, loaders, the backplane and the recovery queue, the latency of
//! each operation (`latency.rs`, over `histogram.rs`), and the snapshots other crates
//! export.

mod histogram;
mod latency;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use self::histogram::{BOUNDS_MICROS, Histogram, HistogramSnapshot};
pub(crate) use self::latency::Latencies;
pub use self::latency::{Operation, OperationLatency, Outcome, latency_of};

pub use crate::client::backplane::BackplaneSnapshot;
pub use crate::client::recovery::RecoverySnapshot;

/// Live counters of one tier. Cheap to update from any thread.
#[derive(Debug, Default)]
pub struct TierStats {
    hits: AtomicU64,
    misses: AtomicU64,
    sets: AtomicU64,
    deletes: AtomicU64,
    errors: AtomicU64,
    decode_failures: AtomicU64,
    evictions: AtomicU64,
    expirations: AtomicU64,
    short_circuits: AtomicU64,
    round_trips: [AtomicU64; RoundTrip::ALL.len()],
    latency: Latencies,
}

/// What a round trip to Redis was for: the kinds [`TierSnapshot::round_trips`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RoundTrip {
    /// A read: entries with their generation and tag versions, or versions alone.
    Read,
    /// A reader's fill: its token, its guarded store, its loading lease.
    Fill,
    /// A step of an available write (its invalidations, stores, bumps and message).
    Write,
    /// A strict write's hold or release.
    Strict,
    /// The backplane on the command connection: a message sent on its own, the L1 lease.
    Backplane,
    /// A `PING` (the breaker's probe, a health check).
    Health,
    /// An admin action: the flush, a new generation.
    Admin,
    /// A rate-limit count.
    RateLimit,
}

impl RoundTrip {
    /// Every kind, in the order snapshots list them.
    pub const ALL: [Self; 8] = [
        Self::Read,
        Self::Fill,
        Self::Write,
        Self::Strict,
        Self::Backplane,
        Self::Health,
        Self::Admin,
        Self::RateLimit,
    ];

    /// `read`, `fill`, `write`, `strict`, `backplane`, `health`, `admin` or `rate_limit`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Fill => "fill",
            Self::Write => "write",
            Self::Strict => "strict",
            Self::Backplane => "backplane",
            Self::Health => "health",
            Self::Admin => "admin",
            Self::RateLimit => "rate_limit",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

macro_rules! counters {
    ($($field:ident => $fn:ident),* $(,)?) => {
        impl TierStats {
            $(
                #[doc = concat!("Counts one more `", stringify!($field), "`.")]
                pub fn $fn(&self) { self.$field.fetch_add(1, Relaxed); }
            )*
        }
    };
}
counters!(
    hits => hit, misses => miss, sets => set, deletes => delete, errors => error,
    decode_failures => decode_failure, evictions => eviction, expirations => expiration,
    short_circuits => short_circuit,
);

impl TierStats {
    /// Counts one more round trip to the server, of `kind`.
    pub fn round_trip(&self, kind: RoundTrip) {
        self.round_trips[kind.index()].fetch_add(1, Relaxed);
    }

    /// Counts how long `operation` took since `began`, and how it ended.
    pub fn timed(&self, operation: Operation, outcome: Outcome, began: Instant) {
        self.latency.since(operation, outcome, began);
    }

    /// A consistent-enough copy of the counters, labelled with the tier's name.
    #[must_use]
    pub fn snapshot(&self, tier: &'static str) -> TierSnapshot {
        TierSnapshot {
            tier,
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            sets: self.sets.load(Relaxed),
            deletes: self.deletes.load(Relaxed),
            errors: self.errors.load(Relaxed),
            decode_failures: self.decode_failures.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            expirations: self.expirations.load(Relaxed),
            short_circuits: self.short_circuits.load(Relaxed),
            round_trips: RoundTrip::ALL
                .iter()
                .map(|k| (k.as_str(), self.round_trips[k.index()].load(Relaxed)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            latency: self.latency.snapshot(),
        }
    }
}

/// The counters of one tier at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TierSnapshot {
    /// `"l1"`, `"l2"` or `"none"`.
    pub tier: &'static str,
    /// Reads answered by this tier.
    pub hits: u64,
    /// Reads this tier could not answer (absent, expired or undecodable).
    pub misses: u64,
    /// Writes into this tier (including promotions into L1).
    pub sets: u64,
    /// Deletes sent to this tier.
    pub deletes: u64,
    /// Failed operations (connection errors, timeouts, server errors).
    pub errors: u64,
    /// Entries found under our keys that did not decode; each also counts as a miss.
    pub decode_failures: u64,
    /// Entries dropped to keep the tier within its byte budget.
    pub evictions: u64,
    /// Entries dropped because their TTL ran out.
    pub expirations: u64,
    /// Operations skipped because the circuit breaker was open.
    pub short_circuits: u64,
    /// Round trips to the server by what they were for ([`RoundTrip::as_str`]; kinds
    /// with none left out). Only a shared tier has any: each command, script or
    /// pipeline sent on the command connection is one (the parts of a cluster operation
    /// sent together to several slots are one); the subscription's own connection is
    /// not counted.
    pub round_trips: BTreeMap<&'static str, u64>,
    /// How long its operations took, per operation and outcome (those with any).
    pub latency: Vec<OperationLatency>,
}

impl TierSnapshot {
    /// The round trips of `kind` (0 when there were none).
    #[must_use]
    pub fn round_trips_of(&self, kind: RoundTrip) -> u64 {
        self.round_trips.get(kind.as_str()).copied().unwrap_or(0)
    }

    /// Hits over reads, or 0 when there were no reads.
    #[must_use]
    pub fn hit_ratio(&self) -> f64 {
        let reads = self.hits + self.misses;
        if reads == 0 {
            0.0
        } else {
            self.hits as f64 / reads as f64
        }
    }
}

/// Live counters of the loaders run by [`crate::typed::TypedCache::get_or_load`].
#[derive(Debug, Default)]
pub(crate) struct LoaderStats {
    pub(crate) calls: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) stale_served: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) latency: Latencies,
    soft_age: Histogram,
    serve_stale_age: Histogram,
}

/// Counters of the loaders at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LoaderSnapshot {
    /// Loader runs (each one a trip to the source of truth).
    pub calls: u64,
    /// Loader runs that failed.
    pub errors: u64,
    /// Callers that waited for another caller's load instead of running their own.
    pub coalesced: u64,
    /// Loads abandoned after the serve-stale load timeout (also counted in `errors`).
    pub timeouts: u64,
    /// Answers served stale because a load failed (see [`crate::policy::StaleConfig`]).
    pub stale_served: u64,
    /// Background reloads started by refresh-ahead (also counted in `calls`).
    pub refreshes: u64,
    /// How long loader runs took (`load`, `ok` or `error`).
    pub latency: Vec<OperationLatency>,
    /// How long ago the answers served stale under soft invalidation were invalidated.
    pub soft_age: HistogramSnapshot,
    /// How long ago the last good values served for failed loads were loaded.
    pub serve_stale_age: HistogramSnapshot,
    /// Serve-stale's bound on that age ([`crate::policy::StaleConfig::max_stale`]),
    /// when it is on.
    pub serve_stale_bound: Option<Duration>,
}

impl LoaderStats {
    /// Counts an answer served stale under soft invalidation, invalidated `age` ago.
    pub(crate) fn served_soft(&self, age: Duration) {
        self.stale_served.fetch_add(1, Relaxed);
        self.soft_age.record(age);
    }

    /// Counts a last good value served for a failed load, loaded `age` ago.
    pub(crate) fn served_last_good(&self, age: Duration) {
        self.stale_served.fetch_add(1, Relaxed);
        self.serve_stale_age.record(age);
    }

    /// Counts a loader run that began at `began` and succeeded (`ok`) or not.
    pub(crate) fn timed(&self, ok: bool, began: Instant) {
        let outcome = if ok { Outcome::Ok } else { Outcome::Error };
        self.latency.since(Operation::Load, outcome, began);
    }

    pub(crate) fn snapshot(&self) -> LoaderSnapshot {
        LoaderSnapshot {
            calls: self.calls.load(Relaxed),
            errors: self.errors.load(Relaxed),
            coalesced: self.coalesced.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            stale_served: self.stale_served.load(Relaxed),
            refreshes: self.refreshes.load(Relaxed),
            latency: self.latency.snapshot(),
            soft_age: self.soft_age.snapshot(),
            serve_stale_age: self.serve_stale_age.snapshot(),
            serve_stale_bound: None,
        }
    }
}

/// Everything counted by a [`crate::typed::TypedCache`]: each tier, then the loaders.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// One snapshot per tier, nearest first.
    pub tiers: Vec<TierSnapshot>,
    /// Loader counters.
    pub loader: LoaderSnapshot,
}

impl CacheStats {
    /// The snapshot of the tier called `name`, if present.
    #[must_use]
    pub fn tier(&self, name: &str) -> Option<&TierSnapshot> {
        self.tiers.iter().find(|t| t.tier == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_copy_counters_and_compute_the_hit_ratio() {
        let s = TierStats::default();
        s.hit();
        s.hit();
        s.hit();
        s.miss();
        s.decode_failure();
        let snap = s.snapshot("l1");
        assert_eq!((snap.hits, snap.misses, snap.decode_failures), (3, 1, 1));
        assert!((snap.hit_ratio() - 0.75).abs() < 1e-9);
        assert_eq!(TierSnapshot::default().hit_ratio(), 0.0);
    }
}
