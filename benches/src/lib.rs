//! Benchmarks of the cache toolkit.
