//! The comparison: every cache topology × strategy of the pet shop under the same
//! workloads, each service's ceilings beside its rows, then the scenarios that need a
//! database or a process of their own (the seed mix, the nginx microcache, L1 memory).
//!
//! [`run`] drives it through a [`Launcher`] and returns what it measured; judging the
//! targets, writing the report and plotting are the caller's (the `compare` binary
//! composes them).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use cache::testing::RedisServer;

use crate::config::{CompareConfig, Strategy, Topology};
use crate::launcher::Launcher;
use crate::loadgen::{HttpTarget, MixState};
use crate::measure::{Bench, Label, set_vs_health};
use crate::process::Database;
use crate::results::{MemorySection, Meta, Report, Section};
use crate::workload::{BARE_ENDPOINT, Population, Workload};
use crate::{amdahl, memory, microcache, seedmix};

/// One service of the matrix: its tiers, strategy, extra settings and workloads.
struct Configuration {
    label: Label,
    topology: Topology,
    strategy: Strategy,
    env: Vec<(String, String)>,
    workloads: Vec<Workload>,
}

/// The matrix, then the soft-invalidation configuration (l1+l2, cache-aside,
/// `PETS_LIST_MAX_STALE`) under the mixed workloads.
fn configurations(config: &CompareConfig) -> Vec<Configuration> {
    let mut out = Vec::new();
    for &topology in &config.topologies {
        for &strategy in &config.strategies {
            out.push(Configuration {
                label: Label::of(topology, strategy),
                topology,
                strategy,
                env: Vec::new(),
                workloads: config.workloads.clone(),
            });
        }
    }
    let mixes: Vec<Workload> = config
        .workloads
        .iter()
        .copied()
        .filter(|w| matches!(w, Workload::Mix { .. }))
        .collect();
    if let Some(bound) = config.soft_stale
        && config.topologies.contains(&Topology::L1L2)
        && !mixes.is_empty()
    {
        let ms = bound.as_millis();
        out.push(Configuration {
            label: Label::of(Topology::L1L2, Strategy::CacheAside)
                .with_variant(format!("soft {ms}ms")),
            topology: Topology::L1L2,
            strategy: Strategy::CacheAside,
            env: vec![("PETS_LIST_MAX_STALE".to_owned(), format!("{ms}ms"))],
            workloads: mixes,
        });
    }
    out
}

/// The reads alone and the writes alone of the mixes among `workloads`, each once.
fn mix_parts(workloads: &[Workload]) -> (Vec<Workload>, Vec<Workload>) {
    let (mut reads, mut writes) = (Vec::new(), Vec::new());
    for (r, w, _) in workloads.iter().filter_map(|w| amdahl::parts(*w)) {
        if !reads.contains(&r) {
            reads.push(r);
        }
        if !writes.contains(&w) {
            writes.push(w);
        }
    }
    (reads, writes)
}

/// Runs the comparison with `launcher`; the report it returns has no verdicts yet.
///
/// # Errors
/// When Redis, the database or a service cannot be set up.
pub async fn run(config: &CompareConfig, launcher: &dyn Launcher) -> Result<Report> {
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok());
    let redis = tokio::task::spawn_blocking(RedisServer::spawn).await?;
    let db = match &config.postgres_url {
        Some(url) => Database::Postgres { url: url.clone() },
        None => Database::sqlite()?,
    };
    let bench = Bench::new(
        launcher,
        &redis,
        db.log_dir(),
        config.load,
        config.ttl(),
        config.extra_env.clone(),
        config.progress,
    );
    bench.message(format!("seeding {} pets", config.pets));
    // Blocking, but nothing else runs yet.
    launcher
        .seed(db.url(), config.pets, &db.log_dir())
        .context("seed the database")?;
    let population = Arc::new(Population::new(config.pets, config.seed));
    let mut report = Report {
        meta: Meta {
            mode: config.mode.clone(),
            database: db.kind().to_owned(),
            pets: config.pets,
            load: config.load,
            cache_ttl: config.ttl(),
            bare_endpoint: BARE_ENDPOINT.to_owned(),
            started_unix,
            cpus: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            load_average,
        },
        ceilings: Vec::new(),
        rows: Vec::new(),
        seed_mix: Section::default(),
        microcache: Section::default(),
        memory: MemorySection::default(),
        targets: Vec::new(),
    };
    if config.ceilings {
        report.ceilings.push(bench.redis_ping().await);
    }
    let mut verified = false;
    for c in configurations(config) {
        let mut env = bench.env(db.url(), c.topology, c.strategy);
        env.extend(c.env.iter().cloned());
        let name = c.label.text_for_file();
        let service = bench
            .start(&env, &name)
            .await
            .with_context(|| format!("start {name}"))?;
        if !verified {
            check_seeded(service.addr, config.pets).await?;
            verified = true;
        }
        let state = Arc::new(MixState::default());
        let ceilings = if config.ceilings {
            vec![Workload::Health, Workload::Bare]
        } else {
            Vec::new()
        };
        // A mix's Amdahl ceiling: its reads alone (after the priming, so hits where there
        // is a cache) before the mixes, its writes alone after them (they move pets).
        let (alone_reads, alone_writes) = if config.ceilings {
            mix_parts(&c.workloads)
        } else {
            (Vec::new(), Vec::new())
        };
        let mut rows = Vec::new();
        let mut primed = c.topology == Topology::None;
        let workloads = ceilings
            .into_iter()
            .chain(alone_reads)
            .chain(c.workloads.iter().copied())
            .chain(alone_writes);
        for workload in workloads {
            let target = HttpTarget::new(service.addr, population.clone(), workload, state.clone());
            if !primed && matches!(workload, Workload::Zipf | Workload::Mix { .. }) {
                bench.prime(target.clone()).await;
                primed = true;
            }
            rows.push(bench.row(&c.label, target, service.addr).await);
        }
        set_vs_health(&mut rows);
        amdahl::set_of_ceiling(&mut rows);
        report.rows.extend(rows);
    }
    if config.microcache {
        report.microcache =
            microcache::run(&bench, db.url(), &population, config.nginx.as_deref()).await?;
    }
    let postgres = config.postgres_url.as_deref();
    if let Some(pets) = config.seed_mix_pets {
        report.seed_mix = seedmix::run(&bench, pets, config.seed, postgres).await?;
    }
    if let Some(memory) = &config.memory {
        report.memory = memory::run(&bench, memory, config.seed, postgres).await?;
    }
    bench.finish();
    Ok(report)
}

/// The workloads read ids `1..=pets`: make sure the seed put at least that many there.
///
/// # Errors
/// When the service does not answer a total of at least `pets`.
pub async fn check_seeded(addr: SocketAddr, pets: u64) -> Result<()> {
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
