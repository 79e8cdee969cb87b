//! The strategies held to the freshness checker, plus the races and faults it exists
//! for: the cache-aside fill race, cross-instance invalidation, stampedes, a dropped
//! backplane.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache::testing::RedisServer;
use cache::{Source, Strategy, Ttl};
use e2e::freshness::{Keys, MemorySource, Row, Setup, Topology, Workload, instances, run};

mod cluster;

const BOUND: Duration = Duration::from_secs(90);

async fn bounded<F: Future<Output = ()>>(f: F) {
    tokio::time::timeout(BOUND, f)
        .await
        .expect("test exceeded its time bound");
}

fn short() -> Workload {
    Workload {
        duration: Duration::from_millis(700),
        ..Workload::default()
    }
}

async fn assert_never_stale(kind: Strategy, topology: Topology, instances: usize) {
    let redis = (topology != Topology::L1).then(RedisServer::spawn);
    let mut setup = Setup::new(kind, topology);
    setup.instances = instances;
    let report = run(&setup, &short(), redis.as_ref().map(|r| r.url()).as_deref()).await;
    assert!(
        report.reads > 100 && report.writes > 20,
        "too little happened: {report:?}"
    );
    assert_eq!(report.stale_reads, 0, "{report:?}");
}

macro_rules! never_stale {
    ($($name:ident: $kind:ident, $topology:ident, $n:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            bounded(assert_never_stale(Strategy::$kind, Topology::$topology, $n)).await;
        }
    )*};
}

never_stale! {
    cache_aside_with_the_guard_never_serves_stale_data_from_l1: CacheAside, L1, 1;
    cache_aside_with_the_guard_never_serves_stale_data_from_l2: CacheAside, L2, 1;
    cache_aside_with_the_guard_never_serves_stale_data_from_l1_l2: CacheAside, L1L2, 1;
    write_through_never_serves_stale_data_from_l1: WriteThrough, L1, 1;
    write_through_never_serves_stale_data_from_l2: WriteThrough, L2, 1;
    write_through_never_serves_stale_data_from_l1_l2: WriteThrough, L1L2, 1;
    versioned_never_serves_stale_data_from_l1: Versioned, L1, 1;
    versioned_never_serves_stale_data_from_l2: Versioned, L2, 1;
    versioned_never_serves_stale_data_from_l1_l2: Versioned, L1L2, 1;
    two_instances_sharing_l2_never_serve_stale_data_with_cache_aside: CacheAside, L2, 2;
    two_instances_sharing_l2_never_serve_stale_data_with_versioned: Versioned, L2, 2;
}

/// Reader loads v1, a writer commits v2 and invalidates, then the reader fills v1: the
/// classic race, made deterministic by holding the reader's loader until the write is done.
async fn fill_race(guard: bool) -> Option<Row> {
    let redis = RedisServer::spawn();
    let mut setup = Setup::new(Strategy::CacheAside, Topology::L1L2);
    setup.fill_guard = guard;
    let keys = Keys::unique();
    let cache = instances(&setup, &keys, Some(&redis.url())).remove(0);
    assert!(cache.wait_for_backplane(Duration::from_secs(5)).await);
    let source = MemorySource::new(1, Duration::ZERO);
    let ttl = Ttl::secs(600);

    let (loaded_tx, loaded_rx) = tokio::sync::oneshot::channel();
    let (written_tx, written_rx) = tokio::sync::oneshot::channel::<()>();
    let reader = {
        let (cache, source, keys) = (cache.clone(), source.clone(), keys.clone());
        tokio::spawn(async move {
            cache
                .get_entity(&keys.rows, 0, ttl, || async move {
                    let row = source.read(0).await; // v1
                    loaded_tx.send(()).expect("test alive");
                    written_rx.await.expect("writer done"); // the write happens now
                    Ok::<_, Infallible>(row)
                })
                .await
                .expect("loader cannot fail")
        })
    };
    loaded_rx.await.expect("reader loaded");
    let ticket = cache.begin_write(&keys.rows, Some(0)).await.unwrap();
    let row = source.write(0); // v2, acknowledged
    cache.finish_write(ticket, 0, Some(&row), ttl).await;
    written_tx.send(()).expect("reader alive");
    let first = reader.await.expect("reader");
    assert_eq!(
        first.value.as_ref().map(|r| r.version),
        Some(1),
        "the racing read itself began before the write"
    );

    // A read that begins after the write was acknowledged.
    let after = cache
        .get_entity(&keys.rows, 0, ttl, || async {
            Ok::<_, Infallible>(source.read(0).await)
        })
        .await
        .expect("loader cannot fail");
    after.value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_guard_cache_aside_keeps_a_stale_fill_until_its_ttl() {
    bounded(async {
        let row = fill_race(false).await.expect("row exists");
        assert_eq!(row.version, 1, "the race did not reproduce");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_guard_the_racing_fill_is_refused_and_the_next_read_is_fresh() {
    bounded(async {
        let row = fill_race(true).await.expect("row exists");
        assert_eq!(row.version, 2);
    })
    .await;
}

/// Two L1+L2 instances of `kind` sharing `redis`, their backplanes (if on) subscribed.
async fn two_instances(
    kind: Strategy,
    backplane: bool,
    redis: &RedisServer,
) -> (Keys, Vec<cache::CacheClient>) {
    let mut setup = Setup::new(kind, Topology::L1L2);
    setup.instances = 2;
    setup.backplane = backplane;
    let keys = Keys::unique();
    let caches = instances(&setup, &keys, Some(&redis.url()));
    for c in &caches {
        assert!(c.wait_for_backplane(Duration::from_secs(5)).await);
    }
    (keys, caches)
}

/// Row 0 of `source` through `cache` (TTL 600 s: only invalidations can drop it).
async fn read_row0(
    cache: &cache::CacheClient,
    keys: &Keys,
    source: &MemorySource,
) -> cache::Fetched<Option<Row>> {
    cache
        .get_entity(&keys.rows, 0, Ttl::secs(600), || async {
            Ok::<_, Infallible>(source.read(0).await)
        })
        .await
        .expect("loader cannot fail")
}

/// B reads (fills its L1), A writes, then B reads until it sees the write.
async fn cross_instance(kind: Strategy, backplane: bool) -> (Duration, Option<u64>) {
    let redis = RedisServer::spawn();
    let (keys, caches) = two_instances(kind, backplane, &redis).await;
    let (a, b) = (&caches[0], &caches[1]);
    let source = MemorySource::new(1, Duration::ZERO);
    let read_b = || read_row0(b, &keys, &source);
    assert_eq!(read_b().await.source, Source::Miss);
    assert_eq!(read_b().await.source, Source::HitL1);

    let ticket = a.begin_write(&keys.rows, Some(0)).await.unwrap();
    let row = source.write(0);
    a.finish_write(ticket, 0, Some(&row), Ttl::secs(600)).await;
    let acked = Instant::now();

    // Poll B for a bounded time, far below the TTL.
    let deadline = acked + Duration::from_secs(3);
    loop {
        let got = read_b().await;
        if got.value.as_ref().map(|r| r.version) == Some(2) {
            return (acked.elapsed(), None);
        }
        if Instant::now() > deadline {
            return (acked.elapsed(), got.value.map(|r| r.version));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_backplane_a_write_on_a_reaches_b_within_the_backplane_delay() {
    bounded(async {
        for kind in Strategy::ALL {
            let (seen_after, stale) = cross_instance(kind, true).await;
            assert_eq!(stale, None, "{kind}: B still served the old value");
            eprintln!("{kind}: B saw A's write {seen_after:?} after it was acknowledged");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_backplane_b_keeps_serving_its_old_l1_copy() {
    bounded(async {
        let (_, stale) = cross_instance(Strategy::CacheAside, false).await;
        assert_eq!(
            stale,
            Some(1),
            "without a backplane B should serve its L1 copy until the TTL"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_with_the_backplane_stay_fresh_under_concurrent_load() {
    bounded(async {
        let redis = RedisServer::spawn();
        for kind in Strategy::ALL {
            let mut setup = Setup::new(kind, Topology::L1L2);
            setup.instances = 2;
            let report = run(&setup, &short(), Some(&redis.url())).await;
            eprintln!("{report:?}");
            assert!(report.reads > 100, "{report:?}");
            // Staleness across instances is bounded by the backplane's delivery delay.
            assert!(
                report.worst_window < Duration::from_millis(500),
                "{report:?}"
            );
        }
    })
    .await;
}

async fn stampede(lease: bool) -> usize {
    let redis = RedisServer::spawn();
    let mut setup = Setup::new(Strategy::CacheAside, Topology::L1L2);
    setup.instances = 2;
    setup.lease = lease;
    let keys = Keys::unique();
    let caches = instances(&setup, &keys, Some(&redis.url()));
    for c in &caches {
        assert!(c.wait_for_backplane(Duration::from_secs(5)).await);
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Barrier::new(100));
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let (cache, keys, calls, gate) = (
                caches[i % 2].clone(),
                keys.clone(),
                calls.clone(),
                gate.clone(),
            );
            tokio::spawn(async move {
                gate.wait().await;
                cache
                    .get_entity(&keys.rows, 7, Ttl::secs(60), || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        Ok::<_, Infallible>(Some(Row { id: 7, version: 1 }))
                    })
                    .await
                    .expect("loader cannot fail")
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task").value.map(|r| r.version), Some(1));
    }
    calls.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stampede_across_two_instances_loads_once_with_the_lease() {
    bounded(async {
        assert_eq!(stampede(true).await, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_lease_a_stampede_loads_at_most_once_per_instance() {
    bounded(async {
        let calls = stampede(false).await;
        assert!((1..=2).contains(&calls), "{calls} loads");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_backplane_flushes_and_bypasses_l1_until_it_is_back() {
    bounded(async {
        let redis = RedisServer::spawn();
        let (keys, caches) = two_instances(Strategy::CacheAside, true, &redis).await;
        let (a, b) = (&caches[0], &caches[1]);
        let source = MemorySource::new(1, Duration::ZERO);
        let read_b = || read_row0(b, &keys, &source);
        read_b().await;
        assert_eq!(read_b().await.source, Source::HitL1);

        // Kill every subscriber connection on the server.
        let mut raw = redis
            .client()
            .get_multiplexed_async_connection()
            .await
            .expect("raw");
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query_async(&mut raw)
            .await
            .expect("client kill");

        // A writes; whatever B's backplane is doing, B must not serve the old value.
        let ticket = a.begin_write(&keys.rows, Some(0)).await.unwrap();
        let row = source.write(0);
        a.finish_write(ticket, 0, Some(&row), Ttl::secs(600)).await;
        for _ in 0..20 {
            let got = read_b().await;
            assert_eq!(
                got.value.map(|r| r.version),
                Some(2),
                "stale read after the drop"
            );
        }
        let stats = b.stats().backplane.expect("backplane");
        assert!(stats.drops >= 1, "{stats:?}");
        // It comes back by itself and L1 is used again.
        assert!(b.wait_for_backplane(Duration::from_secs(10)).await);
        read_b().await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while read_b().await.source != Source::HitL1 {
            assert!(Instant::now() < deadline, "L1 never came back into use");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_is_cached_for_the_negative_ttl_and_a_create_replaces_it() {
    bounded(async {
        for kind in Strategy::ALL {
            let keys = Keys::unique();
            let cache = cache::CacheClient::builder(&keys.builder)
                .strategy(kind)
                .l1(cache::tier::MokaTier::builder())
                .entity(&keys.rows, &[&keys.lists])
                .negative_ttl(Ttl::secs(5))
                .build()
                .expect("a valid client");
            let source = MemorySource::new(0, Duration::ZERO);
            let read = || async {
                cache
                    .get_entity(&keys.rows, 0, Ttl::secs(60), || async {
                        Ok::<_, Infallible>(source.read(0).await)
                    })
                    .await
                    .expect("loader cannot fail")
            };
            assert_eq!(read().await.value, None);
            let cached = read().await;
            assert_eq!(
                (cached.value, cached.source),
                (None, Source::HitL1),
                "{kind}"
            );
            let ticket = cache.begin_write(&keys.rows, None).await.unwrap();
            let row = source.write(0);
            cache
                .finish_write(ticket, 0, Some(&row), Ttl::secs(60))
                .await;
            assert_eq!(
                read().await.value.map(|r| r.version),
                Some(1),
                "{kind}: the negative entry survived a create"
            );
        }
    })
    .await;
}
