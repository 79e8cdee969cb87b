//! Cross-crate end-to-end support: the freshness checker and the fault drill.
//!
//! [`freshness`] runs concurrent writers and readers against a source of truth through
//! a cache strategy and topology, and reports how many reads were stale and for how
//! long. The tests in `tests/freshness/` hold the strategies to it; `cargo run -p e2e
//! --bin freshness` prints the table for every strategy and topology.
//!
//! [`drill`] runs the same kind of load while Redis is killed, restarted, slowed and
//! black-holed, through `CacheClient`s or through pet shop instances over HTTP, and
//! reports stale reads during the faults and after recovery (`--bin fault-drill`).
//!
//! [`linearizability`] checks histories of per-key registers (every read and write
//! with its invocation and return time) for linearizability, and counts stale and
//! backwards reads; [`registers`] records such histories over HTTP against pet shop
//! instances (`--bin linearizability`).
//!
//! [`scale`] runs the drill's load, Redis healthy, over N pet shop instances started
//! together on one Redis and a fresh PostgreSQL database ([`postgres`]), and reports
//! the cross-instance window per strategy (`--bin scale-out`).

pub mod drill;
pub mod freshness;
pub mod linearizability;
pub mod postgres;
pub mod registers;
pub mod scale;
