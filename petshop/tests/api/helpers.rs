//! Test support: an app per test on a fresh in-memory SQLite database, its own Redis
//! when a topology needs one, and small HTTP helpers over poem's `TestClient`.

use std::future::Future;
use std::time::Duration;

use cache::testing::RedisServer;
use petshop::config::Config;
use petshop::model::NewPet;
use petshop::startup::{app, build_state};
use petshop::state::AppState;
use poem::endpoint::BoxEndpoint;
use poem::http::HeaderMap;
use poem::test::TestClient;
use poem::{EndpointExt, Response};
use serde_json::Value;

/// Every test body runs under this bound.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `fut`, failing the test if it takes longer than [`TEST_TIMEOUT`].
pub async fn bounded<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, fut)
        .await
        .expect("test exceeded its time bound")
}

/// A running app (in process, no socket) and what it owns.
pub struct TestApp {
    pub client: TestClient<BoxEndpoint<'static, Response>>,
    pub state: AppState,
    pub redis: Option<RedisServer>,
}

/// A reply, read fully.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn x_cache(&self) -> &str {
        self.header("x-cache").unwrap_or("<none>")
    }

    pub fn cached(&self) -> bool {
        self.json["cached"]
            .as_bool()
            .unwrap_or_else(|| panic!("no `cached` in {}", self.json))
    }

    /// The body without `cached`, to compare a hit with the miss before it.
    pub fn data(&self) -> Value {
        let mut v = self.json.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("cached");
        }
        v
    }
}

/// The configuration a test app starts from: in-memory SQLite, plus `vars`.
pub fn config(vars: &[(&str, &str)]) -> Config {
    let mut all = vec![("DATABASE_URL", "sqlite::memory:")];
    all.extend_from_slice(vars);
    Config::from_vars(all.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .expect("valid test configuration")
}

/// An app over `config`, owning `redis` (if any) so it lives as long as the app.
pub async fn spawn_config(config: Config, redis: Option<RedisServer>) -> TestApp {
    let state = build_state(&config).await.expect("app builds");
    TestApp {
        client: TestClient::new(app(state.clone()).boxed()),
        state,
        redis,
    }
}

/// An app with `vars` over a fresh in-memory database.
pub async fn spawn(vars: &[(&str, &str)]) -> TestApp {
    spawn_config(config(vars), None).await
}

/// An app with `strategy` over `tiers`, with its own Redis when the tiers need one.
pub async fn spawn_with(strategy: &str, tiers: &str) -> TestApp {
    spawn_with_extra(strategy, tiers, &[]).await
}

/// [`spawn_with`], plus more variables (`DATABASE_URL` among them overrides SQLite).
pub async fn spawn_with_extra(strategy: &str, tiers: &str, extra: &[(&str, &str)]) -> TestApp {
    let redis = matches!(tiers, "l2" | "l1+l2").then(RedisServer::spawn);
    let url = redis.as_ref().map(RedisServer::url).unwrap_or_default();
    let mut vars = vec![("CACHE_STRATEGY", strategy), ("CACHE_TIERS", tiers)];
    if redis.is_some() {
        vars.push(("REDIS_URL", url.as_str()));
    }
    vars.extend_from_slice(extra);
    let app = spawn_config(config(&vars), redis).await;
    // L1 is bypassed until the backplane has subscribed; start-up waits for it, but a
    // slow machine must not turn an L1 hit into an L2 one.
    assert!(
        app.state
            .cache
            .wait_for_backplane(Duration::from_secs(10))
            .await,
        "the backplane did not subscribe"
    );
    app
}

/// The ids of the pets in a page (`{"pets": [...]}`), in order.
pub fn page_ids(page: &Value) -> Vec<i64> {
    page["pets"]
        .as_array()
        .expect("pets")
        .iter()
        .map(|p| p["id"].as_i64().expect("id"))
        .collect()
}

/// A `RATE_LIMIT_API_KEYS_FILE` knowing `keys`: the SHA-256 of each (lowercase hex,
/// as `sha256sum` prints it), under a comment; removed when dropped.
pub fn api_keys_file(keys: &[&str]) -> tempfile::NamedTempFile {
    use sha2::Digest as _;
    use std::io::Write as _;
    let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
    writeln!(file, "# keys of the test").unwrap();
    for key in keys {
        let hash: String = sha2::Sha256::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        writeln!(file, "{hash}").unwrap();
    }
    file.flush().unwrap();
    file
}

/// A JSON body of `POST /pets`.
pub fn new_pet(name: &str, species: &str, age: i32, happiness: i32) -> Value {
    serde_json::json!({"name": name, "species": species, "age": age, "happiness": happiness})
}

async fn read(resp: poem::test::TestResponse) -> Reply {
    let status = resp.0.status().as_u16();
    let headers = resp.0.headers().clone();
    let bytes = resp.0.into_body().into_vec().await.expect("body");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        json,
        text,
    }
}

impl TestApp {
    pub async fn get(&self, path: &str) -> Reply {
        read(self.client.get(path).send().await).await
    }

    pub async fn request(&self, method: &str, path: &str) -> Reply {
        let method = poem::http::Method::from_bytes(method.as_bytes()).expect("method");
        read(self.client.request(method, path).send().await).await
    }

    /// Any request, with `headers` and a raw `body`.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<poem::Body>,
    ) -> Reply {
        let method = poem::http::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        read(req.send().await).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        read(self.client.post(path).body_json(body).send().await).await
    }

    pub async fn post_raw(&self, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Reply {
        let mut req = self.client.post(path);
        if let Some(ct) = content_type {
            req = req.content_type(ct);
        }
        read(req.body(body).send().await).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        read(self.client.patch(path).body_json(body).send().await).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        read(self.client.delete(path).send().await).await
    }

    pub async fn flush(&self, auth: Option<&str>) -> Reply {
        let mut req = self.client.post("/admin/cache/flush");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        read(req.send().await).await
    }

    /// Inserts a pet straight into the database, behind the cache's back (so the
    /// first read of it is a miss under every strategy). Returns its id.
    pub async fn insert(&self, name: &str, species: &str, age: i32, happiness: i32) -> i64 {
        petshop::service::pets::create(
            &self.state.db,
            NewPet {
                name: name.into(),
                species: species.into(),
                age,
                happiness,
            },
        )
        .await
        .expect("insert")
        .id
    }
}
