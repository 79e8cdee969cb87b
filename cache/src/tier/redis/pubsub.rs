//! The backplane's transport: `PUBLISH` on the command connection, `SUBSCRIBE` on a
//! dedicated one, both on the channel `{prefix}:backplane`.

use std::time::Duration;

use futures::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};

use super::{RedisTier, keys};
use crate::CacheError;

impl RedisTier {
    fn channel(&self) -> Result<String, CacheError> {
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

    /// Publishes `message` to every instance subscribed under this tier's prefix.
    pub(crate) async fn publish(&self, message: &str) -> Result<(), CacheError> {
        let (channel, message) = (self.channel()?, message.to_owned());
        self.run("publish", |mut con| async move {
            redis::cmd("PUBLISH")
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
        let client = self.inner.client.clone();
        let made = tokio::time::timeout(timeout, async move {
            let (mut sink, stream) = client.get_async_pubsub().await?.split();
            sink.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(Subscription { sink, stream })
        })
        .await;
        match made {
            Ok(Ok(subscription)) => Ok(subscription),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(CacheError::Timeout(timeout)),
        }
    }
}

/// A live subscription: messages in, and a `PING` to prove the connection still answers.
pub(crate) struct Subscription {
    sink: PubSubSink,
    stream: PubSubStream,
}

impl Subscription {
    /// The next message's payload; `None` when the connection is gone.
    pub(crate) async fn next(&mut self) -> Option<Vec<u8>> {
        self.stream
            .next()
            .await
            .map(|msg| msg.get_payload_bytes().to_vec())
    }

    /// Whether the server answers a `PING` on this connection within `timeout`. A
    /// connection that stalls (a partition, a black-holed proxy) delivers nothing and
    /// reports no error: only a round trip shows it is alive.
    pub(crate) async fn ping(&mut self, timeout: Duration) -> Result<(), CacheError> {
        match tokio::time::timeout(timeout, self.sink.ping::<redis::Value>()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(CacheError::Timeout(timeout)),
        }
    }
}
