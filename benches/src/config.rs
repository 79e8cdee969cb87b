//! What a comparison runs and how hard: [`CompareConfig`], with the full and quick
//! presets.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::outcome::LoadSpec;
use crate::workload::Workload;

pub use cache::{Strategy, Topology};

/// `L1_MAX_BYTES` of one MiB.
pub const MIB: u64 = 1 << 20;

/// The L1 memory scenario: a sweep of `GET /pets/{id}` over far more pets than fit.
#[derive(Clone, Debug)]
pub struct MemoryConfig {
    /// Pets seeded (its own database).
    pub pets: u64,
    /// Bound of each sweep; a sweep also stops after one pass over every pet.
    pub duration: Duration,
    /// The `L1_MAX_BYTES` budgets measured against `CACHE_TIERS=none`.
    pub budgets: Vec<u64>,
}

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
    /// Load per workload (and per ceiling), warm-up included.
    pub load: LoadSpec,
    /// The TTL of lists, pets and stats; `None`: [`Self::ttl`] derives one.
    pub cache_ttl: Option<Duration>,
    /// Whether to measure the ceilings (`/health`, the bare route, a Redis round trip).
    pub ceilings: bool,
    /// Soft invalidation of lists for one more configuration (l1+l2, cache-aside,
    /// `PETS_LIST_MAX_STALE`), under the mixed workloads; `None` skips it.
    pub soft_stale: Option<Duration>,
    /// Pets of the seed tutorial's 95/5 mix (its own database); `None` skips it.
    pub seed_mix_pets: Option<u64>,
    /// Run the nginx microcache comparison (when nginx is installed).
    pub microcache: bool,
    /// The nginx executable; `None` looks for it.
    pub nginx: Option<PathBuf>,
    /// The L1 memory scenario; `None` skips it.
    pub memory: Option<MemoryConfig>,
    /// Where the caller writes the report; `None` writes nothing.
    pub out_dir: Option<PathBuf>,
    /// Show a progress bar.
    pub progress: bool,
    /// Extra environment for every service (`RUST_LOG`, ...).
    pub extra_env: Vec<(String, String)>,
    /// Seed of query and id orders.
    pub seed: u64,
}

impl CompareConfig {
    /// The full run: 100,000 pets, 2 s warm-up then 5 s (or 500,000 requests) per
    /// row, 8 connections; the seed mix on 10,000 pets, memory on 300,000.
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
                warmup: Duration::from_secs(2),
            },
            cache_ttl: None,
            ceilings: true,
            soft_stale: Some(Duration::from_millis(500)),
            seed_mix_pets: Some(10_000),
            microcache: true,
            nginx: None,
            memory: Some(MemoryConfig {
                pets: 300_000,
                duration: Duration::from_secs(60),
                budgets: vec![8 * MIB, 64 * MIB],
            }),
            out_dir: Some(default_out_dir()),
            progress: true,
            extra_env: Vec::new(),
            seed: 42,
        }
    }

    /// Every scenario on small data and short runs: 2,000 pets, 0.5 s warm-up and 1 s
    /// per row; memory on 20,000 pets.
    #[must_use]
    pub fn quick() -> Self {
        Self {
            mode: "quick".into(),
            pets: 2_000,
            load: LoadSpec {
                concurrency: 8,
                duration: Duration::from_secs(1),
                max_requests: 50_000,
                warmup: Duration::from_millis(500),
            },
            memory: Some(MemoryConfig {
                pets: 20_000,
                duration: Duration::from_secs(5),
                budgets: vec![MIB, 8 * MIB],
            }),
            ..Self::full()
        }
    }

    /// The TTL every service of the run gets for lists, pets and stats: the configured
    /// one, else at least twice the life of one service (all its rows, warm-ups
    /// included) and at least a minute, so that what ends an entry mid-run is a write,
    /// never its clock.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        if let Some(t) = self.cache_ttl {
            return t;
        }
        let rows = self.workloads.len() as u32 + if self.ceilings { 2 } else { 0 };
        let life = (self.load.warmup + self.load.duration) * rows.max(1);
        let secs = (2 * life).as_secs_f64().ceil().max(60.0);
        Duration::from_secs_f64(secs)
    }
}

/// `benches/results` of this crate.
#[must_use]
pub fn default_out_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("results")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_derived_ttl_outlives_a_service() {
        let full = CompareConfig::full();
        // 7 rows of 7 s: a service lives ~49 s; its entries live 98 s.
        assert_eq!(full.ttl(), Duration::from_secs(98));
        assert_eq!(CompareConfig::quick().ttl(), Duration::from_secs(60));
        let fixed = CompareConfig {
            cache_ttl: Some(Duration::from_secs(5)),
            ..CompareConfig::quick()
        };
        assert_eq!(fixed.ttl(), Duration::from_secs(5));
    }
}
