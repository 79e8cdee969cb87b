//! A linearizability checker for histories of registers (one per key) whose written
//! values are unique, plus the two freshness counts every report carries beside it.
//!
//! Every operation has an invocation and a return time on one monotonic clock; a write
//! whose outcome is unknown (a timeout, a 5xx) has no return. With unique values each
//! read names the write it saw, and the check is polynomial (Gibbons and Korach,
//! "Testing shared memories", 1997): a write and the reads of its value form a
//! *cluster*, which any linearization must place as one contiguous block. Cluster `A`
//! must come before `B` when one of `A`'s operations returned before one of `B`'s was
//! invoked; a history is linearizable exactly when no two clusters must each come
//! before the other, and no read returned before its write was invoked. (In the
//! paper's words: no two forward zones intersect and no backward zone lies inside a
//! forward zone.) The unit tests hold it to a brute-force search and to stateright's
//! `LinearizabilityTester` on thousands of random histories.
//!
//! # Details
//! The counts are narrower than the verdict and name what a user would see:
//! - a **stale** read returned a value that a write acknowledged before the read
//!   began had replaced for certain (that write was invoked after the value's own
//!   write returned);
//! - a **backwards** read returned a value older, for certain in the same sense, than
//!   one another read had already returned before it began: a change appeared, then
//!   vanished.
//!
//! Each comes with its longest window: how long before the read began the value had
//! been replaced (stale) or the newer value had been seen (backwards).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What an operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// It wrote its value.
    Write,
    /// It read its value.
    Read,
}

/// One operation on one key's register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// The register.
    pub key: i64,
    /// Write or read.
    pub kind: Kind,
    /// The value written, or the value the read returned.
    pub value: String,
    /// When it was invoked (since the start of the run).
    pub invoked: Duration,
    /// When it returned; `None` for a write whose outcome is unknown (it may take
    /// effect at any time after its invocation, or never).
    pub returned: Option<Duration>,
}

/// What [`check`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Every key's history is linearizable.
    pub linearizable: bool,
    /// Operations checked (writes of unknown outcome that nobody read are not).
    pub ops: u64,
    /// Reads among them.
    pub reads: u64,
    /// Reads of a value an acknowledged write had replaced before they began.
    pub stale_reads: u64,
    /// The longest of their windows.
    pub stale_window: Duration,
    /// Reads of a value older than one another read had returned before they began.
    pub backwards_reads: u64,
    /// The longest of their windows.
    pub backwards_window: Duration,
    /// Indices (into the checked operations) of the stale and backwards reads.
    pub flagged: Vec<usize>,
    /// The first few reasons the history is not linearizable, in words.
    pub violations: Vec<String>,
}

impl Verdict {
    fn absorb(&mut self, other: Self) {
        self.linearizable &= other.linearizable;
        self.ops += other.ops;
        self.reads += other.reads;
        self.stale_reads += other.stale_reads;
        self.stale_window = self.stale_window.max(other.stale_window);
        self.backwards_reads += other.backwards_reads;
        self.backwards_window = self.backwards_window.max(other.backwards_window);
        self.flagged.extend(other.flagged);
        let room = MAX_VIOLATIONS.saturating_sub(self.violations.len());
        self.violations
            .extend(other.violations.into_iter().take(room));
    }
}

/// How many violations a verdict spells out.
const MAX_VIOLATIONS: usize = 5;

/// Nanoseconds; the initial value's write is at -1, an unknown return at `NEVER`.
type T = i128;
const NEVER: T = i128::MAX;
const INITIAL: T = -1;

fn nanos(d: Duration) -> T {
    T::try_from(d.as_nanos()).unwrap_or(NEVER - 1)
}

fn ms(t: T) -> f64 {
    t as f64 / 1e6
}

/// A write and the reads of its value.
#[derive(Debug)]
struct Cluster<'a> {
    value: &'a str,
    /// The write's invocation and return.
    write: (T, T),
    /// The earliest return and the latest invocation among the write and its reads.
    min_ret: T,
    max_inv: T,
    /// The earliest return among the reads alone.
    first_read_ret: T,
    /// Invocation, return and index of each read.
    reads: Vec<(T, T, usize)>,
}

impl<'a> Cluster<'a> {
    fn new(value: &'a str, inv: T, ret: T) -> Self {
        Self {
            value,
            write: (inv, ret),
            min_ret: ret,
            max_inv: inv,
            first_read_ret: NEVER,
            reads: Vec::new(),
        }
    }

    fn add_read(&mut self, inv: T, ret: T, index: usize) {
        self.min_ret = self.min_ret.min(ret);
        self.max_inv = self.max_inv.max(inv);
        self.first_read_ret = self.first_read_ret.min(ret);
        self.reads.push((inv, ret, index));
    }

    /// Some operation of `self` returned before some operation of `other` was
    /// invoked: `self`'s block precedes `other`'s in any linearization.
    fn must_precede(&self, other: &Self) -> bool {
        self.min_ret < other.max_inv
    }
}

/// Checks the history `ops`: `initial` gives each key's value before any write (keys
/// not in it start with no value a read can return). Values written must be unique per
/// key; `refused` are values of writes known not to have happened (a read of one is a
/// violation).
#[must_use]
pub fn check(initial: &HashMap<i64, String>, ops: &[Op], refused: &[(i64, String)]) -> Verdict {
    let mut by_key: HashMap<i64, Vec<(usize, &Op)>> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        by_key.entry(op.key).or_default().push((i, op));
    }
    let mut keys: Vec<i64> = by_key.keys().copied().collect();
    keys.sort_unstable();
    let mut verdict = Verdict {
        linearizable: true,
        ..Verdict::default()
    };
    for key in keys {
        let refused: Vec<&str> = refused
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
            .collect();
        verdict.absorb(check_key(
            key,
            initial.get(&key).map(String::as_str),
            &by_key[&key],
            &refused,
        ));
    }
    verdict
}

fn check_key(key: i64, initial: Option<&str>, ops: &[(usize, &Op)], refused: &[&str]) -> Verdict {
    let mut v = Verdict {
        linearizable: true,
        ..Verdict::default()
    };
    let fail = |v: &mut Verdict, why: String| {
        v.linearizable = false;
        if v.violations.len() < MAX_VIOLATIONS {
            v.violations.push(format!("key {key}: {why}"));
        }
    };
    let mut clusters: Vec<Cluster<'_>> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    if let Some(init) = initial {
        index.insert(init, 0);
        clusters.push(Cluster::new(init, INITIAL, INITIAL));
    }
    for (_, op) in ops.iter().filter(|(_, o)| o.kind == Kind::Write) {
        if index.contains_key(op.value.as_str()) {
            fail(&mut v, format!("value {:?} written twice", op.value));
            continue;
        }
        let ret = op.returned.map_or(NEVER, nanos);
        index.insert(&op.value, clusters.len());
        clusters.push(Cluster::new(&op.value, nanos(op.invoked), ret));
    }
    for &(i, op) in ops.iter().filter(|(_, o)| o.kind == Kind::Read) {
        let (inv, ret) = (nanos(op.invoked), op.returned.map_or(NEVER, nanos));
        v.reads += 1;
        match index.get(op.value.as_str()) {
            Some(&c) => {
                if ret < clusters[c].write.0 {
                    fail(
                        &mut v,
                        format!(
                            "a read returned {:?} at {:.3} ms, before its write began at {:.3} ms",
                            op.value,
                            ms(ret),
                            ms(clusters[c].write.0)
                        ),
                    );
                }
                clusters[c].add_read(inv, ret, i);
            }
            None if refused.contains(&op.value.as_str()) => fail(
                &mut v,
                format!(
                    "a read at {:.3} ms returned {:?}, written by a refused write",
                    ms(inv),
                    op.value
                ),
            ),
            None => fail(
                &mut v,
                format!(
                    "a read at {:.3} ms returned {:?}, which was never written",
                    ms(inv),
                    op.value
                ),
            ),
        }
    }
    // A write of unknown outcome that nobody read may never have happened: no constraint.
    clusters.retain(|c| !(c.write.1 == NEVER && c.reads.is_empty()));
    v.ops = v.reads + clusters.iter().filter(|c| c.write.0 != INITIAL).count() as u64;

    for (i, a) in clusters.iter().enumerate() {
        for b in &clusters[i + 1..] {
            if a.must_precede(b) && b.must_precede(a) {
                fail(
                    &mut v,
                    format!(
                        "{:?} and {:?} must each come before the other (returns at {:.3} / {:.3} ms, invocations at {:.3} / {:.3} ms)",
                        a.value,
                        b.value,
                        ms(a.min_ret),
                        ms(b.min_ret),
                        ms(a.max_inv),
                        ms(b.max_inv)
                    ),
                );
            }
        }
    }
    count_freshness(&clusters, &mut v);
    v
}

/// The stale and backwards counts: for a read of cluster `c`, the clusters certainly
/// after `c` are those whose write was invoked after `c`'s write returned.
fn count_freshness(clusters: &[Cluster<'_>], v: &mut Verdict) {
    // Clusters by write invocation, with suffix minima of (acked write return, first read return).
    let mut order: Vec<&Cluster<'_>> = clusters.iter().collect();
    order.sort_by_key(|c| c.write.0);
    let invs: Vec<T> = order.iter().map(|c| c.write.0).collect();
    let mut min_ack = vec![NEVER; order.len() + 1];
    let mut min_seen = vec![NEVER; order.len() + 1];
    for i in (0..order.len()).rev() {
        min_ack[i] = min_ack[i + 1].min(order[i].write.1);
        min_seen[i] = min_seen[i + 1].min(order[i].first_read_ret);
    }
    for c in clusters {
        // The first cluster whose write was invoked after this one's returned.
        let after = invs.partition_point(|&inv| inv <= c.write.1);
        let (acked, seen) = (min_ack[after], min_seen[after]);
        for &(inv, _, index) in &c.reads {
            if acked < inv {
                v.stale_reads += 1;
                v.stale_window = v.stale_window.max(span(acked, inv));
            }
            if seen < inv {
                v.backwards_reads += 1;
                v.backwards_window = v.backwards_window.max(span(seen, inv));
            }
            if acked < inv || seen < inv {
                v.flagged.push(index);
            }
        }
    }
}

fn span(from: T, to: T) -> Duration {
    Duration::from_nanos(u64::try_from((to - from).max(0)).unwrap_or(u64::MAX))
}

/// A read of a versioned value: per key, versions only go up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionRead {
    /// The key.
    pub key: i64,
    /// When the read was sent.
    pub began: Instant,
    /// When it returned.
    pub ended: Instant,
    /// The version it returned.
    pub version: u64,
}

/// For each read of `reads` that went back (a read of the same key that ended before it
/// began had returned a higher version), how long before it began the first such newer
/// version had been returned; `None` for the others. With versions that only go up this
/// is exact: the counterpart of [`Verdict::backwards_reads`] for the freshness checker
/// and the fault drill, whose writers own their keys.
#[must_use]
pub fn backwards_windows(reads: &[VersionRead]) -> Vec<Option<Duration>> {
    let mut by_key: HashMap<i64, Vec<usize>> = HashMap::new();
    for (i, r) in reads.iter().enumerate() {
        by_key.entry(r.key).or_default().push(i);
    }
    let mut out = vec![None; reads.len()];
    for mut ids in by_key.into_values() {
        ids.sort_by_key(|&i| reads[i].ended);
        // The highest version returned by the reads ended so far, in ended order.
        let mut highest = Vec::with_capacity(ids.len());
        let mut max = 0;
        for &i in &ids {
            max = max.max(reads[i].version);
            highest.push(max);
        }
        for &i in &ids {
            let r = reads[i];
            // The first read (by return) that had returned something newer than `r`.
            let first = highest.partition_point(|&v| v <= r.version);
            if let Some(&j) = ids.get(first)
                && reads[j].ended < r.began
            {
                out[i] = Some(r.began - reads[j].ended);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
