//! The drill over pet shop instances: HTTP requests (in process, through the whole
//! middleware stack) to instances that share one database and one Redis: a SQLite
//! file (instances started one by one), or a fresh PostgreSQL database (instances
//! started at the same moment, as `docker compose up --scale` starts them).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use petshop::model::{NewPet, PetPatch};
use petshop::startup::{app, build_state};
use petshop::state::AppState;
use poem::endpoint::BoxEndpoint;
use poem::test::TestClient;
use poem::{EndpointExt, Response};

use super::{Read, Target, Truth, Write};
use crate::postgres::FreshDatabase;

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

/// Where the instances' database lives; it goes with them.
#[derive(Debug)]
enum Store {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(#[allow(dead_code)] FreshDatabase),
}

/// How instances are started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Launch {
    /// One after the other (a SQLite file has one writer: no racing migrations).
    OneByOne,
    /// All at the same moment: every one runs the migrations at once.
    Together,
}

/// Pet shop instances on one fresh database, with `ids` pets named `v1`.
pub struct Petshops {
    /// The instances.
    pub targets: Vec<Arc<PetshopTarget>>,
    /// The database, read behind the caches.
    pub truth: Arc<Database>,
    /// From the start signal until the last instance was up (database migrated, cache
    /// built; the backplane wait not included).
    pub started_in: Duration,
    _store: Store,
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
        Self::launch(
            &url,
            vars,
            instances,
            ids,
            Launch::OneByOne,
            Store::Sqlite(dir),
        )
        .await
        .expect("the pet shops start")
    }

    /// Starts `instances` pet shops with the environment `vars` on the fresh PostgreSQL
    /// database `db`, all at the same moment (they take turns at the migrations under
    /// the service's advisory lock), and inserts pets `1..=ids`. The database is
    /// dropped with the returned value.
    ///
    /// # Errors
    /// When an instance does not come up (the error names which), or the pets cannot
    /// be inserted.
    pub async fn on_postgres(
        db: FreshDatabase,
        vars: &[(&str, &str)],
        instances: usize,
        ids: i64,
    ) -> anyhow::Result<Self> {
        let url = db.url().to_owned();
        Self::launch(
            &url,
            vars,
            instances,
            ids,
            Launch::Together,
            Store::Postgres(db),
        )
        .await
    }

    async fn launch(
        database_url: &str,
        vars: &[(&str, &str)],
        instances: usize,
        ids: i64,
        launch: Launch,
        store: Store,
    ) -> anyhow::Result<Self> {
        let mut all: Vec<(String, String)> = vec![("DATABASE_URL".into(), database_url.into())];
        all.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let config = petshop::config::Config::from_vars(all)?;
        let began = Instant::now();
        let mut states = Vec::new();
        match launch {
            Launch::OneByOne => {
                for _ in 0..instances {
                    states.push(build_state(&config).await?);
                }
            }
            Launch::Together => {
                let go = Arc::new(tokio::sync::Barrier::new(instances));
                let started: Vec<_> = (0..instances)
                    .map(|_| {
                        let (config, go) = (config.clone(), go.clone());
                        tokio::spawn(async move {
                            go.wait().await;
                            build_state(&config).await
                        })
                    })
                    .collect();
                for (i, s) in started.into_iter().enumerate() {
                    let state = s.await.context("an instance panicked at start-up")?;
                    states.push(state.with_context(|| format!("instance {i} did not start"))?);
                }
            }
        }
        let started_in = began.elapsed();
        let mut targets = Vec::new();
        for state in states {
            let _ = state
                .cache
                .wait_for_backplane(Duration::from_secs(10))
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
            .context("insert a pet")?;
        }
        Ok(Self {
            targets,
            truth: Arc::new(Database(db)),
            started_in,
            _store: store,
        })
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

impl PetshopTarget {
    /// The status of its `GET /ready` (200: the database answers).
    pub async fn ready(&self) -> u16 {
        self.client.get("/ready").send().await.0.status().as_u16()
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
