//! Cache-aside (lazy loading): reads fill on a miss; a write invalidates the entity's
//! key in every tier and every instance, then the next read loads the new value.
//!
//! The race this strategy is famous for (a slow reader fills the value a writer just
//! replaced) is closed by the fill guard: the invalidation advances the key's guard, so
//! the slow reader's fill is refused.

use crate::strategy::{Part, Strategy};
use crate::{Codec, Namespace};

pub(super) async fn after<C: Codec>(s: &Strategy<C>, entity: &Namespace, id: i64) {
    if let Ok(key) = s.key(entity, &Part::Id(id)).await {
        s.invalidate_everywhere(&key).await;
    }
}
