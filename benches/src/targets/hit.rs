//! The hot hit: against `/health` of its own service (and the bare route), its p99,
//! and an nginx microcache.

use super::{find, find_variant, list, rps, sibling};
use crate::results::{Report, Row, Verdict};

/// The write mix of the microcache comparison's freshness rows.
const FRESHNESS_WORKLOAD: &str = "mix-80/20";

pub(super) fn hot_hit(report: &Report, out: &mut Vec<Verdict>) {
    let all: Vec<&Row> = report
        .rows
        .iter()
        .chain(&report.microcache.rows)
        .filter(|r| r.topology == "l1" && r.workload == "hot" && r.variant.is_empty())
        .collect();
    let target = "Hot L1 hit ≥ 0.9× `GET /health` of the same server, same run (and of \
                  its bare route when that is faster)";
    // Each hit with the /health (and bare route) of its own service.
    let judged: Vec<(&Row, &Row, Option<&Row>)> = [&report.rows, &report.microcache.rows]
        .into_iter()
        .flat_map(|rows| {
            find(rows, "l1", "hot")
                .into_iter()
                .filter_map(|r| Some((r, sibling(rows, r, "health")?, sibling(rows, r, "bare"))))
        })
        .collect();
    if judged.is_empty() {
        out.push(Verdict::unmeasured(
            target,
            "no l1 hot row with its /health",
        ));
    } else {
        // The ceiling is the faster of the two: /health goes through poem-openapi and
        // encodes JSON, the bare route writes pre-encoded bytes through the same
        // middleware. A hit judged only against a /health slower than that would hold
        // because its baseline is slow.
        let ceiling = |c: &Row, b: Option<&Row>| b.map_or(c.rps, |b| c.rps.max(b.rps));
        let ratios: Vec<f64> = judged
            .iter()
            .map(|(h, c, b)| h.rps / ceiling(c, *b))
            .collect();
        let holds = ratios.iter().all(|x| *x >= 0.9);
        let measured = list(
            &judged
                .iter()
                .zip(&ratios)
                .map(|((h, c, _), x)| {
                    format!(
                        "{} {x:.2}× of the ceiling, {:.2}× /health ({})",
                        h.strategy,
                        h.rps / c.rps,
                        rps(h)
                    )
                })
                .collect::<Vec<_>>(),
        );
        let baseline = list(
            &judged
                .iter()
                .map(|(_, c, b)| match b {
                    Some(b) => format!("/health {}, bare {}", rps(c), rps(b)),
                    None => format!("/health {}", rps(c)),
                })
                .collect::<Vec<_>>(),
        );
        let mut why = String::from(
            "A hit of the hot page against the service's most trivial request and against \
             the bare route (the hot page's bytes, pre-encoded, through the same middleware: \
             the physical ceiling of a hit), whichever was faster, same process, same run.",
        );
        if !holds {
            why.push_str(
                " A hit still parses the query, looks the entry up and checks its tags \
                 beyond what the ceiling does.",
            );
        }
        out.push(Verdict::new(target, measured, baseline, Some(holds), why));
    }

    let target = "Hot L1 hit p99 ≤ 1 ms";
    if all.is_empty() {
        out.push(Verdict::unmeasured(target, "no l1 hot row"));
    } else {
        let worst = all.iter().map(|r| r.p99_us).fold(0.0, f64::max);
        out.push(Verdict::new(
            target,
            format!("worst p99 {worst:.0} µs over {} rows", all.len()),
            format!(
                "{} connections, generator on the same cores",
                report.meta.load.concurrency
            ),
            Some(worst <= 1_000.0),
            "Latency at the 99th percentile under closed-loop saturation.",
        ));
    }

    let target = "Hot L1 hit on par with an nginx microcache (≥ 0.9× its throughput)";
    let mc = &report.microcache;
    let ours = find(&mc.rows, "l1", "hot");
    let theirs = find_variant(&mc.rows, "nginx", "hot");
    match (ours.first(), theirs) {
        (Some(o), Some(n)) if n.rps > 0.0 => {
            let x = o.rps / n.rps;
            let stale = find_variant(&mc.rows, "nginx", FRESHNESS_WORKLOAD)
                .map(|r| {
                    format!(
                        "; nginx served {} stale reads (worst {:.0} ms), ours {}",
                        r.stale_reads,
                        r.worst_stale_ms,
                        find(&mc.rows, "l1", FRESHNESS_WORKLOAD)
                            .first()
                            .map_or(0, |r| r.stale_reads)
                    )
                })
                .unwrap_or_default();
            out.push(Verdict::new(
                target,
                format!("{x:.2}× ({}, p99 {:.0} µs){stale}", rps(o), o.p99_us),
                format!("nginx hot {} (p99 {:.0} µs)", rps(n), n.p99_us),
                Some(x >= 0.9),
                "Both serve the hot page from memory in the same run; nginx answers from \
                 its own cache without reaching the app for up to 1 s, and is stale for as long.",
            ));
        }
        _ => out.push(Verdict::unmeasured(
            target,
            mc.skipped
                .as_deref()
                .unwrap_or("no microcache rows in this run"),
        )),
    }
}
