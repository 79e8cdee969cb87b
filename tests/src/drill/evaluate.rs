//! From the drill's logs to its report.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Phase, Read, ReadRec, Write, WriteRec};

/// One phase of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PhaseReport {
    /// Its name.
    pub name: &'static str,
    /// Reads that began in it.
    pub reads: u64,
    /// Of them, reads that returned a version older than a write acknowledged before
    /// they began.
    pub stale_reads: u64,
    /// The longest such a read's value had been superseded.
    pub worst_window: Duration,
    /// Reads that failed with a server error.
    pub read_errors: u64,
    /// Writes begun in it that the source acknowledged.
    pub writes_acked: u64,
    /// Writes refused before the source (strict mode, 503).
    pub writes_refused: u64,
    /// Writes that failed with a server error.
    pub writes_failed: u64,
    /// When Redis answers again in this phase: how long until the recovery queues of
    /// every instance were empty.
    pub queues_empty_after: Option<Duration>,
    /// When Redis answers again in this phase: how long until a read was answered by
    /// L2 (`HIT-L2`).
    pub l2_hits_after: Option<Duration>,
}

/// One run of the drill.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// What ran (strategy, mode).
    pub label: String,
    /// Each phase.
    pub phases: Vec<PhaseReport>,
    /// Reads and writes sent.
    pub requests: u64,
    /// Requests that failed with a server error (HTTP 5xx other than a strict refusal).
    pub server_errors: u64,
    /// Acknowledged writes the source does not have at the end.
    pub lost_writes: u64,
    /// Entity reads in the sweep after recovery (every entity through every instance).
    pub sweep_reads: u64,
    /// Of them, answers that differ from the source: the stale answers after recovery.
    pub sweep_stale: u64,
}

impl Report {
    /// Stale reads in the phases where Redis was failing.
    #[must_use]
    pub fn stale_during_faults(&self) -> u64 {
        self.fault_phases().map(|p| p.stale_reads).sum()
    }

    /// The longest stale window in the phases where Redis was failing.
    #[must_use]
    pub fn worst_window_during_faults(&self) -> Duration {
        self.fault_phases()
            .map(|p| p.worst_window)
            .max()
            .unwrap_or_default()
    }

    /// Stale reads in the first phase (Redis healthy): the window of invalidation itself,
    /// with no fault.
    #[must_use]
    pub fn stale_while_healthy(&self) -> (u64, Duration) {
        self.phases
            .first()
            .map_or((0, Duration::ZERO), |p| (p.stale_reads, p.worst_window))
    }

    /// Stale reads in the last phase (Redis recovered), transition included.
    #[must_use]
    pub fn stale_after_recovery_phase(&self) -> u64 {
        self.phases.last().map_or(0, |p| p.stale_reads)
    }

    /// Every stale read of the run.
    #[must_use]
    pub fn stale_reads(&self) -> u64 {
        self.phases.iter().map(|p| p.stale_reads).sum()
    }

    /// Writes refused in the run.
    #[must_use]
    pub fn writes_refused(&self) -> u64 {
        self.phases.iter().map(|p| p.writes_refused).sum()
    }

    /// Writes acknowledged in the run.
    #[must_use]
    pub fn writes_acked(&self) -> u64 {
        self.phases.iter().map(|p| p.writes_acked).sum()
    }

    fn fault_phases(&self) -> impl Iterator<Item = &PhaseReport> {
        let n = self.phases.len();
        self.phases
            .iter()
            .enumerate()
            .filter(move |(i, _)| *i != 0 && *i + 1 != n)
            .map(|(_, p)| p)
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn evaluate(
    label: &str,
    schedule: &[Phase],
    marks: &[(Instant, &'static str)],
    drained: &[Option<Duration>],
    reads: &[ReadRec],
    writes: &[WriteRec],
    sweep: &[(Option<u64>, Read)],
    finals: &[(i64, Option<u64>)],
) -> Report {
    let phase_of = |t: Instant| {
        marks
            .iter()
            .rposition(|(start, _)| *start <= t)
            .unwrap_or(0)
    };
    let mut phases: Vec<PhaseReport> = marks
        .iter()
        .zip(drained)
        .map(|((_, name), drained)| PhaseReport {
            name,
            queues_empty_after: *drained,
            ..PhaseReport::default()
        })
        .collect();
    // Acknowledged writes per id, in the order they were acknowledged.
    let mut acked: HashMap<i64, Vec<(Instant, u64)>> = HashMap::new();
    let mut report = Report {
        label: label.to_owned(),
        requests: (reads.len() + writes.len()) as u64,
        ..Report::default()
    };
    for w in writes {
        let p = &mut phases[phase_of(w.began)];
        match &w.write {
            Write::Acked => {
                p.writes_acked += 1;
                acked.entry(w.id).or_default().push((w.ended, w.version));
            }
            Write::Refused => p.writes_refused += 1,
            Write::Failed(_) => {
                p.writes_failed += 1;
                report.server_errors += 1;
            }
        }
    }
    for list in acked.values_mut() {
        list.sort();
    }
    for r in reads {
        let i = phase_of(r.began);
        let p = &mut phases[i];
        p.reads += 1;
        let (version, x_cache) = match &r.read {
            Read::Value { version, x_cache } => (version.unwrap_or(0), *x_cache),
            Read::Failed(_) => {
                p.read_errors += 1;
                report.server_errors += 1;
                continue;
            }
        };
        if x_cache == "HIT-L2" && schedule[i].action.returns() {
            let after = r.began - marks[i].0;
            p.l2_hits_after = Some(p.l2_hits_after.map_or(after, |a| a.min(after)));
        }
        let Some(list) = acked.get(&r.id) else {
            continue;
        };
        let before: Vec<_> = list.iter().take_while(|(at, _)| *at < r.began).collect();
        let newest = before.iter().map(|(_, v)| *v).max().unwrap_or(1);
        if version < newest {
            p.stale_reads += 1;
            let superseded = before
                .iter()
                .filter(|(_, v)| *v > version)
                .map(|(at, _)| *at)
                .min()
                .unwrap_or(r.began);
            p.worst_window = p.worst_window.max(r.began - superseded);
        }
    }
    for (want, got) in sweep {
        report.sweep_reads += 1;
        match got {
            Read::Value { version, .. } if version == want => {}
            Read::Value { .. } => report.sweep_stale += 1,
            Read::Failed(_) => report.server_errors += 1,
        }
    }
    for (id, version) in finals {
        let newest_acked = acked.get(id).and_then(|l| l.iter().map(|(_, v)| *v).max());
        if let Some(newest) = newest_acked
            && version.unwrap_or(0) < newest
        {
            report.lost_writes += 1;
        }
    }
    report.phases = phases;
    report
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.0} ms", d.as_secs_f64() * 1000.0),
    )
}

/// One row per run: what the closing note of a fault drill gives.
#[must_use]
pub fn markdown_summary(reports: &[Report]) -> String {
    let mut out = String::from(
        "| run | requests | 5xx | writes acked / refused | lost writes | stale reads while healthy (longest) | stale reads during faults | longest window | stale reads once recovered | stale answers in the sweep | L2 hits after restart / recovery | queues empty after recovery |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in reports {
        let returned = |name: &str| r.phases.iter().find(|p| p.name == name);
        let l2 = |name: &str| ms(returned(name).and_then(|p| p.l2_hits_after));
        out.push_str(&format!(
            "| {} | {} | {} | {} / {} | {} | {} ({:.0} ms) | {} | {:.0} ms | {} | {} of {} | {} / {} | {} |\n",
            r.label,
            r.requests,
            r.server_errors,
            r.writes_acked(),
            r.writes_refused(),
            r.lost_writes,
            r.stale_while_healthy().0,
            r.stale_while_healthy().1.as_secs_f64() * 1000.0,
            r.stale_during_faults(),
            r.worst_window_during_faults().as_secs_f64() * 1000.0,
            r.stale_after_recovery_phase(),
            r.sweep_stale,
            r.sweep_reads,
            l2("restarted empty"),
            l2("recovered"),
            ms(r.phases.last().and_then(|p| p.queues_empty_after)),
        ));
    }
    out
}

/// One row per phase of one run.
#[must_use]
pub fn markdown_phases(r: &Report) -> String {
    let mut out = format!(
        "{}\n\n| phase | reads | stale | longest window | read errors | writes acked | refused | failed |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
        r.label
    );
    for p in &r.phases {
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} ms | {} | {} | {} | {} |\n",
            p.name,
            p.reads,
            p.stale_reads,
            p.worst_window.as_secs_f64() * 1000.0,
            p.read_errors,
            p.writes_acked,
            p.writes_refused,
            p.writes_failed
        ));
    }
    out
}
