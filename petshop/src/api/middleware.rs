//! The one middleware every request passes through.
//!
//! In order: a request id (the caller's `X-Request-Id` when it is sane, else a new one,
//! echoed back), the client address ([`ClientAddr`], set on the request for every layer
//! inside), a tracing span carrying both, the 64 KiB body limit (checked on
//! `Content-Length` and enforced while reading, so chunked bodies are bounded too),
//! every error turned into the API's JSON ([`to_json_response`]), and the request
//! counted in `/metrics` under its route template (`/pets/:id`, never the raw path).
//! The rate limiter ([`crate::api::rate_limit`]) runs just inside it, so its 429s get a
//! request id, a log line and a metric like every other answer.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Instant;

use opentelemetry::trace::TraceContextExt as _;
use poem::PathPattern;
use poem::error::ReadBodyError;
use poem::http::{HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::OperationId;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::api::client_addr::{ClientAddr, peer_ip};
use crate::api::error::{json_error, to_json_response};
use crate::config::TrustedProxies;
use crate::metrics::Metrics;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The request id header.
pub const REQUEST_ID: &str = "x-request-id";

/// See the module docs.
#[derive(Clone, Debug)]
pub struct Observe {
    metrics: Metrics,
    proxies: TrustedProxies,
}

impl Observe {
    /// Counts into `metrics`; believes the forwarding headers of `proxies` only.
    #[must_use]
    pub fn new(metrics: Metrics, proxies: TrustedProxies) -> Self {
        Self { metrics, proxies }
    }
}

impl<E: Endpoint> Middleware<E> for Observe {
    type Output = ObserveEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        ObserveEndpoint {
            inner,
            layer: self.clone(),
        }
    }
}

/// The endpoint [`Observe`] wraps around the app.
#[derive(Debug)]
pub struct ObserveEndpoint<E> {
    inner: E,
    layer: Observe,
}

fn request_id(req: &Request) -> String {
    req.header(REQUEST_ID)
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .map_or_else(|| format!("{:016x}", rand::random::<u64>()), str::to_owned)
}

/// The route template of an operation, as the spec writes it (`/pets/{id}`).
///
/// poem-openapi registers its routes as `/pets/:param0`, so the router's own pattern
/// would label metrics with names nobody reads; the spec has the real ones.
fn route_of(op: &OperationId) -> Option<&'static str> {
    static ROUTES: OnceLock<HashMap<String, String>> = OnceLock::new();
    let routes = ROUTES.get_or_init(|| {
        let spec: serde_json::Value =
            serde_json::from_str(&crate::api::spec_json()).unwrap_or_default();
        let mut map = HashMap::new();
        if let Some(paths) = spec["paths"].as_object() {
            for (path, ops) in paths {
                for op in ops.as_object().into_iter().flat_map(|o| o.values()) {
                    if let Some(id) = op["operationId"].as_str() {
                        map.insert(id.to_owned(), path.clone());
                    }
                }
            }
        }
        map
    });
    routes.get(op.0).map(String::as_str)
}

fn route_label(op: Option<&OperationId>, pattern: Option<&PathPattern>) -> String {
    op.and_then(route_of)
        .map(str::to_owned)
        .or_else(|| pattern.map(|p| p.0.to_string()))
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "unmatched".to_owned())
}

/// The route template an answer was given under, attached to the response by
/// [`respond`] (or by a layer that answered before the router), so every outer layer
/// labels it alike.
#[derive(Clone, Debug)]
pub(crate) struct RouteTemplate(pub(crate) String);

/// The response to an inner endpoint's result (an error as the API's JSON), carrying
/// its [`RouteTemplate`].
pub(crate) fn respond<T: IntoResponse>(result: poem::Result<T>) -> Response {
    match result {
        Ok(out) => {
            let mut resp = out.into_response();
            if resp.data::<RouteTemplate>().is_none() {
                // A cached answer carries its route's name instead of an operation id.
                let cached = resp
                    .data::<cache::http::RouteName>()
                    .map(|r| OperationId(r.0));
                let route = route_label(resp.data().or(cached.as_ref()), resp.data());
                resp.set_data(RouteTemplate(route));
            }
            resp
        }
        Err(err) => {
            let route = route_label(err.data(), err.data());
            let mut resp = to_json_response(err, &route);
            resp.set_data(RouteTemplate(route));
            resp
        }
    }
}

/// Reads the body within the limit and puts it back, or the response refusing it.
async fn bounded_body(req: &mut Request) -> Result<(), Response> {
    let declared = req
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    match req.take_body().into_bytes_limit(MAX_BODY_BYTES).await {
        Ok(bytes) => {
            req.set_body(bytes);
            Ok(())
        }
        Err(ReadBodyError::PayloadTooLarge) => Err(too_large()),
        Err(e) => Err(json_error(
            StatusCode::BAD_REQUEST,
            format!("cannot read the request body: {e}"),
            None,
        )),
    }
}

fn too_large() -> Response {
    json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body over {} KiB", MAX_BODY_BYTES / 1024),
        None,
    )
}

impl<E: Endpoint> Endpoint for ObserveEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let id = request_id(&req);
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let client = ClientAddr::resolve(&req, &self.layer.proxies);
        req.set_data(client);
        let peer = peer_ip(&req).map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        // `otel.*` and the dotted names are the OpenTelemetry HTTP conventions; the
        // route and status are known once the router has answered.
        let span = tracing::info_span!(
            "request",
            otel.name = %method,
            otel.kind = "server",
            request_id = %id,
            "client.address" = %client,
            "network.peer.address" = %peer,
            "http.request.method" = %method,
            "url.path" = %path,
            "http.route" = tracing::field::Empty,
            // A known API key's hash prefix, set by the rate limiter.
            api_key = tracing::field::Empty,
            "http.response.status_code" = tracing::field::Empty,
        );
        async move {
            let start = Instant::now();
            let mut resp = match bounded_body(&mut req).await {
                Err(resp) => resp,
                Ok(()) => respond(self.inner.call(req).await),
            };
            let route = resp
                .data::<RouteTemplate>()
                .map_or_else(|| "unmatched".to_owned(), |r| r.0.clone());
            let elapsed = start.elapsed();
            let status = resp.status();
            let span = tracing::Span::current();
            if !span.is_disabled() {
                // The exported span is named `GET /pets/{id}` once the route is known
                // (tracing-opentelemetry ignores a late `otel.name`); without an
                // exporter this finds no OpenTelemetry context and does nothing.
                span.context()
                    .span()
                    .update_name(format!("{method} {route}"));
            }
            span.record("http.route", route.as_str());
            span.record("http.response.status_code", status.as_u16());
            self.layer
                .metrics
                .http_request(&method, &route, status.as_u16(), elapsed);
            if let Ok(v) = id.parse() {
                resp.headers_mut().insert(REQUEST_ID, v);
            }
            if status == StatusCode::METHOD_NOT_ALLOWED
                && let Some(allow) = crate::api::allow::allow(&path)
            {
                resp.headers_mut()
                    .insert(poem::http::header::ALLOW, HeaderValue::from_static(allow));
            }
            let ms = elapsed.as_secs_f64() * 1000.0;
            if status.is_server_error() {
                tracing::error!(status = status.as_u16(), route = %route, latency_ms = ms, "request failed");
            } else {
                tracing::info!(status = status.as_u16(), route = %route, latency_ms = ms, "request");
            }
            Ok(resp)
        }
        .instrument(span)
        .await
    }
}
