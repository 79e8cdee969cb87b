//! Holds: while a strict write is in progress (here or on another instance), this
//! instance reads what it touches from the source.
//!
//! A strict write holds its keys, namespaces and tags from before it writes the source
//! until after: each instance installs the hold when it hears of it (the backplane, or
//! its next lease renewal), drops its L1 copies, and only then acknowledges it; the
//! writer writes the source once every instance holding an L1 lease has acknowledged,
//! or its lease has run out. A held key or namespace is not read from the cache at all,
//! and an entry carrying a held tag is a miss. Holds are kept per write, so one write's
//! release leaves another's hold of the same key in place; a hold whose release never
//! comes (the writer died) lapses after its TTL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::{Key, Tag};

/// How long a hold lasts without its release.
pub(crate) const HOLD_TTL: Duration = Duration::from_secs(5);

/// What one strict write holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Subjects {
    pub(crate) keys: Vec<Key>,
    pub(crate) roots: Vec<String>,
    pub(crate) tags: Vec<Tag>,
}

#[derive(Debug)]
struct Hold {
    until: Instant,
    subjects: Subjects,
}

#[derive(Debug, Default)]
struct Held {
    /// By hold id.
    holds: HashMap<String, Hold>,
    /// Holds released lately, until when a renewal computed before the release could
    /// still bring them back: they are not installed again.
    released: HashMap<String, Instant>,
}

impl Held {
    fn prune(&mut self, now: Instant) {
        self.holds.retain(|_, h| h.until > now);
        self.released.retain(|_, until| *until > now);
    }
}

/// The strict writes in progress that this instance knows of.
#[derive(Debug, Default)]
pub(crate) struct Holds {
    held: Mutex<Held>,
    /// How many holds there are, so reads pay one atomic load when there are none.
    count: AtomicUsize,
}

impl Holds {
    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn recount(&self, held: &Held) {
        self.count.store(held.holds.len(), Ordering::SeqCst);
    }

    /// Installs the hold `id` of `subjects` for `ttl`; false if it was installed already
    /// (it is extended) or released lately (a renewal older than the release).
    pub(crate) fn install(&self, id: &str, subjects: Subjects, ttl: Duration) -> bool {
        let mut held = self.lock();
        let now = Instant::now();
        held.prune(now);
        if held.released.contains_key(id) {
            return false;
        }
        let until = now + ttl;
        let new = match held.holds.get_mut(id) {
            Some(hold) => {
                hold.until = hold.until.max(until);
                false
            }
            None => {
                held.holds.insert(id.to_owned(), Hold { until, subjects });
                true
            }
        };
        self.recount(&held);
        new
    }

    /// Ends the hold `id`.
    pub(crate) fn release(&self, id: &str) {
        let mut held = self.lock();
        held.holds.remove(id);
        held.released
            .insert(id.to_owned(), Instant::now() + HOLD_TTL);
        self.recount(&held);
    }

    /// Ends the hold `id` of this instance's own write step (which no renewal brings
    /// back, so nothing is kept of it).
    pub(crate) fn end(&self, id: &str) {
        let mut held = self.lock();
        held.holds.remove(id);
        self.recount(&held);
    }

    /// Whether the hold `id` is installed.
    #[cfg(test)]
    fn has(&self, id: &str) -> bool {
        self.count.load(Ordering::SeqCst) > 0 && self.lock().holds.contains_key(id)
    }

    /// Drops every hold (this instance lost track: its L1 was flushed, it reads Redis,
    /// where the holds are kept too).
    pub(crate) fn clear(&self) {
        let mut held = self.lock();
        *held = Held::default();
        self.recount(&held);
    }

    fn any(&self, test: impl Fn(&Subjects) -> bool) -> bool {
        if self.count.load(Ordering::SeqCst) == 0 {
            return false;
        }
        let mut held = self.lock();
        held.prune(Instant::now());
        self.recount(&held);
        held.holds.values().any(|h| test(&h.subjects))
    }

    /// Whether an entry carrying `tags` must not be served now.
    pub(crate) fn blocks_tags(&self, tags: &[Tag]) -> bool {
        self.any(|s| s.tags.iter().any(|t| tags.contains(t)))
    }

    /// Whether a read of `key` in namespace `root` must go to the source now.
    pub(crate) fn blocks(&self, root: &str, key: Option<&Key>) -> bool {
        self.any(|s| s.roots.iter().any(|r| r == root) || key.is_some_and(|k| s.keys.contains(k)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyBuilder;

    #[test]
    fn a_hold_blocks_until_released_and_two_writes_hold_one_key_each() {
        let holds = Holds::default();
        let ns = KeyBuilder::new("t").unwrap().namespace("pet").unwrap();
        let key = ns.id(1);
        assert!(!holds.blocks(ns.root(), Some(&key)));
        let subjects = Subjects {
            keys: vec![key.clone()],
            roots: vec!["t:pets".into()],
            tags: vec![Tag::new("pet:1").unwrap()],
        };
        assert!(holds.install("a:1", subjects.clone(), HOLD_TTL));
        assert!(
            !holds.install("a:1", subjects.clone(), HOLD_TTL),
            "installed once"
        );
        assert!(holds.install("b:1", subjects, HOLD_TTL));
        assert!(holds.blocks(ns.root(), Some(&key)));
        assert!(!holds.blocks(ns.root(), Some(&ns.id(2))));
        assert!(holds.blocks("t:pets", None));
        assert!(holds.blocks_tags(&[Tag::new("pet:1").unwrap()]));
        assert!(!holds.blocks_tags(&[Tag::new("pet:2").unwrap()]));
        holds.release("a:1");
        assert!(holds.blocks(ns.root(), Some(&key)), "b still holds it");
        assert!(
            !holds.install("a:1", Subjects::default(), HOLD_TTL),
            "a renewal older than the release does not bring it back"
        );
        holds.release("b:1");
        assert!(!holds.blocks(ns.root(), Some(&key)));
        assert!(!holds.blocks("t:pets", None));
    }

    #[test]
    fn a_hold_whose_release_never_comes_lapses() {
        let holds = Holds::default();
        let subjects = Subjects {
            roots: vec!["t:pets".into()],
            ..Subjects::default()
        };
        holds.install("a:1", subjects, Duration::ZERO);
        assert!(!holds.blocks("t:pets", None));
        assert!(!holds.has("a:1"));
    }
}
