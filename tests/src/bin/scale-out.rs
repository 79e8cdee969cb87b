//! Scale-out: per strategy, N pet shop instances (`l1+l2`, default 3) started at the
//! same moment on one throwaway `redis-server` and a fresh PostgreSQL database,
//! under writers and readers spread over all of them; prints the cross-instance window
//! table as markdown.
//!
//! ```text
//! PETSHOP_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo run --release -p e2e --bin scale-out -- [--seconds 10] [--instances 3] [--out scale-out.md]
//! ```
//!
//! Each database is created from that URL and dropped afterwards; everything runs on
//! loopback.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cache::Strategy;
use clap::Parser;
use e2e::postgres::VAR;
use e2e::scale::{ScaleOut, markdown, run_strategy};

/// Runs N pet shop instances on one Redis and one database and reports how long a
/// write through one stays invisible to the others.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// How long the load runs per strategy, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Pet shop instances.
    #[arg(long, default_value_t = 3)]
    instances: usize,
    /// The PostgreSQL server (a fresh database is made on it per strategy); default:
    /// `PETSHOP_TEST_POSTGRES_URL`.
    #[arg(long)]
    postgres: Option<String>,
    /// Also write the markdown to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.seconds.is_finite() && args.seconds >= 0.5,
        "--seconds must be at least 0.5"
    );
    anyhow::ensure!(args.instances >= 2, "--instances must be at least 2");
    let postgres = match &args.postgres {
        Some(url) => url.clone(),
        None => {
            std::env::var(VAR).with_context(|| format!("needs PostgreSQL: --postgres or {VAR}"))?
        }
    };
    let shape = ScaleOut {
        instances: args.instances,
        length: Duration::from_secs_f64(args.seconds),
        ..ScaleOut::default()
    };
    let mut reports = Vec::new();
    for strategy in Strategy::ALL {
        let r = run_strategy(strategy, &postgres, &shape)
            .await
            .with_context(|| format!("{strategy}"))?;
        eprintln!("{strategy}: done");
        reports.push(r);
    }
    let load = &shape.load;
    let mut out = format!(
        "{} pet shop instances (l1+l2, 60 s pet TTL) started at the same moment on one redis-server and a fresh \
         PostgreSQL database; {} pets, {} writers (each sends its writes through every instance in turn, \
         {} ms apart), {} readers per instance ({} ms apart), {} s per strategy, Redis healthy throughout. \
         A read is stale when it returns a version older than a write acknowledged before it began; it is \
         cross-instance when that write went through another instance, and the window is how long before \
         the read that write had been acknowledged. Quiescence: load stopped, every instance's queue empty; \
         then every pet is read through every instance and compared with the database.\n\n",
        shape.instances,
        load.ids,
        load.writers,
        load.write_pause.as_millis(),
        load.readers,
        load.read_pause.as_millis(),
        args.seconds,
    );
    out.push_str(&markdown(&reports));
    println!("{out}");
    if let Some(path) = args.out {
        std::fs::write(&path, &out).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
