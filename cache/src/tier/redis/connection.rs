//! The two kinds of Redis the tier speaks to, behind one command handle: a single node
//! (a self-reconnecting `ConnectionManager`) or a Redis Cluster (a `ClusterConnection`,
//! which follows `MOVED`, keeps one connection per node and reconnects each on its own).
//! The rest of the tier sends commands and scripts through [`Connection`] and does not
//! care which; only the few operations a cluster changes (the read of several slots,
//! the flush, the subscription) ask [`Connection::is_cluster`]. Every client is made
//! here, so every connection (commands, subscriptions) speaks TLS alike (`tls.rs`).

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::tls::{self, RedisTls};
use crate::CacheError;

/// Where the tier's Redis is: one server, or the seed nodes of a cluster.
#[derive(Debug, Clone)]
pub(super) enum Target {
    Node(String),
    Cluster(Vec<String>),
}

/// What a new subscription is made from.
#[derive(Clone)]
pub(super) enum Subscriber {
    Node(Box<redis::Client>),
    /// A RESP3 client of the cluster: sharded pub/sub arrives as push messages.
    Cluster(Box<ClusterClient>),
}

/// The command handle; cheap to clone (clones share the connections).
#[derive(Clone)]
pub(super) enum Connection {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    /// Opens `target` lazily (nothing is dialled until the first command), every
    /// command bounded by `op_timeout`; `rediss://` URLs with `tls` (the public roots
    /// without it).
    pub(super) fn open(
        target: &Target,
        tls: Option<&RedisTls>,
        op_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<(Self, Subscriber), CacheError> {
        let urls = match target {
            Target::Node(url) => std::slice::from_ref(url),
            Target::Cluster(seeds) => seeds.as_slice(),
        };
        if urls.iter().any(|u| tls::is_tls_url(u)) {
            tls::install_ring_if_none();
        }
        let certs = match tls {
            Some(_) if !urls.iter().all(|u| tls::is_tls_url(u)) => {
                return Err(CacheError::Config(
                    "redis TLS settings need rediss:// URLs (every seed node's, on a cluster)"
                        .into(),
                ));
            }
            Some(tls) => Some(tls.certificates()?),
            None => None,
        };
        match target {
            Target::Node(url) => {
                let client = match certs {
                    Some(certs) => redis::Client::build_with_tls(url.as_str(), certs)?,
                    None => redis::Client::open(url.as_str())?,
                };
                let config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(op_timeout))
                    .set_connection_timeout(Some(connect_timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(10))
                    .set_max_delay(Duration::from_millis(100));
                let con = client.get_connection_manager_lazy(config)?;
                Ok((Self::Node(con), Subscriber::Node(Box::new(client))))
            }
            Target::Cluster(seeds) => {
                if seeds.is_empty() {
                    return Err(CacheError::Config(
                        "a redis cluster needs at least one seed node".into(),
                    ));
                }
                // The cluster connection retries (MOVED, reconnects) inside the response
                // timeout; the tier's own timeout bounds the whole call anyway.
                let with_certs = |builder: ClusterClientBuilder| match &certs {
                    Some(certs) => builder.certs(certs.clone()),
                    None => builder,
                };
                let client = with_certs(ClusterClient::builder(seeds.iter().map(String::as_str)))
                    .connection_timeout(connect_timeout)
                    .response_timeout(op_timeout)
                    .retries(2)
                    .min_retry_wait(5)
                    .max_retry_wait(50)
                    .build()?;
                let config = ClusterConfig::new()
                    .set_connection_timeout(connect_timeout)
                    .set_response_timeout(op_timeout);
                let con = client.get_pending_async_connection_with_config(config);
                let subscriber =
                    with_certs(ClusterClient::builder(seeds.iter().map(String::as_str)))
                        .connection_timeout(connect_timeout)
                        .use_protocol(redis::ProtocolVersion::RESP3)
                        .build()?;
                Ok((
                    Self::Cluster(con),
                    Subscriber::Cluster(Box::new(subscriber)),
                ))
            }
        }
    }

    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Node(con) => con.req_packed_command(cmd),
            Self::Cluster(con) => con.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Node(con) => con.req_packed_commands(pipeline, offset, count),
            Self::Cluster(con) => con.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Node(con) => con.get_db(),
            Self::Cluster(con) => con.get_db(),
        }
    }
}
