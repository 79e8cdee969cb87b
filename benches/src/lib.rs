//! Benchmarks of the cache toolkit.
//!
//! * `benches/micro.rs`: criterion micro-benchmarks of the typed cache against raw moka
//!   and raw Redis baselines; [`micro_report`] turns criterion's estimates into
//!   `results/micro.md`.
//! * `src/bin/compare.rs`: the HTTP comparison of the pet shop across cache topologies
//!   and strategies ([`compare`]), driven by the closed-loop [`loadgen`] over
//!   keep-alive connections ([`http`]), with stale-read detection ([`staleness`]), the
//!   service's own counters ([`metrics`]), and a markdown/JSON [`report`] with SVG
//!   [`plot`]s and the project's [`targets`] judged against the run.
//! * `src/bin/petshop-server.rs`: the pet shop itself with the benchmarks' ceiling
//!   route ([`service`]), built with this crate so tests find it as
//!   `CARGO_BIN_EXE_petshop-server`.

pub mod compare;
pub mod http;
pub mod loadgen;
pub mod metrics;
pub mod micro_report;
pub mod pet;
pub mod plot;
pub mod process;
pub mod report;
pub mod service;
pub mod staleness;
pub mod targets;
pub mod workload;
