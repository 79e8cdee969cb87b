//! The backplane: invalidations travel between instances over Redis pub/sub.
//!
//! Every invalidation (a delete, a write-through store, a version bump, a flush, a new
//! generation) is published with the sender's instance id. Every other instance evicts the key from
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
//! So does a subscription whose Redis this instance cannot command (the tier's circuit
//! breaker is open, as when Redis is too slow): the other instances cannot publish to
//! it either, so silence no longer means "nothing changed".
//!
//! Messages a writer could not publish are not lost: the client's recovery queue
//! replays them once Redis answers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::Serialize;

use crate::client::holds::Holds;
use crate::client::tags::TagVersions;
use crate::client::versions::{Bumped, Versions};
use crate::tier::{Cache, L1Switch, RedisTier};
use crate::{CacheError, Key, Tag};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
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
    tags: Arc<TagVersions>,
    holds: Arc<Holds>,
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
        tags: Arc<TagVersions>,
        holds: Arc<Holds>,
    ) -> Self {
        switch.set(false);
        versions.set_trusted(false);
        let inner = Arc::new(Inner {
            instance: format!("{:016x}", rand::random::<u64>()),
            l2,
            l1,
            switch,
            versions,
            tags,
            holds,
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

    /// Times the subscription dropped.
    pub(crate) fn drops(&self) -> u64 {
        self.inner.drops.load(SeqCst)
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
        self.publish_bumped(Message::Versions, bumped).await
    }

    /// A strict write's first step: evict `key` and hold it until its release (the
    /// evict after the write).
    pub(crate) async fn publish_hold_key(&self, key: &Key) -> Result<(), CacheError> {
        self.publish(Message::HoldKey, key.as_str()).await
    }

    /// A strict write's first step on namespaces: learn the versions and hold the
    /// namespaces until their release (the versions after the write).
    pub(crate) async fn publish_hold_versions(&self, bumped: &Bumped) -> Result<(), CacheError> {
        self.publish_bumped(Message::HoldVersions, bumped).await
    }

    async fn publish_bumped(&self, kind: Message, bumped: &Bumped) -> Result<(), CacheError> {
        if bumped.is_empty() {
            return Ok(());
        }
        let body: Vec<String> = bumped
            .iter()
            .map(|(root, v)| format!("{root}={v}"))
            .collect();
        self.publish(kind, &body.join("\n")).await
    }

    /// Tags invalidated at sequence `seq`: `{seq}` then one tag a line.
    pub(crate) async fn publish_tags(
        &self,
        seq: u64,
        tags: &[Tag],
        hold: bool,
    ) -> Result<(), CacheError> {
        let mut body = seq.to_string();
        for t in tags {
            body.push('\n');
            body.push_str(t.as_str());
        }
        let kind = if hold {
            Message::HoldTags
        } else {
            Message::Tags
        };
        self.publish(kind, &body).await
    }

    pub(crate) async fn publish_flush(&self) -> Result<(), CacheError> {
        self.publish(Message::Flush, "").await
    }

    pub(crate) async fn publish_generation(&self, generation: u64) -> Result<(), CacheError> {
        self.publish(Message::Generation, &generation.to_string())
            .await
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
    /// Body: the new generation of the shared tier.
    Generation,
    /// Body: one key, evicted and held until an [`Message::Evict`] of it.
    HoldKey,
    /// Body: `root=version` lines, learnt and held until a [`Message::Versions`] of them.
    HoldVersions,
    /// Body: the tag sequence, then the tags invalidated at it, one a line.
    Tags,
    /// Body: as [`Message::Tags`], and the tags are held until a [`Message::Tags`] of them.
    HoldTags,
}

impl Message {
    fn as_str(self) -> &'static str {
        match self {
            Self::Evict => "evict",
            Self::Versions => "ver",
            Self::Flush => "flush",
            Self::Generation => "gen",
            Self::HoldKey => "hold",
            Self::HoldVersions => "hold-ver",
            Self::Tags => "tags",
            Self::HoldTags => "hold-tags",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Self::Evict,
            Self::Versions,
            Self::Flush,
            Self::Generation,
            Self::HoldKey,
            Self::HoldVersions,
            Self::Tags,
            Self::HoldTags,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

impl Inner {
    async fn on_connected(&self) {
        // Whatever reached L1 while this instance could not hear the others is suspect.
        if let Err(e) = self.l1.clear().await {
            tracing::warn!(error = %e, "L1 flush failed");
        }
        self.versions.forget();
        self.versions.set_trusted(true);
        self.tags.forget();
        self.tags.hear_from_now().await;
        self.connected.store(true, SeqCst);
        self.switch.set(true);
        tracing::info!(instance = %self.instance, "backplane subscribed: L1 in use");
    }

    async fn on_dropped(&self) {
        self.switch.set(false);
        // Releases may be lost now; L1 is bypassed and versions are read from Redis,
        // which the writers' second steps reach before they acknowledge.
        self.holds.clear();
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
            Some(kind @ (Message::Evict | Message::HoldKey)) => {
                let key = Key::from_wire(body);
                if kind == Message::HoldKey {
                    self.holds.hold_key(key.clone());
                }
                let _ = self.l1.invalidate(&key).await;
                if kind == Message::Evict {
                    self.holds.release_key(&key);
                }
            }
            Some(kind @ (Message::Versions | Message::HoldVersions)) => {
                for line in body.lines() {
                    if let Some((root, v)) = line.rsplit_once('=')
                        && let Ok(v) = v.parse()
                    {
                        if kind == Message::HoldVersions {
                            self.holds.hold_root(root);
                        }
                        self.versions.learn(root, v);
                        if kind == Message::Versions {
                            self.holds.release_root(root);
                        }
                    }
                }
            }
            Some(kind @ (Message::Tags | Message::HoldTags)) => {
                let mut lines = body.lines();
                let Some(seq) = lines.next().and_then(|l| l.parse::<u64>().ok()) else {
                    return;
                };
                let tags: Vec<Tag> = lines.filter_map(|l| Tag::new(l).ok()).collect();
                if kind == Message::HoldTags {
                    self.holds.hold_tags(&tags);
                }
                self.tags.learn(seq, &tags);
                if kind == Message::Tags {
                    self.holds.release_tags(&tags);
                }
            }
            Some(Message::Flush) => {
                self.versions.forget();
                let _ = self.l1.clear().await;
            }
            Some(Message::Generation) => {
                // Every L1 copy was read in an earlier generation.
                let _ = self.l1.clear().await;
            }
            None => tracing::debug!(kind, "unknown backplane message ignored"),
        }
    }
}

async fn subscribe_forever(weak: Weak<Inner>, l2: RedisTier) {
    let mut backoff = Duration::from_millis(20);
    loop {
        let subscribed = if l2.is_degraded() {
            Err(crate::CacheError::CircuitOpen(Duration::ZERO))
        } else {
            l2.subscribe(CONNECT_TIMEOUT).await
        };
        if let Ok(mut subscription) = subscribed {
            match weak.upgrade() {
                Some(inner) => inner.on_connected().await,
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
                        if l2.is_degraded() {
                            tracing::warn!("redis commands are failing: the backplane cannot vouch for L1");
                            break;
                        }
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
