//! Serve-stale: a failed or too-slow load answers with the last good value, flagged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cache::policy::StaleConfig;
use cache::typed::TypedCache;
use cache::{CacheError, Source, Ttl};

use crate::support::{Fixture, Pet, Topology, fixture, pet};

crate::support::per_topology!(
    a_failed_load_serves_the_last_good_value_flagged_stale,
    a_value_older_than_max_stale_is_not_served,
    an_invalidated_value_is_never_served_stale,
    a_slow_load_is_cut_at_the_load_timeout_and_answered_stale,
);

const TTL: Duration = Duration::from_millis(300);
const MAX_STALE: Duration = Duration::from_secs(60);

fn typed(f: &Fixture, load_timeout: Option<Duration>) -> TypedCache {
    TypedCache::builder_dyn(f.cache.clone())
        .clock(Arc::new(f.clock.clone()))
        .serve_stale(StaleConfig {
            max_stale: MAX_STALE,
            max_bytes: 1 << 20,
            load_timeout,
        })
        .build()
}

async fn failing(cache: &TypedCache, key: &cache::Key) -> Result<cache::Fetched<Pet>, CacheError> {
    cache
        .get_or_load(key, Ttl::new(TTL).unwrap(), || async {
            Err::<Pet, _>(std::io::Error::other("database is down"))
        })
        .await
}

/// Loads `pet(id)` through `cache`, then lets it expire from every tier.
async fn load_then_expire(f: &Fixture, cache: &TypedCache, key: &cache::Key, id: i64) {
    let first = cache
        .get_or_load(key, Ttl::new(TTL).unwrap(), || async {
            Ok::<_, std::io::Error>(pet(id))
        })
        .await
        .unwrap();
    assert_eq!(first.source, Source::Miss);
    f.expire(key, TTL).await;
}

async fn a_failed_load_serves_the_last_good_value_flagged_stale(t: Topology) {
    let f = fixture(t);
    let cache = typed(&f, None);
    let key = f.ns.id(1);
    load_then_expire(&f, &cache, &key, 1).await;
    let got = failing(&cache, &key).await.expect("served stale");
    assert_eq!((got.value, got.source), (pet(1), Source::Stale));
    assert_eq!(got.source.as_header(), "STALE");
    assert!(!got.source.is_hit());
    let stats = cache.stats().loader;
    assert_eq!((stats.errors, stats.stale_served), (1, 1));
    // The stale answer is not cached: the source coming back is used at once.
    let fresh = cache
        .get_or_load(&key, Ttl::new(TTL).unwrap(), || async {
            Ok::<_, std::io::Error>(pet(2))
        })
        .await
        .unwrap();
    assert_eq!((fresh.value, fresh.source), (pet(2), Source::Miss));
}

async fn a_value_older_than_max_stale_is_not_served(t: Topology) {
    let f = fixture(t);
    let cache = typed(&f, None);
    let key = f.ns.id(2);
    load_then_expire(&f, &cache, &key, 2).await;
    f.clock.advance(MAX_STALE);
    let err = failing(&cache, &key).await.expect_err("too old to serve");
    assert!(matches!(err, CacheError::Loader(_)), "{err:?}");
    assert_eq!(cache.stats().loader.stale_served, 0);
}

async fn an_invalidated_value_is_never_served_stale(t: Topology) {
    let f = fixture(t);
    let cache = typed(&f, None);
    let key = f.ns.id(3);
    load_then_expire(&f, &cache, &key, 3).await;
    // A write happened: the last value is known to be wrong.
    cache.invalidate(&key).await.unwrap();
    let err = failing(&cache, &key)
        .await
        .expect_err("an invalidated value must not come back");
    assert!(matches!(err, CacheError::Loader(_)), "{err:?}");
    // A writer's store replaces it instead: that value may be served stale.
    let token = cache.invalidate(&key).await.unwrap();
    assert!(
        cache
            .replace(&key, &pet(33), Ttl::new(TTL).unwrap(), &token)
            .await
            .unwrap()
    );
    f.expire(&key, TTL).await;
    let got = failing(&cache, &key).await.expect("the written value");
    assert_eq!((got.value, got.source), (pet(33), Source::Stale));
}

async fn a_slow_load_is_cut_at_the_load_timeout_and_answered_stale(t: Topology) {
    let f = fixture(t);
    let limit = Duration::from_millis(100);
    let cache = typed(&f, Some(limit));
    let key = f.ns.id(4);
    load_then_expire(&f, &cache, &key, 4).await;
    let started = Instant::now();
    let got = cache
        .get_or_load(&key, Ttl::new(TTL).unwrap(), || async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, std::io::Error>(pet(44))
        })
        .await
        .expect("served stale");
    assert_eq!((got.value, got.source), (pet(4), Source::Stale));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the slow load was not cut short"
    );
    let stats = cache.stats().loader;
    assert_eq!((stats.timeouts, stats.stale_served), (1, 1));
    // Without a last value, the timeout is the caller's error.
    let err = cache
        .get_or_load(&f.ns.id(5), Ttl::new(TTL).unwrap(), || async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, std::io::Error>(pet(5))
        })
        .await
        .expect_err("nothing to serve");
    assert!(err.to_string().contains("longer than"), "{err}");
}
