//! The comparison: every cache topology × strategy of the pet shop under the same
//! workloads, with the ceilings measured in the same run.
//!
//! [`run`] drives it through a [`Launcher`] and returns what it measured; judging the
//! targets, writing the report and plotting are the caller's (the `compare` binary
//! composes them).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use cache::testing::RedisServer;
use indicatif::{ProgressBar, ProgressStyle};

use crate::launcher::{Launcher, Running};
use crate::loadgen::{self, LoadSpec, MixState, Target};
use crate::metrics::Snapshot;
use crate::process::Database;
use crate::results::{Meta, Report, Row};
use crate::workload::{BARE_ENDPOINT, Population, Workload};

pub use cache::{Strategy, Topology};

/// What to compare and how hard.
#[derive(Clone, Debug)]
pub struct CompareConfig {
    /// Names the output files: `compare-<mode>.*`.
    pub mode: String,
    /// Pets seeded.
    pub pets: u64,
    /// PostgreSQL instead of a temporary SQLite file.
    pub postgres_url: Option<String>,
    /// Topologies to run.
    pub topologies: Vec<Topology>,
    /// Strategies to run.
    pub strategies: Vec<Strategy>,
    /// Workloads per configuration.
    pub workloads: Vec<Workload>,
    /// Load per workload (and per ceiling).
    pub load: LoadSpec,
    /// Whether to measure the ceilings.
    pub ceilings: bool,
    /// Where the caller writes the report; `None` writes nothing.
    pub out_dir: Option<PathBuf>,
    /// Show a progress bar.
    pub progress: bool,
    /// Extra environment for every service (TTLs, `RUST_LOG`).
    pub extra_env: Vec<(String, String)>,
    /// Seed of query and id orders.
    pub seed: u64,
}

impl CompareConfig {
    /// The full run: 100,000 pets, 5 s or 500,000 requests per row, 8 connections.
    ///
    /// Eight connections saturate a 2-core machine (the generator shares it with the
    /// service); more only queue, raising latency without adding throughput.
    #[must_use]
    pub fn full() -> Self {
        Self {
            mode: "full".into(),
            pets: 100_000,
            postgres_url: None,
            topologies: Topology::ALL.to_vec(),
            strategies: Strategy::ALL.to_vec(),
            workloads: Workload::ALL.to_vec(),
            load: LoadSpec {
                concurrency: 8,
                duration: Duration::from_secs(5),
                max_requests: 500_000,
            },
            ceilings: true,
            out_dir: Some(default_out_dir()),
            progress: true,
            extra_env: Vec::new(),
            seed: 42,
        }
    }

    /// Every configuration on small data and short runs: 2,000 pets, 1 s per row.
    #[must_use]
    pub fn quick() -> Self {
        Self {
            mode: "quick".into(),
            pets: 2_000,
            load: LoadSpec {
                concurrency: 8,
                duration: Duration::from_secs(1),
                max_requests: 50_000,
            },
            ..Self::full()
        }
    }
}

/// `benches/results` of this crate.
#[must_use]
pub fn default_out_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("results")
}

fn env_of(
    config: &CompareConfig,
    db: &Database,
    redis: &str,
    t: Topology,
    s: Strategy,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("DATABASE_URL".to_owned(), db.url().to_owned()),
        ("REDIS_URL".to_owned(), redis.to_owned()),
        ("CACHE_TIERS".to_owned(), t.as_str().to_owned()),
        ("CACHE_STRATEGY".to_owned(), s.as_str().to_owned()),
    ];
    env.extend(config.extra_env.iter().cloned());
    env
}

async fn flush(redis: &RedisServer) -> Result<()> {
    let mut con = redis.client().get_multiplexed_async_connection().await?;
    redis::cmd("FLUSHALL").query_async::<()>(&mut con).await?;
    Ok(())
}

struct Progress {
    bar: ProgressBar,
    done: Arc<AtomicU64>,
}

impl Progress {
    fn new(config: &CompareConfig) -> Self {
        let runs = config.topologies.len() * config.strategies.len() * config.workloads.len()
            + if config.ceilings { 2 } else { 0 };
        let bar = if config.progress {
            ProgressBar::new(runs as u64)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Self {
            bar,
            done: Arc::new(AtomicU64::new(0)),
        }
    }

    async fn measure(&self, label: &str, spec: LoadSpec, target: &Target) -> loadgen::LoadResult {
        self.done.store(0, Relaxed);
        let bar = self.bar.clone();
        let done = self.done.clone();
        let label = label.to_owned();
        let ticker = tokio::spawn(async move {
            loop {
                bar.set_message(format!("{label}: {} requests", done.load(Relaxed)));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        let result = loadgen::run(spec, target, Some(self.done.clone())).await;
        ticker.abort();
        self.bar.inc(1);
        result
    }
}

/// Runs the comparison with `launcher`; the report it returns has no verdicts yet.
pub async fn run(config: &CompareConfig, launcher: &dyn Launcher) -> Result<Report> {
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let redis = tokio::task::spawn_blocking(RedisServer::spawn).await?;
    let db = match &config.postgres_url {
        Some(url) => Database::Postgres { url: url.clone() },
        None => Database::sqlite()?,
    };
    let log_dir = db.log_dir();
    let progress = Progress::new(config);
    progress
        .bar
        .set_message(format!("seeding {} pets", config.pets));
    // Blocking, but nothing else runs yet.
    launcher
        .seed(db.url(), config.pets, &log_dir)
        .context("seed the database")?;
    let population = Arc::new(Population::new(config.pets, config.seed));
    let mut report = Report {
        meta: Meta {
            mode: config.mode.clone(),
            database: db.kind().to_owned(),
            pets: config.pets,
            load: config.load,
            bare_endpoint: BARE_ENDPOINT.to_owned(),
            started_unix,
            cpus: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            load_average: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|l| l.split_whitespace().next()?.parse().ok()),
        },
        ceilings: Vec::new(),
        rows: Vec::new(),
        targets: Vec::new(),
    };
    let mut verified = false;
    if config.ceilings {
        let env = env_of(
            config,
            &db,
            &redis.url(),
            Topology::None,
            Strategy::CacheAside,
        );
        let service = launcher
            .start(&env, &log_dir, "ceiling")
            .await
            .context("ceiling service")?;
        check_seeded(service.addr, config.pets).await?;
        verified = true;
        let target = http_target(&service, &population, Workload::Bare);
        let r = progress
            .measure("ceiling: bare endpoint", config.load, &target)
            .await;
        report
            .ceilings
            .push(Row::new("ceiling", "-", BARE_ENDPOINT, &r));
        drop(service);
        let target = Target::RedisPing { url: redis.url() };
        let r = progress
            .measure("ceiling: redis PING", config.load, &target)
            .await;
        report
            .ceilings
            .push(Row::new("ceiling", "-", "redis PING", &r));
    }
    for &topology in &config.topologies {
        for &strategy in &config.strategies {
            flush(&redis)
                .await
                .context("flush redis between configurations")?;
            let env = env_of(config, &db, &redis.url(), topology, strategy);
            let name = format!(
                "{}-{}",
                topology.as_str().replace('+', "-"),
                strategy.as_str()
            );
            let service = launcher
                .start(&env, &log_dir, &name)
                .await
                .with_context(|| format!("start {name}"))?;
            if !verified {
                check_seeded(service.addr, config.pets).await?;
                verified = true;
            }
            let state = Arc::new(MixState::default());
            for &workload in &config.workloads {
                let target = Target::Http {
                    addr: service.addr,
                    population: population.clone(),
                    workload,
                    state: state.clone(),
                };
                let before = Snapshot::read(service.addr).await;
                let label = format!("{}/{} {workload}", topology.as_str(), strategy.as_str());
                let r = progress.measure(&label, config.load, &target).await;
                let after = Snapshot::read(service.addr).await;
                let mut row = Row::new(
                    topology.as_str(),
                    strategy.as_str(),
                    &workload.to_string(),
                    &r,
                );
                row.hit_ratio = before.hit_ratios(&after);
                row.db_queries_per_request = before
                    .db_queries(&after)
                    .filter(|_| r.requests > 0)
                    .map(|q| q / r.requests as f64);
                report.rows.push(row);
            }
        }
    }
    progress.bar.finish_and_clear();
    Ok(report)
}

/// The workloads read ids `1..=pets`: make sure the seed put at least that many there.
async fn check_seeded(addr: SocketAddr, pets: u64) -> Result<()> {
    let resp = crate::http::HttpConn::new(addr)
        .get("/pets?limit=1")
        .await?;
    let total = serde_json::from_slice::<serde_json::Value>(&resp.body)
        .ok()
        .and_then(|v| v.get("total")?.as_u64());
    match total {
        Some(t) if t >= pets => Ok(()),
        other => anyhow::bail!(
            "after seeding {pets} pets, GET /pets?limit=1 answered {} with total {other:?}",
            resp.status
        ),
    }
}

fn http_target(service: &Running, population: &Arc<Population>, workload: Workload) -> Target {
    Target::Http {
        addr: service.addr,
        population: population.clone(),
        workload,
        state: Arc::new(MixState::default()),
    }
}
