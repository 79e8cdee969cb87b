//! The project's HTTP targets, checked against one comparison's rows.
//!
//! They are goals to report, never assertions: a verdict says what was measured and
//! whether the goal holds in this run, or that the run has no row to judge it by.

use crate::results::{Row, Verdict};

fn rows<'a>(all: &'a [Row], topology: &'a str, workload: &'a str) -> Vec<&'a Row> {
    all.iter()
        .filter(|r| r.topology == topology && r.workload == workload)
        .collect()
}

/// Throughput relative to the bare endpoint, per strategy, held when every one reaches `min`.
fn vs_bare(bare: Option<&Row>, rows: &[&Row], target: &str, min: f64) -> Verdict {
    let Some(bare) = bare.filter(|b| b.rps > 0.0) else {
        return Verdict::unmeasured(target, "no bare-endpoint ceiling in this run");
    };
    if rows.is_empty() {
        return Verdict::unmeasured(target, "no hot-workload row for this topology");
    }
    let ratios: Vec<(String, f64)> = rows
        .iter()
        .map(|r| (r.strategy.clone(), r.rps / bare.rps))
        .collect();
    let measured = ratios
        .iter()
        .map(|(s, x)| format!("{s} {x:.2}×"))
        .collect::<Vec<_>>()
        .join(", ");
    let holds = ratios.iter().all(|(_, x)| *x >= min);
    Verdict::new(
        target,
        format!("{measured} of {:.0} req/s", bare.rps),
        Some(holds),
    )
}

/// Every target the rows of one comparison can speak to.
#[must_use]
pub fn evaluate(ceilings: &[Row], all: &[Row], pets: u64) -> Vec<Verdict> {
    let bare = ceilings.iter().find(|r| r.workload.starts_with("GET "));
    let mut out = Vec::new();

    let l1_hot = rows(all, "l1", "hot");
    out.push(vs_bare(
        bare,
        &l1_hot,
        "L1 hit (hot, l1) ≥ 0.9× bare endpoint throughput",
        0.9,
    ));
    let target = "L1 hit (hot, l1) p99 ≤ 1 ms";
    out.push(if l1_hot.is_empty() {
        Verdict::unmeasured(target, "no hot-workload row for l1")
    } else {
        let worst = l1_hot.iter().map(|r| r.p99_us).fold(0.0, f64::max);
        Verdict::new(
            target,
            format!("worst p99 {worst:.0} µs"),
            Some(worst <= 1_000.0),
        )
    });
    out.push(vs_bare(
        bare,
        &rows(all, "l2", "hot"),
        "L2 hit (hot, l2) ≥ 0.6× bare endpoint throughput",
        0.6,
    ));

    let target = "/stats over 1,000,000 pets: cached ≥ 1000× no-cache throughput";
    let none = rows(all, "none", "stats");
    let cached: Vec<&Row> = ["l1+l2", "l1", "l2"]
        .iter()
        .flat_map(|t| rows(all, t, "stats"))
        .collect();
    out.push(match (none.first(), cached.is_empty()) {
        (Some(n), false) if n.rps > 0.0 => {
            let best = cached
                .iter()
                .max_by(|a, b| a.rps.total_cmp(&b.rps))
                .expect("not empty");
            let x = best.rps / n.rps;
            let note = if pets < 1_000_000 {
                format!(" (over {pets} pets: the target is set for 1,000,000)")
            } else {
                String::new()
            };
            Verdict::new(
                target,
                format!(
                    "{} {x:.0}× ({:.0} vs {:.1} req/s){note}",
                    best.config(),
                    best.rps,
                    n.rps
                ),
                (pets >= 1_000_000).then_some(x >= 1_000.0),
            )
        }
        _ => Verdict::unmeasured(target, "needs stats rows for none and a cached topology"),
    });

    let target = "mix 95/5 with l1+l2: database queries ≤ 2% of requests";
    let mix = rows(all, "l1+l2", "mix-95/5");
    let per: Vec<(String, f64)> = mix
        .iter()
        .filter_map(|r| Some((r.strategy.clone(), r.db_queries_per_request?)))
        .collect();
    out.push(if per.is_empty() {
        Verdict::unmeasured(
            target,
            "no l1+l2 mix-95/5 row with the service's query count",
        )
    } else {
        let measured = per
            .iter()
            .map(|(s, q)| format!("{s} {:.1}%", q * 100.0))
            .collect::<Vec<_>>()
            .join(", ");
        Verdict::new(target, measured, Some(per.iter().all(|(_, q)| *q <= 0.02)))
    });

    for strategy in ["write-through", "versioned", "cache-aside"] {
        let target = format!("stale reads = 0 for {strategy} (guarded fills)");
        let mine: Vec<&Row> = all.iter().filter(|r| r.strategy == strategy).collect();
        let checked: u64 = mine.iter().map(|r| r.checked_reads).sum();
        let stale: u64 = mine.iter().map(|r| r.stale_reads).sum();
        out.push(if checked == 0 {
            Verdict::unmeasured(&target, "no read of a written pet was checked")
        } else {
            Verdict::new(
                target,
                format!("{stale} stale of {checked} checked reads"),
                Some(stale == 0),
            )
        });
    }
    out
}
