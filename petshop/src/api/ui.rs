//! The page at `/`: a small web app over the same JSON API (pets list, create, edit,
//! delete, and a live cache panel), served from files compiled into the binary.
//!
//! Plain HTML, CSS and ES modules from `petshop/static/`: no build step, no third-party
//! JavaScript. Mounted beside the OpenAPI service, not in it, so the spec stays the
//! API's. Every file is answered with `Cache-Control: no-cache` and an `ETag`: the
//! names carry no version, so a browser revalidates each load (a 304 while unchanged)
//! and never mixes the files of two builds.

use poem::http::{StatusCode, header};
use poem::web::Path;
use poem::{
    Endpoint, IntoEndpoint, IntoResponse, PathPattern, Request, Response, RouteMethod, get, handler,
};

use crate::api::error::json_error;

/// One file of the page.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    etag: u64,
}

macro_rules! asset {
    ($name:literal, $content_type:expr) => {{
        const BYTES: &[u8] = include_bytes!(concat!("../../static/", $name));
        Asset {
            name: $name,
            content_type: $content_type,
            bytes: BYTES,
            etag: fnv1a(BYTES),
        }
    }};
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file served under `/ui/`, and `index.html` at `/`.
static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("pets.js", JS),
    asset!("panel.js", JS),
    asset!("plot.js", JS),
    asset!("favicon.svg", "image/svg+xml"),
];

/// The page may load and call only its own origin.
const CSP: &str = "default-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

/// FNV-1a, 64 bits: an ETag computed at compile time.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

fn respond(req: &Request, asset: &Asset) -> Response {
    let etag = format!("\"{:016x}\"", asset.etag);
    let fresh = req
        .header(header::IF_NONE_MATCH)
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let builder = Response::builder()
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::ETAG, etag)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if fresh {
        return builder.status(StatusCode::NOT_MODIFIED).finish();
    }
    let builder = if asset.name == "index.html" {
        builder.header(header::CONTENT_SECURITY_POLICY, CSP)
    } else {
        builder
    };
    builder.content_type(asset.content_type).body(asset.bytes)
}

#[handler]
fn index(req: &Request) -> Response {
    let mut resp = respond(req, find("index.html").expect("index.html is an asset"));
    resp.set_data(PathPattern("/".into())); // the route /metrics counts it under
    resp
}

#[handler]
fn file(req: &Request, Path(name): Path<String>) -> Response {
    match find(&name).filter(|a| a.name != "index.html") {
        Some(asset) => respond(req, asset),
        None => json_error(StatusCode::NOT_FOUND, format!("no file /ui/{name}"), None),
    }
}

/// `inner` (the API, nested at `/`), with the page answering `GET /` and `HEAD /`.
///
/// The page cannot be a route of its own beside the API: poem's router hands `/` to
/// an endpoint nested at `/` before any route registered at `/`.
#[must_use]
pub fn with_page<E: IntoEndpoint>(inner: E) -> WithPage<E::Endpoint> {
    WithPage {
        inner: inner.into_endpoint(),
        page: get(index),
    }
}

/// See [`with_page`].
pub struct WithPage<E> {
    inner: E,
    page: RouteMethod,
}

impl<E: Endpoint> Endpoint for WithPage<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if req.uri().path() == "/" {
            self.page.call(req).await
        } else {
            self.inner.call(req).await.map(IntoResponse::into_response)
        }
    }
}

/// `GET /ui/:file` (and `HEAD`): the page's scripts, styles and icon.
#[must_use]
pub fn files() -> impl Endpoint {
    get(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_names_is_served() {
        let sources: String = ASSETS
            .iter()
            .filter(|a| a.name.ends_with(".html") || a.name.ends_with(".js"))
            .map(|a| String::from_utf8_lossy(a.bytes).into_owned())
            .collect();
        // `/ui/x` in the HTML, `./x.js` in the modules' imports.
        for named in sources
            .split(['"', '\''])
            .filter_map(|s| s.strip_prefix("/ui/").or_else(|| s.strip_prefix("./")))
        {
            assert!(
                find(named).is_some(),
                "{named} is referenced but not served"
            );
        }
    }

    #[test]
    fn etags_differ_between_files() {
        let mut tags: Vec<u64> = ASSETS.iter().map(|a| a.etag).collect();
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(tags.len(), ASSETS.len());
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
    }
}
