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
use crate::client::step::Store;
use crate::codec::Codec;
use crate::tier::FillToken;
use crate::{Key, Ttl};

/// What a write stores under `key` once the source acknowledged it: the written
/// `value`, or "not found" after a delete (with a negative TTL), guarded by `token`
/// (what the write's first step left; `None` for a create). `None`: nothing to store (a
/// delete without a negative TTL, or a value that cannot be encoded), so the key is
/// invalidated instead. The store and the rest of the write's step are made in one round
/// trip: the key is stored only if nobody invalidated it since `token`, else invalidated,
/// and either way every other instance drops its L1 copy.
pub(crate) fn store_of<C: Codec, T>(
    client: &CacheClient<C>,
    key: &Key,
    value: Option<&T>,
    ttl: Ttl,
    negative_ttl: Option<Ttl>,
    token: Option<FillToken>,
) -> Option<Store>
where
    T: Serialize + Clone + Send + Sync + 'static,
{
    // Entities are read as `Option<T>` (see `CacheClient::get_entity`): store the same type.
    let (encoded, ttl) = match (value, negative_ttl) {
        (Some(v), _) => (client.typed().encode(&Some(v.clone())), ttl),
        (None, Some(negative)) => (client.typed().encode(&None::<T>), negative),
        (None, None) => return None,
    };
    match encoded {
        Ok(entry) => Some(Store {
            key: key.clone(),
            entry,
            ttl,
            token,
        }),
        Err(e) => {
            tracing::warn!(key = %key, error = %e, "written value cannot be encoded: invalidated instead");
            None
        }
    }
}
