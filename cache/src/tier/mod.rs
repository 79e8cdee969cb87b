//! The low-level pieces: the object-safe [`Cache`] trait and its tiers.
//!
//! Most users never touch these: [`crate::CacheClient`] builds and wires them. They are
//! here for those who compose their own cache.
//!
//! | tier | type | where the data lives |
//! |------|------|----------------------|
//! | L1 | [`MokaTier`] | this process, bounded by bytes |
//! | L2 | [`RedisTier`] | a Redis server shared by every instance |
//! | L1 → L2 | [`TieredCache`] | both; L2 hits are promoted into L1 |
//! | none | [`NoCache`] | nowhere: the no-cache baseline, with the same metrics |

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

pub use crate::entry::{ENVELOPE_HEADER, Entry, EntryTags, Envelope};
use crate::{CacheError, Key, TierSnapshot, Ttl};

pub(crate) mod moka;
pub(crate) mod none;
pub(crate) mod redis;
pub(crate) mod tiered;

pub use self::moka::{DEFAULT_L1_MAX_BYTES, MokaTier, MokaTierBuilder};
pub use self::none::NoCache;
#[cfg(any(test, feature = "test-util"))]
pub(crate) use self::redis::install_ring_if_none;
pub use self::redis::{
    DEFAULT_BREAKER_COOLDOWN, DEFAULT_BREAKER_THRESHOLD, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_OP_TIMEOUT, GUARD_TTL, RedisAcl, RedisTier, RedisTierBuilder, RedisTls,
};
pub use self::tiered::{L1Switch, TieredCache, TieredCacheBuilder};

/// Which tier answered a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TierKind {
    /// The in-process tier.
    L1,
    /// The shared Redis tier.
    L2,
}

/// A read that found an entry.
#[derive(Clone, Debug)]
pub struct Hit {
    /// The entry found.
    pub entry: Entry,
    /// The tier that had it.
    pub tier: TierKind,
    /// How long the entry has left to live in that tier, when the tier knows.
    pub ttl_left: Option<Duration>,
}

/// What a reader saw of a key before it started loading from the source of truth.
///
/// A fill made with [`Cache::set_if_unchanged`] lands only if no invalidation of the
/// key happened since the token was taken, in each tier: the fix for the cache-aside
/// race where a slow reader fills a value a writer has already replaced (the "leases" of
/// *Scaling Memcache at Facebook*, NSDI 2013). L1 keeps invalidation counters in memory
/// (striped by key hash); L2 keeps one per key in Redis (`{key}:guard`, an hour's TTL)
/// and checks it atomically in a Lua script. The L2 part also records the shared
/// tier's generation, which the fill is written in: a fill whose load began before a
/// new generation is never read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FillToken {
    pub(crate) l1: Option<(u64, u64)>,
    pub(crate) l2: Option<L2Token>,
}

/// What a load saw of a key in Redis: its guard counter, the generation and the tag
/// sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct L2Token {
    pub(crate) guard: u64,
    pub(crate) generation: u64,
    pub(crate) tag_seq: u64,
}

impl FillToken {
    /// The tag sequence Redis had when this token was taken (as far as this instance
    /// knows: never ahead of it), if the shared tier was reached.
    #[must_use]
    pub fn tag_sequence(&self) -> Option<u64> {
        self.l2.map(|t| t.tag_seq)
    }
}

/// A cache of encoded entries: one tier, or several behind one face.
///
/// Object-safe, so the tiers can be chosen at run time as `Arc<dyn Cache>`. Every write
/// takes a [`Ttl`]. Tiers report their own failures as `Err`; [`TieredCache`] and
/// [`crate::typed::TypedCache`] log, count and swallow them on reads, so a failing tier
/// never fails the caller's read. The guard methods (tokens, guarded stores,
/// invalidation, the lease) have no default body: a tier that ignored the token would
/// switch the fill-race guard off without a word.
#[async_trait]
pub trait Cache: Send + Sync + Debug + 'static {
    /// A short name: `"l1"`, `"l2"`, `"l1+l2"` or `"none"`.
    fn name(&self) -> &'static str;

    /// The entry under `key`, if present and not expired.
    async fn get(&self, key: &Key) -> Result<Option<Hit>, CacheError>;

    /// The entries under `keys`, in order. Tiers that can batch (Redis) do it in one trip.
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Hit>>, CacheError> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(key).await?);
        }
        Ok(out)
    }

    /// Stores `entry` under `key` for `ttl`.
    async fn set(&self, key: &Key, entry: Entry, ttl: Ttl) -> Result<(), CacheError>;

    /// Removes `key`; removing an absent key is not an error.
    async fn delete(&self, key: &Key) -> Result<(), CacheError>;

    /// Removes every entry this cache owns (an admin action: Redis scans our prefix).
    async fn clear(&self) -> Result<(), CacheError>;

    /// A token recording the key's invalidation state, taken before a load.
    async fn fill_token(&self, key: &Key) -> Result<FillToken, CacheError>;

    /// Stores `entry` only if `key` was not invalidated since `token` was taken.
    /// Returns whether it was stored.
    async fn set_if_unchanged(
        &self,
        key: &Key,
        entry: Entry,
        ttl: Ttl,
        token: &FillToken,
    ) -> Result<bool, CacheError>;

    /// A writer's store: lands only if `key` was not invalidated since `token`, and
    /// advances the key's invalidation state, so that readers' fills based on loads that
    /// began before it are refused (they may have read the source before the write).
    ///
    /// `Err` when a tier that holds shared state could not be reached: the caller must
    /// assume the shared tier still holds what it held before.
    async fn replace(
        &self,
        key: &Key,
        entry: Entry,
        ttl: Ttl,
        token: &FillToken,
    ) -> Result<bool, CacheError>;

    /// Removes `key` and advances its invalidation state, so fills based on older tokens
    /// are refused. Returns the state after the invalidation.
    ///
    /// `Err` when a tier that holds shared state could not be reached (the local tiers
    /// are invalidated all the same): the caller must retry it later.
    async fn invalidate(&self, key: &Key) -> Result<FillToken, CacheError>;

    /// Tries to take the loading lease of `key` for `ttl` on behalf of `owner`. Tiers with
    /// nothing shared grant it at once.
    async fn try_lease(&self, key: &Key, owner: &str, ttl: Ttl) -> Result<bool, CacheError>;

    /// Gives the lease of `key` back, if `owner` still holds it.
    async fn release_lease(&self, key: &Key, owner: &str) -> Result<(), CacheError>;

    /// The counters of each tier, nearest first.
    fn stats(&self) -> Vec<TierSnapshot>;

    /// Counts an entry of `tier` whose payload did not decode as the caller's type.
    fn record_decode_failure(&self, tier: TierKind) {
        let _ = tier;
    }

    /// True for the no-cache baseline, whose reads are bypasses rather than misses.
    fn is_bypass(&self) -> bool {
        false
    }
}
