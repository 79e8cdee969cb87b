//! Issue 9's targets (and the earlier ones still worth watching), judged against one
//! comparison.
//!
//! They are goals to report, never assertions: a verdict says what was measured, what
//! against, whether the goal holds in this run (or that the run has no row to judge it
//! by), and what the number means. A ratio never holds only because its baseline is
//! slow: each verdict names the baseline's own number, and where a baseline can be
//! checked against a harder one (`/health` against the bare route), it is.

mod hit;
mod memory;
mod writes;

use crate::results::{Report, Row, Verdict};

fn find<'a>(rows: &'a [Row], topology: &str, workload: &str) -> Vec<&'a Row> {
    rows.iter()
        .filter(|r| r.topology == topology && r.workload == workload && r.variant.is_empty())
        .collect()
}

/// The row of `workload` measured on the same service as `row` (same configuration).
fn sibling<'a>(rows: &'a [Row], row: &Row, workload: &str) -> Option<&'a Row> {
    rows.iter().find(|r| {
        r.topology == row.topology
            && r.strategy == row.strategy
            && r.variant == row.variant
            && r.workload == workload
    })
}

fn list(items: &[String]) -> String {
    items.join("; ")
}

fn rps(r: &Row) -> String {
    format!("{:.0} req/s", r.rps)
}

/// Every target the rows of one comparison can speak to.
#[must_use]
fn find_variant<'a>(rows: &'a [Row], topology: &str, workload: &str) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.topology == topology && r.workload == workload)
}

pub fn evaluate(report: &Report) -> Vec<Verdict> {
    let mut out = Vec::new();
    hit::hot_hit(report, &mut out);
    writes::seed_mix(report, &mut out);
    writes::mix_exact(report, &mut out);
    writes::mix_soft(report, &mut out);
    memory::memory(report, &mut out);
    earlier(report, &mut out);
    out
}

fn earlier(report: &Report, out: &mut Vec<Verdict>) {
    let target = "/stats over 1,000,000 pets: cached ≥ 1000× no-cache throughput";
    let none = find(&report.rows, "none", "stats");
    let cached: Vec<&Row> = ["l1+l2", "l1", "l2"]
        .iter()
        .flat_map(|t| find(&report.rows, t, "stats"))
        .collect();
    let pets = report.meta.pets;
    match (
        none.first(),
        cached.iter().max_by(|a, b| a.rps.total_cmp(&b.rps)),
    ) {
        (Some(n), Some(best)) if n.rps > 0.0 => {
            let x = best.rps / n.rps;
            out.push(Verdict::new(
                target,
                format!("{} {x:.0}× ({})", best.config(), rps(best)),
                format!("none {:.1} req/s over {pets} pets", n.rps),
                (pets >= 1_000_000).then_some(x >= 1_000.0),
                if pets >= 1_000_000 {
                    "Counting every pet per request against a cached answer."
                } else {
                    "Set for 1,000,000 pets: judged only in a run that large."
                },
            ));
        }
        _ => out.push(Verdict::unmeasured(
            target,
            "needs stats rows for none and a cached topology",
        )),
    }
    for strategy in ["cache-aside", "write-through", "versioned"] {
        let target = format!("stale reads = 0 for {strategy}, every exact configuration");
        let mine: Vec<&Row> = report
            .rows
            .iter()
            .filter(|r| r.strategy == strategy && r.variant.is_empty())
            .collect();
        let checked: u64 = mine.iter().map(|r| r.checked_reads).sum();
        let stale: u64 = mine.iter().map(|r| r.stale_reads).sum();
        out.push(if checked == 0 {
            Verdict::unmeasured(&target, "no read of a written pet was checked")
        } else {
            Verdict::new(
                &target,
                format!("{stale} stale of {checked} checked reads"),
                "-",
                Some(stale == 0),
                "Guarded fills and tag checks.",
            )
        });
    }
}
