//! The HTTP comparison of the pet shop across cache topologies and strategies.
//!
//! `cargo run --release -p benches --bin compare -- --quick`
//!
//! It links the pet shop and runs each service as a child process of its own executable
//! (see [`AS_PETSHOP_ENV`]), unless `--petshop <path>` names another executable.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use benches::compare;
use benches::config::{CompareConfig, MIB, Strategy, Topology};
use benches::launcher::ProcessLauncher;
use benches::process::{AS_PETSHOP_ENV, PetshopCommand};
use benches::workload::Workload;
use benches::{plot, report, targets};
use clap::Parser;

/// Runs every topology × strategy of the pet shop under the same workloads.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Small data, 0.5 s warm-up and 1 s per row: every scenario in a few minutes.
    #[arg(long)]
    quick: bool,
    /// Pets to seed (default 100,000; 2,000 with --quick).
    #[arg(long)]
    pets: Option<u64>,
    /// Use this PostgreSQL database instead of a temporary SQLite file (it is seeded:
    /// give an empty database). The seed-mix and memory scenarios create databases of
    /// their own on the same server (its user may create databases) and drop them.
    #[arg(long = "postgres", alias = "postgres-url")]
    postgres_url: Option<String>,
    /// The pet shop executable, e.g. target/release/petshop (default: $PETSHOP_BIN, else
    /// this executable, which links the pet shop and runs it as a child process).
    #[arg(long, alias = "petshop-bin")]
    petshop: Option<PathBuf>,
    /// Seconds per workload.
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds of warm-up before each measured row (not counted).
    #[arg(long)]
    warmup: Option<f64>,
    /// Seconds lists, pets and stats live (default: twice a service's life, at least 60).
    #[arg(long)]
    ttl: Option<f64>,
    /// Requests per workload at most.
    #[arg(long)]
    max_requests: Option<u64>,
    /// Connections (one request in flight each).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Output directory (default: benches/results).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Output name: compare-<mode>.* (default quick, full, or large for 1,000,000+ pets).
    #[arg(long)]
    mode: Option<String>,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Only these topologies (comma-separated: none,l1,l2,l1+l2).
    #[arg(long, value_delimiter = ',')]
    topologies: Vec<String>,
    /// Only these strategies (comma-separated: cache-aside,write-through,versioned).
    #[arg(long, value_delimiter = ',')]
    strategies: Vec<String>,
    /// Only these workloads (comma-separated: hot,zipf,stats,mix-95/5,mix-80/20).
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    /// Skip the ceilings (`/health` and the bare route per service, Redis round trip).
    #[arg(long)]
    no_ceilings: bool,
    /// Soft-invalidation bound of the extra l1+l2 configuration, in ms (0: skip it).
    #[arg(long)]
    soft_stale_ms: Option<u64>,
    /// Pets of the seed tutorial's 95/5 mix (0: skip it; default 10,000).
    #[arg(long)]
    seed_mix_pets: Option<u64>,
    /// Skip the nginx microcache comparison.
    #[arg(long)]
    no_microcache: bool,
    /// The nginx executable (default: $NGINX_BIN, /usr/sbin/nginx, or nginx on PATH).
    #[arg(long)]
    nginx: Option<PathBuf>,
    /// Pets of the L1 memory scenario (0: skip it; default 300,000, 20,000 with --quick).
    #[arg(long)]
    memory_pets: Option<u64>,
    /// Seconds each memory sweep may take at most.
    #[arg(long)]
    memory_duration: Option<f64>,
    /// L1_MAX_BYTES budgets of the memory scenario, in MiB (comma-separated).
    #[arg(long, value_delimiter = ',')]
    memory_budgets_mib: Vec<u64>,
}

/// The items of `all` named in `names` (all of them when `names` is empty).
fn pick<T: Copy>(all: &[T], names: &[String], name: impl Fn(T) -> String) -> Result<Vec<T>> {
    if names.is_empty() {
        return Ok(all.to_vec());
    }
    names
        .iter()
        .map(|n| {
            all.iter().copied().find(|t| name(*t) == *n).ok_or_else(|| {
                let known: Vec<String> = all.iter().map(|t| name(*t)).collect();
                anyhow::anyhow!("unknown {n:?}: expected one of {}", known.join(", "))
            })
        })
        .collect()
}

#[tokio::main]
async fn main() -> Result<()> {
    if std::env::var_os(AS_PETSHOP_ENV).is_some() {
        // Launched by a comparison as its service: be the pet shop (same code as
        // `petshop`), with the ceiling route.
        return benches::service::run().await;
    }
    let args = Args::parse();
    let mut config = if args.quick {
        CompareConfig::quick()
    } else {
        CompareConfig::full()
    };
    if let Some(p) = args.pets {
        config.pets = p;
    }
    if config.pets >= 1_000_000 && !args.quick {
        config.mode = "large".into();
    }
    if let Some(m) = args.mode {
        config.mode = m;
    }
    if args.postgres_url.is_some() {
        config.mode = format!("{}-postgres", config.mode);
    }
    config.postgres_url = args.postgres_url;
    if let Some(d) = args.duration {
        config.load.duration = Duration::from_secs_f64(d);
    }
    if let Some(w) = args.warmup {
        config.load.warmup = Duration::from_secs_f64(w);
    }
    if let Some(t) = args.ttl {
        config.cache_ttl = Some(Duration::from_secs_f64(t));
    }
    if let Some(ms) = args.soft_stale_ms {
        config.soft_stale = (ms > 0).then(|| Duration::from_millis(ms));
    }
    if let Some(p) = args.seed_mix_pets {
        config.seed_mix_pets = (p > 0).then_some(p);
    }
    config.microcache = !args.no_microcache;
    config.nginx = args.nginx;
    if let Some(memory) = &mut config.memory {
        if let Some(p) = args.memory_pets {
            memory.pets = p;
        }
        if let Some(d) = args.memory_duration {
            memory.duration = Duration::from_secs_f64(d);
        }
        if !args.memory_budgets_mib.is_empty() {
            memory.budgets = args.memory_budgets_mib.iter().map(|m| m * MIB).collect();
        }
    }
    if args.memory_pets == Some(0) {
        config.memory = None;
    }
    if let Some(n) = args.max_requests {
        config.load.max_requests = n;
    }
    if let Some(c) = args.concurrency {
        config.load.concurrency = c;
    }
    if let Some(out) = args.out {
        config.out_dir = Some(out);
    }
    config.progress = !args.no_progress;
    config.ceilings = !args.no_ceilings;
    config.topologies = pick(&Topology::ALL, &args.topologies, |t| t.as_str().to_owned())?;
    config.strategies = pick(&Strategy::ALL, &args.strategies, |s| s.as_str().to_owned())?;
    config.workloads = pick(&Workload::ALL, &args.workloads, |w| w.to_string())?;
    let launcher = ProcessLauncher {
        petshop: PetshopCommand::find(args.petshop.as_deref())?,
    };
    // The composition: measure, judge, write, plot.
    let mut measured = compare::run(&config, &launcher).await?;
    measured.targets = targets::evaluate(&measured);
    println!("{}", report::markdown(&measured));
    if let Some(dir) = &config.out_dir {
        report::write(&measured, dir)?;
        plot::write_all(&measured, dir, &format!("compare-{}", config.mode))?;
        eprintln!(
            "written to {}/compare-{}.{{md,json}} and *.svg",
            dir.display(),
            config.mode
        );
    }
    Ok(())
}
