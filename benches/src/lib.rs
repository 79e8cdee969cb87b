//! Benchmarks of the cache toolkit.
//!
//! * `benches/micro.rs`: criterion micro-benchmarks of the typed cache against raw moka
//!   and raw Redis baselines; [`micro_report`] turns criterion's estimates into
//!   `results/micro.md`.
//! * `src/bin/compare.rs`: the HTTP comparison of the pet shop. The binary composes the
//!   modules, which import only those below them:
//!   - bottom: [`http`] (keep-alive client), [`workload`] (what is asked),
//!     [`staleness`] (stale-read detection), [`metrics`] (the service's counters),
//!     [`process`] (child processes), [`service`] (the ceiling route);
//!   - [`loadgen`] (the closed-loop generator) and [`launcher`] (starting services);
//!   - [`results`] (what a run measured, plain data);
//!   - [`compare`] (runs the configurations into [`results`]), [`targets`] (judges
//!     them), [`report`] (markdown and JSON), [`plot`] (SVG).
//! * `src/bin/petshop-server.rs`: the pet shop itself with the benchmarks' ceiling
//!   route ([`service`]), built with this crate so tests find it as
//!   `CARGO_BIN_EXE_petshop-server`.

pub mod compare;
pub mod http;
pub mod launcher;
pub mod loadgen;
pub mod metrics;
pub mod micro_report;
pub mod pet;
pub mod plot;
pub mod process;
pub mod report;
pub mod results;
pub mod service;
pub mod staleness;
pub mod targets;
pub mod workload;
