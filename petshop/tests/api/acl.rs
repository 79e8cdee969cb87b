//! Least privilege: the shop on a Redis user with exactly the ACL the README gives
//! (`RedisAcl` for the `petshop` prefix), over `redis://petshop:…@`: reads from both
//! tiers, writes seen by another instance (the backplane), strict writes, the lease and
//! the rate limiter work; the admin flush needs more and says so (403, `NOPERM`).

use std::time::{Duration, Instant};

use cache::testing::RedisServer;
use cache::tier::RedisAcl;
use petshop::cache_layer::KEY_PREFIX;
use serde_json::json;

use crate::helpers::{TestApp, bounded, config, spawn_config};

const TOKEN: &str = "a-long-enough-admin-token";
const README: &str = include_str!("../../../README.md");

/// The shop's ACL: user `petshop`, keys under `petshop`.
fn acl() -> RedisAcl {
    RedisAcl::new("petshop", KEY_PREFIX).unwrap()
}

/// An app on `redis` as its ACL's user, with both tiers, strict writes, the lease and
/// the rate limiter.
async fn shop(redis: &RedisServer, db: &str) -> TestApp {
    let url = redis.url();
    let app = spawn_config(
        config(&[
            ("DATABASE_URL", db),
            ("REDIS_URL", &url),
            ("CACHE_TIERS", "l1+l2"),
            ("CACHE_STRATEGY", "write-through"),
            ("CACHE_WRITE_CONSISTENCY", "strict"),
            ("CACHE_LEASE", "on"),
            ("REDIS_OP_TIMEOUT", "2s"),
            ("RATE_LIMIT", "1000/1m"),
            ("ADMIN_TOKEN", TOKEN),
        ]),
        None,
    )
    .await;
    assert!(
        app.state
            .cache
            .wait_for_backplane(Duration::from_secs(10))
            .await,
        "the backplane did not subscribe as the least-privileged user"
    );
    app
}

/// `GET path` until `X-Cache` is `want` (L1 answers under a strict write's lease once
/// it has been granted).
async fn until(app: &TestApp, path: &str, want: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = app.get(path).await;
        assert_eq!(r.status, 200, "{}", r.text);
        if r.x_cache() == want {
            return r.json;
        }
        assert!(
            Instant::now() < deadline,
            "{path}: never {want}, still {}",
            r.x_cache()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn the_readme_gives_the_acl_the_code_needs() {
    let line = acl().line("PASSWORD");
    assert!(
        README.contains(&line),
        "README.md lacks the shop's ACL; it is now:\n{line}"
    );
    let flush: Vec<String> = acl()
        .with_flush()
        .commands()
        .into_iter()
        .skip(acl().commands().len())
        .map(|c| format!("+{c}"))
        .collect();
    assert!(README.contains(&flush.join(" ")), "{flush:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_runs_as_a_redis_user_with_exactly_its_acl_and_the_flush_says_what_it_lacks() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}?mode=rwc", dir.path().join("pets.db").display());
        let redis = RedisServer::spawn_with_acl(&acl());
        assert!(redis.url().starts_with("redis://petshop:"));
        let (a, b) = (shop(&redis, &db).await, shop(&redis, &db).await);

        // Reads: a miss, then L1; another instance reads the shared copy.
        let id = a.insert("Rex", "dog", 3, 50).await;
        let path = format!("/pets/{id}");
        assert_eq!(a.get(&path).await.x_cache(), "MISS");
        until(&a, &path, "HIT-L1").await;
        assert_eq!(b.get(&path).await.x_cache(), "HIT-L2");
        until(&b, &path, "HIT-L1").await;
        assert_eq!(a.get("/pets?species=dog").await.status, 200);
        until(&a, "/pets?species=dog", "HIT-L1").await;

        // A strict write through A: B drops its copy (the backplane) and serves the new one.
        let r = a.patch(&path, &json!({"name": "Max"})).await;
        assert_eq!(
            (r.status, r.json["name"].as_str()),
            (200, Some("Max")),
            "{}",
            r.text
        );
        let seen = until(&b, &path, "HIT-L1").await;
        assert_eq!(seen["name"], "Max");
        let stats = a.get("/cache/stats").await;
        assert_eq!(stats.json["recovery"]["pending"], 0, "{}", stats.text);
        assert_eq!(stats.json["tiers"][1]["errors"], 0, "{}", stats.text);
        // Every request so far was counted on Redis, as this user.
        let ready = a.get("/ready").await;
        assert_eq!(ready.json["redis"]["status"], "up", "{}", ready.text);
        assert_eq!(ready.json["rate_limit"], "shared", "{}", ready.text);
        let metrics = a.get("/metrics").await.text;
        let counted = |counter: &str| -> f64 {
            metrics
                .lines()
                .filter(|l| l.starts_with("petshop_rate_limit_requests_total{"))
                .filter(|l| l.contains(&format!("counter=\"{counter}\"")))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        assert!(
            counted("shared") > 0.0 && counted("local") == 0.0,
            "{metrics}"
        );

        // The flush needs SCAN, which the rule leaves out: a clear 403, nothing removed.
        let r = a.flush(Some(&format!("Bearer {TOKEN}"))).await;
        assert_eq!(r.status, 403, "{}", r.text);
        let error = r.json["error"].as_str().unwrap();
        assert!(
            error.contains("NOPERM") && error.contains("+scan"),
            "{error}"
        );
        assert!(error.contains("'scan'"), "{error}");
        let mut admin = redis.client().get_connection().unwrap();
        let entries: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{KEY_PREFIX}:*"))
            .query(&mut admin)
            .unwrap();
        assert!(!entries.is_empty(), "entries went from Redis");
        let after = a.get(&path).await;
        assert!(after.x_cache().starts_with("HIT-"), "{}", after.x_cache());
        let stats = a.get("/cache/stats").await;
        assert_eq!(stats.json["recovery"]["pending"], 0, "{}", stats.text);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_flush_in_its_acl_the_shop_flushes() {
    bounded(async {
        let redis = RedisServer::spawn_with_acl(&acl().with_flush());
        let app = shop(&redis, "sqlite::memory:").await;
        let id = app.insert("Rex", "dog", 3, 50).await;
        let path = format!("/pets/{id}");
        app.get(&path).await;
        until(&app, &path, "HIT-L1").await;

        let r = app.flush(Some(&format!("Bearer {TOKEN}"))).await;

        assert_eq!(
            (r.status, r.json["flushed"].as_bool()),
            (200, Some(true)),
            "{}",
            r.text
        );
        assert_eq!(app.get(&path).await.x_cache(), "MISS");
    })
    .await;
}
