//! A write invalidates only what it can change: pages and stats carry tags.

use crate::helpers::{TestApp, bounded, new_pet, spawn_with};

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
