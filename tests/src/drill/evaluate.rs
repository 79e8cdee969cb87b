//! From the drill's logs to its report.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Phase, Read, ReadRec, Write, WriteRec};
use crate::linearizability::{VersionRead, backwards_windows};

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
    /// Reads that returned a version older than one another read had returned before
    /// they began: a change that appeared, then vanished.
    pub backwards_reads: u64,
    /// The longest of those: how long before such a read began the newer version had
    /// been returned.
    pub backwards_window: Duration,
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
    /// Reads whose newest acknowledged write (before they began) went through another
    /// instance: the reads that test coherence across instances.
    pub cross_reads: u64,
    /// Stale reads whose superseding write went through another instance.
    pub cross_stale_reads: u64,
    /// The longest of those: how long after another instance acknowledged the write
    /// this one still served the old value.
    pub cross_worst_window: Duration,
}

/// What one instance carried in a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct InstanceLoad {
    /// Reads it served (errors included).
    pub reads: u64,
    /// Writes it acknowledged.
    pub writes_acked: u64,
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
    /// Per instance, in the order of the run's targets.
    pub instances: Vec<InstanceLoad>,
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

    /// Every backwards read of the run.
    #[must_use]
    pub fn backwards_reads(&self) -> u64 {
        self.phases.iter().map(|p| p.backwards_reads).sum()
    }

    /// The longest backwards window of the run.
    #[must_use]
    pub fn backwards_window(&self) -> Duration {
        self.phases
            .iter()
            .map(|p| p.backwards_window)
            .max()
            .unwrap_or_default()
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

    /// Reads in the run.
    #[must_use]
    pub fn reads(&self) -> u64 {
        self.phases.iter().map(|p| p.reads).sum()
    }

    /// Reads of a value last written through another instance.
    #[must_use]
    pub fn cross_reads(&self) -> u64 {
        self.phases.iter().map(|p| p.cross_reads).sum()
    }

    /// Stale reads whose newer value was written through another instance.
    #[must_use]
    pub fn cross_stale_reads(&self) -> u64 {
        self.phases.iter().map(|p| p.cross_stale_reads).sum()
    }

    /// The longest cross-instance stale window of the run.
    #[must_use]
    pub fn cross_worst_window(&self) -> Duration {
        self.phases
            .iter()
            .map(|p| p.cross_worst_window)
            .max()
            .unwrap_or_default()
    }

    /// The longest stale window of the run, whichever instance wrote.
    #[must_use]
    pub fn worst_window(&self) -> Duration {
        self.phases
            .iter()
            .map(|p| p.worst_window)
            .max()
            .unwrap_or_default()
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
    instances: usize,
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
    // Acknowledged writes per id (when, version, through which instance), in the order
    // they were acknowledged.
    let mut acked: HashMap<i64, Vec<(Instant, u64, usize)>> = HashMap::new();
    let mut report = Report {
        label: label.to_owned(),
        requests: (reads.len() + writes.len()) as u64,
        instances: vec![InstanceLoad::default(); instances],
        ..Report::default()
    };
    for w in writes {
        let p = &mut phases[phase_of(w.began)];
        match &w.write {
            Write::Acked => {
                p.writes_acked += 1;
                report.instances[w.instance].writes_acked += 1;
                acked
                    .entry(w.id)
                    .or_default()
                    .push((w.ended, w.version, w.instance));
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
    let answered: Vec<(usize, VersionRead)> = reads
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match &r.read {
            Read::Value { version, .. } => Some((
                i,
                VersionRead {
                    key: r.id,
                    began: r.began,
                    ended: r.ended,
                    version: version.unwrap_or(0),
                },
            )),
            Read::Failed(_) => None,
        })
        .collect();
    let windows = backwards_windows(&answered.iter().map(|(_, r)| *r).collect::<Vec<_>>());
    for ((i, _), window) in answered.iter().zip(windows) {
        if let Some(window) = window {
            let p = &mut phases[phase_of(reads[*i].began)];
            p.backwards_reads += 1;
            p.backwards_window = p.backwards_window.max(window);
        }
    }
    for r in reads {
        let i = phase_of(r.began);
        let p = &mut phases[i];
        p.reads += 1;
        report.instances[r.instance].reads += 1;
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
        let before: Vec<_> = list.iter().take_while(|(at, _, _)| *at < r.began).collect();
        let newest = before.iter().max_by_key(|(_, v, _)| *v);
        if newest.is_some_and(|(_, _, by)| *by != r.instance) {
            p.cross_reads += 1;
        }
        let newest = newest.map_or(1, |(_, v, _)| *v);
        if version < newest {
            p.stale_reads += 1;
            // The first acknowledged write that made this answer old.
            let (superseded, by) = before
                .iter()
                .filter(|(_, v, _)| *v > version)
                .map(|(at, _, by)| (*at, *by))
                .min()
                .unwrap_or((r.began, r.instance));
            p.worst_window = p.worst_window.max(r.began - superseded);
            if by != r.instance {
                p.cross_stale_reads += 1;
                p.cross_worst_window = p.cross_worst_window.max(r.began - superseded);
            }
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
        let newest_acked = acked
            .get(id)
            .and_then(|l| l.iter().map(|(_, v, _)| *v).max());
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
        "| run | requests | 5xx | writes acked / refused | lost writes | stale reads while healthy (longest) | stale reads during faults | longest window | stale reads once recovered | backwards reads (longest) | stale answers in the sweep | L2 hits after restart / recovery | queues empty after recovery |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in reports {
        let returned = |name: &str| r.phases.iter().find(|p| p.name == name);
        let l2 = |name: &str| ms(returned(name).and_then(|p| p.l2_hits_after));
        out.push_str(&format!(
            "| {} | {} | {} | {} / {} | {} | {} ({:.0} ms) | {} | {:.0} ms | {} | {} ({:.1} ms) | {} of {} | {} / {} | {} |\n",
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
            r.backwards_reads(),
            r.backwards_window().as_secs_f64() * 1000.0,
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
        "{}\n\n| phase | reads | stale | longest window | backwards | longest backwards window | read errors | writes acked | refused | failed |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        r.label
    );
    for p in &r.phases {
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} ms | {} | {:.1} ms | {} | {} | {} | {} |\n",
            p.name,
            p.reads,
            p.stale_reads,
            p.worst_window.as_secs_f64() * 1000.0,
            p.backwards_reads,
            p.backwards_window.as_secs_f64() * 1000.0,
            p.read_errors,
            p.writes_acked,
            p.writes_refused,
            p.writes_failed
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::Action;

    #[test]
    fn a_stale_read_is_cross_instance_when_another_instance_took_the_newer_write() {
        // Arrange: id 1 written to v2 through instance 0 (acked at 10 ms), then to v3
        // through instance 1 (acked at 20 ms).
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let schedule = [Phase {
            name: "steady",
            action: Action::Heal,
            length: Duration::from_secs(1),
        }];
        let write = |instance, version, ended| WriteRec {
            id: 1,
            instance,
            version,
            began: t0,
            ended,
            write: Write::Acked,
        };
        let read = |instance, began, version| ReadRec {
            id: 1,
            instance,
            began,
            ended: began + Duration::from_micros(100),
            read: Read::Value {
                version: Some(version),
                x_cache: "HIT-L1",
            },
        };
        let writes = [write(0, 2, ms(10)), write(1, 3, ms(20))];
        let reads = [
            read(0, ms(15), 2), // fresh, written here
            read(1, ms(16), 1), // stale: v2 came through instance 0, 6 ms before
            read(2, ms(25), 3), // fresh, written through instance 1
            read(1, ms(30), 2), // stale: v3 came through this instance itself
            read(2, ms(50), 1), // stale: v2 came through instance 0, 40 ms before
        ];

        // Act
        let r = evaluate(
            "t",
            3,
            &schedule,
            &[(t0, "steady")],
            &[None],
            &reads,
            &writes,
            &[],
            &[(1, Some(3))],
        );

        // Assert
        let p = &r.phases[0];
        assert_eq!((p.stale_reads, p.cross_stale_reads), (3, 2));
        assert_eq!(
            p.cross_reads, 3,
            "the 2nd, 3rd and 5th read another's write"
        );
        assert_eq!(p.cross_worst_window, Duration::from_millis(40));
        // Each stale one also went back: the 2nd (v1 at 16 ms) and the 5th (v1 at 50 ms)
        // after v2 was read at 15 ms, the 4th (v2 at 30 ms) after v3 was read at 25 ms.
        assert_eq!(p.backwards_reads, 3);
        assert_eq!(
            p.backwards_window,
            Duration::from_millis(35) - Duration::from_micros(100)
        );
        assert_eq!(p.worst_window, Duration::from_millis(40));
        assert_eq!(r.lost_writes, 0);
        let load: Vec<_> = r
            .instances
            .iter()
            .map(|i| (i.reads, i.writes_acked))
            .collect();
        assert_eq!(load, [(1, 1), (2, 1), (2, 0)]);
    }
}
