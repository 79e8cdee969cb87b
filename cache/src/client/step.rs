//! A write's cache-side step, made at once: every key it invalidates (or, write-through,
//! stores), every namespace and tag it bumps, and the backplane message that tells the
//! other instances, in one round trip to Redis (one script: `tier/redis/step.rs`), then
//! in this instance's L1, versions and tags.
//!
//! A write has at most two steps, one before the source write (a write-through's
//! invalidation, the first bump of its tags) and one after; a step that cannot reach
//! Redis is queued whole ([`Effect::Step`]) and replayed as one.

use super::CacheClient;
use super::effect::{Effect, Step};
use super::holds::{HOLD_TTL, Subjects};
use crate::codec::Codec;
use crate::tier::redis::{KeyStep, StepDone, StepPlan};
use crate::tier::{Cache, Entry, FillToken};
use crate::{CacheError, Key, Namespace, Ttl};

/// A write-through's store of its entity under one key of a step.
#[derive(Clone, Debug)]
pub(crate) struct Store {
    pub(crate) key: Key,
    /// The entry (the written value, or "not found" after a delete).
    pub(crate) entry: Entry,
    /// Its TTL, before jitter.
    pub(crate) ttl: Ttl,
    /// What the write's first step left of the key; `None` for a create (nobody read
    /// the key but as "not found"): only a strict write's hold stops the store then.
    pub(crate) token: Option<FillToken>,
}

impl<C: Codec> CacheClient<C> {
    /// Makes `step` (with `store`, the write-through store of one of its keys) in Redis
    /// in one round trip that tells every instance, then in this instance. Returns each
    /// key's state after the step. `Err`: Redis was not reached (this instance's L1 is
    /// invalidated all the same); the whole step must be made again.
    pub(crate) async fn make_step(
        &self,
        step: &Step,
        store: Option<&Store>,
    ) -> Result<Vec<FillToken>, CacheError> {
        if self.inner.broken_invalidation {
            return Ok(vec![FillToken::default(); step.keys.len()]);
        }
        let Some(l2) = &self.inner.l2 else {
            return self.make_step_here(step, store).await;
        };
        let typed = &self.inner.typed;
        let store = store.filter(|s| step.keys.contains(&s.key));
        for key in &step.keys {
            // A write replaces the serve-stale copy (a stored value becomes it again).
            typed.forget_stale_copy(key).await;
        }
        // The L1 guard of a store without a token is taken before Redis is: an
        // invalidation that reaches L1 after the shared store refuses the local one.
        let mut store_token = store.and_then(|s| s.token.clone());
        if let (Some(s), None, Some(l1)) = (store, &store_token, &self.inner.l1) {
            store_token = Some(FillToken {
                l1: l1.invalidate(&s.key).await.ok().and_then(|t| t.l1),
                l2: None,
            });
        }
        let ttl = store.map(|s| typed.jittered(s.ttl));
        let roots: Vec<&str> = step.namespaces.iter().map(Namespace::root).collect();
        let message = self
            .inner
            .backplane
            .as_ref()
            .map(|bp| bp.step_message(&step.keys, &step.tags));
        let plan = StepPlan {
            keys: step
                .keys
                .iter()
                .map(|key| match (store, ttl) {
                    (Some(s), Some(ttl)) if s.key == *key => (
                        key,
                        KeyStep::Store {
                            token: s.token.as_ref().and_then(|t| t.l2),
                            entry: s.entry.clone(),
                            ttl,
                        },
                    ),
                    _ => (key, KeyStep::Invalidate),
                })
                .collect(),
            roots: &roots,
            tags: &step.tags,
            message: message.as_deref(),
        };
        // Redis makes the step's tag sequence and versions visible to every reader at
        // the moment it drops or stores the keys, before this instance's L1 has let go
        // of their old copies: until it has, its own reads of what the step touches go
        // to the source, so no answer loaded after that moment is made of an old copy.
        let hold = self.hold_locally(step);
        let made = l2.write_step(&plan).await;
        // This instance's L1, whatever happened in Redis: it never serves the old copy.
        let mut tokens = Vec::with_capacity(step.keys.len());
        let mut overtaken = None;
        for (i, key) in step.keys.iter().enumerate() {
            let shared = made
                .as_ref()
                .ok()
                .and_then(|done| done.keys.get(i).copied());
            let l1 = match (store, ttl, shared) {
                (Some(s), Some(ttl), Some((_, true))) if s.key == *key => {
                    let token = store_token.clone().unwrap_or_default();
                    if self.replace_here(key, s.entry.clone(), ttl, &token).await {
                        typed.record_stale_copy(key, s.entry.clone()).await;
                    } else {
                        overtaken = Some(key);
                    }
                    None
                }
                _ => self.invalidate_here(key).await,
            };
            tokens.push(FillToken {
                l1,
                l2: shared.map(|(token, _)| token),
            });
        }
        if let Ok(done) = &made {
            self.learn_step(step, &roots, done);
        }
        if let Some(id) = &hold {
            self.inner.holds.end(id);
        }
        made?;
        if message.is_some()
            && let Some(bp) = &self.inner.backplane
        {
            bp.count_published();
        }
        if let Some(key) = overtaken {
            // L1 refused the store: an invalidation overtook this write. Let the next
            // read load what the source kept.
            let again = Step {
                keys: vec![key.clone()],
                ..Step::default()
            };
            Box::pin(self.make_step(&again, None)).await?;
        }
        Ok(tokens)
    }

    /// Holds what `step` touches in this instance alone (its keys, its namespaces):
    /// reads of them go to the source until [`super::holds::Holds::end`]. `None`: it
    /// touches neither.
    fn hold_locally(&self, step: &Step) -> Option<String> {
        if step.keys.is_empty() && step.namespaces.is_empty() {
            return None;
        }
        let id = format!(
            "step:{}",
            self.inner
                .holds_made
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let subjects = Subjects {
            keys: step.keys.clone(),
            roots: step
                .namespaces
                .iter()
                .map(|n| n.root().to_owned())
                .collect(),
            tags: Vec::new(),
        };
        self.inner.holds.install(&id, subjects, HOLD_TTL);
        Some(id)
    }

    /// Learns the versions and the tag sequence a step drew (after its keys left L1).
    fn learn_step(&self, step: &Step, roots: &[&str], done: &StepDone) {
        for (root, v) in roots.iter().zip(&done.versions) {
            self.inner.versions.learn(root, *v);
        }
        if done.tag_seq > 0 {
            self.inner.tags.learn(done.tag_seq, &step.tags);
        }
    }

    /// A step without a shared tier: this instance's tiers, versions and tags are all
    /// there is.
    async fn make_step_here(
        &self,
        step: &Step,
        store: Option<&Store>,
    ) -> Result<Vec<FillToken>, CacheError> {
        let typed = &self.inner.typed;
        let mut tokens = Vec::with_capacity(step.keys.len());
        for key in &step.keys {
            let token = match store.filter(|s| s.key == *key) {
                Some(s) => {
                    let token = match &s.token {
                        Some(token) => token.clone(),
                        None => typed.invalidate(key).await?,
                    };
                    if !typed
                        .replace_entry(key, s.entry.clone(), s.ttl, &token)
                        .await?
                    {
                        typed.invalidate(key).await?;
                    }
                    token
                }
                None => typed.invalidate(key).await?,
            };
            tokens.push(token);
        }
        self.inner.versions.bump(&step.namespaces).await?;
        if !step.tags.is_empty() {
            self.inner.tags.bump(&step.tags).await?;
        }
        Ok(tokens)
    }

    /// Drops this instance's L1 copy of `key`; its L1 state after.
    async fn invalidate_here(&self, key: &Key) -> Option<(u64, u64)> {
        let l1 = self.inner.l1.as_ref()?;
        l1.invalidate(key).await.ok().and_then(|t| t.l1)
    }

    /// The L1 half of a write-through's store that Redis took; false when L1 refused it.
    async fn replace_here(&self, key: &Key, entry: Entry, ttl: Ttl, token: &FillToken) -> bool {
        match &self.inner.tiered {
            Some(tiered) => tiered.replace_local(key, entry, ttl, token).await,
            None => true,
        }
    }

    /// Makes `effect`: a write's step, or a flush or a new generation.
    pub(crate) async fn apply(&self, effect: &Effect) -> Result<(), CacheError> {
        match Step::of(effect) {
            Some(step) => self.make_step(&step, None).await.map(drop),
            None => self.apply_admin(effect).await,
        }
    }
}
