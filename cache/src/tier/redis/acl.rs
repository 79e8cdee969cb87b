//! The Redis ACL a tier's user needs, and nothing more: the key patterns of its prefix
//! (`keys.rs`), its backplane channel, and the commands it sends, those of the Lua
//! scripts included (`scripts.rs`), since Redis checks every `redis.call` in a script
//! against the same ACL as a command sent on its own.
//!
//! The admin flush ([`crate::tier::Cache::clear`]) is left out unless asked for
//! ([`RedisAcl::with_flush`]): it needs `SCAN`, which no key pattern limits (it lists
//! every key name in the database, every other application's too), and on a cluster
//! `CLUSTER NODES`. Without them the flush is refused (`NOPERM`, see
//! [`crate::CacheError::is_permission_denied`]) and nothing else is touched.

use super::keys;
use crate::{CacheError, KeyBuilder};

/// The commands of the request path, in the groups the crate's README explains.
const COMMANDS: &[&str] = &[
    // Health: the breaker's probe, `/ready`, a subscription's liveness check, a
    // cluster connection's set-up check.
    "ping",
    // Entries, guards and leases on their own: reads without a prefix (GET + PTTL),
    // plain writes (SET PX), leases (SET NX PX), deletes (UNLINK), an L1 lease given back.
    "get",
    "set",
    "unlink",
    "pttl",
    "zrem",
    // Every script: EVALSHA first, SCRIPT LOAD when the server does not know it yet
    // (after a restart), then EVALSHA again.
    "evalsha",
    "script|load",
    // Inside the scripts: guarded stores and invalidations, counters started at the
    // server's clock, tag versions and holds (hashes), the holds' and leases' expiries
    // (sorted sets).
    "exists",
    "incr",
    "del",
    "pexpire",
    "time",
    "hget",
    "hset",
    "hdel",
    "hlen",
    "zadd",
    "zrange",
    "zrangebyscore",
    "zremrangebyscore",
    // The backplane: PUBLISH/SUBSCRIBE on one server, SPUBLISH/SSUBSCRIBE (a sharded
    // channel) on a cluster; a strict write publishes from its script.
    "publish",
    "subscribe",
    "spublish",
    "ssubscribe",
    // A cluster client: the slot map, and ASKING to follow a slot being migrated.
    "cluster|slots",
    "asking",
];

/// What the admin flush adds: `SCAN` for our entries (on each master of a cluster,
/// found with `CLUSTER NODES`); their `UNLINK` is on the request path already.
const FLUSH: &[&str] = &["scan", "cluster|nodes"];

/// The Redis ACL of a tier's user: its prefix's keys, its backplane channel and exactly
/// the commands the tier sends, as one `ACL SETUSER` rule.
///
/// ```
/// use cache::tier::RedisAcl;
///
/// let acl = RedisAcl::new("petshop", "petshop").unwrap();
/// let line = acl.line("s3cret");
/// assert!(line.starts_with(
///     "user petshop reset on >s3cret ~petshop:* ~{petshop}:* ~{petshop:* &{petshop}:backplane +ping +get"
/// ));
/// assert!(!line.contains("+scan"), "no flush unless asked for");
/// assert!(acl.with_flush().line("s3cret").ends_with(" +scan +cluster|nodes"));
/// ```
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisAcl {
    user: String,
    prefix: String,
    flush: bool,
}

impl RedisAcl {
    /// The ACL of the Redis user `user` (printable ASCII, no spaces) for a tier under
    /// `prefix` (as [`KeyBuilder::new`] takes it), without the admin flush.
    pub fn new(user: &str, prefix: &str) -> Result<Self, CacheError> {
        if user.is_empty() || !user.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(CacheError::Config(format!(
                "redis user {user:?} must be printable ASCII without spaces"
            )));
        }
        let prefix = KeyBuilder::new(prefix)?.prefix().to_owned();
        Ok(Self {
            user: user.to_owned(),
            prefix,
            flush: false,
        })
    }

    /// Also what the admin flush needs (`SCAN`, and `CLUSTER NODES` on a cluster).
    pub fn with_flush(mut self) -> Self {
        self.flush = true;
        self
    }

    /// The Redis user.
    #[must_use]
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The key prefix.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key patterns (without the `~`): the entries, the prefix's counters and
    /// registries, and the guards, leases, holds and rate windows.
    #[must_use]
    pub fn key_patterns(&self) -> Vec<String> {
        keys::acl_patterns(&self.prefix).into()
    }

    /// The pub/sub channels (without the `&`): the backplane's.
    #[must_use]
    pub fn channels(&self) -> Vec<String> {
        vec![keys::channel(&self.prefix)]
    }

    /// The commands (lower case, `command|subcommand`).
    #[must_use]
    pub fn commands(&self) -> Vec<&'static str> {
        let flush = if self.flush { FLUSH } else { &[] };
        COMMANDS.iter().chain(flush).copied().collect()
    }

    /// The rule's words after the user name, as `ACL SETUSER <user>` takes them one
    /// argument each: `reset` (no keys, channels or commands, no password), `on`, the
    /// password, `~` each key pattern, `&` the channel, `+` each command.
    #[must_use]
    pub fn rules(&self, password: &str) -> Vec<String> {
        let mut rules = vec!["reset".to_owned(), "on".to_owned(), format!(">{password}")];
        rules.extend(self.key_patterns().iter().map(|p| format!("~{p}")));
        rules.extend(self.channels().iter().map(|c| format!("&{c}")));
        rules.extend(self.commands().iter().map(|c| format!("+{c}")));
        rules
    }

    /// The rule as one line of an ACL file or `redis.conf` (`user <name> <rules>`); the
    /// same words follow `ACL SETUSER <name>`. `password` must hold no whitespace.
    #[must_use]
    pub fn line(&self, password: &str) -> String {
        format!("user {} {}", self.user, self.rules(password).join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The uppercase words right after each `opener` in `source`, lower-cased.
    fn named_after(source: &str, opener: &str) -> Vec<String> {
        source
            .match_indices(opener)
            .filter_map(|(i, _)| {
                let rest = &source[i + opener.len()..];
                let end = rest
                    .find(|c: char| !c.is_ascii_uppercase())
                    .unwrap_or(rest.len());
                (end > 0).then(|| rest[..end].to_ascii_lowercase())
            })
            .collect()
    }

    #[test]
    fn every_command_the_tier_names_is_in_the_rule() {
        let rust = [
            include_str!("mod.rs"),
            include_str!("cache.rs"),
            include_str!("cluster.rs"),
            include_str!("connection.rs"),
            include_str!("counters.rs"),
            include_str!("holds.rs"),
            include_str!("pubsub.rs"),
            include_str!("rate.rs"),
            include_str!("tags.rs"),
        ];
        let lua = include_str!("scripts.rs");
        let mut named: Vec<String> = rust
            .iter()
            .flat_map(|source| named_after(source, "cmd(\""))
            .collect();
        for opener in ["redis.call('", "redis.pcall('", "pcall(redis.call, '"] {
            named.extend(named_after(lua, opener));
        }
        // The commands chosen at run time (`publish_command`).
        named.extend(["publish".to_owned(), "spublish".to_owned()]);
        assert!(named.len() > 20, "the scan found too little: {named:?}");
        let all = RedisAcl::new("u", "app").unwrap().with_flush().commands();
        for name in named {
            // `CLUSTER` is named with its subcommand in the rule.
            let listed = all
                .iter()
                .any(|c| *c == name || c.starts_with(&format!("{name}|")));
            assert!(
                listed,
                "the tier sends {name} but the rule does not allow it"
            );
        }
    }

    #[test]
    fn the_flush_adds_scan_and_cluster_nodes_only() {
        let acl = RedisAcl::new("petshop", "petshop").unwrap();
        let minimal = acl.commands();
        let full = acl.clone().with_flush().commands();
        assert!(!minimal.contains(&"scan") && !minimal.contains(&"cluster|nodes"));
        assert_eq!(full[..minimal.len()], minimal[..]);
        assert_eq!(full[minimal.len()..], ["scan", "cluster|nodes"]);
    }

    #[test]
    fn the_rule_names_the_prefix_keys_and_channel() {
        let acl = RedisAcl::new("svc", "app").unwrap();
        assert_eq!(acl.key_patterns(), ["app:*", "{app}:*", "{app:*"]);
        assert_eq!(acl.channels(), ["{app}:backplane"]);
        let rules = acl.rules("pw");
        assert_eq!(
            rules[..7],
            [
                "reset",
                "on",
                ">pw",
                "~app:*",
                "~{app}:*",
                "~{app:*",
                "&{app}:backplane"
            ]
        );
        assert!(acl.line("pw").starts_with("user svc reset on >pw ~app:*"));
    }

    #[test]
    fn a_user_or_prefix_that_would_break_the_rule_is_refused() {
        assert!(RedisAcl::new("", "app").is_err());
        assert!(RedisAcl::new("two words", "app").is_err());
        assert!(RedisAcl::new("svc", "app*").is_err());
        assert!(RedisAcl::new("svc", "App").is_err());
    }
}
