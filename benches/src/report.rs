//! How a comparison is written: a markdown report and JSON. The plots are the `plot`
//! module's; the `compare` binary writes both.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::loadgen::XCacheCounts;
use crate::results::{Report, Verdict};
use anyhow::Result;

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

/// The markdown report.
#[must_use]
pub fn markdown(report: &Report) -> String {
    let m = &report.meta;
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
    for r in &report.ceilings {
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
    for r in &report.rows {
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
    if !report.targets.is_empty() {
        let _ = writeln!(s, "\n## Targets\n");
        s.push_str(&verdicts(&report.targets));
    }
    let errors: Vec<_> = report
        .ceilings
        .iter()
        .chain(&report.rows)
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

/// Writes `compare-<mode>.md` and `compare-<mode>.json` into `dir`; returns the paths
/// written.
pub fn write(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let base = format!("compare-{}", report.meta.mode);
    let md = dir.join(format!("{base}.md"));
    std::fs::write(&md, markdown(report))?;
    let json = dir.join(format!("{base}.json"));
    std::fs::write(&json, serde_json::to_vec_pretty(report)?)?;
    Ok(vec![md, json])
}

/// The verdicts as a markdown table.
fn verdicts(verdicts: &[Verdict]) -> String {
    let mut s = String::from("| target | measured | verdict |\n|---|---|---|\n");
    for v in verdicts {
        let verdict = match v.holds {
            Some(true) => "holds",
            Some(false) => "does not hold",
            None => "not measured",
        };
        let _ = writeln!(s, "| {} | {} | {verdict} |", v.target, v.measured);
    }
    s
}
