//! What a Redis Cluster changes: reads that span slots, and the flush.
//!
//! # Reads: entries first, then the counters
//!
//! On one server a read is one script that fetches the entries together with the
//! generation and the tag versions, atomically. On a cluster the entries live in their
//! own slots and the counters in the prefix's slot (see `keys.rs`), and no script can
//! span two slots. So a read takes two steps, in this order:
//!
//! 1. the entries, one `READ_ENTRIES` script per slot they fall in (sent together);
//! 2. then, once every entry is in, the generation, the tag sequence and the versions of
//!    the tags those entries carry, in one `READ_STATE` script on the prefix's slot.
//!
//! The order is what keeps it correct: the counters are read after the entries, so they
//! are at least as new as the entries. A generation or tag bump that finished before the
//! read began is seen by step 2 and the entry is refused; one that lands between the
//! steps refuses it too (a miss that was not needed, never a stale hit). Reading the
//! counters first would let a bump slip in between and an entry it should hide be
//! accepted.
//!
//! The cost: two round trips per read instead of one (plus one per extra slot, in
//! parallel, for a batch), and every read touches the master of the prefix's slot, the
//! one hot spot of the layout. Tags are checked here, in Rust, rather than in Lua.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo, Slot};

use super::cache::{Found, Status, Versioned};
use super::connection::Connection;
use super::{RedisTier, keys, scripts};
use crate::tier::Hit;
use crate::{CacheError, Entry, Key};

/// The counters a cluster read takes after its entries.
struct State {
    generation: u64,
    tag_seq: u64,
    /// Tag name → version, and whether a strict write holds it.
    versions: HashMap<String, (u64, bool)>,
    /// Per namespace root of the versioned keys read: its version and whether a strict
    /// write holds it.
    namespaces: Vec<(u64, bool)>,
}

impl RedisTier {
    /// A read on a cluster: entries, then counters (see the module docs).
    pub(super) async fn fetch_cluster(&self, keys: &[Key]) -> Result<Vec<Option<Hit>>, CacheError> {
        let mut found = self.read_entries(keys).await?;
        let Some(prefix) = self.inner.prefix.clone() else {
            return Ok(self.hits(keys, found, 0));
        };
        let tagged: Vec<Option<(u64, Vec<String>)>> = found
            .iter()
            .map(|f| match (&f.value, f.status) {
                (redis::Value::BulkString(b), Status::Fine) => {
                    Entry::from_envelope(Bytes::copy_from_slice(b))
                        .ok()
                        .and_then(|e| {
                            e.entry.tags().map(|t| {
                                let names = t.names().iter().map(|n| n.as_str().to_owned());
                                (t.as_of(), names.collect())
                            })
                        })
                }
                _ => None,
            })
            .collect();
        let names: BTreeSet<&str> = tagged
            .iter()
            .flatten()
            .flat_map(|(_, names)| names.iter().map(String::as_str))
            .collect();
        let versioned = Versioned::of(keys);
        let state = self.read_state(&prefix, &names, &versioned.roots).await?;
        self.learn_generation(state.generation);
        self.learn_tag_sequence(state.tag_seq);
        for (i, (f, tags)) in found.iter_mut().zip(&tagged).enumerate() {
            if let Some((as_of, names)) = tags
                && names.iter().any(|n| {
                    state
                        .versions
                        .get(n)
                        .is_some_and(|(v, held)| v > as_of || *held)
                })
            {
                f.status = Status::TagInvalidated;
            }
            // A versioned key whose namespace moved on, or is held, is a miss too.
            let c = versioned.counter[i];
            if c > 0
                && state
                    .namespaces
                    .get(c - 1)
                    .is_none_or(|(v, held)| *v != versioned.version[i] || *held)
            {
                f.status = Status::TagInvalidated;
            }
        }
        Ok(self.hits(keys, found, state.generation))
    }

    /// Bytes, PTTL and status of each key: one script per slot, sent together.
    async fn read_entries(&self, keys: &[Key]) -> Result<Vec<Found>, CacheError> {
        let mut slots: HashMap<Slot, Vec<usize>> = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            slots
                .entry(Slot::for_key(key.as_str()))
                .or_default()
                .push(i);
        }
        let names: Vec<String> = keys.iter().map(|k| k.as_str().to_owned()).collect();
        let groups: Vec<Vec<usize>> = slots.into_values().collect();
        let replies = self
            .run("get", |con| async move {
                let calls = groups.into_iter().map(|group| {
                    let mut con = con.clone();
                    let mut invocation = scripts::READ_ENTRIES.prepare_invoke();
                    for &i in &group {
                        invocation.key(&names[i]);
                    }
                    async move {
                        let values: Vec<redis::Value> = invocation.invoke_async(&mut con).await?;
                        Ok::<_, redis::RedisError>((group, values))
                    }
                });
                futures::future::try_join_all(calls).await
            })
            .await?;
        let mut found: Vec<Option<Found>> = (0..keys.len()).map(|_| None).collect();
        for (group, values) in replies {
            if values.len() != 3 * group.len() {
                return Err(CacheError::Decode(format!(
                    "read script: {} values for {} keys",
                    values.len(),
                    group.len()
                )));
            }
            let mut values = values.into_iter();
            let taken = Found::take(&mut values, group.len());
            for (i, f) in group.into_iter().zip(taken) {
                found[i] = Some(f);
            }
        }
        found
            .into_iter()
            .map(|f| f.ok_or_else(|| CacheError::Decode("read script: a key unanswered".into())))
            .collect()
    }

    /// The generation, tag sequence, the versions of the tags `names` and of the
    /// namespaces `roots`, and which of them strict writes hold, in one script on the
    /// prefix's slot.
    async fn read_state(
        &self,
        prefix: &str,
        names: &BTreeSet<&str>,
        roots: &[String],
    ) -> Result<State, CacheError> {
        let mut counters = vec![
            keys::generation(prefix),
            keys::tags(prefix),
            keys::tag_sequence(prefix),
            keys::held(prefix),
        ];
        counters.extend(roots.iter().map(|r| keys::counter(r)));
        let args: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let asked = args.len();
        let values: Vec<u64> = {
            let (args, roots) = (args.clone(), roots.to_vec());
            self.run("get", |mut con| async move {
                let mut invocation = scripts::READ_STATE.prepare_invoke();
                for name in &counters {
                    invocation.key(name);
                }
                invocation.arg(args.len());
                for name in &args {
                    invocation.arg(name);
                }
                for root in &roots {
                    invocation.arg(root);
                }
                invocation.invoke_async(&mut con).await
            })
            .await?
        };
        let [generation, tag_seq, rest @ ..] = values.as_slice() else {
            return Err(CacheError::Decode("read state: counters missing".into()));
        };
        if rest.len() != 2 * (asked + roots.len()) {
            return Err(CacheError::Decode("read state: versions missing".into()));
        }
        let pairs: Vec<(u64, bool)> = rest.chunks(2).map(|p| (p[0], p[1] == 1)).collect();
        Ok(State {
            generation: *generation,
            tag_seq: *tag_seq,
            versions: args
                .into_iter()
                .zip(pairs[..asked].iter().copied())
                .collect(),
            namespaces: pairs[asked..].to_vec(),
        })
    }

    /// The masters of the cluster (`host`, `port`), from `CLUSTER NODES`.
    async fn masters(&self) -> Result<Vec<(String, u16)>, CacheError> {
        let text: String = self
            .run("clear", |mut con| async move {
                redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(&mut con)
                    .await
            })
            .await?;
        Ok(text
            .lines()
            .filter_map(|line| {
                let mut fields = line.split(' ');
                let (_, address, flags) = (fields.next()?, fields.next()?, fields.next()?);
                let flags: Vec<&str> = flags.split(',').collect();
                if !flags.contains(&"master") || flags.iter().any(|f| f.starts_with("fail")) {
                    return None;
                }
                let address = address.split('@').next()?;
                let (host, port) = address.rsplit_once(':')?;
                Some((host.to_owned(), port.parse().ok()?))
            })
            .collect())
    }

    /// The admin flush on a cluster: `SCAN` + `UNLINK` of our entries on every master.
    pub(super) async fn clear_cluster(&self, prefix: &str) -> Result<(), CacheError> {
        for (host, port) in self.masters().await? {
            let mut cursor: u64 = 0;
            loop {
                let (pattern, host) = (keys::entries(prefix), host.clone());
                let (next, found): (u64, Vec<String>) = self
                    .run("clear", |con| async move {
                        let Connection::Cluster(mut con) = con else {
                            return Err(redis::RedisError::from((
                                redis::ErrorKind::Client,
                                "a per-node SCAN needs a cluster connection",
                            )));
                        };
                        let mut scan = redis::cmd("SCAN");
                        scan.arg(cursor)
                            .arg("MATCH")
                            .arg(&pattern)
                            .arg("COUNT")
                            .arg(500);
                        let route = SingleNodeRoutingInfo::ByAddress { host, port };
                        let reply = con
                            .route_command(scan, RoutingInfo::SingleNode(route))
                            .await?;
                        Ok(redis::from_redis_value(reply)?)
                    })
                    .await?;
                if !found.is_empty() {
                    // UNLINK of keys in several slots is split by slot by the connection.
                    self.run("clear", |mut con| async move {
                        redis::cmd("UNLINK")
                            .arg(&found)
                            .query_async::<()>(&mut con)
                            .await
                    })
                    .await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }
}
