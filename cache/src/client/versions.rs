//! Version (generation) counters per namespace: in Redis when there is a shared tier,
//! in memory otherwise, with a local copy that the backplane keeps current.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Namespace;
use crate::tier::RedisTier;

/// A namespace root and its version after a bump.
pub(crate) type Bumped = Vec<(String, u64)>;

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

    /// The namespace's current version. Without a trusted local copy it is read from
    /// Redis (one bounded round trip); if Redis cannot answer, the last known one is used
    /// (L1 is bypassed then, and L2 unreachable, so reads go to the source anyway).
    pub(crate) async fn current(&self, ns: &Namespace) -> u64 {
        if self.trusted.load(Ordering::SeqCst)
            && let Some(v) = self.known(ns.root())
        {
            return v;
        }
        let Some(l2) = &self.l2 else {
            return self.known(ns.root()).unwrap_or(0);
        };
        match l2.read_counters(&[ns.root()]).await {
            Ok(read) => {
                let v = read.first().copied().unwrap_or_default();
                self.learn(ns.root(), v);
                v
            }
            Err(e) => {
                tracing::debug!(namespace = ns.root(), error = %e, "version unreadable: using the last known");
                self.known(ns.root()).unwrap_or(0)
            }
        }
    }

    /// Advances the versions of `namespaces` and returns `(root, new version)` for each.
    pub(crate) async fn bump(&self, namespaces: &[Namespace]) -> Bumped {
        if namespaces.is_empty() {
            return Vec::new();
        }
        let roots: Vec<&str> = namespaces.iter().map(Namespace::root).collect();
        if let Some(l2) = &self.l2 {
            match l2.bump_counters(&roots).await {
                Ok(values) => {
                    return roots
                        .into_iter()
                        .zip(values)
                        .map(|(root, v)| {
                            self.learn(root, v);
                            (root.to_owned(), v)
                        })
                        .collect();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "version bump could not reach redis: bumped locally only");
                }
            }
        }
        let mut map = self.map();
        roots
            .into_iter()
            .map(|root| {
                let v = map.entry(root.to_owned()).or_insert(0);
                *v += 1;
                (root.to_owned(), *v)
            })
            .collect()
    }

    /// Records a version heard from another instance (versions only move forward).
    pub(crate) fn learn(&self, root: &str, v: u64) {
        let mut map = self.map();
        let slot = map.entry(root.to_owned()).or_insert(v);
        *slot = (*slot).max(v);
    }

    /// Forgets every local copy (the next read asks Redis).
    pub(crate) fn forget(&self) {
        self.map().clear();
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
        assert_eq!(v.current(&a).await, 0);
        assert_eq!(
            v.bump(&[a.clone(), b.clone()]).await,
            vec![("t:a".into(), 1), ("t:b".into(), 1)]
        );
        assert_eq!(
            v.bump(std::slice::from_ref(&a)).await,
            vec![("t:a".into(), 2)]
        );
        assert_eq!((v.current(&a).await, v.current(&b).await), (2, 1));
        v.learn("t:a", 1);
        assert_eq!(v.current(&a).await, 2, "versions never go back");
    }
}
