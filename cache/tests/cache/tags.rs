//! Tags: an entry carries tags; invalidating a tag makes every entry carrying it
//! unreachable at once, in every tier and every instance, with no scan and no clock
//! compared across instances. Soft invalidation serves such an entry, marked stale, for
//! a bounded time while one caller reloads it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache::testing::{Fault, Proxy, RedisServer};
use cache::tier::{MokaTier, RedisTier, RedisTierBuilder};
use cache::{CacheClient, KeyBuilder, Namespace, Params, Part, Source, Tag, Topology, Ttl};
use tokio::sync::Notify;

use crate::support::{Backend, bounded};

const TTL: Ttl = Ttl::secs(600);
const WAIT: Duration = Duration::from_secs(20);

type Page = Vec<(i64, u64)>;

/// Rows `id → version`, and pages of rows.
#[derive(Clone, Default)]
struct Rows(Arc<Mutex<HashMap<i64, u64>>>);

impl Rows {
    fn page(&self, ids: &[i64]) -> Page {
        let rows = self.0.lock().unwrap();
        ids.iter()
            .map(|id| (*id, rows.get(id).copied().unwrap_or(0)))
            .collect()
    }

    fn write(&self, id: i64) -> u64 {
        let mut rows = self.0.lock().unwrap();
        let v = rows.entry(id).or_insert(0);
        *v += 1;
        *v
    }
}

fn tag(name: &str) -> Tag {
    Tag::new(name).unwrap()
}

fn tags_of(page: &Page) -> Vec<Tag> {
    page.iter()
        .map(|(id, _)| tag(&format!("row:{id}")))
        .collect()
}

struct World {
    keys: KeyBuilder,
    row: Namespace,
    pages: Namespace,
    rows: Rows,
}

impl World {
    /// Starts a load of the page of row `id` that reads the row, then waits for the
    /// returned gate; returns once the row is read.
    async fn slow_load(
        &self,
        c: &CacheClient,
        id: i64,
    ) -> (tokio::task::JoinHandle<cache::Fetched<Page>>, Arc<Notify>) {
        let (started, gate) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let slow = {
            let (c, rows, pages) = (c.clone(), self.rows.clone(), self.pages.clone());
            let (started, gate) = (started.clone(), gate.clone());
            tokio::spawn(async move {
                c.read(&pages, World::part(&[id]), TTL)
                    .tags(tags_of)
                    .load(|| async move {
                        let page = rows.page(&[id]);
                        started.notify_one();
                        gate.notified().await;
                        Ok::<_, std::io::Error>(page)
                    })
                    .await
                    .unwrap()
            })
        };
        started.notified().await;
        (slow, gate)
    }

    fn new() -> Self {
        let keys = KeyBuilder::new(&format!("g{:x}", rand::random::<u32>())).unwrap();
        Self {
            row: keys.namespace("row").unwrap(),
            pages: keys.namespace("pages").unwrap(),
            keys,
            rows: Rows::default(),
        }
    }

    fn client(&self, topology: Topology, redis: Option<&str>) -> cache::CacheClientBuilder {
        self.client_on(topology, redis.map(RedisTier::builder))
    }

    fn client_on(
        &self,
        topology: Topology,
        l2: Option<RedisTierBuilder>,
    ) -> cache::CacheClientBuilder {
        let mut b = CacheClient::builder(&self.keys).entity(&self.row, &[]);
        if topology.has_l1() {
            b = b.l1(MokaTier::builder());
        }
        if topology.has_l2() {
            b = b.l2(l2.expect("redis").op_timeout(Duration::from_millis(200)));
        }
        b
    }

    fn part(ids: &[i64]) -> Part {
        Part::Query(Params::new().with("ids", format!("{ids:?}")))
    }

    async fn read(&self, c: &CacheClient, ids: &[i64]) -> (Page, Source) {
        let (rows, ids_owned) = (self.rows.clone(), ids.to_vec());
        let got = c
            .read(&self.pages, Self::part(ids), TTL)
            .tags(tags_of)
            .load(|| async move { Ok::<_, std::io::Error>(rows.page(&ids_owned)) })
            .await
            .unwrap();
        (got.value, got.source)
    }

    async fn write(&self, c: &CacheClient, id: i64) -> u64 {
        let t = c
            .begin_write_tagged(&self.row, Some(id), vec![tag(&format!("row:{id}"))])
            .await
            .unwrap();
        let v = self.rows.write(id);
        c.finish_write(t, id, Some(&v), TTL).await;
        v
    }
}

async fn a_tagged_entry_stays_cached_until_one_of_its_tags_is_invalidated(
    topology: crate::support::Topology,
) {
    let w = World::new();
    let redis = topology
        .has_l2()
        .then(|| Backend::spawn(topology.redis, w.keys.prefix()));
    let c = w
        .client_on(topology.tiers, redis.as_ref().map(Backend::tier))
        .build()
        .unwrap();
    assert!(c.wait_for_backplane(WAIT).await);
    assert_eq!(w.read(&c, &[1, 2]).await.1, Source::Miss);
    assert!(w.read(&c, &[1, 2]).await.1.is_hit());

    // A write of a row the page does not hold leaves it cached.
    w.write(&c, 3).await;
    assert!(w.read(&c, &[1, 2]).await.1.is_hit(), "{topology}");

    // A write of a row it holds makes it a miss, with the new row.
    let v = w.write(&c, 2).await;
    assert_eq!(
        w.read(&c, &[1, 2]).await,
        (vec![(1, 0), (2, v)], Source::Miss),
        "{topology}"
    );
    assert!(w.read(&c, &[1, 2]).await.1.is_hit());
}

crate::support::per_topology!(a_tagged_entry_stays_cached_until_one_of_its_tags_is_invalidated);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_invalidated_through_one_instance_is_current_nowhere() {
    bounded(async {
        let redis = RedisServer::spawn();
        let w = World::new();
        let (a, b) = (
            w.client(Topology::L1L2, Some(&redis.url()))
                .build()
                .unwrap(),
            w.client(Topology::L1L2, Some(&redis.url()))
                .build()
                .unwrap(),
        );
        assert!(a.wait_for_backplane(WAIT).await && b.wait_for_backplane(WAIT).await);
        w.read(&b, &[1, 2]).await;
        assert_eq!(w.read(&b, &[1, 2]).await.1, Source::HitL1);

        let v = w.write(&a, 1).await;
        // The backplane is asynchronous: B serves its copy until A's message arrives,
        // and the first read after that reloads.
        let seen = tokio::time::timeout(WAIT, async {
            loop {
                let got = w.read(&b, &[1, 2]).await;
                if got.0 != vec![(1, 0), (2, 0)] {
                    return got;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .expect("B never saw the write");
        assert_eq!(seen, (vec![(1, v), (2, 0)], Source::Miss));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_instances_hear_of_a_tagged_write_before_the_source_is_written() {
    bounded(async {
        let redis = RedisServer::spawn();
        let w = World::new();
        let (a, b) = (
            w.client(Topology::L1L2, Some(&redis.url()))
                .build()
                .unwrap(),
            w.client(Topology::L1L2, Some(&redis.url()))
                .build()
                .unwrap(),
        );
        assert!(a.wait_for_backplane(WAIT).await && b.wait_for_backplane(WAIT).await);
        w.read(&b, &[1, 2]).await;
        assert_eq!(w.read(&b, &[1, 2]).await.1, Source::HitL1);

        // A begins a write of row 1 and has not written the source yet: B already drops
        // its copy (and reloads what the source still holds).
        let ticket = a
            .begin_write_tagged(&w.row, Some(1), vec![tag("row:1")])
            .await
            .unwrap();
        let dropped = tokio::time::timeout(WAIT, async {
            loop {
                let (page, source) = w.read(&b, &[1, 2]).await;
                if source != Source::HitL1 {
                    return (page, source);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .expect("B kept its copy until the write was acknowledged");
        assert_eq!(dropped.0, vec![(1, 0), (2, 0)]);

        // The write lands; the second bump makes the page B reloaded meanwhile a miss.
        let v = w.rows.write(1);
        a.finish_write(ticket, 1, Some(&v), TTL).await;
        let seen = tokio::time::timeout(WAIT, async {
            loop {
                let got = w.read(&b, &[1, 2]).await;
                if got.0 != vec![(1, 0), (2, 0)] {
                    return got;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .expect("B never saw the write");
        assert_eq!(seen, (vec![(1, v), (2, 0)], Source::Miss));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_whose_load_an_invalidation_overtook_is_never_current() {
    bounded(async {
        for topology in [Topology::L1, Topology::L2, Topology::L1L2] {
            let redis = topology.has_l2().then(RedisServer::spawn);
            let w = World::new();
            let c = w
                .client(topology, redis.as_ref().map(RedisServer::url).as_deref())
                .build()
                .unwrap();
            assert!(c.wait_for_backplane(WAIT).await);
            // Something was read before, so the tag sequence is known.
            w.read(&c, &[9]).await;

            // A slow load of the page begins; row 1 is written while it runs.
            let (slow, gate) = w.slow_load(&c, 1).await;
            let v = w.write(&c, 1).await;
            gate.notify_one();
            assert_eq!(
                slow.await.unwrap().value,
                vec![(1, 0)],
                "the slow load read the old row"
            );

            // It predates the write: never served (it is not even stored).
            assert_eq!(
                w.read(&c, &[1]).await,
                (vec![(1, v)], Source::Miss),
                "{topology}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_who_joins_a_load_a_tag_invalidation_overtook_loads_again() {
    bounded(async {
        for topology in [Topology::L1, Topology::L1L2] {
            let redis = topology.has_l2().then(RedisServer::spawn);
            let w = World::new();
            let c = w
                .client(topology, redis.as_ref().map(RedisServer::url).as_deref())
                .build()
                .unwrap();
            assert!(c.wait_for_backplane(WAIT).await);
            w.read(&c, &[9]).await;

            // A slow load of the page begins before row 1 is written.
            let (slow, gate) = w.slow_load(&c, 1).await;
            let v = w.write(&c, 1).await;

            // A read that begins after the write joins that load...
            let joiner = {
                let (c, rows, pages) = (c.clone(), w.rows.clone(), w.pages.clone());
                tokio::spawn(async move {
                    c.read(&pages, World::part(&[1]), TTL)
                        .tags(tags_of)
                        .load(|| async move { Ok::<_, std::io::Error>(rows.page(&[1])) })
                        .await
                        .unwrap()
                })
            };
            // (time for it to find the flight; had it not, it would load on its own)
            tokio::time::sleep(Duration::from_millis(100)).await;
            gate.notify_one();
            assert_eq!(slow.await.unwrap().value, vec![(1, 0)]);
            // ...and must not take its result, which predates the write.
            assert_eq!(joiner.await.unwrap().value, vec![(1, v)], "{topology}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_versions_lost_in_redis_never_make_an_old_entry_current() {
    bounded(async {
        let redis = RedisServer::spawn();
        let w = World::new();
        let c = w.client(Topology::L2, Some(&redis.url())).build().unwrap();
        w.read(&c, &[1]).await;
        w.write(&c, 1).await;
        w.read(&c, &[1]).await;
        let old = w.read(&c, &[1]).await;
        assert_eq!(old.1, Source::HitL2);

        // Row 1 changes behind the cache's back while the tag versions vanish: nothing
        // says the entry is old, except that its versions are gone.
        let mut con = redis
            .client()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let prefix = w.keys.prefix().to_owned();
        let _: () = redis::cmd("DEL")
            .arg(format!("{{{prefix}}}:tags"))
            .arg(format!("{{{prefix}}}:tagseq"))
            .query_async(&mut con)
            .await
            .unwrap();
        w.rows.write(1);

        let (page, source) = w.read(&c, &[1]).await;
        assert_eq!(
            source,
            Source::Miss,
            "an entry whose tag history was lost is not current"
        );
        assert_eq!(page, w.rows.page(&[1]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_invalidation_serves_the_old_page_marked_stale_while_one_caller_reloads() {
    bounded(async {
        let w = World::new();
        let bound = Duration::from_millis(300);
        let c = w
            .client(Topology::L1, None)
            .soft_invalidation(&w.pages, bound)
            .build()
            .unwrap();
        let before = w.read(&c, &[1]).await.0;
        w.write(&c, 1).await;

        // The first reader after the write reloads (slowly); meanwhile others get the
        // old page, marked stale.
        let (started, gate) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let reloader = {
            let (c, rows, pages) = (c.clone(), w.rows.clone(), w.pages.clone());
            let (started, gate) = (started.clone(), gate.clone());
            tokio::spawn(async move {
                c.read(&pages, World::part(&[1]), TTL)
                    .tags(tags_of)
                    .load(|| async move {
                        started.notify_one();
                        gate.notified().await;
                        Ok::<_, std::io::Error>(rows.page(&[1]))
                    })
                    .await
                    .unwrap()
            })
        };
        started.notified().await;
        assert_eq!(w.read(&c, &[1]).await, (before.clone(), Source::Stale));
        // How old that stale answer was is recorded beside the bound.
        let stats = c.stats();
        let age = &stats.cache.loader.soft_age;
        assert_eq!(age.count(), 1);
        assert!(age.quantile(1.0).unwrap() <= bound, "{age:?}");
        assert_eq!(stats.soft_bound, Some(bound));
        gate.notify_one();
        let fresh = reloader.await.unwrap();
        assert_eq!(
            (fresh.value.clone(), fresh.source),
            (w.rows.page(&[1]), Source::Miss)
        );
        assert_eq!(w.read(&c, &[1]).await, (fresh.value, Source::HitL1));

        // Past the bound, an invalidated page is a plain miss.
        w.write(&c, 1).await;
        tokio::time::sleep(bound + Duration::from_millis(50)).await;
        assert_eq!(w.read(&c, &[1]).await, (w.rows.page(&[1]), Source::Miss));
        assert!(c.stats().cache.loader.stale_served >= 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revalidating_read_serves_a_soft_invalidated_page_at_once_and_reloads_it_behind() {
    bounded(async {
        let w = World::new();
        let bound = Duration::from_millis(400);
        let c = w
            .client(Topology::L1, None)
            .soft_invalidation(&w.pages, bound)
            .build()
            .unwrap();
        let gate = Arc::new(Notify::new());
        let read = |c: &CacheClient| {
            let (rows, gate) = (w.rows.clone(), gate.clone());
            let c = c.clone();
            let pages = w.pages.clone();
            async move {
                let f = c
                    .read(&pages, World::part(&[1]), TTL)
                    .tags(tags_of)
                    .soft()
                    .ttl_for(|_: &Page| Some(TTL))
                    .load(move || {
                        let (rows, gate) = (rows.clone(), gate.clone());
                        async move {
                            gate.notified().await;
                            Ok::<_, std::io::Error>(rows.page(&[1]))
                        }
                    })
                    .await
                    .unwrap();
                (f.value, f.source)
            }
        };
        // A first read loads (the gate lets it through).
        gate.notify_one();
        let before = read(&c).await;
        assert_eq!(before, (w.rows.page(&[1]), Source::Miss));
        w.write(&c, 1).await;

        // Every reader gets the old page at once, marked stale, while one reload waits
        // at the gate in the background.
        for _ in 0..3 {
            assert_eq!(read(&c).await, (before.0.clone(), Source::Stale));
        }
        tokio::time::timeout(WAIT, async {
            while c.stats().cache.loader.refreshes == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("a reload starts");
        assert_eq!(read(&c).await.1, Source::Stale);
        assert_eq!(c.stats().cache.loader.refreshes, 1, "one reload per key");
        gate.notify_one();
        let fresh = tokio::time::timeout(WAIT, async {
            loop {
                let r = read(&c).await;
                if r.1 != Source::Stale {
                    return r;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the reload lands");
        assert_eq!(fresh, (w.rows.page(&[1]), Source::HitL1));

        // Past the bound (the reload held at the gate), the read waits for the source.
        w.write(&c, 1).await;
        assert_eq!(read(&c).await.1, Source::Stale);
        tokio::time::sleep(bound + Duration::from_millis(50)).await;
        let waiting = tokio::spawn(read(&c));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "past the bound a reader waits");
        gate.notify_waiters();
        gate.notify_one();
        assert_eq!(waiting.await.unwrap().0, w.rows.page(&[1]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_invalidation_that_cannot_reach_redis_is_replayed_and_blocks_its_entries_meanwhile() {
    bounded(async {
        let redis = RedisServer::spawn();
        let proxy = Proxy::spawn(redis.port());
        let w = World::new();
        let (a, b) = (
            w.client(Topology::L1L2, Some(&proxy.url()))
                .build()
                .unwrap(),
            w.client(Topology::L1L2, Some(&redis.url()))
                .build()
                .unwrap(),
        );
        assert!(a.wait_for_backplane(WAIT).await && b.wait_for_backplane(WAIT).await);
        w.read(&a, &[1]).await;
        assert!(w.read(&a, &[1]).await.1.is_hit());
        w.read(&b, &[1]).await;

        proxy.set(Fault::Cut);
        let v = w.write(&a, 1).await;
        assert!(a.stats().recovery.pending >= 1);
        assert_eq!(
            w.read(&a, &[1]).await.0,
            vec![(1, v)],
            "A never serves what it replaced"
        );

        proxy.set(Fault::None);
        tokio::time::timeout(WAIT, async {
            while a.stats().recovery.pending > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the queue drains");
        tokio::time::timeout(WAIT, async {
            while w.read(&b, &[1]).await.0 != vec![(1, v)] {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("B sees the write once A is back");
    })
    .await;
}
