//! The Poem adapter: [`ResponseCache`] is a [`Middleware`]; put it around the routes
//! (`Route::new()….with(cache)`), outside the handlers that fill [`super::ResponseTags`].

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use poem::http::{HeaderMap, Method, Uri};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, ResponseParts};

use super::{Plan, ResponseCache, ResponseTags, Served, mark_bypass};

impl<E: Endpoint + 'static> Middleware<E> for ResponseCache {
    type Output = CachedEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        CachedEndpoint {
            inner: Arc::new(inner),
            cache: self.clone(),
        }
    }
}

/// The endpoint [`ResponseCache`] wraps.
#[derive(Debug)]
pub struct CachedEndpoint<E> {
    inner: Arc<E>,
    cache: ResponseCache,
}

impl<E: Endpoint + 'static> Endpoint for CachedEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let prepared = match self.cache.plan(req.method(), req.uri(), req.headers()) {
            Plan::Pass => return self.inner.call(req).await.map(IntoResponse::into_response),
            Plan::Bypass => return bypassed(self.inner.call(req).await),
            Plan::Cache(p) => p,
        };
        let method = req.method().clone();
        req.set_method(Method::GET);
        req.extensions_mut().insert(prepared.tags().clone());
        // The request stays here until a load takes it: a hit copies nothing of it.
        let slot = Arc::new(Slot {
            tags: prepared.tags().clone(),
            state: Mutex::new((Some(req), None)),
        });
        let run = {
            let (inner, slot) = (self.inner.clone(), slot.clone());
            move || {
                let (inner, req) = (inner.clone(), slot.for_load());
                async move {
                    let resp = inner.call(req).await?.into_response();
                    to_http(resp).await
                }
            }
        };
        match self.cache.serve(prepared, run).await {
            Served::Answer(resp) | Served::Own(Ok(resp)) => Ok(from_http(resp)),
            Served::Own(Err(e)) => Err(e),
            Served::Pass => bypassed(self.inner.call(slot.for_pass(method)).await),
        }
    }
}

fn bypassed<T: IntoResponse>(out: poem::Result<T>) -> poem::Result<Response> {
    out.map(|out| {
        let mut resp = out.into_response();
        mark_bypass(resp.headers_mut());
        resp
    })
}

/// A cached route's request: kept whole until a load takes it; a load that runs again
/// (soft invalidation), or the uncached fallback, gets a GET rebuilt from its URI and
/// headers, copied when the first load took it.
struct Slot {
    tags: ResponseTags,
    state: Mutex<SlotState>,
}

/// The request, until a load takes it; its URI and headers, once one has.
type SlotState = (Option<Request>, Option<(Uri, HeaderMap)>);

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn for_load(&self) -> Request {
        let mut state = self.lock();
        if let Some(req) = state.0.take() {
            state.1 = Some((req.uri().clone(), req.headers().clone()));
            return req;
        }
        let mut again = rebuilt(state.1.as_ref(), Method::GET);
        again.extensions_mut().insert(self.tags.clone());
        again
    }

    /// The request to answer uncached, as it came (its method, no tag sink).
    fn for_pass(&self, method: Method) -> Request {
        let mut state = self.lock();
        match state.0.take() {
            Some(mut req) => {
                req.extensions_mut().remove::<ResponseTags>();
                req.set_method(method);
                req
            }
            None => rebuilt(state.1.as_ref(), method),
        }
    }
}

fn rebuilt(parts: Option<&(Uri, HeaderMap)>, method: Method) -> Request {
    let mut again = Request::builder().method(method);
    if let Some((uri, _)) = parts {
        again = again.uri(uri.clone());
    }
    let mut again = again.finish();
    if let Some((_, headers)) = parts {
        *again.headers_mut() = headers.clone();
    }
    again
}

async fn to_http(resp: Response) -> poem::Result<http::Response<Bytes>> {
    let (parts, body) = resp.into_parts();
    let body = body.into_bytes().await?;
    let mut out = http::Response::new(body);
    *out.status_mut() = parts.status;
    *out.version_mut() = parts.version;
    *out.headers_mut() = parts.headers;
    *out.extensions_mut() = parts.extensions;
    Ok(out)
}

fn from_http(resp: http::Response<Bytes>) -> Response {
    let (parts, body) = resp.into_parts();
    Response::from_parts(
        ResponseParts {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            extensions: parts.extensions,
        },
        body.into(),
    )
}
