//! The fault drill: per strategy and write consistency, two cache instances under
//! concurrent writers and readers while one Redis (behind a proxy) is killed,
//! restarted empty, slowed, black-holed and recovered; then every entity is read
//! through every instance and compared with the source.
//!
//! ```text
//! cargo run --release -p e2e --bin fault-drill -- [--seconds 4] [--target petshop|library|both] [--out drill.md]
//! ```
//!
//! `petshop`: two pet shop instances (`l1+l2`, 60 s pet TTL) on one SQLite file, driven
//! over HTTP through the whole middleware stack. `library`: two `CacheClient`s over an
//! in-memory source (the freshness checker with a fault schedule). Needs `redis-server`
//! on `PATH`; everything runs on loopback and is torn down afterwards.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cache::{Strategy, WriteConsistency};
use clap::{Parser, ValueEnum};
use e2e::drill::library::ClientTarget;
use e2e::drill::petshop::Petshops;
use e2e::drill::{
    FaultyRedis, Load, Report, markdown_phases, markdown_summary, run, standard_schedule,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Which {
    Petshop,
    Library,
    Both,
}

/// Breaks Redis under load and reports what every instance served.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Length of each phase, in seconds.
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// The delay added to every Redis reply in the slow phase, in milliseconds.
    #[arg(long, default_value_t = 200)]
    slow_ms: u64,
    /// What to drive.
    #[arg(long, value_enum, default_value_t = Which::Both)]
    target: Which,
    /// Also write the tables to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

async fn petshop(
    strategy: Strategy,
    consistency: WriteConsistency,
    args: &Args,
    load: &Load,
) -> anyhow::Result<Report> {
    let redis = tokio::task::spawn_blocking(FaultyRedis::spawn).await?;
    let shops = Petshops::for_drill(strategy, consistency, &redis.url(), load.ids).await;
    let label = format!("petshop {strategy} {consistency}");
    let (targets, truth) = (shops.targets.clone(), shops.truth.clone());
    Ok(run(&label, targets, truth, &redis, &schedule(args), load).await)
}

async fn library(
    strategy: Strategy,
    consistency: WriteConsistency,
    args: &Args,
    load: &Load,
) -> anyhow::Result<Report> {
    let redis = tokio::task::spawn_blocking(FaultyRedis::spawn).await?;
    let (targets, source) =
        ClientTarget::for_drill(strategy, consistency, &redis.url(), load.ids).await;
    let label = format!("library {strategy} {consistency}");
    Ok(run(&label, targets, source, &redis, &schedule(args), load).await)
}

fn schedule(args: &Args) -> Vec<e2e::drill::Phase> {
    standard_schedule(
        Duration::from_secs_f64(args.seconds),
        Duration::from_millis(args.slow_ms),
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.seconds.is_finite() && args.seconds >= 0.5,
        "--seconds must be at least 0.5"
    );
    let load = Load::default();
    let mut reports = Vec::new();
    for consistency in [WriteConsistency::Available, WriteConsistency::Strict] {
        for strategy in Strategy::ALL {
            if args.target != Which::Library {
                let r = petshop(strategy, consistency, &args, &load).await?;
                eprintln!("{}", markdown_phases(&r));
                reports.push(r);
            }
            if args.target != Which::Petshop {
                let r = library(strategy, consistency, &args, &load).await?;
                eprintln!("{}", markdown_phases(&r));
                reports.push(r);
            }
        }
    }
    let mut out = format!(
        "Schedule: healthy, killed, restarted empty, slow (+{} ms a reply), black-holed, recovered; {} s each. \
         Two instances (l1+l2), {} entities, {} writers across both instances, {} readers per instance.\n\n",
        args.slow_ms, args.seconds, load.ids, load.writers, load.readers
    );
    out.push_str(&markdown_summary(&reports));
    out.push('\n');
    for r in &reports {
        out.push_str(&markdown_phases(r));
        out.push('\n');
    }
    println!("{out}");
    if let Some(path) = args.out {
        std::fs::write(&path, &out).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
