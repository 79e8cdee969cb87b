//! The seed sequence for every strategy × topology, over every cached endpoint:
//! miss → hit → write → the change shows (never the old data) → hit again.

use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, bounded, spawn_with_extra};

pub struct Expect {
    strategy: &'static str,
    caching: bool,
    miss: &'static str,
    hit: &'static str,
}

impl Expect {
    pub fn new(strategy: &'static str, tiers: &str) -> Self {
        let (caching, miss, hit) = match tiers {
            "none" => (false, "BYPASS", "BYPASS"),
            "l2" => (true, "MISS", "HIT-L2"),
            _ => (true, "MISS", "HIT-L1"),
        };
        Self {
            strategy,
            caching,
            miss,
            hit,
        }
    }

    fn check_common(&self, r: &Reply, path: &str) {
        assert_eq!(r.status, 200, "GET {path}: {}", r.text);
        assert_eq!(
            r.header("x-cache-strategy"),
            Some(self.strategy),
            "GET {path}"
        );
    }

    /// GET `path` twice: the first must be a miss when `first_must_miss`; the second a
    /// hit (when caching) with the same data. Returns the first reply's data.
    async fn read_twice(&self, app: &TestApp, path: &str, first_must_miss: bool) -> Value {
        let first = app.get(path).await;
        self.check_common(&first, path);
        if first_must_miss || !self.caching {
            assert!(!first.cached(), "GET {path} first read: {}", first.text);
            assert_eq!(first.x_cache(), self.miss, "GET {path} first read");
        }
        let second = app.get(path).await;
        self.check_common(&second, path);
        assert_eq!(second.cached(), self.caching, "GET {path} second read");
        assert_eq!(
            second.x_cache(),
            if self.caching { self.hit } else { self.miss },
            "GET {path} second read"
        );
        assert_eq!(
            first.data(),
            second.data(),
            "GET {path}: a hit differs from the miss"
        );
        first.data()
    }
}

fn names(list: &Value) -> Vec<String> {
    list["pets"]
        .as_array()
        .expect("pets array")
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

fn species<'a>(stats: &'a Value, s: &str) -> &'a Value {
    stats["by_species"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["species"] == s)
        .unwrap_or(&Value::Null)
}

/// The seed's sequence over every cached endpoint and every write, on `app`, whose
/// database must be empty.
pub async fn seed_sequence(app: &TestApp, ex: &Expect) {
    let rex = app.insert("Rex", "dog", 3, 80).await;
    let tom = app.insert("Tom", "cat", 5, 40).await;
    let pet = format!("/pets/{rex}");
    let dogs = "/pets?species=dog&limit=10";

    // Reads: miss, then hit.
    let p = ex.read_twice(app, &pet, true).await;
    assert_eq!(
        (p["name"].as_str(), p["happiness"].as_i64()),
        (Some("Rex"), Some(80))
    );
    let l = ex.read_twice(app, dogs, true).await;
    assert_eq!(
        (names(&l), l["total"].as_u64()),
        (vec!["Rex".to_owned()], Some(1))
    );
    let all = ex.read_twice(app, "/pets", true).await;
    assert_eq!(all["total"], 2);
    let s = ex.read_twice(app, "/stats", true).await;
    assert_eq!(
        (s["total_pets"].as_u64(), s["avg_happiness"].as_f64()),
        (Some(2), Some(60.0))
    );

    // PATCH: every read shows the change at once.
    let r = app
        .patch(&pet, &json!({"happiness": 10, "name": "Rexy"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["happiness"], 10);
    let p = ex.read_twice(app, &pet, false).await;
    assert_eq!(
        (p["name"].as_str(), p["happiness"].as_i64()),
        (Some("Rexy"), Some(10))
    );
    let l = ex.read_twice(app, dogs, false).await;
    assert_eq!(names(&l), vec!["Rexy".to_owned()]);
    assert_eq!(l["pets"][0]["happiness"], 10);
    let s = ex.read_twice(app, "/stats", false).await;
    assert_eq!(s["avg_happiness"].as_f64(), Some(25.0));
    assert_eq!(species(&s, "dog")["avg_happiness"].as_f64(), Some(10.0));

    // POST: lists and stats include the new pet; it reads back.
    let r = app
        .post(
            "/pets",
            &json!({"name": "Fido", "species": "dog", "age": 1, "happiness": 70}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let fido = r.json["id"].as_i64().unwrap();
    assert_eq!(r.header("location"), Some(format!("/pets/{fido}").as_str()));
    let l = ex.read_twice(app, dogs, false).await;
    assert_eq!(
        (names(&l), l["total"].as_u64()),
        (vec!["Rexy".to_owned(), "Fido".to_owned()], Some(2))
    );
    let s = ex.read_twice(app, "/stats", false).await;
    assert_eq!(
        (
            s["total_pets"].as_u64(),
            species(&s, "dog")["count"].as_u64()
        ),
        (Some(3), Some(2))
    );
    let p = ex.read_twice(app, &format!("/pets/{fido}"), false).await;
    assert_eq!(p["name"], "Fido");

    // DELETE: the pet is gone everywhere.
    let tom_path = format!("/pets/{tom}");
    ex.read_twice(app, &tom_path, true).await;
    let r = app.delete(&tom_path).await;
    assert_eq!(r.status, 204, "{}", r.text);
    for _ in 0..2 {
        let r = app.get(&tom_path).await;
        assert_eq!(r.status, 404, "deleted pet still served: {}", r.text);
        assert!(r.json["error"].is_string());
    }
    let all = ex.read_twice(app, "/pets", false).await;
    assert_eq!(
        (all["total"].as_u64(), names(&all)),
        (Some(2), vec!["Rexy".to_owned(), "Fido".to_owned()])
    );
    let s = ex.read_twice(app, "/stats", false).await;
    assert_eq!(
        (s["total_pets"].as_u64(), species(&s, "cat")),
        (Some(2), &Value::Null)
    );

    // A pet created after its id was read as "not found" is served, not the 404.
    let next = fido + 1;
    assert_eq!(app.get(&format!("/pets/{next}")).await.status, 404);
    let r = app
        .post(
            "/pets",
            &json!({"name": "Late", "species": "cat", "age": 2, "happiness": 5}),
        )
        .await;
    assert_eq!(r.json["id"].as_i64(), Some(next));
    let p = ex.read_twice(app, &format!("/pets/{next}"), false).await;
    assert_eq!(p["name"], "Late");
}

/// The uncached endpoints answer the same under every configuration, and say which one.
async fn ops_endpoints(app: &TestApp, strategy: &str, tiers: &str) {
    let r = app.get("/health").await;
    assert_eq!((r.status, r.json["status"].as_str()), (200, Some("ok")));

    let r = app.get("/ready").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["status"], "ready", "{}", r.text);
    assert_eq!(r.json["database"]["status"], "up");
    let redis = if tiers.contains("l2") {
        "up"
    } else {
        "disabled"
    };
    assert_eq!(r.json["redis"]["status"], redis, "{}", r.text);

    let r = app.get("/cache/stats").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (r.json["strategy"].as_str(), r.json["topology"].as_str()),
        (Some(strategy), Some(tiers))
    );
    let tiers_seen: Vec<&str> = r.json["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tier"].as_str().unwrap())
        .collect();
    let expected: &[&str] = match tiers {
        "none" => &["none"],
        "l1" => &["l1"],
        "l2" => &["l2"],
        _ => &["l1", "l2"],
    };
    assert_eq!(tiers_seen, expected);
    assert!(r.json["loader"]["calls"].as_u64().unwrap() > 0);
    assert_eq!(
        r.json["backplane"]["connected"].as_bool(),
        (tiers == "l1+l2").then_some(true)
    );

    let r = app.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.text
            .contains("http_server_request_duration_seconds_count{http_request_method=\"GET\""),
        "{}",
        r.text
    );
    assert!(
        r.text.contains("petshop_cache_hits_total{tier="),
        "{}",
        r.text
    );
}

const TOKEN: &str = "matrix-admin-token-0001";

async fn run(strategy: &'static str, tiers: &'static str) {
    let app = spawn_with_extra(strategy, tiers, &[("ADMIN_TOKEN", TOKEN)]).await;
    let ex = Expect::new(strategy, tiers);
    seed_sequence(&app, &ex).await;
    ops_endpoints(&app, strategy, tiers).await;

    // A flush empties every tier: the next reads miss, then hit again, same data.
    let before = app.get("/stats").await.data();
    let r = app.flush(Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let after = ex.read_twice(&app, "/stats", true).await;
    assert_eq!(before, after);
    ex.read_twice(&app, "/pets", true).await;
}

macro_rules! matrix {
    ($($name:ident: $strategy:literal over $tiers:literal;)*) => {$(
        #[tokio::test]
        async fn $name() {
            bounded(run($strategy, $tiers)).await;
        }
    )*};
}

matrix! {
    cache_aside_without_a_cache_bypasses_every_read: "cache-aside" over "none";
    cache_aside_over_l1_serves_hits_and_never_stale_data: "cache-aside" over "l1";
    cache_aside_over_l2_serves_hits_and_never_stale_data: "cache-aside" over "l2";
    cache_aside_over_l1_and_l2_serves_hits_and_never_stale_data: "cache-aside" over "l1+l2";
    write_through_without_a_cache_bypasses_every_read: "write-through" over "none";
    write_through_over_l1_serves_hits_and_never_stale_data: "write-through" over "l1";
    write_through_over_l2_serves_hits_and_never_stale_data: "write-through" over "l2";
    write_through_over_l1_and_l2_serves_hits_and_never_stale_data: "write-through" over "l1+l2";
    versioned_without_a_cache_bypasses_every_read: "versioned" over "none";
    versioned_over_l1_serves_hits_and_never_stale_data: "versioned" over "l1";
    versioned_over_l2_serves_hits_and_never_stale_data: "versioned" over "l2";
    versioned_over_l1_and_l2_serves_hits_and_never_stale_data: "versioned" over "l1+l2";
}
