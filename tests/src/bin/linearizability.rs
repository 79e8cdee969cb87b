//! Prints the linearizability table: two pet shop instances over HTTP, per strategy,
//! consistency and tiers, with and without Redis frozen in the middle.
//!
//! ```text
//! cargo run --release -p e2e --bin linearizability -- [--seconds 6] [--rounds 3] [--postgres URL]
//!     [--writers 3] [--readers 6] [--keys 3] [--only LABEL] [--batch] [--out results.md]
//! ```
//!
//! Needs `redis-server` on `PATH` (a throwaway one, behind a proxy the run controls).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cache::{Strategy, Topology, WriteConsistency};
use clap::Parser;
use e2e::registers::{Freeze, Load, Setup, Store, markdown, run};

/// Records pets as registers over HTTP against two instances and checks each history.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// How long each run lasts, in seconds.
    #[arg(long, default_value_t = 6.0)]
    seconds: f64,
    /// Runs per configuration.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// A PostgreSQL admin URL: each run gets a fresh database there (default: SQLite).
    #[arg(long)]
    postgres: Option<String>,
    /// Only configurations whose label contains this.
    #[arg(long)]
    only: Option<String>,
    /// Concurrent writers (each `PATCH`es a random pet through a random instance).
    #[arg(long, default_value_t = 3)]
    writers: usize,
    /// Concurrent readers.
    #[arg(long, default_value_t = 6)]
    readers: usize,
    /// Pets (registers).
    #[arg(long, default_value_t = 3)]
    keys: i64,
    /// Every other read is one `GET /pets?ids=..` of every pet (a batch read).
    #[arg(long)]
    batch: bool,
    /// Also write the markdown table to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn configurations(store: &Store) -> Vec<(Setup, bool)> {
    let mut all = Vec::new();
    let with = |strategy, consistency, topology| Setup {
        store: store.clone(),
        ..Setup::new(strategy, consistency, topology)
    };
    all.push((
        with(
            Strategy::CacheAside,
            WriteConsistency::Available,
            Topology::None,
        ),
        false,
    ));
    for topology in [Topology::L1L2, Topology::L2] {
        for consistency in [WriteConsistency::Available, WriteConsistency::Strict] {
            for strategy in Strategy::ALL {
                all.push((with(strategy, consistency, topology), false));
            }
        }
    }
    for consistency in [WriteConsistency::Available, WriteConsistency::Strict] {
        for strategy in Strategy::ALL {
            all.push((with(strategy, consistency, Topology::L1L2), true));
        }
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
    let store = args.postgres.clone().map_or(Store::Sqlite, Store::Postgres);
    let length = Duration::from_secs_f64(args.seconds);
    let mut runs = Vec::new();
    for (setup, freeze) in configurations(&store) {
        let load = Load {
            keys: args.keys,
            writers: args.writers,
            readers: args.readers,
            length,
            freeze: freeze.then(|| Freeze {
                after: length / 3,
                length: Duration::from_secs(2).min(length / 3),
            }),
            batch: args.batch,
        };
        for _ in 0..args.rounds {
            let label = setup.label();
            if args
                .only
                .as_ref()
                .is_some_and(|o| !label.contains(o.as_str()))
            {
                continue;
            }
            let r = run(&setup, &load)
                .await
                .with_context(|| format!("running {label}"))?;
            eprintln!(
                "{:<50} ops {:>6}  linearizable {:<5} stale {:>4} backwards {:>4}",
                r.label,
                r.verdict.ops,
                r.verdict.linearizable,
                r.verdict.stale_reads,
                r.verdict.backwards_reads
            );
            for why in &r.verdict.violations {
                eprintln!("    {why}");
            }
            if !r.verdict.linearizable {
                for f in r.flagged.iter().take(10) {
                    eprintln!("    flagged: {f}");
                }
                for b in &r.backplanes {
                    eprintln!("    backplane: {b}");
                }
                for h in &r.history {
                    eprintln!("    history: {h}");
                }
            }
            runs.push(r);
        }
    }
    let table = markdown(&runs);
    println!("\n{table}");
    if let Some(path) = args.out {
        std::fs::write(&path, &table).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
