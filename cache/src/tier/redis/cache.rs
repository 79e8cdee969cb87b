//! The [`Cache`] face of the Redis tier: entries, guarded stores, leases, the flush.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{GUARD_TTL, RedisTier, keys, scripts};
use crate::stats::{Operation, Outcome};
use crate::tier::Envelope;
use crate::tier::{Cache, FillToken, Hit, L2Token, TierKind};
use crate::{CacheError, Entry, Key, TierSnapshot, Ttl};

/// What a read script says of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    /// A string (an entry to decode, or garbage the decoder will count).
    Fine,
    /// One of its tags was invalidated after its load began.
    TagInvalidated,
    /// Not a string at all (a list, a hash...).
    NotAString,
}

/// One entry as a read script returned it: its bytes (or nil), PTTL and status.
#[derive(Debug)]
pub(super) struct Found {
    pub(super) value: redis::Value,
    pub(super) pttl: i64,
    pub(super) status: Status,
}

impl Found {
    /// The next `n` triples (bytes, PTTL, status code) of a read script's reply.
    pub(super) fn take(values: &mut impl Iterator<Item = redis::Value>, n: usize) -> Vec<Self> {
        (0..n)
            .map(|_| {
                let (value, pttl, status) = (values.next(), values.next(), values.next());
                let int = |v: Option<redis::Value>, default| {
                    v.and_then(|v| redis::from_redis_value::<i64>(v).ok())
                        .unwrap_or(default)
                };
                let status = match int(status, 2) {
                    1 => Status::Fine,
                    0 => Status::TagInvalidated,
                    _ => Status::NotAString,
                };
                Self {
                    value: value.unwrap_or(redis::Value::Nil),
                    pttl: int(pttl, -1),
                    status,
                }
            })
            .collect()
    }
}

/// The namespace counters a read of versioned keys checks: per key the index (from 1)
/// of its namespace among `roots` (0: not versioned) and the version it was made at.
pub(super) struct Versioned {
    pub(super) counter: Vec<usize>,
    pub(super) version: Vec<u64>,
    pub(super) roots: Vec<String>,
}

impl Versioned {
    pub(super) fn of(keys: &[Key]) -> Self {
        let mut out = Self {
            counter: Vec::with_capacity(keys.len()),
            version: Vec::with_capacity(keys.len()),
            roots: Vec::new(),
        };
        for key in keys {
            match key.root_and_version() {
                (root, Some(v)) => {
                    let i = match out.roots.iter().position(|r| r == root) {
                        Some(i) => i,
                        None => {
                            out.roots.push(root.to_owned());
                            out.roots.len() - 1
                        }
                    };
                    out.counter.push(i + 1);
                    out.version.push(v);
                }
                (_, None) => {
                    out.counter.push(0);
                    out.version.push(0);
                }
            }
        }
        out
    }
}

impl RedisTier {
    /// One round trip (the `READ` script): per key its bytes and PTTL, whether its tags
    /// still hold, and the current generation and tag sequence. Garbage under a key (a
    /// list, foreign bytes), an entry of another generation, an entry one of whose tags
    /// was invalidated after its load began, one a strict write holds (a tag of it or its
    /// namespace) and one of a namespace version that is no longer current are all
    /// misses.
    async fn fetch(&self, keys: &[Key]) -> Result<Vec<Option<Hit>>, CacheError> {
        if self.inner.con.is_cluster() {
            return self.fetch_cluster(keys).await;
        }
        let Some(prefix) = self.inner.prefix.clone() else {
            return self.fetch_plain(keys).await;
        };
        let n = keys.len();
        let mut names: Vec<String> = keys.iter().map(|k| k.as_str().to_owned()).collect();
        names.push(keys::generation(&prefix));
        names.push(keys::tags(&prefix));
        names.push(keys::tag_sequence(&prefix));
        names.push(keys::held(&prefix));
        let versioned = Versioned::of(keys);
        names.extend(versioned.roots.iter().map(|r| keys::counter(r)));
        let values: Vec<redis::Value> = self
            .run("get", |mut con| async move {
                let mut invocation = scripts::READ.prepare_invoke();
                for name in &names {
                    invocation.key(name);
                }
                invocation.arg(n);
                for c in &versioned.counter {
                    invocation.arg(c);
                }
                for v in &versioned.version {
                    invocation.arg(v);
                }
                for root in &versioned.roots {
                    invocation.arg(root);
                }
                invocation.invoke_async(&mut con).await
            })
            .await?;
        if values.len() != 3 * n + 2 {
            return Err(CacheError::Decode(format!(
                "read script: {} values for {n} keys",
                values.len()
            )));
        }
        let mut values = values.into_iter();
        let found = Found::take(&mut values, n);
        let counter = |v: Option<redis::Value>| {
            v.and_then(|v| redis::from_redis_value::<u64>(v).ok())
                .ok_or_else(|| CacheError::Decode("read script: unreadable counter".into()))
        };
        let generation = counter(values.next())?;
        self.learn_generation(generation);
        self.learn_tag_sequence(counter(values.next())?);
        Ok(self.hits(keys, found, generation))
    }

    /// [`RedisTier::fetch`], timed: a hit when every key was found, else a miss (an
    /// error when it failed; an open breaker is not timed).
    async fn timed_fetch(&self, keys: &[Key]) -> Result<Vec<Option<Hit>>, CacheError> {
        let began = std::time::Instant::now();
        let fetched = self.fetch(keys).await;
        let outcome = match &fetched {
            Err(CacheError::CircuitOpen(_)) => return fetched,
            Err(_) => Outcome::Error,
            Ok(hits) if hits.iter().all(Option::is_some) => Outcome::Hit,
            Ok(_) => Outcome::Miss,
        };
        self.inner.stats.timed(Operation::Get, outcome, began);
        fetched
    }

    /// The hits among `found` (one per key, in order), entries of `generation` only.
    pub(super) fn hits(
        &self,
        keys: &[Key],
        found: Vec<Found>,
        generation: u64,
    ) -> Vec<Option<Hit>> {
        keys.iter()
            .zip(found)
            .map(|(key, found)| match found.status {
                Status::Fine => self.decode(key, found.value, found.pttl, generation),
                Status::TagInvalidated => {
                    self.inner.stats.miss();
                    tracing::trace!(key = %key, "an entry tag was invalidated: a miss");
                    None
                }
                Status::NotAString => {
                    self.inner.stats.decode_failure();
                    self.inner.stats.miss();
                    tracing::warn!(key = %key, "non-string value under a cache key: treated as a miss");
                    None
                }
            })
            .collect()
    }

    /// A tier without a prefix has no generation and no tags: `GET` + `PTTL` per key.
    async fn fetch_plain(&self, keys: &[Key]) -> Result<Vec<Option<Hit>>, CacheError> {
        let names: Vec<String> = keys.iter().map(|k| k.as_str().to_owned()).collect();
        let values = self
            .run("get", |mut con| async move {
                let mut pipe = redis::pipe();
                pipe.ignore_errors();
                for k in &names {
                    pipe.get(k).pttl(k);
                }
                pipe.query_async::<Vec<redis::Value>>(&mut con).await
            })
            .await?;
        let mut values = values.into_iter();
        Ok(keys
            .iter()
            .map(|key| {
                let value = values.next().unwrap_or(redis::Value::Nil);
                let pttl = values
                    .next()
                    .and_then(|v| redis::from_redis_value::<i64>(v).ok())
                    .unwrap_or(-1);
                self.decode(key, value, pttl, 0)
            })
            .collect())
    }

    fn decode(&self, key: &Key, value: redis::Value, pttl: i64, generation: u64) -> Option<Hit> {
        let inner = &self.inner;
        let bytes = match value {
            redis::Value::Nil => {
                inner.stats.miss();
                return None;
            }
            redis::Value::BulkString(b) => Bytes::from(b),
            other => {
                inner.stats.decode_failure();
                inner.stats.miss();
                tracing::warn!(key = %key, value = ?other, "non-string value under a cache key: treated as a miss");
                return None;
            }
        };
        match Entry::from_envelope(bytes) {
            Ok(envelope) if envelope.generation != generation => {
                inner.stats.miss();
                tracing::trace!(key = %key, "entry of an earlier generation: a miss");
                None
            }
            Ok(Envelope {
                entry, expires_ms, ..
            }) => {
                let ttl_left = if pttl > 0 {
                    Duration::from_millis(pttl.unsigned_abs())
                } else {
                    // No TTL on the key (written by someone else): trust the envelope.
                    Duration::from_millis(expires_ms.saturating_sub(inner.clock.now_millis()))
                };
                inner.stats.hit();
                Some(Hit {
                    entry,
                    tier: TierKind::L2,
                    ttl_left: Some(ttl_left),
                })
            }
            Err(e) => {
                inner.stats.decode_failure();
                inner.stats.miss();
                tracing::warn!(key = %key, error = %e, "undecodable entry in redis: treated as a miss");
                None
            }
        }
    }

    /// Runs one of the guarded-store scripts (`KEYS`: the key, its guard, its holds;
    /// `ARGV`: the guard value seen, the envelope, the TTL and the guard's TTL in ms).
    async fn store_if_unchanged(
        &self,
        op: &'static str,
        script: &'static redis::Script,
        key: &Key,
        entry: Entry,
        ttl: Ttl,
        token: &FillToken,
    ) -> Result<bool, CacheError> {
        let Some(seen) = token.l2 else {
            return Ok(false);
        };
        let expires_ms = self.inner.clock.now_millis() + ttl.as_millis();
        let bytes = entry.to_envelope(expires_ms, seen.generation);
        let seen = seen.guard;
        let (k, g, ms) = (key.as_str().to_owned(), keys::guard(key), ttl.as_millis());
        let h = keys::hold(key);
        let guard_ms = u64::try_from(GUARD_TTL.as_millis()).unwrap_or(u64::MAX);
        let stored: i64 = self
            .run(op, |mut con| async move {
                script
                    .key(&k)
                    .key(&g)
                    .key(&h)
                    .arg(seen.to_string())
                    .arg(bytes)
                    .arg(ms)
                    .arg(guard_ms)
                    .invoke_async(&mut con)
                    .await
            })
            .await?;
        if stored == 1 {
            self.inner.stats.set();
        }
        Ok(stored == 1)
    }
}

#[async_trait]
impl Cache for RedisTier {
    fn name(&self) -> &'static str {
        "l2"
    }

    async fn get(&self, key: &Key) -> Result<Option<Hit>, CacheError> {
        let mut hits = self.timed_fetch(std::slice::from_ref(key)).await?;
        Ok(hits.pop().flatten())
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Hit>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.timed_fetch(keys).await
    }

    async fn set(&self, key: &Key, entry: Entry, ttl: Ttl) -> Result<(), CacheError> {
        let expires_ms = self.inner.clock.now_millis() + ttl.as_millis();
        let bytes = entry.to_envelope(expires_ms, self.current_generation().await?);
        let k = key.as_str().to_owned();
        let ms = ttl.as_millis();
        self.run("set", |mut con| async move {
            redis::cmd("SET")
                .arg(&k)
                .arg(bytes)
                .arg("PX")
                .arg(ms)
                .query_async::<()>(&mut con)
                .await
        })
        .await?;
        self.inner.stats.set();
        Ok(())
    }

    async fn delete(&self, key: &Key) -> Result<(), CacheError> {
        let k = key.as_str().to_owned();
        self.run("delete", |mut con| async move {
            redis::cmd("UNLINK")
                .arg(&k)
                .query_async::<()>(&mut con)
                .await
        })
        .await?;
        self.inner.stats.delete();
        Ok(())
    }

    async fn fill_token(&self, key: &Key) -> Result<FillToken, CacheError> {
        let g = keys::guard(key);
        let value: Option<String> = self
            .run("fill_token", |mut con| async move {
                redis::cmd("GET").arg(&g).query_async(&mut con).await
            })
            .await?;
        // An unreadable counter (garbage) yields no token: no L2 fill until invalidated.
        let guard = match value {
            None => Some(0),
            Some(v) => v.parse().ok(),
        };
        let generation = self.current_generation().await?;
        let tag_seq = self.tag_sequence();
        Ok(FillToken {
            l1: None,
            l2: guard.map(|guard| L2Token {
                guard,
                generation,
                tag_seq,
            }),
        })
    }

    async fn set_if_unchanged(
        &self,
        key: &Key,
        entry: Entry,
        ttl: Ttl,
        token: &FillToken,
    ) -> Result<bool, CacheError> {
        self.store_if_unchanged(
            "set_if_unchanged",
            &scripts::FILL_IF_UNCHANGED,
            key,
            entry,
            ttl,
            token,
        )
        .await
    }

    async fn replace(
        &self,
        key: &Key,
        entry: Entry,
        ttl: Ttl,
        token: &FillToken,
    ) -> Result<bool, CacheError> {
        self.store_if_unchanged(
            "replace",
            &scripts::REPLACE_IF_UNCHANGED,
            key,
            entry,
            ttl,
            token,
        )
        .await
    }

    async fn invalidate(&self, key: &Key) -> Result<FillToken, CacheError> {
        let (k, g) = (key.as_str().to_owned(), keys::guard(key));
        let fresh = rand::random::<u32>();
        let guard_ms = u64::try_from(GUARD_TTL.as_millis()).unwrap_or(u64::MAX);
        let counter: u64 = self
            .run("invalidate", |mut con| async move {
                scripts::INVALIDATE
                    .key(&k)
                    .key(&g)
                    .arg(guard_ms)
                    .arg(fresh)
                    .invoke_async(&mut con)
                    .await
            })
            .await?;
        self.inner.stats.delete();
        Ok(FillToken {
            l1: None,
            l2: Some(L2Token {
                guard: counter,
                generation: self.current_generation().await?,
                tag_seq: self.tag_sequence(),
            }),
        })
    }

    async fn try_lease(&self, key: &Key, owner: &str, ttl: Ttl) -> Result<bool, CacheError> {
        let (l, o, ms) = (keys::lease(key), owner.to_owned(), ttl.as_millis());
        let set: Option<String> = self
            .run("try_lease", |mut con| async move {
                redis::cmd("SET")
                    .arg(&l)
                    .arg(&o)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .query_async(&mut con)
                    .await
            })
            .await?;
        Ok(set.is_some())
    }

    async fn release_lease(&self, key: &Key, owner: &str) -> Result<(), CacheError> {
        let (l, o) = (keys::lease(key), owner.to_owned());
        self.run("release_lease", |mut con| async move {
            scripts::RELEASE_LEASE
                .key(&l)
                .arg(&o)
                .invoke_async::<i64>(&mut con)
                .await
        })
        .await?;
        Ok(())
    }

    async fn clear(&self) -> Result<(), CacheError> {
        let Some(prefix) = self.inner.prefix.clone() else {
            return Err(CacheError::Config(
                "clearing the redis tier needs a key prefix (RedisTierBuilder::prefix)".into(),
            ));
        };
        if self.inner.con.is_cluster() {
            return self.clear_cluster(&prefix).await;
        }
        // Counters, guards and leases have other names (`keys.rs`): only entries match,
        // so the counters survive (a counter that restarted could hand out a version
        // whose old keys a slow fill in flight is about to write).
        let pattern = keys::entries(&prefix);
        let mut cursor: u64 = 0;
        // Each SCAN step is its own bounded operation: a big keyspace does not hit one timeout.
        loop {
            let p = pattern.clone();
            let (next, keys): (u64, Vec<String>) = self
                .run("clear", |mut con| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&p)
                        .arg("COUNT")
                        .arg(500)
                        .query_async(&mut con)
                        .await
                })
                .await?;
            if !keys.is_empty() {
                self.run("clear", |mut con| async move {
                    redis::cmd("UNLINK")
                        .arg(&keys)
                        .query_async::<()>(&mut con)
                        .await
                })
                .await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    fn stats(&self) -> Vec<TierSnapshot> {
        vec![self.inner.stats.snapshot("l2")]
    }

    fn record_decode_failure(&self, tier: TierKind) {
        if tier == TierKind::L2 {
            self.inner.stats.decode_failure();
        }
    }
}
