//! What a comparison measured, as plain data: its rows, how it was run, and where the
//! targets stand. Everything else (running, judging, writing, plotting) reads or fills
//! these types; this module imports only a load run's outcome types.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::outcome::{LoadResult, LoadSpec, XCacheCounts};

/// One measured run: a configuration and a workload (or a ceiling).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Row {
    /// `none`, `l1`, `l2`, `l1+l2`, `nginx` (a proxy cache in front of `none`), or
    /// `ceiling`.
    pub topology: String,
    /// `cache-aside`, `write-through`, `versioned`, or `-` for ceilings.
    pub strategy: String,
    /// What else sets the service apart, e.g. `soft 500ms`; empty for none.
    pub variant: String,
    /// The workload name.
    pub workload: String,
    /// Requests sent.
    pub requests: u64,
    /// Requests that changed data.
    pub writes: u64,
    /// Writes that changed which pets a list holds.
    pub list_writes: u64,
    /// Requests per second.
    pub rps: f64,
    /// Throughput over `GET /health` of the same service in the same run.
    pub vs_health: Option<f64>,
    /// A mix's throughput over its Amdahl ceiling: what its reads alone and its writes
    /// alone of the same service, same run, would add up to ([`crate::amdahl`]).
    #[serde(default)]
    pub of_ceiling: Option<f64>,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// Hit ratio per tier from the service's `/cache/stats` deltas.
    pub hit_ratio: BTreeMap<String, f64>,
    /// `X-Cache` values of successful responses.
    pub x_cache: XCacheCounts,
    /// SQL queries per request from `/metrics`, when the service exports them.
    pub db_queries_per_request: Option<f64>,
    /// Transport errors and non-2xx answers.
    pub errors: u64,
    /// Reads showing a pet older than a write acknowledged before they began.
    pub stale_reads: u64,
    /// Reads that could be checked.
    pub checked_reads: u64,
    /// The longest a replaced version was served after its write was acknowledged, ms.
    pub worst_stale_ms: f64,
    /// Reads showing a pet older than another read had already shown.
    #[serde(default)]
    pub backwards_reads: u64,
    /// The longest of those, ms.
    #[serde(default)]
    pub worst_backwards_ms: f64,
    /// The first few error messages.
    pub sample_errors: Vec<String>,
}

impl Row {
    /// A row of `result` for a configuration and workload.
    #[must_use]
    pub fn new(topology: &str, strategy: &str, workload: &str, result: &LoadResult) -> Self {
        Self {
            topology: topology.to_owned(),
            strategy: strategy.to_owned(),
            variant: String::new(),
            workload: workload.to_owned(),
            requests: result.requests,
            writes: result.writes,
            list_writes: result.list_writes,
            rps: result.throughput(),
            vs_health: None,
            of_ceiling: None,
            p50_us: result.latency_us(0.5),
            p99_us: result.latency_us(0.99),
            p999_us: result.latency_us(0.999),
            hit_ratio: BTreeMap::new(),
            x_cache: result.x_cache,
            db_queries_per_request: None,
            errors: result.errors,
            stale_reads: result.stale_reads,
            checked_reads: result.checked_reads,
            worst_stale_ms: result.worst_stale.as_secs_f64() * 1_000.0,
            backwards_reads: result.backwards_reads,
            worst_backwards_ms: result.worst_backwards.as_secs_f64() * 1_000.0,
            sample_errors: result.sample_errors.clone(),
        }
    }

    /// `topology/strategy` (and the variant), the configuration's label.
    #[must_use]
    pub fn config(&self) -> String {
        if self.variant.is_empty() {
            format!("{}/{}", self.topology, self.strategy)
        } else {
            format!("{}/{} ({})", self.topology, self.strategy, self.variant)
        }
    }
}

/// How a comparison was run.
#[derive(Clone, Debug, Serialize)]
pub struct Meta {
    /// `quick`, `full`, ...
    pub mode: String,
    /// `sqlite` or `postgres`.
    pub database: String,
    /// Seeded pets.
    pub pets: u64,
    /// Load per run (its warm-up included).
    pub load: LoadSpec,
    /// The TTL of lists, pets and stats in every service of the run.
    pub cache_ttl: Duration,
    /// What the bare-endpoint ceiling requested.
    pub bare_endpoint: String,
    /// Seconds since the Unix epoch at the start.
    pub started_unix: u64,
    /// CPUs available to the run (generator and services share them).
    pub cpus: usize,
    /// The 1-minute load average when the run began (Linux), a hint of other work.
    pub load_average: Option<f64>,
}

/// A scenario of its own: rows on a database of its own size, or a reason it did not run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Section {
    /// What it ran against and how.
    pub note: String,
    /// Why it did not run, when it did not (never a made-up number).
    pub skipped: Option<String>,
    /// Its rows.
    pub rows: Vec<Row>,
}

impl Section {
    /// A section that did not run, and why.
    #[must_use]
    pub fn skipped(why: &str) -> Self {
        Self {
            skipped: Some(why.to_owned()),
            ..Self::default()
        }
    }
}

/// Resident memory of one service after the memory scenario's sweep.
#[derive(Clone, Debug, Serialize)]
pub struct MemoryRow {
    /// `none` or `l1`.
    pub topology: String,
    /// `L1_MAX_BYTES`, for `l1`.
    pub l1_max_bytes: Option<u64>,
    /// `GET /pets/{id}` sent.
    pub requests: u64,
    /// Distinct pets read.
    pub distinct_ids: u64,
    /// Non-2xx answers and transport errors.
    pub errors: u64,
    /// `VmRSS` of the service process after the sweep; `None` when it has no process
    /// of its own (an in-process service).
    pub rss_bytes: Option<u64>,
}

/// The L1 memory scenario.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MemorySection {
    /// What it ran against and how.
    pub note: String,
    /// Why it did not run, when it did not.
    pub skipped: Option<String>,
    /// `none` first, then one row per budget.
    pub rows: Vec<MemoryRow>,
}

/// A whole comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// How it was run.
    pub meta: Meta,
    /// The Redis round trip, same generator and concurrency.
    pub ceilings: Vec<Row>,
    /// One row per configuration and workload; each service's `health` and `bare`
    /// ceilings sit beside its workloads.
    pub rows: Vec<Row>,
    /// The seed tutorial's 95/5 mix, on its own database.
    pub seed_mix: Section,
    /// An nginx microcache in front of the uncached pet shop, beside our L1.
    pub microcache: Section,
    /// Resident memory against `L1_MAX_BYTES`.
    pub memory: MemorySection,
    /// Where the project's targets stand in this run (filled by `targets::evaluate`).
    pub targets: Vec<Verdict>,
}

/// One target and where this run stands.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// The goal, in words.
    pub target: String,
    /// What was measured.
    pub measured: String,
    /// What it was measured against, with its own number.
    pub baseline: String,
    /// `Some(true)` holds, `Some(false)` does not, `None` not measured in this run.
    pub holds: Option<bool>,
    /// What the number means, and why a target does not hold.
    pub why: String,
}

impl Verdict {
    /// A verdict.
    #[must_use]
    pub fn new(
        target: impl Into<String>,
        measured: impl Into<String>,
        baseline: impl Into<String>,
        holds: Option<bool>,
        why: impl Into<String>,
    ) -> Self {
        Self {
            target: target.into(),
            measured: measured.into(),
            baseline: baseline.into(),
            holds,
            why: why.into(),
        }
    }

    /// A target this run has no row to judge by.
    #[must_use]
    pub fn unmeasured(target: &str, why: &str) -> Self {
        Self::new(target, "-", "-", None, why)
    }
}
