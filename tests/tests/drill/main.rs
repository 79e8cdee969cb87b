//! The fault drill in CI: pet shop instances over HTTP, and `CacheClient`s over an
//! in-memory source, while Redis is killed, restarted empty, slowed, black-holed and
//! recovered. Short phases; `cargo run --release -p e2e --bin fault-drill` runs the
//! long ones and prints the tables.

use std::sync::Arc;
use std::time::Duration;

use cache::{Strategy, WriteConsistency};
use e2e::drill::library::ClientTarget;
use e2e::drill::petshop::Petshops;
use e2e::drill::{FaultyRedis, Load, Report, markdown_phases, run, standard_schedule};

const PHASE: Duration = Duration::from_millis(1500);
const SLOW: Duration = Duration::from_millis(200);

fn load() -> Load {
    Load {
        ids: 16,
        writers: 2,
        readers: 2,
        ..Load::default()
    }
}

async fn redis() -> FaultyRedis {
    tokio::task::spawn_blocking(FaultyRedis::spawn)
        .await
        .expect("redis-server starts")
}

async fn petshop_drill(strategy: Strategy, consistency: WriteConsistency) -> Report {
    let redis = redis().await;
    let load = load();
    let shops = Petshops::for_drill(strategy, consistency, &redis.url(), load.ids).await;
    let label = format!("petshop {strategy} {consistency}");
    let report = run(
        &label,
        shops.targets.clone(),
        shops.truth.clone(),
        &redis,
        &standard_schedule(PHASE, SLOW),
        &load,
    )
    .await;
    eprintln!("{}", markdown_phases(&report));
    report
}

fn assert_recovered(r: &Report) {
    assert_eq!(r.server_errors, 0, "{r:#?}");
    assert_eq!(r.lost_writes, 0, "{r:#?}");
    assert_eq!(r.sweep_stale, 0, "stale answers after recovery: {r:#?}");
    assert!(r.sweep_reads > 0 && r.writes_acked() > 0, "{r:#?}");
}

fn assert_strict(r: &Report) {
    assert_recovered(r);
    assert_eq!(
        r.stale_reads(),
        0,
        "strict mode served a stale read: {r:#?}"
    );
    let killed = r.phases.iter().find(|p| p.name == "killed").expect("phase");
    assert!(
        killed.writes_refused > 0 && killed.writes_acked == 0,
        "writes while Redis is down must be refused: {killed:#?}"
    );
}

macro_rules! petshop_drills {
    ($($name:ident: $strategy:ident, $consistency:ident, $check:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let report = tokio::time::timeout(
                Duration::from_secs(120),
                petshop_drill(Strategy::$strategy, WriteConsistency::$consistency),
            )
            .await
            .expect("the drill is bounded");
            $check(&report);
        }
    )*};
}

petshop_drills! {
    petshop_cache_aside_recovers_with_nothing_stale: CacheAside, Available, assert_recovered;
    petshop_write_through_recovers_with_nothing_stale: WriteThrough, Available, assert_recovered;
    petshop_versioned_recovers_with_nothing_stale: Versioned, Available, assert_recovered;
    petshop_cache_aside_strict_never_serves_stale: CacheAside, Strict, assert_strict;
    petshop_write_through_strict_never_serves_stale: WriteThrough, Strict, assert_strict;
    petshop_versioned_strict_never_serves_stale: Versioned, Strict, assert_strict;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_freshness_checker_with_a_fault_schedule_reports_nothing_stale_after_recovery() {
    tokio::time::timeout(Duration::from_secs(120), async {
        for strategy in Strategy::ALL {
            let redis = redis().await;
            let load = load();
            let (targets, source) = ClientTarget::for_drill(
                strategy,
                WriteConsistency::Available,
                &redis.url(),
                load.ids,
            )
            .await;
            let report = run(
                &format!("library {strategy}"),
                targets,
                Arc::clone(&source),
                &redis,
                &standard_schedule(PHASE, SLOW),
                &load,
            )
            .await;
            eprintln!("{}", markdown_phases(&report));
            assert_recovered(&report);
        }
    })
    .await
    .expect("the drill is bounded");
}
