//! Strict writes' holds and the instances' L1 leases, as Redis keeps them (see
//! `keys.rs` for the names and `scripts.rs` for the scripts).
//!
//! A strict write *holds* what it touches from before it writes the source until after:
//! a held key refuses every fill, and a read of an entry carrying a held tag, or of a
//! held namespace, is a miss. The write and its backplane message are recorded in a
//! registry, so an instance that missed the message learns it when it renews its L1
//! lease. A hold ends when its write releases it, or after its TTL (a writer that died).

use std::time::Duration;

use super::step::KeyStep;
use super::{GUARD_TTL, RedisTier, keys, scripts};
use crate::tier::L2Token;
use crate::{CacheError, Key, Tag};

/// What a strict write holds, under one hold id.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HoldPlan<'a> {
    /// The write's hold id (unique across instances).
    pub(crate) id: &'a str,
    /// Namespaces whose versions the write bumps.
    pub(crate) roots: &'a [&'a str],
    /// Tags the write invalidates.
    pub(crate) tags: &'a [Tag],
    /// How long the hold lasts without its release.
    pub(crate) ttl: Duration,
}

/// What the first step of a strict write found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Held {
    /// The tag sequence the tags were bumped to (0: no tags).
    pub(crate) tag_seq: u64,
    /// Each namespace's new version, in the plan's order.
    pub(crate) versions: Vec<u64>,
    /// The instances holding an L1 lease, and how long each lease has left.
    pub(crate) leases: Vec<(String, Duration)>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A key, its guard and its holds: the keys of the scripts on one key's slot.
fn key_names(key: &Key) -> Vec<String> {
    vec![key.as_str().to_owned(), keys::guard(key), keys::hold(key)]
}

impl RedisTier {
    fn prefix_or_config(&self) -> Result<&str, CacheError> {
        self.inner.prefix.as_deref().ok_or_else(|| {
            CacheError::Config("strict writes need a key prefix (RedisTierBuilder::prefix)".into())
        })
    }

    /// A strict write's first step on `key`: hold it under `id` for `ttl` (every fill is
    /// refused meanwhile), advance its guard and drop it. Returns what a writer's store
    /// after the write is guarded by.
    pub(crate) async fn hold_key(
        &self,
        key: &Key,
        id: &str,
        ttl: Duration,
    ) -> Result<L2Token, CacheError> {
        let args = vec![
            ms(GUARD_TTL).to_string(),
            rand::random::<u32>().to_string(),
            id.to_owned(),
            ms(ttl).to_string(),
        ];
        let guard: u64 = self
            .eval("hold_key", &scripts::HOLD_KEY, key_names(key), args)
            .await?;
        self.inner.stats.delete();
        Ok(L2Token {
            guard,
            generation: self.current_generation().await?,
            tag_seq: self.tag_sequence(),
        })
    }

    /// A strict write's last step on `key`: release the hold `id`, and store or
    /// invalidate as `how` says. Returns whether the writer's entry was stored.
    pub(crate) async fn release_key(
        &self,
        key: &Key,
        id: &str,
        how: KeyStep,
    ) -> Result<bool, CacheError> {
        let names = key_names(key);
        let (id, fresh) = (id.to_owned(), rand::random::<u32>());
        let store = match how {
            KeyStep::Invalidate | KeyStep::Store { token: None, .. } => None,
            KeyStep::Store {
                token: Some(token),
                entry,
                ttl,
            } => {
                let expires_ms = self.inner.clock.now_millis() + ttl.as_millis();
                Some((
                    token.guard,
                    entry.to_envelope(expires_ms, token.generation),
                    ttl.as_millis(),
                ))
            }
        };
        // The envelope is bytes, not text: invoked by hand rather than through `eval`.
        let stored: i64 = self
            .run("release_key", |mut con| async move {
                let mut invocation = scripts::RELEASE_KEY.prepare_invoke();
                for name in &names {
                    invocation.key(name);
                }
                invocation.arg(ms(GUARD_TTL)).arg(fresh).arg(&id);
                if let Some((seen, envelope, ttl_ms)) = &store {
                    invocation.arg(seen.to_string()).arg(envelope).arg(ttl_ms);
                }
                invocation.invoke_async(&mut con).await
            })
            .await?;
        if stored == 1 {
            self.inner.stats.set();
        } else {
            self.inner.stats.delete();
        }
        Ok(stored == 1)
    }

    /// The keys of a step on namespaces and tags: the holds hash, the registry, (the
    /// leases,) the tag versions and sequence, then one counter per namespace.
    fn shared_keys(&self, roots: &[&str], with_leases: bool) -> Result<Vec<String>, CacheError> {
        let prefix = self.prefix_or_config()?;
        let mut names = vec![
            keys::held(prefix),
            keys::holds(prefix),
            keys::hold_messages(prefix),
        ];
        if with_leases {
            names.push(keys::leases(prefix));
        }
        names.push(keys::tags(prefix));
        names.push(keys::tag_sequence(prefix));
        names.extend(roots.iter().map(|r| keys::counter(r)));
        Ok(names)
    }

    /// A strict write's first step on namespaces and tags, and its announcement, in one
    /// round trip: bumps and holds `plan`'s namespaces and tags, records the write and
    /// `message` in the registry, publishes `message` to every instance, and returns the
    /// instances' L1 leases.
    pub(crate) async fn hold_shared(
        &self,
        plan: &HoldPlan<'_>,
        message: &str,
    ) -> Result<Held, CacheError> {
        let names = self.shared_keys(plan.roots, true)?;
        let channel = self.channel()?;
        let command = self.publish_command();
        let mut args: Vec<String> = vec![
            plan.id.to_owned(),
            ms(plan.ttl).to_string(),
            message.to_owned(),
            command.to_owned(),
            channel,
            plan.roots.len().to_string(),
        ];
        args.extend(plan.roots.iter().map(|r| (*r).to_owned()));
        args.extend(plan.tags.iter().map(|t| t.as_str().to_owned()));
        let values: Vec<redis::Value> = self
            .eval("hold", &scripts::HOLD_SHARED, names, args)
            .await?;
        let int = |v: &redis::Value| redis::from_redis_value_ref::<u64>(v).ok();
        let bad = || CacheError::Decode("hold: unexpected reply".into());
        let (Some(now), Some(tag_seq)) =
            (values.first().and_then(int), values.get(1).and_then(int))
        else {
            return Err(bad());
        };
        let roots = plan.roots.len();
        let versions: Vec<u64> = values
            .get(2..2 + roots)
            .ok_or_else(bad)?
            .iter()
            .map(|v| int(v).ok_or_else(bad))
            .collect::<Result<_, _>>()?;
        let mut leases = Vec::new();
        for pair in values[2 + roots..].chunks(2) {
            let [instance, until] = pair else {
                return Err(bad());
            };
            let instance: String = redis::from_redis_value_ref(instance).map_err(|_| bad())?;
            let until: f64 = redis::from_redis_value_ref(until).map_err(|_| bad())?;
            let left = (until as u64).saturating_sub(now);
            leases.push((instance, Duration::from_millis(left)));
        }
        if tag_seq > 0 {
            self.learn_tag_sequence(tag_seq);
        }
        Ok(Held {
            tag_seq,
            versions,
            leases,
        })
    }

    /// A strict write's last step on namespaces and tags: bumps them again, releases
    /// their holds and drops the write from the registry. Returns the tag sequence (0:
    /// no tags) and each namespace's new version.
    pub(crate) async fn release_shared(
        &self,
        plan: &HoldPlan<'_>,
    ) -> Result<(u64, Vec<u64>), CacheError> {
        let names = self.shared_keys(plan.roots, false)?;
        let mut args: Vec<String> = vec![plan.id.to_owned(), plan.roots.len().to_string()];
        args.extend(plan.roots.iter().map(|r| (*r).to_owned()));
        args.extend(plan.tags.iter().map(|t| t.as_str().to_owned()));
        let values: Vec<u64> = self
            .eval("release", &scripts::RELEASE_SHARED, names, args)
            .await?;
        let Some((&tag_seq, versions)) = values.split_first() else {
            return Err(CacheError::Decode("release: no reply".into()));
        };
        if versions.len() != plan.roots.len() {
            return Err(CacheError::Decode("release: versions missing".into()));
        }
        if tag_seq > 0 {
            self.learn_tag_sequence(tag_seq);
        }
        Ok((tag_seq, versions.to_vec()))
    }

    /// Renews `instance`'s L1 lease for `ttl` and returns the message of every strict
    /// write in progress.
    pub(crate) async fn renew_lease(
        &self,
        instance: &str,
        ttl: Duration,
    ) -> Result<Vec<String>, CacheError> {
        let prefix = self.prefix_or_config()?;
        let names = vec![
            keys::leases(prefix),
            keys::holds(prefix),
            keys::hold_messages(prefix),
        ];
        let args = vec![instance.to_owned(), ms(ttl).to_string()];
        let values: Vec<redis::Value> = self
            .eval("renew_lease", &scripts::RENEW_LEASE, names, args)
            .await?;
        Ok(values
            .iter()
            .skip(1)
            .filter_map(|v| redis::from_redis_value_ref::<String>(v).ok())
            .collect())
    }

    /// Gives `instance`'s L1 lease back (it stops using L1): strict writers stop waiting
    /// for it.
    pub(crate) async fn drop_lease(&self, instance: &str) -> Result<(), CacheError> {
        let leases = keys::leases(self.prefix_or_config()?);
        let instance = instance.to_owned();
        self.run("drop_lease", |mut con| async move {
            redis::cmd("ZREM")
                .arg(&leases)
                .arg(&instance)
                .query_async::<i64>(&mut con)
                .await
        })
        .await
        .map(drop)
    }
}
