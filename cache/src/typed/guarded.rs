//! Guarded stores: a reader's fill and a writer's replace land only if the key was not
//! invalidated since their token was taken (see [`FillToken`]), and an invalidation
//! refuses every fill that began before it.

use serde::Serialize;

use super::TypedCache;
use crate::codec::Codec;
use crate::tier::{Entry, FillToken};
use crate::{CacheError, Key, Ttl};

/// Which conditional store: a reader's fill, or a writer's replace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Guarded {
    Fill,
    Replace,
}

/// What became of a loaded value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Filled {
    /// It is in the cache.
    Stored,
    /// The guard refused it: the key was invalidated while it loaded, so it may be
    /// older than a write (callers who joined the load late must not take it).
    Refused,
    /// Not stored for another reason (not encodable, a tier failed); not a sign of a write.
    Skipped,
}

impl<C: Codec> TypedCache<C> {
    /// Removes `key` from every tier and refuses fills based on loads that began before
    /// (see [`FillToken`]). Returns the key's state after the invalidation, for a writer
    /// that wants to store its own value with [`TypedCache::replace`].
    ///
    /// `Err` when the shared tier could not be reached: the local tier is invalidated
    /// all the same, but the shared one may still hold the old value.
    pub async fn invalidate(&self, key: &Key) -> Result<FillToken, CacheError> {
        self.forget_stale(key).await;
        self.inner.cache.invalidate(key).await
    }

    /// Stores `value` only if `key` was not invalidated since `token`. Returns whether it
    /// was stored; only an encoding failure is an error.
    pub async fn set_if_unchanged<T>(
        &self,
        key: &Key,
        value: &T,
        ttl: Ttl,
        token: &FillToken,
    ) -> Result<bool, CacheError>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        let entry = self.entry(value)?;
        Ok(self
            .guarded_store(key, entry, ttl, token, Guarded::Fill)
            .await
            .unwrap_or_else(|e| {
                tracing::debug!(key = %key, error = %e, "guarded fill skipped");
                false
            }))
    }

    /// A writer's store of `value` (see [`crate::tier::Cache::replace`]): lands only if
    /// `key` was not invalidated since `token`, and refuses the fills of loads that
    /// began before it. `Ok(false)`: another write overtook this one. `Err`: the value
    /// could not be encoded, or the shared tier could not be reached.
    pub async fn replace<T>(
        &self,
        key: &Key,
        value: &T,
        ttl: Ttl,
        token: &FillToken,
    ) -> Result<bool, CacheError>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        let entry = self.entry(value)?;
        self.guarded_store(key, entry, ttl, token, Guarded::Replace)
            .await
    }

    /// [`TypedCache::replace`] of an encoded entry (a write's step made the shared
    /// tier's half elsewhere, or there is none).
    pub(crate) async fn replace_entry(
        &self,
        key: &Key,
        entry: Entry,
        ttl: Ttl,
        token: &FillToken,
    ) -> Result<bool, CacheError> {
        self.guarded_store(key, entry, ttl, token, Guarded::Replace)
            .await
    }

    /// Stores a loaded value through the guard (or unguarded, without a token),
    /// carrying its tags (`stamp`) if it has any.
    pub(super) async fn fill<T>(
        &self,
        key: &Key,
        value: &T,
        ttl: Ttl,
        token: Option<&FillToken>,
        stamp: Option<(u64, Vec<crate::Tag>)>,
    ) -> Filled
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        let entry = match self.stamped_entry(value, stamp) {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "loaded value cannot be encoded: not cached");
                return Filled::Skipped;
            }
        };
        let Some(token) = token else {
            self.store(key, entry, ttl).await;
            return Filled::Stored;
        };
        match self
            .guarded_store(key, entry, ttl, token, Guarded::Fill)
            .await
        {
            Ok(true) => Filled::Stored,
            Ok(false) => {
                tracing::debug!(key = %key, "fill refused: the key was invalidated while loading");
                Filled::Refused
            }
            Err(e) => {
                tracing::debug!(key = %key, error = %e, "guarded fill skipped");
                Filled::Skipped
            }
        }
    }

    /// Stores `entry` through the guard (`how`), keeping the serve-stale copy in step:
    /// recorded when it landed, forgotten when a write's value did not.
    async fn guarded_store(
        &self,
        key: &Key,
        entry: Entry,
        ttl: Ttl,
        token: &FillToken,
        how: Guarded,
    ) -> Result<bool, CacheError> {
        let ttl = ttl.jittered(self.inner.jitter_percent);
        let cache = &self.inner.cache;
        let stored = match how {
            Guarded::Fill => cache.set_if_unchanged(key, entry.clone(), ttl, token).await,
            Guarded::Replace => cache.replace(key, entry.clone(), ttl, token).await,
        };
        match stored {
            Ok(true) => self.record_stale(key, entry).await,
            Ok(false) | Err(_) if how == Guarded::Replace => self.forget_stale(key).await,
            _ => {}
        }
        stored
    }
}
