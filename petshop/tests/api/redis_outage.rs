//! Redis dying, hanging or missing: the service keeps answering from L1 and the
//! database, and `/ready` says `degraded` (still 200).

use std::time::Duration;

use cache::testing::{BlackHole, RedisServer};

use crate::helpers::{TestApp, bounded, config, new_pet, spawn_config, spawn_with};

async fn assert_degraded(app: &TestApp) {
    let r = app.get("/ready").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["status"], "degraded", "{}", r.text);
    assert_eq!(r.json["database"]["status"], "up");
    assert_eq!(r.json["redis"]["status"], "degraded", "{}", r.text);
    assert!(r.json["redis"]["detail"].is_string());
}

/// Every endpoint answers without a 5xx, and writes show in the next reads.
async fn still_serves(app: &TestApp, id: i64) {
    let path = format!("/pets/{id}");
    for _ in 0..3 {
        let r = app.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(app.get("/pets?species=dog").await.status, 200);
    assert_eq!(app.get("/stats").await.status, 200);
    let r = app.patch(&path, &serde_json::json!({"happiness": 1})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.get(&path).await.json["happiness"], 1);
    let r = app.post("/pets", &new_pet("Tom", "cat", 2, 3)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let tom = r.json["id"].as_i64().unwrap();
    assert_eq!(app.get(&format!("/pets/{tom}")).await.json["name"], "Tom");
    assert_eq!(app.get("/stats").await.json["total_pets"], 2);
    assert_eq!(app.delete(&format!("/pets/{tom}")).await.status, 204);
    assert_eq!(app.get(&format!("/pets/{tom}")).await.status, 404);
    assert_eq!(app.get("/stats").await.json["total_pets"], 1);
    assert_eq!(app.get("/metrics").await.status, 200);
    assert_eq!(app.get("/cache/stats").await.status, 200);
    assert_eq!(app.get("/health").await.status, 200);
}

async fn killed_mid_test(strategy: &'static str, tiers: &'static str) {
    let mut app = spawn_with(strategy, tiers).await;
    let id = app.insert("Rex", "dog", 3, 50).await;
    let path = format!("/pets/{id}");
    app.get(&path).await;
    assert!(app.get(&path).await.cached());
    assert_eq!(app.get("/ready").await.json["status"], "ready");

    app.redis.as_mut().unwrap().stop();

    still_serves(&app, id).await;
    assert_degraded(&app).await;
}

#[tokio::test]
async fn redis_killed_under_l1_and_l2_still_serves_and_ready_says_degraded() {
    bounded(killed_mid_test("cache-aside", "l1+l2")).await;
}

#[tokio::test]
async fn redis_killed_under_l2_still_serves_and_ready_says_degraded() {
    bounded(killed_mid_test("write-through", "l2")).await;
}

#[tokio::test]
async fn redis_killed_under_versioned_still_serves_fresh_data() {
    bounded(killed_mid_test("versioned", "l1+l2")).await;
}

#[tokio::test]
async fn redis_down_at_start_up_does_not_stop_the_service_and_it_recovers() {
    bounded(async {
        let mut redis = RedisServer::spawn();
        redis.stop();
        let url = redis.url();
        let app = spawn_config(
            config(&[("REDIS_URL", url.as_str()), ("CACHE_TIERS", "l1+l2")]),
            None,
        )
        .await;
        let id = app.insert("Rex", "dog", 3, 50).await;
        still_serves(&app, id).await;
        assert_degraded(&app).await;

        // Redis comes back: the tier and the backplane reconnect by themselves.
        redis.restart();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let r = app.get("/ready").await;
            if r.json["status"] == "ready" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never ready again: {}",
                r.text
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let path = format!("/pets/{id}");
        app.get(&path).await;
        assert_eq!(app.get(&path).await.x_cache(), "HIT-L1");
    })
    .await;
}

#[tokio::test]
async fn a_hung_redis_costs_bounded_time_per_request() {
    bounded(async {
        let hole = BlackHole::spawn();
        let url = hole.url();
        let app = spawn_config(
            config(&[
                ("REDIS_URL", url.as_str()),
                ("CACHE_TIERS", "l2"),
                ("REDIS_OP_TIMEOUT", "50ms"),
            ]),
            None,
        )
        .await;
        let id = app.insert("Rex", "dog", 3, 50).await;
        let start = std::time::Instant::now();
        for _ in 0..10 {
            assert_eq!(app.get(&format!("/pets/{id}")).await.status, 200);
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert_degraded(&app).await;
    })
    .await;
}
