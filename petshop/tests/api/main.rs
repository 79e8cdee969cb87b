//! Integration tests of the pet shop API: one binary, one module per area.

mod acl;
mod admin;
mod bad_input;
mod by_ids;
mod cluster;
mod compose;
mod config;
mod dashboard;
mod fuzz;
mod helpers;
mod lists;
mod matrix;
mod metrics;
mod nginx;
mod openapi;
mod postgres;
mod rate_limit;
mod redis_outage;
mod responses;
mod server;
mod stale;
mod tags;
mod tls;
mod traces;
mod ui;
