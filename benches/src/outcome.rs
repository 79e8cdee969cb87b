//! What a load run applies and what it measured: [`LoadSpec`], [`LoadResult`] (HDR
//! latencies in nanoseconds, `X-Cache` tallies, stale reads).

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Error messages kept per run, for the report.
const KEPT_ERRORS: usize = 5;
/// Highest latency the histograms track: 60 s.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// How much load a run applies.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct LoadSpec {
    /// Workers, each with one connection and one request in flight.
    pub concurrency: usize,
    /// Time bound of the run.
    pub duration: Duration,
    /// Request bound of the run.
    pub max_requests: u64,
    /// A run of the same load before the measured one, not counted: caches fill and
    /// the service reaches its steady state.
    pub warmup: Duration,
}

impl LoadSpec {
    /// The warm-up run: the same load for [`Self::warmup`]; `None` when there is none.
    #[must_use]
    pub fn warmup_run(&self) -> Option<Self> {
        (!self.warmup.is_zero()).then_some(Self {
            duration: self.warmup,
            max_requests: u64::MAX,
            warmup: Duration::ZERO,
            ..*self
        })
    }
}

/// `X-Cache` values seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct XCacheCounts {
    /// `HIT-L1`.
    pub hit_l1: u64,
    /// `HIT-L2`.
    pub hit_l2: u64,
    /// `STALE`: served while invalidated, within a soft-invalidation bound.
    #[serde(default)]
    pub stale: u64,
    /// `MISS`.
    pub miss: u64,
    /// `BYPASS`.
    pub bypass: u64,
    /// Responses without the header (writes, health, errors).
    pub absent: u64,
}

impl XCacheCounts {
    pub(crate) fn add(&mut self, value: Option<&str>) {
        match value {
            Some("HIT-L1") => self.hit_l1 += 1,
            Some("HIT-L2") => self.hit_l2 += 1,
            Some("STALE") => self.stale += 1,
            Some("MISS") => self.miss += 1,
            Some("BYPASS") => self.bypass += 1,
            _ => self.absent += 1,
        }
    }

    fn merge(&mut self, o: &Self) {
        self.hit_l1 += o.hit_l1;
        self.hit_l2 += o.hit_l2;
        self.stale += o.stale;
        self.miss += o.miss;
        self.bypass += o.bypass;
        self.absent += o.absent;
    }
}

/// The outcome of one run.
#[derive(Clone, Debug)]
pub struct LoadResult {
    /// Requests sent (answered or failed).
    pub requests: u64,
    /// Requests that change data.
    pub writes: u64,
    /// Writes that change which pets a list holds (creates, deletes, species and age
    /// changes): each invalidates every list of its species and the unfiltered ones.
    pub list_writes: u64,
    /// Transport errors and non-2xx answers.
    pub errors: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latencies of successful requests, in nanoseconds.
    pub latency: Histogram<u64>,
    /// `X-Cache` values of successful responses.
    pub x_cache: XCacheCounts,
    /// Reads (`GET /pets/{id}`, list pages) showing a pet older than a write
    /// acknowledged before they began.
    pub stale_reads: u64,
    /// Reads that had an acknowledged write to compare against.
    pub checked_reads: u64,
    /// The longest a replaced version was served after its replacing write was
    /// acknowledged (zero without stale reads).
    pub worst_stale: Duration,
    /// Reads showing a pet older than another read had already shown (see
    /// [`crate::staleness`]).
    pub backwards_reads: u64,
    /// The longest of those: how long before such a read began the newer version had
    /// been shown.
    pub worst_backwards: Duration,
    /// The first few error messages.
    pub sample_errors: Vec<String>,
}

impl LoadResult {
    pub(crate) fn empty() -> Self {
        Self {
            requests: 0,
            writes: 0,
            list_writes: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            latency: histogram(),
            x_cache: XCacheCounts::default(),
            stale_reads: 0,
            checked_reads: 0,
            worst_stale: Duration::ZERO,
            backwards_reads: 0,
            worst_backwards: Duration::ZERO,
            sample_errors: Vec::new(),
        }
    }

    pub(crate) fn merge(&mut self, o: &Self) {
        self.requests += o.requests;
        self.writes += o.writes;
        self.list_writes += o.list_writes;
        self.errors += o.errors;
        self.latency.add(&o.latency).expect("same histogram bounds");
        self.x_cache.merge(&o.x_cache);
        self.stale_reads += o.stale_reads;
        self.checked_reads += o.checked_reads;
        self.worst_stale = self.worst_stale.max(o.worst_stale);
        self.backwards_reads += o.backwards_reads;
        self.worst_backwards = self.worst_backwards.max(o.worst_backwards);
        for e in &o.sample_errors {
            if self.sample_errors.len() < KEPT_ERRORS {
                self.sample_errors.push(e.clone());
            }
        }
    }

    /// Requests per second over the run.
    #[must_use]
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.requests as f64 / secs
        } else {
            0.0
        }
    }

    /// The latency at `quantile` (0–1), in microseconds.
    #[must_use]
    pub fn latency_us(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1_000.0
    }

    pub(crate) fn error(&mut self, msg: String) {
        self.errors += 1;
        if self.sample_errors.len() < KEPT_ERRORS {
            self.sample_errors.push(msg);
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid histogram bounds")
}

/// Records the latency of a request sent at `started`.
pub(crate) fn record(out: &mut LoadResult, started: Instant) {
    let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    out.latency.saturating_record(ns.max(1));
}
