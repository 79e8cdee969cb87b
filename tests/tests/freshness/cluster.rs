//! The freshness checker on a 3-master Redis Cluster: two instances stay fresh, the
//! sharded backplane carries their invalidations, and a master killed mid-run fails
//! safe and is used again when it returns.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use cache::testing::RedisCluster;
use cache::{CacheClient, Source, Strategy, Ttl};
use e2e::freshness::{
    Keys, MemorySource, Redis, Row, Setup, Topology, Workload, instances_on, run_on, run_with,
};

use super::bounded;

fn on(cluster: &RedisCluster) -> Redis {
    Redis::Cluster(cluster.seeds())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_a_redis_cluster_never_serve_stale_data() {
    bounded(async {
        let cluster = RedisCluster::spawn();
        for kind in Strategy::ALL {
            let mut setup = Setup::new(kind, Topology::L2);
            setup.instances = 2;
            let report = run_on(&setup, &super::short(), Some(&on(&cluster))).await;
            eprintln!("cluster: {report:?}");
            assert!(
                report.reads > 100 && report.writes > 20,
                "too little happened: {report:?}"
            );
            assert_eq!(report.stale_reads, 0, "{report:?}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_with_l1_on_a_redis_cluster_stay_fresh_through_the_sharded_backplane() {
    bounded(async {
        let cluster = RedisCluster::spawn();
        for kind in Strategy::ALL {
            let mut setup = Setup::new(kind, Topology::L1L2);
            setup.instances = 2;
            let report = run_on(&setup, &super::short(), Some(&on(&cluster))).await;
            eprintln!("cluster: {report:?}");
            assert!(report.reads > 100, "{report:?}");
            // Across instances, staleness is bounded by the backplane's delivery delay.
            assert!(
                report.worst_window < Duration::from_millis(500),
                "{report:?}"
            );
        }
    })
    .await;
}

async fn read(
    c: &CacheClient,
    keys: &Keys,
    source: &MemorySource,
    id: i64,
) -> (Option<u64>, Source) {
    let got = c
        .get_entity(&keys.rows, id, Ttl::secs(600), || async {
            Ok::<_, Infallible>(source.read(id).await)
        })
        .await
        .expect("the loader cannot fail and redis errors never reach the caller");
    (got.value.map(|r: Row| r.version), got.source)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_instance_reaches_the_other_over_the_sharded_backplane() {
    bounded(async {
        let cluster = RedisCluster::spawn();
        let mut setup = Setup::new(Strategy::CacheAside, Topology::L1L2);
        setup.instances = 2;
        let keys = Keys::unique();
        let caches = instances_on(&setup, &keys, Some(&on(&cluster)));
        for c in &caches {
            assert!(c.wait_for_backplane(Duration::from_secs(10)).await);
        }
        let (a, b) = (&caches[0], &caches[1]);
        let source = MemorySource::new(1, Duration::ZERO);
        assert_eq!(read(b, &keys, &source, 0).await, (Some(1), Source::Miss));
        assert_eq!(read(b, &keys, &source, 0).await, (Some(1), Source::HitL1));

        let ticket = a.begin_write(&keys.rows, Some(0)).await.unwrap();
        let row = source.write(0);
        a.finish_write(ticket, 0, Some(&row), Ttl::secs(600)).await;

        // B's L1 copy is evicted by the message (L2 was invalidated by A itself).
        let deadline = Instant::now() + Duration::from_secs(5);
        while b.stats().backplane.expect("backplane").received == 0 {
            assert!(Instant::now() < deadline, "B never heard A's write");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(read(b, &keys, &source, 0).await.0, Some(2));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_sharded_subscription_flushes_l1_and_resubscribes() {
    bounded(async {
        let cluster = RedisCluster::spawn();
        let mut setup = Setup::new(Strategy::CacheAside, Topology::L1L2);
        setup.instances = 1;
        let keys = Keys::unique();
        let c = instances_on(&setup, &keys, Some(&on(&cluster))).remove(0);
        assert!(c.wait_for_backplane(Duration::from_secs(10)).await);
        let source = MemorySource::new(1, Duration::ZERO);
        read(&c, &keys, &source, 0).await;
        assert_eq!(read(&c, &keys, &source, 0).await.1, Source::HitL1);

        // Kill the subscriber connections on every node (the RESP3 sharded subscription
        // counts as a pub/sub client).
        let mut con = cluster.client().get_async_connection().await.unwrap();
        for seed in cluster.seeds() {
            let (host, port) = seed.trim_start_matches("redis://").split_once(':').unwrap();
            let route = redis::cluster_routing::SingleNodeRoutingInfo::ByAddress {
                host: host.to_owned(),
                port: port.parse().unwrap(),
            };
            let mut kill = redis::cmd("CLIENT");
            kill.arg("KILL").arg("TYPE").arg("pubsub");
            con.route_command(kill, redis::cluster_routing::RoutingInfo::SingleNode(route))
                .await
                .unwrap();
        }

        let deadline = Instant::now() + Duration::from_secs(10);
        while c.stats().backplane.expect("backplane").drops == 0 {
            assert!(Instant::now() < deadline, "the drop went unnoticed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(c.wait_for_backplane(Duration::from_secs(10)).await);
        // The resubscription flushed L1: the next read is not an L1 hit.
        assert_ne!(read(&c, &keys, &source, 0).await.1, Source::HitL1);
    })
    .await;
}

/// What two instances saw while one master was down.
#[derive(Debug)]
struct Damage {
    l2_errors: u64,
    short_circuits: u64,
    breaker_opened: u64,
    backplane_drops: u64,
    effects_queued: u64,
    effects_replayed: u64,
    bypassed_reads: u64,
}

fn damage(caches: &[CacheClient]) -> Damage {
    let mut d = Damage {
        l2_errors: 0,
        short_circuits: 0,
        breaker_opened: 0,
        backplane_drops: 0,
        effects_queued: 0,
        effects_replayed: 0,
        bypassed_reads: 0,
    };
    for c in caches {
        let s = c.stats();
        if let Some(l2) = s.cache.tier("l2") {
            d.l2_errors += l2.errors;
            d.short_circuits += l2.short_circuits;
        }
        d.breaker_opened += c.l2().map_or(0, cache::tier::RedisTier::faults);
        d.backplane_drops += s.backplane.map_or(0, |b| b.drops);
        d.effects_queued += s.recovery.queued;
        d.effects_replayed += s.recovery.replayed;
        d.bypassed_reads += s.recovery.bypassed_reads;
    }
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_under_two_l2_instances_fails_safe_and_its_keys_are_found_again() {
    bounded(killed_master(Topology::L2, 2, Victim::Other)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counters_master_killed_under_an_l1_l2_instance_fails_safe_and_the_cache_comes_back() {
    bounded(killed_master(Topology::L1L2, 1, Victim::Counters)).await;
}

// One instance: its L1 has no cross-instance window, so any stale read is the outage's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_under_an_l1_l2_instance_fails_safe_and_its_keys_are_found_again() {
    bounded(killed_master(Topology::L1L2, 1, Victim::Other)).await;
}

/// Which master a test kills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Victim {
    /// The one that serves the prefix's slot: every counter and the backplane channel.
    Counters,
    /// Another one: only entries (and their guards and leases).
    Other,
}

/// Kills a master 1 s into a 5 s freshness run, restarts it (same port, same
/// `nodes.conf`) 2 s later, then checks that its keys are written, read fresh and found
/// in Redis again.
async fn killed_master(topology: Topology, instances: usize, which: Victim) {
    {
        let cluster = RedisCluster::spawn();
        let redis = on(&cluster);
        let keys = Keys::unique();
        // Another master than the prefix's: the others keep serving their keys. The
        // prefix's: every read is a miss until it is back (no generation to check).
        let counters = cluster.master_of(&format!("{{{}}}:gen", keys.builder.prefix()));
        let victim = match which {
            Victim::Counters => counters,
            Victim::Other => (counters + 1) % cache::testing::CLUSTER_MASTERS,
        };
        let work = Workload {
            ids: 30,
            duration: Duration::from_secs(5),
            ..Workload::default()
        };
        let victims: Vec<i64> = (0..work.ids)
            .filter(|&id| cluster.master_of(keys.rows.id(id).as_str()) == victim)
            .collect();
        assert!(!victims.is_empty(), "some rows live on the victim");

        let mut setup = Setup::new(Strategy::CacheAside, topology);
        setup.instances = instances;
        let (outage, run) = tokio::join!(
            tokio::task::spawn_blocking(move || {
                let mut cluster = cluster;
                std::thread::sleep(Duration::from_millis(1000));
                cluster.kill(victim);
                let killed = Instant::now();
                std::thread::sleep(Duration::from_millis(2000));
                cluster.restart(victim);
                (cluster, killed.elapsed())
            }),
            run_with(&setup, &work, Some(&redis), &keys),
        );
        let ((cluster, down_for), (report, caches)) = (outage.unwrap(), run);
        let during = damage(&caches);
        eprintln!(
            "{topology} x{instances}: killed master {victim} ({which:?}) ({} of {} rows) for {down_for:?} until the cluster was ok again: {report:?}; {during:?}",
            victims.len(),
            work.ids
        );
        // No error reached a caller (run_with panics on one), no stale read.
        assert!(report.reads > 100 && report.writes > 20, "{report:?}");
        assert_eq!(report.stale_reads, 0, "{report:?}");
        assert!(during.l2_errors > 0, "the outage was not felt: {during:?}");

        // Back: every row of the victim is written through A and read fresh through B,
        // and is found in Redis again.
        let (a, b) = (&caches[0], caches.last().expect("an instance"));
        let source = MemorySource::new(work.ids, Duration::ZERO);
        let back = Instant::now();
        let mut found_after = None;
        let deadline = back + Duration::from_secs(20);
        while found_after.is_none() {
            assert!(
                Instant::now() < deadline,
                "the victim's keys never came back: {:?}",
                damage(&caches)
            );
            let id = victims[0];
            read(b, &keys, &source, id).await;
            let l2 = b.l2().expect("l2");
            if let Ok(Some(_)) = cache::tier::Cache::get(l2, &keys.rows.id(id)).await {
                found_after = Some(back.elapsed());
            } else {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        for &id in &victims {
            let ticket = a.begin_write(&keys.rows, Some(id)).await.unwrap();
            let row = source.set(id, 100 + u64::try_from(id).unwrap());
            a.finish_write(ticket, id, Some(&row), Ttl::secs(600)).await;
            let (version, _) = read(b, &keys, &source, id).await;
            assert_eq!(
                version,
                Some(row.version),
                "row {id} stale after the master returned"
            );
        }
        eprintln!(
            "{topology} x{instances} ({which:?}) after the restart: a key of the victim was an L2 hit again {:?} after the cluster was ok; totals {:?}",
            found_after.unwrap_or_default(),
            damage(&caches)
        );
        drop(cluster);
    }
}
