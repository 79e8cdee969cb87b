//! Serve-stale (fail-safe): when the source fails or is too slow, answer with the last
//! value this process saw for the key, if it is young enough, flagged as stale.
//!
//! The tiers drop an entry at its TTL, so the last good values are kept apart, in a
//! byte-bounded in-process store, for [`StaleConfig::max_stale`] after they were loaded.
//! A value enters it when this process loads it or reads it from the shared tier, and
//! leaves it when the key is invalidated: serve-stale covers outages of the source,
//! never a write this process knows about (a write-through store replaces it with the
//! new value). Under versioned keys a bump moves reads to new keys, which have no stale
//! copy, so a bump is never undone by a stale answer either.

use std::time::Duration;

use crate::{Clock, Entry, Key};

/// Serve-stale settings (see [`crate::typed::TypedCacheBuilder::serve_stale`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaleConfig {
    /// The oldest a stale answer may be, counted from when the value was loaded.
    pub max_stale: Duration,
    /// Byte budget of the stale copies (payload and key bytes).
    pub max_bytes: u64,
    /// A load slower than this is abandoned and answered stale if it can be (or fails
    /// with [`crate::CacheError::Loader`] if it cannot). `None`: loads are never cut short.
    pub load_timeout: Option<Duration>,
}

impl Default for StaleConfig {
    fn default() -> Self {
        Self {
            max_stale: Duration::from_secs(300),
            max_bytes: 16 * 1024 * 1024,
            load_timeout: None,
        }
    }
}

/// The last good entries, by key.
pub(crate) struct StaleStore {
    entries: moka::future::Cache<Key, Entry>,
    max_stale: Duration,
    pub(crate) load_timeout: Option<Duration>,
}

impl StaleStore {
    /// `None` (serve-stale off) when `max_stale` or `max_bytes` is zero.
    pub(crate) fn new(config: StaleConfig) -> Option<Self> {
        if config.max_stale.is_zero() || config.max_bytes == 0 {
            return None;
        }
        let entries = moka::future::Cache::builder()
            .name("stale")
            .max_capacity(config.max_bytes)
            .weigher(|key: &Key, entry: &Entry| {
                u32::try_from(entry.weight(key.as_str().len())).unwrap_or(u32::MAX)
            })
            .time_to_live(config.max_stale)
            .build();
        Some(Self {
            entries,
            max_stale: config.max_stale,
            load_timeout: config.load_timeout,
        })
    }

    /// Remembers `entry` as the last good value of `key`.
    pub(crate) async fn record(&self, key: &Key, entry: Entry) {
        self.entries.insert(key.clone(), entry).await;
    }

    /// Forgets `key`: a write made its last value wrong.
    pub(crate) async fn forget(&self, key: &Key) {
        self.entries.invalidate(key).await;
    }

    /// Forgets everything.
    pub(crate) fn clear(&self) {
        self.entries.invalidate_all();
    }

    /// How old a last good value may be when it is served.
    pub(crate) fn max_stale(&self) -> Duration {
        self.max_stale
    }

    /// The last good entry of `key`, if it was loaded at most `max_stale` ago.
    pub(crate) async fn lookup(&self, key: &Key, clock: &dyn Clock) -> Option<Entry> {
        let entry = self.entries.get(key).await?;
        let age_ms = clock.now_millis().saturating_sub(entry.created_ms());
        (u128::from(age_ms) <= self.max_stale.as_millis()).then_some(entry)
    }
}

impl std::fmt::Debug for StaleStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaleStore")
            .field("entries", &self.entries.entry_count())
            .field("max_stale", &self.max_stale)
            .field("load_timeout", &self.load_timeout)
            .finish()
    }
}
