//! Every Redis key suffix and channel name the library uses, built in one place, and
//! the ACL key patterns that cover them ([`acl_patterns`], for `acl.rs`).
//!
//! | what | Redis name | slot (Redis Cluster) |
//! |------|------------|------|
//! | an entry | `{key}` (see [`crate::KeyBuilder`]), e.g. `app:pet:id:1` | the key's own |
//! | its fill-race guard | `{app:pet:id:1}:guard` | the entry's |
//! | its loading lease | `{app:pet:id:1}:lease` | the entry's |
//! | the strict writes holding it (a sorted set: hold id → expiry) | `{app:pet:id:1}:hold` | the entry's |
//! | a version counter (namespace or tag) | `{app}:pet:ver` for the root `app:pet` | the prefix's |
//! | the generation of every entry | `{app}:gen` | the prefix's |
//! | the version of every tag (a hash: tag → sequence) | `{app}:tags` | the prefix's |
//! | the tag sequence | `{app}:tagseq` | the prefix's |
//! | the backplane channel | `{app}:backplane` | the prefix's |
//! | the namespaces and tags strict writes hold (a hash: `r:{root}` / `t:{tag}` → `id=expiry,…`) | `{app}:held` | the prefix's |
//! | the strict writes in progress (a sorted set: hold id → expiry) and their messages (a hash) | `{app}:holds`, `{app}:holdmsg` | the prefix's |
//! | the L1 leases of the instances (a sorted set: instance → expiry) | `{app}:leases` | the prefix's |
//! | a benchmark's raw value ([`crate::tier::RedisTier::set_raw`]) | `{app}:raw:{name}` | its own |
//! | a client's rate-limit window | `{app:rate:<xxh3-128 hex of the client key>}` | the client's |
//!
//! The braces are Redis Cluster hash tags: only the part inside them picks the slot.
//! Entry keys never contain braces ([`crate::KeyBuilder`] allows `a-z 0-9 _ - .` and
//! `:`), so an entry hashes on its whole name and its guard and lease, which wrap that
//! name in braces, land in the same slot: the guarded-store and invalidate scripts touch
//! one slot. Entries spread over the cluster; every counter of a prefix (namespace
//! versions, generation, tag versions, tag sequence) shares the prefix's slot, so the
//! scripts that read or bump several of them at once touch one slot too. The same names
//! are used on a single node, where the braces mean nothing.

use crate::Key;

const GUARD: &str = ":guard";
const LEASE: &str = ":lease";
const HOLD: &str = ":hold";
const HELD: &str = ":held";
const HOLDS: &str = ":holds";
const HOLD_MESSAGES: &str = ":holdmsg";
const LEASES: &str = ":leases";
const COUNTER: &str = ":ver";
const CHANNEL: &str = ":backplane";
const GENERATION: &str = ":gen";
const TAGS: &str = ":tags";
const TAG_SEQUENCE: &str = ":tagseq";
const RATE: &str = ":rate:";
const RAW: &str = ":raw:";

/// The fill-race guard (invalidation counter) of `key`: in `key`'s slot.
pub(super) fn guard(key: &Key) -> String {
    format!("{{{key}}}{GUARD}")
}

/// The loading lease of `key`: in `key`'s slot.
pub(super) fn lease(key: &Key) -> String {
    format!("{{{key}}}{LEASE}")
}

/// The strict writes holding `key` now: in `key`'s slot.
pub(super) fn hold(key: &Key) -> String {
    format!("{{{key}}}{HOLD}")
}

/// The namespaces and tags strict writes hold now, under `prefix`.
pub(super) fn held(prefix: &str) -> String {
    in_prefix_slot(prefix, HELD)
}

/// The strict writes in progress under `prefix` (id → expiry).
pub(super) fn holds(prefix: &str) -> String {
    in_prefix_slot(prefix, HOLDS)
}

/// The backplane message of each strict write in progress under `prefix` (id → message).
pub(super) fn hold_messages(prefix: &str) -> String {
    in_prefix_slot(prefix, HOLD_MESSAGES)
}

/// The L1 leases of the instances under `prefix` (instance → expiry).
pub(super) fn leases(prefix: &str) -> String {
    in_prefix_slot(prefix, LEASES)
}

/// `{prefix}` followed by `rest`: a name in the prefix's slot.
fn in_prefix_slot(prefix: &str, rest: &str) -> String {
    format!("{{{prefix}}}{rest}")
}

/// The version counter of the namespace (or tag) whose root is `root` (`{prefix}:{name}`):
/// in the prefix's slot.
pub(super) fn counter(root: &str) -> String {
    match root.split_once(':') {
        Some((prefix, name)) => in_prefix_slot(prefix, &format!(":{name}{COUNTER}")),
        None => in_prefix_slot(root, COUNTER),
    }
}

/// The generation counter of every entry under `prefix`.
pub(super) fn generation(prefix: &str) -> String {
    in_prefix_slot(prefix, GENERATION)
}

/// The hash of tag versions under `prefix`.
pub(super) fn tags(prefix: &str) -> String {
    in_prefix_slot(prefix, TAGS)
}

/// The sequence tag versions are drawn from, under `prefix`.
pub(super) fn tag_sequence(prefix: &str) -> String {
    in_prefix_slot(prefix, TAG_SEQUENCE)
}

/// The backplane channel of every instance under `prefix`: a sharded channel on Redis
/// Cluster, served by the master of the prefix's slot.
pub(super) fn channel(prefix: &str) -> String {
    in_prefix_slot(prefix, CHANNEL)
}

/// The rate-limit counter of the client whose hashed key is `client` (hex), under
/// `prefix`: in a slot of its own (clients spread over the cluster), and outside the
/// entries' `SCAN` pattern (a flush of the cache leaves the limits alone).
pub(super) fn rate(prefix: &str, client: &str) -> String {
    format!("{{{prefix}{RATE}{client}}}")
}

/// A raw value under `prefix` (among the entries' names: a flush removes it too).
pub(super) fn raw(prefix: &str, name: &str) -> String {
    format!("{prefix}{RAW}{name}")
}

/// The `SCAN` pattern of every entry under `prefix` (counters, guards and leases have
/// other names: see the table above).
pub(super) fn entries(prefix: &str) -> String {
    format!("{prefix}:*")
}

/// The ACL key patterns (`~…`) that cover every name above under `prefix`, and no
/// other prefix's: the entries (`{prefix}:*`); the prefix's counters, hashes and
/// sorted sets (`{{prefix}}:*`); and the names that wrap a key or a client in braces,
/// guards, leases, holds and rate windows (`{{prefix}:*`). Prefixes are `a-z 0-9 _ - .`
/// ([`crate::KeyBuilder`]), so nothing in them is a glob.
pub(super) fn acl_patterns(prefix: &str) -> [String; 3] {
    [
        entries(prefix),
        in_prefix_slot(prefix, ":*"),
        format!("{{{prefix}:*"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyBuilder;
    use redis::cluster_routing::Slot;

    #[test]
    fn suffixes_are_built_from_the_key_and_share_its_slot() {
        let ns = KeyBuilder::new("app").unwrap().namespace("pet").unwrap();
        let key = ns.id(1);
        assert_eq!(guard(&key), "{app:pet:id:1}:guard");
        assert_eq!(lease(&key), "{app:pet:id:1}:lease");
        let slot = Slot::for_key(key.as_str());
        assert_eq!(Slot::for_key(guard(&key)), slot);
        assert_eq!(Slot::for_key(lease(&key)), slot);
        assert_eq!(hold(&key), "{app:pet:id:1}:hold");
        assert_eq!(Slot::for_key(hold(&key)), slot);
        assert_eq!(entries("app"), "app:*");
        assert_eq!(rate("app", "00ff"), "{app:rate:00ff}");
    }

    #[test]
    fn the_acl_patterns_cover_every_name_of_the_prefix_and_none_of_another() {
        let ns = KeyBuilder::new("app").unwrap().namespace("pet").unwrap();
        let key = ns.id(1);
        let patterns = acl_patterns("app");
        let covered = |name: &str| {
            patterns
                .iter()
                .any(|p| name.starts_with(p.trim_end_matches('*')))
        };
        for name in [
            key.as_str().to_owned(),
            ns.versioned(3).id(1).as_str().to_owned(),
            guard(&key),
            lease(&key),
            hold(&key),
            held("app"),
            holds("app"),
            hold_messages("app"),
            leases("app"),
            counter(ns.root()),
            counter("app"),
            generation("app"),
            tags("app"),
            tag_sequence("app"),
            channel("app"),
            rate("app", "00ff"),
        ] {
            assert!(covered(&name), "{name} is outside {patterns:?}");
        }
        let other = KeyBuilder::new("apple").unwrap().namespace("pet").unwrap();
        for name in [
            other.id(1).as_str().to_owned(),
            guard(&other.id(1)),
            generation("apple"),
            rate("apple", "00ff"),
        ] {
            assert!(!covered(&name), "{name} is inside {patterns:?}");
        }
    }

    #[test]
    fn every_counter_of_a_prefix_shares_one_slot() {
        let ns = KeyBuilder::new("app").unwrap().namespace("pet").unwrap();
        assert_eq!(counter(ns.root()), "{app}:pet:ver");
        assert_eq!(channel("app"), "{app}:backplane");
        assert_eq!(generation("app"), "{app}:gen");
        let slot = Slot::for_key("{app}:gen");
        for name in [
            counter(ns.root()),
            counter("app:pets"),
            tags("app"),
            tag_sequence("app"),
            channel("app"),
            held("app"),
            holds("app"),
            hold_messages("app"),
            leases("app"),
        ] {
            assert_eq!(Slot::for_key(&name), slot, "{name}");
        }
    }
}
