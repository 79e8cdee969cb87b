//! Version (generation) counters per namespace: in Redis when there is a shared tier,
//! in memory otherwise, with a local copy that the backplane keeps current.
//!
//! With a shared tier, Redis is the only place a version is made: a bump that cannot
//! reach it fails (and the client queues it for replay) rather than inventing a local
//! number another instance could hand out too for different data.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::tier::RedisTier;
use crate::{CacheError, Namespace};

/// A namespace root and its version after a bump.
pub(crate) type Bumped = Vec<(String, u64)>;

/// A namespace's current version, and whether Redis says a strict write holds it (with
/// a trusted local copy, the instance's own holds say it instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    pub(crate) value: u64,
    pub(crate) held: bool,
}

#[derive(Debug)]
pub(crate) struct Versions {
    local: Mutex<HashMap<String, u64>>,
    l2: Option<RedisTier>,
    /// The local copy is current: there is no shared tier, or the backplane is connected.
    trusted: AtomicBool,
}

impl Versions {
    pub(crate) fn new(l2: Option<RedisTier>) -> Self {
        Self {
            local: Mutex::default(),
            trusted: AtomicBool::new(l2.is_none()),
            l2,
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn known(&self, root: &str) -> Option<u64> {
        self.map().get(root).copied()
    }

    /// Whether `v` is still the version of `root` as far as this instance knows, for
    /// an L1 hit made at `v` (with a shared tier, an unknown version is not `v`: it was
    /// forgotten because it may have moved).
    pub(crate) fn is_still(&self, root: &str, v: u64) -> bool {
        match (self.known(root), &self.l2) {
            (Some(known), _) => known == v,
            (None, None) => v == 0,
            (None, Some(_)) => false,
        }
    }

    /// The namespace's current version. Without a trusted local copy it is read from
    /// Redis (one bounded round trip), with whether a strict write holds the namespace.
    /// `Err` when Redis cannot say: the caller must not use the cache for this read,
    /// since a version it guessed could be an old one.
    pub(crate) async fn current(&self, ns: &Namespace) -> Result<Version, CacheError> {
        if self.trusted.load(Ordering::SeqCst)
            && let Some(v) = self.known(ns.root())
        {
            return Ok(Version {
                value: v,
                held: false,
            });
        }
        let Some(l2) = &self.l2 else {
            return Ok(Version {
                value: self.known(ns.root()).unwrap_or(0),
                held: false,
            });
        };
        let read = l2.read_versions(&[ns.root()]).await?;
        let (value, held) = read.first().copied().unwrap_or_default();
        self.learn(ns.root(), value);
        Ok(Version { value, held })
    }

    /// Advances the versions of `namespaces` and returns `(root, new version)` for each.
    /// With a shared tier, `Err` when Redis did not answer: nothing was bumped locally.
    pub(crate) async fn bump(&self, namespaces: &[Namespace]) -> Result<Bumped, CacheError> {
        if namespaces.is_empty() {
            return Ok(Vec::new());
        }
        let roots: Vec<&str> = namespaces.iter().map(Namespace::root).collect();
        if let Some(l2) = &self.l2 {
            let values = l2.bump_counters(&roots).await?;
            return Ok(roots
                .into_iter()
                .zip(values)
                .map(|(root, v)| {
                    self.learn(root, v);
                    (root.to_owned(), v)
                })
                .collect());
        }
        let mut map = self.map();
        Ok(roots
            .into_iter()
            .map(|root| {
                let v = map.entry(root.to_owned()).or_insert(0);
                *v += 1;
                (root.to_owned(), *v)
            })
            .collect())
    }

    /// Records a version heard from another instance or read from Redis (versions only
    /// move forward: Redis starts a lost counter above every value it had).
    pub(crate) fn learn(&self, root: &str, v: u64) {
        let mut map = self.map();
        let slot = map.entry(root.to_owned()).or_insert(v);
        *slot = (*slot).max(v);
    }

    /// Forgets the local copy of `root`'s version (the next read of it asks Redis).
    pub(crate) fn forget_root(&self, root: &str) {
        if self.l2.is_some() {
            self.map().remove(root);
        }
    }

    /// Forgets every local copy (the next read asks Redis).
    pub(crate) fn forget(&self) {
        if self.l2.is_some() {
            self.map().clear();
        }
    }

    pub(crate) fn set_trusted(&self, trusted: bool) {
        if self.l2.is_some() {
            self.trusted.store(trusted, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyBuilder;

    #[tokio::test]
    async fn without_a_shared_tier_versions_count_up_in_memory() {
        let v = Versions::new(None);
        let keys = KeyBuilder::new("t").unwrap();
        let (a, b) = (keys.namespace("a").unwrap(), keys.namespace("b").unwrap());
        assert_eq!(v.current(&a).await.unwrap().value, 0);
        assert_eq!(
            v.bump(&[a.clone(), b.clone()]).await.unwrap(),
            vec![("t:a".into(), 1), ("t:b".into(), 1)]
        );
        assert_eq!(
            v.bump(std::slice::from_ref(&a)).await.unwrap(),
            vec![("t:a".into(), 2)]
        );
        assert_eq!(
            (
                v.current(&a).await.unwrap().value,
                v.current(&b).await.unwrap().value
            ),
            (2, 1)
        );
        v.learn("t:a", 1);
        v.forget();
        assert_eq!(
            v.current(&a).await.unwrap().value,
            2,
            "versions never go back"
        );
    }
}
