//! The comparison's rows and how they are written: a markdown table and JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
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
    /// Where the project's targets stand in this run ([`crate::targets::evaluate`]).
    pub targets: Vec<crate::targets::Verdict>,
}

fn ratio(v: Option<&f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

fn hits(x: &XCacheCounts) -> String {
    let served = x.hit_l1 + x.hit_l2 + x.miss + x.bypass;
    if served == 0 {
        return "-".to_owned();
    }
    let pct = |n: u64| n as f64 * 100.0 / served as f64;
    format!(
        "{:.0}/{:.0}/{:.0}",
        pct(x.hit_l1),
        pct(x.hit_l2),
        pct(x.miss + x.bypass)
    )
}

impl Report {
    /// The markdown report.
    #[must_use]
    pub fn markdown(&self) -> String {
        let m = &self.meta;
        let mut s = String::new();
        let _ = writeln!(s, "# Cache comparison ({})\n", m.mode);
        let _ = writeln!(
            s,
            "Database: {}, {} pets; {} CPUs shared by generator and service (load average {} \
             at start). Load per row: {} connections, at most {:?} and {} requests. \
             Latencies in µs. Hit ratios from `/cache/stats` deltas; X-Cache = % of responses \
             HIT-L1/HIT-L2/MISS+BYPASS. Stale = reads of `GET /pets/{{id}}` returning a version \
             that a write acknowledged before they began had replaced / reads checkable. \
             Bare endpoint: {}.\n",
            m.database,
            m.pets,
            m.cpus,
            m.load_average
                .map_or_else(|| "unknown".to_owned(), |l| format!("{l:.2}")),
            m.load.concurrency,
            m.load.duration,
            m.load.max_requests,
            m.bare_endpoint
        );
        let _ = writeln!(s, "## Ceilings\n");
        let _ = writeln!(s, "| ceiling | req/s | p50 | p99 | p99.9 | errors |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
        for r in &self.ceilings {
            let _ = writeln!(
                s,
                "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
                r.workload, r.rps, r.p50_us, r.p99_us, r.p999_us, r.errors
            );
        }
        let _ = writeln!(s, "\n## Configurations\n");
        let _ = writeln!(
            s,
            "| topology | strategy | workload | req/s | p50 | p99 | p99.9 | hit L1 | hit L2 | X-Cache | DB q/req | errors | stale |"
        );
        let _ = writeln!(
            s,
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {}/{} |",
                r.topology,
                r.strategy,
                r.workload,
                r.rps,
                r.p50_us,
                r.p99_us,
                r.p999_us,
                ratio(r.hit_ratio.get("l1")),
                ratio(r.hit_ratio.get("l2")),
                hits(&r.x_cache),
                r.db_queries_per_request
                    .map_or_else(|| "-".to_owned(), |q| format!("{q:.2}")),
                r.errors,
                r.stale_reads,
                r.checked_reads,
            );
        }
        if !self.targets.is_empty() {
            let _ = writeln!(s, "\n## Targets\n");
            s.push_str(&crate::targets::markdown(&self.targets));
        }
        let errors: Vec<_> = self
            .ceilings
            .iter()
            .chain(&self.rows)
            .filter(|r| !r.sample_errors.is_empty())
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(s, "\n## Sample errors\n");
            for r in errors {
                let _ = writeln!(
                    s,
                    "- {} {}: {}",
                    r.config(),
                    r.workload,
                    r.sample_errors.join("; ")
                );
            }
        }
        s
    }

    /// Writes `compare-<mode>.md`, `compare-<mode>.json` and the plots into `dir`;
    /// returns the paths written.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let base = format!("compare-{}", self.meta.mode);
        let md = dir.join(format!("{base}.md"));
        std::fs::write(&md, self.markdown())?;
        let json = dir.join(format!("{base}.json"));
        std::fs::write(&json, serde_json::to_vec_pretty(self)?)?;
        let mut written = vec![md, json];
        written.extend(crate::plot::write_all(self, dir, &base)?);
        Ok(written)
    }
}
