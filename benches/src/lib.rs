//! Benchmarks of the cache toolkit.
//!
//! * `benches/micro.rs`: criterion micro-benchmarks of the typed cache against raw moka
//!   and raw Redis baselines; [`micro_report`] turns criterion's estimates into
//!   `results/micro.md`.
//! * `src/bin/compare.rs`: the HTTP comparison of the pet shop. The binary composes the
//!   modules, each of which imports only those listed before it:
//!   1. [`http`] (keep-alive client), [`workload`] (what is asked), [`staleness`]
//!      (stale-read detection), [`metrics`] (the service's counters), [`process`]
//!      (child processes), [`service`] (the ceiling route), [`nginx`] (a throwaway
//!      microcache), [`outcome`] (what a load run applies and measures);
//!   2. [`exchange`] (one request and its book-keeping), then [`loadgen`] (the
//!      closed-loop generator), [`launcher`] (starting services), [`config`] (what to
//!      run);
//!   3. [`results`] (what a run measured, plain data);
//!   4. [`measure`] (one row: warm-up, load, counters);
//!   5. the scenarios: [`seedmix`], [`microcache`], [`memory`];
//!   6. [`compare`] (the matrix, then the scenarios);
//!   7. beside it, reading only [`results`]: [`targets`] (judges), [`report`]
//!      (markdown and JSON), [`plot`] (SVG).
//! * `src/bin/petshop-server.rs`: the pet shop itself with the benchmarks' ceiling
//!   route ([`service`]), built with this crate so tests find it as
//!   `CARGO_BIN_EXE_petshop-server`.

pub mod amdahl;
pub mod compare;
pub mod config;
pub mod exchange;
pub mod http;
pub mod launcher;
pub mod loadgen;
pub mod measure;
pub mod memory;
pub mod metrics;
pub mod micro_report;
pub mod microcache;
pub mod nginx;
pub mod outcome;
pub mod pet;
pub mod plot;
pub mod process;
pub mod report;
pub mod results;
pub mod seedmix;
pub mod service;
pub mod staleness;
pub mod targets;
pub mod workload;
