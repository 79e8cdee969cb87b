//! The no-cache baseline: every read is a bypass, every write is dropped, all counted.

use async_trait::async_trait;

use crate::tier::{Cache, FillToken, Hit};
use crate::{CacheError, Entry, Key, TierSnapshot, TierStats, Ttl};

/// A cache that stores nothing: the baseline the benchmarks compare against.
///
/// Reads count as misses and writes as sets, so dashboards keep their shape when
/// caching is switched off; [`crate::typed::TypedCache`] reports its reads as
/// [`crate::Source::Bypass`].
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use cache::tier::{Cache, Entry, NoCache};
/// use cache::{KeyBuilder, Ttl};
/// let none = NoCache::new();
/// let key = KeyBuilder::new("app").unwrap().namespace("pet").unwrap().id(1);
/// none.set(&key, Entry::new(&b"x"[..], 1, 0), Ttl::secs(5)).await.unwrap();
/// assert!(none.get(&key).await.unwrap().is_none());
/// assert_eq!(none.stats()[0].misses, 1);
/// # });
/// ```
#[derive(Debug, Default, Clone)]
pub struct NoCache {
    stats: std::sync::Arc<TierStats>,
}

impl NoCache {
    /// A new pass-through cache.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Cache for NoCache {
    fn name(&self) -> &'static str {
        "none"
    }

    async fn get(&self, _key: &Key) -> Result<Option<Hit>, CacheError> {
        self.stats.miss();
        Ok(None)
    }

    async fn set(&self, _key: &Key, _entry: Entry, _ttl: Ttl) -> Result<(), CacheError> {
        self.stats.set();
        Ok(())
    }

    async fn delete(&self, _key: &Key) -> Result<(), CacheError> {
        self.stats.delete();
        Ok(())
    }

    async fn clear(&self) -> Result<(), CacheError> {
        Ok(())
    }

    async fn fill_token(&self, _key: &Key) -> Result<FillToken, CacheError> {
        Ok(FillToken::default())
    }

    /// Nothing is stored, so nothing can be stale: counted as a set.
    async fn set_if_unchanged(
        &self,
        key: &Key,
        entry: Entry,
        ttl: Ttl,
        _token: &FillToken,
    ) -> Result<bool, CacheError> {
        self.set(key, entry, ttl).await.map(|()| true)
    }

    async fn replace(
        &self,
        key: &Key,
        entry: Entry,
        ttl: Ttl,
        _token: &FillToken,
    ) -> Result<bool, CacheError> {
        self.set(key, entry, ttl).await.map(|()| true)
    }

    async fn invalidate(&self, key: &Key) -> Result<FillToken, CacheError> {
        self.delete(key).await?;
        Ok(FillToken::default())
    }

    async fn try_lease(&self, _key: &Key, _owner: &str, _ttl: Ttl) -> Result<bool, CacheError> {
        Ok(true)
    }

    async fn release_lease(&self, _key: &Key, _owner: &str) -> Result<(), CacheError> {
        Ok(())
    }

    fn stats(&self) -> Vec<TierSnapshot> {
        vec![self.stats.snapshot("none")]
    }

    fn is_bypass(&self) -> bool {
        true
    }
}
