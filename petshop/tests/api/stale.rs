//! Serve-stale (`CACHE_MAX_STALE`) and `/stats` refresh-ahead (`STATS_REFRESH_AHEAD`).

use std::time::Duration;

use sea_orm::ConnectionTrait;

use crate::helpers::{TestApp, bounded, spawn, spawn_with_extra};

async fn break_database(app: &TestApp) {
    app.state
        .db
        .execute_unprepared("ALTER TABLE pet RENAME TO pet_away")
        .await
        .expect("rename");
}

async fn repair_database(app: &TestApp) {
    app.state
        .db
        .execute_unprepared("ALTER TABLE pet_away RENAME TO pet")
        .await
        .expect("rename back");
}

const SHORT: &[(&str, &str)] = &[
    ("PET_TTL", "100ms"),
    ("STATS_TTL", "100ms"),
    ("CACHE_JITTER_PERCENT", "0"),
    ("CACHE_MAX_STALE", "1m"),
];

#[tokio::test]
async fn a_failing_database_is_answered_with_the_last_good_value_flagged_stale() {
    bounded(async {
        let app = spawn(SHORT).await;
        let id = app.insert("Rex", "dog", 3, 50).await;
        let path = format!("/pets/{id}");
        let fresh = app.get(&path).await;
        assert_eq!((fresh.status, fresh.x_cache()), (200, "MISS"));
        assert_eq!(app.get("/stats").await.x_cache(), "MISS");
        tokio::time::sleep(Duration::from_millis(200)).await;

        break_database(&app).await;
        let r = app.get(&path).await;
        assert_eq!((r.status, r.x_cache()), (200, "STALE"), "{}", r.text);
        assert!(!r.cached());
        assert_eq!(r.data(), fresh.data());
        let s = app.get("/stats").await;
        assert_eq!((s.status, s.x_cache()), (200, "STALE"), "{}", s.text);
        assert_eq!(s.json["total_pets"], 1);
        // What was never loaded has no stale copy: the failure shows.
        assert!(app.get("/pets?species=cat").await.status >= 500);
        let c = app.get("/cache/stats").await;
        assert_eq!(c.json["loader"]["stale_served"], 2, "{}", c.text);

        repair_database(&app).await;
        let r = app.get(&path).await;
        assert_eq!((r.status, r.x_cache()), (200, "MISS"));
    })
    .await;
}

#[tokio::test]
async fn without_serve_stale_a_failing_database_is_an_error() {
    bounded(async {
        let app = spawn(&[("PET_TTL", "100ms"), ("CACHE_JITTER_PERCENT", "0")]).await;
        let id = app.insert("Rex", "dog", 3, 50).await;
        let path = format!("/pets/{id}");
        assert_eq!(app.get(&path).await.status, 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
        break_database(&app).await;
        let r = app.get(&path).await;
        assert!(r.status >= 500, "{} {}", r.status, r.text);
        assert!(r.json["error"].is_string(), "{}", r.text);
    })
    .await;
}

/// A write this instance made is never undone by a stale answer: cache-aside forgets
/// the old value, write-through serves the new one.
async fn a_write_is_never_undone_by_a_stale_answer(strategy: &str) {
    let app = spawn_with_extra(strategy, "l1", SHORT).await;
    let id = app.insert("Rex", "dog", 3, 50).await;
    let path = format!("/pets/{id}");
    assert_eq!(app.get(&path).await.json["happiness"], 50);
    let r = app
        .patch(&path, &serde_json::json!({"happiness": 99}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    tokio::time::sleep(Duration::from_millis(200)).await;
    break_database(&app).await;
    let r = app.get(&path).await;
    if r.status == 200 {
        assert_eq!(r.x_cache(), "STALE");
        assert_eq!(r.json["happiness"], 99, "the pre-write value came back");
    } else {
        assert!(r.status >= 500, "{} {}", r.status, r.text);
    }
}

#[tokio::test]
async fn cache_aside_never_serves_a_value_older_than_a_write_stale() {
    bounded(a_write_is_never_undone_by_a_stale_answer("cache-aside")).await;
}

#[tokio::test]
async fn write_through_serves_the_written_value_stale() {
    bounded(a_write_is_never_undone_by_a_stale_answer("write-through")).await;
}

#[tokio::test]
async fn stats_near_expiry_are_served_and_refreshed_in_the_background() {
    bounded(async {
        let app = spawn(&[
            ("STATS_TTL", "1s"),
            ("STATS_REFRESH_AHEAD", "50"),
            ("CACHE_JITTER_PERCENT", "0"),
        ])
        .await;
        app.insert("Rex", "dog", 3, 50).await;
        assert_eq!(app.get("/stats").await.json["total_pets"], 1);
        // Behind the cache's back: only a reload can show it.
        app.insert("Tom", "cat", 2, 40).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        let r = app.get("/stats").await;
        assert!(r.cached(), "{}", r.text);
        assert_eq!(r.json["total_pets"], 1, "served before the refresh");
        // The refresh lands while the entry is still cached: a hit shows the new count.
        let mut refreshed = false;
        for _ in 0..100 {
            let r = app.get("/stats").await;
            if r.cached() && r.json["total_pets"] == 2 {
                refreshed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(refreshed, "no hit ever showed the refreshed stats");
        let c = app.get("/cache/stats").await;
        assert_eq!(c.json["loader"]["refreshes"], 1, "{}", c.text);
    })
    .await;
}
