//! What users would pick instead: an nginx microcache (1 s) in front of the pet shop
//! with no cache of its own, beside our L1 in the same run.
//!
//! Rows: our `l1` service's `GET /health`, its hot page (an L1 hit) and a write mix;
//! then nginx in front of a `CACHE_TIERS=none` service: the hot page through nginx,
//! and the same write mix with reads through nginx and writes acknowledged by the app
//! directly, so the stale column shows what the microcache serves after a write.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use cache::{Strategy, Topology};

use crate::loadgen::{HttpTarget, MixState};
use crate::measure::{Bench, Label, set_vs_health};
use crate::nginx::{self, Nginx};
use crate::results::Section;
use crate::workload::{Population, Workload};

/// The write mix of the freshness rows.
pub const FRESHNESS_MIX: Workload = Workload::Mix { read_percent: 80 };
/// The topology label of rows served through nginx.
pub const NGINX: &str = "nginx";

/// Runs the comparison against the seeded database at `database_url`.
///
/// # Errors
/// When a pet shop service does not start (nginx failing to start is a skipped
/// section, not an error).
pub async fn run(
    bench: &Bench<'_>,
    database_url: &str,
    population: &Arc<Population>,
    nginx_bin: Option<&Path>,
) -> Result<Section> {
    let Some(bin) = nginx::find(nginx_bin) else {
        return Ok(Section::skipped("skipped: nginx not installed"));
    };
    let mut rows = Vec::new();

    let ours = Label::of(Topology::L1, Strategy::CacheAside);
    let env = bench.env(database_url, Topology::L1, Strategy::CacheAside);
    let service = bench
        .start(&env, "microcache-ours-l1")
        .await
        .context("our l1 service")?;
    let state = Arc::new(MixState::default());
    let mut service_rows = Vec::new();
    for workload in [Workload::Health, Workload::Hot, FRESHNESS_MIX] {
        let target = HttpTarget::new(service.addr, population.clone(), workload, state.clone());
        service_rows.push(bench.row(&ours, target, service.addr).await);
    }
    set_vs_health(&mut service_rows);
    rows.extend(service_rows);
    drop(service);

    let env = bench.env(database_url, Topology::None, Strategy::CacheAside);
    let app = bench
        .start(&env, "microcache-app-none")
        .await
        .context("the app behind nginx")?;
    let proxy = match Nginx::microcache(&bin, app.addr).await {
        Ok(p) => p,
        Err(e) => {
            return Ok(Section::skipped(&format!(
                "skipped: nginx did not start: {e:#}"
            )));
        }
    };
    let label = Label::new(NGINX, "-").with_variant("proxy_cache 1s → none");
    let state = Arc::new(MixState::default());
    for workload in [Workload::Hot, FRESHNESS_MIX] {
        let mut target = HttpTarget::new(proxy.addr(), population.clone(), workload, state.clone());
        target.write_addr = Some(app.addr);
        rows.push(bench.row(&label, target, app.addr).await);
    }
    Ok(Section {
        note: format!(
            "{} (`{}`): `proxy_cache_valid 200 1s`, `proxy_cache_lock on`, \
             `proxy_cache_use_stale updating`, 2 workers, keep-alive to the app, on a free \
             loopback port, in front of the pet shop with `CACHE_TIERS=none`. Reads go \
             through nginx; writes are acknowledged by the app directly. Our side: \
             `CACHE_TIERS=l1`, cache-aside, same database, same generator. The X-Cache \
             column of nginx rows is the app's header as nginx stored it.",
            NGINX,
            bin.display()
        ),
        skipped: None,
        rows,
    })
}
