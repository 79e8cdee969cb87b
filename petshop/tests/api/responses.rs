//! The response cache in front of `GET /pets`: a hit is the stored bytes, written as
//! they are, with the `cached` marker and the `X-Cache` headers.

use crate::helpers::{bounded, spawn, spawn_with};

#[tokio::test]
async fn a_hit_is_the_stored_answer_marked_cached_with_its_headers() {
    bounded(async {
        for (strategy, tiers) in [
            ("cache-aside", "l1"),
            ("versioned", "l2"),
            ("write-through", "l1+l2"),
        ] {
            let app = spawn_with(strategy, tiers).await;
            app.insert("Rex", "dog", 3, 60).await;
            app.insert("Tom", "cat", 2, 50).await;
            let path = "/pets?species=dog&limit=5";

            let miss = app.get(path).await;
            let hit = app.get(path).await;

            assert_eq!(
                (miss.status, miss.x_cache(), miss.cached()),
                (200, "MISS", false)
            );
            let nearest = if tiers == "l2" { "HIT-L2" } else { "HIT-L1" };
            assert_eq!(
                (hit.status, hit.x_cache(), hit.cached()),
                (200, nearest, true)
            );
            assert_eq!(hit.data(), miss.data(), "{tiers}: the same answer");
            assert_eq!(hit.header("content-type"), miss.header("content-type"));
            assert_eq!(hit.header("x-cache-strategy"), Some(strategy));
            assert!(hit.header("x-request-id").is_some());
        }
    })
    .await;
}

#[tokio::test]
async fn encoded_queries_share_the_decoded_entry_and_bad_ones_get_the_handlers_errors() {
    bounded(async {
        let app = spawn(&[]).await;
        app.insert("Rex", "dog", 3, 60).await;
        // An encoded parameter is decoded as the handler decodes it: one entry.
        for (path, x_cache) in [
            ("/pets?limit=1%30", "MISS"),
            ("/pets?limit=1%30", "HIT-L1"),
            ("/pets?limit=10", "HIT-L1"),
        ] {
            let r = app.get(path).await;
            assert_eq!(
                (r.status, r.x_cache()),
                (200, x_cache),
                "{path}: {}",
                r.text
            );
            assert_eq!(r.json["limit"], 10);
        }
        // Invalid queries still get the handler's errors.
        let r = app.get("/pets?limit=0").await;
        assert_eq!(
            (r.status, r.json["field"].as_str()),
            (422, Some("limit")),
            "{}",
            r.text
        );
        let r = app.get("/pets?species=d0g").await;
        assert_eq!(r.status, 422, "{}", r.text);
    })
    .await;
}

#[tokio::test]
async fn equivalent_queries_share_one_cached_answer() {
    bounded(async {
        let app = spawn(&[]).await;
        app.insert("Rex", "dog", 3, 60).await;
        assert!(!app.get("/pets?species=dog").await.cached());
        for same in [
            "/pets?limit=10&species=dog",
            "/pets?offset=0&species=dog",
            "/pets?species=Dog",
        ] {
            let r = app.get(same).await;
            assert_eq!((r.x_cache(), r.cached()), ("HIT-L1", true), "{same}");
        }
        // A parameter the route does not take is refused, never answered from the cache.
        let r = app.get("/pets?species=dog&unknown=x").await;
        assert_eq!(
            (r.status, r.json["field"].as_str()),
            (422, Some("unknown")),
            "{}",
            r.text
        );
    })
    .await;
}
