//! The comparison pipeline end to end: against an in-process fake of the pet shop, and
//! against the real pet shop (this crate's `petshop-server`, which cargo builds for
//! these tests) as child processes.
//!
//! Bounded, no timing assertions: only that every configuration produced rows, with no
//! errors, and that the reports were written.

mod fake;

use std::time::Duration;

use benches::compare;
use benches::config::{CompareConfig, MemoryConfig, Strategy, Topology};
use benches::launcher::{Launcher, ProcessLauncher};
use benches::loadgen::LoadSpec;
use benches::process::PetshopCommand;
use benches::results::{Report, Row};
use benches::workload::Workload;
use benches::{plot, report, targets};

/// What the `compare` binary does: measure, judge, write, plot.
async fn run_and_write(config: &CompareConfig, launcher: &dyn Launcher) -> Report {
    let mut measured = compare::run(config, launcher).await.unwrap();
    measured.targets = targets::evaluate(&measured);
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

/// A quick comparison cut down for a debug build: tiny data, very short runs, every
/// scenario.
fn reduced_quick(out: &std::path::Path) -> CompareConfig {
    CompareConfig {
        pets: 200,
        load: LoadSpec {
            concurrency: 4,
            duration: Duration::from_millis(250),
            max_requests: 400,
            warmup: Duration::from_millis(100),
        },
        seed_mix_pets: Some(300),
        memory: Some(MemoryConfig {
            pets: 1_000,
            duration: Duration::from_secs(2),
            budgets: vec![64 << 10, 1 << 20],
        }),
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

fn assert_error_free(rows: &[Row]) {
    for r in rows {
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

/// Every configuration has its ceilings and workloads; the soft-invalidation one its
/// mixes; nothing failed.
fn assert_complete_and_error_free(report: &Report, config: &CompareConfig) {
    let mixes = config
        .workloads
        .iter()
        .filter(|w| matches!(w, Workload::Mix { .. }))
        .count();
    // The ceilings, the workloads, and, with mixes, their reads alone and writes alone.
    let alone = if mixes > 0 { 2 } else { 0 };
    let per_service = config.workloads.len() + 2 + alone;
    let exact = config.topologies.len() * config.strategies.len() * per_service;
    let soft_rows = if config.soft_stale.is_some()
        && config.topologies.contains(&Topology::L1L2)
        && mixes > 0
    {
        2 + alone + mixes
    } else {
        0
    };
    assert_eq!(report.rows.len(), exact + soft_rows);
    for t in &config.topologies {
        for s in &config.strategies {
            let workloads: Vec<&str> = report
                .rows
                .iter()
                .filter(|r| {
                    r.topology == t.as_str() && r.strategy == s.as_str() && r.variant.is_empty()
                })
                .map(|r| r.workload.as_str())
                .collect();
            assert_eq!(
                workloads.len(),
                per_service,
                "{}/{}",
                t.as_str(),
                s.as_str()
            );
            assert_eq!(workloads[..2], ["health", "bare"]);
        }
    }
    let soft = report.rows.iter().filter(|r| r.variant == "soft 500ms");
    assert_eq!(soft.count(), soft_rows);
    // Every mix row is set against its own service's Amdahl ceiling.
    for r in report
        .rows
        .iter()
        .filter(|r| r.workload.starts_with("mix-"))
    {
        let is_mix = !(r.workload == "mix-100/0" || r.workload == "mix-0/100");
        assert_eq!(
            r.of_ceiling.is_some(),
            is_mix,
            "{} {}",
            r.config(),
            r.workload
        );
    }
    assert_eq!(report.ceilings.len(), 1, "the Redis round trip");
    assert_error_free(&report.ceilings);
    assert_error_free(&report.rows);
    // Every row knows its service's /health.
    assert!(report.rows.iter().all(|r| r.vs_health.is_some()));
}

fn assert_seed_mix(report: &Report) {
    let rows = &report.seed_mix.rows;
    assert_eq!(report.seed_mix.skipped, None);
    for t in ["none", "l1", "l1+l2"] {
        let mine: Vec<&str> = rows
            .iter()
            .filter(|r| r.topology == t)
            .map(|r| r.workload.as_str())
            .collect();
        assert_eq!(
            mine,
            ["health", "seed-100/0", "seed-95/5", "seed-0/100"],
            "{t}"
        );
    }
    assert_error_free(rows);
    let mix = rows.iter().find(|r| r.workload == "seed-95/5").unwrap();
    assert!(mix.writes > 0 && mix.writes < mix.requests, "{mix:?}");
    assert!(mix.of_ceiling.is_some_and(|x| x > 0.0), "{mix:?}");
}

/// nginx rows when it is installed, the skipped line when it is not; our L1 exact.
fn assert_microcache(report: &Report) {
    let mc = &report.microcache;
    if benches::nginx::find(None).is_none() {
        assert_eq!(mc.skipped.as_deref(), Some("skipped: nginx not installed"));
        assert!(mc.rows.is_empty());
        return;
    }
    assert_eq!(mc.skipped, None);
    let rows: Vec<(&str, &str)> = mc
        .rows
        .iter()
        .map(|r| (r.topology.as_str(), r.workload.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            ("l1", "health"),
            ("l1", "hot"),
            ("l1", "mix-80/20"),
            ("nginx", "hot"),
            ("nginx", "mix-80/20"),
        ]
    );
    assert_error_free(&mc.rows);
    let ours = &mc.rows[2];
    assert_eq!(ours.stale_reads, 0, "{ours:?}");
}

/// A resident size for none and each budget, after reading pets without errors.
fn assert_memory(report: &Report, config: &CompareConfig) {
    let m = &report.memory;
    let budgets = &config.memory.as_ref().unwrap().budgets;
    assert_eq!(m.skipped, None);
    assert_eq!(m.rows.len(), 1 + budgets.len());
    assert_eq!(m.rows[0].topology, "none");
    for (r, b) in m.rows[1..].iter().zip(budgets) {
        assert_eq!(r.l1_max_bytes, Some(*b));
    }
    for r in &m.rows {
        assert!(r.requests > 0 && r.errors == 0, "{r:?}");
        assert!(r.rss_bytes.is_some_and(|b| b > 0), "{r:?}");
    }
}

fn assert_targets_listed(report: &Report) {
    for prefix in [
        "Hot L1 hit ≥ 0.9×",
        "Hot L1 hit p99",
        "Hot L1 hit on par with an nginx microcache",
        "Seed 95/5 mix",
        "mix-95/5, l1+l2, exact (tags): ≥ 5×",
        "mix-95/5, l1+l2, exact: ≤ 0.1 DB queries",
        "mix-95/5, l1+l2, exact: 0 stale",
        "mix-95/5 with soft invalidation",
        "soft invalidation: worst stale window",
        "L1 memory",
    ] {
        assert!(
            report.targets.iter().any(|v| v.target.starts_with(prefix)),
            "no verdict for {prefix:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reduced_quick_comparison_against_a_fake_service_covers_every_configuration_without_errors()
 {
    // Arrange: the processes of their own (nginx, memory) are the real test's.
    let out = tempfile::tempdir().unwrap();
    let config = CompareConfig {
        microcache: false,
        memory: None,
        ..reduced_quick(out.path())
    };

    // Act
    let report = run_and_write(&config, &fake::FakeLauncher::default()).await;

    // Assert
    assert_complete_and_error_free(&report, &config);
    assert_seed_mix(&report);
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
    assert_seed_mix(&report);
    assert_microcache(&report);
    assert_memory(&report, &config);
    assert_targets_listed(&report);
    assert_files_written(out.path(), "quick");
    // The service's own counters were read for every row.
    assert!(
        report
            .rows
            .iter()
            .all(|r| r.db_queries_per_request.is_some()),
        "db query counter missing from /metrics"
    );
    for r in report
        .rows
        .iter()
        .filter(|r| r.workload != "health" && r.workload != "bare")
    {
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
        // Tags keep every strategy exact: no value older than an acknowledged write.
        if r.variant.is_empty() {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_every_scenario_runs_the_seed_mix_and_memory_on_databases_of_their_own() {
    // Arrange: a fresh PostgreSQL database for the comparison (skipped, loudly, without
    // a server); one service, one mix, the seed mix and the memory sweep.
    let Ok(admin) = std::env::var(petshop::testing::VAR) else {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED: the PostgreSQL comparison needs {} ***\n",
            petshop::testing::VAR
        );
        return;
    };
    let db = petshop::testing::FreshDatabase::create(&admin, "bench_compare")
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let config = CompareConfig {
        postgres_url: Some(db.url().to_owned()),
        topologies: vec![Topology::L1],
        strategies: vec![Strategy::CacheAside],
        workloads: vec![Workload::Mix { read_percent: 95 }],
        soft_stale: None,
        microcache: false,
        ..reduced_quick(out.path())
    };
    let launcher = ProcessLauncher { petshop: petshop() };

    // Act
    let report = tokio::time::timeout(Duration::from_secs(300), run_and_write(&config, &launcher))
        .await
        .expect("bounded");

    // Assert: nothing skipped; each scenario says where its pets were.
    assert_eq!(report.meta.database, "postgres");
    assert_complete_and_error_free(&report, &config);
    assert_seed_mix(&report);
    assert_memory(&report, &config);
    assert!(
        report
            .seed_mix
            .note
            .contains("a PostgreSQL database of its own"),
        "{}",
        report.seed_mix.note
    );
    assert!(
        report
            .memory
            .note
            .contains("a PostgreSQL database of its own"),
        "{}",
        report.memory.note
    );
    let mix = report
        .rows
        .iter()
        .find(|r| r.workload == "mix-95/5")
        .unwrap();
    assert!(mix.of_ceiling.is_some_and(|x| x > 0.0), "{mix:?}");
}
