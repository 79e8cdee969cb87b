//! The replayer: one task per client that makes queued effects as soon as Redis
//! answers, and queues a new generation whenever this instance sees Redis fail.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::effect::Effect;
use super::recovery::Recovery;
use super::{CacheClient, Inner};
use crate::codec::Codec;
use crate::tier::RedisTier;

/// How often the replayer probes Redis while effects wait for it, and looks for faults.
const REPLAY_RETRY: Duration = Duration::from_millis(50);

impl<C: Codec> CacheClient<C> {
    /// Faults this instance has seen: the breaker opening, the backplane dropping.
    pub(super) fn faults_seen(&self) -> u64 {
        let breaker = self.inner.l2.as_ref().map_or(0, RedisTier::faults);
        let drops = self.inner.backplane.as_ref().map_or(0, |bp| bp.drops());
        breaker + drops
    }
}

/// Replays queued effects, oldest first, as soon as Redis answers (probing it past the
/// breaker while they wait), and queues a new generation whenever this instance sees
/// Redis fail. Stops with the client.
pub(crate) async fn replay_forever<C: Codec>(weak: Weak<Inner<C>>, recovery: Arc<Recovery>) {
    loop {
        tokio::select! {
            () = recovery.queued() => {}
            () = tokio::time::sleep(REPLAY_RETRY) => {}
        }
        let Some(inner) = weak.upgrade() else { return };
        let client = CacheClient { inner };
        // Reads note faults too; this covers an instance nobody reads through.
        recovery.note_faults(client.faults_seen());
        let mut stalled = false;
        while let Some(front) = recovery.front() {
            // A new generation covers every effect queued before it is sent: those
            // entries become unreachable with it.
            let through = match front.effect {
                Effect::NewGeneration => recovery.newest().unwrap_or(front.seq),
                _ => front.seq,
            };
            match client.apply(&front.effect).await {
                Ok(()) => {
                    tracing::debug!(effect = ?front.effect, "queued cache-side effect made");
                    recovery.done_through(through);
                }
                Err(e) => {
                    tracing::debug!(effect = ?front.effect, error = %e, "replay waits for redis");
                    stalled = true;
                    break;
                }
            }
        }
        if stalled && let Some(l2) = &client.inner.l2 {
            // Past the breaker: the queue is what keeps this instance off the cache.
            let _ = l2.probe().await;
        }
    }
}
