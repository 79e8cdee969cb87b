//! How a comparison is written: a markdown report and JSON. The plots are the `plot`
//! module's; the `compare` binary writes both.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::outcome::XCacheCounts;
use crate::results::{MemorySection, Report, Row, Section, Verdict};

fn ratio(v: Option<&f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

fn hits(x: &XCacheCounts) -> String {
    let served = x.hit_l1 + x.hit_l2 + x.stale + x.miss + x.bypass;
    if served == 0 {
        return "-".to_owned();
    }
    let pct = |n: u64| n as f64 * 100.0 / served as f64;
    format!(
        "{:.0}/{:.0}/{:.0}/{:.0}",
        pct(x.hit_l1),
        pct(x.hit_l2),
        pct(x.stale),
        pct(x.miss + x.bypass)
    )
}

/// `stale/checked`, with the worst window when a read was stale.
fn stale(r: &Row) -> String {
    if r.stale_reads == 0 {
        format!("{}/{}", r.stale_reads, r.checked_reads)
    } else {
        format!(
            "{}/{}, worst {:.0} ms",
            r.stale_reads, r.checked_reads, r.worst_stale_ms
        )
    }
}

/// Backwards reads, with the worst window when there were any.
fn backwards(r: &Row) -> String {
    if r.backwards_reads == 0 {
        "0".to_owned()
    } else {
        format!(
            "{}, worst {:.1} ms",
            r.backwards_reads, r.worst_backwards_ms
        )
    }
}

const ROW_HEADER: &str = "| topology | strategy | workload | req/s | × /health | of ceiling | p50 | p99 | p99.9 | hit L1 | hit L2 | X-Cache | DB q/req | errors | stale | backwards |\n\
                          |---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";

fn rows_table(s: &mut String, rows: &[Row]) {
    s.push_str(ROW_HEADER);
    for r in rows {
        let strategy = if r.variant.is_empty() {
            r.strategy.clone()
        } else {
            format!("{} ({})", r.strategy, r.variant)
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.0} | {} | {} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} |",
            r.topology,
            strategy,
            r.workload,
            r.rps,
            r.vs_health
                .map_or_else(|| "-".to_owned(), |x| format!("{x:.2}×")),
            r.of_ceiling
                .map_or_else(|| "-".to_owned(), |x| format!("{x:.2}×")),
            r.p50_us,
            r.p99_us,
            r.p999_us,
            ratio(r.hit_ratio.get("l1")),
            ratio(r.hit_ratio.get("l2")),
            hits(&r.x_cache),
            r.db_queries_per_request
                .map_or_else(|| "-".to_owned(), |q| format!("{q:.3}")),
            r.errors,
            stale(r),
            backwards(r),
        );
    }
}

fn section(s: &mut String, title: &str, sec: &Section) {
    let _ = writeln!(s, "\n## {title}\n");
    if let Some(why) = &sec.skipped {
        let _ = writeln!(s, "{why}");
        return;
    }
    if !sec.note.is_empty() {
        let _ = writeln!(s, "{}\n", sec.note);
    }
    rows_table(s, &sec.rows);
}

fn memory(s: &mut String, m: &MemorySection) {
    let _ = writeln!(s, "\n## L1 memory\n");
    if let Some(why) = &m.skipped {
        let _ = writeln!(s, "{why}");
        return;
    }
    if !m.note.is_empty() {
        let _ = writeln!(s, "{}\n", m.note);
    }
    let mib = |b: f64| b / f64::from(1u32 << 20);
    let base = m
        .rows
        .iter()
        .find(|r| r.topology == "none")
        .and_then(|r| r.rss_bytes);
    s.push_str("| tiers | L1_MAX_BYTES | requests | distinct pets | errors | resident (MiB) | growth over none (MiB) | growth / budget |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in &m.rows {
        let rss = r.rss_bytes.map_or_else(
            || "no process".to_owned(),
            |b| format!("{:.1}", mib(b as f64)),
        );
        let growth = r
            .rss_bytes
            .zip(base)
            .map(|(b, n)| b as f64 - n as f64)
            .filter(|_| r.topology != "none");
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {rss} | {} | {} |",
            r.topology,
            r.l1_max_bytes
                .map_or_else(|| "-".to_owned(), |b| format!("{:.0} MiB", mib(b as f64))),
            r.requests,
            r.distinct_ids,
            r.errors,
            growth.map_or_else(|| "-".to_owned(), |g| format!("{:+.1}", mib(g))),
            growth
                .zip(r.l1_max_bytes)
                .map_or_else(|| "-".to_owned(), |(g, b)| format!("{:.2}×", g / b as f64)),
        );
    }
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
         at start). Load per row: {} connections, a warm-up of {:?} (not counted), then at \
         most {:?} and {} requests measured. Before its first zipf or mix row, each service \
         with a cache is primed (not counted): every distinct list query and every pet read \
         once, as a service that has run for a while has seen them. Every service's lists, pets and stats live \
         {:?} (`PETS_LIST_TTL`, `PET_TTL`, `STATS_TTL`), longer than the service runs: \
         entries end by invalidation, not expiry. Latencies in µs. × /health = throughput \
         over `GET /health` of the same service in the same run. Of ceiling = a mix's \
         throughput over its Amdahl ceiling, 1 / (r / reads alone + w / writes alone), \
         from the rows `mix-100/0` (its reads alone, on a warm cache) and `mix-0/100` (its \
         writes alone) of the same service in the same run. Hit ratios from \
         `/cache/stats` deltas; X-Cache = % of responses HIT-L1/HIT-L2/STALE/MISS+BYPASS. \
         DB q/req = SQL statements per request, writes included. Stale = reads (`GET \
         /pets/{{id}}` and list pages) showing a pet version that a write acknowledged \
         before they began had replaced / reads checkable, with the worst window (from \
         that acknowledgement to the read) when any. Bare = {}, pre-encoded bytes of the \
         hot page through the same middleware.\n",
        m.database,
        m.pets,
        m.cpus,
        m.load_average
            .map_or_else(|| "unknown".to_owned(), |l| format!("{l:.2}")),
        m.load.concurrency,
        m.load.warmup,
        m.load.duration,
        m.load.max_requests,
        m.cache_ttl,
        m.bare_endpoint
    );
    if !report.ceilings.is_empty() {
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
        s.push_str("\n`GET /health` and the bare route of each service are rows of its configuration below.\n");
    }
    let _ = writeln!(s, "\n## Configurations\n");
    rows_table(&mut s, &report.rows);
    section(&mut s, "Seed 95/5 mix", &report.seed_mix);
    section(&mut s, "nginx microcache", &report.microcache);
    memory(&mut s, &report.memory);
    if !report.targets.is_empty() {
        let _ = writeln!(s, "\n## Targets\n");
        s.push_str(&verdicts(&report.targets));
    }
    let errors: Vec<_> = report
        .ceilings
        .iter()
        .chain(&report.rows)
        .chain(&report.seed_mix.rows)
        .chain(&report.microcache.rows)
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
///
/// # Errors
/// When a file cannot be written.
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
    let mut s = String::from(
        "| target | measured | baseline | verdict | what it means |\n|---|---|---|---|---|\n",
    );
    for v in verdicts {
        let verdict = match v.holds {
            Some(true) => "holds",
            Some(false) => "does not hold",
            None => "not measured",
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {verdict} | {} |",
            v.target, v.measured, v.baseline, v.why
        );
    }
    s
}
