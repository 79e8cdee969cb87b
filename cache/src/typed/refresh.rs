//! Refresh-ahead: a hit close to its expiry is served and reloaded in the background.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;

use serde::Serialize;

use super::CacheValue;
use super::{ReadOptions, TypedCache, Verdict};
use crate::codec::Codec;
use crate::typed::Fetched;
use crate::{CacheError, Key, Ttl};

impl<C: Codec> TypedCache<C> {
    /// Like [`TypedCache::get_or_load`]; with [`super::TypedCacheBuilder::refresh_ahead`],
    /// a hit close to its expiry is served and reloaded in the background, so readers of
    /// a hot key never wait for the source. The loader must be callable again and
    /// `'static` (it may run on a background task).
    pub async fn get_or_refresh<T, F, Fut, E>(
        &self,
        key: &Key,
        ttl: Ttl,
        loader: F,
    ) -> Result<Fetched<T>, CacheError>
    where
        T: CacheValue,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
    {
        self.get_or_refresh_with(key, ttl, loader, ReadOptions::default())
            .await
    }

    /// Like [`TypedCache::get_or_refresh`], with hits judged and fills stamped as
    /// `options` says (see [`TypedCache::get_or_load_with`]).
    pub async fn get_or_refresh_with<T, F, Fut, E>(
        &self,
        key: &Key,
        ttl: Ttl,
        loader: F,
        options: ReadOptions<T>,
    ) -> Result<Fetched<T>, CacheError>
    where
        T: CacheValue,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
    {
        let Some((hit, left, Verdict::Current)) =
            self.lookup::<T>(key, options.validate.as_deref()).await
        else {
            return self
                .get_or_load_with(key, |_: &T| Some(ttl), loader, &options)
                .await;
        };
        if let (Some(percent), Some(left)) = (self.inner.refresh_ahead, left) {
            let threshold = ttl.as_duration() * u32::from(percent) / 100;
            if left < threshold && self.refreshing().insert(key.clone()) {
                let this = self.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    this.refresh(&key, ttl, loader, &options).await;
                    this.refreshing().remove(&key);
                });
            }
        }
        Ok(hit)
    }

    /// Like [`TypedCache::get_or_load_with`], except that a hit `options` judges
    /// [`Verdict::Stale`] (soft invalidation: invalidated, still within its bound) is
    /// served at once and reloaded in the background, one reload per key at a time: no
    /// reader waits for the source while the bound holds. Past the bound the judge says
    /// invalid and the read loads as any miss. The loader must be callable again and
    /// `'static` (it may run on a background task); `ttl_for` `None`: not stored.
    pub async fn get_or_revalidate_with<T, F, Fut, E, P>(
        &self,
        key: &Key,
        ttl_for: P,
        loader: F,
        options: ReadOptions<T>,
    ) -> Result<Fetched<T>, CacheError>
    where
        T: CacheValue,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
        P: Fn(&T) -> Option<Ttl> + Send + Sync + 'static,
    {
        match self.lookup::<T>(key, options.validate.as_deref()).await {
            Some((hit, _, Verdict::Current)) => Ok(hit),
            Some((stale, _, Verdict::Stale(age))) => {
                self.inner.loader.served_soft(age);
                if self.refreshing().insert(key.clone()) {
                    let this = self.clone();
                    let key = key.clone();
                    tokio::spawn(async move {
                        this.reload(&key, &ttl_for, loader, &options).await;
                        this.refreshing().remove(&key);
                    });
                }
                Ok(stale)
            }
            _ => self.get_or_load_with(key, ttl_for, loader, &options).await,
        }
    }

    fn refreshing(&self) -> std::sync::MutexGuard<'_, HashSet<Key>> {
        self.inner
            .refreshing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A background reload: guarded like any fill, so it never overwrites a write.
    async fn refresh<T, F, Fut, E>(&self, key: &Key, ttl: Ttl, loader: F, options: &ReadOptions<T>)
    where
        T: Serialize + Clone + Send + Sync + 'static,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.reload(key, &|_: &T| Some(ttl), loader, options).await;
    }

    /// A background reload stored for `ttl_for` of the value (not at all for `None`):
    /// guarded like any fill, so it never overwrites a write.
    async fn reload<T, F, Fut, E>(
        &self,
        key: &Key,
        ttl_for: &(dyn Fn(&T) -> Option<Ttl> + Send + Sync),
        loader: F,
        options: &ReadOptions<T>,
    ) where
        T: Serialize + Clone + Send + Sync + 'static,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let token = self.inner.cache.fill_token(key).await.unwrap_or_default();
        let as_of = options.as_of();
        self.inner.loader.calls.fetch_add(1, Relaxed);
        self.inner.loader.refreshes.fetch_add(1, Relaxed);
        let began = std::time::Instant::now();
        let loaded = loader().await;
        self.inner.loader.timed(loaded.is_ok(), began);
        match loaded {
            Ok(value) => {
                if let Some(ttl) = ttl_for(&value) {
                    let stamp = options.stamp(as_of, &value);
                    if !super::single_flight::overtaken(key, stamp.as_ref(), options).await {
                        self.fill(key, &value, ttl, Some(&token), stamp).await;
                    }
                }
            }
            Err(e) => {
                self.inner.loader.errors.fetch_add(1, Relaxed);
                let e: Box<dyn std::error::Error + Send + Sync> = e.into();
                tracing::warn!(key = %key, error = %e, "background refresh failed: the entry expires as usual");
            }
        }
    }
}
