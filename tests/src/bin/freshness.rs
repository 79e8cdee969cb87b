//! Prints the freshness checker's table: every strategy and topology, one and two
//! instances, plus the configurations that show what the guard and the backplane fix.
//!
//! ```text
//! cargo run --release -p e2e --bin freshness -- [--seconds 3] [--out results.md]
//! ```
//!
//! Needs `redis-server` on `PATH` (a throwaway one is started on a free port).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cache::Strategy;
use cache::testing::RedisServer;
use clap::Parser;
use e2e::freshness::{Setup, Topology, Workload, markdown, run};

/// Runs concurrent writers and readers through every strategy and topology and
/// reports stale reads.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// How long each configuration runs, in seconds.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Also write the markdown table to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn configurations() -> Vec<Setup> {
    let mut all = Vec::new();
    for kind in Strategy::ALL {
        for topology in [Topology::L1, Topology::L2, Topology::L1L2] {
            all.push(Setup::new(kind, topology));
        }
        for topology in [Topology::L2, Topology::L1L2] {
            all.push(Setup {
                instances: 2,
                ..Setup::new(kind, topology)
            });
        }
    }
    // What the fill-race guard and the backplane are for.
    for topology in [Topology::L1, Topology::L1L2] {
        all.push(Setup {
            fill_guard: false,
            ..Setup::new(Strategy::CacheAside, topology)
        });
    }
    for kind in Strategy::ALL {
        all.push(Setup {
            instances: 2,
            backplane: false,
            ..Setup::new(kind, Topology::L1L2)
        });
    }
    all
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.seconds.is_finite() && args.seconds > 0.0,
        "--seconds must be a positive number"
    );
    let redis = tokio::task::spawn_blocking(RedisServer::spawn)
        .await
        .context("starting redis-server")?;
    let work = Workload {
        duration: Duration::from_secs_f64(args.seconds),
        ..Workload::default()
    };
    let mut reports = Vec::new();
    for setup in configurations() {
        let url = (setup.topology != Topology::L1).then(|| redis.url());
        let report = run(&setup, &work, url.as_deref()).await;
        eprintln!(
            "{:<48} reads {:>7}  stale {:>5}",
            report.label, report.reads, report.stale_reads
        );
        reports.push(report);
    }
    let table = markdown(&reports);
    println!(
        "\nworkload: {} rows, {} writers, {} readers per instance, {:?} source reads, {:?} per configuration\n",
        work.ids, work.writers, work.readers, work.read_delay, work.duration
    );
    println!("{table}");
    if let Some(path) = args.out {
        std::fs::write(&path, &table).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
