//! The rate limiter: one limit across instances on a shared Redis, a local fallback
//! when Redis cannot be reached, and no raw client key in Redis.

use std::time::Duration;

use cache::limit::{Counter, RateLimiter};
use cache::testing::{Fault, Proxy, RedisServer};
use cache::tier::RedisTier;

use crate::support::bounded;

fn tier(url: &str) -> RedisTier {
    RedisTier::builder(url)
        .prefix("shop")
        .op_timeout(Duration::from_millis(100))
        .breaker(2, Duration::from_millis(200))
        .build()
        .unwrap()
}

/// A connection to `redis` and the keys matching `pattern` there.
async fn keys_of(
    redis: &RedisServer,
    pattern: &str,
) -> (redis::aio::MultiplexedConnection, Vec<String>) {
    let mut con = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut con)
        .await
        .unwrap();
    (con, keys)
}

fn limiter(url: &str, limit: u64) -> RateLimiter {
    RateLimiter::new(limit, Duration::from_secs(60))
        .unwrap()
        .shared(tier(url))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_limit_and_the_client_key_is_hashed() {
    bounded(async {
        let redis = RedisServer::spawn();
        let (a, b) = (limiter(&redis.url(), 10), limiter(&redis.url(), 10));
        // 30 concurrent requests of one client, alternating instances: exactly 10 pass.
        let checks = (0..30).map(|i| {
            let instance = if i % 2 == 0 { &a } else { &b };
            instance.check("203.0.113.7")
        });
        let decisions = futures::future::join_all(checks).await;
        assert_eq!(decisions.iter().filter(|d| d.allowed).count(), 10);
        assert!(decisions.iter().all(|d| d.counted_by == Counter::Shared));
        let mut remaining: Vec<u64> = decisions.iter().map(|d| d.remaining).collect();
        remaining.sort_unstable();
        assert_eq!(remaining[20..], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let last = decisions.iter().find(|d| !d.allowed).unwrap();
        assert!(last.reset > Duration::from_secs(50) && last.reset <= Duration::from_secs(60));
        assert!(
            a.check("198.51.100.1").await.allowed,
            "another client has its own window"
        );
        assert_eq!(a.counter(), Counter::Shared);

        let (mut con, keys) = keys_of(&redis, "*").await;
        assert_eq!(keys.len(), 2, "one counter per client: {keys:?}");
        for key in &keys {
            assert!(
                key.starts_with("{shop:rate:") && !key.contains("203.0.113.7"),
                "{key}"
            );
            let ttl: i64 = redis::cmd("PTTL")
                .arg(key)
                .query_async(&mut con)
                .await
                .unwrap();
            assert!(
                ttl > 0 && ttl <= 60_000,
                "every counter expires with its window: {ttl}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_full_of_garbage_starts_again() {
    bounded(async {
        let redis = RedisServer::spawn();
        let limiter = limiter(&redis.url(), 3);
        assert!(limiter.check("client").await.allowed);
        let (mut con, keys) = keys_of(&redis, "{shop:rate:*").await;
        let () = redis::cmd("SET")
            .arg(&keys[0])
            .arg("not a number")
            .query_async(&mut con)
            .await
            .unwrap();
        let decision = limiter.check("client").await;
        assert_eq!(
            (decision.allowed, decision.remaining, decision.counted_by),
            (true, 2, Counter::Shared)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_unreachable_requests_are_counted_in_process_and_still_limited() {
    bounded(async {
        let redis = RedisServer::spawn();
        let proxy = Proxy::spawn(redis.port());
        let limiter = limiter(&proxy.url(), 3);
        assert_eq!(limiter.check("client").await.counted_by, Counter::Shared);

        // 5 requests of `local` in each outage, against a limit of 3, in one local window.
        for (fault, allowed) in [(Fault::Cut, 3), (Fault::BlackHole, 0)] {
            proxy.set(fault);
            let decisions: Vec<_> =
                futures::future::join_all((0..5).map(|_| limiter.check("local"))).await;
            assert!(
                decisions.iter().all(|d| d.counted_by == Counter::Local),
                "{fault:?}"
            );
            assert_eq!(
                decisions.iter().filter(|d| d.allowed).count(),
                allowed,
                "{fault:?}"
            );
            assert_eq!(limiter.counter(), Counter::Local);
            proxy.set(Fault::None);
            tokio::time::sleep(Duration::from_millis(250)).await; // the breaker's cool-down
            // Back on Redis: the shared count goes on from where it was.
            let mut back = limiter.check("client").await;
            for _ in 0..20 {
                if back.counted_by == Counter::Shared {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                back = limiter.check("client").await;
            }
            assert_eq!(back.counted_by, Counter::Shared, "{fault:?}");
            assert_eq!(limiter.counter(), Counter::Shared);
        }
        assert!(limiter.rejected() >= 7 && limiter.local_counts() >= 10);
    })
    .await;
}
