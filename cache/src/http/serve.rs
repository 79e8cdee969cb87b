//! One cached request, from plan to answer: which route, whether it may be shared,
//! the lookup with the handler as its loader, and the answer written from the stored
//! bytes (`HEAD`, `304`, the live number, the marker).

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, ETAG, IF_NONE_MATCH,
    SET_COOKIE,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};

use super::key::{Query, params};
use super::stored::{etag_header, etag_of, pack, unpack, with_marker, with_number, without_number};
use super::{ResponseCache, ResponseTags, Route, RouteName, X_CACHE, X_CACHE_STRATEGY};
use crate::client::Part;
use crate::typed::{Fetched, Source};

/// The handler's answer, or its error.
type Answered<X> = Result<Response<Bytes>, X>;

/// What to do with a request ([`ResponseCache::plan`]).
#[derive(Debug)]
pub enum Plan {
    /// Not a cached route (or not a `GET` / `HEAD`): the handler answers, untouched.
    Pass,
    /// A cached route, but this request must not share answers (it carries
    /// credentials): the handler answers, marked `X-Cache: BYPASS`.
    Bypass,
    /// Look it up: [`ResponseCache::serve`].
    Cache(Prepared),
}

/// A request a route caches: its key and how to answer it.
#[derive(Debug)]
pub struct Prepared {
    route: usize,
    part: Part,
    query: Query,
    head: bool,
    if_none_match: Option<HeaderValue>,
    tags: ResponseTags,
}

impl Prepared {
    /// What the handler tells its tags through: put it in the request's extensions.
    #[must_use]
    pub fn tags(&self) -> &ResponseTags {
        &self.tags
    }

    /// The request is a `HEAD` (the handler must be run as a `GET`).
    #[must_use]
    pub fn is_head(&self) -> bool {
        self.head
    }
}

/// How [`ResponseCache::serve`] answered.
#[derive(Debug)]
pub enum Served<X> {
    /// From the cache (a hit, a `304`, or the answer of a load this request joined).
    Answer(Response<Bytes>),
    /// The handler ran for this request: its own answer (or error), with `X-Cache`
    /// and the `ETag` of what was stored.
    Own(Result<Response<Bytes>, X>),
    /// A load this request joined stored nothing it can use: run the handler
    /// uncached ([`mark_bypass`] its answer).
    Pass,
}

pub(super) fn plan(cache: &ResponseCache, method: &Method, uri: &Uri, headers: &HeaderMap) -> Plan {
    let head = method == Method::HEAD;
    if !head && method != Method::GET {
        return Plan::Pass;
    }
    let path = uri.path();
    let Some((index, route)) = cache
        .inner
        .routes
        .iter()
        .enumerate()
        .find(|(_, r)| r.pattern.matches(path))
    else {
        return Plan::Pass;
    };
    if !route.credentials && (headers.contains_key(AUTHORIZATION) || headers.contains_key(COOKIE)) {
        return Plan::Bypass;
    }
    let query = Query::parse(uri.query().unwrap_or_default());
    if route.pass_with.iter().any(|name| query.get(name).is_some()) {
        return Plan::Pass;
    }
    if let (true, Some(names)) = (route.others_pass, &route.query)
        && query.names().any(|n| !names.iter().any(|k| k == n))
    {
        return Plan::Pass;
    }
    // The whole query is kept only for a live number (it is written per answer).
    let (mut keyed, query) = match (&route.query, route.live.is_some()) {
        (Some(names), true) => (query.only(names), query),
        (Some(names), false) => (query.only(names), Query::default()),
        (None, true) => (query.clone(), query),
        (None, false) => (query, Query::default()),
    };
    if let Some(normalize) = route.normalize {
        normalize(&mut keyed);
    }
    Plan::Cache(Prepared {
        route: index,
        part: Part::Query(params(path, &keyed, &route.vary, headers)),
        query,
        head,
        if_none_match: headers.get(IF_NONE_MATCH).cloned(),
        tags: ResponseTags::default(),
    })
}

/// Sets `X-Cache: BYPASS` on an answer the handler gave uncached, unless it says
/// where it came from itself.
pub fn mark_bypass(headers: &mut HeaderMap) {
    if !headers.contains_key(X_CACHE) {
        headers.insert(
            X_CACHE,
            HeaderValue::from_static(Source::Bypass.as_header()),
        );
    }
}

impl ResponseCache {
    /// Answers `prepared` from the cache, or from `run` (the handler, as a `GET`, with
    /// [`Prepared::tags`] in its extensions) whose `200` answer is stored. `run` may
    /// run again later, on a task of its own, when the route has soft invalidation.
    pub async fn serve<X, F, Fut>(&self, mut prepared: Prepared, run: F) -> Served<X>
    where
        X: Send + 'static,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<Bytes>, X>> + Send + 'static,
    {
        let route = &self.inner.routes[prepared.route];
        let own: Arc<Mutex<Option<Answered<X>>>> = Arc::default();
        let loader = {
            let (own, run, stored_as) = (own.clone(), Arc::new(run), route.clone());
            move || {
                let (own, run, route) = (own.clone(), run.clone(), stored_as.clone());
                async move {
                    let result = run().await;
                    let (stored, result) = match result {
                        Ok(mut resp) => {
                            let stored = route.store(&resp);
                            if let Some((_, etag)) = &stored
                                && let Ok(v) = HeaderValue::from_str(&etag_header(*etag))
                            {
                                resp.headers_mut().insert(ETAG, v);
                            }
                            (stored.map(|(b, _)| b), Ok(resp))
                        }
                        Err(e) => (None, Err(e)),
                    };
                    *own.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(result);
                    Ok::<_, Infallible>(stored.unwrap_or_default())
                }
            }
        };
        let tags_of = {
            let (sink, fixed) = (prepared.tags.clone(), route.tags.clone());
            move |_: &Bytes| {
                let mut tags = fixed.clone();
                tags.extend(sink.take());
                tags
            }
        };
        let ttl = route.ttl;
        let ttl_for = move |b: &Bytes| (!b.is_empty()).then_some(ttl);
        let read = self
            .inner
            .client
            // The key is read once, here; the rest of `prepared` answers the request.
            .read(
                &route.ns,
                std::mem::replace(&mut prepared.part, Part::Id(0)),
                ttl,
            )
            .tags(tags_of);
        let fetched: Result<Fetched<Bytes>, _> = if route.soft {
            read.soft().ttl_for(ttl_for).load(loader).await
        } else {
            read.ttl_for(ttl_for).load(loader).await
        };
        let mine = own
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(mine) = mine {
            return Served::Own(mine.map(|mut resp| {
                let source = match &fetched {
                    Ok(f) if f.source == Source::Bypass => Source::Bypass,
                    _ => Source::Miss,
                };
                let h = resp.headers_mut();
                if source == Source::Bypass || !h.contains_key(X_CACHE) {
                    h.insert(X_CACHE, HeaderValue::from_static(source.as_header()));
                }
                finish(&prepared, resp)
            }));
        }
        if let Ok(f) = fetched
            && let Some(resp) = self.answer(route, &prepared, &f.value, f.source).await
        {
            return Served::Answer(finish(&prepared, resp));
        }
        Served::Pass
    }

    /// The answer of the stored `value` that came from `source`; `None` when it is
    /// unreadable or its live number could not be had.
    async fn answer(
        &self,
        route: &Route,
        prepared: &Prepared,
        value: &Bytes,
        source: Source,
    ) -> Option<Response<Bytes>> {
        let stored = unpack(value)?;
        let (body, etag) = match (&route.live, stored.hole) {
            (None, None) => (stored.body, stored.etag),
            (Some((_, number)), Some(hole)) => {
                let body = with_number(&stored.body, hole, number(&prepared.query).await?);
                let etag = etag_of(&body);
                (body, etag)
            }
            _ => return None,
        };
        // The answer of a load this request joined is not from the cache: the marker
        // says so again.
        let body = match &route.marker {
            Some(key) if !(source.is_hit() || source.is_stale()) => {
                Bytes::from(with_marker(&body, key, false)?)
            }
            _ => body,
        };
        let mut resp = Response::new(body);
        let h = resp.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_maybe_shared(stored.content_type).ok()?,
        );
        h.insert(X_CACHE, HeaderValue::from_static(source.as_header()));
        h.insert(
            X_CACHE_STRATEGY,
            HeaderValue::from_static(self.inner.client.strategy().as_str()),
        );
        h.insert(ETAG, HeaderValue::from_str(&etag_header(etag)).ok()?);
        resp.extensions_mut().insert(RouteName(route.name));
        Some(resp)
    }
}

impl Route {
    /// What to store of the handler's answer `resp`, and the hash of the `ETag` a hit
    /// of it carries; `None` when it is not to be shared (not a `200`, a stale
    /// fallback, private, a cookie, no marker where the route wants one).
    fn store(&self, resp: &Response<Bytes>) -> Option<(Bytes, u64)> {
        let h = resp.headers();
        let stale = h
            .get(X_CACHE)
            .is_some_and(|v| v.as_bytes() == Source::Stale.as_header().as_bytes());
        if resp.status() != StatusCode::OK || stale || !shareable(h) {
            return None;
        }
        let content_type = h
            .get(CONTENT_TYPE)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        let spliced;
        let body: &[u8] = match &self.marker {
            Some(key) => {
                spliced = with_marker(resp.body(), key, true)?;
                &spliced
            }
            None => resp.body(),
        };
        let etag = etag_of(body);
        let packed = match &self.live {
            None => pack(content_type, etag, None, body)?,
            Some((key, _)) => {
                let (rest, hole) = without_number(body, key)?;
                pack(content_type, 0, Some(hole), &rest)?
            }
        };
        Some((packed, etag))
    }
}

/// An answer a shared cache may store (RFC 9111 §3, §5.2.2): no cookie set, not
/// `private`, not `no-store`.
fn shareable(h: &HeaderMap) -> bool {
    if h.contains_key(SET_COOKIE) {
        return false;
    }
    !h.get_all(CACHE_CONTROL).iter().any(|v| {
        v.to_str().map_or(true, |v| {
            v.split(',').any(|d| {
                let d = d.trim().split(['=', ' ']).next().unwrap_or_default();
                d.eq_ignore_ascii_case("private") || d.eq_ignore_ascii_case("no-store")
            })
        })
    })
}

/// `resp` as the request asked: `304` when `If-None-Match` names its `ETag`, no body
/// (and the `GET`'s `content-length`) for a `HEAD`.
fn finish(prepared: &Prepared, mut resp: Response<Bytes>) -> Response<Bytes> {
    let etag = resp.headers().get(ETAG).cloned();
    if let (Some(inm), Some(etag)) = (&prepared.if_none_match, &etag)
        && resp.status() == StatusCode::OK
        && names(inm, etag)
    {
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        *resp.body_mut() = Bytes::new();
        resp.headers_mut().remove(CONTENT_TYPE);
        resp.headers_mut().remove(CONTENT_LENGTH);
        return resp;
    }
    if prepared.head {
        let len = resp.body().len();
        resp.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(len));
        *resp.body_mut() = Bytes::new();
    }
    resp
}

/// `If-None-Match: inm` names `etag`, by weak comparison (RFC 9110 §13.1.2).
fn names(inm: &HeaderValue, etag: &HeaderValue) -> bool {
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let (Ok(inm), Ok(etag)) = (inm.to_str(), etag.to_str()) else {
        return false;
    };
    let etag = opaque(etag);
    inm.trim() == "*" || inm.split(',').any(|t| opaque(t) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_answers_and_cookies_are_not_shared() {
        let h = |name: http::HeaderName, v: &str| {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_str(v).unwrap());
            h
        };
        assert!(shareable(&HeaderMap::new()));
        assert!(shareable(&h(CACHE_CONTROL, "public, max-age=60")));
        assert!(!shareable(&h(CACHE_CONTROL, "max-age=60, private")));
        assert!(!shareable(&h(CACHE_CONTROL, "PRIVATE=\"x\"")));
        assert!(!shareable(&h(CACHE_CONTROL, "no-store")));
        assert!(!shareable(&h(SET_COOKIE, "a=b")));
    }

    #[tokio::test]
    async fn a_parameter_the_route_passes_on_or_does_not_take_leaves_it_to_the_handler() {
        let keys = crate::KeyBuilder::new("t").unwrap();
        let client = crate::CacheClient::builder(&keys)
            .l1(crate::tier::MokaTier::builder())
            .build()
            .unwrap();
        let ns = keys.namespace("pages").unwrap();
        let cache = ResponseCache::new(client).route(
            crate::http::Route::new("/pets", &ns, crate::Ttl::secs(5))
                .query_params(&["species", "limit"])
                .pass_with(&["ids"])
                .others_pass(),
        );
        let plan = |q: &str| {
            let uri: Uri = format!("/pets{q}").parse().unwrap();
            cache.plan(&Method::GET, &uri, &HeaderMap::new())
        };
        assert!(matches!(plan(""), Plan::Cache(_)));
        assert!(matches!(plan("?limit=5&species=cat"), Plan::Cache(_)));
        assert!(matches!(plan("?ids=1,2"), Plan::Pass));
        assert!(matches!(plan("?species=cat&ids="), Plan::Pass));
        assert!(matches!(plan("?species=cat&unknown=1"), Plan::Pass));
        assert!(matches!(plan("?limit=5&=x"), Plan::Pass));
    }

    #[test]
    fn if_none_match_names_a_tag_by_weak_comparison() {
        let v = |s: &str| HeaderValue::from_str(s).unwrap();
        let etag = v("W/\"00ab\"");
        assert!(names(&v("W/\"00ab\""), &etag));
        assert!(names(&v("\"00ab\""), &etag));
        assert!(names(&v("\"x\", W/\"00ab\""), &etag));
        assert!(names(&v("*"), &etag));
        assert!(!names(&v("W/\"00ac\""), &etag));
        assert!(!names(&v(""), &etag));
    }
}
