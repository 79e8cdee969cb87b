//! The write protocol: `begin_write` → write the source → `finish_write`, and the
//! cache-side effects each strategy makes.
//!
//! Every cache-side effect of a write is one of two idempotent steps, an invalidation
//! of a key or a bump of namespace versions, each told to the other instances over the
//! backplane.

use serde::Serialize;

use super::CacheClient;
use super::effect::Effect;
use crate::codec::Codec;
use crate::strategy::{cache_aside, versioned, write_through};
use crate::tier::FillToken;
use crate::{CacheError, Key, Namespace, Strategy, Ttl};

/// Proof of [`CacheClient::begin_write`], handed to [`CacheClient::finish_write`].
/// Dropping it (the source write did not happen) is harmless.
#[derive(Debug)]
#[must_use = "finish the write once the source has acknowledged it"]
pub struct WriteTicket {
    entity: Namespace,
    /// Write-through: the entity key's state after the invalidation before the write.
    token: Option<FillToken>,
}

impl<C: Codec> CacheClient<C> {
    /// Call before writing entity `id` of `entity` to the source (`None` for a create).
    pub async fn begin_write(&self, entity: &Namespace, id: Option<i64>) -> WriteTicket {
        let mut ticket = WriteTicket {
            entity: entity.clone(),
            token: None,
        };
        if self.inner.strategy == Strategy::WriteThrough
            && let Some(id) = id
        {
            // On failure `finish_write` invalidates again.
            ticket.token = self.invalidate_everywhere(&entity.id(id)).await.ok();
        }
        ticket
    }

    /// Call once the source acknowledged the write of entity `id`: `value` is the stored
    /// entity, or `None` when it was deleted. Makes the strategy's cache-side effects
    /// (groups included).
    pub async fn finish_write<T>(&self, ticket: WriteTicket, id: i64, value: Option<&T>, ttl: Ttl)
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        let entity = &ticket.entity;
        for effect in self.effects(entity, Some(id)) {
            match effect {
                Effect::Invalidate(key) if self.inner.strategy == Strategy::WriteThrough => {
                    let negative = self.inner.negative_ttl;
                    let stored = write_through::store(
                        self,
                        &key,
                        ticket.token.clone(),
                        value,
                        ttl,
                        negative,
                    )
                    .await;
                    if let Err(e) = stored {
                        tracing::warn!(key = %key, error = %e, "write-through store did not reach redis");
                    }
                }
                effect => {
                    if let Err(e) = self.apply(&effect).await {
                        tracing::warn!(?effect, error = %e, "cache-side effect of a write did not reach redis");
                    }
                }
            }
        }
    }

    /// The cache-side effects of a write of `id` of `entity` under this strategy.
    fn effects(&self, entity: &Namespace, id: Option<i64>) -> Vec<Effect> {
        let groups = self.groups_of(entity);
        let mut effects = match self.inner.strategy {
            Strategy::CacheAside | Strategy::WriteThrough => {
                cache_aside::effects(entity, id, groups)
            }
            Strategy::Versioned => versioned::effects(entity, groups),
        };
        effects.retain(|e| !matches!(e, Effect::Bump(nss) if nss.is_empty()));
        effects
    }

    /// Makes one effect in every tier and tells the other instances.
    async fn apply(&self, effect: &Effect) -> Result<(), CacheError> {
        match effect {
            Effect::Invalidate(key) => self.invalidate_everywhere(key).await.map(|_| ()),
            Effect::Bump(namespaces) => {
                let bumped = self.inner.versions.bump(namespaces).await;
                match &self.inner.backplane {
                    Some(bp) => bp.publish_versions(&bumped).await,
                    None => Ok(()),
                }
            }
        }
    }

    /// Invalidates `key` everywhere (this instance's tiers and, through the backplane,
    /// every other instance's L1). Returns the key's state after the invalidation.
    pub(crate) async fn invalidate_everywhere(&self, key: &Key) -> Result<FillToken, CacheError> {
        let token = self.inner.typed.invalidate(key).await?;
        if let Some(bp) = &self.inner.backplane {
            bp.publish_evict(key).await?;
        }
        Ok(token)
    }

    /// Tells the other instances to drop their L1 copy of `key` (they re-read L2).
    pub(crate) async fn publish_evict(&self, key: &Key) -> Result<(), CacheError> {
        match &self.inner.backplane {
            Some(bp) => bp.publish_evict(key).await,
            None => Ok(()),
        }
    }

    /// Empties every tier (Redis: our prefix only) and tells the other instances.
    /// Namespace version counters are kept, so a version never goes back.
    pub async fn flush(&self) -> Result<(), CacheError> {
        let cleared = self.inner.typed.clear().await;
        self.inner.versions.forget();
        if let Some(bp) = &self.inner.backplane
            && let Err(e) = bp.publish_flush().await
        {
            tracing::warn!(error = %e, "flush not told to the other instances");
        }
        cleared
    }
}
