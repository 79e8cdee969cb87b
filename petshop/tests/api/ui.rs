//! The page's files over HTTP: types, caching headers, HEAD, and staying out of the
//! spec. (What the page does in a browser: `tests/ui`.)

use crate::helpers::{bounded, spawn};

#[tokio::test]
async fn the_page_and_its_files_are_served_with_their_types_and_no_cache() {
    bounded(async {
        let app = spawn(&[]).await;
        for (path, content_type, needle) in [
            (
                "/",
                "text/html; charset=utf-8",
                "<script type=\"module\" src=\"/ui/app.js\">",
            ),
            ("/ui/app.js", "text/javascript; charset=utf-8", "import"),
            ("/ui/style.css", "text/css; charset=utf-8", ":root"),
            ("/ui/favicon.svg", "image/svg+xml", "<svg"),
        ] {
            let r = app.get(path).await;
            assert_eq!(r.status, 200, "{path}: {}", r.text);
            assert_eq!(r.header("content-type"), Some(content_type), "{path}");
            assert_eq!(r.header("cache-control"), Some("no-cache"), "{path}");
            assert_eq!(
                r.header("x-content-type-options"),
                Some("nosniff"),
                "{path}"
            );
            assert!(r.header("etag").is_some(), "{path}");
            assert!(r.text.contains(needle), "{path}");
        }
        let csp = app.get("/").await;
        assert!(
            csp.header("content-security-policy")
                .is_some_and(|p| p.contains("default-src 'self'")),
            "the page may only talk to its own origin"
        );
    })
    .await;
}

#[tokio::test]
async fn an_unchanged_file_is_answered_304_and_head_has_no_body() {
    bounded(async {
        let app = spawn(&[]).await;
        let first = app.get("/ui/app.js").await;
        let etag = first.header("etag").unwrap();
        let again = app
            .send("GET", "/ui/app.js", &[("if-none-match", etag)], None)
            .await;
        assert_eq!((again.status, again.text.as_str()), (304, ""));
        assert_eq!(again.header("etag"), Some(etag));
        let other = app
            .send("GET", "/ui/app.js", &[("if-none-match", "\"stale\"")], None)
            .await;
        assert_eq!(other.status, 200);

        let head = app.request("HEAD", "/").await;
        assert_eq!(head.status, 200);
        assert_eq!(
            head.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert!(head.text.is_empty());
    })
    .await;
}

#[tokio::test]
async fn unknown_files_and_other_methods_get_the_apis_json_errors() {
    bounded(async {
        let app = spawn(&[]).await;
        let missing = app.get("/ui/nope.js").await;
        assert_eq!(missing.status, 404);
        assert!(missing.json["error"].as_str().unwrap().contains("nope.js"));
        // The page lives at `/` only.
        assert_eq!(app.get("/ui/index.html").await.status, 404);
        assert_eq!(app.request("POST", "/").await.status, 405);
        assert_eq!(app.request("DELETE", "/ui/app.js").await.status, 405);
        // The API nested at `/` still answers, and its 404s are unchanged.
        assert_eq!(app.get("/pets").await.status, 200);
        assert_eq!(app.get("/nowhere").await.json["error"], "no such route");
    })
    .await;
}

#[tokio::test]
async fn the_page_is_not_part_of_the_spec_and_is_counted_under_its_route() {
    bounded(async {
        let app = spawn(&[]).await;
        let spec = app.get("/openapi.json").await.json;
        let paths = spec["paths"].as_object().unwrap();
        assert!(
            paths.keys().all(|p| p != "/" && !p.starts_with("/ui")),
            "{paths:?}"
        );
        app.get("/").await;
        app.get("/ui/app.js").await;
        let metrics = app.get("/metrics").await.text;
        for route in [r#"route="/""#, r#"route="/ui/:file""#] {
            assert!(
                metrics.contains(route),
                "{route} not in /metrics:\n{metrics}"
            );
        }
    })
    .await;
}
