//! Freshness across Redis faults: a write whose cache-side step cannot reach Redis is
//! queued and replayed when Redis answers; nothing stale is served afterwards, by any
//! instance. Counters that vanish never make old entries reachable; strict writes are
//! refused instead of queued.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache::testing::{Fault, Proxy, RedisServer};
use cache::tier::{MokaTier, RedisTier};
use cache::{
    CacheClient, CacheError, KeyBuilder, Namespace, Source, Strategy, Ttl, WriteConsistency,
};

use crate::support::bounded;

const TTL: Ttl = Ttl::secs(600);
const WAIT: Duration = Duration::from_secs(20);

/// A source of truth: a version per id.
#[derive(Clone, Default)]
struct Source_(Arc<Mutex<HashMap<i64, u64>>>);

impl Source_ {
    fn read(&self, id: i64) -> Option<u64> {
        self.0.lock().unwrap().get(&id).copied()
    }

    fn write(&self, id: i64) -> u64 {
        let mut rows = self.0.lock().unwrap();
        let v = rows.entry(id).or_insert(0);
        *v += 1;
        *v
    }
}

struct World {
    keys: KeyBuilder,
    rows: Namespace,
    lists: Namespace,
    source: Source_,
}

impl World {
    fn new() -> Self {
        let keys = KeyBuilder::new(&format!("r{:x}", rand::random::<u32>())).unwrap();
        Self {
            rows: keys.namespace("row").unwrap(),
            lists: keys.namespace("rows").unwrap(),
            keys,
            source: Source_::default(),
        }
    }

    /// An L1+L2 instance on the Redis at `url`.
    fn instance(&self, strategy: Strategy, url: &str) -> CacheClient {
        self.builder(strategy, url).build().unwrap()
    }

    fn builder(&self, strategy: Strategy, url: &str) -> cache::CacheClientBuilder {
        CacheClient::builder(&self.keys)
            .strategy(strategy)
            .l1(MokaTier::builder())
            .l2(RedisTier::builder(url)
                .op_timeout(Duration::from_millis(100))
                .breaker(2, Duration::from_millis(200)))
            .entity(&self.rows, &[&self.lists])
    }

    async fn read(&self, client: &CacheClient, id: i64) -> (Option<u64>, Source) {
        let source = self.source.clone();
        let got = client
            .get_entity(&self.rows, id, TTL, || async move {
                Ok::<_, std::convert::Infallible>(source.read(id))
            })
            .await
            .unwrap();
        (got.value, got.source)
    }

    async fn write(&self, client: &CacheClient, id: i64) -> u64 {
        let ticket = client.begin_write(&self.rows, Some(id)).await.unwrap();
        let v = self.source.write(id);
        client.finish_write(ticket, id, Some(&v), TTL).await;
        v
    }
}

async fn connected(clients: &[&CacheClient]) {
    for c in clients {
        assert!(
            c.wait_for_backplane(WAIT).await,
            "backplane never connected"
        );
    }
}

/// Reads row 1 through `c` until the cache serves it, asserting that every read,
/// hit or not, returns `newest`.
async fn fresh_until_hit(w: &World, c: &CacheClient, newest: u64) {
    tokio::time::timeout(WAIT, async {
        loop {
            let (value, source) = w.read(c, 1).await;
            assert_eq!(value, Some(newest), "read as {source:?}");
            if source.is_hit() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the cache never served again");
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting: {what}"));
}

/// A writer cut off from Redis: its writes queue, its own reads bypass the cache, the
/// instance that stayed connected serves its old copy for the length of the partition
/// (the documented window), and once the writer is back every instance is fresh.
async fn a_partitioned_writer_replays_its_writes(strategy: Strategy) {
    // Arrange: instance A reaches Redis through a proxy, B directly; both cached row 1.
    let redis = RedisServer::spawn();
    let proxy = Proxy::spawn(redis.port());
    let w = World::new();
    w.source.write(1);
    let (a, b) = (
        w.instance(strategy, &proxy.url()),
        w.instance(strategy, &redis.url()),
    );
    connected(&[&a, &b]).await;
    for c in [&a, &b] {
        w.read(c, 1).await;
        assert!(w.read(c, 1).await.1.is_hit(), "{strategy}");
    }

    // Act: A is cut off, and writes row 1 twice.
    proxy.set(Fault::Cut);
    w.write(&a, 1).await;
    let newest = w.write(&a, 1).await;

    // Assert: queued; A reads the source; B still serves its copy (the partition window).
    let pending = a.stats().recovery.pending;
    assert!(pending >= 1, "{strategy}: nothing queued");
    assert_eq!(
        w.read(&a, 1).await,
        (Some(newest), Source::Bypass),
        "{strategy}"
    );
    assert_eq!(w.read(&b, 1).await, (Some(1), Source::HitL1), "{strategy}");

    // Act: the partition heals.
    proxy.set(Fault::None);
    until("the queue drains", || a.stats().recovery.pending == 0).await;

    // Assert: every instance is fresh, and the cache serves again.
    until("B hears the replayed invalidation", || {
        b.stats().backplane.unwrap().received >= 1
    })
    .await;
    // (A may still be starting the new generation its own fault calls for: every read
    // until then is fresh too, from the source.)
    for c in [&a, &b] {
        fresh_until_hit(&w, c, newest).await;
    }
    let r = a.stats().recovery;
    assert!(
        r.replayed >= pending && r.bypassed_reads >= 1,
        "{strategy}: {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_aside_a_partitioned_writer_replays_its_writes() {
    bounded(a_partitioned_writer_replays_its_writes(
        Strategy::CacheAside,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_a_partitioned_writer_replays_its_writes() {
    bounded(a_partitioned_writer_replays_its_writes(
        Strategy::WriteThrough,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versioned_a_partitioned_writer_replays_its_writes() {
    bounded(a_partitioned_writer_replays_its_writes(Strategy::Versioned)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_saw_redis_fail_never_reads_what_a_queued_write_replaces() {
    bounded(async {
        // Arrange: A and B reach one Redis through proxies of their own; row 1 is
        // cached in Redis and in B's L1.
        let redis = RedisServer::spawn();
        let (pa, pb) = (Proxy::spawn(redis.port()), Proxy::spawn(redis.port()));
        let w = World::new();
        w.source.write(1);
        let (a, b) = (
            w.instance(Strategy::CacheAside, &pa.url()),
            w.instance(Strategy::CacheAside, &pb.url()),
        );
        connected(&[&a, &b]).await;
        w.read(&a, 1).await;
        assert_eq!(w.read(&b, 1).await, (Some(1), Source::HitL2));

        // Act: Redis is gone for both; A writes row 1 (its invalidation is queued);
        // then Redis comes back for B only, while A stays cut off.
        pa.set(Fault::Cut);
        pb.set(Fault::Cut);
        let newest = w.write(&a, 1).await;
        tokio::time::timeout(WAIT, async {
            while b.backplane_connected() != Some(false) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("B never saw the fault");
        pb.set(Fault::None);
        let l2 = b.l2().unwrap();
        tokio::time::timeout(WAIT, async {
            while l2.ping().await.is_err() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("B never reached Redis again");

        // Assert: B reads at once, Redis reachable again and B's replayer most likely
        // not yet awake: having seen Redis fail, it trusts nothing Redis holds until its
        // new generation has landed.
        assert_eq!(w.read(&b, 1).await.0, Some(newest));
        assert!(b.wait_for_backplane(WAIT).await);
        until("B's new generation lands", || {
            let r = b.stats().recovery;
            r.queued >= 1 && r.pending == 0
        })
        .await;

        // A's invalidation has not reached Redis, yet B does not serve the value it
        // replaces: everything written before B's new generation is unreachable.
        assert!(a.stats().recovery.pending >= 1);
        let (value, source) = w.read(&b, 1).await;
        assert_eq!(value, Some(newest));
        assert!(matches!(source, Source::Miss | Source::HitL1), "{source:?}");
        assert_eq!(w.read(&b, 1).await, (Some(newest), Source::HitL1));

        // And when A returns, its queue drains and it agrees.
        pa.set(Fault::None);
        until("A's queue drains", || a.stats().recovery.pending == 0).await;
        assert_eq!(w.read(&a, 1).await.0, Some(newest));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_counters_deleted_mid_run_never_make_old_entries_reachable() {
    bounded(async {
        // Arrange: versioned keys on Redis alone (every read asks Redis for the version);
        // row 0 cached at two versions, each holding what the source had then.
        let redis = RedisServer::spawn();
        let w = World::new();
        let client = CacheClient::builder(&w.keys)
            .strategy(Strategy::Versioned)
            .l2(RedisTier::builder(redis.url()))
            .entity(&w.rows, &[&w.lists])
            .build()
            .unwrap();
        let mut con = redis
            .client()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        w.source.write(0);
        for _ in 0..3 {
            w.read(&client, 0).await;
            w.write(&client, 0).await;
        }
        assert!(w.read(&client, 0).await.0.is_some());

        // Act: the counters vanish (a restart without persistence, an eviction, a DEL).
        let counters: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{{{}}}:*:ver", w.keys.prefix()))
            .query_async(&mut con)
            .await
            .unwrap();
        assert!(!counters.is_empty());
        let _: () = redis::cmd("DEL")
            .arg(&counters)
            .query_async(&mut con)
            .await
            .unwrap();

        // Assert: through more writes and reads, every read returns the newest row.
        for _ in 0..4 {
            let newest = w.write(&client, 0).await;
            assert_eq!(w.read(&client, 0).await.0, Some(newest));
            assert_eq!(w.read(&client, 0).await, (Some(newest), Source::HitL2));
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_that_stalls_is_dropped_and_l1_bypassed_until_it_answers() {
    bounded(async {
        let redis = RedisServer::spawn();
        let proxy = Proxy::spawn(redis.port());
        let w = World::new();
        let a = w.instance(Strategy::CacheAside, &proxy.url());
        connected(&[&a]).await;

        // A black hole: the connection stays open and reports no error.
        proxy.set(Fault::BlackHole);
        until("the stalled subscription is noticed", || {
            a.backplane_connected() == Some(false)
        })
        .await;
        assert_eq!(a.stats().backplane.unwrap().drops, 1);

        proxy.set(Fault::None);
        assert!(a.wait_for_backplane(WAIT).await, "never resubscribed");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_write_is_refused_before_the_source_when_redis_cannot_be_told() {
    bounded(async {
        let redis = RedisServer::spawn();
        let proxy = Proxy::spawn(redis.port());
        let w = World::new();
        for strategy in Strategy::ALL {
            let a = w
                .builder(strategy, &proxy.url())
                .write_consistency(WriteConsistency::Strict)
                .build()
                .unwrap();
            connected(&[&a]).await;
            assert!(a.begin_write(&w.rows, Some(1)).await.is_ok(), "{strategy}");

            proxy.set(Fault::Cut);
            let refused = a.begin_write(&w.rows, Some(1)).await.unwrap_err();
            assert!(
                matches!(refused, CacheError::WriteRefused { .. }),
                "{strategy}: {refused:?}"
            );
            assert!(refused.is_transient());

            proxy.set(Fault::None);
            let deadline = tokio::time::Instant::now() + WAIT;
            while a.begin_write(&w.rows, Some(1)).await.is_err() {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{strategy}: never accepted again"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overflowing_queue_falls_back_to_a_new_generation_and_bypasses_everything_until_then() {
    bounded(async {
        // Arrange: room for two queued effects; rows 1..=3 cached in Redis.
        let redis = RedisServer::spawn();
        let proxy = Proxy::spawn(redis.port());
        let w = World::new();
        let a = w
            .builder(Strategy::CacheAside, &proxy.url())
            .recovery_capacity(2)
            .build()
            .unwrap();
        connected(&[&a]).await;
        for id in 1..=3 {
            w.source.write(id);
            w.read(&a, id).await;
        }

        // Act: cut off, three writes queue six effects.
        proxy.set(Fault::Cut);
        for id in 1..=3 {
            w.write(&a, id).await;
        }

        // Assert: the queue fell back to a new generation, and nothing is read from the
        // cache until it lands.
        let r = a.stats().recovery;
        assert!(r.overflows >= 1 && r.pending <= 2, "{r:?}");
        assert_eq!(w.read(&a, 9).await.1, Source::Bypass);

        proxy.set(Fault::None);
        until("the new generation lands", || {
            a.stats().recovery.pending == 0
        })
        .await;
        for id in 1..=3 {
            assert_eq!(w.read(&a, id).await, (Some(2), Source::Miss));
        }
    })
    .await;
}
