//! Refresh-ahead: a hit near its expiry is served and reloaded in the background.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache::typed::TypedCache;
use cache::{Source, Ttl};
use tokio::sync::Notify;

use crate::support::{Fixture, Pet, Topology, fixture, pet};

macro_rules! l1_topologies {
    ($($name:ident),* $(,)?) => {
        mod l1 {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { crate::support::bounded(super::$name(crate::support::Topology::L1)).await })*
        }
        mod l1_l2 {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { crate::support::bounded(super::$name(crate::support::Topology::L1L2)).await })*
        }
    };
}

// The manual clock drives L1's expiry, so these run where L1 answers the hit.
l1_topologies!(
    a_hit_near_expiry_is_served_and_refreshed_in_the_background,
    a_hit_with_time_left_is_not_refreshed,
    a_refresh_overtaken_by_a_write_does_not_land,
);

const TTL: Duration = Duration::from_secs(10);

fn typed(f: &Fixture) -> TypedCache {
    TypedCache::builder_dyn(f.cache.clone())
        .clock(Arc::new(f.clock.clone()))
        .refresh_ahead(20)
        .build()
}

/// A loader returning `pet(base + n)` on its n-th call.
fn counting(
    base: i64,
) -> (
    Arc<AtomicU64>,
    impl Fn() -> std::future::Ready<Result<Pet, std::io::Error>> + Clone + Send + Sync + 'static,
) {
    let calls = Arc::new(AtomicU64::new(0));
    let c = calls.clone();
    let loader = move || {
        let n = c.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(pet(base + i64::try_from(n).unwrap())))
    };
    (calls, loader)
}

async fn eventually<F: AsyncFn() -> bool>(what: &str, f: F) {
    for _ in 0..500 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn a_hit_near_expiry_is_served_and_refreshed_in_the_background(t: Topology) {
    let f = fixture(t);
    let cache = typed(&f);
    let key = f.ns.id(1);
    let (calls, loader) = counting(100);
    let ttl = Ttl::new(TTL).unwrap();
    let first = cache.get_or_refresh(&key, ttl, loader).await.unwrap();
    assert_eq!((first.value, first.source), (pet(100), Source::Miss));
    // 1.5 s of 10 s left: under the 20 % threshold.
    f.clock.advance(Duration::from_millis(8500));
    let (_, loader) = counting(200);
    // Many readers at once: every one is served from the cache (the old value, or the
    // new one once the refresh landed), and one refresh runs.
    let reads = (0..20).map(|_| cache.get_or_refresh(&key, ttl, loader.clone()));
    for read in futures::future::join_all(reads).await {
        let read = read.unwrap();
        assert!(read.source.is_hit(), "{read:?}");
        assert!(read.value == pet(100) || read.value == pet(200), "{read:?}");
    }
    eventually("the refreshed value", async || {
        cache
            .get::<Pet>(&key)
            .await
            .is_some_and(|v| v.value == pet(200))
    })
    .await;
    let stats = cache.stats().loader;
    assert_eq!((stats.refreshes, stats.calls), (1, 2));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The refreshed entry has a whole TTL again: past the old expiry it is still a hit.
    f.clock.advance(Duration::from_millis(2000));
    assert_eq!(cache.get::<Pet>(&key).await.unwrap().value, pet(200));
}

async fn a_hit_with_time_left_is_not_refreshed(t: Topology) {
    let f = fixture(t);
    let cache = typed(&f);
    let key = f.ns.id(2);
    let (calls, loader) = counting(100);
    let ttl = Ttl::new(TTL).unwrap();
    cache
        .get_or_refresh(&key, ttl, loader.clone())
        .await
        .unwrap();
    f.clock.advance(Duration::from_secs(5));
    let hit = cache.get_or_refresh(&key, ttl, loader).await.unwrap();
    assert!(hit.source.is_hit());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(cache.stats().loader.refreshes, 0);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

async fn a_refresh_overtaken_by_a_write_does_not_land(t: Topology) {
    let f = fixture(t);
    let cache = typed(&f);
    let key = f.ns.id(3);
    let ttl = Ttl::new(TTL).unwrap();
    cache.set(&key, &pet(1), ttl).await.unwrap();
    f.clock.advance(Duration::from_millis(9000));
    // The refresh reads the old row, then waits until a write has invalidated the key.
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (s, r) = (started.clone(), release.clone());
    let slow_old_read = move || {
        let (s, r) = (s.clone(), r.clone());
        async move {
            s.notify_one();
            r.notified().await;
            Ok::<_, std::io::Error>(pet(1))
        }
    };
    let hit = cache
        .get_or_refresh(&key, ttl, slow_old_read)
        .await
        .unwrap();
    assert_eq!(hit.value, pet(1));
    started.notified().await;
    cache.invalidate(&key).await.unwrap();
    release.notify_one();
    // The refused fill never shows, however long we look.
    for _ in 0..30 {
        assert!(
            cache.get::<Pet>(&key).await.is_none(),
            "a refresh that began before a write must not fill"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(cache.stats().loader.refreshes, 1);
}
