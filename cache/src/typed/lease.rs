//! The distributed loading lease: N instances missing one key cause one load.

use serde::de::DeserializeOwned;

use super::TypedCache;
use crate::codec::Codec;
use crate::typed::Fetched;
use crate::{Key, Ttl};

/// The distributed loading lease: N instances missing one key cause one load.
///
/// The instance that takes the lease (`SET {key}:lease NX PX ttl`) loads; the others
/// re-read the shared tier every `poll` for up to `wait`, then load themselves (so a
/// lease holder that dies costs at most `wait`, and its lease expires after `ttl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// How long a lease lives if never released.
    pub ttl: Ttl,
    /// How long a caller without the lease waits for the holder's value.
    pub wait: std::time::Duration,
    /// How often it looks.
    pub poll: std::time::Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            ttl: Ttl::secs(5),
            wait: std::time::Duration::from_secs(2),
            poll: std::time::Duration::from_millis(5),
        }
    }
}

/// What waiting for the lease came to.
pub(super) enum Leased<T> {
    /// The holder's value appeared in the shared tier: no load needed.
    Found(Fetched<T>),
    /// This caller holds the lease: it loads, then releases it.
    Held,
    /// No lease (none configured, unavailable, or the wait ran out): load without it.
    NotHeld,
}

impl<C: Codec> TypedCache<C> {
    /// With a lease configured: take it, or wait for its holder's value in the shared tier.
    pub(super) async fn await_lease<T>(
        &self,
        key: &Key,
        validate: Option<&dyn super::Validate>,
    ) -> Leased<T>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let Some(lease) = self.inner.lease else {
            return Leased::NotHeld;
        };
        let deadline = tokio::time::Instant::now() + lease.wait;
        loop {
            match self
                .inner
                .cache
                .try_lease(key, &self.inner.owner, lease.ttl)
                .await
            {
                Ok(true) => return Leased::Held,
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(key = %key, error = %e, "lease unavailable: loading without it");
                    return Leased::NotHeld;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Leased::NotHeld;
            }
            tokio::time::sleep(lease.poll).await;
            if let Some((hit, _, super::Verdict::Current)) = self.lookup::<T>(key, validate).await {
                return Leased::Found(hit);
            }
        }
    }

    /// Gives the lease back after a load (it expires by itself if this fails).
    pub(super) async fn release_lease(&self, key: &Key) {
        if let Err(e) = self.inner.cache.release_lease(key, &self.inner.owner).await {
            tracing::debug!(key = %key, error = %e, "lease release failed: it expires by itself");
        }
    }
}
