//! The cache-side effects of a write: what each strategy asks the client to make.

use crate::{Key, Namespace, Tag};

/// One cache-side effect of a write. Each is idempotent: made twice, it costs a miss,
/// never a stale read.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Effect {
    /// Invalidate the key everywhere (shared tier, every instance's L1).
    Invalidate(Key),
    /// Advance the versions of these namespaces (and tell every instance).
    Bump(Vec<Namespace>),
    /// Invalidate these tags: every entry carrying one becomes unreachable.
    BumpTags(Vec<Tag>),
    /// Empty the shared tier's prefix and every instance's L1 (an admin flush).
    Flush,
    /// Start a new generation of the shared tier: every entry written before it is
    /// unreachable for every instance, and every L1 is emptied. Made when Redis comes
    /// back after this instance saw it fail, and when the recovery queue overflows.
    NewGeneration,
}
