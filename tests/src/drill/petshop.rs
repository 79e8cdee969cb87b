//! The drill over pet shop instances: HTTP requests (in process, through the whole
//! middleware stack) to instances that share one database and one Redis.

use std::sync::Arc;

use petshop::model::{NewPet, PetPatch};
use petshop::startup::{app, build_state};
use petshop::state::AppState;
use poem::endpoint::BoxEndpoint;
use poem::test::TestClient;
use poem::{EndpointExt, Response};

use super::{Read, Target, Truth, Write};

/// A pet's version travels in its name: `v{version}`.
fn version_of(name: &str) -> Option<u64> {
    name.strip_prefix('v').and_then(|v| v.parse().ok())
}

fn x_cache(header: Option<&str>) -> &'static str {
    match header {
        Some("HIT-L1") => "HIT-L1",
        Some("HIT-L2") => "HIT-L2",
        Some("MISS") => "MISS",
        Some("BYPASS") => "BYPASS",
        Some("STALE") => "STALE",
        _ => "?",
    }
}

/// One pet shop instance.
pub struct PetshopTarget {
    client: TestClient<BoxEndpoint<'static, Response>>,
    state: AppState,
}

impl std::fmt::Debug for PetshopTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PetshopTarget").finish_non_exhaustive()
    }
}

/// Pet shop instances on one fresh SQLite file, with `ids` pets named `v1`.
pub struct Petshops {
    /// The instances.
    pub targets: Vec<Arc<PetshopTarget>>,
    /// The database, read behind the caches.
    pub truth: Arc<Database>,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Petshops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Petshops")
            .field("instances", &self.targets.len())
            .finish_non_exhaustive()
    }
}

impl Petshops {
    /// Two `l1+l2` pet shops of `strategy` and `consistency` on the Redis at
    /// `redis_url`, with a 60 s pet TTL (staleness must not hide behind expiry), and
    /// pets `1..=ids`.
    pub async fn for_drill(
        strategy: cache::Strategy,
        consistency: cache::WriteConsistency,
        redis_url: &str,
        ids: i64,
    ) -> Self {
        Self::start(
            &[
                ("REDIS_URL", redis_url),
                ("CACHE_TIERS", "l1+l2"),
                ("CACHE_STRATEGY", strategy.as_str()),
                ("CACHE_WRITE_CONSISTENCY", consistency.as_str()),
                ("PET_TTL", "60s"),
            ],
            2,
            ids,
        )
        .await
    }

    /// Starts `instances` pet shops with the environment `vars` (plus a shared SQLite
    /// file) and inserts pets `1..=ids`.
    ///
    /// # Panics
    /// When the configuration is invalid or an instance does not start.
    pub async fn start(vars: &[(&str, &str)], instances: usize, ids: i64) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("pets.sqlite").display()
        );
        let mut all: Vec<(String, String)> = vec![("DATABASE_URL".into(), url)];
        all.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let config = petshop::config::Config::from_vars(all).expect("a valid configuration");
        let mut targets = Vec::new();
        for _ in 0..instances {
            let state = build_state(&config).await.expect("the pet shop starts");
            let _ = state
                .cache
                .wait_for_backplane(std::time::Duration::from_secs(10))
                .await;
            targets.push(Arc::new(PetshopTarget {
                client: TestClient::new(app(state.clone()).boxed()),
                state,
            }));
        }
        let db = targets[0].state.db.clone();
        for _ in 1..=ids {
            petshop::service::pets::create(
                &db,
                NewPet {
                    name: "v1".into(),
                    species: "cat".into(),
                    age: 3,
                    happiness: 50,
                },
            )
            .await
            .expect("insert a pet");
        }
        Self {
            targets,
            truth: Arc::new(Database(db)),
            _dir: dir,
        }
    }
}

/// The pet shop's database, read without any cache.
#[derive(Debug)]
pub struct Database(sea_orm::DatabaseConnection);

impl Truth for Database {
    async fn version(&self, id: i64) -> Option<u64> {
        petshop::service::pets::get(&self.0, id)
            .await
            .ok()
            .flatten()
            .and_then(|p| version_of(&p.name))
    }
}

impl Target for PetshopTarget {
    async fn read(&self, id: i64) -> Read {
        let resp = self.client.get(format!("/pets/{id}")).send().await;
        let status = resp.0.status().as_u16();
        let header = x_cache(
            resp.0
                .headers()
                .get("x-cache")
                .and_then(|v| v.to_str().ok()),
        );
        let body = resp.0.into_body().into_vec().await.unwrap_or_default();
        match status {
            200 => {
                let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                Read::Value {
                    version: json["name"].as_str().and_then(version_of),
                    x_cache: header,
                }
            }
            404 => Read::Value {
                version: None,
                x_cache: header,
            },
            s => Read::Failed(format!("{s}: {}", String::from_utf8_lossy(&body))),
        }
    }

    async fn write(&self, id: i64, version: u64) -> Write {
        let patch = serde_json::json!({ "name": format!("v{version}") });
        let resp = self
            .client
            .patch(format!("/pets/{id}"))
            .body_json(&patch)
            .send()
            .await;
        match resp.0.status().as_u16() {
            200 => Write::Acked,
            503 => Write::Refused,
            s => Write::Failed(s.to_string()),
        }
    }

    async fn pending(&self) -> u64 {
        self.state.cache.cache_stats().recovery.pending
    }
}

// A PATCH body is a `PetPatch`: keep the drill's body in step with the type.
const _: fn() -> PetPatch = || PetPatch {
    name: Some(String::new()),
    species: None,
    age: None,
    happiness: None,
};
