//! The backplane's transport: `PUBLISH` on the command connection, `SUBSCRIBE` on a
//! dedicated one, both on the channel `{prefix}:backplane`.
//!
//! On Redis Cluster the channel is a *sharded* one (`SPUBLISH` / `SSUBSCRIBE`): it lives
//! on the master of the prefix's slot, every instance subscribes there, and a message
//! reaches every instance without crossing the cluster bus. The subscription is a RESP3
//! cluster connection of its own whose messages arrive as pushes. The library's
//! connection would quietly resubscribe after a reconnect, losing what was published
//! meanwhile; so a disconnection push from any of its nodes ends the subscription here,
//! and the backplane flushes L1 and subscribes again, as on a single server.

use std::time::Duration;

use futures::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use redis::cluster::ClusterConfig;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{PushInfo, PushKind};
use tokio::sync::mpsc::UnboundedReceiver;

use super::connection::Subscriber;
use super::{RedisTier, keys};
use crate::CacheError;

impl RedisTier {
    /// The backplane channel of this tier's prefix.
    pub(super) fn channel(&self) -> Result<String, CacheError> {
        self.inner
            .prefix
            .as_deref()
            .map(keys::channel)
            .ok_or_else(|| {
                CacheError::Config(
                    "the backplane needs a key prefix (RedisTierBuilder::prefix)".into(),
                )
            })
    }

    /// `SPUBLISH` on a cluster (the channel is sharded), `PUBLISH` on one server.
    pub(super) fn publish_command(&self) -> &'static str {
        if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }

    /// Publishes `message` to every instance subscribed under this tier's prefix.
    pub(crate) async fn publish(&self, message: &str) -> Result<(), CacheError> {
        let (channel, message) = (self.channel()?, message.to_owned());
        let command = self.publish_command();
        self.run("publish", |mut con| async move {
            redis::cmd(command)
                .arg(&channel)
                .arg(&message)
                .query_async::<i64>(&mut con)
                .await
        })
        .await
        .map(|_| ())
    }

    /// A new subscription to this tier's channel, on its own connection, made within
    /// `timeout`.
    pub(crate) async fn subscribe(&self, timeout: Duration) -> Result<Subscription, CacheError> {
        let channel = self.channel()?;
        let subscriber = self.inner.subscriber.clone();
        let op_timeout = self.inner.op_timeout;
        let made = tokio::time::timeout(timeout, async move {
            match subscriber {
                Subscriber::Node(client) => {
                    let (mut sink, stream) = client.get_async_pubsub().await?.split();
                    sink.subscribe(&channel).await?;
                    Ok::<_, redis::RedisError>(Subscription::Node { sink, stream })
                }
                Subscriber::Cluster(client) => {
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                    let config = ClusterConfig::new()
                        .set_connection_timeout(timeout)
                        .set_response_timeout(op_timeout.max(PING_FLOOR))
                        .set_push_sender(tx);
                    let mut con = client.get_async_connection_with_config(config).await?;
                    con.ssubscribe(&channel).await?;
                    let route = Route::with_key(channel.as_bytes(), SlotAddr::Master);
                    Ok(Subscription::Cluster { con, rx, route })
                }
            }
        })
        .await;
        match made {
            Ok(Ok(subscription)) => Ok(subscription),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(CacheError::Timeout(timeout)),
        }
    }
}

/// The least response timeout of a subscription's cluster connection: its `PING`s are
/// bounded by the backplane's own, longer, timeout.
const PING_FLOOR: Duration = Duration::from_secs(1);

/// A live subscription: messages in, and a `PING` to prove the connection still answers.
pub(crate) enum Subscription {
    Node {
        sink: PubSubSink,
        stream: PubSubStream,
    },
    Cluster {
        con: ClusterConnection,
        rx: UnboundedReceiver<PushInfo>,
        /// The master that serves the channel.
        route: Route,
    },
}

impl Subscription {
    /// The next message's payload; `None` when the connection is gone.
    pub(crate) async fn next(&mut self) -> Option<Vec<u8>> {
        match self {
            Self::Node { stream, .. } => stream
                .next()
                .await
                .map(|msg| msg.get_payload_bytes().to_vec()),
            Self::Cluster { rx, .. } => loop {
                let push = rx.recv().await?;
                match push.kind {
                    PushKind::SMessage => match push.data.into_iter().nth(1) {
                        Some(redis::Value::BulkString(payload)) => return Some(payload),
                        _ => continue,
                    },
                    PushKind::Disconnection => return None,
                    _ => continue,
                }
            },
        }
    }

    /// Whether the server answers a `PING` on this connection within `timeout` (on a
    /// cluster: the master that serves the channel). A connection that stalls (a
    /// partition, a black-holed proxy) delivers nothing and reports no error: only a
    /// round trip shows it is alive.
    pub(crate) async fn ping(&mut self, timeout: Duration) -> Result<(), CacheError> {
        let answered = match self {
            Self::Node { sink, .. } => tokio::time::timeout(timeout, sink.ping::<redis::Value>())
                .await
                .map(|r| r.map(drop)),
            Self::Cluster { con, route, .. } => {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(*route));
                tokio::time::timeout(timeout, con.route_command(redis::cmd("PING"), routing))
                    .await
                    .map(|r| r.map(drop))
            }
        };
        match answered {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(CacheError::Timeout(timeout)),
        }
    }
}
