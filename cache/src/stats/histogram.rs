//! A lock-free histogram of durations with fixed buckets (50 µs to 5 min), cheap
//! enough to record on every cache operation, and its snapshot with quantiles.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

/// The upper bounds of the buckets, in microseconds (a last bucket holds the rest).
pub const BOUNDS_MICROS: [u64; 20] = [
    50,
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    300_000_000,
];

/// Durations counted into [`BOUNDS_MICROS`] buckets, with their sum.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS_MICROS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Counts one `duration`.
    pub fn record(&self, duration: Duration) {
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        let i = BOUNDS_MICROS.partition_point(|b| *b < micros);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(micros, Relaxed);
    }

    /// A copy of the counts.
    #[must_use]
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            sum_micros: self.sum_micros.load(Relaxed),
        }
    }
}

/// The counts of a [`Histogram`] at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistogramSnapshot {
    /// One count per bucket of [`BOUNDS_MICROS`], then the count above the last bound.
    pub counts: Vec<u64>,
    /// The sum of every duration counted, in microseconds.
    pub sum_micros: u64,
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        Self {
            counts: vec![0; BOUNDS_MICROS.len() + 1],
            sum_micros: 0,
        }
    }
}

impl HistogramSnapshot {
    /// How many durations were counted.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The sum of the durations, in seconds.
    #[must_use]
    pub fn sum_seconds(&self) -> f64 {
        self.sum_micros as f64 / 1e6
    }

    /// `(upper bound in seconds, durations at most that)` per bucket, for exporters
    /// (the last, unbounded bucket is [`HistogramSnapshot::count`]).
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        BOUNDS_MICROS
            .iter()
            .zip(&self.counts)
            .scan(0, |acc, (bound, n)| {
                *acc += n;
                Some((*bound as f64 / 1e6, *acc))
            })
    }

    /// The `q` quantile (0..=1), interpolated within its bucket as Prometheus does;
    /// `None` when nothing was counted. Above the last bound it is the last bound.
    #[must_use]
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, n) in self.counts.iter().enumerate() {
            let upto = below + n;
            if *n > 0 && upto as f64 >= rank {
                let Some(hi) = BOUNDS_MICROS.get(i) else {
                    break;
                };
                let lo = if i == 0 { 0 } else { BOUNDS_MICROS[i - 1] };
                let within = (rank - below as f64) / *n as f64;
                let micros = lo as f64 + (hi - lo) as f64 * within;
                return Some(Duration::from_micros(micros as u64));
            }
            below = upto;
        }
        Some(Duration::from_micros(
            BOUNDS_MICROS[BOUNDS_MICROS.len() - 1],
        ))
    }

    /// The counts of `self` minus those of `earlier` (a window between two snapshots).
    #[must_use]
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            counts: self
                .counts
                .iter()
                .zip(earlier.counts.iter().chain(std::iter::repeat(&0)))
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
            sum_micros: self.sum_micros.saturating_sub(earlier.sum_micros),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_their_buckets_and_quantiles_interpolate() {
        let h = Histogram::default();
        for _ in 0..90 {
            h.record(Duration::from_micros(80)); // (50, 100]
        }
        for _ in 0..10 {
            h.record(Duration::from_millis(3)); // (2.5 ms, 5 ms]
        }
        h.record(Duration::from_secs(3600)); // above every bound
        let s = h.snapshot();
        assert_eq!(s.count(), 101);
        assert_eq!(s.counts[1], 90);
        assert_eq!(s.counts[6], 10);
        assert_eq!(s.counts[BOUNDS_MICROS.len()], 1);
        let p50 = s.quantile(0.5).unwrap();
        assert!(
            p50 > Duration::from_micros(50) && p50 <= Duration::from_micros(100),
            "{p50:?}"
        );
        let p95 = s.quantile(0.95).unwrap();
        assert!(
            p95 > Duration::from_micros(2_500) && p95 <= Duration::from_millis(5),
            "{p95:?}"
        );
        assert_eq!(s.quantile(1.0), Some(Duration::from_secs(300)));
        assert_eq!(HistogramSnapshot::default().quantile(0.5), None);
        let cumulative: Vec<_> = s.cumulative().collect();
        assert_eq!(cumulative[1], (0.0001, 90));
        assert_eq!(cumulative.last().unwrap().1, 100);
    }

    #[test]
    fn a_window_is_the_difference_of_two_snapshots() {
        let h = Histogram::default();
        h.record(Duration::from_millis(1));
        let before = h.snapshot();
        h.record(Duration::from_millis(20));
        let window = h.snapshot().since(&before);
        assert_eq!(window.count(), 1);
        assert_eq!(window.sum_micros, 20_000);
        assert!(window.quantile(0.5).unwrap() > Duration::from_millis(10));
    }
}
