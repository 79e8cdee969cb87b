//! Scale-out: N pet shop instances (`l1+l2`) on one throwaway Redis and one fresh
//! PostgreSQL database, started at the same moment, under writers and readers spread
//! over all of them; then every pet read through every instance and compared with the
//! database.
//!
//! It is the fault drill's harness ([`crate::drill`]) with Redis healthy throughout: a
//! read is stale when it returns a version older than a write acknowledged before it
//! began (the freshness checker's rule). Each writer sends its writes through every
//! instance in turn and every instance has its own readers, so most reads look at a
//! value last written through another instance. What this adds is which instance
//! took the write that made a stale answer old: the **cross-instance window** is how
//! long after one instance acknowledged a write another one still served the value
//! it replaced. Measured, never asserted on.

use std::time::Duration;

use anyhow::Context;
use cache::{Strategy, WriteConsistency};

use crate::drill::petshop::Petshops;
use crate::drill::{FaultyRedis, Load, Report, run, steady_schedule};
use crate::postgres::FreshDatabase;

/// How a scale-out run is shaped.
#[derive(Clone, Debug)]
pub struct ScaleOut {
    /// Pet shop instances.
    pub instances: usize,
    /// How long the load runs.
    pub length: Duration,
    /// Writers, readers per instance, pets.
    pub load: Load,
}

impl Default for ScaleOut {
    fn default() -> Self {
        Self {
            instances: 3,
            length: Duration::from_secs(10),
            load: Load::default(),
        }
    }
}

/// One strategy's run.
#[derive(Clone, Debug)]
pub struct ScaleReport {
    /// The strategy every instance ran.
    pub strategy: Strategy,
    /// From the start signal until the last instance was up (migrations included).
    pub started_in: Duration,
    /// Each instance's `GET /ready` status once up.
    pub ready: Vec<u16>,
    /// The drill's report (one phase, `steady`).
    pub drill: Report,
}

impl ScaleReport {
    /// How many instances answered `/ready` with 200.
    #[must_use]
    pub fn instances_up(&self) -> usize {
        self.ready.iter().filter(|s| **s == 200).count()
    }
}

/// Runs `shape` with `strategy` on a fresh database of the PostgreSQL server at
/// `admin_url` (dropped afterwards) and a throwaway `redis-server`.
///
/// # Errors
/// When Redis or the database cannot be set up, or an instance does not come up.
pub async fn run_strategy(
    strategy: Strategy,
    admin_url: &str,
    shape: &ScaleOut,
) -> anyhow::Result<ScaleReport> {
    // The drill's Redis; nothing breaks it here, so the instances talk to it directly.
    let redis = tokio::task::spawn_blocking(FaultyRedis::spawn)
        .await
        .context("starting redis-server")?;
    let redis_url = redis.direct_url();
    let db = FreshDatabase::create(admin_url, "petshop_scale")
        .await
        .context("creating the test database")?;
    let shops = Petshops::on_postgres(
        db,
        &[
            ("REDIS_URL", redis_url.as_str()),
            ("CACHE_TIERS", "l1+l2"),
            ("CACHE_STRATEGY", strategy.as_str()),
            (
                "CACHE_WRITE_CONSISTENCY",
                WriteConsistency::Available.as_str(),
            ),
            // Long enough that no staleness hides behind an expiry.
            ("PET_TTL", "60s"),
        ],
        shape.instances,
        shape.load.ids,
    )
    .await?;
    let mut ready = Vec::new();
    for t in &shops.targets {
        ready.push(t.ready().await);
    }
    let drill = run(
        &format!("{strategy} | l1+l2 x{}", shape.instances),
        shops.targets.clone(),
        shops.truth.clone(),
        &redis,
        &steady_schedule(shape.length),
        &shape.load,
    )
    .await;
    Ok(ScaleReport {
        strategy,
        started_in: shops.started_in,
        ready,
        drill,
    })
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn ms_fine(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The per-strategy table.
#[must_use]
pub fn markdown(reports: &[ScaleReport]) -> String {
    let mut out = String::from(
        "| strategy | instances up | started together in | requests | 5xx | writes acked (per instance) | lost writes | reads (per instance) | reads of another instance's write | stale reads | of them cross-instance | longest cross-instance window | stale answers after quiescence |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in reports {
        let d = &r.drill;
        let per = |f: fn(&crate::drill::InstanceLoad) -> u64| {
            d.instances
                .iter()
                .map(|i| f(i).to_string())
                .collect::<Vec<_>>()
                .join(" / ")
        };
        out.push_str(&format!(
            "| {} | {} of {} | {} | {} | {} | {} ({}) | {} | {} ({}) | {} | {} | {} | {} | {} of {} |\n",
            r.strategy,
            r.instances_up(),
            r.ready.len(),
            ms(r.started_in),
            d.requests,
            d.server_errors,
            d.writes_acked(),
            per(|i| i.writes_acked),
            d.lost_writes,
            d.reads(),
            per(|i| i.reads),
            d.cross_reads(),
            d.stale_reads(),
            d.cross_stale_reads(),
            ms_fine(d.cross_worst_window()),
            d.sweep_stale,
            d.sweep_reads,
        ));
    }
    out
}
