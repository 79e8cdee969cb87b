//! The backplane: invalidations travel between instances over Redis pub/sub.
//!
//! Every invalidation (a delete, a write-through store, a version bump, a flush) is
//! published with the sender's instance id. Every other instance evicts the key from
//! its L1 (advancing the key's fill guard), or learns the new versions. Pub/sub
//! delivers at most once and only to connected subscribers, so while the subscription
//! is down this instance cannot hear invalidations: it flushes its L1 and bypasses it
//! (reads and writes go to L2 only) until it has resubscribed, and forgets its copy of
//! the versions (they are read from Redis meanwhile). This is the rule Redis documents
//! for client-side caching.
//!
//! A subscription can also stall without an error (a partition, a black-holed proxy):
//! it then delivers nothing. So the subscriber `PING`s its own connection every
//! [`PING_EVERY`]; one that does not answer within [`PING_TIMEOUT`] counts as dropped.
//!
//! Messages a writer could not publish are not lost: the client's recovery queue
//! replays them once Redis answers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::Serialize;

use crate::client::versions::{Bumped, Versions};
use crate::tier::{Cache, L1Switch, RedisTier};
use crate::{CacheError, Key};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often the subscriber proves its connection alive.
pub(crate) const PING_EVERY: Duration = Duration::from_millis(250);
/// How long a `PING` may take before the subscription counts as dropped.
pub(crate) const PING_TIMEOUT: Duration = Duration::from_millis(750);

/// Counters of the backplane at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BackplaneSnapshot {
    /// Whether the subscription is up (L1 in use).
    pub connected: bool,
    /// Messages published by this instance.
    pub published: u64,
    /// Messages received from other instances.
    pub received: u64,
    /// Times the subscription dropped or stalled (each one flushed L1).
    pub drops: u64,
}

struct Inner {
    instance: String,
    l2: RedisTier,
    l1: Arc<dyn Cache>,
    switch: L1Switch,
    versions: Arc<Versions>,
    connected: AtomicBool,
    published: AtomicU64,
    received: AtomicU64,
    drops: AtomicU64,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut task) = self.task.lock()
            && let Some(task) = task.take()
        {
            task.abort();
        }
    }
}

/// A handle on this instance's backplane. Cheap to clone; the subscription stops when
/// the last handle is dropped.
#[derive(Clone)]
pub(crate) struct Backplane {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Backplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backplane")
            .field("instance", &self.inner.instance)
            .field("connected", &self.inner.connected.load(SeqCst))
            .finish_non_exhaustive()
    }
}

impl Backplane {
    /// Starts subscribing in the background. L1 stays bypassed until the subscription is up.
    pub(crate) fn start(
        l1: Arc<dyn Cache>,
        l2: RedisTier,
        switch: L1Switch,
        versions: Arc<Versions>,
    ) -> Self {
        switch.set(false);
        versions.set_trusted(false);
        let inner = Arc::new(Inner {
            instance: format!("{:016x}", rand::random::<u64>()),
            l2,
            l1,
            switch,
            versions,
            connected: AtomicBool::new(false),
            published: AtomicU64::new(0),
            received: AtomicU64::new(0),
            drops: AtomicU64::new(0),
            task: std::sync::Mutex::new(None),
        });
        let task = tokio::spawn(subscribe_forever(Arc::downgrade(&inner), inner.l2.clone()));
        if let Ok(mut slot) = inner.task.lock() {
            *slot = Some(task);
        }
        Self { inner }
    }

    pub(crate) fn instance(&self) -> &str {
        &self.inner.instance
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.inner.connected.load(SeqCst)
    }

    pub(crate) fn snapshot(&self) -> BackplaneSnapshot {
        let i = &self.inner;
        BackplaneSnapshot {
            connected: i.connected.load(SeqCst),
            published: i.published.load(SeqCst),
            received: i.received.load(SeqCst),
            drops: i.drops.load(SeqCst),
        }
    }

    pub(crate) async fn publish_evict(&self, key: &Key) -> Result<(), CacheError> {
        self.publish(Message::Evict, key.as_str()).await
    }

    /// One message for every namespace of a bump: `root=version` lines.
    pub(crate) async fn publish_versions(&self, bumped: &Bumped) -> Result<(), CacheError> {
        if bumped.is_empty() {
            return Ok(());
        }
        let body: Vec<String> = bumped
            .iter()
            .map(|(root, v)| format!("{root}={v}"))
            .collect();
        self.publish(Message::Versions, &body.join("\n")).await
    }

    pub(crate) async fn publish_flush(&self) -> Result<(), CacheError> {
        self.publish(Message::Flush, "").await
    }

    async fn publish(&self, kind: Message, body: &str) -> Result<(), CacheError> {
        let msg = format!("{}\n{}\n{body}", self.inner.instance, kind.as_str());
        self.inner.l2.publish(&msg).await?;
        self.inner.published.fetch_add(1, SeqCst);
        Ok(())
    }
}

/// The kinds of backplane message: `{sender}\n{kind}\n{body}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Message {
    /// Body: one key.
    Evict,
    /// Body: `root=version` lines.
    Versions,
    /// No body.
    Flush,
}

impl Message {
    fn as_str(self) -> &'static str {
        match self {
            Self::Evict => "evict",
            Self::Versions => "ver",
            Self::Flush => "flush",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Evict, Self::Versions, Self::Flush]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

impl Inner {
    fn on_connected(&self) {
        self.versions.forget();
        self.versions.set_trusted(true);
        self.connected.store(true, SeqCst);
        self.switch.set(true);
        tracing::info!(instance = %self.instance, "backplane subscribed: L1 in use");
    }

    async fn on_dropped(&self) {
        self.switch.set(false);
        self.connected.store(false, SeqCst);
        self.versions.set_trusted(false);
        self.drops.fetch_add(1, SeqCst);
        if let Err(e) = self.l1.clear().await {
            tracing::warn!(error = %e, "L1 flush failed");
        }
        tracing::warn!(instance = %self.instance, "backplane subscription lost: L1 flushed and bypassed");
    }

    async fn on_message(&self, payload: &[u8]) {
        let Ok(text) = std::str::from_utf8(payload) else {
            return;
        };
        let mut parts = text.splitn(3, '\n');
        let (Some(sender), Some(kind), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            tracing::debug!("malformed backplane message ignored");
            return;
        };
        if sender == self.instance {
            return;
        }
        self.received.fetch_add(1, SeqCst);
        match Message::parse(kind) {
            Some(Message::Evict) => {
                let _ = self.l1.invalidate(&Key::from_wire(body)).await;
            }
            Some(Message::Versions) => {
                for line in body.lines() {
                    if let Some((root, v)) = line.rsplit_once('=')
                        && let Ok(v) = v.parse()
                    {
                        self.versions.learn(root, v);
                    }
                }
            }
            Some(Message::Flush) => {
                self.versions.forget();
                let _ = self.l1.clear().await;
            }
            None => tracing::debug!(kind, "unknown backplane message ignored"),
        }
    }
}

async fn subscribe_forever(weak: Weak<Inner>, l2: RedisTier) {
    let mut backoff = Duration::from_millis(20);
    loop {
        if let Ok(mut subscription) = l2.subscribe(CONNECT_TIMEOUT).await {
            match weak.upgrade() {
                Some(inner) => inner.on_connected(),
                None => return,
            }
            backoff = Duration::from_millis(20);
            let mut ping = tokio::time::interval(PING_EVERY);
            ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    msg = subscription.next() => {
                        let Some(payload) = msg else { break };
                        let Some(inner) = weak.upgrade() else { return };
                        inner.on_message(&payload).await;
                    }
                    _ = ping.tick() => {
                        if let Err(e) = subscription.ping(PING_TIMEOUT).await {
                            tracing::warn!(error = %e, "backplane connection does not answer");
                            break;
                        }
                    }
                }
            }
            match weak.upgrade() {
                Some(inner) => inner.on_dropped().await,
                None => return,
            }
        }
        if weak.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
