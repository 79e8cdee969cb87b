//! A cache in front of a database that proves its freshness, across instances and
//! across Redis faults.
//!
//! One front door: [`CacheClient`]. It puts a [`Strategy`] (cache-aside, write-through,
//! versioned keys) between a service and its source of truth, over the tiers of a
//! [`Topology`]:
//!
//! * **L1**: in-process, on `moka`, bounded by bytes, a TTL per entry;
//! * **L2**: shared, on Redis, every call bounded by a timeout, a circuit breaker in front;
//! * **L1 + L2**: L2 hits promoted into L1, and a pub/sub backplane that keeps every
//!   instance's L1 coherent (L1 is bypassed whenever the backplane cannot vouch for it).
//!
//! Reads coalesce concurrent misses (single-flight) and fill through a fill-race guard,
//! so a slow reader never stores a value a writer has replaced. Writes follow
//! `begin_write` → write the source → `finish_write`. A write's cache-side effect that
//! cannot reach Redis is queued and replayed when Redis answers; meanwhile this
//! instance reads what it concerns from the source, and with
//! [`WriteConsistency::Strict`] such writes are refused instead. A Redis that fails,
//! hangs or holds garbage is logged, counted and skipped, never an error to a reader.
//!
//! The low-level pieces live in modules for those who compose their own cache:
//! [`tier`] (the [`tier::Cache`] trait and its tiers), [`typed`] (serde values,
//! single-flight, the guard), [`codec`], [`policy`] (lease, serve-stale), [`stats`],
//! [`clock`], [`key`] and [`limit`] (a rate limiter shared across instances).
//!
//! # Example
//! Two instances of a service, each with an L1 in front of one Redis; a write through
//! one is seen at once through the other.
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::time::Duration;
//! use cache::tier::{MokaTier, RedisTier};
//! use cache::{CacheClient, KeyBuilder, Source, Strategy, Ttl};
//! # let redis = cache::testing::RedisServer::spawn(); // a throwaway server
//! # let url = redis.url();
//!
//! let keys = KeyBuilder::new("petshop").unwrap();
//! let (pet, pets) = (keys.namespace("pet").unwrap(), keys.namespace("pets").unwrap());
//! let instance = || {
//!     CacheClient::builder(&keys)
//!         .strategy(Strategy::CacheAside)
//!         .l1(MokaTier::builder().max_bytes(64 << 20))
//!         .l2(RedisTier::builder(url.as_str()).op_timeout(Duration::from_millis(50)))
//!         .entity(&pet, &[&pets]) // a write of a pet invalidates the lists too
//!         .build()
//!         .unwrap()
//! };
//! let (a, b) = (instance(), instance());
//! # assert!(a.wait_for_backplane(Duration::from_secs(10)).await);
//! # assert!(b.wait_for_backplane(Duration::from_secs(10)).await);
//!
//! let load = |name: &'static str| move || async move { Ok::<_, std::io::Error>(Some(name.to_string())) };
//! assert_eq!(b.get_entity(&pet, 1, Ttl::secs(60), load("Rex")).await.unwrap().source, Source::Miss);
//! assert_eq!(b.get_entity(&pet, 1, Ttl::secs(60), load("Rex")).await.unwrap().source, Source::HitL1);
//!
//! // A writes pet 1: begin, write the database, finish.
//! let ticket = a.begin_write(&pet, Some(1)).await.unwrap();
//! /* UPDATE pets SET name = 'Max' WHERE id = 1 */
//! a.finish_write(ticket, 1, Some(&"Max".to_string()), Ttl::secs(60)).await;
//!
//! // B's L1 copy is gone (the backplane is asynchronous: wait for it).
//! # for _ in 0..200 {
//! #     if b.stats().backplane.unwrap().received > 0 { break }
//! #     tokio::time::sleep(Duration::from_millis(10)).await;
//! # }
//! let read = b.get_entity(&pet, 1, Ttl::secs(60), load("Max")).await.unwrap();
//! assert_eq!((read.value.as_deref(), read.source), (Some("Max"), Source::Miss));
//! # });
//! ```
#![warn(missing_docs)]

mod breaker;
mod client;
pub mod clock;
pub mod codec;
mod entry;
mod error;
#[cfg(feature = "http")]
pub mod http;
pub mod key;
pub mod limit;
pub mod probe;
mod stale;
pub mod stats;
mod strategy;
pub mod tier;
mod topology;
mod ttl;
pub mod typed;

#[cfg(feature = "test-util")]
pub mod testing;

/// Policies a client can switch on: the distributed lease, serve-stale, and the bound
/// of the recovery queue.
pub mod policy {
    pub use crate::client::recovery::DEFAULT_RECOVERY_CAPACITY;
    pub use crate::stale::StaleConfig;
    pub use crate::typed::LeaseConfig;
}

/// The kinds of [`CacheClient::read`] (a plain load, refresh-ahead, soft
/// invalidation), and the batch read of [`CacheClient::read_many`].
pub mod read {
    pub use crate::client::{Plain, Read, ReadMany, RefreshAhead, Soft, Verified};
}

pub use client::{
    CacheClient, CacheClientBuilder, ClientStats, Part, WriteConsistency, WriteTicket,
};
pub use error::CacheError;
pub use key::{Key, KeyBuilder, Namespace, Params, Tag};
pub use strategy::Strategy;
pub use topology::Topology;
pub use ttl::Ttl;
pub use typed::{CacheValue, Fetched, Source};

use clock::Clock;
use entry::Entry;
use stats::{TierSnapshot, TierStats};
