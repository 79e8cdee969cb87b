//! A write's cache-side step in one round trip (the `WRITE_STEP` script): its keys
//! invalidated or stored, its namespaces and tags bumped, and the backplane message
//! that announces all of it published from inside the same script, with the counters
//! the step drew.
//!
//! On one server that is one script. On a Redis Cluster no script spans two slots: each
//! key is stepped on its own slot first (one script per key, sent together), then the
//! namespaces and tags on the prefix's slot, whose script publishes the message on the
//! sharded channel of that same slot (`SPUBLISH`). The keys go first so that an instance
//! that hears the message and reads the key again finds it already dropped.

use super::{GUARD_TTL, RedisTier, keys, scripts};
use crate::tier::L2Token;
use crate::{CacheError, Entry, Key, Tag, Ttl};

/// What a step makes of one key.
#[derive(Clone, Debug)]
pub(crate) enum KeyStep {
    /// Invalidate it: drop it and advance its guard.
    Invalidate,
    /// Store the writer's entry (write-through) unless a strict write holds the key or,
    /// with a `token`, someone invalidated it since; else invalidate it. Without a token
    /// (a create: nobody read the key but as "not found"), only a hold stops the store.
    Store {
        /// What the write's first step left.
        token: Option<L2Token>,
        /// The writer's entry.
        entry: Entry,
        /// Its TTL.
        ttl: Ttl,
    },
}

/// One step of a write, as Redis makes it.
#[derive(Debug)]
pub(crate) struct StepPlan<'a> {
    /// The keys it invalidates or (write-through) stores.
    pub(crate) keys: Vec<(&'a Key, KeyStep)>,
    /// The namespaces whose versions it bumps.
    pub(crate) roots: &'a [&'a str],
    /// The tags it invalidates (all at one new tag sequence).
    pub(crate) tags: &'a [Tag],
    /// The backplane message announcing it, which the script completes with the
    /// versions and the tag sequence it drew (`None`: nobody to tell).
    pub(crate) message: Option<&'a str>,
}

/// What a step did.
#[derive(Debug, Default)]
pub(crate) struct StepDone {
    /// Per key (in the plan's order): its state after the step, and whether the
    /// writer's entry was stored.
    pub(crate) keys: Vec<(L2Token, bool)>,
    /// Each namespace's new version, in the plan's order.
    pub(crate) versions: Vec<u64>,
    /// The tag sequence the tags were bumped to (0: no tags).
    pub(crate) tag_seq: u64,
}

/// The arguments of one key: the guard value seen (empty: invalidate; `*`: store
/// unless held), the envelope, its TTL (ms).
type KeyArgs = (String, Vec<u8>, u64);

impl RedisTier {
    /// Makes `plan` in one round trip (on a cluster: one per slot kind, see the module
    /// docs). `Err`: Redis was not reached, or not all of the step may have been made:
    /// the caller must make it again (every part of it is idempotent).
    pub(crate) async fn write_step(&self, plan: &StepPlan<'_>) -> Result<StepDone, CacheError> {
        let prefix = self.inner.prefix.clone().ok_or_else(|| {
            CacheError::Config("write steps need a key prefix (RedisTierBuilder::prefix)".into())
        })?;
        let generation = self.current_generation().await?;
        let mut args: Vec<KeyArgs> = Vec::with_capacity(plan.keys.len());
        for (_, how) in &plan.keys {
            args.push(match how {
                KeyStep::Invalidate => (String::new(), Vec::new(), 0),
                KeyStep::Store { token, entry, ttl } => {
                    let expires_ms = self.inner.clock.now_millis() + ttl.as_millis();
                    let (seen, generation) = match token {
                        Some(t) => (t.guard.to_string(), t.generation),
                        None => ("*".to_owned(), generation),
                    };
                    (
                        seen,
                        entry.to_envelope(expires_ms, generation),
                        ttl.as_millis(),
                    )
                }
            });
        }
        let keys: Vec<&Key> = plan.keys.iter().map(|(k, _)| *k).collect();
        let shared = Shared {
            prefix: &prefix,
            roots: plan.roots,
            tags: plan.tags,
            message: plan.message,
            command: self.publish_command(),
        };
        let (guards, versions, tag_seq) = if self.is_cluster() {
            let guards = if keys.is_empty() {
                Vec::new()
            } else {
                self.step_keys_apart(&keys, &args).await?
            };
            let nothing_shared =
                plan.roots.is_empty() && plan.tags.is_empty() && plan.message.is_none();
            let (versions, tag_seq) = if nothing_shared {
                (Vec::new(), 0)
            } else {
                self.step_shared(&shared).await?
            };
            (guards, versions, tag_seq)
        } else {
            self.step_at_once(&keys, &args, &shared).await?
        };
        if tag_seq > 0 {
            self.learn_tag_sequence(tag_seq);
        }
        let tag_seq_now = self.tag_sequence();
        let mut done = StepDone {
            keys: Vec::with_capacity(keys.len()),
            versions,
            tag_seq,
        };
        for (guard, stored) in guards {
            if stored {
                self.inner.stats.set();
            } else {
                self.inner.stats.delete();
            }
            done.keys.push((
                L2Token {
                    guard,
                    generation,
                    tag_seq: tag_seq_now,
                },
                stored,
            ));
        }
        Ok(done)
    }

    /// The whole step in one script (one server).
    async fn step_at_once(
        &self,
        keys: &[&Key],
        args: &[KeyArgs],
        shared: &Shared<'_>,
    ) -> Result<(Vec<(u64, bool)>, Vec<u64>, u64), CacheError> {
        let names = key_names(keys, Some(shared));
        let argv = shared.argv(keys.len(), args);
        let values: Vec<u64> = self
            .run("write_step", |mut con| async move {
                invocation(&names, &argv).invoke_async(&mut con).await
            })
            .await?;
        split(&values, keys.len(), shared.roots.len())
    }

    /// A cluster's keys, each on its own slot (sent together).
    async fn step_keys_apart(
        &self,
        keys: &[&Key],
        args: &[KeyArgs],
    ) -> Result<Vec<(u64, bool)>, CacheError> {
        let calls: Vec<(Vec<String>, Vec<Arg>)> = keys
            .iter()
            .zip(args)
            .map(|(key, a)| {
                let none = Shared::none();
                (
                    key_names(std::slice::from_ref(key), None),
                    none.argv(1, std::slice::from_ref(a)),
                )
            })
            .collect();
        let replies: Vec<Vec<u64>> = self
            .run("write_step", |con| async move {
                let calls = calls.iter().map(|(names, argv)| {
                    let mut con = con.clone();
                    async move { invocation(names, argv).invoke_async(&mut con).await }
                });
                futures::future::try_join_all(calls).await
            })
            .await?;
        let mut out = Vec::with_capacity(keys.len());
        for reply in &replies {
            out.extend(split(reply, 1, 0)?.0);
        }
        Ok(out)
    }

    /// A cluster's namespaces and tags, and the message, on the prefix's slot.
    async fn step_shared(&self, shared: &Shared<'_>) -> Result<(Vec<u64>, u64), CacheError> {
        let names = key_names(&[], Some(shared));
        let argv = shared.argv(0, &[]);
        let values: Vec<u64> = self
            .run("write_step", |mut con| async move {
                invocation(&names, &argv).invoke_async(&mut con).await
            })
            .await?;
        let (_, versions, seq) = split(&values, 0, shared.roots.len())?;
        Ok((versions, seq))
    }
}

/// The part of a step on the prefix's slot.
struct Shared<'a> {
    prefix: &'a str,
    roots: &'a [&'a str],
    tags: &'a [Tag],
    message: Option<&'a str>,
    command: &'static str,
}

impl Shared<'static> {
    /// Nothing on the prefix's slot (a cluster's part on a key's slot).
    fn none() -> Self {
        Shared {
            prefix: "",
            roots: &[],
            tags: &[],
            message: None,
            command: "PUBLISH",
        }
    }
}

/// One argument of the script: text, or an envelope's bytes.
enum Arg {
    Text(String),
    Bytes(Vec<u8>),
}

impl Shared<'_> {
    fn argv(&self, nkeys: usize, keys: &[KeyArgs]) -> Vec<Arg> {
        let (channel, message) = match self.message {
            Some(m) => (keys::channel(self.prefix), m.to_owned()),
            None => (String::new(), String::new()),
        };
        let mut argv = vec![
            Arg::Text(nkeys.to_string()),
            Arg::Text(self.roots.len().to_string()),
            Arg::Text(
                u64::try_from(GUARD_TTL.as_millis())
                    .unwrap_or(u64::MAX)
                    .to_string(),
            ),
            Arg::Text(rand::random::<u32>().to_string()),
            Arg::Text(self.command.to_owned()),
            Arg::Text(channel),
            Arg::Text(message),
        ];
        for (seen, envelope, ttl) in keys {
            argv.push(Arg::Text(seen.clone()));
            argv.push(Arg::Bytes(envelope.clone()));
            argv.push(Arg::Text(ttl.to_string()));
        }
        argv.extend(self.roots.iter().map(|r| Arg::Text((*r).to_owned())));
        argv.extend(self.tags.iter().map(|t| Arg::Text(t.as_str().to_owned())));
        argv
    }
}

/// The script's `KEYS`: each key with its guard and holds, then (with a shared part)
/// the tag versions, the tag sequence and the namespaces' counters.
fn key_names(keys: &[&Key], shared: Option<&Shared<'_>>) -> Vec<String> {
    let mut names = Vec::with_capacity(3 * keys.len() + 2);
    for key in keys {
        names.push(key.as_str().to_owned());
        names.push(keys::guard(key));
        names.push(keys::hold(key));
    }
    if let Some(shared) = shared {
        names.push(keys::tags(shared.prefix));
        names.push(keys::tag_sequence(shared.prefix));
        names.extend(shared.roots.iter().map(|r| keys::counter(r)));
    }
    names
}

fn invocation<'a>(names: &[String], argv: &[Arg]) -> redis::ScriptInvocation<'a> {
    let mut invocation = scripts::WRITE_STEP.prepare_invoke();
    for name in names {
        invocation.key(name);
    }
    for arg in argv {
        match arg {
            Arg::Text(t) => invocation.arg(t),
            Arg::Bytes(b) => invocation.arg(b),
        };
    }
    invocation
}

/// The script's reply: per key (guard, stored), then `roots` versions, then the tag
/// sequence.
type Split = (Vec<(u64, bool)>, Vec<u64>, u64);

fn split(values: &[u64], keys: usize, roots: usize) -> Result<Split, CacheError> {
    if values.len() != 2 * keys + roots + 1 {
        return Err(CacheError::Decode(format!(
            "write step: {} values for {keys} keys and {roots} namespaces",
            values.len()
        )));
    }
    let guards = values[..2 * keys]
        .chunks(2)
        .map(|p| (p[0], p[1] == 1))
        .collect();
    let versions = values[2 * keys..2 * keys + roots].to_vec();
    Ok((guards, versions, values[2 * keys + roots]))
}
