//! The seed tutorial's 95/5 mix on a database of its own: 95 % `GET /pets?species=<one
//! of 5>`, 5 % `POST /pets` (its only writes are creates), with the cache off, in L1,
//! and in L1+L2, each beside its own `GET /health`.

use std::sync::Arc;

use anyhow::{Context, Result};
use cache::{Strategy, Topology};

use crate::loadgen::{HttpTarget, MixState};
use crate::measure::{Bench, Label, set_vs_health};
use crate::process::Database;
use crate::results::Section;
use crate::workload::{Population, SEED_MIX_SPECIES, Workload};

/// The topologies the seed mix compares.
pub const TOPOLOGIES: [Topology; 3] = [Topology::None, Topology::L1, Topology::L1L2];

/// Seeds `pets` pets into a database of its own (on the PostgreSQL server of `postgres`
/// if given, else a SQLite file) and runs the mix on each topology.
///
/// # Errors
/// When the database cannot be created or seeded or a service does not start.
pub async fn run(
    bench: &Bench<'_>,
    pets: u64,
    seed: u64,
    postgres: Option<&str>,
) -> Result<Section> {
    let db = Database::own(postgres, "bench_seedmix").await?;
    bench.message(format!("seed mix: seeding {pets} pets"));
    bench
        .launcher
        .seed(db.url(), pets, &db.log_dir())
        .context("seed the seed-mix database")?;
    let population = Arc::new(Population::new(pets, seed));
    let mut rows = Vec::new();
    for topology in TOPOLOGIES {
        let label = Label::of(topology, Strategy::CacheAside);
        let env = bench.env(db.url(), topology, Strategy::CacheAside);
        let name = format!("seedmix-{}", label.text_for_file());
        let service = bench.start(&env, &name).await.context("seed-mix service")?;
        let state = Arc::new(MixState::default());
        let mut service_rows = Vec::new();
        // The mix between its reads alone and its writes alone (its Amdahl ceiling).
        let workloads = [
            Workload::Health,
            Workload::SeedMix { read_percent: 100 },
            Workload::SEED_MIX,
            Workload::SeedMix { read_percent: 0 },
        ];
        for workload in workloads {
            let target = HttpTarget::new(service.addr, population.clone(), workload, state.clone());
            service_rows.push(bench.row(&label, target, service.addr).await);
        }
        set_vs_health(&mut service_rows);
        crate::amdahl::set_of_ceiling(&mut service_rows);
        rows.extend(service_rows);
    }
    Ok(Section {
        note: format!(
            "{pets} pets on {}; 95 % `GET /pets?species=<{}>`, 5 % \
             `POST /pets` of those species (creates are its only writes: each invalidates \
             the lists of its species and the unfiltered lists); cache-aside.",
            db.described(),
            SEED_MIX_SPECIES.join("|")
        ),
        skipped: None,
        rows,
    })
}
