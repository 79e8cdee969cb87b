//! A write invalidates only what it can change: pages and stats carry tags.

use crate::helpers::{TestApp, bounded, new_pet, page_ids, spawn_with};

async fn warm(app: &TestApp, paths: &[&str]) {
    for p in paths {
        app.get(p).await;
        assert!(app.get(p).await.cached(), "{p} was not cached");
    }
}

async fn cached(app: &TestApp, path: &str) -> bool {
    let r = app.get(path).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.cached()
}

async fn each_tiers(test: impl AsyncFn(TestApp)) {
    for (strategy, tiers) in [
        ("cache-aside", "l1"),
        ("write-through", "l1+l2"),
        ("versioned", "l2"),
    ] {
        test(spawn_with(strategy, tiers).await).await;
    }
}

#[tokio::test]
async fn a_rename_invalidates_only_the_pages_that_show_the_pet() {
    bounded(each_tiers(async |app| {
        // Arrange: a cat page, a dog page, the unfiltered page and the stats, cached.
        let tom = app.insert("Tom", "cat", 2, 50).await;
        app.insert("Rex", "dog", 3, 60).await;
        let pages = ["/pets?species=cat", "/pets?species=dog", "/pets", "/stats"];
        warm(&app, &pages).await;

        // Act: rename the cat.
        let r = app
            .patch(
                &format!("/pets/{tom}"),
                &serde_json::json!({"name": "Tommy"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);

        // Assert: the pages showing it reload with the new name; the others stay cached.
        let cats = app.get("/pets?species=cat").await;
        assert_eq!(
            (cats.cached(), cats.json["pets"][0]["name"].as_str()),
            (false, Some("Tommy"))
        );
        assert!(!cached(&app, "/pets").await);
        assert!(
            cached(&app, "/pets?species=dog").await,
            "the dog page does not show the cat"
        );
        assert!(
            cached(&app, "/stats").await,
            "a rename changes no aggregate"
        );
    }))
    .await;
}

#[tokio::test]
async fn a_happiness_change_reaches_the_stats_but_not_other_pages() {
    bounded(each_tiers(async |app| {
        let tom = app.insert("Tom", "cat", 2, 50).await;
        app.insert("Rex", "dog", 3, 60).await;
        warm(&app, &["/pets?species=dog", "/stats"]).await;

        app.patch(
            &format!("/pets/{tom}"),
            &serde_json::json!({"happiness": 90}),
        )
        .await;

        let stats = app.get("/stats").await;
        assert_eq!(
            (stats.cached(), stats.json["avg_happiness"].as_f64()),
            (false, Some(75.0))
        );
        assert!(cached(&app, "/pets?species=dog").await);
    }))
    .await;
}

#[tokio::test]
async fn a_species_change_moves_the_pet_between_the_lists_of_both_species() {
    bounded(each_tiers(async |app| {
        let tom = app.insert("Tom", "cat", 2, 50).await;
        app.insert("Rex", "dog", 3, 60).await;
        app.insert("Polly", "parrot", 9, 70).await;
        warm(
            &app,
            &[
                "/pets?species=cat",
                "/pets?species=dog",
                "/pets?species=parrot",
            ],
        )
        .await;

        app.patch(
            &format!("/pets/{tom}"),
            &serde_json::json!({"species": "dog"}),
        )
        .await;

        assert_eq!(app.get("/pets?species=cat").await.json["total"], 0);
        assert_eq!(app.get("/pets?species=dog").await.json["total"], 2);
        assert!(
            cached(&app, "/pets?species=parrot").await,
            "parrots are untouched"
        );
    }))
    .await;
}

#[tokio::test]
async fn a_create_and_a_delete_reach_their_species_the_unfiltered_lists_and_the_stats() {
    bounded(each_tiers(async |app| {
        app.insert("Rex", "dog", 3, 60).await;
        app.insert("Polly", "parrot", 9, 70).await;
        let pages = [
            "/pets?species=cat",
            "/pets?min_age=1",
            "/pets?species=parrot",
            "/stats",
        ];
        warm(&app, &pages).await;

        let r = app.post("/pets", &new_pet("Tom", "cat", 2, 40)).await;
        let tom = r.json["id"].as_i64().unwrap();
        assert_eq!(app.get("/pets?species=cat").await.json["total"], 1);
        assert_eq!(app.get("/pets?min_age=1").await.json["total"], 3);
        assert_eq!(app.get("/stats").await.json["total_pets"], 3);
        assert!(cached(&app, "/pets?species=parrot").await);

        warm(&app, &pages).await;
        assert_eq!(app.delete(&format!("/pets/{tom}")).await.status, 204);
        assert_eq!(app.get("/pets?species=cat").await.json["total"], 0);
        assert_eq!(app.get("/pets?min_age=1").await.json["total"], 2);
        assert_eq!(app.get("/stats").await.json["total_pets"], 2);
        assert!(cached(&app, "/pets?species=parrot").await);
    }))
    .await;
}

#[tokio::test]
async fn a_full_page_stays_cached_through_writes_past_its_last_pet_and_shows_current_totals() {
    bounded(each_tiers(async |app| {
        // Arrange: 300 cats (ids 1..=300: three buckets of ids) and a dog.
        for i in 0..300 {
            app.insert(&format!("c{i}"), "cat", i % 10, 50).await;
        }
        app.insert("Rex", "dog", 3, 60).await;
        let first = "/pets?species=cat&limit=5";
        let late = "/pets?species=cat&limit=5&offset=285";
        let last = "/pets?species=cat&limit=5&offset=298";
        let all = "/pets?limit=5";
        warm(&app, &[first, late, last, all]).await;

        // A new cat: its id is past every full page's last pet. The full pages of
        // other buckets of ids stay cached with the new total (the one in its bucket,
        // ids 256..=383, reloads: invalidation is per bucket); the last page (not full)
        // shows it.
        let r = app.post("/pets", &new_pet("Tom", "cat", 2, 40)).await;
        let tom = r.json["id"].as_i64().unwrap();
        for path in [first, all] {
            let page = app.get(path).await;
            assert!(page.cached(), "{path} survives a create past its end");
        }
        assert_eq!(
            page_ids(&app.get(late).await.json),
            vec![286, 287, 288, 289, 290]
        );
        assert_eq!(app.get(first).await.json["total"], 301);
        assert_eq!(app.get(all).await.json["total"], 302);
        let page = app.get(last).await;
        assert_eq!(
            (page.cached(), page_ids(&page.json)),
            (false, vec![299, 300, tom])
        );

        // Cat 290 becomes a dog: the first page (ids 1..=5, another bucket) stays cached
        // with one cat fewer; the page that showed it and the ones after reload.
        warm(&app, &[last]).await;
        app.patch("/pets/290", &serde_json::json!({"species": "dog"}))
            .await;
        let page = app.get(first).await;
        assert_eq!(
            (
                page.cached(),
                page_ids(&page.json),
                page.json["total"].as_i64()
            ),
            (true, vec![1, 2, 3, 4, 5], Some(300))
        );
        let page = app.get(late).await;
        assert_eq!(
            (page.cached(), page_ids(&page.json)),
            (false, vec![286, 287, 288, 289, 291])
        );
        assert_eq!(page_ids(&app.get(last).await.json), vec![300, tom]);
        assert_eq!(app.get("/pets?species=dog").await.json["total"], 2);

        // Cat 3 becomes a dog: every page of cats from the first on reloads.
        app.patch("/pets/3", &serde_json::json!({"species": "dog"}))
            .await;
        let page = app.get(first).await;
        assert_eq!(
            (
                page.cached(),
                page_ids(&page.json),
                page.json["total"].as_i64()
            ),
            (false, vec![1, 2, 4, 5, 6], Some(299))
        );
        // An age change moves a pet between age-filtered lists the same way.
        let young = "/pets?species=cat&max_age=0&limit=2";
        warm(&app, &[young]).await;
        assert_eq!(page_ids(&app.get(young).await.json), vec![1, 11]);
        app.patch("/pets/11", &serde_json::json!({"age": 7})).await;
        let page = app.get(young).await;
        assert_eq!((page.cached(), page_ids(&page.json)), (false, vec![1, 21]));
    }))
    .await;
}
