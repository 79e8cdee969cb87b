//! Batch loads against single loads of the same keys: what is joined, what is led, and
//! what a batch arriving after a write may take.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::tier::MokaTier;
use crate::typed::{ReadOptions, Source, TypedCache};
use crate::{CacheError, Key, KeyBuilder, Namespace, Ttl};

const TTL: Ttl = Ttl::secs(60);

fn cache() -> (TypedCache, Namespace) {
    let l1 = MokaTier::builder().build().unwrap();
    let ns = KeyBuilder::new("t").unwrap().namespace("n").unwrap();
    (TypedCache::builder(l1).build(), ns)
}

/// The loader's calls, by the ids each was given.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<Vec<i64>>>>);

impl Calls {
    fn seen(&self) -> Vec<Vec<i64>> {
        self.0.lock().unwrap().clone()
    }
}

/// A batch read of `ids` whose loader answers `id * 10 + version` for each id but 0.
async fn batch(
    cache: &TypedCache,
    ns: &Namespace,
    ids: &[i64],
    version: u32,
    calls: &Calls,
) -> Result<Vec<(i64, u32, Source)>, CacheError> {
    let wanted = ids.iter().map(|&id| (id, Some(ns.id(id)))).collect();
    let loader = |missing: Vec<i64>| {
        calls.0.lock().unwrap().push(missing.clone());
        async move {
            Ok::<_, std::io::Error>(
                missing
                    .into_iter()
                    .filter(|&id| id != 0)
                    .map(move |id| (id, u32::try_from(id).unwrap() * 10 + version)),
            )
        }
    };
    let got = cache
        .get_or_load_many(wanted, |_: &u32| Some(TTL), loader, &ReadOptions::default())
        .await?;
    Ok(got
        .into_iter()
        .map(|(id, f)| (id, f.value, f.source))
        .collect())
}

/// A single load of `key` that says when it has begun and waits for `gate`.
fn gated(
    cache: &TypedCache,
    key: &Key,
    value: u32,
) -> (tokio::task::JoinHandle<u32>, Arc<Notify>, Arc<Notify>) {
    let (begun, gate) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (cache, key, b, g) = (cache.clone(), key.clone(), begun.clone(), gate.clone());
    let task = tokio::spawn(async move {
        cache
            .get_or_load(&key, TTL, || async move {
                b.notify_one();
                g.notified().await;
                Ok::<_, std::io::Error>(value)
            })
            .await
            .unwrap()
            .value
    });
    (task, begun, gate)
}

async fn until(mut done: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !done() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("never happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_loads_only_what_the_cache_lacks_in_one_call() {
    // Arrange: 2 and 4 are cached.
    let (cache, ns) = cache();
    let calls = Calls::default();
    batch(&cache, &ns, &[2, 4], 0, &calls).await.unwrap();

    // Act: a batch of five, then the same again.
    let first = batch(&cache, &ns, &[1, 2, 3, 4, 5], 1, &calls)
        .await
        .unwrap();
    let again = batch(&cache, &ns, &[5, 1, 3], 2, &calls).await.unwrap();

    // Assert: one call for the three missing; the cached two kept their values.
    assert_eq!(calls.seen(), vec![vec![2, 4], vec![1, 3, 5]]);
    assert_eq!(
        first,
        vec![
            (1, 11, Source::Miss),
            (2, 20, Source::HitL1),
            (3, 31, Source::Miss),
            (4, 40, Source::HitL1),
            (5, 51, Source::Miss),
        ]
    );
    assert_eq!(
        again,
        vec![
            (5, 51, Source::HitL1),
            (1, 11, Source::HitL1),
            (3, 31, Source::HitL1)
        ]
    );
    assert_eq!(cache.stats().loader.calls, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_the_loader_does_not_return_is_left_out_and_not_stored() {
    let (cache, ns) = cache();
    let calls = Calls::default();

    let first = batch(&cache, &ns, &[0, 1], 0, &calls).await.unwrap();
    let again = batch(&cache, &ns, &[0, 1], 0, &calls).await.unwrap();

    assert_eq!(first, vec![(1, 10, Source::Miss)]);
    assert_eq!(again, vec![(1, 10, Source::HitL1)]);
    assert_eq!(calls.seen(), vec![vec![0, 1], vec![0]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_load_fails_the_batch_and_stores_nothing() {
    let (cache, ns) = cache();
    let wanted = vec![(1, Some(ns.id(1))), (2, Some(ns.id(2)))];
    let failed = cache
        .get_or_load_many(
            wanted,
            |_: &u32| Some(TTL),
            |_: Vec<i64>| async { Err::<Vec<(i64, u32)>, _>(std::io::Error::other("db down")) },
            &ReadOptions::default(),
        )
        .await;

    assert!(matches!(failed, Err(CacheError::Loader(_))), "{failed:?}");
    assert!(cache.get::<u32>(&ns.id(1)).await.is_none());
    assert!(cache.get::<u32>(&ns.id(2)).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_arriving_after_a_load_began_and_a_write_never_takes_its_value() {
    // Arrange: a single load of 1 has read the source (value 1) and is slow to return;
    // then a write is acknowledged.
    let (cache, ns) = cache();
    let (slow, begun, gate) = gated(&cache, &ns.id(1), 1);
    begun.notified().await;
    cache.invalidate(&ns.id(1)).await.unwrap();

    // Act: a batch arrives, then the slow load returns.
    let calls = Calls::default();
    let reader = {
        let (cache, ns, calls) = (cache.clone(), ns.clone(), calls.clone());
        tokio::spawn(async move { batch(&cache, &ns, &[1, 2], 2, &calls).await.unwrap() })
    };
    let flights = cache.clone();
    until(|| {
        flights
            .flights()
            .get(&ns.id(1))
            .is_some_and(|f| !f.joinable.started.load(std::sync::atomic::Ordering::SeqCst))
    })
    .await;
    gate.notify_one();

    // Assert: the batch loaded 1 itself, after the slow load; the old value never landed.
    assert_eq!(slow.await.unwrap(), 1);
    assert_eq!(
        reader.await.unwrap(),
        vec![(1, 12, Source::Miss), (2, 22, Source::Miss)]
    );
    assert_eq!(calls.seen(), vec![vec![1, 2]]);
    assert_eq!(cache.get::<u32>(&ns.id(1)).await.unwrap().value, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_read_joins_a_batch_load_that_has_not_begun() {
    // Arrange: a slow single load of 1 has begun; a batch of 1 and 2 waits behind it
    // (it leads the next load of 1).
    let (cache, ns) = cache();
    let (slow, begun, gate) = gated(&cache, &ns.id(1), 1);
    begun.notified().await;
    let loading = cache.flights().get(&ns.id(1)).unwrap().loading.clone();
    let before = Arc::strong_count(&loading);
    let calls = Calls::default();
    let reader = {
        let (cache, ns, calls) = (cache.clone(), ns.clone(), calls.clone());
        tokio::spawn(async move { batch(&cache, &ns, &[1, 2], 2, &calls).await.unwrap() })
    };
    // The batch holds the key's lock handle, and waits for the lock with another.
    until(|| Arc::strong_count(&loading) == before + 2).await;

    // Act: a single read of 1 arrives; then the slow load returns (no write came).
    let single = {
        let (cache, key) = (cache.clone(), ns.id(1));
        tokio::spawn(async move {
            cache
                .get_or_load(&key, TTL, || async {
                    Err::<u32, _>(std::io::Error::other("joined: never called"))
                })
                .await
                .unwrap()
        })
    };
    // The map, the batch and the single read hold the load the batch leads.
    until(|| {
        cache
            .flights()
            .get(&ns.id(1))
            .is_some_and(|f| Arc::strong_count(&f.joinable) == 3)
    })
    .await;
    gate.notify_one();

    // Assert: the batch took what the slow load filled for 1 and loaded 2 alone; the
    // single read shared the batch's answer.
    assert_eq!(slow.await.unwrap(), 1);
    assert_eq!(
        reader.await.unwrap(),
        vec![(1, 1, Source::HitL1), (2, 22, Source::Miss)]
    );
    assert_eq!(calls.seen(), vec![vec![2]]);
    let single = single.await.unwrap();
    assert_eq!((single.value, single.source), (1, Source::HitL1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_joins_a_single_load_that_has_not_begun() {
    // Arrange: a slow load of 1 has begun, and a second single read of 1 waits behind
    // it (it leads the next load).
    let (cache, ns) = cache();
    let (slow, begun, gate) = gated(&cache, &ns.id(1), 1);
    begun.notified().await;
    let (next, next_begun, next_gate) = gated(&cache, &ns.id(1), 5);
    let flights = cache.clone();
    until(|| {
        flights.flights().get(&ns.id(1)).is_some_and(|f| {
            f.joinable.claimed.load(std::sync::atomic::Ordering::SeqCst)
                && !f.joinable.started.load(std::sync::atomic::Ordering::SeqCst)
        })
    })
    .await;

    // Act: a batch of 1 and 2 arrives; a write lands so that the next load must run;
    // then both loads return.
    let calls = Calls::default();
    let reader = {
        let (cache, ns, calls) = (cache.clone(), ns.clone(), calls.clone());
        tokio::spawn(async move { batch(&cache, &ns, &[1, 2], 2, &calls).await.unwrap() })
    };
    // The map, the next load's leader (twice) and the batch hold the load it joins.
    until(|| {
        flights
            .flights()
            .get(&ns.id(1))
            .is_some_and(|f| Arc::strong_count(&f.joinable) == 4)
    })
    .await;
    cache.invalidate(&ns.id(1)).await.unwrap();
    gate.notify_one();
    next_begun.notified().await;
    next_gate.notify_one();

    // Assert: the batch took the next load's value for 1 (it began after the batch
    // arrived) and loaded only 2 itself.
    assert_eq!((slow.await.unwrap(), next.await.unwrap()), (1, 5));
    assert_eq!(
        reader.await.unwrap(),
        vec![(1, 5, Source::Miss), (2, 22, Source::Miss)]
    );
    assert_eq!(calls.seen(), vec![vec![2]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_a_batch_found_after_its_turn_is_not_shared_with_readers_after_a_write() {
    // Arrange: a slow single load of 1 has begun; a batch of 1 and 2 waits behind it,
    // finds what it filled for 1, and is slow loading 2.
    let (cache, ns) = cache();
    let (slow, begun, gate) = gated(&cache, &ns.id(1), 1);
    begun.notified().await;
    let loading = cache.flights().get(&ns.id(1)).unwrap().loading.clone();
    let before = Arc::strong_count(&loading);
    let (batch_begun, batch_gate) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let reader = {
        let (cache, ns) = (cache.clone(), ns.clone());
        let (b, g) = (batch_begun.clone(), batch_gate.clone());
        tokio::spawn(async move {
            let wanted = vec![(1, Some(ns.id(1))), (2, Some(ns.id(2)))];
            let loader = |missing: Vec<i64>| {
                let (b, g) = (b.clone(), g.clone());
                async move {
                    b.notify_one();
                    g.notified().await;
                    Ok::<_, std::io::Error>(missing.into_iter().map(|id| (id, 22u32)))
                }
            };
            cache
                .get_or_load_many(wanted, |_: &u32| Some(TTL), loader, &ReadOptions::default())
                .await
                .unwrap()
                .into_iter()
                .map(|(id, f)| (id, f.value, f.source))
                .collect::<Vec<_>>()
        })
    };
    until(|| Arc::strong_count(&loading) == before + 2).await;
    gate.notify_one();
    batch_begun.notified().await;

    // Act: a write of 1 is acknowledged while the batch still loads 2; then a reader
    // of 1 arrives.
    cache.invalidate(&ns.id(1)).await.unwrap();
    let after = {
        let (cache, key) = (cache.clone(), ns.id(1));
        tokio::spawn(async move {
            cache
                .get_or_load(&key, TTL, || async { Ok::<_, std::io::Error>(7u32) })
                .await
                .unwrap()
        })
    };

    // Assert: the reader loads the written value without waiting for the batch (it
    // never takes the value the batch found before the write); the batch keeps its own.
    until(|| after.is_finished()).await;
    let after = after.await.unwrap();
    assert_eq!((after.value, after.source), (7, Source::Miss));
    batch_gate.notify_one();
    assert_eq!(slow.await.unwrap(), 1);
    assert_eq!(
        reader.await.unwrap(),
        vec![(1, 1, Source::HitL1), (2, 22, Source::Miss)]
    );
    assert_eq!(cache.get::<u32>(&ns.id(1)).await.unwrap().value, 7);
}
