//! One read call: [`CacheClient::read`] starts a [`Read`], its options say what kind of
//! read it is, and [`Read::load`] runs it. Every read goes through the same path:
//! recovery and strict holds (a held key reads the source), the namespace's version,
//! single-flight, the fill guard, tags and the soft bound.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use cache::tier::MokaTier;
//! use cache::{CacheClient, KeyBuilder, Params, Source, Tag, Ttl};
//!
//! let keys = KeyBuilder::new("shop").unwrap();
//! let pages = keys.namespace("pages").unwrap();
//! let client = CacheClient::builder(&keys).l1(MokaTier::builder().max_bytes(1 << 20)).build().unwrap();
//! let load = || async { Ok::<_, std::io::Error>(vec![1_i64, 2, 3]) };
//! let read = || {
//!     client
//!         .read(&pages, Params::new().with("species", "cat"), Ttl::secs(60))
//!         .tags(|ids: &Vec<i64>| ids.iter().map(|id| Tag::new(format!("pet:{id}")).unwrap()).collect())
//! };
//! assert_eq!(read().load(load).await.unwrap().source, Source::Miss);
//! assert_eq!(read().load(load).await.unwrap().source, Source::HitL1);
//! # });
//! ```

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use super::{BoxError, CacheClient, Part};
use crate::codec::Codec;
use crate::probe::{Probe, Sampled};
use crate::typed::{CacheValue, Fetched, ReadOptions, TagsOf};
use crate::{CacheError, Key, Namespace, Params, Tag, Ttl};

impl From<i64> for Part {
    fn from(id: i64) -> Self {
        Self::Id(id)
    }
}

impl From<Params> for Part {
    fn from(params: Params) -> Self {
        Self::Query(params)
    }
}

impl From<&'static str> for Part {
    fn from(name: &'static str) -> Self {
        Self::Fixed(name)
    }
}

/// A read loaded once on a miss (the default).
#[derive(Debug)]
pub struct Plain;
/// A read whose hit close to expiry is served and reloaded behind it.
#[derive(Debug)]
pub struct RefreshAhead;
/// A read in a namespace with soft invalidation: an invalidated value within the bound
/// is served (`Stale`) and reloaded behind it.
#[derive(Debug)]
pub struct Soft;
/// A read whose hits the client's staleness probe may check against the source (see
/// [`Read::verify`]).
#[derive(Debug)]
pub struct Verified;

type TtlFor<T> = Arc<dyn Fn(&T) -> Option<Ttl> + Send + Sync>;
/// When a value was written (ms since the Unix epoch, e.g. its `updated_at`).
type VersionOf<T> = Arc<dyn Fn(&T) -> Option<u64> + Send + Sync>;

/// A read being described: see [`CacheClient::read`].
#[must_use = "a read does nothing until it is loaded"]
pub struct Read<'a, T, C: Codec, M = Plain> {
    client: &'a CacheClient<C>,
    ns: &'a Namespace,
    part: Part,
    ttl: Ttl,
    ttl_for: Option<TtlFor<T>>,
    tags: Option<TagsOf<T>>,
    verify: Option<VersionOf<T>>,
    mode: PhantomData<M>,
}

impl<T, C: Codec, M> std::fmt::Debug for Read<'_, T, C, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Read")
            .field("ns", &self.ns.name())
            .field("part", &self.part)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<C: Codec> CacheClient<C> {
    /// A read of `part` (an id, query [`Params`] or a fixed name) in `ns`, kept for
    /// `ttl` when it is loaded. Say more with its options, then [`Read::load`] it.
    pub fn read<'a, T: CacheValue>(
        &'a self,
        ns: &'a Namespace,
        part: impl Into<Part>,
        ttl: Ttl,
    ) -> Read<'a, T, C> {
        Read {
            client: self,
            ns,
            part: part.into(),
            ttl,
            ttl_for: None,
            tags: None,
            verify: None,
            mode: PhantomData,
        }
    }
}

impl<'a, T: CacheValue, C: Codec, M> Read<'a, T, C, M> {
    /// The value carries the tags `tags_of` gives it: invalidating one of them (a
    /// write's tags) makes it unreachable at once, in every tier and instance.
    pub fn tags(mut self, tags_of: impl Fn(&T) -> Vec<Tag> + Send + Sync + 'static) -> Self {
        self.tags = Some(Arc::new(tags_of));
        self
    }

    /// The key to read and the read's options; `None`: read the source (the key is
    /// held or recovering, or its namespace's version is unknown).
    async fn keyed(&mut self) -> Result<Option<(Key, ReadOptions<T>)>, CacheError> {
        let Some(key) = self.client.cacheable_key(self.ns, &self.part).await? else {
            return Ok(None);
        };
        Ok(Some((key, self.client.options(self.ns, self.tags.take()))))
    }

    fn mode<N>(self) -> Read<'a, T, C, N> {
        Read {
            client: self.client,
            ns: self.ns,
            part: self.part,
            ttl: self.ttl,
            ttl_for: self.ttl_for,
            tags: self.tags,
            verify: self.verify,
            mode: PhantomData,
        }
    }

    /// Whether the probe checks this read (a random draw), and when the read began.
    fn sampled(&self) -> Option<(Arc<Probe>, Sampled)> {
        self.verify.as_ref()?;
        let probe = self.client.inner.probe.as_ref()?;
        let typed = &self.client.inner.typed;
        probe
            .draw(|| typed.now_millis())
            .map(|read| (probe.clone(), read))
    }
}

/// `loader` shared: one handle for the read, one for the probe's check behind it.
fn shared<F, Fut>(loader: F) -> (Arc<F>, impl Fn() -> Fut + Send + Sync + 'static)
where
    F: Fn() -> Fut + Send + Sync + 'static,
{
    let loader = Arc::new(loader);
    let again = loader.clone();
    (loader, move || again())
}

/// Hands a sampled hit to the probe, which checks it against `loader` behind the answer.
fn probe_hit<T, F, Fut, E>(
    sampled: Option<(Arc<Probe>, Sampled)>,
    verify: Option<VersionOf<T>>,
    fetched: &Fetched<T>,
    loader: Arc<F>,
) where
    T: CacheValue,
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    E: Send + 'static,
{
    let (Some((probe, read)), Some(version_of)) = (sampled, verify) else {
        return;
    };
    if !fetched.source.is_hit() {
        return;
    }
    let served = version_of(&fetched.value);
    probe.check(read, served, async move {
        loader().await.map(|v| version_of(&v)).map_err(drop)
    });
}

impl<'a, T: CacheValue, C: Codec> Read<'a, T, C, Plain> {
    /// The TTL per loaded value instead (`None`: do not store this one).
    pub fn ttl_for(mut self, ttl_for: impl Fn(&T) -> Option<Ttl> + Send + Sync + 'static) -> Self {
        self.ttl_for = Some(Arc::new(ttl_for));
        self
    }

    /// Lets the client's staleness probe (see [`crate::CacheClientBuilder::probe`]) check
    /// a sample of this read's hits against the source: `version_of` says when a value
    /// was written (ms since the Unix epoch, e.g. its `updated_at`; `None`: not
    /// checked). The probe runs the loader again, in the background, so it must be
    /// callable again and `'static`.
    pub fn verify(
        mut self,
        version_of: impl Fn(&T) -> Option<u64> + Send + Sync + 'static,
    ) -> Read<'a, T, C, Verified> {
        self.verify = Some(Arc::new(version_of));
        self.mode()
    }

    /// Refresh-ahead: a hit within the client's refresh window of its expiry (see
    /// [`crate::CacheClientBuilder::refresh_ahead`]) is served, and the loader runs again
    /// in the background (so it must be `'static`).
    pub fn refresh_ahead(self) -> Read<'a, T, C, RefreshAhead> {
        self.mode()
    }

    /// Soft invalidation (the namespace has it, see
    /// [`crate::CacheClientBuilder::soft_invalidation`]): an invalidated value within
    /// the bound is served as `Stale` while the loader runs again behind it.
    pub fn soft(self) -> Read<'a, T, C, Soft> {
        self.mode()
    }

    /// The value, from the cache or `loader` (run once per key at a time in this
    /// process, and stored through the fill guard).
    pub async fn load<F, Fut, E>(mut self, loader: F) -> Result<Fetched<T>, CacheError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Into<BoxError>,
    {
        let c = self.client;
        let Some((key, options)) = self.keyed().await? else {
            return c.inner.typed.load_uncached(loader).await;
        };
        let ttl = self.ttl;
        match self.ttl_for {
            Some(f) => {
                c.inner
                    .typed
                    .get_or_load_with(&key, |v: &T| f(v), loader, &options)
                    .await
            }
            None => {
                c.inner
                    .typed
                    .get_or_load_with(&key, |_: &T| Some(ttl), loader, &options)
                    .await
            }
        }
    }
}

impl<T: CacheValue, C: Codec> Read<'_, T, C, Verified> {
    /// The TTL per loaded value instead (`None`: do not store this one).
    pub fn ttl_for(mut self, ttl_for: impl Fn(&T) -> Option<Ttl> + Send + Sync + 'static) -> Self {
        self.ttl_for = Some(Arc::new(ttl_for));
        self
    }

    /// The value, from the cache or `loader`; a sampled hit is checked against `loader`
    /// behind the answer.
    pub async fn load<F, Fut, E>(mut self, loader: F) -> Result<Fetched<T>, CacheError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<BoxError> + Send + 'static,
    {
        let c = self.client;
        let sampled = self.sampled();
        let Some((key, options)) = self.keyed().await? else {
            return c.inner.typed.load_uncached(loader).await;
        };
        let (loader, load) = shared(loader);
        let (ttl, ttl_for) = (self.ttl, self.ttl_for);
        let ttl_of = move |v: &T| ttl_for.as_ref().map_or(Some(ttl), |f| f(v));
        let fetched = c
            .inner
            .typed
            .get_or_load_with(&key, ttl_of, load, &options)
            .await?;
        probe_hit(sampled, self.verify, &fetched, loader);
        Ok(fetched)
    }
}

impl<T: CacheValue, C: Codec> Read<'_, T, C, Soft> {
    /// The TTL per loaded value instead (`None`: do not store this one).
    pub fn ttl_for(mut self, ttl_for: impl Fn(&T) -> Option<Ttl> + Send + Sync + 'static) -> Self {
        self.ttl_for = Some(Arc::new(ttl_for));
        self
    }

    /// Lets the client's staleness probe check a sample of this read's hits (see
    /// [`Read::verify`] of a plain read).
    pub fn verify(
        mut self,
        version_of: impl Fn(&T) -> Option<u64> + Send + Sync + 'static,
    ) -> Self {
        self.verify = Some(Arc::new(version_of));
        self
    }

    /// The value, from the cache or `loader`; `loader` may run again on a task of its
    /// own, behind a stale answer.
    pub async fn load<F, Fut, E>(mut self, loader: F) -> Result<Fetched<T>, CacheError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<BoxError> + Send + 'static,
    {
        let c = self.client;
        let sampled = self.sampled();
        let Some((key, options)) = self.keyed().await? else {
            return c.inner.typed.load_uncached(loader).await;
        };
        let (loader, load) = shared(loader);
        let (ttl, ttl_for) = (self.ttl, self.ttl_for);
        let ttl_of = move |v: &T| ttl_for.as_ref().map_or(Some(ttl), |f| f(v));
        let fetched = c
            .inner
            .typed
            .get_or_revalidate_with(&key, ttl_of, load, options)
            .await?;
        probe_hit(sampled, self.verify, &fetched, loader);
        Ok(fetched)
    }
}

impl<T: CacheValue, C: Codec> Read<'_, T, C, RefreshAhead> {
    /// Lets the client's staleness probe check a sample of this read's hits (see
    /// [`Read::verify`] of a plain read).
    pub fn verify(
        mut self,
        version_of: impl Fn(&T) -> Option<u64> + Send + Sync + 'static,
    ) -> Self {
        self.verify = Some(Arc::new(version_of));
        self
    }
    /// The value, from the cache or `loader`; `loader` may run again in the background
    /// when a hit is close to its expiry.
    pub async fn load<F, Fut, E>(mut self, loader: F) -> Result<Fetched<T>, CacheError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<BoxError> + Send + 'static,
    {
        let c = self.client;
        let sampled = self.sampled();
        let Some((key, options)) = self.keyed().await? else {
            return c.inner.typed.load_uncached(loader).await;
        };
        let (loader, load) = shared(loader);
        let fetched = c
            .inner
            .typed
            .get_or_refresh_with(&key, self.ttl, load, options)
            .await?;
        probe_hit(sampled, self.verify, &fetched, loader);
        Ok(fetched)
    }
}
