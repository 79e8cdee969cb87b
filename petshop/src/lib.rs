//! The pet shop service: a REST API over SQLite or PostgreSQL whose reads go through the
//! tiered cache.
//!
//! Layout: [`config`] (environment → [`config::Config`]), [`startup`] (build and run),
//! [`api`] (handlers per resource, one error type, the middleware), [`service`]
//! (queries and mutations), [`entity`] (SeaORM), [`cache_layer`] (the only module that
//! touches the cache), [`metrics`], [`model`] (the data the API and cache share), [`testing`] (fresh PostgreSQL
//! databases for the tests and the benchmarks).

pub mod api;
pub mod cache_layer;
pub mod cli;
pub mod config;
pub mod entity;
pub mod metrics;
pub mod model;
pub mod service;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod testing;
