//! An in-process stand-in for the pet shop that honours its HTTP contract, so the whole
//! comparison pipeline can be tested without the real binary.
//!
//! `FAKE_STALE=1` makes `GET /pets/{id}` answer from a snapshot taken at start, so every
//! read after a write is stale: the detector must see it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use benches::launcher::{Launcher, Running};
use futures::future::BoxFuture;
use poem::http::StatusCode;
use poem::listener::TcpAcceptor;
use poem::web::{Data, Json, Path as UrlPath, Query};
use poem::{EndpointExt, IntoResponse, Response, Route, Server, get, handler};
use serde_json::{Value, json};

#[derive(Default)]
struct State {
    pets: Mutex<BTreeMap<i64, Value>>,
    snapshot: Option<BTreeMap<i64, Value>>,
    next_id: AtomicU64,
    seen: Mutex<HashSet<String>>,
    bypass: bool,
    hits: AtomicU64,
    misses: AtomicU64,
    queries: AtomicU64,
}

fn now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // Not a calendar date, but the same shape and ordering as RFC 3339 timestamps.
    let secs = d.as_secs();
    format!(
        "2025-01-01T{:02}:{:02}:{:02}.{:06}Z",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        d.subsec_micros()
    )
}

fn pet(id: i64, happiness: i64) -> Value {
    let ts = "2025-01-01T00:00:00.000Z";
    json!({"id": id, "name": format!("pet {id}"), "species": "cat", "age": id % 15,
           "happiness": happiness, "created_at": ts, "updated_at": ts})
}

fn cached(state: &State, key: String, body: Value) -> Response {
    state.queries.fetch_add(1, Relaxed);
    let header = if state.bypass {
        "BYPASS"
    } else if state.seen.lock().unwrap().insert(key) {
        state.misses.fetch_add(1, Relaxed);
        "MISS"
    } else {
        state.hits.fetch_add(1, Relaxed);
        "HIT-L1"
    };
    Json(body).with_header("X-Cache", header).into_response()
}

#[handler]
fn list(state: Data<&Arc<State>>, q: Query<HashMap<String, String>>) -> Response {
    let mut keys: Vec<_> = q.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
    keys.sort();
    let offset: usize = q.0.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    let pets = state.pets.lock().unwrap();
    let page: Vec<Value> = pets.values().skip(offset).take(10).cloned().collect();
    let body =
        json!({"pets": page, "total": pets.len(), "limit": 10, "offset": offset, "cached": false});
    drop(pets);
    cached(&state, keys.join("&"), body)
}

#[handler]
fn get_pet(state: Data<&Arc<State>>, id: UrlPath<i64>) -> Response {
    let found = match &state.snapshot {
        Some(snap) => snap.get(&id.0).cloned(),
        None => state.pets.lock().unwrap().get(&id.0).cloned(),
    };
    match found {
        Some(p) => cached(&state, format!("id={}", id.0), p),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[handler]
fn patch_pet(state: Data<&Arc<State>>, id: UrlPath<i64>, body: Json<Value>) -> Response {
    state.queries.fetch_add(2, Relaxed);
    let mut pets = state.pets.lock().unwrap();
    let Some(p) = pets.get_mut(&id.0) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    p["happiness"] = body.0["happiness"].clone();
    p["updated_at"] = json!(now());
    Json(p.clone()).into_response()
}

#[handler]
fn delete_pet(state: Data<&Arc<State>>, id: UrlPath<i64>) -> Response {
    state.queries.fetch_add(1, Relaxed);
    match state.pets.lock().unwrap().remove(&id.0) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[handler]
fn create_pet(state: Data<&Arc<State>>, body: Json<Value>) -> Response {
    state.queries.fetch_add(1, Relaxed);
    let id = i64::try_from(state.next_id.fetch_add(1, Relaxed)).unwrap();
    let mut p = pet(id, body.0["happiness"].as_i64().unwrap_or(50));
    p["name"] = body.0["name"].clone();
    state.pets.lock().unwrap().insert(id, p.clone());
    (StatusCode::CREATED, Json(p)).into_response()
}

#[handler]
fn stats(state: Data<&Arc<State>>) -> Response {
    let total = state.pets.lock().unwrap().len();
    cached(&state, "stats".into(), json!({"total_pets": total}))
}

#[handler]
fn cache_stats(state: Data<&Arc<State>>) -> Json<Value> {
    let tier = if state.bypass { "none" } else { "l1" };
    Json(
        json!({"tiers": [{"tier": tier, "hits": state.hits.load(Relaxed),
                           "misses": state.misses.load(Relaxed)}]}),
    )
}

#[handler]
fn metrics(state: Data<&Arc<State>>) -> String {
    format!(
        "# TYPE {m} counter\n{m} {}\n",
        state.queries.load(Relaxed),
        m = benches::metrics::DB_QUERIES_METRIC
    )
}

#[handler]
fn health() -> &'static str {
    "ok"
}

struct AbortOnDrop(tokio::task::JoinHandle<std::io::Result<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves the fake in this process; `seed` only remembers how many pets to start with.
#[derive(Default)]
pub struct FakeLauncher {
    pets: AtomicU64,
}

impl Launcher for FakeLauncher {
    fn seed(&self, _database_url: &str, pets: u64, _log_dir: &Path) -> Result<()> {
        self.pets.store(pets, Relaxed);
        Ok(())
    }

    fn start<'a>(
        &'a self,
        env: &'a [(String, String)],
        _log_dir: &'a Path,
        _name: &'a str,
    ) -> BoxFuture<'a, Result<Running>> {
        Box::pin(async move {
            let var = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            let n = i64::try_from(self.pets.load(Relaxed))?;
            let pets: BTreeMap<i64, Value> = (1..=n).map(|id| (id, pet(id, 50))).collect();
            let state = Arc::new(State {
                snapshot: (var("FAKE_STALE") == Some("1")).then(|| pets.clone()),
                pets: Mutex::new(pets),
                next_id: AtomicU64::new(u64::try_from(n)? + 1),
                bypass: var("CACHE_TIERS") == Some("none"),
                ..State::default()
            });
            let app = Route::new()
                .at("/health", get(health))
                .at("/pets", get(list).post(create_pet))
                .at("/bench/bare", get(list))
                .at(
                    "/pets/:id",
                    get(get_pet).patch(patch_pet).delete(delete_pet),
                )
                .at("/stats", get(stats))
                .at("/cache/stats", get(cache_stats))
                .at("/metrics", get(metrics))
                .data(state);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr: SocketAddr = listener.local_addr()?;
            let acceptor = TcpAcceptor::from_tokio(listener)?;
            let task = tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
            benches::http::wait_ready(addr, "/health", std::time::Duration::from_secs(5)).await?;
            Ok(Running {
                addr,
                pid: None,
                guard: Box::new(AbortOnDrop(task)),
            })
        })
    }
}
