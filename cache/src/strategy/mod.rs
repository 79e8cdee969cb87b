//! Strategies: how a write of the source of truth reaches the cache.
//!
//! | strategy | on a write of an entity | next read of it |
//! |----------|-------------------------|-----------------|
//! | [`Strategy::CacheAside`] | invalidate its key (every tier, every instance) | a miss, loaded and filled |
//! | [`Strategy::WriteThrough`] | store the new value in every tier | a hit |
//! | [`Strategy::Versioned`] | bump the namespace version: every old key is unreachable | a miss under the new version |
//!
//! **Groups** (lists, aggregates: whatever depends on many entities) are invalidated
//! the same way in all three: each group namespace has a version counter that is part
//! of its keys, and a write bumps it (one round trip for all groups of the write). No
//! `KEYS`, no `SCAN`, no sets of member keys to maintain; the cost is one counter per
//! group and that old entries stay in memory until their TTL, which the byte-bounded L1
//! and Redis' own TTLs make harmless.
//!
//! Each strategy file says which cache-side effects a write has; the client
//! ([`crate::CacheClient`]) makes them, after the source acknowledged the write (and
//! before it too, with [`crate::WriteConsistency::Strict`]), and queues any that could
//! not reach Redis.

pub(crate) mod cache_aside;
pub(crate) mod versioned;
pub(crate) mod write_through;

use std::str::FromStr;

use serde::Serialize;

use crate::CacheError;

/// How writes meet the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Lazy loading; writes invalidate.
    #[default]
    CacheAside,
    /// Writes store the new value at once.
    WriteThrough,
    /// Writes bump a namespace version; nothing is deleted.
    Versioned,
}

impl Strategy {
    /// Every strategy, in the order the benchmarks report them.
    pub const ALL: [Self; 3] = [Self::CacheAside, Self::WriteThrough, Self::Versioned];

    /// `cache-aside`, `write-through` or `versioned`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CacheAside => "cache-aside",
            Self::WriteThrough => "write-through",
            Self::Versioned => "versioned",
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = CacheError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                CacheError::Config(format!(
                    "unknown strategy {s:?}: allowed values are cache-aside, write-through, versioned"
                ))
            })
    }
}
