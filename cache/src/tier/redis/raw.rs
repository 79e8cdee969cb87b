//! Plain values beside the cache, for a benchmark's ceiling: one `SET`, one `GET` of a
//! name under the prefix (`{prefix}:raw:{name}`, see `keys.rs`), with no envelope and
//! no generation, tag or version check. What an L2 hit would cost if it were nothing
//! but a `GET` of its bytes.

use bytes::Bytes;

use super::{RedisTier, keys};
use crate::{CacheError, Ttl};

impl RedisTier {
    /// Stores `value` under `name` for `ttl`, as it is (no envelope): for
    /// [`RedisTier::get_raw`], nothing else reads it.
    pub async fn set_raw(&self, name: &str, value: Bytes, ttl: Ttl) -> Result<(), CacheError> {
        let key = self.raw_key(name)?;
        let ms = ttl.as_millis();
        self.run("set_raw", |mut con| async move {
            redis::cmd("SET")
                .arg(&key)
                .arg(value.as_ref())
                .arg("PX")
                .arg(ms)
                .query_async::<()>(&mut con)
                .await
        })
        .await
    }

    /// What [`RedisTier::set_raw`] stored under `name`, in one `GET`.
    pub async fn get_raw(&self, name: &str) -> Result<Option<Bytes>, CacheError> {
        let key = self.raw_key(name)?;
        let value: Option<Vec<u8>> = self
            .run("get_raw", |mut con| async move {
                redis::cmd("GET").arg(&key).query_async(&mut con).await
            })
            .await?;
        Ok(value.map(Bytes::from))
    }

    fn raw_key(&self, name: &str) -> Result<String, CacheError> {
        self.inner
            .prefix
            .as_deref()
            .map(|p| keys::raw(p, name))
            .ok_or_else(|| {
                CacheError::Config("raw values need a key prefix (RedisTierBuilder::prefix)".into())
            })
    }
}
