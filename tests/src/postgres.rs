//! A fresh PostgreSQL database per run: the pet shop's [`petshop::testing`], where it
//! lives for the tests and the benchmarks alike.

pub use petshop::testing::{FreshDatabase, VAR, with_database};
