//! Write-through: a write stores the new value in every tier at once, so the next read
//! of the entity is a hit. Its groups are bumped as in cache-aside.
//!
//! Two writers of one entity can reach the cache in the opposite order from the source,
//! so the store is conditional: the writer invalidates the key *before* writing the
//! source and keeps the resulting [`FillToken`]; after the source acknowledged, it
//! stores its value only if nobody invalidated the key since (another writer or a
//! delete). If someone did, it invalidates again instead, and the next read loads
//! whichever write the source kept. Readers' fills that began before either
//! invalidation are refused as in cache-aside.

use serde::Serialize;

use crate::client::CacheClient;
use crate::codec::Codec;
use crate::tier::FillToken;
use crate::{CacheError, Key, Ttl};

/// Stores the written `value` (or "not found" for a delete, with a negative TTL) under
/// `key`, guarded by `token`. `Err`: Redis was not reached, the key must be invalidated
/// once it answers.
pub(crate) async fn store<C: Codec, T>(
    client: &CacheClient<C>,
    key: &Key,
    token: Option<FillToken>,
    value: Option<&T>,
    ttl: Ttl,
    negative_ttl: Option<Ttl>,
) -> Result<(), CacheError>
where
    T: Serialize + Clone + Send + Sync + 'static,
{
    // A create has no earlier token: nobody can have read an id that did not exist,
    // except as "not found", which this invalidation replaces. Neither has a write whose
    // first invalidation failed.
    let token = match token {
        Some(token) => token,
        None => client.invalidate_everywhere(key).await?,
    };
    let typed = client.typed();
    // Entities are read as `Option<T>` (see `CacheClient::get_entity`): store the same type.
    let stored = match (value, negative_ttl) {
        (Some(v), _) => typed.replace(key, &Some(v.clone()), ttl, &token).await?,
        (None, Some(negative)) => typed.replace(key, &None::<T>, negative, &token).await?,
        // A delete with nothing to store: a reader may have refilled the old value
        // since the first invalidation, so invalidate again.
        (None, None) => return client.invalidate_everywhere(key).await.map(|_| ()),
    };
    if stored {
        // Other instances drop their L1 copy and re-read the new value from L2.
        client.publish_evict(key).await
    } else {
        // Another write overtook this one: let the next read load what the source kept.
        client.invalidate_everywhere(key).await.map(|_| ())
    }
}
