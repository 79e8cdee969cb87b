//! Batch reads: [`CacheClient::read_many`] reads many ids of one namespace in one pass,
//! and its [`ReadMany::load_many`] loads all that the cache lacks in one call. Each key
//! keeps every guarantee of a single read: recovery and strict holds (a held key is
//! read from the source), the namespace's version, single-flight, its own fill guard,
//! tags and TTL.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use cache::tier::MokaTier;
//! use cache::{CacheClient, KeyBuilder, Source, Ttl};
//!
//! let keys = KeyBuilder::new("shop").unwrap();
//! let pets = keys.namespace("pet").unwrap();
//! let client = CacheClient::builder(&keys).l1(MokaTier::builder()).build().unwrap();
//! let names = |ids: Vec<i64>| async move {
//!     // One query for every id the cache lacks; an id it does not return has no value.
//!     Ok::<_, std::io::Error>(ids.into_iter().filter(|&id| id != 3).map(|id| (id, format!("pet {id}"))))
//! };
//!
//! let first = client.read_many(&pets, [1, 2, 3], Ttl::secs(60)).load_many(names).await.unwrap();
//! assert_eq!(first.len(), 2);
//! assert!(first.iter().all(|(_, pet)| pet.source == Source::Miss));
//!
//! let again = client.read_many(&pets, [2, 1], Ttl::secs(60)).load_many(names).await.unwrap();
//! assert_eq!((again[0].0, again[0].1.value.as_str(), again[0].1.source), (2, "pet 2", Source::HitL1));
//! # });
//! ```

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use super::{BoxError, CacheClient, Part};
use crate::codec::Codec;
use crate::typed::{CacheValue, Fetched, TagsOf};
use crate::{CacheError, Namespace, Tag, Ttl};

type TtlFor<T> = Arc<dyn Fn(&T) -> Option<Ttl> + Send + Sync>;

/// A batch read being described: see [`CacheClient::read_many`].
#[must_use = "a read does nothing until it is loaded"]
pub struct ReadMany<'a, I, T, C: Codec> {
    client: &'a CacheClient<C>,
    ns: &'a Namespace,
    ids: Vec<I>,
    ttl: Ttl,
    ttl_for: Option<TtlFor<T>>,
    tags: Option<TagsOf<T>>,
}

impl<I: std::fmt::Debug, T, C: Codec> std::fmt::Debug for ReadMany<'_, I, T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadMany")
            .field("ns", &self.ns.name())
            .field("ids", &self.ids)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<C: Codec> CacheClient<C> {
    /// A read of many `ids` (ids, or anything else a [`Part`] is made from) in `ns`,
    /// each kept for `ttl` when it is loaded; a repeated id is read once. Say more with
    /// its options, then [`ReadMany::load_many`] it.
    pub fn read_many<'a, I, T>(
        &'a self,
        ns: &'a Namespace,
        ids: impl IntoIterator<Item = I>,
        ttl: Ttl,
    ) -> ReadMany<'a, I, T, C>
    where
        I: Clone + Eq + Hash + Into<Part>,
        T: CacheValue,
    {
        let mut seen = std::collections::HashSet::new();
        let ids = ids
            .into_iter()
            .filter(|id| seen.insert(id.clone()))
            .collect();
        ReadMany {
            client: self,
            ns,
            ids,
            ttl,
            ttl_for: None,
            tags: None,
        }
    }
}

impl<I, T, C> ReadMany<'_, I, T, C>
where
    I: Clone + Eq + Hash + Into<Part>,
    T: CacheValue,
    C: Codec,
{
    /// Each value carries the tags `tags_of` gives it (see [`super::Read::tags`]).
    pub fn tags(mut self, tags_of: impl Fn(&T) -> Vec<Tag> + Send + Sync + 'static) -> Self {
        self.tags = Some(Arc::new(tags_of));
        self
    }

    /// The TTL per loaded value instead (`None`: do not store this one).
    pub fn ttl_for(mut self, ttl_for: impl Fn(&T) -> Option<Ttl> + Send + Sync + 'static) -> Self {
        self.ttl_for = Some(Arc::new(ttl_for));
        self
    }

    /// The values, in the order asked: hits from the cache (one pass over L1, one
    /// Redis round trip for what L1 lacks), the rest from one call of `loader` with the
    /// ids missing (it may return them in any order). An id the loader does not return
    /// is left out and not stored. `loader` may be called again for a key whose other
    /// loader was cancelled, with that id alone.
    ///
    /// A key another caller is about to load is joined, not loaded twice. A failed
    /// load fails the batch; nothing stale is served.
    pub async fn load_many<F, Fut, R, E>(
        self,
        loader: F,
    ) -> Result<Vec<(I, Fetched<T>)>, CacheError>
    where
        F: Fn(Vec<I>) -> Fut,
        Fut: Future<Output = Result<R, E>>,
        R: IntoIterator<Item = (I, T)>,
        E: Into<BoxError>,
    {
        let c = self.client;
        let parts: Vec<Part> = self.ids.iter().cloned().map(Into::into).collect();
        let keys = c.cacheable_keys(self.ns, &parts).await?;
        let options = c.options(self.ns, self.tags);
        let wanted = self.ids.into_iter().zip(keys).collect();
        let ttl = self.ttl;
        let ttl_for = self.ttl_for;
        let ttl_of = move |v: &T| ttl_for.as_ref().map_or(Some(ttl), |f| f(v));
        c.inner
            .typed
            .get_or_load_many(wanted, ttl_of, loader, &options)
            .await
    }
}
