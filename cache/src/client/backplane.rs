//! The backplane: invalidations travel between instances over Redis pub/sub.
//!
//! Every invalidation (a delete, a write-through store, a version bump, a flush, a new
//! generation) is published with the sender's instance id; a write's step publishes one
//! message for all it did, from inside its script (`tier/redis/step.rs`). Every other instance evicts the key from
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
//!
//! # Leases and holds
//!
//! L1 also answers only under a lease: every [`PING_EVERY`] the backplane renews
//! this instance's lease in Redis ([`LEASE_TTL`]), after a `PING` proved the
//! subscription alive, and learns every strict write in progress. A strict write
//! publishes a *hold* of what it touches; each instance installs it, drops its L1
//! copies and then *acknowledges* it, and the writer writes the source once every
//! instance with a lease has acknowledged or its lease has run out (see
//! `client/strict.rs`). An instance whose lease lapsed empties L1 before it takes a new
//! one: it may have missed holds meanwhile.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::holds::{HOLD_TTL, Holds, Subjects};
use crate::client::lag::{Lag, sender_of, stamped};
use crate::client::tags::TagVersions;
use crate::client::versions::Versions;
use crate::tier::{Cache, L1Switch, RedisTier};
use crate::{CacheError, Key, Tag};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How often the subscriber proves its connection alive.
pub(crate) const PING_EVERY: Duration = Duration::from_millis(250);
/// How long a `PING` may take before the subscription counts as dropped.
pub(crate) const PING_TIMEOUT: Duration = Duration::from_millis(750);
/// How long an instance's L1 lease lasts in Redis once renewed (it is renewed every
/// [`PING_EVERY`], with the subscription's `PING`).
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(1);
/// How much sooner than Redis an instance takes its own lease to end: its clock and
/// Redis' may not run at exactly the same rate.
pub(crate) const LEASE_MARGIN: Duration = Duration::from_millis(100);

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
    /// Strict writes' holds this instance installed (heard or learnt at a renewal).
    pub holds: u64,
    /// Times its L1 lease lapsed before it was renewed (each one flushed L1).
    pub lease_lapses: u64,
    /// The time from sending each of this instance's messages to hearing it back.
    pub lag: crate::stats::HistogramSnapshot,
    /// The largest of those in the last minute or two.
    pub lag_max: Duration,
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
    holds_installed: AtomicU64,
    lease_lapses: AtomicU64,
    lag: Lag,
    /// Strict writes of this instance waiting for acknowledgements: hold id → who acked.
    acks: Mutex<HashMap<String, Arc<AckWait>>>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The acknowledgements one strict write is waiting for.
#[derive(Debug, Default)]
pub(crate) struct AckWait {
    acked: Mutex<HashSet<String>>,
    arrived: tokio::sync::Notify,
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
        switch.require_lease();
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
            holds_installed: AtomicU64::new(0),
            lease_lapses: AtomicU64::new(0),
            lag: Lag::default(),
            acks: Mutex::default(),
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
            holds: i.holds_installed.load(SeqCst),
            lease_lapses: i.lease_lapses.load(SeqCst),
            lag: i.lag.histogram(),
            lag_max: i.lag.recent_max(),
        }
    }

    /// Stops subscribing, stops using L1 and gives the L1 lease back, so strict writers
    /// elsewhere stop waiting for this instance.
    pub(crate) async fn close(&self) {
        if let Ok(mut task) = self.inner.task.lock()
            && let Some(task) = task.take()
        {
            task.abort();
        }
        self.inner.switch.set(false);
        self.inner.switch.require_lease();
        self.inner.connected.store(false, SeqCst);
        if let Err(e) = self.inner.l2.drop_lease(&self.inner.instance).await {
            tracing::debug!(error = %e, "L1 lease not given back: it runs out by itself");
        }
    }

    /// Starts collecting the acknowledgements of the strict write `id` (before its hold
    /// is published, so none is missed).
    pub(crate) fn expect_acks(&self, id: &str) -> Arc<AckWait> {
        let wait = Arc::new(AckWait::default());
        lock(&self.inner.acks).insert(id.to_owned(), wait.clone());
        wait
    }

    /// The acknowledgements collected for `id`, if they are being collected.
    pub(crate) fn acks_of(&self, id: &str) -> Option<Arc<AckWait>> {
        lock(&self.inner.acks).get(id).cloned()
    }

    /// Stops collecting them.
    pub(crate) fn forget_acks(&self, id: &str) {
        lock(&self.inner.acks).remove(id);
    }

    /// Publishes a finished `message` (one of [`hold_message`] or [`release_message`]).
    pub(crate) async fn publish_message(&self, message: &str) -> Result<(), CacheError> {
        self.inner.l2.publish(message).await?;
        self.inner.published.fetch_add(1, SeqCst);
        Ok(())
    }

    /// The message of a write's step that invalidates `keys` and `tags` (and bumps
    /// namespaces): `k {key}` and `t {tag}` lines, to which the step's script appends
    /// what it drew, an `r {root}={version}` line per namespace and `s {seq}` for the
    /// tags (see `tier/redis/step.rs`). It is published from inside the step.
    pub(crate) fn step_message(&self, keys: &[Key], tags: &[Tag]) -> String {
        let subjects = Subjects {
            keys: keys.to_vec(),
            roots: Vec::new(),
            tags: tags.to_vec(),
        };
        let mut body = String::new();
        subject_lines(&mut body, &subjects, &[]);
        let body = body.strip_prefix('\n').unwrap_or(&body);
        message(&self.inner.instance, Message::Write, body)
    }

    /// Counts a message a write's step published from inside its script.
    pub(crate) fn count_published(&self) {
        self.inner.published.fetch_add(1, SeqCst);
    }

    pub(crate) async fn publish_flush(&self) -> Result<(), CacheError> {
        self.publish(Message::Flush, "").await
    }

    pub(crate) async fn publish_generation(&self, generation: u64) -> Result<(), CacheError> {
        self.publish(Message::Generation, &generation.to_string())
            .await
    }

    async fn publish(&self, kind: Message, body: &str) -> Result<(), CacheError> {
        self.publish_message(&message(&self.inner.instance, kind, body))
            .await
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn message(sender: &str, kind: Message, body: &str) -> String {
    format!("{}\n{}\n{body}", stamped(sender), kind.as_str())
}

/// The message by which `sender` holds `subjects` for the strict write `id`: the id,
/// then `k {key}`, `r {root}` and `t {tag}` lines.
pub(crate) fn hold_message(sender: &str, id: &str, subjects: &Subjects) -> String {
    let mut body = id.to_owned();
    subject_lines(&mut body, subjects, &[]);
    message(sender, Message::Hold, &body)
}

/// The message by which `sender` releases the hold `id` once the source was written:
/// the subjects with the namespaces' new `versions` (`r {root}={version}`, in order)
/// and, for tags, the sequence they were bumped to (`s {seq}`).
pub(crate) fn release_message(
    sender: &str,
    id: &str,
    subjects: &Subjects,
    versions: &[u64],
    tag_seq: u64,
) -> String {
    let mut body = id.to_owned();
    subject_lines(&mut body, subjects, versions);
    if tag_seq > 0 {
        body.push_str(&format!("\ns {tag_seq}"));
    }
    message(sender, Message::Release, &body)
}

fn subject_lines(body: &mut String, subjects: &Subjects, versions: &[u64]) {
    for k in &subjects.keys {
        body.push_str("\nk ");
        body.push_str(k.as_str());
    }
    for (i, r) in subjects.roots.iter().enumerate() {
        body.push_str("\nr ");
        body.push_str(r);
        if let Some(v) = versions.get(i) {
            body.push_str(&format!("={v}"));
        }
    }
    for t in &subjects.tags {
        body.push_str("\nt ");
        body.push_str(t.as_str());
    }
}

/// What a hold or release message says.
struct Announced<'a> {
    id: &'a str,
    subjects: Subjects,
    /// Namespace roots and their new versions (a release).
    versions: Vec<(String, u64)>,
    /// The sequence the tags were bumped to (a release; 0: none).
    tag_seq: u64,
}

/// Reads a hold or release body.
fn parse_subjects(body: &str) -> Option<Announced<'_>> {
    let mut lines = body.lines();
    let id = lines.next().filter(|id| !id.is_empty())?;
    parse_lines(id, lines)
}

/// Reads the subject lines of a hold, a release or a write's step (empty ones skipped).
fn parse_lines<'a>(id: &'a str, lines: std::str::Lines<'_>) -> Option<Announced<'a>> {
    let (mut subjects, mut versions, mut seq) = (Subjects::default(), Vec::new(), 0);
    for line in lines.filter(|l| !l.is_empty()) {
        let (kind, rest) = line.split_once(' ')?;
        match kind {
            "k" => subjects.keys.push(Key::from_wire(rest)),
            "r" => match rest.rsplit_once('=') {
                Some((root, v)) => {
                    subjects.roots.push(root.to_owned());
                    versions.push((root.to_owned(), v.parse().ok()?));
                }
                None => subjects.roots.push(rest.to_owned()),
            },
            "t" => subjects.tags.push(Tag::new(rest).ok()?),
            "s" => seq = rest.parse().ok()?,
            _ => return None,
        }
    }
    Some(Announced {
        id,
        subjects,
        versions,
        tag_seq: seq,
    })
}

impl AckWait {
    /// Waits until every instance of `leases` (instance, lease left when the hold was
    /// published; `published` is the moment the reply came, so each lease ends no later
    /// than `published + left`) has acknowledged, or its lease has run out.
    pub(crate) async fn wait(&self, leases: &[(String, Duration)], published: Instant) {
        loop {
            // Registered before looking, so an acknowledgement in between wakes us.
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let now = Instant::now();
            let next = {
                let acked = lock(&self.acked);
                leases
                    .iter()
                    .filter(|(instance, _)| !acked.contains(instance))
                    .map(|(_, left)| published + *left + LEASE_END_SLACK)
                    .filter(|end| *end > now)
                    .min()
            };
            let Some(next) = next else {
                return;
            };
            let _ = tokio::time::timeout_at(next.into(), arrived).await;
        }
    }

    fn acked_by(&self, instance: &str) {
        lock(&self.acked).insert(instance.to_owned());
        self.arrived.notify_waiters();
    }
}

/// How much later than the lease's end in Redis a writer stops waiting for an instance:
/// the time Redis took to answer is already on the writer's side of the clock.
const LEASE_END_SLACK: Duration = Duration::from_millis(5);

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
    /// Body: the tag sequence, then the tags invalidated at it, one a line.
    Tags,
    /// Body: a strict write's hold id and what it holds (see [`hold_message`]).
    Hold,
    /// Body: the same write's release, with what it bumped (see [`release_message`]).
    Release,
    /// Body: what a write's step invalidated and bumped (see [`Backplane::step_message`]).
    Write,
    /// Body: the hold id this instance installed.
    Ack,
}

impl Message {
    fn as_str(self) -> &'static str {
        match self {
            Self::Evict => "evict",
            Self::Versions => "ver",
            Self::Flush => "flush",
            Self::Generation => "gen",
            Self::Tags => "tags",
            Self::Hold => "hold",
            Self::Release => "release",
            Self::Write => "write",
            Self::Ack => "ack",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Self::Evict,
            Self::Versions,
            Self::Flush,
            Self::Generation,
            Self::Tags,
            Self::Hold,
            Self::Release,
            Self::Write,
            Self::Ack,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

impl Inner {
    /// Forgets what this instance learnt while it could hear the others: L1, versions,
    /// tags, holds (the holds in progress come back with the next renewal).
    async fn start_over(&self) {
        if let Err(e) = self.l1.clear().await {
            tracing::warn!(error = %e, "L1 flush failed");
        }
        self.versions.forget();
        self.tags.forget();
        self.holds.clear();
    }

    async fn on_connected(self: &Arc<Self>) {
        // Whatever reached L1 while this instance could not hear the others is suspect.
        self.start_over().await;
        self.versions.set_trusted(true);
        self.tags.hear_from_now().await;
        self.connected.store(true, SeqCst);
        self.switch.set(true);
        self.renew().await;
        tracing::info!(instance = %self.instance, "backplane subscribed: L1 in use");
    }

    async fn on_dropped(&self) {
        self.switch.set(false);
        self.switch.require_lease();
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

    /// Renews the L1 lease, installing (and acknowledging) every strict write in
    /// progress first; after a lapse, L1 starts empty.
    async fn renew(self: &Arc<Self>) {
        let sent = Instant::now();
        let holds = match self.l2.renew_lease(&self.instance, LEASE_TTL).await {
            Ok(holds) => holds,
            Err(e) => {
                tracing::debug!(error = %e, "L1 lease not renewed");
                return;
            }
        };
        if self.switch.lapsed() {
            // Holds may have come and gone unheard while L1 had no lease.
            self.lease_lapses.fetch_add(1, SeqCst);
            self.start_over().await;
        }
        // (Without a lease yet, L1 was emptied when it was taken away: on a drop, or
        // when the subscription came up.)
        for message in holds {
            let mut parts = message.splitn(3, '\n');
            if let (Some(sender), Some("hold"), Some(body)) =
                (parts.next(), parts.next(), parts.next())
            {
                let (sender, _) = sender_of(sender);
                // Our own writes' holds too: a reconnect or a lapse cleared them.
                self.install_hold(body, sender != self.instance).await;
            }
        }
        self.switch.lease_until(sent + LEASE_TTL - LEASE_MARGIN);
    }

    /// Installs a strict write's hold, drops the L1 copies it concerns, then
    /// acknowledges it (if `ack`: another instance's write).
    async fn install_hold(self: &Arc<Self>, body: &str, ack: bool) {
        let Some(Announced { id, subjects, .. }) = parse_subjects(body) else {
            tracing::debug!("malformed hold ignored");
            return;
        };
        let (keys, roots, tags) = (
            subjects.keys.clone(),
            subjects.roots.clone(),
            subjects.tags.clone(),
        );
        if self.holds.install(id, subjects, HOLD_TTL) {
            self.holds_installed.fetch_add(1, SeqCst);
        }
        for key in &keys {
            let _ = self.l1.invalidate(key).await;
        }
        // Should the release never arrive, what the write bumped is read from Redis
        // once the hold lapses, not taken from what this instance knew before.
        for root in &roots {
            self.versions.forget_root(root);
        }
        self.tags.forget_tags(&tags);
        if !ack {
            return;
        }
        let ack = message(&self.instance, Message::Ack, id);
        let this = self.clone();
        tokio::spawn(async move {
            if this.l2.publish(&ack).await.is_ok() {
                this.published.fetch_add(1, SeqCst);
            }
        });
    }

    /// What a write changed: its keys leave L1, its namespaces' new versions and its
    /// tags' sequence are learnt.
    async fn learn_write(&self, subjects: &Subjects, versions: Vec<(String, u64)>, seq: u64) {
        for key in &subjects.keys {
            let _ = self.l1.invalidate(key).await;
        }
        for (root, v) in versions {
            self.versions.learn(&root, v);
        }
        if seq > 0 {
            self.tags.learn(seq, &subjects.tags);
        }
    }

    async fn on_message(self: &Arc<Self>, payload: &[u8]) {
        let Ok(text) = std::str::from_utf8(payload) else {
            return;
        };
        let mut parts = text.splitn(3, '\n');
        let (Some(sender), Some(kind), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            tracing::debug!("malformed backplane message ignored");
            return;
        };
        let (sender, sent) = sender_of(sender);
        if sender == self.instance {
            if let Some(sent) = sent {
                self.lag.heard(sent);
            }
            return;
        }
        self.received.fetch_add(1, SeqCst);
        match Message::parse(kind) {
            Some(Message::Evict) => {
                let key = Key::from_wire(body);
                let _ = self.l1.invalidate(&key).await;
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
            Some(Message::Tags) => {
                let mut lines = body.lines();
                let Some(seq) = lines.next().and_then(|l| l.parse::<u64>().ok()) else {
                    return;
                };
                let tags: Vec<Tag> = lines.filter_map(|l| Tag::new(l).ok()).collect();
                self.tags.learn(seq, &tags);
            }
            Some(Message::Hold) => self.install_hold(body, true).await,
            Some(Message::Release) => {
                let Some(Announced {
                    id,
                    subjects,
                    versions,
                    tag_seq: seq,
                }) = parse_subjects(body)
                else {
                    tracing::debug!("malformed release ignored");
                    return;
                };
                // What the write changed is learnt before its hold ends.
                self.learn_write(&subjects, versions, seq).await;
                self.holds.release(id);
            }
            Some(Message::Write) => {
                let Some(Announced {
                    subjects,
                    versions,
                    tag_seq: seq,
                    ..
                }) = parse_lines("", body.lines())
                else {
                    tracing::debug!("malformed write step ignored");
                    return;
                };
                self.learn_write(&subjects, versions, seq).await;
            }
            Some(Message::Ack) => {
                if let Some(wait) = lock(&self.acks).get(body) {
                    wait.acked_by(sender);
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
                        // The subscription answered: every message published before the
                        // PING has arrived, so the lease may go on.
                        let Some(inner) = weak.upgrade() else { return };
                        inner.renew().await;
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
