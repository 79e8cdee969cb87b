//! Cross-crate end-to-end support: the freshness checker.
//!
//! [`freshness`] runs concurrent writers and readers against a source of truth through
//! a cache strategy and topology, and reports how many reads were stale and for how
//! long. The tests in `tests/freshness/` hold the strategies to it; `cargo run -p e2e
//! --bin freshness` prints the table for every strategy and topology.

pub mod freshness;
