//! Least privilege: a tier whose Redis user has exactly [`RedisAcl`] (the suite runs
//! as such a user too: the `acl_*` topologies). Strict writes, the backplane, the lease
//! and the rate limiter work with it; the admin flush needs more (`SCAN`, and
//! `CLUSTER NODES` on a cluster), and without it is refused with `NOPERM`, touching
//! nothing, and is not queued for replay.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache::limit::{Counter, RateLimiter};
use cache::policy::LeaseConfig;
use cache::testing::{RedisCluster, RedisServer};
use cache::tier::{MokaTier, RedisAcl, RedisTier, RedisTierBuilder};
use cache::{CacheClient, KeyBuilder, Namespace, Source, Ttl, WriteConsistency};

use crate::support::bounded;

const TTL: Ttl = Ttl::secs(600);
const WAIT: Duration = Duration::from_secs(10);

struct World {
    keys: KeyBuilder,
    rows: Namespace,
    /// The source of truth: row 1's version.
    row: Arc<AtomicU64>,
}

impl World {
    fn new() -> Self {
        let keys = KeyBuilder::new(&format!("a{:x}", rand::random::<u32>())).unwrap();
        Self {
            rows: keys.namespace("row").unwrap(),
            keys,
            row: Arc::new(AtomicU64::new(1)),
        }
    }

    fn acl(&self) -> RedisAcl {
        RedisAcl::new("svc", self.keys.prefix()).unwrap()
    }

    async fn instance(&self, l2: RedisTierBuilder, consistency: WriteConsistency) -> CacheClient {
        let client = CacheClient::builder(&self.keys)
            .write_consistency(consistency)
            .l1(MokaTier::builder())
            .l2(l2.op_timeout(Duration::from_millis(500)))
            .lease(LeaseConfig::default())
            .entity(&self.rows, &[])
            .build()
            .unwrap();
        assert!(client.wait_for_backplane(WAIT).await, "never subscribed");
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

    /// Reads row 1 through `client` until it answers from `source`.
    async fn until(&self, client: &CacheClient, source: Source) -> Option<u64> {
        let deadline = Instant::now() + WAIT;
        loop {
            let (value, from) = self.read(client).await;
            if from == source {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "never {source:?}, still {from:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A write of row 1 through `client`: begin, write the source, finish.
    async fn write(&self, client: &CacheClient) -> u64 {
        let ticket = client.begin_write(&self.rows, Some(1)).await.unwrap();
        let v = self.row.fetch_add(1, Ordering::SeqCst) + 1;
        client.finish_write(ticket, 1, Some(&v), TTL).await;
        v
    }
}

/// Whether `key` is in the server, asked as its administrator.
async fn exists(redis: &RedisServer, key: &str) -> bool {
    let mut con = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut con)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_writes_the_backplane_the_lease_and_the_rate_limiter_work_as_that_user() {
    bounded(async {
        let w = World::new();
        let redis = RedisServer::spawn_with_acl(&w.acl());
        assert!(redis.url().starts_with("redis://svc:"), "{}", redis.url());
        let tier = || RedisTier::builder(redis.url()).prefix(w.keys.prefix());
        let strict = WriteConsistency::Strict;
        let (a, b) = (
            w.instance(tier(), strict).await,
            w.instance(tier(), strict).await,
        );
        // B serves row 1 from L1 (under its L1 lease), then A writes it, strictly.
        w.until(&b, Source::HitL1).await;
        let v = w.write(&a).await;
        assert_eq!(
            w.until(&b, Source::HitL1).await,
            Some(v),
            "B kept the old row"
        );
        assert_eq!(a.stats().recovery.pending, 0, "{:?}", a.stats().recovery);
        assert!(b.stats().backplane.unwrap().received > 0);

        // The rate limiter counts on the same Redis, as the same user.
        let limiter = RateLimiter::new(2, Duration::from_secs(60))
            .unwrap()
            .shared(tier().build().unwrap());
        let decisions = [
            limiter.check("203.0.113.7").await,
            limiter.check("203.0.113.7").await,
            limiter.check("203.0.113.7").await,
        ];
        assert!(decisions.iter().all(|d| d.counted_by == Counter::Shared));
        let allowed: Vec<bool> = decisions.iter().map(|d| d.allowed).collect();
        assert_eq!(allowed, [true, true, false]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_scan_the_flush_is_refused_with_noperm_touches_nothing_and_is_not_queued() {
    bounded(async {
        let w = World::new();
        let redis = RedisServer::spawn_with_acl(&w.acl());
        let tier = RedisTier::builder(redis.url()).prefix(w.keys.prefix());
        let c = w.instance(tier, WriteConsistency::Available).await;
        w.until(&c, Source::HitL1).await;

        let e = c.flush().await.unwrap_err();

        assert!(e.is_permission_denied() && !e.is_transient(), "{e}");
        assert!(
            e.to_string()
                .contains("no permissions to run the 'scan' command"),
            "{e}"
        );
        let key = w.rows.id(1);
        assert!(exists(&redis, key.as_str()).await, "the entry went");
        // Not queued: the cache is read again at once (L1 was emptied, L2 was not).
        assert_eq!(c.stats().recovery.pending, 0, "{:?}", c.stats().recovery);
        assert_eq!(w.read(&c).await, (Some(1), Source::HitL2));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_flush_in_its_acl_the_user_empties_its_prefix_and_nothing_else() {
    bounded(async {
        let w = World::new();
        let redis = RedisServer::spawn_with_acl(&w.acl().with_flush());
        let mut admin = redis
            .client()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let () = redis::cmd("SET")
            .arg("someone-else:key")
            .arg(1)
            .query_async(&mut admin)
            .await
            .unwrap();
        let tier = RedisTier::builder(redis.url()).prefix(w.keys.prefix());
        let c = w.instance(tier, WriteConsistency::Available).await;
        w.until(&c, Source::HitL1).await;

        c.flush().await.unwrap();

        assert!(!exists(&redis, w.rows.id(1).as_str()).await);
        assert!(exists(&redis, "someone-else:key").await);
        assert_eq!(w.read(&c).await.1, Source::Miss);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_the_flush_needs_cluster_nodes_and_scan_and_works_with_them() {
    bounded(async {
        let w = World::new();
        for (acl, refused) in [(w.acl(), true), (w.acl().with_flush(), false)] {
            let cluster = RedisCluster::spawn_with_acl(&acl);
            assert!(
                cluster
                    .seeds()
                    .iter()
                    .all(|s| s.starts_with("redis://svc:"))
            );
            let tier = RedisTier::cluster_builder(cluster.seeds()).prefix(w.keys.prefix());
            let c = w.instance(tier, WriteConsistency::Strict).await;
            w.until(&c, Source::HitL1).await;
            let v = w.write(&c).await;
            assert_eq!(w.until(&c, Source::HitL1).await, Some(v));

            let flushed = c.flush().await;

            match flushed {
                Err(e) if refused => {
                    assert!(e.is_permission_denied(), "{e}");
                    assert!(e.to_string().contains("'cluster|nodes'"), "{e}");
                    assert_eq!(w.read(&c).await, (Some(v), Source::HitL2));
                }
                Ok(()) if !refused => assert_eq!(w.read(&c).await.1, Source::Miss),
                other => panic!("{acl:?}: {other:?}"),
            }
        }
    })
    .await;
}
