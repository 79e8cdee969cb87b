//! The two kinds of Redis the tier speaks to, behind one command handle: a single node
//! (a self-reconnecting `ConnectionManager`) or a Redis Cluster (a `ClusterConnection`,
//! which follows `MOVED`, keeps one connection per node and reconnects each on its own).
//! The rest of the tier sends commands and scripts through [`Connection`] and does not
//! care which; only the few operations a cluster changes (the read of several slots,
//! the flush, the subscription) ask [`Connection::is_cluster`].

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

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
    Node(redis::Client),
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
    /// command bounded by `op_timeout`.
    pub(super) fn open(
        target: &Target,
        op_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<(Self, Subscriber), CacheError> {
        match target {
            Target::Node(url) => {
                let client = redis::Client::open(url.as_str())?;
                let config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(op_timeout))
                    .set_connection_timeout(Some(connect_timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(10))
                    .set_max_delay(Duration::from_millis(100));
                let con = client.get_connection_manager_lazy(config)?;
                Ok((Self::Node(con), Subscriber::Node(client)))
            }
            Target::Cluster(seeds) => {
                if seeds.is_empty() {
                    return Err(CacheError::Config(
                        "a redis cluster needs at least one seed node".into(),
                    ));
                }
                // The cluster connection retries (MOVED, reconnects) inside the response
                // timeout; the tier's own timeout bounds the whole call anyway.
                let client = ClusterClient::builder(seeds.iter().map(String::as_str))
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
                let subscriber = ClusterClient::builder(seeds.iter().map(String::as_str))
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
