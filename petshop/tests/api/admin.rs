//! `POST /admin/cache/flush`: disabled without `ADMIN_TOKEN`, bearer token otherwise.

use crate::helpers::{bounded, spawn, spawn_with_extra};

const TOKEN: &str = "a-long-enough-admin-token";

#[tokio::test]
async fn flush_is_disabled_with_403_while_admin_token_is_unset() {
    bounded(async {
        let app = spawn(&[]).await;
        for auth in [None, Some("Bearer anything-at-all-here")] {
            let r = app.flush(auth).await;
            assert_eq!(r.status, 403, "{}", r.text);
            assert!(r.json["error"].as_str().unwrap().contains("ADMIN_TOKEN"));
        }
    })
    .await;
}

#[tokio::test]
async fn flush_without_a_token_or_with_a_wrong_one_is_401() {
    bounded(async {
        let app = spawn(&[("ADMIN_TOKEN", TOKEN)]).await;
        let wrong = format!("Bearer {TOKEN}x");
        let basic = format!("Basic {TOKEN}");
        let short = "Bearer a";
        for auth in [
            None,
            Some(wrong.as_str()),
            Some(basic.as_str()),
            Some(short),
            Some(""),
        ] {
            let r = app.flush(auth).await;
            assert_eq!(r.status, 401, "{auth:?}: {}", r.text);
            assert!(r.json["error"].is_string(), "{}", r.text);
        }
    })
    .await;
}

#[tokio::test]
async fn flush_with_the_token_empties_every_tier() {
    bounded(async {
        let app = spawn_with_extra("cache-aside", "l1+l2", &[("ADMIN_TOKEN", TOKEN)]).await;
        let id = app.insert("Rex", "dog", 3, 50).await;
        let path = format!("/pets/{id}");
        app.get(&path).await;
        assert_eq!(app.get(&path).await.x_cache(), "HIT-L1");
        app.get("/stats").await;

        let keys = || {
            let mut con = app
                .redis
                .as_ref()
                .unwrap()
                .client()
                .get_connection()
                .unwrap();
            redis::cmd("KEYS")
                .arg("*petshop*")
                .query::<Vec<String>>(&mut con)
                .unwrap()
        };
        assert!(!keys().is_empty());

        let r = app.flush(Some(&format!("Bearer {TOKEN}"))).await;
        assert_eq!(
            (r.status, r.json["flushed"].as_bool()),
            (200, Some(true)),
            "{}",
            r.text
        );
        let left = keys();
        assert!(
            left.iter().all(|k| (k.starts_with("{petshop}:") && k.ends_with(":ver"))
                || ["{petshop}:gen", "{petshop}:tags", "{petshop}:tagseq", "{petshop}:leases"]
                    .contains(&k.as_str())
                || k.ends_with(":guard")),
            "flush left entries in Redis (only version counters, the generation and tag versions stay, so they never go back, and the instances' L1 leases; fill guards expire by themselves): {left:?}"
        );

        let r = app.get(&path).await;
        assert_eq!((r.x_cache(), r.cached()), ("MISS", false));
        assert_eq!(app.get("/stats").await.x_cache(), "MISS");
        assert_eq!(app.get(&path).await.x_cache(), "HIT-L1");
    })
    .await;
}
