//! Cached HTTP answers, for any service: the seed's `@cache_response(ttl)`.
//!
//! A [`ResponseCache`] holds the [`Route`]s that opt in, each with a TTL and optionally
//! tags. For a `GET` (or `HEAD`) of such a route it keys the request by its path, its
//! canonical query ([`Query`]: decoded, sorted, repeats in order) and the headers the
//! route varies by, and looks the answer up through the [`CacheClient`] (tags, recovery
//! holds, strict holds, the fill guard and single-flight all apply). A hit writes the
//! stored bytes as they are, with `X-Cache: HIT-L1 | HIT-L2 | STALE` and a weak `ETag`;
//! `If-None-Match` with that tag answers `304`, and a `HEAD` answers the `GET`'s
//! headers with no body. On a miss the handler runs, and its `200` answer is stored
//! (body, content type, `ETag`) with the tags it gave through [`ResponseTags`] in the
//! request's extensions.
//!
//! Never shared by default (RFC 9111 §3.5): a request with `Authorization` or `Cookie`
//! goes to the handler (`X-Cache: BYPASS`) unless its route says
//! [`Route::shared_with_credentials`], and an answer that sets a cookie or says
//! `Cache-Control: private` or `no-store` is not stored.
//!
//! The core is framework-neutral (`http` types and [`Bytes`]); the adapters are behind
//! cargo features: `poem` (a [`poem::Middleware`]) and `tower` (a `tower::Layer`, for
//! axum, hyper and tonic).

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use http::{HeaderMap, HeaderName, Method, Uri};

use crate::client::CacheClient;
use crate::key::{Namespace, Tag};
use crate::ttl::Ttl;

mod key;
#[cfg(feature = "poem")]
mod poem;
mod serve;
mod stored;
#[cfg(feature = "tower")]
mod tower;

pub use key::Query;
#[cfg(feature = "poem")]
pub use poem::CachedEndpoint;
pub use serve::{Plan, Prepared, Served, mark_bypass};
#[cfg(feature = "tower")]
pub use tower::{ResponseBody, ResponseCacheLayer, ResponseCacheService};

/// The `X-Cache` header: where an answer came from.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
/// The `X-Cache-Strategy` header of a cached answer: the client's strategy.
pub const X_CACHE_STRATEGY: HeaderName = HeaderName::from_static("x-cache-strategy");

/// A number written into a route's JSON answer as it is served: see
/// [`Route::live_number`].
pub type LiveNumber = Arc<dyn Fn(&Query) -> BoxFuture<'static, Option<u64>> + Send + Sync>;

/// A GET route whose answers are cached.
#[derive(Clone)]
pub struct Route {
    name: &'static str,
    pattern: key::Pattern,
    ns: Namespace,
    ttl: Ttl,
    tags: Vec<Tag>,
    vary: Vec<HeaderName>,
    query: Option<Vec<String>>,
    pass_with: Vec<String>,
    others_pass: bool,
    normalize: Option<fn(&mut Query)>,
    marker: Option<Vec<u8>>,
    live: Option<(Vec<u8>, LiveNumber)>,
    soft: bool,
    credentials: bool,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("name", &self.name)
            .field("pattern", &self.pattern)
            .field("ns", &self.ns.name())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn member_key(name: &str) -> Vec<u8> {
    format!("\"{name}\":").into_bytes()
}

impl Route {
    /// The route at `path` (`/pets/{id}`: a `{…}` segment matches any one segment; `*`
    /// matches every path, for a layer put on one handler), its answers stored in `ns`
    /// for `ttl`.
    #[must_use]
    pub fn new(path: &str, ns: &Namespace, ttl: Ttl) -> Self {
        Self {
            name: "",
            pattern: key::Pattern::parse(path),
            ns: ns.clone(),
            ttl,
            tags: Vec::new(),
            vary: Vec::new(),
            query: None,
            pass_with: Vec::new(),
            others_pass: false,
            normalize: None,
            marker: None,
            live: None,
            soft: false,
            credentials: false,
        }
    }

    /// Its name (an operation id), carried by its cached answers as [`RouteName`].
    #[must_use]
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// Tags every answer of the route carries (a handler adds more through
    /// [`ResponseTags`]).
    #[must_use]
    pub fn tags(mut self, tags: impl IntoIterator<Item = Tag>) -> Self {
        self.tags.extend(tags);
        self
    }

    /// The answer varies by the request header `name` (`Accept`, say): its values are
    /// part of the key.
    #[must_use]
    pub fn vary(mut self, name: HeaderName) -> Self {
        self.vary.push(name);
        self
    }

    /// Only these query parameters make the key (the handler ignores the others);
    /// by default every parameter does.
    #[must_use]
    pub fn query_params(mut self, names: &[&str]) -> Self {
        self.query = Some(names.iter().map(|&n| n.to_owned()).collect());
        self
    }

    /// A request carrying any of these query parameters is the handler's alone: it
    /// answers untouched, neither looked up nor stored (a `GET /pets?ids=..` the handler
    /// reads another way, say).
    #[must_use]
    pub fn pass_with(mut self, names: &[&str]) -> Self {
        self.pass_with.extend(names.iter().map(|&n| n.to_owned()));
        self
    }

    /// A request carrying a query parameter outside [`Route::query_params`] (and
    /// [`Route::pass_with`]) is the handler's alone, as for `pass_with`: for a handler
    /// that refuses parameters it does not know. Without it they are left out of the key.
    #[must_use]
    pub fn others_pass(mut self) -> Self {
        self.others_pass = true;
        self
    }

    /// Before keying, `f` rewrites the (decoded, sorted) query as the handler reads it,
    /// so equivalent requests share one entry: fills in defaults, normalises case.
    #[must_use]
    pub fn normalize(mut self, f: fn(&mut Query)) -> Self {
        self.normalize = Some(f);
        self
    }

    /// The answer is a JSON object with a top-level boolean member `name` saying
    /// whether it came from the cache (the seed's `cached`): the handler writes
    /// `false`, a hit says `true`, spliced once when the answer is stored. An answer
    /// without it is not stored.
    #[must_use]
    pub fn marker(mut self, name: &str) -> Self {
        self.marker = Some(member_key(name));
        self
    }

    /// The top-level number member `name` of the JSON answer is not stored but
    /// written in at each answer, from `value` (a list's total kept apart from its
    /// rows, say); `value` answering `None` sends the request to the handler.
    #[must_use]
    pub fn live_number(mut self, name: &str, value: LiveNumber) -> Self {
        self.live = Some((member_key(name), value));
        self
    }

    /// Soft invalidation (the namespace must have it in the client, see
    /// [`crate::CacheClientBuilder::soft_invalidation`]): an invalidated answer is
    /// served (`STALE`) within the bound while the handler runs again behind it.
    #[must_use]
    pub fn soft(mut self) -> Self {
        self.soft = true;
        self
    }

    /// Requests carrying `Authorization` or `Cookie` may share this route's answers
    /// (RFC 9111 §3.5: only when they do not depend on who asks).
    #[must_use]
    pub fn shared_with_credentials(mut self) -> Self {
        self.credentials = true;
        self
    }
}

/// The name of the [`Route`] a cached answer was served under, in the answer's
/// extensions (for metrics labels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteName(pub &'static str);

/// Where a handler says which tags its answer carries: in the request's extensions on
/// a cached route's miss (absent otherwise, for example under `BYPASS`).
#[derive(Clone, Debug, Default)]
pub struct ResponseTags(Arc<Mutex<Vec<Tag>>>);

impl ResponseTags {
    /// The answer carries `tags` (as well as its route's).
    pub fn set(&self, tags: Vec<Tag>) {
        *self.lock() = tags;
    }

    fn take(&self) -> Vec<Tag> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Tag>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// See the module docs. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ResponseCache {
    inner: Arc<Inner>,
}

#[derive(Clone, Debug)]
struct Inner {
    client: CacheClient,
    routes: Vec<Arc<Route>>,
}

impl ResponseCache {
    /// Caches answers through `client`; add the routes with [`ResponseCache::route`].
    #[must_use]
    pub fn new(client: CacheClient) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                routes: Vec::new(),
            }),
        }
    }

    /// Caches `route` too (the first route a path matches is its route).
    #[must_use]
    pub fn route(mut self, route: Route) -> Self {
        Arc::make_mut(&mut self.inner).routes.push(Arc::new(route));
        self
    }

    /// The client answers are cached through.
    #[must_use]
    pub fn client(&self) -> &CacheClient {
        &self.inner.client
    }

    /// What to do with a request: see [`Plan`].
    #[must_use]
    pub fn plan(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Plan {
        serve::plan(self, method, uri, headers)
    }
}
