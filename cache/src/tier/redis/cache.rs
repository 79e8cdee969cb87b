//! The [`Cache`] face of the Redis tier: entries, guarded stores, leases, the flush.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{GUARD_TTL, RedisTier, keys, scripts};
use crate::tier::Envelope;
use crate::tier::{Cache, FillToken, Hit, L2Token, TierKind};
use crate::{CacheError, Entry, Key, TierSnapshot, Ttl};

impl RedisTier {
    /// One pipelined trip: `GET` + `PTTL` per key, and the current generation. Per-key
    /// server errors (`WRONGTYPE`: someone stored a non-string under our key) are
    /// garbage, hence misses; so is an entry of another generation.
    async fn fetch(&self, keys: &[Key]) -> Result<Vec<Option<Hit>>, CacheError> {
        let names: Vec<String> = keys.iter().map(|k| k.as_str().to_owned()).collect();
        let generation_key = self.generation_key();
        let values = self
            .run("get", |mut con| async move {
                let mut pipe = redis::pipe();
                pipe.ignore_errors();
                for k in &names {
                    pipe.get(k).pttl(k);
                }
                if let Some(g) = &generation_key {
                    pipe.get(g);
                }
                pipe.query_async::<Vec<redis::Value>>(&mut con).await
            })
            .await?;
        let mut values = values.into_iter();
        let mut pairs = Vec::with_capacity(keys.len());
        for _ in keys {
            let value = values.next().unwrap_or(redis::Value::Nil);
            let pttl = values
                .next()
                .and_then(|v| redis::from_redis_value::<i64>(v).ok())
                .unwrap_or(-1);
            pairs.push((value, pttl));
        }
        let generation = match (self.generation_key(), values.next()) {
            (None, _) => 0,
            (Some(_), Some(v)) => match redis::from_redis_value::<u64>(v) {
                Ok(g) => {
                    self.learn_generation(g);
                    g
                }
                // Missing (a restart, an eviction) or garbage: start a new one.
                Err(_) => self.read_generation().await?,
            },
            (Some(_), None) => self.read_generation().await?,
        };
        Ok(keys
            .iter()
            .zip(pairs)
            .map(|(key, (value, pttl))| self.decode(key, value, pttl, generation))
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

    /// Runs one of the guarded-store scripts (`KEYS`: the key, its guard; `ARGV`: the
    /// guard value seen, the envelope, the TTL and the guard's TTL in ms).
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
        let guard_ms = u64::try_from(GUARD_TTL.as_millis()).unwrap_or(u64::MAX);
        let stored: i64 = self
            .run(op, |mut con| async move {
                script
                    .key(&k)
                    .key(&g)
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
        let mut hits = self.fetch(std::slice::from_ref(key)).await?;
        Ok(hits.pop().flatten())
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Hit>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.fetch(keys).await
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
        Ok(FillToken {
            l1: None,
            l2: guard.map(|guard| L2Token { guard, generation }),
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
        let pattern = format!("{prefix}:*");
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
            // Namespace version counters (`{prefix}:{namespace}:ver`) survive: a counter
            // that restarted could hand out a version whose old keys a slow fill in
            // flight is about to write.
            let keys: Vec<String> = keys
                .into_iter()
                .filter(|k| !keys::is_counter(&prefix, k))
                .collect();
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
