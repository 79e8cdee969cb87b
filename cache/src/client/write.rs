//! The write protocol: `begin_write` → write the source → `finish_write`, the
//! cache-side effects each strategy makes, and their replay after a fault.
//!
//! Every cache-side effect of a write is idempotent: an invalidation of a key (or, with
//! write-through, a guarded store), a bump of namespace versions, a bump of tags. A
//! write gathers them into at most two steps, one before the source write (a
//! write-through's invalidation, the first bump of the tags known at
//! `begin_write_tagged`) and one after, and makes each in one round trip to Redis that
//! also tells the other instances (`step.rs`). A step that cannot reach Redis is queued
//! whole ([`super::recovery`]) and replayed as soon as Redis answers; until then this
//! instance reads what it concerns from the source. With [`WriteConsistency::Strict`] a
//! write holds what it touches on every instance before the source is written (see
//! `strict.rs`), and one whose first step cannot reach Redis is refused.

use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use super::CacheClient;
use super::effect::{Effect, Step};
use super::holds::Subjects;
use super::strict::{StrictHold, subjects_of};
use crate::codec::Codec;
use crate::strategy::{cache_aside, versioned, write_through};
use crate::tier::{Cache, FillToken};
use crate::{CacheError, Namespace, Strategy, Tag, Ttl};

/// What a write does when Redis cannot be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteConsistency {
    /// Writes always go ahead. A cache-side step that cannot reach Redis is queued and
    /// replayed when it answers; until then other instances may serve the old value
    /// (at most for the outage, bounded by the TTL). This instance never does.
    #[default]
    Available,
    /// Linearizable per key, across instances: a write holds what it touches on every
    /// instance with an L1 lease, and in Redis, before the source is written, and
    /// releases it after; from its acknowledgement on, and from the moment any read has
    /// returned its new value, no instance serves the old one. A write whose first step
    /// cannot reach Redis is refused ([`CacheError::WriteRefused`]) before the source is
    /// touched: the cost is write availability while Redis is away, and a slower write
    /// (it waits for every instance to acknowledge). Every instance of a service must
    /// use the same consistency.
    Strict,
}

impl WriteConsistency {
    /// `available` or `strict`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Strict => "strict",
        }
    }
}

impl std::fmt::Display for WriteConsistency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WriteConsistency {
    type Err = CacheError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "available" => Ok(Self::Available),
            "strict" => Ok(Self::Strict),
            _ => Err(CacheError::Config(format!(
                "unknown write consistency {s:?}: allowed values are available, strict"
            ))),
        }
    }
}

/// Proof of [`CacheClient::begin_write`], handed to [`CacheClient::finish_write`].
/// Dropping it (the source write did not happen) is harmless: a strict write's holds
/// are released, in the background.
#[must_use = "finish the write once the source has acknowledged it"]
pub struct WriteTicket {
    entity: Namespace,
    /// Tags the write invalidates.
    tags: Vec<Tag>,
    /// Write-through: the entity key's state after the invalidation before the write.
    token: Option<FillToken>,
    /// A create (no id before the source write).
    created: bool,
    /// A strict write: what it holds.
    hold: Option<StrictHold>,
    /// A strict write: how its holds are released if the ticket is dropped unfinished.
    abandon: Option<Box<dyn FnOnce(StrictHold) + Send + Sync>>,
}

impl std::fmt::Debug for WriteTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTicket")
            .field("entity", &self.entity)
            .field("tags", &self.tags)
            .field("token", &self.token)
            .field("hold", &self.hold)
            .finish_non_exhaustive()
    }
}

impl Drop for WriteTicket {
    fn drop(&mut self) {
        if let (Some(hold), Some(abandon)) = (self.hold.take(), self.abandon.take()) {
            abandon(hold);
        }
    }
}

impl WriteTicket {
    /// More tags for the write to invalidate once the source acknowledged it (what the
    /// write turned out to touch); with strict consistency they are not held beforehand.
    pub fn add_tags(&mut self, tags: impl IntoIterator<Item = Tag>) {
        self.tags.extend(tags);
        self.tags.sort();
        self.tags.dedup();
    }
}

impl<C: Codec> CacheClient<C> {
    /// Call before writing entity `id` of `entity` to the source (`None` for a create).
    ///
    /// `Err(`[`CacheError::WriteRefused`]`)` only with [`WriteConsistency::Strict`], when
    /// Redis could not be told: do not write the source, answer "try again later".
    pub async fn begin_write(
        &self,
        entity: &Namespace,
        id: Option<i64>,
    ) -> Result<WriteTicket, CacheError> {
        self.begin_write_tagged(entity, id, Vec::new()).await
    }

    /// [`CacheClient::begin_write`] of a write that also invalidates `tags` (every entry
    /// read with [`CacheClient::read`] with `.tags(..)` that carries one of them).
    pub async fn begin_write_tagged(
        &self,
        entity: &Namespace,
        id: Option<i64>,
        tags: Vec<Tag>,
    ) -> Result<WriteTicket, CacheError> {
        let mut ticket = WriteTicket {
            entity: entity.clone(),
            tags,
            token: None,
            created: id.is_none(),
            hold: None,
            abandon: None,
        };
        if self.inner.consistency == WriteConsistency::Strict && self.inner.l2.is_some() {
            let subjects = subjects_of(&self.effects(entity, id, &ticket.tags));
            ticket.hold = Some(self.hold(subjects).await.map_err(|e| refused(&e))?);
            let client = self.clone();
            ticket.abandon = Some(Box::new(move |hold| {
                // The source was not written: releasing invalidates what was held,
                // which costs misses, never a stale read.
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move { client.release::<()>(hold, None).await });
                }
            }));
            return Ok(ticket);
        }
        // The step before the source write, in one round trip: a write-through
        // invalidates its key (its store after the write is guarded by what this
        // leaves), and tags are invalidated before the source is written as well as
        // after (the other instances hear of the first bump while the source is being
        // written, not just after the write is acknowledged, when a reader may already
        // ask them). If it cannot reach Redis, `finish_write` makes it again or queues it.
        let mut before = Step::default();
        if self.inner.strategy == Strategy::WriteThrough
            && let Some(id) = id
        {
            before.keys.push(entity.id(id));
        }
        if self.inner.l2.is_some() {
            before.tags.clone_from(&ticket.tags);
        }
        if !before.is_empty()
            && let Ok(tokens) = self.make_step(&before, None).await
        {
            ticket.token = tokens
                .into_iter()
                .next()
                .filter(|_| !before.keys.is_empty());
        }
        Ok(ticket)
    }

    /// Call once the source acknowledged the write of entity `id`: `value` is the stored
    /// entity, or `None` when it was deleted. Makes the strategy's cache-side effects
    /// (groups included); any that cannot reach Redis is queued for replay.
    pub async fn finish_write<T>(
        &self,
        mut ticket: WriteTicket,
        id: i64,
        value: Option<&T>,
        ttl: Ttl,
    ) where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        let strict = ticket.hold.take();
        ticket.abandon = None;
        let held = strict.as_ref().map(|h| h.subjects().clone());
        if let Some(hold) = strict {
            let stored = (self.inner.strategy == Strategy::WriteThrough).then_some((value, ttl));
            self.release(hold, stored).await;
        }
        // A strict write released what it held; what it did not (a create's key, known
        // only now, and tags found once the source answered) is made as an available
        // write makes it: in one step.
        let mut after = Step::default();
        for effect in self.effects(&ticket.entity, Some(id), &ticket.tags) {
            if let Some(effect) = unheld(effect, held.as_ref()) {
                after.add(effect);
            }
        }
        if after.is_empty() {
            return;
        }
        let store = match self.inner.strategy {
            Strategy::WriteThrough => after.keys.first().and_then(|key| {
                // An update whose first step did not reach Redis has no token to guard
                // its store by: it invalidates instead.
                let token = ticket.token.clone();
                (token.is_some() || ticket.created).then(|| {
                    write_through::store_of(self, key, value, ttl, self.inner.negative_ttl, token)
                })?
            }),
            _ => None,
        };
        if let Err(e) = self.make_step(&after, store.as_ref()).await {
            self.queue(Effect::Step(after), &e);
        }
    }

    /// The cache-side effects of a write of `id` of `entity` under this strategy, and of
    /// `tags`.
    fn effects(&self, entity: &Namespace, id: Option<i64>, tags: &[Tag]) -> Vec<Effect> {
        let groups = self.groups_of(entity);
        let mut effects = match self.inner.strategy {
            Strategy::CacheAside | Strategy::WriteThrough => {
                cache_aside::effects(entity, id, groups)
            }
            Strategy::Versioned => versioned::effects(entity, groups),
        };
        effects.retain(|e| !matches!(e, Effect::Bump(nss) if nss.is_empty()));
        if !tags.is_empty() {
            effects.push(Effect::BumpTags(tags.to_vec()));
        }
        effects
    }

    pub(super) fn queue(&self, effect: Effect, error: &CacheError) {
        tracing::warn!(?effect, %error, "cache-side effect of a write did not reach redis: queued for replay");
        self.inner.recovery.push(effect);
    }

    /// Makes a flush or a new generation in every tier and tells the other instances
    /// (a write's step is [`CacheClient::make_step`]'s).
    pub(super) async fn apply_admin(&self, effect: &Effect) -> Result<(), CacheError> {
        let bp = self.inner.backplane.as_ref();
        match effect {
            Effect::Flush => {
                let cleared = self.inner.typed.clear().await;
                self.inner.versions.forget();
                cleared?;
                match bp {
                    Some(bp) => bp.publish_flush().await,
                    None => Ok(()),
                }
            }
            Effect::NewGeneration => {
                let Some(l2) = &self.inner.l2 else {
                    return Ok(());
                };
                let generation = l2.bump_generation().await?;
                if let Some(l1) = &self.inner.l1 {
                    l1.clear().await?;
                }
                tracing::info!(
                    generation,
                    "new cache generation: every entry written before it is unreachable"
                );
                match bp {
                    Some(bp) => bp.publish_generation(generation).await,
                    None => Ok(()),
                }
            }
            step => self
                .make_step(&Step::of(step).unwrap_or_default(), None)
                .await
                .map(drop),
        }
    }

    /// Empties every tier (Redis: our prefix only) and tells the other instances.
    /// Namespace version counters are kept, so a version never goes back. If Redis
    /// cannot be reached, the flush is queued (and until it lands, nothing is read from
    /// the cache) and the error returned. A flush Redis refuses to this user (its ACL
    /// lacks `SCAN`: [`CacheError::is_permission_denied`], see
    /// [`crate::tier::RedisAcl::with_flush`]) is not queued: a replay would be refused
    /// alike, and the cache bypassed for nothing. Nothing in Redis was removed then, and
    /// nothing is stale: the error says so.
    pub async fn flush(&self) -> Result<(), CacheError> {
        let flushed = self.apply(&Effect::Flush).await;
        match &flushed {
            Err(e) if e.is_permission_denied() => {
                tracing::warn!(error = %e, "cache flush refused by redis: its user lacks the permission (see RedisAcl::with_flush)");
            }
            Err(e) => self.queue(Effect::Flush, e),
            Ok(()) => {}
        }
        flushed
    }
}

/// What of `effect` a strict write's hold (`held`) did not cover; all of it without one.
fn unheld(effect: Effect, held: Option<&Subjects>) -> Option<Effect> {
    let Some(held) = held else {
        return Some(effect);
    };
    match effect {
        Effect::Invalidate(key) => (!held.keys.contains(&key)).then_some(Effect::Invalidate(key)),
        Effect::Bump(namespaces) => {
            let rest: Vec<_> = namespaces
                .into_iter()
                .filter(|ns| !held.roots.iter().any(|r| r == ns.root()))
                .collect();
            (!rest.is_empty()).then_some(Effect::Bump(rest))
        }
        Effect::BumpTags(tags) => {
            let rest: Vec<_> = tags
                .into_iter()
                .filter(|t| !held.tags.contains(t))
                .collect();
            (!rest.is_empty()).then_some(Effect::BumpTags(rest))
        }
        Effect::Step(mut step) => {
            step.keys.retain(|k| !held.keys.contains(k));
            step.namespaces
                .retain(|ns| !held.roots.iter().any(|r| r == ns.root()));
            step.tags.retain(|t| !held.tags.contains(t));
            (!step.is_empty()).then_some(Effect::Step(step))
        }
        effect => Some(effect),
    }
}

/// The error of a strict write whose first step could not reach Redis.
fn refused(cause: &CacheError) -> CacheError {
    let retry_after = match cause {
        CacheError::CircuitOpen(left) => (*left).max(Duration::from_millis(100)),
        _ => Duration::from_secs(1),
    };
    tracing::warn!(error = %cause, "strict write refused: redis cannot be told first");
    CacheError::WriteRefused { retry_after }
}
