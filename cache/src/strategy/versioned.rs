//! Versioned keys: every key of a namespace embeds the namespace's version; a write
//! bumps the versions of the entity's namespace and of its groups (one round trip), so
//! every old key becomes unreachable at once and expires by its TTL. Nothing is ever
//! deleted, and a slow reader's fill lands under an old version nobody reads any more.
//! Other instances learn the bump over the backplane (or read the version from Redis
//! while it is down).
//!
//! The cost: a write makes every cached entity of the namespace a miss, not just the
//! one written; the benchmarks show what that does to a write-heavy mix.

use crate::Namespace;
use crate::client::effect::Effect;

/// Bump the entity's namespace and its groups together.
pub(crate) fn effects(entity: &Namespace, groups: Vec<Namespace>) -> Vec<Effect> {
    let mut namespaces = vec![entity.clone()];
    namespaces.extend(groups);
    vec![Effect::Bump(namespaces)]
}
