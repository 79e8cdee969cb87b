//! A complete axum service with a cached route: `GET /greeting?name=Ana` is cached for
//! 30 s (`X-Cache`, `ETag`, `304`, `HEAD`); `PUT /greeting {"greeting":"Olá"}` changes
//! the greeting and invalidates its cached answers on every instance. L1 + L2 with
//! `REDIS_URL` (L1 alone when unset); listens on `BIND` (default 127.0.0.1:3000).
//!
//! `cargo run -p cache --features tower --example axum`

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::{Extension, Json, Query, State};
use axum::{Router, http::StatusCode, routing::get};
use cache::http::{ResponseCache, ResponseTags, Route};
use cache::tier::{MokaTier, RedisTier};
use cache::{CacheClient, KeyBuilder, Namespace, Tag, Ttl};
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error + Send + Sync>;
const TTL: Ttl = Ttl::secs(30);

#[derive(Clone)]
struct App {
    cache: CacheClient,
    ns: Namespace,
    greeting: Arc<RwLock<String>>,
}

fn greeting_tag() -> Tag {
    Tag::new("greeting").expect("a valid tag")
}

async fn greet(
    State(app): State<App>,
    tags: Option<Extension<ResponseTags>>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    if let Some(Extension(tags)) = tags {
        tags.set(vec![greeting_tag()]); // the answer changes with the greeting
    }
    let name = q.get("name").map_or("you", String::as_str);
    let greeting = app.greeting.read().expect("lock").clone();
    Json(json!({ "message": format!("{greeting}, {name}") }))
}

async fn set_greeting(State(app): State<App>, Json(new): Json<Value>) -> StatusCode {
    let Some(new) = new["greeting"].as_str() else {
        return StatusCode::UNPROCESSABLE_ENTITY;
    };
    // Begin (refused in strict mode while Redis is down), write the source, finish.
    let tags = vec![greeting_tag()];
    let Ok(write) = app.cache.begin_write_tagged(&app.ns, None, tags).await else {
        return StatusCode::SERVICE_UNAVAILABLE;
    };
    *app.greeting.write().expect("lock") = new.to_owned();
    app.cache.finish_write(write, 0, None::<&()>, TTL).await;
    StatusCode::NO_CONTENT
}

/// Serves the example on `listener`, with Redis at `redis_url` when there is one.
pub async fn serve(listener: tokio::net::TcpListener, redis: Option<String>) -> Result<(), Error> {
    let keys = KeyBuilder::new("greeter")?;
    let mut client = CacheClient::builder(&keys).l1(MokaTier::builder().max_bytes(16 << 20));
    if let Some(url) = redis {
        client = client.l2(RedisTier::builder(url.as_str()));
    }
    let (cache, ns) = (client.build()?, keys.namespace("greetings")?);
    let responses = ResponseCache::new(cache.clone()).route(Route::new("/greeting", &ns, TTL));
    let greeting = Arc::new(RwLock::new("Hello".to_owned()));
    let router = Router::new()
        .route("/greeting", get(greet).put(set_greeting))
        .with_state(App {
            cache,
            ns,
            greeting,
        })
        .layer(responses.layer());
    Ok(axum::serve(listener, router).await?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    serve(listener, std::env::var("REDIS_URL").ok()).await
}
