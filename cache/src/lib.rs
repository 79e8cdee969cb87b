//! A tiered cache for services that put a cache in front of a database.
//!
//! * **L1** ([`MokaTier`]): in-process, on `moka`, bounded by bytes, a TTL per entry. A
//!   hit costs no network trip and, through [`TypedCache`], no decode after the first.
//! * **L2** ([`RedisTier`]): shared, on Redis, with a per-operation timeout and a circuit
//!   breaker; reconnects by itself.
//! * **L1 → L2** ([`TieredCache`]): L2 hits are promoted into L1 for no longer than the
//!   shared entry has left.
//! * **None** ([`NoCache`]): the pass-through baseline, with the same metrics.
//!
//! All of them implement the object-safe [`Cache`] trait, so the tiers can be picked at
//! run time (`Arc<dyn Cache>`). [`TypedCache`] adds serde values, pluggable [`Codec`]s
//! ([`Bincode`] by default, [`Json`]), TTL jitter and single-flight
//! [`TypedCache::get_or_load`].
//!
//! On top, a [`Strategy`] ([`StrategyKind`]: cache-aside, write-through, versioned keys)
//! puts a source of truth behind the cache: group invalidation by version counters, the
//! fill-race guard ([`FillToken`]), a Redis pub/sub backplane that keeps every instance's
//! L1 coherent, an optional distributed loading lease ([`LeaseConfig`]), negative
//! caching, serve-stale ([`StaleConfig`]) and refresh-ahead
//! ([`TypedCache::get_or_refresh`]).
//!
//! The database stays the source of truth: a tier that fails, hangs or holds garbage is
//! logged, counted and skipped, never an error to the caller. Every entry has a [`Ttl`];
//! there is no way to store one without. Keys come from one [`KeyBuilder`], whose format
//! is documented in [`key`](crate::KeyBuilder).
//!
//! # Example: L1 only
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use cache::{KeyBuilder, MokaTier, Params, Ttl, TypedCache};
//!
//! let cache = TypedCache::builder(MokaTier::builder().max_bytes(16 << 20).build().unwrap())
//!     .jitter_percent(10)
//!     .build();
//! let pets = KeyBuilder::new("petshop").unwrap().namespace("pets").unwrap();
//! let key = pets.query(&Params::new().with("species", "cat").with("limit", 10));
//!
//! cache.set(&key, &vec!["Tom".to_string()], Ttl::secs(5)).await.unwrap();
//! let hit = cache.get::<Vec<String>>(&key).await.unwrap();
//! assert_eq!(hit.value, ["Tom"]);
//! assert!(hit.source.is_hit());
//! # });
//! ```
//!
//! # Example: L1 in front of Redis, with a loader
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::time::Duration;
//! use cache::testing::RedisServer;
//! use cache::{KeyBuilder, MokaTier, RedisTier, Source, TieredCache, Ttl, TypedCache};
//!
//! let redis = RedisServer::spawn(); // a throwaway server for this example
//! let keys = KeyBuilder::new("petshop").unwrap();
//! let l2 = RedisTier::builder(redis.url())
//!     .prefix(keys.prefix())
//!     .op_timeout(Duration::from_millis(50))
//!     .build()
//!     .unwrap();
//! let tiers = TieredCache::builder(MokaTier::builder().build().unwrap(), l2).build();
//! let cache = TypedCache::builder(tiers).build();
//!
//! let key = keys.namespace("pet").unwrap().id(1);
//! let load = || async { Ok::<_, std::io::Error>(("Rex".to_string(), 3u8)) };
//! assert_eq!(cache.get_or_load(&key, Ttl::secs(60), load).await.unwrap().source, Source::Miss);
//! assert_eq!(cache.get_or_load(&key, Ttl::secs(60), load).await.unwrap().source, Source::HitL1);
//! # });
//! ```
#![warn(missing_docs)]

mod breaker;
mod clock;
mod codec;
mod entry;
mod error;
mod key;
mod stale;
mod stats;
mod strategy;
mod tier;
mod ttl;
mod typed;

#[cfg(feature = "test-util")]
pub mod testing;

pub use clock::{Clock, ManualClock, SystemClock};
pub use codec::{Bincode, Codec, Json};
pub use entry::{ENVELOPE_HEADER, Entry};
pub use error::CacheError;
pub use key::{Key, KeyBuilder, Namespace, ParamValue, Params};
pub use stale::StaleConfig;
pub use stats::{CacheStats, LoaderSnapshot, TierSnapshot, TierStats};
pub use strategy::backplane::BackplaneSnapshot;
pub use strategy::{Part, Strategy, StrategyBuilder, StrategyKind, StrategyStats, WriteTicket};
pub use tier::moka::DEFAULT_L1_MAX_BYTES;
pub use tier::redis::{
    DEFAULT_BREAKER_COOLDOWN, DEFAULT_BREAKER_THRESHOLD, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_OP_TIMEOUT, GUARD_TTL,
};
pub use tier::{
    Cache, FillToken, Hit, L1Switch, MokaTier, MokaTierBuilder, NoCache, RedisTier,
    RedisTierBuilder, TierKind, TieredCache, TieredCacheBuilder,
};
pub use ttl::Ttl;
pub use typed::{Fetched, LeaseConfig, Source, TypedCache, TypedCacheBuilder};
