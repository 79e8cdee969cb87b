//! L1 resident memory against its budget.

use super::list;
use crate::results::{MemoryRow, Report, Verdict};

pub(super) fn memory(report: &Report, out: &mut Vec<Verdict>) {
    let m = &report.memory;
    let none = m
        .rows
        .iter()
        .find(|r| r.topology == "none")
        .and_then(|r| r.rss_bytes);
    let budgets: Vec<&MemoryRow> = m.rows.iter().filter(|r| r.l1_max_bytes.is_some()).collect();
    let target = "L1 memory: resident growth over `CACHE_TIERS=none` ≤ budget + 10 %";
    let Some(base) = none.filter(|_| !budgets.is_empty()) else {
        out.push(Verdict::unmeasured(
            target,
            m.skipped
                .as_deref()
                .unwrap_or("no memory rows with a resident size"),
        ));
        return;
    };
    let mib = |b: f64| b / f64::from(1u32 << 20);
    let mut measured = Vec::new();
    let mut holds = true;
    for r in &budgets {
        let (Some(rss), Some(budget)) = (r.rss_bytes, r.l1_max_bytes) else {
            continue;
        };
        let growth = rss as f64 - base as f64;
        let ok = growth <= budget as f64 * 1.1;
        holds &= ok;
        measured.push(format!(
            "{:.0} MiB budget: +{:.1} MiB ({:.2}× budget, {} pets read)",
            mib(budget as f64),
            mib(growth),
            growth / budget as f64,
            r.distinct_ids
        ));
    }
    out.push(Verdict::new(
        target,
        list(&measured),
        format!("none {:.1} MiB resident", mib(base as f64)),
        Some(holds),
        "Resident memory of the whole process after reading far more distinct pets than \
         fit; growth over none is what L1 holds plus allocator slack.",
    ));
}
