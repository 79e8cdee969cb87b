//! What a comparison measured, as plain data: its rows, how it was run, and where the
//! targets stand. Everything else (running, judging, writing, plotting) reads or fills
//! these types; this module imports only the load generator's result types.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::loadgen::{LoadResult, LoadSpec, XCacheCounts};

/// One measured run: a configuration and a workload (or a ceiling).
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// `none`, `l1`, `l2`, `l1+l2`, or `ceiling`.
    pub topology: String,
    /// `cache-aside`, `write-through`, `versioned`, or `-` for ceilings.
    pub strategy: String,
    /// The workload name.
    pub workload: String,
    /// Requests sent.
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
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
    /// Stale reads of `GET /pets/{id}`.
    pub stale_reads: u64,
    /// `GET /pets/{id}` reads that could be checked.
    pub checked_reads: u64,
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
            workload: workload.to_owned(),
            requests: result.requests,
            rps: result.throughput(),
            p50_us: result.latency_us(0.5),
            p99_us: result.latency_us(0.99),
            p999_us: result.latency_us(0.999),
            hit_ratio: BTreeMap::new(),
            x_cache: result.x_cache,
            db_queries_per_request: None,
            errors: result.errors,
            stale_reads: result.stale_reads,
            checked_reads: result.checked_reads,
            sample_errors: result.sample_errors.clone(),
        }
    }

    /// `topology/strategy`, the configuration's label in tables and plots.
    #[must_use]
    pub fn config(&self) -> String {
        format!("{}/{}", self.topology, self.strategy)
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
    /// Load per run.
    pub load: LoadSpec,
    /// What the bare-endpoint ceiling requested.
    pub bare_endpoint: String,
    /// Seconds since the Unix epoch at the start.
    pub started_unix: u64,
    /// CPUs available to the run (generator and services share them).
    pub cpus: usize,
    /// The 1-minute load average when the run began (Linux), a hint of other work.
    pub load_average: Option<f64>,
}

/// A whole comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// How it was run.
    pub meta: Meta,
    /// Bare endpoint and Redis round trip, same generator and concurrency.
    pub ceilings: Vec<Row>,
    /// One row per configuration and workload.
    pub rows: Vec<Row>,
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
    /// `Some(true)` holds, `Some(false)` does not, `None` not measured in this run.
    pub holds: Option<bool>,
}

impl Verdict {
    /// A verdict.
    #[must_use]
    pub fn new(
        target: impl Into<String>,
        measured: impl Into<String>,
        holds: Option<bool>,
    ) -> Self {
        Self {
            target: target.into(),
            measured: measured.into(),
            holds,
        }
    }

    /// A target this run has no row to judge by.
    #[must_use]
    pub fn unmeasured(target: &str, why: &str) -> Self {
        Self::new(target, why, None)
    }
}
