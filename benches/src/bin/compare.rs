//! The HTTP comparison of the pet shop across cache topologies and strategies.
//!
//! `cargo run --release -p benches --bin compare -- --quick`
//!
//! It links the pet shop and runs each service as a child process of its own executable
//! (see [`AS_PETSHOP_ENV`]), unless `--petshop <path>` names another executable.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use benches::compare::{self, CompareConfig, Strategy, Topology};
use benches::launcher::ProcessLauncher;
use benches::process::{AS_PETSHOP_ENV, PetshopCommand};
use benches::workload::Workload;
use benches::{plot, report, targets};
use clap::Parser;

/// Runs every topology × strategy of the pet shop under the same workloads.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Small data, 1 s per workload: every configuration in a couple of minutes.
    #[arg(long)]
    quick: bool,
    /// Pets to seed (default 100,000; 2,000 with --quick).
    #[arg(long)]
    pets: Option<u64>,
    /// Use this PostgreSQL database instead of a temporary SQLite file (it is seeded:
    /// give an empty database).
    #[arg(long = "postgres", alias = "postgres-url")]
    postgres_url: Option<String>,
    /// The pet shop executable, e.g. target/release/petshop (default: $PETSHOP_BIN, else
    /// this executable, which links the pet shop and runs it as a child process).
    #[arg(long, alias = "petshop-bin")]
    petshop: Option<PathBuf>,
    /// Seconds per workload.
    #[arg(long)]
    duration: Option<f64>,
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
    /// Skip the ceilings (bare endpoint, Redis round trip).
    #[arg(long)]
    no_ceilings: bool,
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
    measured.targets = targets::evaluate(&measured.ceilings, &measured.rows, config.pets);
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
