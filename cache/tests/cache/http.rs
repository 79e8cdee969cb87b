//! The HTTP response cache (`cache::http`) through both adapters: a Poem endpoint and
//! an axum router behind the tower layer, each answering the same requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use cache::http::{ResponseCache, ResponseTags, Route};
use cache::testing::RedisServer;
use cache::tier::{MokaTier, RedisTier};
use cache::{CacheClient, KeyBuilder, Tag, Ttl};
use http::{HeaderMap, Method, Request, StatusCode};

use crate::support::bounded;

const TTL: Ttl = Ttl::secs(600);

/// What the handlers read and count.
#[derive(Clone, Default)]
struct Shop {
    greeting: Arc<std::sync::Mutex<String>>,
    calls: Arc<AtomicUsize>,
}

impl Shop {
    fn answer(&self, query: Option<&str>, tags: Option<&ResponseTags>) -> String {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(tags) = tags {
            tags.set(vec![Tag::new("greeting").unwrap()]);
        }
        let name = query.unwrap_or_default();
        format!(
            r#"{{"message":"{}, {name}","cached":false}}"#,
            self.greeting.lock().unwrap()
        )
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn cache(client: &CacheClient, keys: &KeyBuilder) -> ResponseCache {
    let ns = keys.namespace("greetings").unwrap();
    let private = keys.namespace("private").unwrap();
    let shared = keys.namespace("shared").unwrap();
    ResponseCache::new(client.clone())
        .route(
            Route::new("/greeting", &ns, TTL)
                .marker("cached")
                .vary(http::header::ACCEPT_LANGUAGE),
        )
        .route(Route::new("/private/{x}", &private, TTL))
        .route(Route::new("/shared", &shared, TTL).shared_with_credentials())
}

fn l1_client(keys: &KeyBuilder) -> CacheClient {
    CacheClient::builder(keys)
        .l1(MokaTier::builder().max_bytes(1 << 20))
        .build()
        .unwrap()
}

/// One answer, whole.
#[derive(Debug)]
struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Got {
    fn x_cache(&self) -> &str {
        self.headers
            .get("x-cache")
            .map_or("", |v| v.to_str().unwrap())
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// A service behind the response cache, driven with plain `http` requests.
trait Front {
    async fn send(&self, req: Request<()>) -> Got;
}

fn get(uri: &str) -> Request<()> {
    Request::builder().uri(uri).body(()).unwrap()
}

fn with(mut req: Request<()>, name: &'static str, value: &str) -> Request<()> {
    req.headers_mut().insert(name, value.parse().unwrap());
    req
}

mod poem_front {
    use super::*;
    use poem::{Endpoint, EndpointExt, IntoResponse, handler, web::Data};

    #[handler]
    fn greeting(req: &poem::Request, shop: Data<&Shop>) -> poem::Response {
        let name = req.uri().query().map(|q| q.trim_start_matches("name="));
        let body = shop.answer(name, req.extensions().get::<ResponseTags>());
        poem::Response::builder()
            .content_type("application/json")
            .body(body)
    }

    #[handler]
    fn private(req: &poem::Request, shop: Data<&Shop>) -> poem::Response {
        shop.calls.fetch_add(1, Ordering::SeqCst);
        let resp = poem::Response::builder().content_type("text/plain");
        match req.uri().path() {
            "/private/cookie" => resp.header("set-cookie", "session=1").body("mine"),
            "/private/cc" => resp.header("cache-control", "private").body("mine"),
            "/private/error" => resp.status(poem::http::StatusCode::NOT_FOUND).body("no"),
            _ => resp.body("ours"),
        }
    }

    pub(super) struct PoemFront(pub poem::endpoint::BoxEndpoint<'static, poem::Response>);

    pub(super) fn front(cache: ResponseCache, shop: Shop) -> PoemFront {
        let app = poem::Route::new()
            .at("/greeting", poem::get(greeting))
            .at("/private/:x", poem::get(private))
            .at("/shared", poem::get(private))
            .data(shop)
            .with(cache)
            .map_to_response();
        PoemFront(app.boxed())
    }

    impl Front for PoemFront {
        async fn send(&self, req: Request<()>) -> Got {
            let (parts, ()) = req.into_parts();
            let mut r = poem::Request::builder()
                .method(parts.method)
                .uri(parts.uri)
                .finish();
            *r.headers_mut() = parts.headers;
            let resp = self.0.call(r).await.unwrap().into_response();
            let (status, headers) = (resp.status(), resp.headers().clone());
            let body = resp.into_body().into_bytes().await.unwrap();
            Got {
                status,
                headers,
                body,
            }
        }
    }
}

mod axum_front {
    use super::*;
    use axum::extract::{Extension, RawQuery, State};
    use axum::response::IntoResponse;
    use http_body_util::BodyExt;
    use tower_service::Service;

    async fn greeting(
        State(shop): State<Shop>,
        RawQuery(q): RawQuery,
        tags: Option<Extension<ResponseTags>>,
    ) -> axum::response::Response {
        let name = q.as_deref().map(|q| q.trim_start_matches("name="));
        let body = shop.answer(name, tags.as_ref().map(|t| &t.0));
        ([("content-type", "application/json")], body).into_response()
    }

    async fn private(State(shop): State<Shop>, uri: http::Uri) -> axum::response::Response {
        shop.calls.fetch_add(1, Ordering::SeqCst);
        match uri.path() {
            "/private/cookie" => ([("set-cookie", "session=1")], "mine").into_response(),
            "/private/cc" => ([("cache-control", "private")], "mine").into_response(),
            "/private/error" => (StatusCode::NOT_FOUND, "no").into_response(),
            _ => "ours".into_response(),
        }
    }

    pub(super) struct AxumFront(pub axum::Router);

    pub(super) fn front(cache: ResponseCache, shop: Shop) -> AxumFront {
        let app = axum::Router::new()
            .route("/greeting", axum::routing::get(greeting))
            .route("/private/{x}", axum::routing::get(private))
            .route("/shared", axum::routing::get(private))
            .with_state(shop)
            .layer(cache.layer());
        AxumFront(app)
    }

    impl Front for AxumFront {
        async fn send(&self, req: Request<()>) -> Got {
            let req = req.map(|()| axum::body::Body::empty());
            let mut svc = self.0.clone();
            std::future::poll_fn(|cx| {
                Service::<Request<axum::body::Body>>::poll_ready(&mut svc, cx)
            })
            .await
            .unwrap();
            let resp = svc.call(req).await.unwrap();
            let (parts, body) = resp.into_parts();
            Got {
                status: parts.status,
                headers: parts.headers,
                body: body.collect().await.unwrap().to_bytes(),
            }
        }
    }
}

async fn a_cached_route_misses_then_hits_and_revalidates(front: &impl Front, shop: &Shop) {
    let miss = front.send(get("/greeting?name=Ana")).await;
    assert_eq!((miss.status, miss.x_cache()), (StatusCode::OK, "MISS"));
    assert_eq!(miss.body, r#"{"message":"Hello, Ana","cached":false}"#);
    let etag = miss.header("etag").expect("an ETag").to_owned();
    assert!(etag.starts_with("W/\""), "{etag}");

    let hit = front.send(get("/greeting?name=Ana")).await;
    assert_eq!((hit.status, hit.x_cache()), (StatusCode::OK, "HIT-L1"));
    assert_eq!(hit.body, r#"{"message":"Hello, Ana","cached":true}"#);
    assert_eq!(hit.header("content-type"), Some("application/json"));
    assert_eq!(hit.header("etag"), Some(etag.as_str()));
    assert_eq!(shop.calls(), 1);

    let not_modified = front
        .send(with(get("/greeting?name=Ana"), "if-none-match", &etag))
        .await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag"), Some(etag.as_str()));
    let other = front
        .send(with(get("/greeting?name=Ana"), "if-none-match", "W/\"0\""))
        .await;
    assert_eq!((other.status, other.x_cache()), (StatusCode::OK, "HIT-L1"));

    let head = front
        .send(
            Request::builder()
                .method(Method::HEAD)
                .uri("/greeting?name=Ana")
                .body(())
                .unwrap(),
        )
        .await;
    assert_eq!((head.status, head.x_cache()), (StatusCode::OK, "HIT-L1"));
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(hit.body.len().to_string().as_str())
    );
    assert_eq!(shop.calls(), 1, "hits, a 304 and a HEAD ran no handler");
}

async fn the_key_is_the_canonical_query_and_the_varied_headers(front: &impl Front, shop: &Shop) {
    let before = shop.calls();
    // Sorted and decoded: the same entry.
    assert_eq!(
        front.send(get("/greeting?name=Bo&x=1")).await.x_cache(),
        "MISS"
    );
    assert_eq!(
        front.send(get("/greeting?x=1&name=B%6F")).await.x_cache(),
        "HIT-L1"
    );
    // Repeated parameters keep their order: two entries.
    assert_eq!(front.send(get("/greeting?x=1&x=2")).await.x_cache(), "MISS");
    assert_eq!(front.send(get("/greeting?x=2&x=1")).await.x_cache(), "MISS");
    // Varies by Accept-Language.
    let pt = with(get("/greeting?name=Bo&x=1"), "accept-language", "pt");
    assert_eq!(front.send(pt).await.x_cache(), "MISS");
    assert_eq!(shop.calls(), before + 4);
}

async fn credentials_and_private_answers_are_not_shared(front: &impl Front, shop: &Shop) {
    let before = shop.calls();
    for _ in 0..2 {
        let with_auth = with(get("/greeting?name=Cy"), "authorization", "Bearer x");
        let got = front.send(with_auth).await;
        assert_eq!((got.status, got.x_cache()), (StatusCode::OK, "BYPASS"));
        let with_cookie = with(get("/greeting?name=Cy"), "cookie", "s=1");
        assert_eq!(front.send(with_cookie).await.x_cache(), "BYPASS");
    }
    assert_eq!(shop.calls(), before + 4);
    // Not stored by those: the first plain request is a miss.
    assert_eq!(front.send(get("/greeting?name=Cy")).await.x_cache(), "MISS");
    // A route that opts in shares answers with credentials.
    let shared = || with(get("/shared"), "authorization", "Bearer x");
    assert_eq!(front.send(shared()).await.x_cache(), "MISS");
    assert_eq!(front.send(shared()).await.x_cache(), "HIT-L1");
    // An answer setting a cookie, private, or not a 200 is never stored.
    for path in ["/private/cookie", "/private/cc", "/private/error"] {
        let before = shop.calls();
        let first = front.send(get(path)).await;
        let again = front.send(get(path)).await;
        assert_eq!(shop.calls(), before + 2, "{path}");
        assert_ne!(again.x_cache(), "HIT-L1", "{path}");
        assert_eq!(first.body, again.body);
    }
    assert_eq!(front.send(get("/private/plain")).await.x_cache(), "MISS");
    assert_eq!(front.send(get("/private/plain")).await.x_cache(), "HIT-L1");
}

async fn a_write_of_a_tag_makes_its_answers_misses(
    front: &impl Front,
    shop: &Shop,
    client: &CacheClient,
    keys: &KeyBuilder,
) {
    assert_eq!(front.send(get("/greeting?name=Di")).await.x_cache(), "MISS");
    assert_eq!(
        front.send(get("/greeting?name=Di")).await.x_cache(),
        "HIT-L1"
    );
    let ns = keys.namespace("greeting-writes").unwrap();
    let ticket = client
        .begin_write_tagged(&ns, None, vec![Tag::new("greeting").unwrap()])
        .await
        .unwrap();
    *shop.greeting.lock().unwrap() = "Olá".into();
    client.finish_write(ticket, 0, None::<&String>, TTL).await;
    let after = front.send(get("/greeting?name=Di")).await;
    assert_eq!(after.x_cache(), "MISS");
    assert_eq!(after.body, r#"{"message":"Olá, Di","cached":false}"#);
}

async fn every_case(front: &impl Front, shop: &Shop, client: &CacheClient, keys: &KeyBuilder) {
    a_cached_route_misses_then_hits_and_revalidates(front, shop).await;
    the_key_is_the_canonical_query_and_the_varied_headers(front, shop).await;
    credentials_and_private_answers_are_not_shared(front, shop).await;
    a_write_of_a_tag_makes_its_answers_misses(front, shop, client, keys).await;
}

fn shop() -> Shop {
    let shop = Shop::default();
    *shop.greeting.lock().unwrap() = "Hello".into();
    shop
}

#[tokio::test]
async fn the_poem_middleware_caches_answers_as_http_says() {
    bounded(async {
        let keys = KeyBuilder::new("http-poem").unwrap();
        let client = l1_client(&keys);
        let shop = shop();
        let front = poem_front::front(cache(&client, &keys), shop.clone());
        every_case(&front, &shop, &client, &keys).await;
    })
    .await;
}

#[tokio::test]
async fn the_tower_layer_caches_answers_as_http_says() {
    bounded(async {
        let keys = KeyBuilder::new("http-tower").unwrap();
        let client = l1_client(&keys);
        let shop = shop();
        let front = axum_front::front(cache(&client, &keys), shop.clone());
        every_case(&front, &shop, &client, &keys).await;
    })
    .await;
}

#[tokio::test]
async fn a_second_instance_hits_the_answer_in_redis() {
    bounded(async {
        let redis = RedisServer::spawn();
        let keys = KeyBuilder::new("http-l2").unwrap();
        let l2 = || {
            CacheClient::builder(&keys)
                .l2(RedisTier::builder(redis.url().as_str()))
                .build()
                .unwrap()
        };
        let (a, b) = (l2(), l2());
        let (shop_a, shop_b) = (shop(), shop());
        let front_a = axum_front::front(cache(&a, &keys), shop_a.clone());
        let front_b = poem_front::front(cache(&b, &keys), shop_b.clone());
        assert_eq!(
            front_a.send(get("/greeting?name=Ed")).await.x_cache(),
            "MISS"
        );
        let hit = front_b.send(get("/greeting?name=Ed")).await;
        assert_eq!(hit.x_cache(), "HIT-L2");
        assert_eq!(hit.body, r#"{"message":"Hello, Ed","cached":true}"#);
        assert_eq!((shop_a.calls(), shop_b.calls()), (1, 0));
    })
    .await;
}
