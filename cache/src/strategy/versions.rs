//! Version (generation) counters per namespace: in Redis (`INCR`) when there is a shared
//! tier, in memory otherwise, with a local copy that the backplane keeps current.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{Namespace, RedisTier};

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
        let key = ns.version_key();
        let read = l2
            .run("version", |mut con| async move {
                redis::cmd("GET")
                    .arg(&key)
                    .query_async::<Option<u64>>(&mut con)
                    .await
            })
            .await;
        match read {
            Ok(v) => {
                let v = v.unwrap_or(0);
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
    pub(crate) async fn bump(&self, namespaces: &[&Namespace]) -> Vec<(String, u64)> {
        if namespaces.is_empty() {
            return Vec::new();
        }
        if let Some(l2) = &self.l2 {
            let keys: Vec<String> = namespaces.iter().map(|ns| ns.version_key()).collect();
            let res = l2
                .run("bump", |mut con| async move {
                    let mut pipe = redis::pipe();
                    for k in &keys {
                        pipe.incr(k, 1u64);
                    }
                    pipe.query_async::<Vec<u64>>(&mut con).await
                })
                .await;
            match res {
                Ok(values) => {
                    return namespaces
                        .iter()
                        .zip(values)
                        .map(|(ns, v)| {
                            self.learn(ns.root(), v);
                            (ns.root().to_owned(), v)
                        })
                        .collect();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "version bump could not reach redis: bumped locally only");
                }
            }
        }
        let mut map = self.map();
        namespaces
            .iter()
            .map(|ns| {
                let v = map.entry(ns.root().to_owned()).or_insert(0);
                *v += 1;
                (ns.root().to_owned(), *v)
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
            v.bump(&[&a, &b]).await,
            vec![("t:a".into(), 1), ("t:b".into(), 1)]
        );
        assert_eq!(v.bump(&[&a]).await, vec![("t:a".into(), 2)]);
        assert_eq!((v.current(&a).await, v.current(&b).await), (2, 1));
        v.learn("t:a", 1);
        assert_eq!(v.current(&a).await, 2, "versions never go back");
    }
}
