//! Every Redis key suffix and channel name the library uses, built in one place.
//!
//! | what | Redis name |
//! |------|------------|
//! | an entry | `{key}` (see [`crate::KeyBuilder`]) |
//! | its fill-race guard | `{key}:guard` |
//! | its loading lease | `{key}:lease` |
//! | a version counter (namespace or tag) | `{root}:ver`, `root` = `{prefix}:{name}` |
//! | the generation of every entry | `{prefix}:gen` |
//! | the version of every tag (a hash: tag → sequence) | `{prefix}:tags` |
//! | the tag sequence | `{prefix}:tagseq` |
//! | the backplane channel | `{prefix}:backplane` |
//! | a rate-limit window of a client | `{prefix}:rate:{xxh3-128 hex of the client key}` |

use crate::Key;

const GUARD: &str = ":guard";
const LEASE: &str = ":lease";
const COUNTER: &str = ":ver";
const CHANNEL: &str = ":backplane";
const GENERATION: &str = ":gen";
const TAGS: &str = ":tags";
const TAG_SEQUENCE: &str = ":tagseq";
const RATE: &str = ":rate:";

/// The fill-race guard (invalidation counter) of `key`.
pub(super) fn guard(key: &Key) -> String {
    format!("{key}{GUARD}")
}

/// The loading lease of `key`.
pub(super) fn lease(key: &Key) -> String {
    format!("{key}{LEASE}")
}

/// The version counter of the namespace (or tag) whose root is `root`.
pub(super) fn counter(root: &str) -> String {
    format!("{root}{COUNTER}")
}

/// The generation counter of every entry under `prefix`.
pub(super) fn generation(prefix: &str) -> String {
    format!("{prefix}{GENERATION}")
}

/// The hash of tag versions under `prefix`.
pub(super) fn tags(prefix: &str) -> String {
    format!("{prefix}{TAGS}")
}

/// The sequence tag versions are drawn from, under `prefix`.
pub(super) fn tag_sequence(prefix: &str) -> String {
    format!("{prefix}{TAG_SEQUENCE}")
}

/// The backplane channel of every instance under `prefix`.
pub(super) fn channel(prefix: &str) -> String {
    format!("{prefix}{CHANNEL}")
}

/// The rate-limit counter of the client whose hashed key is `client` (hex), under
/// `prefix`.
pub(super) fn rate(prefix: &str, client: &str) -> String {
    format!("{prefix}{RATE}{client}")
}

/// Whether `key`, a Redis key under `prefix`, is a version [counter] (`{prefix}:{name}:ver`,
/// `name` without `:`) or the [generation]: the admin flush keeps them, so neither goes
/// back.
pub(super) fn is_counter(prefix: &str, key: &str) -> bool {
    if key == generation(prefix) || key == tags(prefix) || key == tag_sequence(prefix) {
        return true;
    }
    key.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix(':'))
        .and_then(|rest| rest.strip_suffix(COUNTER))
        .is_some_and(|name| !name.is_empty() && !name.contains(':'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyBuilder;

    #[test]
    fn suffixes_are_built_from_the_key_and_counters_are_recognised() {
        let ns = KeyBuilder::new("app").unwrap().namespace("pet").unwrap();
        let key = ns.id(1);
        assert_eq!(guard(&key), "app:pet:id:1:guard");
        assert_eq!(lease(&key), "app:pet:id:1:lease");
        assert_eq!(counter(ns.root()), "app:pet:ver");
        assert_eq!(channel("app"), "app:backplane");
        assert_eq!(generation("app"), "app:gen");
        assert_eq!(rate("app", "00ff"), "app:rate:00ff");
        assert!(is_counter("app", "app:pet:ver"));
        assert!(is_counter("app", "app:gen"));
        assert!(is_counter("app", "app:tags") && is_counter("app", "app:tagseq"));
        assert!(!is_counter("app", "app:gen:id:1"));
        assert!(
            !is_counter("app", "app:pet:v3:f:ver"),
            "a fixed key named ver"
        );
        assert!(!is_counter("app", "other:pet:ver"));
        assert!(!is_counter("app", "app::ver"));
    }
}
