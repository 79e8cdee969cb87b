//! Measuring one row: services started with the run's environment, a warm-up that is
//! not counted, the load itself, and the service's own counters read around it.
//!
//! [`Bench`] is what every scenario shares: the launcher, the throwaway Redis, the
//! load, the TTLs and the progress bar.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use anyhow::Result;
use cache::testing::RedisServer;
use cache::{Strategy, Topology};
use indicatif::{ProgressBar, ProgressStyle};

use crate::launcher::{Launcher, Running};
use crate::loadgen::{self, HttpTarget, LoadResult, LoadSpec, Target};
use crate::metrics::Snapshot;
use crate::results::Row;
use crate::workload::Workload;

/// Names a row: its configuration.
#[derive(Clone, Debug)]
pub struct Label {
    /// `none`, `l1`, `l2`, `l1+l2`, `nginx`, `ceiling`.
    pub topology: String,
    /// The write strategy, or `-`.
    pub strategy: String,
    /// What else sets the service apart; empty for none.
    pub variant: String,
}

impl Label {
    /// A configuration with no variant.
    #[must_use]
    pub fn new(topology: &str, strategy: &str) -> Self {
        Self {
            topology: topology.to_owned(),
            strategy: strategy.to_owned(),
            variant: String::new(),
        }
    }

    /// The same with a variant.
    #[must_use]
    pub fn with_variant(mut self, variant: impl Into<String>) -> Self {
        self.variant = variant.into();
        self
    }

    /// A topology × strategy of the cache.
    #[must_use]
    pub fn of(topology: Topology, strategy: Strategy) -> Self {
        Self::new(topology.as_str(), strategy.as_str())
    }

    /// A name for log files: `l1-l2-cache-aside-soft-500ms`.
    #[must_use]
    pub fn text_for_file(&self) -> String {
        let mut s = format!("{}-{}", self.topology, self.strategy);
        if !self.variant.is_empty() {
            s.push('-');
            s.push_str(&self.variant);
        }
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect()
    }

    fn text(&self) -> String {
        let mut s = format!("{}/{}", self.topology, self.strategy);
        if !self.variant.is_empty() {
            s.push_str(&format!(" ({})", self.variant));
        }
        s
    }
}

/// What the scenarios of one comparison share.
pub struct Bench<'a> {
    /// Starts and seeds services.
    pub launcher: &'a dyn Launcher,
    /// The throwaway Redis of the run, flushed before each service.
    pub redis: &'a RedisServer,
    /// Where service logs go.
    pub log_dir: PathBuf,
    /// The load of a row, warm-up included.
    pub load: LoadSpec,
    /// The TTL of lists, pets and stats.
    pub ttl: Duration,
    /// Extra environment for every service.
    pub extra_env: Vec<(String, String)>,
    bar: ProgressBar,
    done: Arc<AtomicU64>,
}

impl<'a> Bench<'a> {
    /// A bench; `progress` shows a progress line on the terminal.
    #[must_use]
    pub fn new(
        launcher: &'a dyn Launcher,
        redis: &'a RedisServer,
        log_dir: PathBuf,
        load: LoadSpec,
        ttl: Duration,
        extra_env: Vec<(String, String)>,
        progress: bool,
    ) -> Self {
        let bar = if progress {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} {pos} rows {msg}")
                .expect("valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Self {
            launcher,
            redis,
            log_dir,
            load,
            ttl,
            extra_env,
            bar,
            done: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Shows what is going on.
    pub fn message(&self, msg: impl Into<String>) {
        self.bar.set_message(msg.into());
    }

    /// Clears the progress line.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// The environment of a pet shop over `database_url` with these tiers and strategy,
    /// and the run's TTLs.
    #[must_use]
    pub fn env(
        &self,
        database_url: &str,
        topology: Topology,
        strategy: Strategy,
    ) -> Vec<(String, String)> {
        let ttl = format!("{}ms", self.ttl.as_millis());
        let mut env: Vec<(String, String)> = [
            ("DATABASE_URL", database_url.to_owned()),
            ("REDIS_URL", self.redis.url()),
            ("CACHE_TIERS", topology.as_str().to_owned()),
            ("CACHE_STRATEGY", strategy.as_str().to_owned()),
            ("PETS_LIST_TTL", ttl.clone()),
            ("PET_TTL", ttl.clone()),
            ("STATS_TTL", ttl),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        env.extend(self.extra_env.iter().cloned());
        env
    }

    /// Flushes Redis, then starts a service with `env`.
    ///
    /// # Errors
    /// When Redis cannot be flushed or the service does not come up.
    pub async fn start(&self, env: &[(String, String)], name: &str) -> Result<Running> {
        let mut con = self
            .redis
            .client()
            .get_multiplexed_async_connection()
            .await?;
        redis::cmd("FLUSHALL").query_async::<()>(&mut con).await?;
        self.message(format!("starting {name}"));
        self.launcher.start(env, &self.log_dir, name).await
    }

    /// Runs `target` under `spec` (no warm-up), counting progress.
    pub async fn measure(&self, label: &str, spec: LoadSpec, target: &Target) -> LoadResult {
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
        result
    }

    /// One row: the warm-up (not counted), then the measured run, with the service's
    /// counters (at `stats`) read around the measured run only.
    pub async fn row(&self, label: &Label, target: HttpTarget, stats: SocketAddr) -> Row {
        let workload = target.workload.to_string();
        let target = Target::Http(target);
        let text = format!("{} {workload}", label.text());
        if let Some(warm) = self.load.warmup_run() {
            self.measure(&format!("{text} (warm-up)"), warm, &target)
                .await;
        }
        let before = Snapshot::read(stats).await;
        let r = self.measure(&text, self.load, &target).await;
        let after = Snapshot::read(stats).await;
        self.bar.inc(1);
        let mut row = Row::new(&label.topology, &label.strategy, &workload, &r);
        row.variant.clone_from(&label.variant);
        row.hit_ratio = before.hit_ratios(&after);
        row.db_queries_per_request = before
            .db_queries(&after)
            .filter(|_| r.requests > 0)
            .map(|q| q / r.requests as f64);
        row
    }

    /// Primes the service behind `target` (its workload is replaced): every distinct
    /// list query and every seeded pet read once, not counted, so that the rows after
    /// it measure a cache that has seen its data (a Zipf tail is otherwise read for the
    /// first time during the measured run). Bounded by 120 s.
    pub async fn prime(&self, target: HttpTarget) {
        let spec = LoadSpec {
            duration: Duration::from_secs(120),
            max_requests: target.population.prime_requests(),
            warmup: Duration::ZERO,
            ..self.load
        };
        let target = Target::Http(HttpTarget {
            workload: Workload::Prime,
            ..target
        });
        self.measure("priming", spec, &target).await;
    }

    /// The Redis round trip ceiling.
    pub async fn redis_ping(&self) -> Row {
        let target = Target::RedisPing {
            url: self.redis.url(),
        };
        let r = self
            .measure("ceiling: redis PING", self.load, &target)
            .await;
        self.bar.inc(1);
        Row::new("ceiling", "-", "redis PING", &r)
    }
}

/// Sets each row's throughput over the `health` row among them (rows of one service).
pub fn set_vs_health(rows: &mut [Row]) {
    let health = rows
        .iter()
        .find(|r| r.workload == "health" && r.rps > 0.0)
        .map(|r| r.rps);
    if let Some(h) = health {
        for r in rows {
            r.vs_health = Some(r.rps / h);
        }
    }
}
