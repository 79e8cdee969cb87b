//! The committed spec (`openapi/openapi.json`) matches what the service serves, and the
//! docs are served.

use serde_json::Value;

use crate::helpers::{bounded, spawn};

const SPEC_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");
const REGENERATE: &str = "cargo run -p petshop -- openapi --out openapi/openapi.json";

#[tokio::test]
async fn the_committed_spec_matches_the_served_one() {
    bounded(async {
        let app = spawn(&[]).await;
        let r = app.get("/openapi.json").await;
        assert_eq!(r.status, 200);
        let committed = std::fs::read_to_string(SPEC_FILE)
            .unwrap_or_else(|e| panic!("cannot read {SPEC_FILE} ({e}); generate it with `{REGENERATE}`"));
        let committed: Value = serde_json::from_str(&committed)
            .unwrap_or_else(|e| panic!("{SPEC_FILE} is not JSON ({e}); regenerate it with `{REGENERATE}`"));
        assert!(
            committed == r.json,
            "openapi/openapi.json differs from the spec the service serves: regenerate it with `{REGENERATE}` and commit it"
        );
        assert_eq!(petshop::api::spec_json().trim(), std::fs::read_to_string(SPEC_FILE).unwrap().trim(),
            "openapi/openapi.json is not formatted as the generator writes it: run `{REGENERATE}`");
    })
    .await;
}

#[tokio::test]
async fn the_spec_documents_every_endpoint_and_the_cache_headers() {
    bounded(async {
        let app = spawn(&[]).await;
        let spec = app.get("/openapi.json").await.json;
        let paths = spec["paths"].as_object().unwrap();
        for (path, method) in [
            ("/pets", "get"),
            ("/pets", "post"),
            ("/pets/{id}", "get"),
            ("/pets/{id}", "patch"),
            ("/pets/{id}", "delete"),
            ("/stats", "get"),
            ("/health", "get"),
            ("/ready", "get"),
            ("/metrics", "get"),
            ("/cache/stats", "get"),
            ("/admin/cache/flush", "post"),
        ] {
            assert!(
                paths.get(path).and_then(|p| p.get(method)).is_some(),
                "{method} {path} undocumented"
            );
        }
        for (path, method) in [("/pets/{id}", "get"), ("/pets", "get"), ("/stats", "get")] {
            let headers = &spec["paths"][path][method]["responses"]["200"]["headers"];
            let names: Vec<String> = headers
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.to_lowercase())
                .collect();
            assert!(
                names.contains(&"x-cache".into()) && names.contains(&"x-cache-strategy".into()),
                "{path}: {headers}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn swagger_ui_is_served_at_docs() {
    bounded(async {
        let app = spawn(&[]).await;
        let r = app.get("/docs").await;
        let r = if (300..400).contains(&r.status) {
            app.get(r.header("location").unwrap()).await
        } else {
            r
        };
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(
            r.text.to_lowercase().contains("swagger"),
            "{}",
            &r.text[..r.text.len().min(300)]
        );
    })
    .await;
}
