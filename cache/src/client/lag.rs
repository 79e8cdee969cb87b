//! Backplane lag: every message carries the moment it was sent (`{sender}@{micros}`,
//! the sender's wall clock), and an instance hears its own messages too, so the time
//! from sending one to hearing it back is measured on one clock, free of skew between
//! instances. Kept as a histogram and as the largest lag of the last minute or so.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::stats::{Histogram, HistogramSnapshot};

/// How long the largest lag is remembered (between one and two of these).
const WINDOW: Duration = Duration::from_secs(60);

/// `sender` stamped with the moment now: the first line of a message.
pub(crate) fn stamped(sender: &str) -> String {
    format!("{sender}@{}", now_micros())
}

/// The sender of a message's first line, and when it was sent (absent from the
/// messages of instances that do not stamp theirs).
pub(crate) fn sender_of(line: &str) -> (&str, Option<u64>) {
    match line.rsplit_once('@') {
        Some((sender, sent)) => (sender, sent.parse().ok()),
        None => (line, None),
    }
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The lags of this instance's own messages.
#[derive(Debug)]
pub(crate) struct Lag {
    histogram: Histogram,
    recent: Mutex<Recent>,
}

#[derive(Debug)]
struct Recent {
    began: Instant,
    max: Duration,
    previous: Duration,
}

impl Default for Lag {
    fn default() -> Self {
        Self {
            histogram: Histogram::default(),
            recent: Mutex::new(Recent {
                began: Instant::now(),
                max: Duration::ZERO,
                previous: Duration::ZERO,
            }),
        }
    }
}

impl Lag {
    /// Records the lag of one of our messages, sent at `sent` (micros since the epoch).
    pub(crate) fn heard(&self, sent: u64) {
        let lag = Duration::from_micros(now_micros().saturating_sub(sent));
        self.histogram.record(lag);
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.roll();
        recent.max = recent.max.max(lag);
    }

    pub(crate) fn histogram(&self) -> HistogramSnapshot {
        self.histogram.snapshot()
    }

    /// The largest lag heard in the last one to two minutes.
    pub(crate) fn recent_max(&self) -> Duration {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.roll();
        recent.max.max(recent.previous)
    }
}

impl Recent {
    fn roll(&mut self) {
        let age = self.began.elapsed();
        if age >= 2 * WINDOW {
            self.previous = Duration::ZERO;
            self.max = Duration::ZERO;
            self.began = Instant::now();
        } else if age >= WINDOW {
            self.previous = self.max;
            self.max = Duration::ZERO;
            self.began = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamped_sender_parses_back_and_an_unstamped_one_has_no_time() {
        let line = stamped("00ab");
        let (sender, sent) = sender_of(&line);
        assert_eq!(sender, "00ab");
        assert!(sent.unwrap() > 1_700_000_000_000_000);
        assert_eq!(sender_of("00ab"), ("00ab", None));
    }

    #[test]
    fn the_lag_of_a_message_is_recorded_and_the_largest_remembered() {
        let lag = Lag::default();
        lag.heard(now_micros() - 30_000);
        lag.heard(now_micros() - 2_000);
        assert_eq!(lag.histogram().count(), 2);
        let max = lag.recent_max();
        assert!(
            max >= Duration::from_millis(30) && max < Duration::from_secs(5),
            "{max:?}"
        );
    }
}
