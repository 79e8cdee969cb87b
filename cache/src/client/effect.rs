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
    /// Several of the above at once, as one step of a write makes them: in one round
    /// trip to Redis, announced in one message, and replayed as one.
    Step(Step),
    /// Empty the shared tier's prefix and every instance's L1 (an admin flush).
    Flush,
    /// Start a new generation of the shared tier: every entry written before it is
    /// unreachable for every instance, and every L1 is emptied. Made when Redis comes
    /// back after this instance saw it fail, and when the recovery queue overflows.
    NewGeneration,
}

/// The invalidations and bumps of one step of a write, made together.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Step {
    /// Keys to invalidate.
    pub(crate) keys: Vec<Key>,
    /// Namespaces whose versions to advance.
    pub(crate) namespaces: Vec<Namespace>,
    /// Tags to invalidate.
    pub(crate) tags: Vec<Tag>,
}

impl Step {
    /// Whether it does nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.namespaces.is_empty() && self.tags.is_empty()
    }

    /// Adds what `effect` invalidates or bumps (a flush or a new generation is not part
    /// of a write's step: it is handed back).
    pub(crate) fn add(&mut self, effect: Effect) -> Option<Effect> {
        match effect {
            Effect::Invalidate(key) => push_new(&mut self.keys, [key]),
            Effect::Bump(namespaces) => push_new(&mut self.namespaces, namespaces),
            Effect::BumpTags(tags) => push_new(&mut self.tags, tags),
            Effect::Step(step) => {
                push_new(&mut self.keys, step.keys);
                push_new(&mut self.namespaces, step.namespaces);
                push_new(&mut self.tags, step.tags);
            }
            other @ (Effect::Flush | Effect::NewGeneration) => return Some(other),
        }
        None
    }

    /// The step of `effect` alone (`None`: a flush or a new generation).
    pub(crate) fn of(effect: &Effect) -> Option<Self> {
        let mut step = Self::default();
        step.add(effect.clone()).is_none().then_some(step)
    }
}

fn push_new<T: PartialEq>(to: &mut Vec<T>, items: impl IntoIterator<Item = T>) {
    for item in items {
        if !to.contains(&item) {
            to.push(item);
        }
    }
}
