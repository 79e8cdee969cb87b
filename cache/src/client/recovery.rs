//! Recovery: the cache-side effects of acknowledged writes that did not reach Redis.
//!
//! A write's invalidation, version bump or backplane message that fails (Redis down,
//! slow, partitioned) is not forgotten: it goes into this bounded, per-instance queue
//! and a background task replays it, in order, as soon as Redis answers again. Every
//! effect is idempotent (an invalidation or a bump applied twice costs a miss, never a
//! stale read), so a replay that half-succeeded before is simply run again.
//!
//! While an effect is pending, this instance does not trust the cache for what it
//! concerns: reads of a pending key, or of any key of a namespace with a pending bump,
//! go to the source ([`crate::Source::Bypass`]) and fill nothing; an entry carrying a
//! tag with a pending invalidation is a miss. When the queue
//! overflows, the effects are dropped for one coarse one, a new generation of the
//! shared tier (every entry written before it unreachable, every L1 emptied), and until
//! it has landed every read is a bypass: slower, never silently stale.
//!
//! The same coarse effect is queued when this instance sees Redis fail (its circuit
//! breaker opens, or its backplane subscription drops): other instances may have
//! queued writes of their own, and until they are replayed Redis may still hold what
//! they replace. The new generation, made before this instance reads Redis again,
//! makes all of it unreachable.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};

use serde::Serialize;

pub(crate) use super::effect::Effect;
use crate::{Key, Tag};

/// Default bound on the effects one instance keeps for replay.
pub const DEFAULT_RECOVERY_CAPACITY: usize = 10_000;

/// The recovery counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RecoverySnapshot {
    /// Effects waiting for Redis now.
    pub pending: u64,
    /// Effects that failed and were queued, since start.
    pub queued: u64,
    /// Effects made once Redis answered (replayed, or covered by a new generation), since start.
    pub replayed: u64,
    /// Times the queue overflowed and fell back to a new generation.
    pub overflows: u64,
    /// Reads answered by the source because an effect concerning them was pending.
    pub bypassed_reads: u64,
}

/// An effect in the queue, numbered in the order it was queued.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Queued {
    pub(crate) seq: u64,
    pub(crate) effect: Effect,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Queued>,
    /// The number the next queued effect gets.
    next: u64,
    /// How many queued effects concern each key / each namespace root.
    keys: HashMap<Key, usize>,
    roots: HashMap<String, usize>,
    tags: HashMap<Tag, usize>,
    /// A flush or a new generation is queued: nothing in the cache is trusted until it
    /// lands.
    everything: bool,
}

impl State {
    fn count(&mut self, effect: &Effect, up: bool) {
        fn step<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, k: K, up: bool) {
            if up {
                *map.entry(k).or_default() += 1;
            } else if let Some(n) = map.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&k);
                }
            }
        }
        match effect {
            Effect::Invalidate(key) => step(&mut self.keys, key.clone(), up),
            Effect::Bump(namespaces) => {
                for ns in namespaces {
                    step(&mut self.roots, ns.root().to_owned(), up);
                }
            }
            Effect::BumpTags(tags) => {
                for tag in tags {
                    step(&mut self.tags, tag.clone(), up);
                }
            }
            Effect::Step(s) => {
                for key in &s.keys {
                    step(&mut self.keys, key.clone(), up);
                }
                for ns in &s.namespaces {
                    step(&mut self.roots, ns.root().to_owned(), up);
                }
                for tag in &s.tags {
                    step(&mut self.tags, tag.clone(), up);
                }
            }
            Effect::Flush | Effect::NewGeneration => self.everything = up,
        }
    }
}

/// The queue of one instance. Writers push, one background task replays.
#[derive(Debug)]
pub(crate) struct Recovery {
    state: Mutex<State>,
    capacity: usize,
    /// Mirrors "the queue is not empty", so reads pay one atomic load when nothing is pending.
    any: AtomicBool,
    wake: tokio::sync::Notify,
    queued: AtomicU64,
    replayed: AtomicU64,
    overflows: AtomicU64,
    bypassed: AtomicU64,
    /// The faults seen by this instance that a new generation was queued for.
    faults_handled: AtomicU64,
}

impl Recovery {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::default(),
            capacity: capacity.max(1),
            any: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            queued: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            overflows: AtomicU64::new(0),
            bypassed: AtomicU64::new(0),
            faults_handled: AtomicU64::new(0),
        }
    }

    /// Queues a new generation when `faults` (how many times this instance has seen
    /// Redis fail so far) is past the faults one was queued for. Every read calls it
    /// before it looks at the queue, and so does the replayer: no read trusts Redis
    /// between this instance seeing it fail and the generation being queued.
    pub(crate) fn note_faults(&self, faults: u64) -> bool {
        if self.faults_handled.load(SeqCst) >= faults {
            return false;
        }
        tracing::warn!(
            "redis failed: a new generation will be started before the cache is trusted again"
        );
        // Pushed before it is marked handled, so whoever sees it handled finds it queued
        // (or made). Two readers racing here push one (a queued generation is not
        // queued twice) or, if the first was already made, one more: a miss, never stale.
        self.push(Effect::NewGeneration);
        self.faults_handled.fetch_max(faults, SeqCst);
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain values: a panic elsewhere cannot leave them inconsistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `effect` for replay. On overflow, everything queued is replaced by one new
    /// generation (which covers the effect too).
    pub(crate) fn push(&self, effect: Effect) {
        self.queued.fetch_add(1, Relaxed);
        let mut state = self.lock();
        if effect == Effect::NewGeneration
            && state
                .queue
                .iter()
                .any(|q| q.effect == Effect::NewGeneration)
        {
            return;
        }
        let effect = if state.queue.len() >= self.capacity {
            self.overflows.fetch_add(1, Relaxed);
            tracing::error!(
                capacity = self.capacity,
                "recovery queue full: falling back to a new generation once Redis answers"
            );
            let next = state.next;
            *state = State::default();
            state.next = next;
            Effect::NewGeneration
        } else {
            effect
        };
        state.count(&effect, true);
        let seq = state.next;
        state.next += 1;
        state.queue.push_back(Queued { seq, effect });
        self.any.store(true, SeqCst);
        drop(state);
        self.wake.notify_one();
    }

    /// The oldest pending effect, left in place until [`Recovery::done_through`].
    pub(crate) fn front(&self) -> Option<Queued> {
        self.lock().queue.front().cloned()
    }

    /// The number of the newest queued effect (before anything is queued: none).
    pub(crate) fn newest(&self) -> Option<u64> {
        self.lock().next.checked_sub(1)
    }

    /// Every effect numbered up to `seq` has been made (one replayed, or all of them
    /// covered by a new generation that landed after they were queued): drop them.
    pub(crate) fn done_through(&self, seq: u64) {
        let mut state = self.lock();
        while let Some(front) = state.queue.front()
            && front.seq <= seq
        {
            let Some(done) = state.queue.pop_front() else {
                break;
            };
            state.count(&done.effect, false);
            self.replayed.fetch_add(1, Relaxed);
        }
        self.any.store(!state.queue.is_empty(), SeqCst);
    }

    /// Waits until something is queued.
    pub(crate) async fn queued(&self) {
        if !self.any.load(SeqCst) {
            self.wake.notified().await;
        }
    }

    /// Whether reads of namespace `root` must skip the cache now.
    pub(crate) fn blocks_root(&self, root: &str) -> bool {
        if !self.any.load(SeqCst) {
            return false;
        }
        let state = self.lock();
        let blocked = state.everything || state.roots.contains_key(root);
        drop(state);
        self.count_bypass(blocked)
    }

    /// Whether reads of `key` must skip the cache now.
    pub(crate) fn blocks_key(&self, key: &Key) -> bool {
        if !self.any.load(SeqCst) {
            return false;
        }
        let state = self.lock();
        let blocked = state.everything || state.keys.contains_key(key);
        drop(state);
        self.count_bypass(blocked)
    }

    /// Whether an entry carrying `tags` must not be served now.
    pub(crate) fn blocks_tags(&self, tags: &[Tag]) -> bool {
        if !self.any.load(SeqCst) {
            return false;
        }
        let state = self.lock();
        let blocked = state.everything || tags.iter().any(|t| state.tags.contains_key(t));
        drop(state);
        self.count_bypass(blocked)
    }

    fn count_bypass(&self, blocked: bool) -> bool {
        if blocked {
            self.bypassed.fetch_add(1, Relaxed);
        }
        blocked
    }

    pub(crate) fn snapshot(&self) -> RecoverySnapshot {
        RecoverySnapshot {
            pending: self.lock().queue.len() as u64,
            queued: self.queued.load(Relaxed),
            replayed: self.replayed.load(Relaxed),
            overflows: self.overflows.load(Relaxed),
            bypassed_reads: self.bypassed.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyBuilder, Namespace};

    fn ns(name: &str) -> Namespace {
        KeyBuilder::new("t").unwrap().namespace(name).unwrap()
    }

    #[test]
    fn pending_effects_block_their_keys_and_namespaces_until_replayed() {
        let r = Recovery::new(10);
        let (pet, pets) = (ns("pet"), ns("pets"));
        let key = pet.id(1);
        assert!(!r.blocks_key(&key) && !r.blocks_root(pets.root()));

        r.push(Effect::Invalidate(key.clone()));
        r.push(Effect::Bump(vec![pets.clone()]));
        assert!(r.blocks_key(&key));
        assert!(!r.blocks_key(&pet.id(2)), "other keys are untouched");
        assert!(r.blocks_root(pets.root()));
        assert!(!r.blocks_root(pet.root()));

        let first = r.front().unwrap();
        assert_eq!(first.effect, Effect::Invalidate(key.clone()));
        r.done_through(first.seq);
        assert!(!r.blocks_key(&key));
        assert!(r.blocks_root(pets.root()));
        r.done_through(r.front().unwrap().seq);
        assert!(r.front().is_none());
        let s = r.snapshot();
        assert_eq!((s.pending, s.queued, s.replayed, s.overflows), (0, 2, 2, 0));
        assert_eq!(r.newest(), Some(1));
        assert_eq!(s.bypassed_reads, 3);
    }

    #[test]
    fn an_overflow_falls_back_to_one_new_generation_that_blocks_everything() {
        let r = Recovery::new(2);
        let pet = ns("pet");
        for id in 0..3 {
            r.push(Effect::Invalidate(pet.id(id)));
        }
        let front = r.front().unwrap();
        assert_eq!(front.effect, Effect::NewGeneration);
        assert!(
            r.blocks_key(&ns("other").id(9)),
            "nothing is trusted before it lands"
        );
        assert!(r.blocks_root("t:anything"));
        r.push(Effect::NewGeneration);
        r.push(Effect::Invalidate(pet.id(7)));
        let s = r.snapshot();
        assert_eq!((s.pending, s.queued, s.overflows), (2, 5, 1));

        r.done_through(front.seq);
        assert!(!r.blocks_key(&pet.id(0)));
        assert!(r.blocks_key(&pet.id(7)));
        r.done_through(r.newest().unwrap());
        assert_eq!(r.snapshot().pending, 0);
    }
}
