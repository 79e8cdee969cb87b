//! Rate-limit counters: one fixed window per client, counted in one atomic step so a
//! limit holds across every instance that shares the server.

use std::time::Duration;

use super::{RedisTier, keys, scripts};
use crate::CacheError;

impl RedisTier {
    /// Counts one request of the client whose key hashes to `client` (hex) in a window
    /// of `window`; returns the count so far in this window and the time left in it.
    pub(crate) async fn count_request(
        &self,
        client: &str,
        window: Duration,
    ) -> Result<(u64, Duration), CacheError> {
        let prefix = self.inner.prefix.as_deref().ok_or_else(|| {
            CacheError::Config("rate limits need a key prefix (RedisTierBuilder::prefix)".into())
        })?;
        let key = keys::rate(prefix, client);
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let (count, left): (u64, i64) = self
            .run("count_request", |mut con| async move {
                scripts::COUNT_REQUEST
                    .key(&key)
                    .arg(window_ms)
                    .invoke_async(&mut con)
                    .await
            })
            .await?;
        let left = u64::try_from(left).unwrap_or(window_ms).min(window_ms);
        Ok((count, Duration::from_millis(left)))
    }
}
