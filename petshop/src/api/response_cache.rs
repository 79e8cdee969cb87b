//! Cached responses: the seed's `@cache_response(ttl)`, the Poem way.
//!
//! [`ResponseCache`] is a middleware for GET routes. For a route it knows, it turns the
//! query into canonical parameters with a hand-written parser ([`CachedRoute`]), looks
//! the encoded response up through the cache client (tags, generations, recovery and
//! holds all apply), and on a hit writes the stored bytes as they are: no handler, no
//! parameter parsing by poem-openapi, no decode, no clone of a value, no JSON encoding.
//! The stored body already says `"cached":true` (spliced once, when it was filled); the
//! stored value also holds the content type.
//!
//! A list page is stored without its `total`: a create or a delete changes the totals
//! of many lists but the rows of few pages, so the total is written into the page's
//! bytes as it is answered, summed from the per species and age counts the cache
//! keeps ([`crate::service::pets::PetService::total`]).
//!
//! On a miss the handler runs as usual, tells the middleware the tags of its answer
//! through a [`TagSink`] in the request's extensions, and its `200` answer is stored.
//! A query the parser does not take (an error, or anything unusual) goes to the
//! handler uncached, which answers it exactly as before.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cache::{Fetched, Namespace, Source, Tag, Ttl};
use poem::http::header::CONTENT_TYPE;
use poem::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::OperationId;

mod body;
mod canonical;

use crate::cache_layer::CacheLayer;
use crate::service::pets::PetService;
use body::{pack, spliced, unpack, unspliced, with_total, without_total};
pub use canonical::{Canonical, pet_path, pets_query, stats_path};

/// A GET route whose answers are cached as encoded bytes.
#[derive(Clone, Debug)]
pub struct CachedRoute {
    /// Its operation id in the spec (metrics label hits with it).
    pub operation: &'static str,
    /// The namespace of its entries.
    pub ns: Namespace,
    /// How long an answer is kept.
    pub ttl: Ttl,
    /// The canonical parameters of a request (its path and query string) when it is
    /// this route's, or `None`: not this route, or a query to leave to the handler
    /// uncached (invalid, or not worth the risk: repeated or encoded parameters).
    pub canonical: fn(&str, &str) -> Option<Canonical>,
    /// Its namespace has soft invalidation: an invalidated answer is served (marked
    /// `STALE`) while a reload runs behind it, within the namespace's bound.
    pub soft: bool,
}

/// Where a handler says which tags its answer carries.
#[derive(Clone, Debug, Default)]
pub struct TagSink(Arc<Mutex<Vec<Tag>>>);

impl TagSink {
    /// The answer carries `tags`.
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

/// See the module docs.
#[derive(Clone, Debug)]
pub struct ResponseCache {
    cache: CacheLayer,
    pets: PetService,
    routes: Arc<[CachedRoute]>,
}

impl ResponseCache {
    /// Caches `routes` through `cache`; lists' totals come from `pets`.
    #[must_use]
    pub fn new(cache: CacheLayer, pets: PetService, routes: Vec<CachedRoute>) -> Self {
        Self {
            cache,
            pets,
            routes: routes.into(),
        }
    }
}

impl<E: Endpoint + 'static> Middleware<E> for ResponseCache {
    type Output = ResponseCacheEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        ResponseCacheEndpoint {
            inner: Arc::new(inner),
            cache: self.cache.clone(),
            pets: self.pets.clone(),
            routes: self.routes.clone(),
        }
    }
}

/// The endpoint [`ResponseCache`] wraps.
#[derive(Debug)]
pub struct ResponseCacheEndpoint<E> {
    inner: Arc<E>,
    cache: CacheLayer,
    pets: PetService,
    routes: Arc<[CachedRoute]>,
}

impl<E: Endpoint> ResponseCacheEndpoint<E> {
    async fn pass(&self, req: Request) -> poem::Result<Response> {
        self.inner.call(req).await.map(IntoResponse::into_response)
    }

    /// A response of the stored `value` that came from `source`; `None` when the value
    /// is unreadable or its total could not be had.
    async fn answer(
        &self,
        route: &CachedRoute,
        canonical: &Canonical,
        value: &Bytes,
        source: Source,
    ) -> Option<Response> {
        let (content_type, hole, body) = unpack(value)?;
        let body = if source.is_hit() || source.is_stale() {
            body
        } else {
            Bytes::from(unspliced(&body)?)
        };
        let body = match (hole, &canonical.total_of) {
            (None, None) => body,
            (Some(hole), Some(of)) => with_total(&body, hole, self.pets.total(of).await.ok()?),
            _ => return None,
        };
        let mut resp = Response::builder()
            .status(StatusCode::OK)
            .header(
                CONTENT_TYPE,
                HeaderValue::from_maybe_shared(content_type).ok()?,
            )
            .header(super::X_CACHE, HeaderValue::from_static(source.as_header()))
            .header(
                "x-cache-strategy",
                HeaderValue::from_static(self.cache.strategy_name()),
            )
            .body(body);
        resp.set_data(OperationId(route.operation));
        Some(resp)
    }
}

impl<E: Endpoint + 'static> Endpoint for ResponseCacheEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        if req.method() != Method::GET {
            return self.pass(req).await;
        }
        let (path, query) = (req.uri().path(), req.uri().query().unwrap_or_default());
        let Some((route, canonical)) = self
            .routes
            .iter()
            .find_map(|r| (r.canonical)(path, query).map(|p| (r, p)))
        else {
            return self.pass(req).await;
        };
        let sink = TagSink::default();
        req.extensions_mut().insert(sink.clone());
        // The handler's own answer, for the caller that ran it.
        let own: Arc<Mutex<Option<poem::Result<Response>>>> = Arc::default();
        let total_route = canonical.total_of.is_some();
        let tags_of = {
            let sink = sink.clone();
            move |_: &Bytes| sink.take()
        };
        // The request stays here until a load takes it: a hit copies nothing of it.
        let slot = Arc::new(RequestSlot::new(req, sink));
        let loader = {
            let (inner, own, slot) = (self.inner.clone(), own.clone(), slot.clone());
            move || {
                let (inner, own, req) = (inner.clone(), own.clone(), slot.for_load());
                async move {
                    Ok::<_, std::convert::Infallible>(
                        load_answer(&*inner, req, &own, total_route).await,
                    )
                }
            }
        };
        let (ns, params) = (&route.ns, canonical.params.clone());
        let fetched: Result<Fetched<Bytes>, _> = if route.soft {
            // Soft invalidation: an invalidated page is served at once while a reload
            // runs behind it, so the loader may run again, on a task of its own, with
            // a request rebuilt from this one (the first run takes this one).
            self.cache
                .response_revalidating(ns, params, route.ttl, tags_of, loader)
                .await
        } else {
            self.cache
                .response(ns, params, route.ttl, tags_of, loader)
                .await
        };
        if let Some(own) = own.lock().expect("own").take() {
            // This request ran the handler: its answer, as it is, unless the cache was
            // off or must not be trusted now (a bypass, whatever the handler said).
            return own.map(|mut resp| {
                if let Ok(f) = &fetched
                    && f.source == Source::Bypass
                {
                    resp.headers_mut().insert(
                        super::X_CACHE,
                        HeaderValue::from_static(f.source.as_header()),
                    );
                }
                resp
            });
        }
        if let Ok(f) = fetched
            && let Some(resp) = self.answer(route, &canonical, &f.value, f.source).await
        {
            return Ok(resp);
        }
        // A load this request joined failed, or its value is unreadable: answer it
        // uncached, as if this middleware were not here.
        self.pass(slot.for_pass()).await
    }
}

/// A cached route's request: kept whole until a load takes it (a hit copies nothing of
/// it); a load that runs again, or the uncached fallback, gets a GET rebuilt from its
/// URI and headers, copied when the first load took it.
struct RequestSlot {
    sink: TagSink,
    state: Mutex<SlotState>,
}

/// The request, until a load takes it; its URI and headers, once one has.
type SlotState = (Option<Request>, Option<(Uri, HeaderMap)>);

impl RequestSlot {
    fn new(req: Request, sink: TagSink) -> Self {
        Self {
            sink,
            state: Mutex::new((Some(req), None)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The request a load runs: this one the first time, with the tag sink.
    fn for_load(&self) -> Request {
        let mut state = self.lock();
        if let Some(req) = state.0.take() {
            state.1 = Some((req.uri().clone(), req.headers().clone()));
            return req;
        }
        let mut again = rebuilt(state.1.as_ref());
        again.extensions_mut().insert(self.sink.clone());
        again
    }

    /// The request to answer uncached: without the tag sink (the handler then says
    /// `BYPASS`).
    fn for_pass(&self) -> Request {
        let mut state = self.lock();
        match state.0.take() {
            Some(mut req) => {
                req.extensions_mut().remove::<TagSink>();
                req
            }
            None => rebuilt(state.1.as_ref()),
        }
    }
}

/// A GET of `parts`' URI with its headers.
fn rebuilt(parts: Option<&(Uri, HeaderMap)>) -> Request {
    let mut again = Request::builder().method(Method::GET);
    if let Some((uri, _)) = parts {
        again = again.uri(uri.clone());
    }
    let mut again = again.finish();
    if let Some((_, headers)) = parts {
        *again.headers_mut() = headers.clone();
    }
    again
}

/// Runs the handler for `req` and returns what to store: the encoded answer (marked
/// `"cached":true`, its total taken out when `total_route`), or nothing when it is not
/// storable (an error, a stale fallback, not a JSON object with the marker). The
/// handler's own answer goes to `own`, for the caller that ran it.
async fn load_answer<E: Endpoint>(
    inner: &E,
    req: Request,
    own: &Mutex<Option<poem::Result<Response>>>,
    total_route: bool,
) -> Bytes {
    let nothing = Bytes::new();
    let resp = match inner.call(req).await {
        Ok(out) => out.into_response(),
        Err(e) => {
            *own.lock().expect("own") = Some(Err(e));
            return nothing;
        }
    };
    // Only a fresh answer is stored: not an error, not a stale fallback.
    let stale = resp
        .headers()
        .get(super::X_CACHE)
        .is_some_and(|v| v.as_bytes() == Source::Stale.as_header().as_bytes());
    if resp.status() != StatusCode::OK || stale {
        *own.lock().expect("own") = Some(Ok(resp));
        return nothing;
    }
    let (parts, body) = resp.into_parts();
    let body = match body.into_bytes().await {
        Ok(body) => body,
        Err(e) => {
            *own.lock().expect("own") = Some(Err(e.into()));
            return nothing;
        }
    };
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    let stored = spliced(&body).and_then(|b| {
        if total_route {
            let (b, hole) = without_total(&b)?;
            pack(content_type, Some(hole), &b)
        } else {
            pack(content_type, None, &b)
        }
    });
    *own.lock().expect("own") = Some(Ok(Response::from_parts(parts, body.into())));
    stored.unwrap_or(nothing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_query_is_canonical_and_refuses_what_the_handler_would() {
        let pets_query = |q| super::pets_query("/pets", q);
        assert!(super::pets_query("/pets/1", "").is_none());
        assert!(pet_path("/pets/12", "x=1").is_some() && stats_path("/stats", "").is_some());
        for bad in [
            "/pets/",
            "/pets/-1",
            "/pets/1x",
            "/pets/1/2",
            "/pets/99999999999999999999",
        ] {
            assert!(pet_path(bad, "").is_none(), "{bad}");
        }
        let a = pets_query("species=cat&limit=10").unwrap();
        let b = pets_query("limit=10&species=cat&offset=0&unknown=1").unwrap();
        assert_eq!(a, b);
        assert_eq!(pets_query("species=Cat&limit=10").unwrap(), a);
        assert_eq!(
            pets_query("").unwrap(),
            pets_query("limit=10&offset=0").unwrap()
        );
        for bad in [
            "species=",
            "species=cat2",
            "min_age=101",
            "min_age=-1",
            "limit=0",
            "limit=101",
            "offset=1000000001",
            "limit=abc",
            "species=cat&species=dog",
            "species=c%61t",
            "limit=1&limit=2",
        ] {
            assert!(pets_query(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_cached_marker_is_spliced_where_it_is() {
        let body = br#"{"pets":[],"total":0,"cached":false}"#;
        let on = spliced(body).unwrap();
        assert_eq!(on, br#"{"pets":[],"total":0,"cached":true}"#);
        assert_eq!(unspliced(&on).unwrap(), body);
        let middle = br#"{"age":3,"cached":false,"name":"x\"cached\":false"}"#;
        assert_eq!(
            spliced(middle).unwrap(),
            br#"{"age":3,"cached":true,"name":"x\"cached\":false"}"#
        );
        assert_eq!(
            spliced(br#"{"a":"b","cached":true}"#).unwrap(),
            br#"{"a":"b","cached":true}"#
        );
        assert!(
            spliced(br#"{"a":{"cached":false}}"#).is_none(),
            "only the top level"
        );
        assert!(spliced(br#"[{"cached":false}]"#).is_none());
        let sorted = br#"{"cached":false,"x":{"cached":false}}"#;
        assert_eq!(
            spliced(sorted).unwrap(),
            br#"{"cached":true,"x":{"cached":false}}"#
        );
        let packed = pack(b"application/json", None, &on).unwrap();
        let (ct, hole, b) = unpack(&packed).unwrap();
        assert_eq!(
            (ct.as_ref(), hole, b.as_ref()),
            (&b"application/json"[..], None, &on[..])
        );
    }

    #[test]
    fn a_page_is_stored_without_its_total_and_answered_with_the_current_one() {
        let body = br#"{"pets":[{"id":1,"total":5}],"total":120,"limit":10,"cached":true}"#;
        let (rest, hole) = without_total(body).unwrap();
        assert_eq!(
            rest,
            br#"{"pets":[{"id":1,"total":5}],"total":,"limit":10,"cached":true}"#
        );
        let packed = pack(b"application/json", Some(hole), &rest).unwrap();
        let (_, got, stored) = unpack(&packed).unwrap();
        assert_eq!(got, Some(hole));
        assert_eq!(with_total(&stored, hole, 120).as_ref(), body);
        assert_eq!(
            with_total(&stored, hole, 0).as_ref(),
            br#"{"pets":[{"id":1,"total":5}],"total":0,"limit":10,"cached":true}"#
        );
        assert_eq!(
            with_total(&stored, hole, u64::MAX).as_ref(),
            format!(
                r#"{{"pets":[{{"id":1,"total":5}}],"total":{},"limit":10,"cached":true}}"#,
                u64::MAX
            )
            .as_bytes()
        );
        assert!(without_total(br#"{"pets":[],"total":"x"}"#).is_none());
        assert!(without_total(br#"{"pets":[{"total":1}]}"#).is_none());
        // A hole past the body is garbage, not a panic.
        let mut bad = pack(b"application/json", Some(3), b"{}").unwrap().to_vec();
        bad[1 + 16 + 3] = 9;
        assert!(unpack(&Bytes::from(bad)).is_none());
        assert!(unpack(&Bytes::from_static(b"\x02ab")).is_none());
    }
}
