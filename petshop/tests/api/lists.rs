//! Pages and totals across instances: after a write through one instance, the other's
//! cached pages and totals come back to what the database holds (through the backplane)
//! and stay there.

use std::time::{Duration, Instant};

use cache::testing::RedisServer;
use petshop::model::PetFilter;

use crate::helpers::{TestApp, bounded, config, new_pet, page_ids, spawn_config};

/// A page: its path, and its filter's species, minimum and maximum age.
type Page = (&'static str, Option<&'static str>, Option<i32>, Option<i32>);

/// The pages both instances keep cached.
const PAGES: [Page; 4] = [
    ("/pets?species=cat&limit=5", Some("cat"), None, None),
    ("/pets?limit=5", None, None, None),
    (
        "/pets?species=dog&min_age=2&limit=5",
        Some("dog"),
        Some(2),
        None,
    ),
    (
        "/pets?species=cat&limit=5&offset=35",
        Some("cat"),
        None,
        None,
    ),
];

/// What the database says page `i` of [`PAGES`] holds: its ids and its total.
async fn truth(app: &TestApp, i: usize) -> (Vec<i64>, u64) {
    let (path, species, min_age, max_age) = PAGES[i];
    let offset = if path.contains("offset=35") { 35 } else { 0 };
    let filter = PetFilter {
        species: species.map(str::to_owned),
        min_age,
        max_age,
        limit: 5,
        offset,
    };
    let list = petshop::service::pets::list(&app.state.db, &filter)
        .await
        .expect("list");
    (list.pets.iter().map(|p| p.id).collect(), list.total)
}

/// Waits (2 s at most) until `app` answers every page as the database holds it; how
/// long that took.
async fn converged(app: &TestApp, what: &str) -> Duration {
    let start = Instant::now();
    loop {
        let mut off = Vec::new();
        for (i, (path, ..)) in PAGES.iter().enumerate() {
            let page = app.get(path).await;
            assert_eq!(page.status, 200, "{}", page.text);
            let (want, total) = truth(app, i).await;
            let got = (
                page_ids(&page.json),
                page.json["total"].as_u64().expect("total"),
            );
            if got != (want.clone(), total) {
                off.push(format!("{path}: {got:?}, database {:?}", (want, total)));
            }
        }
        if off.is_empty() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "after {what}, still not the database's: {off:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn pages_and_totals_of_another_instance_come_back_to_the_database_after_each_write() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("pets.db").display());
        let redis = RedisServer::spawn();
        let redis_url = redis.url();
        let vars = [
            ("DATABASE_URL", url.as_str()),
            ("REDIS_URL", redis_url.as_str()),
            ("CACHE_TIERS", "l1+l2"),
            ("CACHE_STRATEGY", "cache-aside"),
        ];
        let a = spawn_config(config(&vars), Some(redis)).await;
        let b = spawn_config(config(&vars), None).await;
        for app in [&a, &b] {
            assert!(
                app.state
                    .cache
                    .wait_for_backplane(Duration::from_secs(10))
                    .await
            );
        }
        for i in 0..40 {
            a.insert(&format!("c{i}"), "cat", i % 8, 50).await;
            a.insert(&format!("d{i}"), "dog", i % 8, 50).await;
        }
        converged(&a, "the start").await;
        converged(&b, "the start").await;

        // Writes alternate between the instances; the other one must come back to the
        // database's pages and totals (it hears of the write through the backplane).
        let mut created = Vec::new();
        let mut slowest = Duration::ZERO;
        for step in 0..24 {
            let (writer, reader) = if step % 2 == 0 { (&a, &b) } else { (&b, &a) };
            let what = match step % 4 {
                0 => {
                    let r = writer
                        .post("/pets", &new_pet("n", "cat", step % 6, 10))
                        .await;
                    assert_eq!(r.status, 201, "{}", r.text);
                    created.push(r.json["id"].as_i64().unwrap());
                    "a create"
                }
                1 => {
                    let id = 1 + i64::from(step) * 2;
                    let r = writer
                        .patch(
                            &format!("/pets/{id}"),
                            &serde_json::json!({"species": "dog"}),
                        )
                        .await;
                    assert_eq!(r.status, 200, "{}", r.text);
                    "a species change"
                }
                2 => {
                    let id = 2 + i64::from(step) * 2;
                    let r = writer
                        .patch(&format!("/pets/{id}"), &serde_json::json!({"age": 1}))
                        .await;
                    assert_eq!(r.status, 200, "{}", r.text);
                    "an age change"
                }
                _ => {
                    let id = created.pop().unwrap_or(3);
                    assert_eq!(writer.delete(&format!("/pets/{id}")).await.status, 204);
                    "a delete"
                }
            };
            slowest = slowest.max(converged(reader, what).await);
            converged(writer, what).await;
        }
        // The window is the backplane's delivery; printed, not asserted beyond 2 s.
        eprintln!("slowest convergence of the other instance: {slowest:?}");
    })
    .await;
}

#[tokio::test]
async fn with_soft_invalidation_an_invalidated_page_is_served_stale_at_once_and_refreshed_behind() {
    bounded(async {
        let app =
            crate::helpers::spawn(&[("CACHE_TIERS", "l1"), ("PETS_LIST_MAX_STALE", "300ms")]).await;
        for i in 0..6 {
            app.insert(&format!("c{i}"), "cat", 2, 50).await;
        }
        let page = "/pets?species=cat&limit=5";
        app.get(page).await;
        assert_eq!(app.get(page).await.x_cache(), "HIT-L1");
        let r = app
            .patch("/pets/2", &serde_json::json!({"name": "Renamed"}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);

        // The next reader does not wait for the database: the old page, marked stale.
        let stale = app.get(page).await;
        assert_eq!(
            (
                stale.x_cache(),
                stale.cached(),
                stale.json["pets"][1]["name"].as_str()
            ),
            ("STALE", true, Some("c1"))
        );
        // The reload ran behind it: the new page arrives within the bound.
        let start = Instant::now();
        loop {
            let r = app.get(page).await;
            if r.json["pets"][1]["name"] == "Renamed" {
                assert_ne!(r.x_cache(), "STALE");
                break;
            }
            assert_eq!(r.x_cache(), "STALE");
            assert!(
                start.elapsed() < Duration::from_millis(300),
                "not refreshed within the bound"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(app.get(page).await.x_cache(), "HIT-L1");
    })
    .await;
}
