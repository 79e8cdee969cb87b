//! Batch reads through the client: one pass over L1, one Redis round trip for what L1
//! lacks, one loader call for the misses; each key as fresh as a single read of it
//! (tags, other instances' writes, writes that could not reach Redis).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache::testing::{Fault, Proxy, RedisServer};
use cache::tier::{MokaTier, RedisTier};
use cache::{CacheClient, KeyBuilder, Namespace, Source, Tag, Ttl};

use crate::support::{Backend, Redis, Topology, bounded};

const TTL: Ttl = Ttl::secs(600);
const WAIT: Duration = Duration::from_secs(20);

/// Rows `id → version`; every loader call is recorded with the ids it was given.
#[derive(Clone, Default)]
struct Rows {
    versions: Arc<Mutex<HashMap<i64, u64>>>,
    calls: Arc<Mutex<Vec<Vec<i64>>>>,
}

impl Rows {
    fn write(&self, id: i64) -> u64 {
        let mut rows = self.versions.lock().unwrap();
        let v = rows.entry(id).or_insert(0);
        *v += 1;
        *v
    }

    fn calls(&self) -> Vec<Vec<i64>> {
        std::mem::take(&mut self.calls.lock().unwrap())
    }
}

fn tag_of(id: i64) -> Tag {
    Tag::new(format!("row:{id}")).unwrap()
}

struct World {
    keys: KeyBuilder,
    rows_ns: Namespace,
    rows: Rows,
}

impl World {
    fn new() -> Self {
        let keys = KeyBuilder::new(&format!("m{:x}", rand::random::<u32>())).unwrap();
        Self {
            rows_ns: keys.namespace("row").unwrap(),
            keys,
            rows: Rows::default(),
        }
    }

    fn client(&self, topology: Topology, backend: Option<&Backend>) -> CacheClient {
        let mut b = CacheClient::builder(&self.keys);
        if topology.has_l1() {
            b = b.l1(MokaTier::builder());
        }
        if topology.has_l2() {
            // Generous: a Redis call timed out under load would make a hit a miss,
            // and the loader's calls are what these tests count.
            let tier = backend.expect("redis").tier();
            b = b.l2(tier.op_timeout(Duration::from_secs(5)));
        }
        b.build().unwrap()
    }

    fn on(&self, url: &str) -> CacheClient {
        CacheClient::builder(&self.keys)
            .l1(MokaTier::builder())
            .l2(RedisTier::builder(url)
                .op_timeout(Duration::from_millis(100))
                .breaker(2, Duration::from_millis(200)))
            .build()
            .unwrap()
    }

    /// A batch read of `ids`, tagged `row:{id}`: `(id, version, source)` per id found.
    async fn read(&self, c: &CacheClient, ids: &[i64]) -> Vec<(i64, u64, Source)> {
        let rows = self.rows.clone();
        let got = c
            .read_many(&self.rows_ns, ids.iter().copied(), TTL)
            .tags(|(id, _): &(i64, u64)| vec![tag_of(*id)])
            .load_many(|missing: Vec<i64>| {
                rows.calls.lock().unwrap().push(missing.clone());
                let versions = rows.versions.lock().unwrap().clone();
                async move {
                    Ok::<_, std::io::Error>(
                        missing
                            .into_iter()
                            .filter_map(move |id| versions.get(&id).map(|&v| (id, (id, v)))),
                    )
                }
            })
            .await
            .unwrap();
        got.into_iter()
            .map(|(id, f)| (id, f.value.1, f.source))
            .collect()
    }

    async fn write(&self, c: &CacheClient, id: i64) -> u64 {
        let t = c
            .begin_write_tagged(&self.rows_ns, Some(id), vec![tag_of(id)])
            .await
            .unwrap();
        let v = self.rows.write(id);
        c.finish_write(t, 0, None::<&()>, TTL).await;
        v
    }
}

fn sources(read: &[(i64, u64, Source)]) -> Vec<Source> {
    read.iter().map(|r| r.2).collect()
}

crate::support::per_topology!(
    a_batch_loads_only_what_the_cache_lacks_and_each_write_reloads_its_own_key
);

async fn a_batch_loads_only_what_the_cache_lacks_and_each_write_reloads_its_own_key(
    topology: Topology,
) {
    // Arrange: 100 rows; 50 of them read (and cached) before.
    let w = World::new();
    let backend = topology
        .has_l2()
        .then(|| Backend::spawn(topology.redis, w.keys.prefix()));
    let c = w.client(topology, backend.as_ref());
    for id in 1..=100 {
        w.rows.write(id);
    }
    let evens: Vec<i64> = (1..=50).map(|i| i * 2).collect();
    w.read(&c, &evens).await;
    w.rows.calls();
    let hit = if topology.has_l1() {
        Source::HitL1
    } else {
        Source::HitL2
    };

    // Act: all 100 in one batch, and again.
    let all: Vec<i64> = (1..=100).collect();
    let first = w.read(&c, &all).await;
    let again = w.read(&c, &all).await;

    // Assert: one loader call for the 50 odd ones; then all hits, in the order asked.
    let odds: Vec<i64> = (0..50).map(|i| i * 2 + 1).collect();
    assert_eq!(w.rows.calls(), vec![odds], "{topology}");
    assert_eq!(first.len(), 100);
    for (id, v, source) in &first {
        let expected = if id % 2 == 0 { hit } else { Source::Miss };
        assert_eq!((*v, *source), (1, expected), "{topology}: row {id}");
    }
    assert_eq!(
        again.iter().map(|r| r.0).collect::<Vec<_>>(),
        all,
        "{topology}"
    );
    assert!(sources(&again).iter().all(|s| *s == hit), "{topology}");

    // Act: a write of row 7.
    let v = w.write(&c, 7).await;

    // Assert: the next batch reloads row 7 alone, and sees the write.
    let after = w.read(&c, &all).await;
    assert_eq!(w.rows.calls(), vec![vec![7]], "{topology}");
    assert_eq!(after[6], (7, v, Source::Miss), "{topology}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_l2_hits_are_one_read_script() {
    bounded(async {
        // Arrange: an L2-only client over a private Redis; 100 rows cached in it.
        let w = World::new();
        let backend = Backend::spawn(Redis::Server, w.keys.prefix());
        let Backend::Server(redis) = &backend else {
            unreachable!()
        };
        let c = w.client(Topology::L2, Some(&backend));
        for id in 1..=100 {
            w.rows.write(id);
        }
        let all: Vec<i64> = (1..=100).collect();
        w.read(&c, &all).await;
        let mut raw = redis
            .client()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        // Script runs (a script's own commands count in the totals, so count these).
        let scripts = async |raw: &mut redis::aio::MultiplexedConnection| -> u64 {
            let info: String = redis::cmd("INFO")
                .arg("commandstats")
                .query_async(raw)
                .await
                .unwrap();
            info.lines()
                .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
                .filter_map(|l| {
                    l.split("calls=")
                        .nth(1)?
                        .split(',')
                        .next()?
                        .parse::<u64>()
                        .ok()
                })
                .sum()
        };

        // Act: the batch again; then the same 100 as single reads.
        let before = scripts(&mut raw).await;
        let batch = w.read(&c, &all).await;
        let after_batch = scripts(&mut raw).await;
        for id in 1..=100 {
            w.read(&c, &[id]).await;
        }
        let after_singles = scripts(&mut raw).await;

        // Assert: one read script for the batch; one per single read.
        assert!(sources(&batch).iter().all(|s| *s == Source::HitL2));
        assert_eq!(after_batch - before, 1);
        assert_eq!(after_singles - after_batch, 100);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_instance_reaches_the_other_instances_batches() {
    bounded(async {
        let redis = RedisServer::spawn();
        let w = World::new();
        let (a, b) = (w.on(&redis.url()), w.on(&redis.url()));
        assert!(a.wait_for_backplane(WAIT).await && b.wait_for_backplane(WAIT).await);
        for id in 1..=3 {
            w.rows.write(id);
        }
        w.read(&b, &[1, 2, 3]).await;
        assert_eq!(
            sources(&w.read(&b, &[1, 2, 3]).await),
            vec![Source::HitL1; 3]
        );

        let v = w.write(&a, 2).await;

        // The backplane is asynchronous: B serves its copy until A's message arrives;
        // the first batch after that reloads row 2 alone.
        let seen = tokio::time::timeout(WAIT, async {
            loop {
                let got = w.read(&b, &[1, 2, 3]).await;
                if got[1].1 != 1 {
                    return got;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .expect("B never saw the write");
        assert_eq!(
            seen,
            vec![
                (1, 1, Source::HitL1),
                (2, v, Source::Miss),
                (3, 1, Source::HitL1)
            ]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_whose_write_could_not_reach_redis_is_read_from_the_source_in_a_batch() {
    bounded(async {
        // Arrange: an instance reaching Redis through a proxy; rows 1-3 cached.
        let redis = RedisServer::spawn();
        let proxy = Proxy::spawn(redis.port());
        let w = World::new();
        let c = w.on(&proxy.url());
        assert!(c.wait_for_backplane(WAIT).await);
        for id in 1..=3 {
            w.rows.write(id);
        }
        w.read(&c, &[1, 2, 3]).await;

        // Act: Redis is cut off, and row 2 is written (its invalidation is queued).
        proxy.set(Fault::Cut);
        let v = w.write(&c, 2).await;
        assert!(c.stats().recovery.pending >= 1, "nothing queued");
        w.rows.calls();
        let during = w.read(&c, &[1, 2, 3]).await;

        // Assert: row 2 came from the source (every read of it does until Redis
        // hears of the write), never from the cache.
        assert_eq!(during[1], (2, v, Source::Bypass), "{during:?}");
        assert!(w.rows.calls().concat().contains(&2));

        // Act: Redis comes back; the queue drains.
        proxy.set(Fault::None);
        tokio::time::timeout(WAIT, async {
            while c.stats().recovery.pending > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the queue never drained");

        // Assert: every row is fresh, and cached again.
        let after = tokio::time::timeout(WAIT, async {
            loop {
                let got = w.read(&c, &[1, 2, 3]).await;
                assert_eq!(got.iter().map(|r| r.1).collect::<Vec<_>>(), vec![1, v, 1]);
                if got.iter().all(|r| r.2.is_hit()) {
                    return got;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the cache never served again");
        assert_eq!(after.len(), 3);
    })
    .await;
}
