//! The staleness probe: a sample of the hits served is checked against the source, in
//! the background, after the answer has gone. A hit is **stale** when the source
//! already held a newer version before the read began: versions are the times values
//! were written (an `updated_at`), so a write landing after the read is not counted.
//!
//! The probe is bounded: at most [`ProbeConfig::max_in_flight`] checks at a time, and
//! none for [`ProbeConfig::pause`] after a check found the source slow or failing; what
//! it skips it counts as shed. Off unless [`crate::CacheClientBuilder::probe`] is given
//! a sample, and then each read costs one random draw.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::stats::{Histogram, HistogramSnapshot};

/// How the probe samples and bounds itself.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeConfig {
    /// The share of reads whose hit is checked, 0 to 1 (0: off).
    pub sample: f64,
    /// At most this many checks at once; a sampled hit past it is shed.
    pub max_in_flight: usize,
    /// A check whose load takes longer than this (or fails) pauses the probe.
    pub slow: Duration,
    /// How long the probe stays paused, shedding every sampled hit.
    pub pause: Duration,
    /// A newer version written less than this before the read began is not counted:
    /// the time a write takes between stamping its version and being acknowledged
    /// (0: count every newer version written before the read began).
    pub grace: Duration,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            sample: 0.0,
            max_in_flight: 4,
            slow: Duration::from_millis(250),
            pause: Duration::from_secs(5),
            grace: Duration::ZERO,
        }
    }
}

impl ProbeConfig {
    /// Checks `sample` of the hits (clamped to 0..=1), with the other settings' defaults.
    #[must_use]
    pub fn sample(sample: f64) -> Self {
        Self {
            sample: if sample.is_finite() {
                sample.clamp(0.0, 1.0)
            } else {
                0.0
            },
            ..Self::default()
        }
    }
}

/// What the probe found, at one moment.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ProbeSnapshot {
    /// The configured share of reads checked.
    pub sample: f64,
    /// Hits checked against the source.
    pub checked: u64,
    /// Of those, hits the source had already replaced before the read began.
    pub stale: u64,
    /// Sampled hits not checked: too many checks in flight, the source slow or failing.
    pub shed: u64,
    /// How long before the read each stale hit's newer version had been written.
    pub behind: HistogramSnapshot,
}

#[derive(Debug)]
pub(crate) struct Probe {
    config: ProbeConfig,
    permits: Arc<Semaphore>,
    /// Milliseconds since `born` until which checks are shed.
    paused_until: AtomicU64,
    born: Instant,
    checked: AtomicU64,
    stale: AtomicU64,
    shed: AtomicU64,
    behind: Histogram,
}

/// A sampled read: when it began, on the clock of versions.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sampled {
    pub(crate) began_ms: u64,
}

impl Probe {
    /// `None` when `config` samples nothing.
    pub(crate) fn new(config: ProbeConfig) -> Option<Arc<Self>> {
        let config = ProbeConfig {
            max_in_flight: config.max_in_flight.max(1),
            ..config
        };
        (config.sample > 0.0).then(|| {
            Arc::new(Self {
                permits: Arc::new(Semaphore::new(config.max_in_flight)),
                config,
                paused_until: AtomicU64::new(0),
                born: Instant::now(),
                checked: AtomicU64::new(0),
                stale: AtomicU64::new(0),
                shed: AtomicU64::new(0),
                behind: Histogram::default(),
            })
        })
    }

    /// Whether to check the read beginning now (at `now_ms` on the clock of versions).
    pub(crate) fn draw(&self, now_ms: impl FnOnce() -> u64) -> Option<Sampled> {
        (self.config.sample >= 1.0 || rand::random::<f64>() < self.config.sample)
            .then(|| Sampled { began_ms: now_ms() })
    }

    /// Checks a hit of version `served` (`None`: unversioned, not checked) read at
    /// `read`, against `load` (the source now, and the version of what it holds) on a
    /// task of its own; or sheds it.
    pub(crate) fn check<F>(self: &Arc<Self>, read: Sampled, served: Option<u64>, load: F)
    where
        F: Future<Output = Result<Option<u64>, ()>> + Send + 'static,
    {
        let Some(served) = served else {
            return;
        };
        let Some(permit) = self.permit() else {
            self.shed.fetch_add(1, Relaxed);
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let _permit: OwnedSemaphorePermit = permit;
            let began = Instant::now();
            let loaded = tokio::time::timeout(this.config.slow, load).await;
            if began.elapsed() >= this.config.slow || !matches!(loaded, Ok(Ok(_))) {
                this.pause();
            }
            match loaded {
                Ok(Ok(current)) => this.judge(read, served, current),
                _ => {
                    this.shed.fetch_add(1, Relaxed);
                }
            }
        });
    }

    fn permit(&self) -> Option<OwnedSemaphorePermit> {
        let now = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        if now < self.paused_until.load(Relaxed) {
            return None;
        }
        self.permits.clone().try_acquire_owned().ok()
    }

    fn pause(&self) {
        let until = self.born.elapsed() + self.config.pause;
        let until = u64::try_from(until.as_millis()).unwrap_or(u64::MAX);
        self.paused_until.fetch_max(until, Relaxed);
    }

    /// Counts a check: the hit served version `served` of a read begun at `read`; the
    /// source now holds `current` (`None`: nothing versioned).
    fn judge(&self, read: Sampled, served: u64, current: Option<u64>) {
        self.checked.fetch_add(1, Relaxed);
        let Some(current) = current else {
            return;
        };
        let grace = u64::try_from(self.config.grace.as_millis()).unwrap_or(u64::MAX);
        if current > served && current.saturating_add(grace) < read.began_ms {
            self.stale.fetch_add(1, Relaxed);
            self.behind
                .record(Duration::from_millis(read.began_ms - current));
            tracing::warn!(
                served,
                current,
                behind_ms = read.began_ms - current,
                "staleness probe: a hit the source had already replaced before the read"
            );
        }
    }

    pub(crate) fn snapshot(&self) -> ProbeSnapshot {
        ProbeSnapshot {
            sample: self.config.sample,
            checked: self.checked.load(Relaxed),
            stale: self.stale.load(Relaxed),
            shed: self.shed.load(Relaxed),
            behind: self.behind.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(config: ProbeConfig) -> Arc<Probe> {
        Probe::new(config).unwrap()
    }

    async fn settle(p: &Probe, checks: u64) {
        for _ in 0..200 {
            let s = p.snapshot();
            if s.checked + s.shed >= checks {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("checks did not finish: {:?}", p.snapshot());
    }

    #[test]
    fn no_sample_no_probe_and_a_full_sample_draws_every_read() {
        assert!(Probe::new(ProbeConfig::sample(0.0)).is_none());
        assert!(Probe::new(ProbeConfig::sample(f64::NAN)).is_none());
        let p = probe(ProbeConfig::sample(1.0));
        assert!((0..100).all(|_| p.draw(|| 7).is_some_and(|s| s.began_ms == 7)));
    }

    #[tokio::test]
    async fn a_version_replaced_before_the_read_is_stale_and_one_replaced_after_is_not() {
        let p = probe(ProbeConfig::sample(1.0));
        let read = Sampled { began_ms: 1_000 };
        // Replaced at 900, read at 1000, served the version of 500: stale by 100 ms.
        p.check(read, Some(500), async { Ok(Some(900)) });
        // Replaced at 1100, after the read began: not stale.
        p.check(read, Some(500), async { Ok(Some(1_100)) });
        // Served what the source holds.
        p.check(read, Some(500), async { Ok(Some(500)) });
        // Gone from the source, or served something unversioned: not judged stale.
        p.check(read, Some(500), async { Ok(None) });
        p.check(read, None, async { Ok(Some(900)) });
        settle(&p, 4).await;
        let s = p.snapshot();
        assert_eq!((s.checked, s.stale, s.shed), (4, 1, 0));
        assert_eq!(s.behind.count(), 1);
        assert!(s.behind.quantile(0.5).unwrap() <= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_grace_forgives_a_version_written_just_before_the_read() {
        let p = probe(ProbeConfig {
            grace: Duration::from_millis(150),
            ..ProbeConfig::sample(1.0)
        });
        p.check(Sampled { began_ms: 1_000 }, Some(500), async {
            Ok(Some(900))
        });
        p.check(Sampled { began_ms: 1_000 }, Some(500), async {
            Ok(Some(800))
        });
        settle(&p, 2).await;
        assert_eq!(p.snapshot().stale, 1);
    }

    #[tokio::test]
    async fn checks_past_the_bound_are_shed_and_a_failing_source_pauses_the_probe() {
        let p = probe(ProbeConfig {
            max_in_flight: 1,
            ..ProbeConfig::sample(1.0)
        });
        let read = Sampled { began_ms: 1_000 };
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        p.check(read, Some(1), async move {
            let _ = wait.await;
            Ok(Some(1))
        });
        p.check(read, Some(1), async { Ok(Some(1)) }); // no permit left: shed
        assert_eq!(p.snapshot().shed, 1);
        let _ = release.send(());
        settle(&p, 2).await;
        assert_eq!(p.snapshot().checked, 1);

        p.check(read, Some(1), async { Err(()) }); // failing: shed, and pauses
        settle(&p, 3).await;
        p.check(read, Some(1), async { Ok(Some(1)) }); // paused: shed at once
        let s = p.snapshot();
        assert_eq!((s.checked, s.shed), (1, 3));
    }

    #[tokio::test]
    async fn a_slow_source_is_not_waited_for() {
        let p = probe(ProbeConfig {
            slow: Duration::from_millis(20),
            ..ProbeConfig::sample(1.0)
        });
        p.check(Sampled { began_ms: 1_000 }, Some(1), async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(Some(2))
        });
        settle(&p, 1).await;
        let s = p.snapshot();
        assert_eq!((s.checked, s.shed), (0, 1));
    }
}
