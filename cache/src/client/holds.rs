//! Holds: while another instance is in the middle of a strict write, this instance
//! reads what it touches from the source.
//!
//! A strict write tells every instance before it writes the source (the "hold") and
//! after (the usual evict or versions message, which releases it). In between, an
//! instance that read the old value could keep it in its L1 until the release arrives,
//! a few hundred microseconds after the writer acknowledged: the window of any
//! asynchronous invalidation. A held key or namespace is not read from the cache at
//! all, so that window is closed. A hold whose release never comes (the writer died,
//! its source write failed) lapses after [`HOLD_TTL`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::{Key, Tag};

/// How long a hold lasts without its release.
pub(crate) const HOLD_TTL: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct Held {
    keys: HashMap<Key, Instant>,
    roots: HashMap<String, Instant>,
    tags: HashMap<Tag, Instant>,
}

/// The keys and namespaces other instances are writing now.
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
        self.count.store(
            held.keys.len() + held.roots.len() + held.tags.len(),
            Ordering::SeqCst,
        );
    }

    pub(crate) fn hold_key(&self, key: Key) {
        let mut held = self.lock();
        held.keys.insert(key, Instant::now() + HOLD_TTL);
        self.recount(&held);
    }

    pub(crate) fn hold_root(&self, root: &str) {
        let mut held = self.lock();
        held.roots
            .insert(root.to_owned(), Instant::now() + HOLD_TTL);
        self.recount(&held);
    }

    pub(crate) fn hold_tags(&self, tags: &[Tag]) {
        let mut held = self.lock();
        let until = Instant::now() + HOLD_TTL;
        for tag in tags {
            held.tags.insert(tag.clone(), until);
        }
        self.recount(&held);
    }

    pub(crate) fn release_tags(&self, tags: &[Tag]) {
        if self.count.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut held = self.lock();
        for tag in tags {
            held.tags.remove(tag);
        }
        self.recount(&held);
    }

    /// Whether an entry carrying `tags` must not be served now.
    pub(crate) fn blocks_tags(&self, tags: &[Tag]) -> bool {
        if self.count.load(Ordering::SeqCst) == 0 {
            return false;
        }
        let now = Instant::now();
        let held = self.lock();
        tags.iter()
            .any(|t| held.tags.get(t).is_some_and(|until| *until > now))
    }

    pub(crate) fn release_key(&self, key: &Key) {
        if self.count.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut held = self.lock();
        held.keys.remove(key);
        self.recount(&held);
    }

    pub(crate) fn release_root(&self, root: &str) {
        if self.count.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut held = self.lock();
        held.roots.remove(root);
        self.recount(&held);
    }

    /// Drops every hold (this instance lost track: its L1 was flushed, it reads Redis).
    pub(crate) fn clear(&self) {
        let mut held = self.lock();
        *held = Held::default();
        self.recount(&held);
    }

    /// Whether a read of `key` in namespace `root` must go to the source now.
    pub(crate) fn blocks(&self, root: &str, key: Option<&Key>) -> bool {
        if self.count.load(Ordering::SeqCst) == 0 {
            return false;
        }
        let now = Instant::now();
        let mut held = self.lock();
        held.keys.retain(|_, until| *until > now);
        held.roots.retain(|_, until| *until > now);
        held.tags.retain(|_, until| *until > now);
        self.recount(&held);
        held.roots.contains_key(root) || key.is_some_and(|k| held.keys.contains_key(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyBuilder;

    #[test]
    fn a_hold_blocks_until_released() {
        let holds = Holds::default();
        let ns = KeyBuilder::new("t").unwrap().namespace("pet").unwrap();
        let key = ns.id(1);
        assert!(!holds.blocks(ns.root(), Some(&key)));
        holds.hold_key(key.clone());
        holds.hold_root("t:pets");
        assert!(holds.blocks(ns.root(), Some(&key)));
        assert!(!holds.blocks(ns.root(), Some(&ns.id(2))));
        assert!(holds.blocks("t:pets", None));
        holds.release_key(&key);
        holds.release_root("t:pets");
        assert!(!holds.blocks(ns.root(), Some(&key)));
        assert!(!holds.blocks("t:pets", None));
    }
}
