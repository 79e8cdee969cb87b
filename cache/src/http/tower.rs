//! The tower adapter: [`ResponseCacheLayer`] is a `tower::Layer`, for axum
//! (`Router::layer`), hyper and tonic. The service it wraps must be `Clone` (a load
//! runs on its own clone) and its request body `Default` (a load that runs again is
//! a `GET` rebuilt without the original body).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use http_body_util::{BodyExt, Either, Full};
use tower_layer::Layer;
use tower_service::Service;

use super::{Plan, ResponseCache, ResponseTags, Served, mark_bypass};

/// The body of an answer: the handler's own, streamed (not a cached route), or bytes.
pub type ResponseBody<B> = Either<B, Full<Bytes>>;

/// A `tower::Layer` caching the routes of a [`ResponseCache`].
#[derive(Clone, Debug)]
pub struct ResponseCacheLayer(ResponseCache);

impl ResponseCacheLayer {
    /// Caches `cache`'s routes in front of the service it wraps.
    #[must_use]
    pub fn new(cache: ResponseCache) -> Self {
        Self(cache)
    }
}

impl ResponseCache {
    /// This cache as a `tower::Layer`.
    #[must_use]
    pub fn layer(&self) -> ResponseCacheLayer {
        ResponseCacheLayer(self.clone())
    }
}

impl<S> Layer<S> for ResponseCacheLayer {
    type Service = ResponseCacheService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResponseCacheService {
            inner,
            cache: self.0.clone(),
        }
    }
}

/// The service [`ResponseCacheLayer`] wraps.
#[derive(Clone, Debug)]
pub struct ResponseCacheService<S> {
    inner: S,
    cache: ResponseCache,
}

type Parts = (Uri, Version, HeaderMap);

impl<S, B, RB> Service<Request<B>> for ResponseCacheService<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Default + Send + 'static,
    RB: Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<ResponseBody<RB>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The clone that was polled ready answers this request.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let prepared = match self.cache.plan(req.method(), req.uri(), req.headers()) {
            Plan::Pass => {
                let call = inner.call(req);
                return Box::pin(async move { Ok(call.await?.map(Either::Left)) });
            }
            Plan::Bypass => {
                let call = inner.call(req);
                return Box::pin(async move {
                    let mut resp = call.await?;
                    mark_bypass(resp.headers_mut());
                    Ok(resp.map(Either::Left))
                });
            }
            Plan::Cache(p) => p,
        };
        let cache = self.cache.clone();
        Box::pin(async move {
            let method = req.method().clone();
            *req.method_mut() = Method::GET;
            req.extensions_mut().insert(prepared.tags().clone());
            let parts: Parts = (req.uri().clone(), req.version(), req.headers().clone());
            let slot = Arc::new(Slot {
                tags: prepared.tags().clone(),
                first: Mutex::new(Some(req)),
                parts,
            });
            let run = {
                let (svc, slot) = (inner.clone(), slot.clone());
                move || {
                    let (mut svc, req) = (svc.clone(), slot.for_load());
                    async move {
                        std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
                        let resp = svc.call(req).await?;
                        Ok(buffered(resp).await)
                    }
                }
            };
            match cache.serve(prepared, run).await {
                Served::Answer(resp) | Served::Own(Ok(resp)) => {
                    Ok(resp.map(|b| Either::Right(Full::new(b))))
                }
                Served::Own(Err(e)) => Err(e),
                Served::Pass => {
                    std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
                    let mut resp = inner.call(slot.for_pass(method)).await?;
                    mark_bypass(resp.headers_mut());
                    Ok(resp.map(Either::Left))
                }
            }
        })
    }
}

/// The handler's answer with its body read whole; a body that fails midway is a `502`
/// (and is not stored).
async fn buffered<RB: Body<Data = Bytes>>(resp: Response<RB>) -> Response<Bytes> {
    let (parts, body) = resp.into_parts();
    match body.collect().await {
        Ok(body) => Response::from_parts(parts, body.to_bytes()),
        Err(_) => {
            let mut resp = Response::new(Bytes::new());
            *resp.status_mut() = StatusCode::BAD_GATEWAY;
            resp
        }
    }
}

/// A cached route's request: whole for the first load; a load that runs again, or the
/// uncached fallback, gets one rebuilt from its method, URI, version and headers with an
/// empty body.
struct Slot<B> {
    tags: ResponseTags,
    first: Mutex<Option<Request<B>>>,
    parts: Parts,
}

impl<B: Default> Slot<B> {
    fn take(&self) -> Option<Request<B>> {
        self.first
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    fn rebuilt(&self, method: Method) -> Request<B> {
        let (uri, version, headers) = &self.parts;
        let mut req = Request::new(B::default());
        *req.method_mut() = method;
        *req.uri_mut() = uri.clone();
        *req.version_mut() = *version;
        *req.headers_mut() = headers.clone();
        req
    }

    fn for_load(&self) -> Request<B> {
        self.take().unwrap_or_else(|| {
            let mut req = self.rebuilt(Method::GET);
            req.extensions_mut().insert(self.tags.clone());
            req
        })
    }

    fn for_pass(&self, method: Method) -> Request<B> {
        match self.take() {
            Some(mut req) => {
                req.extensions_mut().remove::<ResponseTags>();
                *req.method_mut() = method;
                req
            }
            None => self.rebuilt(method),
        }
    }
}
