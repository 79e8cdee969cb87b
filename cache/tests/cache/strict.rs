//! Strict writes across instances: a write holds what it touches on every instance
//! before the source is written, waits for each instance with an L1 lease to
//! acknowledge (or for its lease to run out), and releases it after; an instance that
//! joins meanwhile learns the hold at once; L1 answers only under a lease.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache::testing::RedisServer;
use cache::tier::{MokaTier, RedisTier};
use cache::{CacheClient, KeyBuilder, Namespace, Source, Strategy, Tag, Ttl, WriteConsistency};

use crate::support::bounded;

const TTL: Ttl = Ttl::secs(600);
const WAIT: Duration = Duration::from_secs(10);

struct World {
    keys: KeyBuilder,
    rows: Namespace,
    lists: Namespace,
    /// The source of truth: row 1's version.
    row: Arc<AtomicU64>,
    url: String,
}

impl World {
    fn new(redis: &RedisServer) -> Self {
        let keys = KeyBuilder::new(&format!("s{:x}", rand::random::<u32>())).unwrap();
        Self {
            rows: keys.namespace("row").unwrap(),
            lists: keys.namespace("rows").unwrap(),
            keys,
            row: Arc::new(AtomicU64::new(1)),
            url: redis.url(),
        }
    }

    async fn instance(&self, strategy: Strategy) -> CacheClient {
        let client = CacheClient::builder(&self.keys)
            .strategy(strategy)
            .write_consistency(WriteConsistency::Strict)
            .l1(MokaTier::builder())
            .l2(RedisTier::builder(self.url.as_str()).op_timeout(Duration::from_millis(500)))
            .entity(&self.rows, &[&self.lists])
            .build()
            .unwrap();
        assert!(client.wait_for_backplane(WAIT).await, "never subscribed");
        // The first lease comes with the first renewal after subscribing.
        until_cached(self, &client).await;
        client
    }

    async fn read(&self, client: &CacheClient) -> (Option<u64>, Source) {
        let row = self.row.clone();
        let got = client
            .get_entity(&self.rows, 1, TTL, || async move {
                Ok::<_, Infallible>(Some(row.load(Ordering::SeqCst)))
            })
            .await
            .unwrap();
        (got.value, got.source)
    }

    /// A tagged read of row 1 (as a list page would be).
    async fn read_tagged(&self, client: &CacheClient) -> (u64, Source) {
        let row = self.row.clone();
        let got = client
            .read(&self.lists, cache::Part::Fixed("first"), TTL)
            .tags(|_: &u64| vec![Tag::new("row:1").unwrap()])
            .load(|| async move { Ok::<_, Infallible>(row.load(Ordering::SeqCst)) })
            .await
            .unwrap();
        (got.value, got.source)
    }
}

/// The instances' L1 leases in Redis (a sorted set: instance → expiry in ms).
fn leases_key(w: &World) -> String {
    format!("{{{}}}:leases", w.keys.prefix())
}

/// Reads row 1 through `client` until L1 answers (its lease has been granted).
async fn until_cached(w: &World, client: &CacheClient) {
    let deadline = Instant::now() + WAIT;
    while w.read(client).await.1 != Source::HitL1 {
        assert!(Instant::now() < deadline, "L1 never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_write_holds_every_instance_from_before_the_source_write_until_its_release() {
    bounded(async {
        let redis = RedisServer::spawn();
        let w = World::new(&redis);
        for strategy in Strategy::ALL {
            // Arrange: both instances serve row 1 from L1, and a tagged entry too.
            let (a, b) = (w.instance(strategy).await, w.instance(strategy).await);
            w.read_tagged(&b).await;
            assert_eq!(w.read_tagged(&b).await.1, Source::HitL1, "{strategy}");

            // Act: A begins a strict write of row 1 tagged row:1.
            let before = w.row.load(Ordering::SeqCst);
            let ticket = a
                .begin_write_tagged(&w.rows, Some(1), vec![Tag::new("row:1").unwrap()])
                .await
                .unwrap();

            // Assert: from the moment it returns, neither instance answers row 1 from
            // the cache: B installed and acknowledged the hold before A went on.
            assert!(b.stats().backplane.unwrap().holds >= 1, "{strategy}");
            for c in [&a, &b] {
                assert_eq!(
                    w.read(c).await,
                    (Some(before), Source::Bypass),
                    "{strategy}"
                );
                assert_ne!(w.read_tagged(c).await.1, Source::HitL1, "{strategy}");
            }

            // The source is written and the write finished: v2 everywhere, cached again.
            let v = w.row.fetch_add(1, Ordering::SeqCst) + 1;
            a.finish_write(ticket, 1, Some(&v), TTL).await;
            for c in [&a, &b] {
                let deadline = Instant::now() + WAIT;
                loop {
                    let (value, source) = w.read(c).await;
                    assert_eq!(value, Some(v), "{strategy}: an old value after the write");
                    assert_eq!(w.read_tagged(c).await.0, v, "{strategy}");
                    if source == Source::HitL1 {
                        break;
                    }
                    assert!(Instant::now() < deadline, "{strategy}: never cached again");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_write_waits_out_the_lease_of_an_instance_that_never_acknowledges() {
    bounded(async {
        // Arrange: one live instance, and an instance that holds a lease but is gone
        // (it never hears nor acknowledges anything).
        let redis = RedisServer::spawn();
        let w = World::new(&redis);
        let a = w.instance(Strategy::CacheAside).await;
        let lease = Duration::from_millis(800);
        let mut con = redis.client().get_connection().unwrap();
        let now_ms: u64 = {
            let (s, us): (u64, u64) = redis::cmd("TIME").query(&mut con).unwrap();
            s * 1000 + us / 1000
        };
        let _: i64 = redis::cmd("ZADD")
            .arg(leases_key(&w))
            .arg(now_ms + lease.as_millis() as u64)
            .arg("gone")
            .query(&mut con)
            .unwrap();

        // Act
        let began = Instant::now();
        let ticket = a.begin_write(&w.rows, Some(1)).await.unwrap();

        // Assert: the write went on only once the lease it could not hear back from
        // was over (less the time the set-up took).
        assert!(
            began.elapsed() >= lease - Duration::from_millis(150),
            "went on after {:?}, inside a lease of {lease:?}",
            began.elapsed()
        );
        a.finish_write(ticket, 1, Some(&2u64), TTL).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_starts_during_a_strict_write_learns_its_hold_at_once() {
    bounded(async {
        let redis = RedisServer::spawn();
        let w = World::new(&redis);
        let a = w.instance(Strategy::CacheAside).await;
        let ticket = a.begin_write(&w.rows, Some(1)).await.unwrap();

        // A new instance subscribes after the hold was published: it never heard it.
        let b = CacheClient::builder(&w.keys)
            .write_consistency(WriteConsistency::Strict)
            .l1(MokaTier::builder())
            .l2(RedisTier::builder(w.url.as_str()).op_timeout(Duration::from_millis(500)))
            .entity(&w.rows, &[&w.lists])
            .build()
            .unwrap();
        assert!(b.wait_for_backplane(WAIT).await);

        // Its lease came with the writes in progress: row 1 is held there too.
        for _ in 0..5 {
            assert_eq!(w.read(&b).await.1, Source::Bypass);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(b.stats().backplane.unwrap().holds >= 1);
        a.finish_write(ticket, 1, Some(&1u64), TTL).await;
        until_cached(&w, &b).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_instance_stops_using_l1_and_gives_its_lease_back() {
    bounded(async {
        let redis = RedisServer::spawn();
        let w = World::new(&redis);
        let (a, b) = (
            w.instance(Strategy::CacheAside).await,
            w.instance(Strategy::CacheAside).await,
        );
        let instance = b.instance_id().unwrap().to_owned();
        let leases = leases_key(&w);
        let mut con = redis.client().get_connection().unwrap();
        let score = |con: &mut redis::Connection| -> Option<f64> {
            redis::cmd("ZSCORE")
                .arg(&leases)
                .arg(&instance)
                .query(con)
                .unwrap()
        };
        assert!(score(&mut con).is_some(), "a live instance holds a lease");

        b.close().await;

        assert_eq!(w.read(&b).await.1, Source::HitL2, "L1 is off once closed");
        assert!(score(&mut con).is_none(), "the lease was given back");
        // So A's write does not wait for B, which hears nothing of it.
        let ticket = a.begin_write(&w.rows, Some(1)).await.unwrap();
        a.finish_write(ticket, 1, Some(&1u64), TTL).await;
        assert_eq!(b.stats().backplane.unwrap().holds, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_create_replaces_a_cached_not_found_everywhere() {
    bounded(async {
        let redis = RedisServer::spawn();
        let w = World::new(&redis);
        for strategy in Strategy::ALL {
            let client = |w: &World| {
                CacheClient::builder(&w.keys)
                    .strategy(strategy)
                    .write_consistency(WriteConsistency::Strict)
                    .l1(MokaTier::builder())
                    .l2(RedisTier::builder(w.url.as_str()).op_timeout(Duration::from_millis(500)))
                    .entity(&w.rows, &[&w.lists])
                    .negative_ttl(Ttl::secs(60))
                    .build()
                    .unwrap()
            };
            let (a, b) = (client(&w), client(&w));
            for c in [&a, &b] {
                assert!(c.wait_for_backplane(WAIT).await);
            }
            // Row 9 does not exist yet: both cache "not found".
            let created = Arc::new(AtomicU64::new(0));
            let read = |c: &CacheClient| {
                let (c, rows, created) = (c.clone(), w.rows.clone(), created.clone());
                async move {
                    c.get_entity(&rows, 9, TTL, || async move {
                        let v = created.load(Ordering::SeqCst);
                        Ok::<_, Infallible>((v > 0).then_some(v))
                    })
                    .await
                    .unwrap()
                }
            };
            let deadline = Instant::now() + WAIT;
            while read(&b).await.source != Source::HitL1 {
                assert!(
                    Instant::now() < deadline,
                    "{strategy}: not found never cached"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }

            // A creates it (the id is known once the source answered).
            let ticket = a.begin_write(&w.rows, None).await.unwrap();
            created.store(1, Ordering::SeqCst);
            a.finish_write(ticket, 9, Some(&1u64), TTL).await;

            // Both see it: here at once, there once the eviction arrives.
            assert_eq!(read(&a).await.value, Some(1), "{strategy}");
            let deadline = Instant::now() + WAIT;
            while read(&b).await.value != Some(1) {
                assert!(
                    Instant::now() < deadline,
                    "{strategy}: the create never reached B"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            created.store(0, Ordering::SeqCst);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_strict_write_releases_its_holds() {
    bounded(async {
        let redis = RedisServer::spawn();
        let w = World::new(&redis);
        let (a, b) = (
            w.instance(Strategy::CacheAside).await,
            w.instance(Strategy::CacheAside).await,
        );
        let ticket = a.begin_write(&w.rows, Some(1)).await.unwrap();
        assert_eq!(w.read(&b).await.1, Source::Bypass);

        // The source write failed: the ticket is dropped, not finished.
        drop(ticket);

        // Well before the hold would lapse, both instances cache row 1 again.
        let began = Instant::now();
        until_cached(&w, &a).await;
        until_cached(&w, &b).await;
        assert!(
            began.elapsed() < cache_hold_ttl(),
            "the holds lapsed instead of being released"
        );
    })
    .await;
}

/// How long a hold lasts without its release (see `client/holds.rs`).
fn cache_hold_ttl() -> Duration {
    Duration::from_secs(5)
}
