//! Scale-out end to end: three pet shop instances started at the same moment on one
//! throwaway Redis and a fresh PostgreSQL database (from `PETSHOP_TEST_POSTGRES_URL`,
//! dropped afterwards), under writers and readers spread over all three, per strategy
//! with `l1+l2`. Short runs; `cargo run --release -p e2e --bin scale-out` runs long ones
//! and prints the table. Skipped, loudly, without PostgreSQL.
//!
//! Asserted: all three come up, no 5xx, no lost write, and after the load stops every
//! pet read through every instance equals the database. The cross-instance window
//! during the run is printed, not asserted (it depends on the machine's load).

use std::io::Write as _;
use std::time::Duration;

use cache::Strategy;
use e2e::drill::Load;
use e2e::postgres::VAR;
use e2e::scale::{ScaleOut, ScaleReport, markdown, run_strategy};

const BOUND: Duration = Duration::from_secs(120);

fn shape() -> ScaleOut {
    ScaleOut {
        instances: 3,
        length: Duration::from_secs(2),
        load: Load {
            ids: 24,
            writers: 3,
            readers: 2,
            ..Load::default()
        },
    }
}

async fn scale_out(strategy: Strategy) -> Option<ScaleReport> {
    let Ok(admin_url) = std::env::var(VAR) else {
        // Straight to stderr: libtest captures `eprintln!` of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED: the scale-out test needs PostgreSQL: set {VAR} \
             (e.g. postgres://postgres@127.0.0.1:5432/postgres) ***\n"
        );
        return None;
    };
    let report = tokio::time::timeout(BOUND, run_strategy(strategy, &admin_url, &shape()))
        .await
        .expect("the scale-out run is bounded")
        .expect("three instances start together on a fresh database");
    eprintln!("{}", markdown(std::slice::from_ref(&report)));
    Some(report)
}

fn assert_coherent(r: &ScaleReport) {
    let d = &r.drill;
    // All three came up, at the same moment, on one fresh database.
    assert_eq!(r.ready, [200, 200, 200], "{r:#?}");
    // The load was spread: every instance took writes and served reads, and reads
    // looked at values written through other instances.
    assert_eq!(d.instances.len(), 3, "{r:#?}");
    for (i, load) in d.instances.iter().enumerate() {
        assert!(
            load.reads > 0 && load.writes_acked > 0,
            "instance {i} took no share: {r:#?}"
        );
    }
    assert!(
        d.cross_reads() > 0,
        "no read of another instance's write: {r:#?}"
    );
    // Nothing failed and nothing was lost.
    assert_eq!(d.server_errors, 0, "{r:#?}");
    assert_eq!(d.lost_writes, 0, "{r:#?}");
    // Quiescent: every pet through every instance equals the database.
    assert_eq!(d.sweep_reads, 24 * 3, "{r:#?}");
    assert_eq!(d.sweep_stale, 0, "stale answers after quiescence: {r:#?}");
}

macro_rules! scale_out_tests {
    ($($name:ident: $strategy:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            if let Some(report) = scale_out(Strategy::$strategy).await {
                assert_coherent(&report);
            }
        }
    )*};
}

scale_out_tests! {
    three_instances_with_cache_aside_agree_with_the_database_once_quiescent: CacheAside;
    three_instances_with_write_through_agree_with_the_database_once_quiescent: WriteThrough;
    three_instances_with_versioned_agree_with_the_database_once_quiescent: Versioned;
}
