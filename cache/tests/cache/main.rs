//! Integration tests of the cache library: one behaviour suite run against every
//! topology (L1, L2, L1+L2, on one server or a cluster, as Redis' default user or one
//! with exactly the tier's ACL), plus the fault cases of the shared tier.
//!
//! Every test owns its infrastructure (a private `redis-server`, killed on drop) and is
//! bounded in time.

mod acl;
mod examples;
mod faults;
mod http;
mod limit;
mod many;
mod probe;
mod recovery;
mod refresh;
mod round_trips;
mod stale;
mod strict;
mod suite;
mod support;
mod tags;
mod tls;
