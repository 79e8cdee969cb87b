//! A consecutive-failure circuit breaker for the shared tier.
//!
//! Closed: calls go through; `threshold` failures in a row open it. Open: calls are
//! skipped until the cool-down ends. Then one call is let through as a probe (half-open):
//! success closes the breaker, failure opens it for another cool-down. A probe that never
//! reports (its future was dropped) is replaced after one cool-down.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::Clock;

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed { failures: u32 },
    Open { until: Duration },
    HalfOpen { since: Duration },
}

/// What a caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Permit {
    /// Call the tier.
    Go,
    /// Skip the tier; the breaker is open for about this much longer.
    Skip(Duration),
}

#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            clock,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a plain value: a panic elsewhere cannot leave it inconsistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn permit(&self) -> Permit {
        let now = self.clock.now();
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Permit::Go,
            State::Open { until } if now < until => Permit::Skip(until - now),
            State::HalfOpen { since } if now < since + self.cooldown => {
                Permit::Skip(since + self.cooldown - now)
            }
            State::Open { .. } | State::HalfOpen { .. } => {
                *state = State::HalfOpen { since: now };
                Permit::Go
            }
        }
    }

    pub(crate) fn success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    /// Records a failure; returns true when this failure opened the breaker.
    pub(crate) fn failure(&self) -> bool {
        let now = self.clock.now();
        let mut state = self.lock();
        let open = match *state {
            State::Closed { failures } if failures + 1 < self.threshold => {
                *state = State::Closed {
                    failures: failures + 1,
                };
                return false;
            }
            State::Open { .. } => return false,
            State::Closed { .. } | State::HalfOpen { .. } => State::Open {
                until: now + self.cooldown,
            },
        };
        *state = open;
        true
    }

    pub(crate) fn is_open(&self) -> bool {
        !matches!(*self.lock(), State::Closed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn breaker() -> (Breaker, ManualClock) {
        let clock = ManualClock::new();
        (
            Breaker::new(3, Duration::from_secs(1), Arc::new(clock.clone())),
            clock,
        )
    }

    #[test]
    fn it_opens_after_consecutive_failures_only() {
        let (b, _) = breaker();
        b.failure();
        b.failure();
        b.success();
        b.failure();
        b.failure();
        assert_eq!(b.permit(), Permit::Go);
        assert!(b.failure());
        assert!(matches!(b.permit(), Permit::Skip(_)));
        assert!(b.is_open());
    }

    #[test]
    fn after_the_cool_down_one_probe_goes_and_its_success_closes_the_breaker() {
        let (b, clock) = breaker();
        for _ in 0..3 {
            b.failure();
        }
        clock.advance(Duration::from_millis(999));
        assert!(matches!(b.permit(), Permit::Skip(_)));
        clock.advance(Duration::from_millis(1));
        assert_eq!(b.permit(), Permit::Go);
        assert!(
            matches!(b.permit(), Permit::Skip(_)),
            "only one probe at a time"
        );
        b.success();
        assert_eq!(b.permit(), Permit::Go);
        assert!(!b.is_open());
    }

    #[test]
    fn a_failed_probe_reopens_and_a_lost_probe_is_replaced() {
        let (b, clock) = breaker();
        for _ in 0..3 {
            b.failure();
        }
        clock.advance(Duration::from_secs(1));
        assert_eq!(b.permit(), Permit::Go);
        assert!(b.failure());
        assert!(matches!(b.permit(), Permit::Skip(_)));
        clock.advance(Duration::from_secs(1));
        assert_eq!(b.permit(), Permit::Go); // probe, never reports back
        clock.advance(Duration::from_secs(1));
        assert_eq!(b.permit(), Permit::Go, "a lost probe is replaced");
    }
}
