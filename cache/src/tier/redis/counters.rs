//! Version counters: one per namespace (or tag), advanced by writes, read by readers
//! who cannot trust their local copy. A missing counter starts at the server's clock
//! (see `scripts.rs`), so it never goes back.

use super::{RedisTier, keys, scripts};
use crate::CacheError;

impl RedisTier {
    /// The current values of the counters of `roots` (namespace or tag roots), in one
    /// round trip; a counter that is missing or unreadable is started first.
    pub(crate) async fn read_counters(&self, roots: &[&str]) -> Result<Vec<u64>, CacheError> {
        self.counters("read_counters", &scripts::READ_COUNTERS, roots)
            .await
    }

    /// Advances the counters of `roots` by one, in one round trip, and returns their new
    /// values.
    pub(crate) async fn bump_counters(&self, roots: &[&str]) -> Result<Vec<u64>, CacheError> {
        self.counters("bump_counters", &scripts::BUMP_COUNTERS, roots)
            .await
    }

    async fn counters(
        &self,
        op: &'static str,
        script: &'static redis::Script,
        roots: &[&str],
    ) -> Result<Vec<u64>, CacheError> {
        if roots.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = roots.iter().map(|r| keys::counter(r)).collect();
        let values: Vec<u64> = self
            .run(op, |mut con| async move {
                let mut invocation = script.prepare_invoke();
                for name in &names {
                    invocation.key(name);
                }
                invocation.invoke_async(&mut con).await
            })
            .await?;
        if values.len() == roots.len() {
            Ok(values)
        } else {
            Err(CacheError::Decode(format!(
                "{op}: {} counters asked, {} returned",
                roots.len(),
                values.len()
            )))
        }
    }
}
