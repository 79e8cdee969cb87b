//! Stale-read detection for the mixed workloads.
//!
//! Every acknowledged `PATCH` is logged with the `updated_at` the service returned, the
//! instant it was sent and the instant its response arrived. A `GET /pets/{id}` is
//! **stale** when the version it returned was certainly overwritten before the read
//! began: some write `W` was acknowledged before the read was sent, and `W` was itself
//! sent after the write that produced the returned version had been acknowledged.
//!
//! Writes that overlap in time may commit in either order (and their `updated_at`s,
//! taken before the commit, need not follow the commit order), so a read returning
//! either of two overlapping writes is never counted: the checker only flags what no
//! ordering of the database could explain. A version not in the log is the seeded one
//! (older than everything logged, so any acknowledged write makes it stale) or one from
//! a write still in flight (newer: fresh). Timestamps are compared numerically (seconds,
//! then fraction), so `2025-01-01T00:00:00Z`, `...00.5Z` and `2025-01-01 00:00:00.123`
//! order correctly; writes that share a timestamp count as the latest of them.
//!
//! A read is **backwards** when an earlier read of the same pet, answered before it was
//! sent, had returned a version certainly newer than the one it returns (written by a
//! write sent after the one that produced this version was acknowledged): a change that
//! appeared, then vanished.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Writes kept per pet: enough for reads in flight while newer writes land.
const KEPT_PER_ID: usize = 16;
/// Reads kept per pet, for the backwards check.
const READS_PER_ID: usize = 64;

/// A version as read: the comparable form of its `updated_at`.
type Version = (String, u32);

/// A read remembered for the backwards check: when it was answered, what it returned.
#[derive(Debug)]
struct Answered {
    at: Instant,
    version: Version,
}

/// A comparable form of an RFC 3339 / SQL timestamp: the text up to whole seconds and
/// the fraction in nanoseconds. `None` for text that is not a timestamp.
#[must_use]
pub fn timestamp_key(s: &str) -> Option<(String, u32)> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    // Normalise the date/time separator ('T', 't' or ' ').
    let secs = format!("{}T{}", &s[..10], &s[11..19]);
    let mut nanos = 0u32;
    if b.get(19) == Some(&b'.') {
        let digits: String = s[20..].chars().take_while(char::is_ascii_digit).collect();
        let padded = format!("{digits:0<9}");
        nanos = padded[..9].parse().ok()?;
    }
    Some((secs, nanos))
}

#[derive(Debug)]
struct Write {
    sent: Instant,
    acked: Instant,
    key: (String, u32),
}

/// What a checked read turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// No acknowledged write certainly replaced what it returned before it began.
    Fresh,
    /// It returned a version replaced by a write acknowledged before it began; the
    /// window is how long before the read began that write was acknowledged (how long
    /// the replaced version had been served after a write said it was gone).
    Stale(Duration),
    /// No write to this pet had been acknowledged, or the timestamp did not parse.
    Unchecked,
}

/// What a checked read turned out to be, both ways.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checked {
    /// Against the acknowledged writes.
    pub freshness: Freshness,
    /// Against the reads answered before it was sent: how long before it began a
    /// certainly newer version had been returned, if one had.
    pub backwards: Option<Duration>,
}

/// The acknowledged writes of one run, and its recent reads, shared by its workers.
#[derive(Debug, Default)]
pub struct WriteLog {
    writes: Mutex<HashMap<i64, Vec<Write>>>,
    /// Per pet: when recent reads were answered and what they returned.
    reads: Mutex<HashMap<i64, Vec<Answered>>>,
}

impl WriteLog {
    /// An empty log.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Logs a write to `id`, sent at `sent` and acknowledged at `acked`, with the
    /// service's `updated_at`.
    pub fn record(&self, id: i64, updated_at: &str, sent: Instant, acked: Instant) {
        let Some(key) = timestamp_key(updated_at) else {
            return;
        };
        let mut writes = self.writes.lock().expect("write log poisoned");
        let list = writes.entry(id).or_default();
        list.push(Write { sent, acked, key });
        if list.len() > KEPT_PER_ID {
            list.remove(0);
        }
    }

    /// Checks a read of `id` sent at `started` that returned `updated_at`.
    pub fn check(&self, id: i64, started: Instant, updated_at: &str) -> Freshness {
        let Some(read) = timestamp_key(updated_at) else {
            return Freshness::Unchecked;
        };
        let writes = self.writes.lock().expect("write log poisoned");
        let Some(list) = writes.get(&id) else {
            return Freshness::Unchecked;
        };
        let before: Vec<&Write> = list.iter().filter(|w| w.acked < started).collect();
        if before.is_empty() {
            return Freshness::Unchecked;
        }
        // When the version read was acknowledged: `None` for the seeded version.
        let produced = list.iter().filter(|w| w.key == read).map(|w| w.acked).max();
        let produced = match produced {
            Some(at) => Some(at),
            None if list.iter().all(|w| read < w.key) => None,
            None => return Freshness::Fresh, // a write still in flight
        };
        let first_replaced = before
            .iter()
            .filter(|w| produced.is_none_or(|at| w.sent > at))
            .map(|w| w.acked)
            .min();
        match first_replaced {
            Some(acked) => Freshness::Stale(started.saturating_duration_since(acked)),
            None => Freshness::Fresh,
        }
    }

    /// Checks a read of `id` sent at `started` and answered at `ended` that returned
    /// `updated_at`, against the writes and against the reads answered before it, and
    /// remembers it for the reads after it.
    pub fn check_read(
        &self,
        id: i64,
        started: Instant,
        ended: Instant,
        updated_at: &str,
    ) -> Checked {
        let freshness = self.check(id, started, updated_at);
        let Some(key) = timestamp_key(updated_at) else {
            return Checked {
                freshness,
                backwards: None,
            };
        };
        let backwards = self.went_back(id, started, &key);
        let mut reads = self.reads.lock().expect("read log poisoned");
        let list = reads.entry(id).or_default();
        list.push(Answered {
            at: ended,
            version: key,
        });
        if list.len() > READS_PER_ID {
            list.remove(0);
        }
        Checked {
            freshness,
            backwards,
        }
    }

    /// How long before `started` a read of `id` answered a version certainly newer than
    /// `key`, if one did.
    fn went_back(&self, id: i64, started: Instant, key: &Version) -> Option<Duration> {
        let writes = self.writes.lock().expect("write log poisoned");
        let list = writes.get(&id)?;
        // When the version read was acknowledged (`None`: the seeded one, older than all).
        let produced = list.iter().filter(|w| &w.key == key).map(|w| w.acked).max();
        if produced.is_none() && !list.iter().all(|w| key < &w.key) {
            return None; // a write still in flight: nothing is certainly newer
        }
        let newer = |other: &Version| {
            other != key
                && list
                    .iter()
                    .filter(|w| &w.key == other)
                    .any(|w| produced.is_none_or(|at| w.sent > at))
        };
        let reads = self.reads.lock().expect("read log poisoned");
        reads
            .get(&id)?
            .iter()
            .filter(|a| a.at < started && newer(&a.version))
            .map(|a| started.saturating_duration_since(a.at))
            .max()
    }

    /// True before any write was logged: there is nothing to check reads against.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.writes.lock().expect("write log poisoned").is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_of_different_precision_order_numerically() {
        let a = timestamp_key("2025-01-01T00:00:00Z").unwrap();
        let b = timestamp_key("2025-01-01T00:00:00.1Z").unwrap();
        let c = timestamp_key("2025-01-01 00:00:00.123456").unwrap();
        let d = timestamp_key("2025-01-01T00:00:01+00:00").unwrap();
        assert!(a < b && b < c && c < d);
        assert!(timestamp_key("yesterday").is_none());
    }

    const T1: &str = "2025-01-01T00:00:01Z";
    const T2: &str = "2025-01-01T00:00:02Z";
    const T3: &str = "2025-01-01T00:00:03Z";

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn a_version_replaced_before_the_read_began_is_stale() {
        // Arrange: W1 (T1) done at 1 ms, then W2 (T2) sent at 2 ms, done at 3 ms.
        let log = WriteLog::new();
        let t0 = Instant::now();
        log.record(1, T1, t0, ms(t0, 1));
        log.record(1, T2, ms(t0, 2), ms(t0, 3));

        // Act / Assert: a read sent at 4 ms must see T2.
        assert_eq!(
            log.check(1, ms(t0, 4), T1),
            Freshness::Stale(Duration::from_millis(1))
        );
        assert_eq!(log.check(1, ms(t0, 4), T2), Freshness::Fresh);
        assert_eq!(log.check(1, ms(t0, 4), T3), Freshness::Fresh); // in flight
    }

    #[test]
    fn the_seeded_version_is_stale_once_any_write_was_acknowledged() {
        let log = WriteLog::new();
        let t0 = Instant::now();
        log.record(1, T2, t0, ms(t0, 1));
        assert_eq!(
            log.check(1, ms(t0, 2), T1),
            Freshness::Stale(Duration::from_millis(1))
        );
    }

    #[test]
    fn either_of_two_overlapping_writes_may_be_read() {
        // Arrange: W1 (T2) and W2 (T1) overlap; the database may commit W1 first, so the
        // final row can carry the *older* timestamp.
        let log = WriteLog::new();
        let t0 = Instant::now();
        log.record(1, T2, t0, ms(t0, 3));
        log.record(1, T1, ms(t0, 1), ms(t0, 2));

        // Act / Assert
        assert_eq!(log.check(1, ms(t0, 4), T1), Freshness::Fresh);
        assert_eq!(log.check(1, ms(t0, 4), T2), Freshness::Fresh);
    }

    #[test]
    fn a_version_read_after_a_newer_one_was_answered_is_backwards() {
        // Arrange: W1 (T1) acked at 1 ms; W2 (T2) sent at 2 ms, still in flight at 10.
        let log = WriteLog::new();
        let t0 = Instant::now();
        log.record(1, T1, t0, ms(t0, 1));
        log.record(1, T2, ms(t0, 2), ms(t0, 20));

        // Act: one read sees T2 (answered at 4 ms), a later one T1.
        let first = log.check_read(1, ms(t0, 3), ms(t0, 4), T2);
        let second = log.check_read(1, ms(t0, 6), ms(t0, 7), T1);
        let overlapping = log.check_read(1, ms(t0, 3), ms(t0, 8), T1);

        // Assert: not stale (W2 was not acknowledged), but it went back by 2 ms.
        assert_eq!(first.backwards, None);
        assert_eq!(second.freshness, Freshness::Fresh);
        assert_eq!(second.backwards, Some(Duration::from_millis(2)));
        assert_eq!(overlapping.backwards, None, "sent before T2 was answered");
    }

    #[test]
    fn writes_acknowledged_after_the_read_began_do_not_make_it_stale() {
        let log = WriteLog::new();
        let t0 = Instant::now();
        log.record(1, T2, t0, ms(t0, 5));
        assert_eq!(log.check(1, t0, T1), Freshness::Unchecked);
        assert_eq!(log.check(2, t0, T1), Freshness::Unchecked);
    }
}
