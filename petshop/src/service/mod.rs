//! Queries and mutations: everything that talks to the database, nothing that knows HTTP.

pub mod db;
pub mod pets;
pub mod seed;
pub mod stats;
