//! `/metrics` (Prometheus text) and `/cache/stats` (JSON).

use crate::helpers::{bounded, new_pet, spawn, spawn_with};

/// The value of the sample `line_start …` in `text`.
fn sample(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_http_requests_by_route_template_and_the_cache_per_tier() {
    bounded(async {
        let app = spawn_with("cache-aside", "l1+l2").await;
        let id = app.insert("Rex", "dog", 3, 50).await;
        for _ in 0..3 {
            app.get(&format!("/pets/{id}")).await;
        }
        app.get("/pets/999").await;
        app.post("/pets", &new_pet("Tom", "cat", 1, 1)).await;
        app.get("/nowhere").await;

        let r = app.get("/metrics").await;
        assert_eq!(r.status, 200);
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("text/plain; version=0.0.4"),
            "{:?}",
            r.header("content-type")
        );
        let m = &r.text;
        // HTTP: a histogram by method, route template (never the raw id) and status.
        let http = |method: &str, route: &str, status: u16| {
            format!(
                r#"http_server_request_duration_seconds_count{{http_request_method="{method}",http_response_status_code="{status}",http_route="{route}"}}"#
            )
        };
        assert_eq!(sample(m, &http("GET", "/pets/{id}", 200)), Some(3.0), "{m}");
        assert_eq!(sample(m, &http("GET", "/pets/{id}", 404)), Some(1.0), "{m}");
        assert_eq!(sample(m, &http("POST", "/pets", 201)), Some(1.0), "{m}");
        assert_eq!(sample(m, &http("GET", "unmatched", 404)), Some(1.0), "{m}");
        assert!(
            !m.contains(&format!("/pets/{id}\"")),
            "a raw path became a label: {m}"
        );
        assert!(
            m.contains("# TYPE http_server_request_duration_seconds histogram")
                && m.contains("http_server_request_duration_seconds_bucket{"),
            "{m}"
        );
        // Database statements: a histogram whose count is the number of statements.
        assert!(
            sample(m, r#"db_client_operation_duration_seconds_count{outcome="ok"}"#).unwrap()
                >= 3.0,
            "{m}"
        );
        let statements = sample(m, r#"db_client_operation_duration_seconds_count{outcome="ok"}"#)
            .unwrap_or(0.0)
            + sample(m, r#"db_client_operation_duration_seconds_count{outcome="error"}"#)
                .unwrap_or(0.0);
        assert_eq!(statements, app.state.metrics.db_queries() as f64, "{m}");
        // Cache, per tier, from the cache's own counters.
        assert_eq!(
            sample(m, r#"petshop_cache_hits_total{tier="l1"}"#),
            Some(2.0),
            "{m}"
        );
        assert!(
            sample(m, r#"petshop_cache_misses_total{tier="l2"}"#).unwrap() >= 1.0,
            "{m}"
        );
        assert!(sample(m, "petshop_cache_loader_calls_total").unwrap() >= 2.0);
        assert_eq!(sample(m, "petshop_cache_redis_breaker_open"), Some(0.0));
        assert_eq!(sample(m, "petshop_cache_backplane_connected"), Some(1.0));
        assert_eq!(sample(m, "petshop_cache_recovery_pending"), Some(0.0));
        assert_eq!(sample(m, "petshop_cache_recovery_replayed_total"), Some(0.0));
        // Ratios come from counters: no lifetime ratio that cannot be aggregated.
        assert!(!m.contains("_ratio"), "{m}");
        for (family, kind) in [
            ("petshop_cache_hits_total", "counter"),
            ("petshop_cache_recovery_overflows_total", "counter"),
            ("petshop_cache_backplane_published_total", "counter"),
            ("petshop_cache_recovery_pending", "gauge"),
            ("db_client_operation_duration_seconds", "histogram"),
        ] {
            assert!(
                m.contains(&format!("# TYPE {family} {kind}")),
                "{family}: {m}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_cache_hit_costs_no_database_query() {
    bounded(async {
        let app = spawn(&[]).await;
        let id = app.insert("Rex", "dog", 3, 50).await;
        let queries = || app.state.metrics.db_queries();
        app.get(&format!("/pets/{id}")).await;
        let before = queries();
        for _ in 0..5 {
            assert!(app.get(&format!("/pets/{id}")).await.cached());
        }
        assert_eq!(queries(), before);
    })
    .await;
}

#[tokio::test]
async fn cache_stats_report_hit_ratios_per_tier() {
    bounded(async {
        let app = spawn(&[]).await;
        let id = app.insert("Rex", "dog", 3, 50).await;
        for _ in 0..4 {
            app.get(&format!("/pets/{id}")).await;
        }
        let r = app.get("/cache/stats").await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            (r.json["topology"].as_str(), r.json["strategy"].as_str()),
            (Some("l1"), Some("cache-aside"))
        );
        // Two layers: the encoded answer (a miss, then three hits), and on its miss the
        // pet beneath it (a miss, loaded once).
        let l1 = &r.json["tiers"][0];
        assert_eq!(
            (
                l1["tier"].as_str(),
                l1["hits"].as_u64(),
                l1["misses"].as_u64()
            ),
            (Some("l1"), Some(3), Some(2))
        );
        assert_eq!(l1["hit_ratio"].as_f64(), Some(0.6));
        assert_eq!(r.json["loader"]["calls"], 2);
        assert!(r.json.get("backplane").is_none(), "{}", r.text);
    })
    .await;
}

#[tokio::test]
async fn every_statement_series_is_there_before_the_first_statement() {
    bounded(async {
        // A scraper subtracting two readings needs the series from the start.
        let app = spawn(&[]).await;
        let m = app.get("/metrics").await.text;
        let count = |outcome: &str| {
            sample(
                &m,
                &format!(r#"db_client_operation_duration_seconds_count{{outcome="{outcome}"}}"#),
            )
        };
        assert_eq!(
            count("ok"),
            Some(app.state.metrics.db_queries() as f64),
            "{m}"
        );
        assert_eq!(count("error"), Some(0.0), "{m}");
    })
    .await;
}

#[tokio::test]
async fn a_write_costs_redis_two_round_trips_counted_in_the_metrics_per_strategy() {
    bounded(async {
        for strategy in ["cache-aside", "write-through", "versioned"] {
            let app = spawn_with(strategy, "l1+l2").await;
            let id = app.insert("Rex", "dog", 3, 50).await;
            let write_trips = || async {
                let m = app.get("/metrics").await.text;
                sample(&m, r#"petshop_cache_redis_round_trips_total{kind="write"}"#).unwrap()
            };
            // A first write of each kind loads the scripts.
            app.patch(
                &format!("/pets/{id}"),
                &serde_json::json!({"happiness": 70}),
            )
            .await;
            let before = write_trips().await;
            let r = app
                .patch(
                    &format!("/pets/{id}"),
                    &serde_json::json!({"happiness": 71}),
                )
                .await;
            assert_eq!(r.status, 200);
            assert_eq!(write_trips().await - before, 2.0, "{strategy}: a PATCH");
            let before = write_trips().await;
            let r = app.post("/pets", &new_pet("Tom", "cat", 1, 1)).await;
            assert_eq!(r.status, 201);
            assert_eq!(write_trips().await - before, 2.0, "{strategy}: a create");
            let before = write_trips().await;
            let r = app.delete(&format!("/pets/{id}")).await;
            assert_eq!(r.status, 204);
            assert_eq!(write_trips().await - before, 2.0, "{strategy}: a delete");
        }
    })
    .await;
}

#[tokio::test]
async fn the_benchmark_ceiling_answers_its_body_with_one_redis_get() {
    bounded(async {
        let app = spawn_with("cache-aside", "l1+l2").await;
        let body = bytes::Bytes::from_static(br#"{"pets":[{"id":1,"name":"Rex"}]}"#);
        let route = petshop::api::ceiling::redis_get_route(
            poem::Route::new(),
            &app.state,
            "/bench/redis-get",
            body.clone(),
        );
        let client = poem::test::TestClient::new(route);
        let reads = || {
            let stats = app.state.cache.cache_stats();
            let l2 = stats.cache.tier("l2").unwrap().clone();
            l2.round_trips_of(cache::stats::RoundTrip::Read)
        };
        let first = client.get("/bench/redis-get").send().await;
        first.assert_status_is_ok();
        first.assert_bytes(body.to_vec()).await;
        let before = reads();
        let again = client.get("/bench/redis-get").send().await;
        again.assert_status_is_ok();
        again.assert_bytes(body.to_vec()).await;
        assert_eq!(reads() - before, 1, "one GET a request");
    })
    .await;
}
