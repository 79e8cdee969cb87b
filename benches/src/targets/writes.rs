//! Under writes: the seed tutorial's 95/5 mix, and mix-95/5 with exact tags and with
//! soft invalidation.

use super::{find, list, rps};
use crate::results::{Report, Row, Verdict};

/// The soft-invalidation bound the issue sets, ms.
pub const SOFT_BOUND_MS: f64 = 500.0;

pub(super) fn seed_mix(report: &Report, out: &mut Vec<Verdict>) {
    let target = "Seed 95/5 mix: cache on ≥ 3× cache off";
    let rows = &report.seed_mix.rows;
    let off = find(rows, "none", "seed-95/5");
    let on: Vec<&Row> = ["l1", "l1+l2"]
        .iter()
        .flat_map(|t| find(rows, t, "seed-95/5"))
        .collect();
    match off.first() {
        Some(off) if off.rps > 0.0 && !on.is_empty() => {
            let ratios: Vec<(String, f64)> = on
                .iter()
                .map(|r| (r.topology.clone(), r.rps / off.rps))
                .collect();
            let q = |r: &Row| {
                r.db_queries_per_request
                    .map_or("-".into(), |q| format!("{q:.2}"))
            };
            out.push(Verdict::new(
                target,
                list(
                    &on.iter()
                        .zip(&ratios)
                        .map(|(r, (t, x))| format!("{t} {x:.1}× ({}, {} DB q/req)", rps(r), q(r)))
                        .collect::<Vec<_>>(),
                ),
                format!("none {} ({} DB q/req)", rps(off), q(off)),
                Some(ratios.iter().all(|(_, x)| *x >= 3.0)),
                "Cache off answers each list from the database (a page, and a total summed \
                 from the per species and age counts); cache on serves the page's bytes and \
                 sums the total from the cached counts. A create changes only the last page \
                 of its species and the unfiltered lists, and the counts (reloaded once per \
                 create).",
            ));
        }
        _ => out.push(Verdict::unmeasured(
            target,
            report
                .seed_mix
                .skipped
                .as_deref()
                .unwrap_or("no seed-mix rows"),
        )),
    }
}

fn none_mix(report: &Report) -> Option<&Row> {
    find(&report.rows, "none", "mix-95/5")
        .into_iter()
        .max_by(|a, b| a.rps.total_cmp(&b.rps))
}

/// Share of answers served from the cache (hits and soft-stale answers).
fn served_share(r: &Row) -> Option<f64> {
    let x = &r.x_cache;
    let cached = x.hit_l1 + x.hit_l2 + x.stale;
    let served = cached + x.miss + x.bypass;
    (served > 0).then(|| cached as f64 / served as f64)
}

/// Where a mix's misses come from: the same service's `zipf` row (the same list reads,
/// no writes) against this one, and how often writes invalidated whole lists.
fn miss_cause(report: &Report, mix: &Row) -> String {
    let secs = if mix.rps > 0.0 {
        mix.requests as f64 / mix.rps
    } else {
        0.0
    };
    let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let zipf = report.rows.iter().find(|r| {
        r.topology == mix.topology
            && r.strategy == mix.strategy
            && r.variant.is_empty()
            && r.workload == "zipf"
    });
    let mut s = format!(
        "This row: {:.0} % of answers from the cache; {:.0} writes/s, {:.0}/s of them \
         creates, deletes, species or age changes, each invalidating the counts and the \
         pages of its species and the unfiltered ones from the pet's id on; every write \
         invalidates the pages showing its pet, and the mix writes pets the lists show.",
        served_share(mix).unwrap_or(0.0) * 100.0,
        per_sec(mix.writes),
        per_sec(mix.list_writes),
    );
    if let Some(z) = zipf.and_then(served_share) {
        s.push_str(&format!(
            " The same service's zipf row (the same list queries, no writes) had {:.0} % \
             after its warm-up: {}",
            z * 100.0,
            if z > 0.95 {
                "the misses come from writes, not from a cold cache."
            } else {
                "part of the misses are first reads of the Zipf tail the warm-up did not reach."
            }
        ));
    }
    s
}

fn writes_share(r: &Row) -> f64 {
    if r.requests == 0 {
        0.0
    } else {
        r.writes as f64 / r.requests as f64
    }
}

pub(super) fn mix_exact(report: &Report, out: &mut Vec<Verdict>) {
    let pets = report.meta.pets;
    let note = if pets == 100_000 {
        String::new()
    } else {
        format!(" (this run: {pets} pets; the target is set for 100,000)")
    };
    let rows = find(&report.rows, "l1+l2", "mix-95/5");
    let none = none_mix(report);
    let target = format!("mix-95/5, l1+l2, exact (tags): ≥ 5× `none`{note}");
    match none {
        Some(n) if n.rps > 0.0 && !rows.is_empty() => {
            let ratios: Vec<f64> = rows.iter().map(|r| r.rps / n.rps).collect();
            out.push(Verdict::new(
                &target,
                list(
                    &rows
                        .iter()
                        .zip(&ratios)
                        .map(|(r, x)| format!("{} {x:.1}× ({})", r.strategy, rps(r)))
                        .collect::<Vec<_>>(),
                ),
                format!("none {} (the fastest none row)", rps(n)),
                Some(ratios.iter().all(|x| *x >= 5.0)),
                format!(
                    "The uncached mix pays a page and a total (a sum over the per species and \
                     age counts) per list read and a primary-key read per pet; the cached one \
                     pays them only after a write's tags changed or for a first read. {}",
                    if ratios.iter().all(|x| *x >= 5.0) {
                        String::new()
                    } else {
                        miss_cause(report, rows[0])
                    }
                ),
            ));
        }
        _ => out.push(Verdict::unmeasured(
            &target,
            "needs mix-95/5 rows for none and l1+l2",
        )),
    }
    let target =
        format!("mix-95/5, l1+l2, exact: ≤ 0.1 DB queries per request after warm-up{note}");
    let per: Vec<(&Row, f64)> = rows
        .iter()
        .filter_map(|r| Some((*r, r.db_queries_per_request?)))
        .collect();
    if per.is_empty() {
        out.push(Verdict::unmeasured(
            &target,
            "no l1+l2 mix-95/5 row with the service's query count",
        ));
    } else {
        let holds = per.iter().all(|(_, q)| *q <= 0.1);
        let share = writes_share(per[0].0);
        out.push(Verdict::new(
            &target,
            list(
                &per.iter()
                    .map(|(r, q)| format!("{} {q:.3}", r.strategy))
                    .collect::<Vec<_>>(),
            ),
            none.and_then(|n| n.db_queries_per_request)
                .map_or("-".into(), |q| format!("none {q:.2}")),
            Some(holds),
            format!(
                "Every SQL statement counted, writes included: writes are {:.1} % of requests \
                 and each costs at least one statement, so reads have what is left. {}",
                share * 100.0,
                if holds {
                    String::new()
                } else {
                    miss_cause(report, per[0].0)
                }
            ),
        ));
    }
    let target = "mix-95/5, l1+l2, exact: 0 stale reads";
    let checked: u64 = rows.iter().map(|r| r.checked_reads).sum();
    let stale: u64 = rows.iter().map(|r| r.stale_reads).sum();
    out.push(if checked == 0 {
        Verdict::unmeasured(target, "no read of a written pet was checked")
    } else {
        Verdict::new(
            target,
            format!("{stale} stale of {checked} checked reads"),
            "-",
            Some(stale == 0),
            "Pet reads and list pages checked against every acknowledged PATCH.",
        )
    });
}

pub(super) fn mix_soft(report: &Report, out: &mut Vec<Verdict>) {
    let soft: Vec<&Row> = report
        .rows
        .iter()
        .filter(|r| r.workload == "mix-95/5" && r.variant.starts_with("soft"))
        .collect();
    let target = "mix-95/5 with soft invalidation (500 ms): ≥ 10× `none`";
    let none = none_mix(report);
    match (soft.first(), none) {
        (Some(s), Some(n)) if n.rps > 0.0 => {
            let x = s.rps / n.rps;
            out.push(Verdict::new(
                target,
                format!(
                    "{x:.1}× ({}, {} DB q/req)",
                    rps(s),
                    s.db_queries_per_request
                        .map_or("-".into(), |q| format!("{q:.3}"))
                ),
                format!("none {}", rps(n)),
                Some(x >= 10.0),
                format!(
                    "An invalidated list page is served (X-Cache: STALE) while one request \
                     reloads it: answers wait less, but every invalidation still costs a \
                     reload. {}",
                    if x >= 10.0 {
                        String::new()
                    } else {
                        miss_cause(report, s)
                    }
                ),
            ));
        }
        _ => out.push(Verdict::unmeasured(
            target,
            "needs the soft-invalidation row and none's",
        )),
    }
    let target = "soft invalidation: worst stale window ≤ 500 ms";
    let checked: u64 = soft.iter().map(|r| r.checked_reads).sum();
    let stale: u64 = soft.iter().map(|r| r.stale_reads).sum();
    let worst = soft.iter().map(|r| r.worst_stale_ms).fold(0.0, f64::max);
    let served: u64 = soft.iter().map(|r| r.x_cache.stale).sum();
    out.push(if checked == 0 {
        Verdict::unmeasured(target, "no read of a written pet was checked")
    } else {
        Verdict::new(
            target,
            format!("worst {worst:.0} ms ({stale} stale of {checked} checked reads; 0 ms when none was stale); {served} answers marked STALE"),
            "the bound, 500 ms",
            Some(worst <= SOFT_BOUND_MS),
            "The window is measured by the client: from an acknowledged write to the start \
             of a read that still showed the version it replaced (an upper bound of the \
             service's own).",
        )
    });
}
