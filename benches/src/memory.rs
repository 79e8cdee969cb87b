//! L1 memory against its budget: `GET /pets/{id}` over every one of far more pets than
//! fit, then the service process's resident memory (`VmRSS`), with no cache and with
//! L1 at each `L1_MAX_BYTES`. Entries live an hour, so only the budget evicts.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::config::MemoryConfig;
use crate::loadgen::{HttpTarget, LoadSpec, MixState, Target};
use crate::measure::Bench;
use crate::process::Database;
use crate::results::{MemoryRow, MemorySection};
use crate::workload::{Population, Workload};

/// How long entries live in this scenario.
pub const ENTRY_TTL: &str = "1h";

/// Resident memory of process `pid`, from `/proc/<pid>/status`.
#[must_use]
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => Some(n * 1024),
        Some(_) => None,
    }
}

/// Seeds `config.pets` pets into a database of its own (on the PostgreSQL server of
/// `postgres` if given, else a SQLite file) and sweeps them once per service:
/// `CACHE_TIERS=none`, then `l1` at each budget.
///
/// # Errors
/// When the database cannot be created or seeded or a service does not start.
pub async fn run(
    bench: &Bench<'_>,
    config: &MemoryConfig,
    seed: u64,
    postgres: Option<&str>,
) -> Result<MemorySection> {
    let db = Database::own(postgres, "bench_memory").await?;
    bench.message(format!("memory: seeding {} pets", config.pets));
    bench
        .launcher
        .seed(db.url(), config.pets, &db.log_dir())
        .context("seed the memory database")?;
    let population = Arc::new(Population::new(config.pets, seed));
    let spec = LoadSpec {
        concurrency: bench.load.concurrency,
        duration: config.duration,
        max_requests: config.pets,
        warmup: Duration::ZERO,
    };
    let services = std::iter::once(None).chain(config.budgets.iter().copied().map(Some));
    let mut rows = Vec::new();
    for budget in services {
        let tiers = if budget.is_some() { "l1" } else { "none" };
        let mut env: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), db.url().to_owned()),
            ("CACHE_TIERS".into(), tiers.into()),
            ("PET_TTL".into(), ENTRY_TTL.into()),
            ("PETS_LIST_TTL".into(), ENTRY_TTL.into()),
            ("STATS_TTL".into(), ENTRY_TTL.into()),
        ];
        if let Some(b) = budget {
            env.push(("L1_MAX_BYTES".into(), b.to_string()));
        }
        env.extend(bench.extra_env.iter().cloned());
        let name = format!("memory-{tiers}-{}", budget.unwrap_or(0));
        let service = bench.start(&env, &name).await.context("memory service")?;
        let target = Target::Http(HttpTarget::new(
            service.addr,
            population.clone(),
            Workload::Sweep,
            Arc::new(MixState::default()),
        ));
        let r = bench
            .measure(&format!("memory {name}"), spec, &target)
            .await;
        rows.push(MemoryRow {
            topology: tiers.to_owned(),
            l1_max_bytes: budget,
            requests: r.requests,
            distinct_ids: r.requests.min(config.pets),
            errors: r.errors,
            rss_bytes: service.pid.and_then(rss_bytes),
        });
    }
    Ok(MemorySection {
        note: format!(
            "{} pets on {}; `GET /pets/{{id}}` over ids 1..={} in \
             turn, one pass or {:?} at most, {} connections; entries live {ENTRY_TTL}; \
             resident memory (`VmRSS`) of the service process after the sweep.",
            config.pets,
            db.described(),
            config.pets,
            config.duration,
            bench.load.concurrency
        ),
        skipped: None,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read_in_bytes() {
        let status = "Name:\tx\nVmPeak:\t  9 kB\nVmRSS:\t   51300 kB\nThreads: 3\n";
        assert_eq!(parse_vm_rss(status), Some(51_300 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn this_process_has_a_resident_size() {
        assert!(rss_bytes(std::process::id()).is_some_and(|b| b > 0));
    }
}
