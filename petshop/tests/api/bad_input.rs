//! Client mistakes: each gets a 4xx with a JSON body (naming the field when there is
//! one), never a 5xx.

use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, bounded, new_pet, spawn};

/// Asserts `r` is a JSON error with `status` naming `field` (if given).
fn assert_error(r: &Reply, status: &[u16], field: Option<&str>, what: &str) {
    assert!(
        status.contains(&r.status),
        "{what}: status {} body {}",
        r.status,
        r.text
    );
    assert!(
        r.json["error"].is_string(),
        "{what}: no JSON error body: {}",
        r.text
    );
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("application/json"),
        "{what}: {:?}",
        r.header("content-type")
    );
    match field {
        Some(f) => assert_eq!(r.json["field"].as_str(), Some(f), "{what}: {}", r.text),
        // The spec says `field` is a string: an error about no field leaves it out.
        None => assert!(r.json.get("field").is_none(), "{what}: {}", r.text),
    }
}

async fn app_with_a_pet() -> (TestApp, i64) {
    let app = spawn(&[]).await;
    let id = app.insert("Rex", "dog", 3, 50).await;
    (app, id)
}

#[tokio::test]
async fn malformed_json_is_400() {
    bounded(async {
        let (app, id) = app_with_a_pet().await;
        for body in [
            &b"{"[..],
            b"{\"name\": }",
            b"not json",
            b"",
            b"[1,2]",
            b"\"a string\"",
        ] {
            let r = app
                .post_raw("/pets", Some("application/json"), body.to_vec())
                .await;
            assert_error(
                &r,
                &[400],
                None,
                &format!("POST {:?}", String::from_utf8_lossy(body)),
            );
            let r = app
                .send(
                    "PATCH",
                    &format!("/pets/{id}"),
                    &[("content-type", "application/json")],
                    Some(body.to_vec().into()),
                )
                .await;
            assert_error(&r, &[400], None, "PATCH malformed");
        }
    })
    .await;
}

#[tokio::test]
async fn wrong_typed_fields_are_rejected_naming_the_field() {
    bounded(async {
        let (app, id) = app_with_a_pet().await;
        let cases: [(&str, Value); 6] = [
            (
                "age",
                json!({"name": "A", "species": "cat", "age": "old", "happiness": 5}),
            ),
            (
                "age",
                json!({"name": "A", "species": "cat", "age": 2.5, "happiness": 5}),
            ),
            (
                "happiness",
                json!({"name": "A", "species": "cat", "age": 2, "happiness": null}),
            ),
            (
                "name",
                json!({"name": 7, "species": "cat", "age": 2, "happiness": 5}),
            ),
            (
                "species",
                json!({"name": "A", "species": ["cat"], "age": 2, "happiness": 5}),
            ),
            (
                "happiness",
                json!({"name": "A", "species": "cat", "age": 2, "happiness": true}),
            ),
        ];
        for (field, body) in &cases {
            let r = app.post("/pets", body).await;
            assert_error(&r, &[400, 422], Some(field), &format!("POST {body}"));
        }
        for (field, body) in [
            ("age", json!({"age": "x"})),
            ("name", json!({"name": 1})),
            ("happiness", json!({"happiness": null})),
            ("species", json!({"species": null})),
        ] {
            let r = app.patch(&format!("/pets/{id}"), &body).await;
            assert_error(&r, &[400, 422], Some(field), &format!("PATCH {body}"));
        }
    })
    .await;
}

#[tokio::test]
async fn out_of_range_fields_are_422_naming_the_field() {
    bounded(async {
        let (app, id) = app_with_a_pet().await;
        let long = "x".repeat(101);
        let cases = [
            ("age", new_pet("A", "cat", -1, 5)),
            ("age", new_pet("A", "cat", 101, 5)),
            ("happiness", new_pet("A", "cat", 1, 101)),
            ("happiness", new_pet("A", "cat", 1, -5)),
            ("name", new_pet("", "cat", 1, 5)),
            ("name", new_pet(&long, "cat", 1, 5)),
            ("species", new_pet("A", "", 1, 5)),
            ("species", new_pet("A", "  ", 1, 5)),
            ("species", new_pet("A", "cat1", 1, 5)),
            ("species", new_pet("A", "0", 1, 5)),
            ("species", new_pet("A", "cat\n", 1, 5)),
            ("species", new_pet("A", "ca\tt", 1, 5)),
            ("species", new_pet("A", "ca\u{0}t", 1, 5)),
            ("species", new_pet("A", "cat--dog", 1, 5)),
            ("species", new_pet("A", "猫", 1, 5)),
            ("species", new_pet("A", &"c".repeat(41), 1, 5)),
        ];
        for (field, body) in &cases {
            let r = app.post("/pets", body).await;
            assert_error(&r, &[422], Some(field), &format!("POST {body}"));
        }
        let r = app
            .post("/pets", &json!({"name": "A", "species": "cat", "age": 1}))
            .await;
        assert_error(&r, &[400, 422], Some("happiness"), "POST without happiness");
        let r = app
            .post(
                "/pets",
                &json!({"name": "A", "species": "cat", "age": 1, "happiness": 1, "colour": "red"}),
            )
            .await;
        assert_error(
            &r,
            &[400, 422],
            Some("colour"),
            "POST with an unknown field",
        );

        let r = app
            .patch(&format!("/pets/{id}"), &json!({"happiness": 1000}))
            .await;
        assert_error(&r, &[422], Some("happiness"), "PATCH out of range");

        // Nothing was changed by the refused requests.
        let r = app.get(&format!("/pets/{id}")).await;
        assert_eq!((r.status, r.json["happiness"].as_i64()), (200, Some(50)));
        assert_eq!(app.get("/pets").await.json["total"], 1);
    })
    .await;
}

#[tokio::test]
async fn bad_query_and_path_parameters_are_rejected_naming_them() {
    bounded(async {
        let (app, _) = app_with_a_pet().await;
        let too_many_ids = format!(
            "/pets?ids={}",
            (1..=101)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        let cases = [
            ("/pets?limit=0", "limit"),
            ("/pets?limit=101", "limit"),
            ("/pets?limit=ten", "limit"),
            ("/pets?limit=-1", "limit"),
            ("/pets?offset=-1", "offset"),
            ("/pets?offset=x", "offset"),
            ("/pets?min_age=-1", "min_age"),
            ("/pets?max_age=1000", "max_age"),
            ("/pets?min_age=abc", "min_age"),
            ("/pets?species=d0g", "species"),
            ("/pets?species=d%09g", "species"),
            ("/pets?species=", "species"),
            ("/pets?specis=cat", "specis"),
            ("/pets?ids=", "ids"),
            ("/pets?ids=1,,2", "ids"),
            ("/pets?ids=one", "ids"),
            ("/pets?ids=1.5", "ids"),
            ("/pets?ids=99999999999999999999", "ids"),
            (&*too_many_ids, "ids"),
            ("/pets/abc", "id"),
            ("/pets/1.5", "id"),
            ("/pets/99999999999999999999", "id"),
        ];
        for (path, field) in cases {
            let r = app.get(path).await;
            assert_error(&r, &[400, 422], Some(field), &format!("GET {path}"));
        }
        // Valid edges are accepted.
        for path in [
            "/pets?limit=1",
            "/pets?limit=100&offset=0",
            "/pets?min_age=0&max_age=100",
            "/pets?species=dog",
            "/pets?species=Guinea%20pig",
            // Nothing is above 5 and below 2: an empty page, not an error.
            "/pets?min_age=5&max_age=2",
            "/pets?ids=1",
            "/pets?ids=1,%202,3",
            "/pets?ids=1&species=cat&limit=5",
        ] {
            assert_eq!(app.get(path).await.status, 200, "GET {path}");
        }
    })
    .await;
}

#[tokio::test]
async fn unknown_ids_are_404_json_for_every_method() {
    bounded(async {
        let (app, _) = app_with_a_pet().await;
        for _ in 0..2 {
            // The second read is answered from the negative cache: still a 404.
            assert_error(
                &app.get("/pets/424242").await,
                &[404],
                None,
                "GET unknown id",
            );
        }
        let r = app.patch("/pets/424242", &json!({"age": 3})).await;
        assert_error(&r, &[404], None, "PATCH unknown id");
        assert_error(
            &app.delete("/pets/424242").await,
            &[404],
            None,
            "DELETE unknown id",
        );
        assert_error(&app.get("/pets/-1").await, &[404], None, "GET negative id");
        assert_error(
            &app.get("/no/such/route").await,
            &[404],
            None,
            "unknown route",
        );
        let r = app.request("PUT", "/pets/1").await;
        assert_error(&r, &[405], None, "wrong method");
        assert_eq!(r.header("allow"), Some("DELETE, GET, PATCH, HEAD"));
        for (method, path, allow) in [
            ("DELETE", "/pets", "GET, POST, HEAD"),
            ("TRACE", "/health", "GET, HEAD"),
            ("GET", "/admin/cache/flush", "POST"),
            ("POST", "/", "GET, HEAD"),
        ] {
            let r = app.request(method, path).await;
            assert_eq!(r.status, 405, "{method} {path}");
            assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
        }
    })
    .await;
}

#[tokio::test]
async fn bodies_over_64_kib_are_413_whether_sized_or_chunked() {
    bounded(async {
        let (app, id) = app_with_a_pet().await;
        let big = format!(
            r#"{{"name": "{}", "species": "cat", "age": 1, "happiness": 1}}"#,
            "x".repeat(70 * 1024)
        );
        let r = app
            .post_raw("/pets", Some("application/json"), big.clone().into_bytes())
            .await;
        assert_error(&r, &[413], None, "POST 70 KiB");

        // A body of unknown length (chunked): bounded while it is read.
        let stream = poem::Body::from_async_read(std::io::Cursor::new(big.clone().into_bytes()));
        let r = app
            .send(
                "PATCH",
                &format!("/pets/{id}"),
                &[("content-type", "application/json")],
                Some(stream),
            )
            .await;
        assert_error(&r, &[413], None, "PATCH chunked 70 KiB");

        // Just under the limit is read (and refused for its content, not its size).
        let under = format!(
            r#"{{"name": "{}", "species": "cat", "age": 1, "happiness": 1}}"#,
            "x".repeat(60 * 1024)
        );
        let r = app
            .post_raw("/pets", Some("application/json"), under.into_bytes())
            .await;
        assert_error(&r, &[422], Some("name"), "POST 60 KiB");
    })
    .await;
}

#[tokio::test]
async fn bodies_not_sent_as_json_are_415() {
    bounded(async {
        let (app, _) = app_with_a_pet().await;
        let body = new_pet("A", "cat", 1, 1).to_string().into_bytes();
        for ct in [Some("text/plain"), Some("application/xml"), None] {
            let r = app.post_raw("/pets", ct, body.clone()).await;
            assert_error(&r, &[415], None, &format!("content type {ct:?}"));
        }
    })
    .await;
}

#[tokio::test]
async fn species_are_taken_as_typed_and_stored_normalised() {
    bounded(async {
        let app = spawn(&[]).await;
        for (typed, stored) in [
            ("  Guinea   Pig ", "guinea pig"),
            ("bearded-dragon", "bearded-dragon"),
            ("Bichon Frisé", "bichon frisé"),
            ("Perroquet gris d'Afrique", "perroquet gris d'afrique"),
        ] {
            let r = app.post("/pets", &new_pet("A", typed, 1, 1)).await;
            assert_eq!(r.status, 201, "{typed:?}: {}", r.text);
            assert_eq!(r.json["species"], stored, "{typed:?}");
        }
        // The filter is normalised the same way, through either path of the list.
        for query in ["GUINEA%20PIG", "guinea+pig", "Guinea%20Pig%20%20"] {
            let r = app.get(&format!("/pets?species={query}")).await;
            assert_eq!(
                (r.status, r.json["total"].as_u64()),
                (200, Some(1)),
                "{query}: {}",
                r.text
            );
        }
        let r = app.get("/pets?species=Bearded-Dragon").await;
        assert_eq!(r.json["total"], 1, "{}", r.text);
        let id = r.json["pets"][0]["id"].as_i64().unwrap();
        let r = app
            .patch(
                &format!("/pets/{id}"),
                &json!({"species": " Leopard Gecko"}),
            )
            .await;
        assert_eq!(
            (r.status, r.json["species"].as_str()),
            (200, Some("leopard gecko"))
        );
    })
    .await;
}

#[tokio::test]
async fn an_empty_patch_changes_nothing_and_answers_the_pet() {
    bounded(async {
        let (app, id) = app_with_a_pet().await;
        let before = app.get(&format!("/pets/{id}")).await;
        let r = app.patch(&format!("/pets/{id}"), &json!({})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["updated_at"], before.json["updated_at"]);
        assert_eq!(r.json["name"], "Rex");
        let r = app.patch("/pets/424242", &json!({})).await;
        assert_error(&r, &[404], None, "empty PATCH of an unknown id");
    })
    .await;
}
