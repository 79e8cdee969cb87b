//! Write-through: a write stores the new value in every tier at once, so the next read
//! of the entity is a hit.
//!
//! Two writers of one entity can reach the cache in the opposite order from the source,
//! so the store is conditional: the writer invalidates the key *before* writing the
//! source and keeps the resulting [`FillToken`]; after the source acknowledged, it
//! stores its value only if nobody invalidated the key since (another writer or a
//! delete). If someone did, it invalidates again instead, and the next read loads
//! whichever write the source kept. Readers' fills that began before either
//! invalidation are refused as in cache-aside.

use serde::Serialize;

use crate::strategy::{Part, Strategy};
use crate::{Codec, FillToken, Namespace, Ttl};

pub(super) async fn before<C: Codec>(s: &Strategy<C>, entity: &Namespace, id: i64) -> FillToken {
    match s.key(entity, &Part::Id(id)).await {
        Ok(key) => s.invalidate_everywhere(&key).await,
        Err(_) => FillToken::default(),
    }
}

pub(super) async fn after<C: Codec, T>(
    s: &Strategy<C>,
    entity: &Namespace,
    id: i64,
    token: Option<FillToken>,
    value: Option<&T>,
    ttl: Ttl,
) where
    T: Serialize + Clone + Send + Sync + 'static,
{
    let Ok(key) = s.key(entity, &Part::Id(id)).await else {
        return;
    };
    // A create has no earlier token: nobody can have read an id that did not exist,
    // except as "not found", which this invalidation replaces.
    let token = match token {
        Some(token) => token,
        None => s.invalidate_everywhere(&key).await,
    };
    let stored = match value {
        // Entities are read as `Option<T>` (see `Strategy::get_entity`): store the same type.
        Some(v) => s
            .cache()
            .replace(&key, &Some(v.clone()), ttl, &token)
            .await
            .unwrap_or(false),
        None => match s.inner.negative_ttl {
            Some(neg) => s
                .cache()
                .replace(&key, &None::<T>, neg, &token)
                .await
                .unwrap_or(false),
            None => true,
        },
    };
    if stored {
        // Other instances drop their L1 copy and re-read the new value from L2.
        if let Some(bp) = &s.inner.backplane {
            bp.publish_evict(&key).await;
        }
    } else {
        s.invalidate_everywhere(&key).await;
    }
}
