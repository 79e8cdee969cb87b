//! The behaviour every topology must show, run once per topology.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache::tier::{Cache, Entry, TierKind, TieredCache};
use cache::{Params, Source, Ttl};

use crate::support::{Options, Topology, bounded, fixture, fixture_with, pet};

crate::support::per_topology!(
    a_value_round_trips_with_bincode,
    a_value_round_trips_with_json,
    an_entry_is_gone_after_its_ttl,
    a_delete_removes_the_value_from_every_tier,
    concurrent_misses_run_the_loader_once,
    a_loader_error_reaches_every_waiter_and_is_not_cached,
    an_entry_written_by_another_codec_is_a_counted_miss,
    batch_reads_return_hits_and_misses_in_order,
    the_first_read_is_a_miss_and_the_second_a_hit_from_the_nearest_tier,
);

fn nearest(t: Topology) -> Source {
    if t.has_l1() {
        Source::HitL1
    } else {
        Source::HitL2
    }
}

async fn a_value_round_trips_with_bincode(t: Topology) {
    let f = fixture(t);
    let cache = f.typed();
    let key = f.ns.id(1);
    cache.set(&key, &pet(1), Ttl::secs(60)).await.unwrap();
    let got = cache.get::<crate::support::Pet>(&key).await.unwrap();
    assert_eq!(got.value, pet(1));
    assert_eq!(got.source, nearest(t));
    // A page of values too.
    let page_key = f.ns.query(&Params::new().with("limit", 100));
    let page: Vec<_> = (0..100).map(pet).collect();
    cache.set(&page_key, &page, Ttl::secs(60)).await.unwrap();
    assert_eq!(
        cache
            .get::<Vec<crate::support::Pet>>(&page_key)
            .await
            .unwrap()
            .value,
        page
    );
}

async fn a_value_round_trips_with_json(t: Topology) {
    let f = fixture(t);
    let cache = f.typed_json();
    let key = f.ns.id(2);
    cache.set(&key, &pet(2), Ttl::secs(60)).await.unwrap();
    assert_eq!(
        cache.get::<crate::support::Pet>(&key).await.unwrap().value,
        pet(2)
    );
    if t.has_l2() {
        // JSON entries are readable with redis-cli: the payload after the envelope is JSON.
        let raw: Vec<u8> = redis::cmd("GET")
            .arg(key.as_str())
            .query_async(&mut f.raw().await)
            .await
            .unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&raw[cache::tier::ENVELOPE_HEADER..]).unwrap();
        assert_eq!(json["name"], "pet-2");
    }
}

async fn an_entry_is_gone_after_its_ttl(t: Topology) {
    let f = fixture(t);
    let cache = f.typed();
    let key = f.ns.id(3);
    let ttl = Duration::from_millis(300);
    cache
        .set(&key, &pet(3), Ttl::new(ttl).unwrap())
        .await
        .unwrap();
    assert!(cache.get::<crate::support::Pet>(&key).await.is_some());
    f.expire(&key, ttl).await;
    assert!(
        cache.get::<crate::support::Pet>(&key).await.is_none(),
        "{t:?} served an expired entry"
    );
}

async fn a_delete_removes_the_value_from_every_tier(t: Topology) {
    let f = fixture(t);
    let cache = f.typed();
    let key = f.ns.id(4);
    cache.set(&key, &pet(4), Ttl::secs(60)).await.unwrap();
    cache.delete(&key).await;
    assert!(cache.get::<crate::support::Pet>(&key).await.is_none());
    if let Some(l1) = &f.l1 {
        assert!(
            l1.get(&key).await.unwrap().is_none(),
            "L1 kept a deleted key"
        );
    }
    if let Some(l2) = &f.l2 {
        assert!(
            l2.get(&key).await.unwrap().is_none(),
            "L2 kept a deleted key"
        );
    }
}

async fn concurrent_misses_run_the_loader_once(t: Topology) {
    let f = fixture(t);
    let cache = f.typed();
    let key = f.ns.id(5);
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (cache, key, calls, gate) =
                (cache.clone(), key.clone(), calls.clone(), gate.clone());
            tokio::spawn(async move {
                gate.wait().await;
                cache
                    .get_or_load(&key, Ttl::secs(60), || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        // Long enough that every caller arrives while the load runs.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Ok::<_, std::io::Error>(pet(5))
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().value, pet(5));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let stats = cache.stats();
    assert_eq!(stats.loader.calls, 1);
    assert!(stats.loader.coalesced + 1 >= 2, "{stats:?}");
}

async fn a_loader_error_reaches_every_waiter_and_is_not_cached(t: Topology) {
    let f = fixture(t);
    let cache = f.typed();
    let key = f.ns.id(6);
    let gate = Arc::new(tokio::sync::Barrier::new(10));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (cache, key, gate) = (cache.clone(), key.clone(), gate.clone());
            tokio::spawn(async move {
                gate.wait().await;
                cache
                    .get_or_load::<crate::support::Pet, _, _, _>(&key, Ttl::secs(60), || async {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Err(std::io::Error::other("database down"))
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        let err = task.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("database down"), "{err}");
    }
    assert!(cache.stats().loader.calls <= 10);
    let ok = cache
        .get_or_load(&key, Ttl::secs(60), || async {
            Ok::<_, std::io::Error>(pet(6))
        })
        .await
        .unwrap();
    assert_eq!(
        (ok.value, ok.source),
        (pet(6), Source::Miss),
        "the error was cached"
    );
}

async fn an_entry_written_by_another_codec_is_a_counted_miss(t: Topology) {
    let f = fixture(t);
    let key = f.ns.id(7);
    f.typed_json()
        .set(&key, &pet(7), Ttl::secs(60))
        .await
        .unwrap();
    let bincode = f.typed();
    assert!(bincode.get::<crate::support::Pet>(&key).await.is_none());
    let failures: u64 = bincode
        .stats()
        .tiers
        .iter()
        .map(|s| s.decode_failures)
        .sum();
    assert_eq!(failures, 1);
    // The loader's value overwrites the foreign entry.
    let got = bincode
        .get_or_load(&key, Ttl::secs(60), || async {
            Ok::<_, std::io::Error>(pet(70))
        })
        .await
        .unwrap();
    assert_eq!(got.value, pet(70));
    assert_eq!(
        bincode
            .get::<crate::support::Pet>(&key)
            .await
            .unwrap()
            .value,
        pet(70)
    );
}

async fn batch_reads_return_hits_and_misses_in_order(t: Topology) {
    let f = fixture(t);
    let keys: Vec<_> = (0..5).map(|i| f.ns.id(100 + i)).collect();
    for k in keys.iter().step_by(2) {
        f.cache
            .set(
                k,
                Entry::new(k.as_str().as_bytes().to_vec(), 9, 0),
                Ttl::secs(60),
            )
            .await
            .unwrap();
    }
    let got = f.cache.get_many(&keys).await.unwrap();
    assert_eq!(got.len(), 5);
    for (i, (k, hit)) in keys.iter().zip(&got).enumerate() {
        match hit {
            Some(h) => {
                assert_eq!(i % 2, 0);
                assert_eq!(h.entry.payload().as_ref(), k.as_str().as_bytes());
            }
            None => assert_eq!(i % 2, 1),
        }
    }
}

async fn the_first_read_is_a_miss_and_the_second_a_hit_from_the_nearest_tier(t: Topology) {
    let f = fixture(t);
    let cache = f.typed();
    let key = f.ns.fixed("stats").unwrap();
    let load = || async { Ok::<_, std::io::Error>(42u64) };
    assert_eq!(
        cache
            .get_or_load(&key, Ttl::secs(10), load)
            .await
            .unwrap()
            .source,
        Source::Miss
    );
    assert_eq!(
        cache
            .get_or_load(&key, Ttl::secs(10), load)
            .await
            .unwrap()
            .source,
        nearest(t)
    );
    let tiers = cache.stats().tiers;
    let near = &tiers[0];
    assert_eq!((near.hits, near.sets), (1, 1), "{tiers:?}");
}

// ---- tier-specific behaviour ----

#[tokio::test]
async fn an_l2_hit_is_promoted_into_l1_for_no_longer_than_it_has_left() {
    bounded(async {
        let f = fixture(Topology::L1L2);
        let (l1, l2) = (f.l1.clone().unwrap(), f.l2.clone().unwrap());
        let key = f.ns.id(8);
        l2.set(&key, Entry::new(&b"x"[..], 9, 0), Ttl::millis(1500))
            .await
            .unwrap();
        let hit = f.cache.get(&key).await.unwrap().unwrap();
        assert_eq!(hit.tier, TierKind::L2);
        let promoted = l1.get(&key).await.unwrap().expect("promoted into L1");
        let left = promoted.ttl_left.unwrap();
        assert!(
            left <= Duration::from_millis(1500),
            "L1 copy lives {left:?}"
        );
        // Once the shared entry's time is up, the L1 copy is dead too.
        f.clock.advance(Duration::from_millis(1501));
        assert!(l1.get(&key).await.unwrap().is_none());
        assert_eq!(f.cache.get(&key).await.unwrap().unwrap().tier, TierKind::L2);
    })
    .await;
}

#[tokio::test]
async fn an_l1_max_ttl_caps_both_writes_and_promotions() {
    bounded(async {
        let f = fixture(Topology::L1L2);
        let (l1, l2) = (f.l1.clone().unwrap(), f.l2.clone().unwrap());
        let tiered = TieredCache::builder(l1.clone(), l2.clone())
            .l1_max_ttl(Ttl::secs(2))
            .build();
        let (a, b) = (f.ns.id(9), f.ns.id(10));
        tiered
            .set(&a, Entry::new(&b"a"[..], 9, 0), Ttl::secs(600))
            .await
            .unwrap();
        assert!(l1.get(&a).await.unwrap().unwrap().ttl_left.unwrap() <= Duration::from_secs(2));
        assert!(l2.get(&a).await.unwrap().unwrap().ttl_left.unwrap() > Duration::from_secs(500));
        l2.set(&b, Entry::new(&b"b"[..], 9, 0), Ttl::secs(600))
            .await
            .unwrap();
        tiered.get(&b).await.unwrap();
        assert!(l1.get(&b).await.unwrap().unwrap().ttl_left.unwrap() <= Duration::from_secs(2));
    })
    .await;
}

#[tokio::test]
async fn l1_stays_within_its_byte_budget_under_many_large_values() {
    bounded(async {
        let budget = 1 << 20;
        let f = fixture_with(
            Topology::L1,
            Options {
                l1_max_bytes: budget,
                ..Options::default()
            },
        );
        let l1 = f.l1.clone().unwrap();
        let cache = f.typed();
        let big = vec![7u8; 16 * 1024];
        for i in 0..1000 {
            cache.set(&f.ns.id(i), &big, Ttl::secs(60)).await.unwrap();
        }
        l1.run_pending_tasks().await;
        assert!(
            l1.weighted_size() <= budget,
            "{} > {budget}",
            l1.weighted_size()
        );
        assert!(l1.entry_count() < 1000);
        let stats = &cache.stats().tiers[0];
        assert!(stats.evictions > 0, "{stats:?}");
        // A value larger than the whole budget is simply not kept.
        let huge = vec![1u8; 2 << 20];
        cache
            .set(&f.ns.id(5000), &huge, Ttl::secs(60))
            .await
            .unwrap();
        l1.run_pending_tasks().await;
        assert!(l1.weighted_size() <= budget);
    })
    .await;
}

#[tokio::test]
async fn an_l1_hit_after_the_first_decodes_nothing() {
    bounded(async {
        // A value whose decode counts: the memo must make repeated L1 hits decode-free.
        use serde::{Deserialize, Deserializer};
        static DECODES: AtomicUsize = AtomicUsize::new(0);
        #[derive(Clone, Debug, PartialEq, serde::Serialize)]
        struct Counted(u32);
        impl<'de> Deserialize<'de> for Counted {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                DECODES.fetch_add(1, Ordering::SeqCst);
                u32::deserialize(d).map(Counted)
            }
        }
        let f = fixture(Topology::L1L2);
        let cache = f.typed();
        let key = f.ns.id(11);
        f.l2.as_ref()
            .unwrap()
            .set(
                &key,
                Entry::new(cache::codec::Bincode.encode(&5u32).unwrap(), 1, 0),
                Ttl::secs(60),
            )
            .await
            .unwrap();
        use cache::codec::Codec as _;
        for _ in 0..10 {
            assert_eq!(cache.get::<Counted>(&key).await.unwrap().value, Counted(5));
        }
        assert_eq!(
            DECODES.load(Ordering::SeqCst),
            1,
            "decoded once on the L2 hit, never again"
        );
    })
    .await;
}

#[tokio::test]
async fn the_no_cache_baseline_bypasses_and_still_coalesces_loads() {
    bounded(async {
        let cache = cache::typed::TypedCache::builder(cache::tier::NoCache::new()).build();
        let key = cache::KeyBuilder::new("t")
            .unwrap()
            .namespace("pet")
            .unwrap()
            .id(1);
        let a = cache
            .get_or_load(&key, Ttl::secs(5), || async {
                Ok::<_, std::io::Error>(1u8)
            })
            .await
            .unwrap();
        let b = cache
            .get_or_load(&key, Ttl::secs(5), || async {
                Ok::<_, std::io::Error>(2u8)
            })
            .await
            .unwrap();
        assert_eq!((a.source, b.value), (Source::Bypass, 2));
        let s = cache.stats();
        assert_eq!(
            (s.tiers[0].tier, s.tiers[0].misses, s.loader.calls),
            ("none", 2, 2)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_empties_our_prefix_only_and_keeps_version_counters() {
    bounded(async {
        let f = fixture(Topology::L1L2);
        let cache = f.typed();
        let mut con = f.raw().await;
        for id in 0..1200 {
            cache
                .set(&f.ns.id(id), &pet(id), Ttl::secs(60))
                .await
                .unwrap();
        }
        let prefix = f.ns.root().split(':').next().unwrap().to_owned();
        // Counters share the prefix's slot: `{prefix}:{namespace}:ver` (see the tier's keys.rs).
        let version_key = format!("{{{prefix}}}:pet:ver");
        let _: () = redis::cmd("SET")
            .arg(&version_key)
            .arg(7)
            .query_async(&mut con)
            .await
            .unwrap();
        let _: () = redis::cmd("SET")
            .arg("someone-else:key")
            .arg(1)
            .query_async(&mut con)
            .await
            .unwrap();

        cache.clear().await.unwrap();

        assert!(
            cache
                .get::<crate::support::Pet>(&f.ns.id(5))
                .await
                .is_none()
        );
        let mut left: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut con)
            .await
            .unwrap();
        left.sort();
        assert_eq!(
            left,
            [
                "someone-else:key".to_owned(),
                format!("{{{prefix}}}:gen"),
                version_key.clone(),
                format!("{{{prefix}}}:tagseq"),
            ],
            "only the counters (version, generation, tag sequence) and the foreign key are left"
        );
        let version: u64 = redis::cmd("GET")
            .arg(&version_key)
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(version, 7);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_bytes_are_stored_as_they_are_and_an_l1_hit_shares_them() {
    bounded(async {
        for t in [Topology::L1, Topology::L2, Topology::L1L2] {
            let f = fixture(t);
            let cache = f.typed();
            let key = f.ns.id(77);
            let body = bytes::Bytes::from_static(br#"{"cached":true}"#);
            cache.set(&key, &body, Ttl::secs(60)).await.unwrap();
            let got = cache.get::<bytes::Bytes>(&key).await.unwrap();
            assert_eq!(got.value, body);
            if t.has_l1() {
                // L1 keeps its own exact-size copy, made once when it is stored (so that a
                // slice of a larger buffer never pins it); its hits share that copy.
                let again = cache.get::<bytes::Bytes>(&key).await.unwrap();
                assert_eq!(
                    again.value.as_ptr(),
                    got.value.as_ptr(),
                    "an L1 hit copies nothing"
                );
            }
            if let Some(mut raw) = f
                .redis
                .as_ref()
                .map(|r| r.client().get_connection().unwrap())
            {
                let stored: Vec<u8> = redis::cmd("GET").arg(key.as_str()).query(&mut raw).unwrap();
                assert_eq!(
                    &stored[cache::tier::ENVELOPE_HEADER..],
                    body.as_ref(),
                    "no encoding"
                );
            }
            assert!(
                cache.get::<String>(&key).await.is_none(),
                "not readable as another type"
            );
        }
    })
    .await;
}
