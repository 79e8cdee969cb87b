//! Strict writes ([`crate::WriteConsistency::Strict`]): linearizable per key, across
//! instances.
//!
//! A strict write *holds* what it touches (its keys, the namespaces it bumps, its
//! tags) before the source is written, and releases it after:
//!
//! 1. this instance installs the hold (its own reads of what is held go to the source)
//!    and drops its L1 copies of the keys;
//! 2. Redis holds them too: a held key refuses every fill and is dropped, a held
//!    namespace or tag makes every read of it a miss; the namespaces and tags are
//!    bumped; the hold and its message are recorded and the message is published, all
//!    in one script, which also returns every instance's L1 lease;
//! 3. the writer waits until each instance with a lease has acknowledged the hold (it
//!    installed it and dropped its L1 copies first) or its lease has run out;
//! 4. then the caller writes the source;
//! 5. the release invalidates (or, write-through, stores) the keys, bumps the
//!    namespaces and tags again, and ends the holds, in Redis and then everywhere.
//!
//! # Details
//! Why no read can return a value older than one another read returned, or than an
//! acknowledged write: from step 3 on until step 5 no instance serves a held key from
//! its L1 (it acknowledged after dropping its copies, and checks its holds after every
//! lookup; or its lease ran out, and it checks its lease after every lookup and empties
//! L1 before taking a new one), Redis serves none of it and takes no fill of it, so
//! every read of it goes to the source, which is linearizable. After step 5 a fill
//! lands only if its load began after the release (the guard, the tag and namespace
//! versions), so after the source was written. Each read therefore returns what the
//! source held at some moment between its start and its end. The argument rests on
//! holds outliving the source write ([`HOLD_TTL`]) and on clocks that run at nearly the
//! same rate ([`super::backplane::LEASE_MARGIN`]); `docs/freshness.md` spells it out.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::CacheClient;
use super::backplane::{hold_message, release_message};
use super::effect::Effect;
use super::holds::{HOLD_TTL, Subjects};
use crate::codec::Codec;
use crate::tier::redis::{HoldPlan, KeyStep};
use crate::tier::{Cache, L2Token};
use crate::{CacheError, Key, Ttl};

/// A strict write between its two steps.
#[derive(Debug)]
pub(crate) struct StrictHold {
    id: String,
    subjects: Subjects,
    /// Per held key, what Redis' hold left (a write-through store is guarded by it).
    tokens: Vec<L2Token>,
}

impl StrictHold {
    /// What it holds.
    pub(crate) fn subjects(&self) -> &Subjects {
        &self.subjects
    }
}

/// What steps 1 and 2 left: the keys' tokens, the instances' leases, when Redis answered.
struct InRedis {
    tokens: Vec<L2Token>,
    leases: Vec<(String, Duration)>,
    published: Instant,
}

/// The subjects of `effects`: the keys they invalidate, the namespaces and tags they bump.
pub(crate) fn subjects_of(effects: &[Effect]) -> Subjects {
    let mut s = Subjects::default();
    for effect in effects {
        match effect {
            Effect::Invalidate(key) => s.keys.push(key.clone()),
            Effect::Bump(namespaces) => s
                .roots
                .extend(namespaces.iter().map(|n| n.root().to_owned())),
            Effect::BumpTags(tags) => s.tags.extend(tags.iter().cloned()),
            Effect::Step(step) => {
                s.keys.extend(step.keys.iter().cloned());
                s.roots
                    .extend(step.namespaces.iter().map(|n| n.root().to_owned()));
                s.tags.extend(step.tags.iter().cloned());
            }
            Effect::Flush | Effect::NewGeneration => {}
        }
    }
    s
}

impl<C: Codec> CacheClient<C> {
    fn sender(&self) -> &str {
        self.inner
            .backplane
            .as_ref()
            .map_or(self.inner.writer.as_str(), |bp| bp.instance())
    }

    /// Steps 1 to 3 (see the module docs). `Err`: Redis could not be told; nothing of the
    /// hold is left here (what reached Redis lapses after [`HOLD_TTL`]).
    pub(crate) async fn hold(&self, subjects: Subjects) -> Result<StrictHold, CacheError> {
        let id = format!(
            "{}:{}",
            self.sender(),
            self.inner.holds_made.fetch_add(1, Relaxed)
        );
        let holds = &self.inner.holds;
        holds.install(&id, subjects.clone(), HOLD_TTL);
        let held = self.hold_in_redis(&id, &subjects).await;
        let InRedis {
            tokens,
            leases,
            published,
        } = match held {
            Ok(held) => held,
            Err(e) => {
                holds.release(&id);
                if let Some(bp) = &self.inner.backplane {
                    bp.forget_acks(&id);
                }
                return Err(e);
            }
        };
        let others: Vec<(String, Duration)> = leases
            .into_iter()
            .filter(|(instance, _)| instance != self.sender())
            .collect();
        match &self.inner.backplane {
            Some(bp) => {
                if let Some(wait) = bp.acks_of(&id) {
                    wait.wait(&others, published).await;
                }
                bp.forget_acks(&id);
            }
            // Nobody acknowledges to an instance that does not subscribe: wait the
            // leases out.
            None => {
                let longest = others.iter().map(|(_, left)| *left).max();
                if let Some(left) = longest {
                    tokio::time::sleep_until((published + left).into()).await;
                }
            }
        }
        Ok(StrictHold {
            id,
            subjects,
            tokens,
        })
    }

    /// Steps 1 and 2: this instance's L1 copies, then Redis.
    async fn hold_in_redis(&self, id: &str, subjects: &Subjects) -> Result<InRedis, CacheError> {
        let l2 = self
            .inner
            .l2
            .as_ref()
            .ok_or_else(|| CacheError::Config("strict writes need a shared tier".into()))?;
        for key in &subjects.keys {
            self.drop_local(key).await;
        }
        let mut tokens = Vec::with_capacity(subjects.keys.len());
        for key in &subjects.keys {
            tokens.push(l2.hold_key(key, id, HOLD_TTL).await?);
        }
        let roots: Vec<&str> = subjects.roots.iter().map(String::as_str).collect();
        let plan = HoldPlan {
            id,
            roots: &roots,
            tags: &subjects.tags,
            ttl: HOLD_TTL,
        };
        if let Some(bp) = &self.inner.backplane {
            bp.expect_acks(id);
        }
        let held = l2
            .hold_shared(&plan, &hold_message(self.sender(), id, subjects))
            .await?;
        let published = Instant::now();
        for (root, v) in subjects.roots.iter().zip(&held.versions) {
            self.inner.versions.learn(root, *v);
        }
        if held.tag_seq > 0 {
            self.inner.tags.learn(held.tag_seq, &subjects.tags);
        }
        Ok(InRedis {
            tokens,
            leases: held.leases,
            published,
        })
    }

    /// Drops this instance's L1 copy of `key` (and advances its L1 guard, so a fill of a
    /// load in flight is refused) and its serve-stale copy.
    async fn drop_local(&self, key: &Key) {
        if let Some(l1) = &self.inner.l1 {
            let _ = l1.invalidate(key).await;
        }
        self.inner.typed.forget_stale_copy(key).await;
    }

    /// Step 5: after the source acknowledged. `stored` is what a write-through stores
    /// under each held key (`None`: invalidate it). Whatever cannot reach Redis is
    /// queued for replay; the hold ends here either way (reads of what is queued go to
    /// the source), and elsewhere when the release arrives or the hold lapses.
    pub(crate) async fn release<T>(&self, hold: StrictHold, stored: Option<(Option<&T>, Ttl)>)
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        let Some(l2) = self.inner.l2.as_ref() else {
            return;
        };
        let StrictHold {
            id,
            subjects,
            tokens,
        } = hold;
        for (key, token) in subjects.keys.iter().zip(tokens) {
            let how = match stored {
                Some((value, ttl)) => self.store_of(value, ttl, token),
                None => KeyStep::Invalidate,
            };
            match l2.release_key(key, &id, how).await {
                Ok(_) => {}
                Err(e) => self.queue(Effect::Invalidate(key.clone()), &e),
            }
            // The next read here takes the new value from Redis.
            self.drop_local(key).await;
        }
        let roots: Vec<&str> = subjects.roots.iter().map(String::as_str).collect();
        let plan = HoldPlan {
            id: &id,
            roots: &roots,
            tags: &subjects.tags,
            ttl: HOLD_TTL,
        };
        match l2.release_shared(&plan).await {
            Ok((tag_seq, versions)) => {
                for (root, v) in subjects.roots.iter().zip(&versions) {
                    self.inner.versions.learn(root, *v);
                }
                if tag_seq > 0 {
                    self.inner.tags.learn(tag_seq, &subjects.tags);
                }
                let message = release_message(self.sender(), &id, &subjects, &versions, tag_seq);
                // Unheard, the other instances' holds lapse and they read the versions
                // from Redis again: slower, never stale.
                let told = match &self.inner.backplane {
                    Some(bp) => bp.publish_message(&message).await,
                    None => l2.publish(&message).await,
                };
                if let Err(e) = told {
                    tracing::debug!(error = %e, "release not published: the other instances' holds lapse");
                }
            }
            Err(e) => {
                let namespaces: Vec<_> = self
                    .inner
                    .entities
                    .iter()
                    .flat_map(|(e, groups)| std::iter::once(e).chain(groups))
                    .filter(|ns| subjects.roots.iter().any(|r| r == ns.root()))
                    .cloned()
                    .collect();
                if !namespaces.is_empty() {
                    self.queue(Effect::Bump(namespaces), &e);
                }
                if !subjects.tags.is_empty() {
                    self.queue(Effect::BumpTags(subjects.tags.clone()), &e);
                }
            }
        }
        self.inner.holds.release(&id);
    }

    /// A write-through's store of `value` under a held key (`None`: "not found", for
    /// the negative TTL), or an invalidation when there is nothing to store.
    fn store_of<T>(&self, value: Option<&T>, ttl: Ttl, token: L2Token) -> KeyStep
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        let (entity, ttl) = match (value, self.inner.negative_ttl) {
            (Some(v), _) => (Some(v.clone()), ttl),
            (None, Some(negative)) => (None, negative),
            (None, None) => return KeyStep::Invalidate,
        };
        match self.inner.typed.encode(&entity) {
            Ok(entry) => KeyStep::Store {
                token: Some(token),
                entry,
                ttl: self.inner.typed.jittered(ttl),
            },
            Err(e) => {
                tracing::warn!(error = %e, "written value cannot be encoded: invalidated instead");
                KeyStep::Invalidate
            }
        }
    }
}
