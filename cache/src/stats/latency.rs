//! How long cache operations take, per operation and outcome: what
//! `cache_operation_duration_seconds{tier, operation, outcome}` exports.

use std::time::Instant;

use serde::Serialize;

use super::histogram::{Histogram, HistogramSnapshot};

/// What was timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// A read of entries (L1 lookup, the L2 read script).
    Get,
    /// Any other round trip to Redis: a fill, a write's step, a strict hold, an admin
    /// action.
    Script,
    /// A backplane message sent on its own.
    Publish,
    /// A loader run (a trip to the source of truth).
    Load,
}

/// How it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// A read that found an entry.
    Hit,
    /// A read that found none.
    Miss,
    /// Anything else that succeeded.
    Ok,
    /// A failure (an error, a timeout, an open breaker is not timed).
    Error,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Self; 4] = [Self::Get, Self::Script, Self::Publish, Self::Load];

    /// `get`, `script`, `publish` or `load`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Script => "script",
            Self::Publish => "publish",
            Self::Load => "load",
        }
    }
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Self; 4] = [Self::Hit, Self::Miss, Self::Ok, Self::Error];

    /// `hit`, `miss`, `ok` or `error`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Ok => "ok",
            Self::Error => "error",
        }
    }
}

/// One histogram per operation and outcome.
#[derive(Debug, Default)]
pub(crate) struct Latencies {
    by: [[Histogram; Outcome::ALL.len()]; Operation::ALL.len()],
}

impl Latencies {
    pub(crate) fn since(&self, operation: Operation, outcome: Outcome, began: Instant) {
        self.by[operation as usize][outcome as usize].record(began.elapsed());
    }

    /// The histograms that counted anything.
    pub(crate) fn snapshot(&self) -> Vec<OperationLatency> {
        let mut out = Vec::new();
        for operation in Operation::ALL {
            for outcome in Outcome::ALL {
                let histogram = self.by[operation as usize][outcome as usize].snapshot();
                if histogram.count() > 0 {
                    out.push(OperationLatency {
                        operation: operation.as_str(),
                        outcome: outcome.as_str(),
                        histogram,
                    });
                }
            }
        }
        out
    }
}

/// The durations of one operation with one outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OperationLatency {
    /// [`Operation::as_str`].
    pub operation: &'static str,
    /// [`Outcome::as_str`].
    pub outcome: &'static str,
    /// How long they took.
    pub histogram: HistogramSnapshot,
}

/// The histogram of `operation` with `outcome` in `latencies` (empty when none).
#[must_use]
pub fn latency_of(
    latencies: &[OperationLatency],
    operation: Operation,
    outcome: Outcome,
) -> HistogramSnapshot {
    latencies
        .iter()
        .find(|l| l.operation == operation.as_str() && l.outcome == outcome.as_str())
        .map(|l| l.histogram.clone())
        .unwrap_or_default()
}
