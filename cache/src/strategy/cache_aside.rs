//! Cache-aside (lazy loading): reads fill on a miss; a write invalidates the entity's
//! key in every tier and every instance, then the next read loads the new value.
//!
//! The race this strategy is famous for (a slow reader fills the value a writer just
//! replaced) is closed by the fill guard: the invalidation advances the key's guard, so
//! the slow reader's fill is refused.

use crate::Namespace;
use crate::client::effect::Effect;

/// Invalidate the entity's key (when the id is known), bump its groups.
pub(crate) fn effects(entity: &Namespace, id: Option<i64>, groups: Vec<Namespace>) -> Vec<Effect> {
    let mut effects: Vec<Effect> = id
        .map(|id| Effect::Invalidate(entity.id(id)))
        .into_iter()
        .collect();
    effects.push(Effect::Bump(groups));
    effects
}
