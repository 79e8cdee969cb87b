//! The shared tier fails: killed, restarted, corrupted, hung. The caller never notices
//! more than a miss.

use std::time::{Duration, Instant};

use cache::testing::BlackHole;
use cache::tier::{Cache, MokaTier, RedisTier, TieredCache};
use cache::typed::TypedCache;
use cache::{Source, Ttl};

use crate::support::{Options, Pet, Topology, bounded, fixture, fixture_with, pet};

fn load(id: i64) -> impl FnOnce() -> std::future::Ready<Result<Pet, std::io::Error>> {
    move || std::future::ready(Ok(pet(id)))
}

async fn redis_killed_mid_test(t: Topology) {
    let mut f = fixture(t);
    let cache = f.typed();
    let (a, b) = (f.ns.id(1), f.ns.id(2));
    cache.set(&a, &pet(1), Ttl::secs(60)).await.unwrap();
    f.redis.as_mut().unwrap().stop();

    for _ in 0..10 {
        let got = cache.get_or_load(&b, Ttl::secs(60), load(2)).await.unwrap();
        assert_eq!(got.value, pet(2));
        cache.set(&b, &pet(2), Ttl::secs(60)).await.unwrap();
        cache.delete(&b).await;
    }
    let got = cache.get::<Pet>(&a).await;
    if t.has_l1() {
        assert_eq!(
            got.unwrap().source,
            Source::HitL1,
            "L1 keeps serving what it holds"
        );
    } else {
        assert!(got.is_none());
    }
    let l2 = cache.stats().tier("l2").cloned().unwrap();
    assert!(l2.errors >= 1, "{l2:?}");
    assert!(l2.short_circuits >= 1, "the breaker never opened: {l2:?}");
    assert!(f.l2.as_ref().unwrap().is_degraded());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l2_reads_and_writes_succeed_through_the_loader_while_redis_is_down() {
    bounded(redis_killed_mid_test(Topology::L2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_l2_reads_and_writes_succeed_through_the_loader_while_redis_is_down() {
    bounded(redis_killed_mid_test(Topology::L1L2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_tier_comes_back_by_itself_after_redis_restarts() {
    bounded(async {
        let mut f = fixture(Topology::L2);
        let cache = f.typed();
        let key = f.ns.id(3);
        f.redis.as_mut().unwrap().stop();
        for _ in 0..5 {
            cache
                .get_or_load(&key, Ttl::secs(60), load(3))
                .await
                .unwrap();
        }
        assert!(f.l2.as_ref().unwrap().is_degraded());
        f.redis.as_mut().unwrap().restart();

        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            cache.set(&key, &pet(3), Ttl::secs(60)).await.unwrap();
            if cache.get::<Pet>(&key).await.map(|h| h.source) == Some(Source::HitL2) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "L2 never came back: {:?}",
                cache.stats()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!f.l2.as_ref().unwrap().is_degraded());
    })
    .await;
}

async fn garbage(t: Topology) {
    let f = fixture(t);
    let cache = f.typed();
    let mut raw = f.raw().await;
    let (a, b, c) = (f.ns.id(4), f.ns.id(5), f.ns.id(6));
    let future_format = {
        let mut e = cache::tier::Entry::new(&b"x"[..], 1, 0).to_envelope(u64::MAX, 1);
        e[2] = 99;
        e
    };
    // The generation counter itself holds garbage: it is started again.
    let prefix = f.ns.root().split(':').next().unwrap().to_owned();
    let _: () = redis::cmd("SET")
        .arg(format!("{{{prefix}}}:gen"))
        .arg("not a number")
        .query_async(&mut raw)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(a.as_str())
        .arg("not ours at all")
        .query_async(&mut raw)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(b.as_str())
        .arg(future_format)
        .query_async(&mut raw)
        .await
        .unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg(c.as_str())
        .arg("a list")
        .query_async(&mut raw)
        .await
        .unwrap();

    for (i, key) in [&a, &b, &c].into_iter().enumerate() {
        assert!(
            cache.get::<Pet>(key).await.is_none(),
            "garbage under {key} was served"
        );
        let loaded = cache
            .get_or_load(key, Ttl::secs(60), load(i as i64))
            .await
            .unwrap();
        assert_eq!((loaded.value, loaded.source), (pet(i as i64), Source::Miss));
        // Overwritten: every tier now holds the good value.
        let l2 =
            f.l2.as_ref()
                .unwrap()
                .get(key)
                .await
                .unwrap()
                .expect("overwritten in L2");
        assert_eq!(
            cache::codec::Bincode
                .decode::<Pet>(l2.entry.payload())
                .unwrap(),
            pet(i as i64)
        );
        assert!(cache.get::<Pet>(key).await.unwrap().source.is_hit());
    }
    use cache::codec::Codec as _;
    let l2 = cache.stats().tier("l2").cloned().unwrap();
    assert!(l2.decode_failures >= 3, "{l2:?}");
    assert_eq!(l2.short_circuits, 0, "garbage must not open the breaker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l2_garbage_under_our_keys_is_a_counted_miss_and_is_overwritten() {
    bounded(garbage(Topology::L2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_l2_garbage_under_our_keys_is_a_counted_miss_and_is_overwritten() {
    bounded(garbage(Topology::L1L2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_never_answers_costs_no_more_than_the_timeout() {
    bounded(async {
        let hole = BlackHole::spawn();
        let timeout = Duration::from_millis(100);
        let slack = Duration::from_millis(900);
        let l2 = RedisTier::builder(hole.url())
            .op_timeout(timeout)
            .breaker(3, Duration::from_secs(60))
            .build()
            .unwrap();
        let key = cache::KeyBuilder::new("t")
            .unwrap()
            .namespace("pet")
            .unwrap()
            .id(1);

        let started = Instant::now();
        let err = l2.get(&key).await.unwrap_err();
        assert!(
            started.elapsed() < timeout + slack,
            "took {:?}",
            started.elapsed()
        );
        assert!(err.is_transient(), "{err}");

        let cache = TypedCache::builder(
            TieredCache::builder(MokaTier::builder().build().unwrap(), l2.clone()).build(),
        )
        .build();
        let other = cache::KeyBuilder::new("t")
            .unwrap()
            .namespace("pet")
            .unwrap()
            .id(2);
        let started = Instant::now();
        let got = cache
            .get_or_load(&other, Ttl::secs(60), load(2))
            .await
            .unwrap();
        assert_eq!(got.value, pet(2));
        // One bounded read and one bounded write at most.
        assert!(
            started.elapsed() < 2 * timeout + slack,
            "took {:?}",
            started.elapsed()
        );

        // After the threshold the breaker skips Redis entirely: no more waiting.
        for _ in 0..3 {
            let _ = l2.get(&key).await;
        }
        let started = Instant::now();
        assert!(matches!(
            l2.get(&key).await,
            Err(cache::CacheError::CircuitOpen(_))
        ));
        assert!(started.elapsed() < timeout, "an open breaker still waited");
        assert!(l2.stats()[0].short_circuits >= 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_is_down_at_start_up_does_not_fail_the_build_or_the_reads() {
    bounded(async {
        let mut f = fixture_with(Topology::L1L2, Options::default());
        f.redis.as_mut().unwrap().stop();
        let l2 = RedisTier::builder(f.redis.as_ref().unwrap().url())
            .build()
            .expect("lazy: builds while down");
        let cache = TypedCache::builder(
            TieredCache::builder(MokaTier::builder().build().unwrap(), l2).build(),
        )
        .build();
        let key = f.ns.id(7);
        assert_eq!(
            cache
                .get_or_load(&key, Ttl::secs(60), load(7))
                .await
                .unwrap()
                .source,
            Source::Miss
        );
        assert_eq!(cache.get::<Pet>(&key).await.unwrap().source, Source::HitL1);
    })
    .await;
}
