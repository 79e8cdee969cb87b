//! The comparison pipeline end to end: against an in-process fake of the pet shop, and
//! against the real pet shop (this crate's `petshop-server`, which cargo builds for
//! these tests) as child processes.
//!
//! Bounded, no timing assertions: only that every configuration produced rows, with no
//! errors, and that the reports were written.

mod fake;

use std::time::Duration;

use benches::compare::{self, CompareConfig, Strategy, Topology};
use benches::launcher::{Launcher, ProcessLauncher};
use benches::loadgen::LoadSpec;
use benches::process::PetshopCommand;
use benches::results::Report;
use benches::workload::Workload;
use benches::{plot, report, targets};

/// What the `compare` binary does: measure, judge, write, plot.
async fn run_and_write(config: &CompareConfig, launcher: &dyn Launcher) -> Report {
    let mut measured = compare::run(config, launcher).await.unwrap();
    measured.targets = targets::evaluate(&measured.ceilings, &measured.rows, config.pets);
    if let Some(dir) = &config.out_dir {
        report::write(&measured, dir).unwrap();
        plot::write_all(&measured, dir, &format!("compare-{}", config.mode)).unwrap();
    }
    measured
}

/// The pet shop as cargo built it for this test: this crate's `petshop-server` bin, which
/// runs `petshop::cli::run` like the `petshop` binary does.
fn petshop() -> PetshopCommand {
    PetshopCommand::executable(env!("CARGO_BIN_EXE_petshop-server"))
}

/// A quick comparison cut down for a debug build: tiny data, very short runs.
fn reduced_quick(out: &std::path::Path) -> CompareConfig {
    CompareConfig {
        pets: 200,
        load: LoadSpec {
            concurrency: 4,
            duration: Duration::from_millis(300),
            max_requests: 400,
        },
        out_dir: Some(out.to_owned()),
        progress: false,
        ..CompareConfig::quick()
    }
}

fn assert_files_written(dir: &std::path::Path, mode: &str) {
    for suffix in [".md", ".json", "-throughput.svg", "-p99.svg", "-stale.svg"] {
        let file = format!("compare-{mode}{suffix}");
        let len = std::fs::metadata(dir.join(&file))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 100, "{file} missing or empty");
    }
}

fn assert_complete_and_error_free(report: &Report, config: &CompareConfig) {
    let expected = config.topologies.len() * config.strategies.len() * config.workloads.len();
    assert_eq!(report.rows.len(), expected);
    for t in &config.topologies {
        for s in &config.strategies {
            let rows = report
                .rows
                .iter()
                .filter(|r| r.topology == t.as_str() && r.strategy == s.as_str())
                .count();
            assert_eq!(
                rows,
                config.workloads.len(),
                "{}/{}",
                t.as_str(),
                s.as_str()
            );
        }
    }
    for r in report.ceilings.iter().chain(&report.rows) {
        assert!(r.requests > 0, "{} {}: no requests", r.config(), r.workload);
        assert_eq!(
            r.errors,
            0,
            "{} {}: {:?}",
            r.config(),
            r.workload,
            r.sample_errors
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reduced_quick_comparison_against_a_fake_service_covers_every_configuration_without_errors()
 {
    // Arrange
    let out = tempfile::tempdir().unwrap();
    let config = reduced_quick(out.path());

    // Act
    let report = run_and_write(&config, &fake::FakeLauncher::default()).await;

    // Assert
    assert_complete_and_error_free(&report, &config);
    assert_eq!(report.ceilings.len(), 2);
    let cached = report
        .rows
        .iter()
        .find(|r| r.topology == "l1" && r.workload == "hot")
        .unwrap();
    assert!(cached.hit_ratio["l1"] > 0.5, "{:?}", cached.hit_ratio);
    assert!(cached.x_cache.hit_l1 > 0);
    assert!(
        report
            .rows
            .iter()
            .all(|r| r.db_queries_per_request.is_some())
    );
    let checked: u64 = report.rows.iter().map(|r| r.checked_reads).sum();
    let stale: u64 = report.rows.iter().map(|r| r.stale_reads).sum();
    assert!(checked > 0, "no read of a written pet was checked");
    assert_eq!(stale, 0, "the fake is consistent");
    assert_files_written(out.path(), "quick");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_served_from_an_old_snapshot_after_acknowledged_writes_are_counted_stale() {
    // Arrange: a fake whose GET /pets/{id} never sees writes, and only the write-heavy mix.
    let out = tempfile::tempdir().unwrap();
    let config = CompareConfig {
        pets: 20, // few pets: reads hit written ones
        topologies: vec![Topology::L1],
        strategies: vec![Strategy::CacheAside],
        workloads: vec![Workload::Mix { read_percent: 80 }],
        ceilings: false,
        out_dir: None,
        extra_env: vec![("FAKE_STALE".into(), "1".into())],
        ..reduced_quick(out.path())
    };

    // Act
    let report = run_and_write(&config, &fake::FakeLauncher::default()).await;

    // Assert
    let row = &report.rows[0];
    assert!(row.stale_reads > 0, "{row:?}");
    assert!(row.stale_reads <= row.checked_reads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reduced_quick_comparison_against_the_real_petshop_covers_every_configuration_without_errors()
 {
    // Arrange
    let out = tempfile::tempdir().unwrap();
    let config = reduced_quick(out.path());
    let launcher = ProcessLauncher { petshop: petshop() };

    // Act
    let report = tokio::time::timeout(Duration::from_secs(300), run_and_write(&config, &launcher))
        .await
        .expect("bounded");

    // Assert: complete, error-free, written.
    assert_complete_and_error_free(&report, &config);
    assert_eq!(report.ceilings.len(), 2);
    assert_files_written(out.path(), "quick");
    // The service's own counters were read for every row.
    assert!(
        report
            .rows
            .iter()
            .all(|r| r.db_queries_per_request.is_some()),
        "db query counter missing from /metrics"
    );
    for r in &report.rows {
        let served = r.x_cache.hit_l1 + r.x_cache.hit_l2 + r.x_cache.miss + r.x_cache.bypass;
        let hits = r.x_cache.hit_l1 + r.x_cache.hit_l2;
        if r.topology == "none" {
            // No cache: every read is a bypass and goes to the database.
            assert_eq!(hits, 0, "{} {}", r.config(), r.workload);
            assert_eq!(r.x_cache.bypass, served, "{} {}", r.config(), r.workload);
        } else if r.workload == "hot" {
            // One query over and over: all but the first reads are hits.
            assert!(hits > 0, "{} hot: {:?}", r.config(), r.x_cache);
            assert!(
                r.hit_ratio.values().any(|h| *h > 0.0),
                "{} hot: {:?}",
                r.config(),
                r.hit_ratio
            );
        }
        // Write-through and versioned never serve a value older than an acknowledged write.
        if matches!(r.strategy.as_str(), "write-through" | "versioned") {
            assert_eq!(r.stale_reads, 0, "{} {}", r.config(), r.workload);
        }
    }
    let checked: u64 = report.rows.iter().map(|r| r.checked_reads).sum();
    assert!(
        checked > 0,
        "no read of a written pet was checked for staleness"
    );
}

#[tokio::test]
async fn the_ceiling_answers_the_bytes_of_the_cached_hot_page_with_no_database_work() {
    use poem::EndpointExt;
    use poem::test::TestClient;

    tokio::time::timeout(Duration::from_secs(60), async {
        let config = petshop::config::Config::from_vars([
            ("DATABASE_URL", "sqlite::memory:"),
            ("CACHE_TIERS", "l1"),
        ])
        .unwrap();
        let state = petshop::startup::build_state(&config).await.unwrap();
        for i in 0..12 {
            let new = petshop::model::NewPet {
                name: format!("Cat {i}"),
                species: "cat".into(),
                age: i % 10,
                happiness: 50,
            };
            petshop::service::pets::create(&state.db, new)
                .await
                .unwrap();
        }
        let app = TestClient::new(
            petshop::startup::app_with(state.clone(), benches::service::bare_route).boxed(),
        );
        let body = |r: poem::test::TestResponse| async move {
            (r.0.status(), r.0.into_body().into_string().await.unwrap())
        };
        app.get("/pets?species=cat&limit=10").send().await;
        let hit = body(app.get("/pets?species=cat&limit=10").send().await).await;
        let bare = body(app.get("/bench/bare").send().await).await;
        assert_eq!(bare, hit, "the same bytes as the cached page");
        // Encoded once: a pet added since does not show.
        let new = petshop::model::NewPet {
            name: "Cat 99".into(),
            species: "cat".into(),
            age: 1,
            happiness: 1,
        };
        petshop::service::pets::create(&state.db, new)
            .await
            .unwrap();
        assert_eq!(body(app.get("/bench/bare").send().await).await, bare);
    })
    .await
    .expect("bounded");
}
