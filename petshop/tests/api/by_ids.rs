//! `GET /pets?ids=..`: many pets in one request, through one batch read of the cache.

use serde_json::json;

use crate::helpers::{TestApp, bounded, new_pet, page_ids, spawn_with};

fn loads(app: &TestApp) -> u64 {
    app.state.cache.client().stats().cache.loader.calls
}

async fn pets_by_ids_come_in_the_order_asked_from_one_query_then_from_the_cache(tiers: &str) {
    bounded(async {
        // Arrange: three pets.
        let app = spawn_with("cache-aside", tiers).await;
        let mut made = Vec::new();
        for name in ["Rex", "Tom", "Kit"] {
            made.push(
                app.post("/pets", &new_pet(name, "cat", 2, 50)).await.json["id"]
                    .as_i64()
                    .unwrap(),
            );
        }
        let (a, b, c) = (made[0], made[1], made[2]);
        let path = format!("/pets?ids={c},{a},999999,{c}");
        let hit = if tiers == "l2" { "HIT-L2" } else { "HIT-L1" };

        // Act: the same batch twice.
        let before = loads(&app);
        let first = app.get(&path).await;
        let after_first = loads(&app);
        let again = app.get(&path).await;

        // Assert: in the order asked, each once, the unknown id left out; one load, then
        // none.
        assert_eq!(first.status, 200, "{tiers}: {}", first.text);
        assert_eq!(page_ids(&first.json), vec![c, a], "{tiers}");
        assert_eq!(
            (
                &first.json["total"],
                &first.json["limit"],
                &first.json["offset"]
            ),
            (&json!(2), &json!(3), &json!(0)),
            "{tiers}"
        );
        assert_eq!(first.header("x-cache"), Some("MISS"), "{tiers}");
        assert_eq!(first.json["cached"], json!(false), "{tiers}");
        assert_eq!(
            after_first - before,
            1,
            "{tiers}: one loader call for the batch"
        );
        assert_eq!(page_ids(&again.json), vec![c, a], "{tiers}");
        assert_eq!(again.header("x-cache"), Some(hit), "{tiers}");
        assert_eq!(again.json["cached"], json!(true), "{tiers}");
        assert_eq!(loads(&app), after_first, "{tiers}");

        // The list's filters apply to the batch; its page does not.
        let cats = app
            .get(&format!("/pets?ids={c},{a}&species=cat&limit=1&offset=5"))
            .await;
        assert_eq!(page_ids(&cats.json), vec![c, a], "{tiers}");
        let dogs = app.get(&format!("/pets?ids={c},{a}&species=dog")).await;
        assert_eq!(
            (dogs.status, page_ids(&dogs.json)),
            (200, vec![]),
            "{tiers}"
        );
        let old = app.get(&format!("/pets?ids={c},{a}&min_age=3")).await;
        assert_eq!(page_ids(&old.json), Vec::<i64>::new(), "{tiers}");
        let settled = loads(&app);

        // Act: a pet of the batch is renamed; one not in it too.
        assert_eq!(
            app.patch(&format!("/pets/{a}"), &json!({"name": "Max"}))
                .await
                .status,
            200
        );
        assert_eq!(
            app.patch(&format!("/pets/{b}"), &json!({"name": "Sam"}))
                .await
                .status,
            200
        );

        // Assert: the next batch has the new name, from one load of that pet.
        let after = app.get(&path).await;
        assert_eq!(after.json["pets"][1]["name"], json!("Max"), "{tiers}");
        assert_eq!(after.header("x-cache"), Some("MISS"), "{tiers}");
        assert_eq!(loads(&app) - settled, 1, "{tiers}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_ids_on_l1() {
    pets_by_ids_come_in_the_order_asked_from_one_query_then_from_the_cache("l1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_ids_on_l2() {
    pets_by_ids_come_in_the_order_asked_from_one_query_then_from_the_cache("l2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_ids_without_a_cache_reads_the_database() {
    bounded(async {
        let app = spawn_with("cache-aside", "none").await;
        let id = app.post("/pets", &new_pet("Rex", "dog", 2, 50)).await.json["id"]
            .as_i64()
            .unwrap();
        for _ in 0..2 {
            let r = app.get(&format!("/pets?ids={id}")).await;
            assert_eq!((r.status, page_ids(&r.json)), (200, vec![id]));
            assert_eq!(r.header("x-cache"), Some("BYPASS"));
        }
    })
    .await;
}
