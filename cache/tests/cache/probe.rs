//! What a team running the cache can see: the staleness probe catches an instance whose
//! invalidation is broken and finds nothing on a healthy one over the same traffic;
//! every operation is timed per tier; the backplane's lag is measured on its own
//! messages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache::probe::{ProbeConfig, ProbeSnapshot};
use cache::stats::{Operation, Outcome, latency_of};
use cache::testing::RedisServer;
use cache::tier::{MokaTier, RedisTier};
use cache::{CacheClient, CacheClientBuilder, KeyBuilder, Namespace, Strategy, Ttl};

use crate::support::bounded;

const TTL: Ttl = Ttl::secs(600);

/// A row: its value and when it was written (ms since the epoch).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Row {
    value: u64,
    written_ms: u64,
}

fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(since.as_millis()).unwrap()
}

/// The source of truth.
#[derive(Clone, Default)]
struct Source(Arc<Mutex<HashMap<i64, Row>>>);

impl Source {
    fn get(&self, id: i64) -> Option<Row> {
        self.0.lock().unwrap().get(&id).cloned()
    }

    fn put(&self, id: i64, value: u64) {
        let row = Row {
            value,
            written_ms: now_ms(),
        };
        self.0.lock().unwrap().insert(id, row);
    }
}

fn builder(keys: &KeyBuilder, rows: &Namespace) -> CacheClientBuilder {
    CacheClient::builder(keys)
        .strategy(Strategy::CacheAside)
        .entity(rows, &[])
        .probe(ProbeConfig::sample(1.0))
}

async fn read(c: &CacheClient, rows: &Namespace, source: &Source, id: i64) -> Option<Row> {
    let source = source.clone();
    c.read(rows, id, TTL)
        .verify(|row: &Option<Row>| row.as_ref().map(|r| r.written_ms))
        .load(move || {
            let source = source.clone();
            async move { Ok::<_, std::io::Error>(source.get(id)) }
        })
        .await
        .unwrap()
        .value
}

async fn write(c: &CacheClient, rows: &Namespace, source: &Source, id: i64, value: u64) {
    let ticket = c.begin_write(rows, Some(id)).await.unwrap();
    source.put(id, value);
    let row = source.get(id);
    c.finish_write(ticket, id, row.as_ref(), TTL).await;
}

/// The same traffic: every row read (and cached), written, then read a few times.
async fn traffic(c: &CacheClient, rows: &Namespace, source: &Source) -> u64 {
    let mut hits_after_writes = 0;
    for id in 0..20 {
        source.put(id, 0);
        read(c, rows, source, id).await;
        // Versions are milliseconds: the write's must be a later one.
        tokio::time::sleep(Duration::from_millis(2)).await;
        write(c, rows, source, id, 1).await;
        // The reads below begin after the write's version was stamped.
        tokio::time::sleep(Duration::from_millis(3)).await;
        for _ in 0..5 {
            read(c, rows, source, id).await;
            hits_after_writes += 1;
        }
    }
    hits_after_writes
}

async fn settled(c: &CacheClient) -> ProbeSnapshot {
    let mut last = ProbeSnapshot::default();
    for _ in 0..400 {
        let now = c.stats().probe.unwrap();
        if now == last && now.checked + now.shed > 0 {
            return now;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the probe did not settle: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_invalidation_is_caught_by_the_probe_and_a_healthy_one_shows_no_stale_hit() {
    bounded(async {
        let keys = KeyBuilder::new("probe").unwrap();
        let rows = keys.namespace("row").unwrap();

        let healthy = builder(&keys, &rows)
            .l1(MokaTier::builder())
            .build()
            .unwrap();
        let source = Source::default();
        traffic(&healthy, &rows, &source).await;
        let h = settled(&healthy).await;

        let broken = builder(&keys, &rows)
            .l1(MokaTier::builder())
            .break_invalidation_for_tests()
            .build()
            .unwrap();
        let source = Source::default();
        let after_writes = traffic(&broken, &rows, &source).await;
        let b = settled(&broken).await;

        // Healthy: the first read after each write (of 20) reloads; every hit after it
        // was checked or shed, and none was stale.
        assert_eq!((h.stale, h.behind.count()), (0, 0), "{h:?}");
        assert_eq!(h.checked + h.shed, after_writes - 20, "{h:?}");
        assert!(h.checked > 0, "{h:?}");
        // Broken: every read after a write served the replaced row, and each one is
        // counted with how far behind it was.
        assert_eq!(b.stale + b.shed, after_writes, "{b:?}");
        assert!(b.stale >= after_writes / 2, "{b:?}");
        assert_eq!(b.behind.count(), b.stale);
        assert!(
            b.behind.quantile(0.5).unwrap() >= Duration::from_millis(1),
            "{b:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_timed_per_tier_and_the_backplane_lag_is_measured() {
    bounded(async {
        let redis = RedisServer::spawn();
        let keys = KeyBuilder::new("timed").unwrap();
        let rows = keys.namespace("row").unwrap();
        let c = builder(&keys, &rows)
            .l1(MokaTier::builder())
            .l2(RedisTier::builder(redis.url()).prefix("timed"))
            .build()
            .unwrap();
        assert!(c.wait_for_backplane(Duration::from_secs(10)).await);
        let source = Source::default();
        traffic(&c, &rows, &source).await;

        let stats = c.stats();
        let tier = |name| stats.cache.tier(name).unwrap().latency.clone();
        let (l1, l2) = (tier("l1"), tier("l2"));
        assert!(latency_of(&l1, Operation::Get, Outcome::Hit).count() > 0);
        assert!(latency_of(&l1, Operation::Get, Outcome::Miss).count() > 0);
        assert!(latency_of(&l2, Operation::Get, Outcome::Miss).count() > 0);
        assert!(latency_of(&l2, Operation::Script, Outcome::Ok).count() > 0);
        let loads = latency_of(&stats.cache.loader.latency, Operation::Load, Outcome::Ok);
        assert_eq!(loads.count(), stats.cache.loader.calls);
        // A write's step publishes its message, and this instance hears it back.
        let backplane = stats.backplane.unwrap();
        let mut lag = backplane.lag.clone();
        for _ in 0..200 {
            if lag.count() >= 20 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            lag = c.stats().backplane.unwrap().lag;
        }
        assert!(lag.count() >= 20, "{lag:?}");
        let p99 = lag.quantile(0.99).unwrap();
        assert!(p99 < Duration::from_secs(5), "{p99:?}");
        assert!(c.stats().backplane.unwrap().lag_max >= lag.quantile(0.0).unwrap());
        // And the probe found nothing stale on a healthy two-tier client.
        assert_eq!(settled(&c).await.stale, 0);
        c.close().await;
    })
    .await;
}
