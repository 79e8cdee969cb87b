//! The `Allow` header of a 405 (RFC 9110 §15.5.6): the methods the route serves.
//!
//! The router answers 405 without one, so the middleware adds it from this table: every
//! path of the spec with its operations, and the page's routes (`/`, `/ui/{file}`).
//! `HEAD` is listed wherever `GET` is: poem answers it with the `GET` handler.

use std::sync::OnceLock;

/// Routes outside the spec that answer 405 to other methods, with their methods.
const PAGE_ROUTES: &[(&str, &[&str])] = &[("/", &["GET"]), ("/ui/{file}", &["GET"])];

struct Route {
    segments: Vec<String>,
    allow: String,
}

fn routes() -> &'static [Route] {
    static ROUTES: OnceLock<Vec<Route>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let spec: serde_json::Value =
            serde_json::from_str(&crate::api::spec_json()).unwrap_or_default();
        let mut table: Vec<(String, Vec<String>)> = spec["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(path, ops)| {
                let methods = ops
                    .as_object()
                    .into_iter()
                    .flat_map(|o| o.keys())
                    .map(|m| m.to_uppercase())
                    .collect();
                (path.clone(), methods)
            })
            .collect();
        table.extend(
            PAGE_ROUTES
                .iter()
                .map(|(p, m)| ((*p).to_owned(), m.iter().map(|m| (*m).to_owned()).collect())),
        );
        table
            .into_iter()
            .map(|(path, mut methods)| {
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".into());
                }
                Route {
                    segments: split(&path).map(str::to_owned).collect(),
                    allow: methods.join(", "),
                }
            })
            .collect()
    })
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// The methods `path` serves, as an `Allow` value; `None` for a path not in the table.
#[must_use]
pub fn allow(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = split(path).collect();
    routes()
        .iter()
        .find(|r| {
            r.segments.len() == segments.len()
                && r.segments
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t.starts_with('{') || t == s)
        })
        .map(|r| r.allow.as_str())
}

#[cfg(test)]
mod tests {
    use super::allow;

    #[test]
    fn every_route_has_its_methods() {
        assert_eq!(allow("/pets"), Some("GET, POST, HEAD"));
        assert_eq!(allow("/pets/7"), Some("DELETE, GET, PATCH, HEAD"));
        assert_eq!(allow("/admin/cache/flush"), Some("POST"));
        assert_eq!(allow("/"), Some("GET, HEAD"));
        assert_eq!(allow("/ui/app.js"), Some("GET, HEAD"));
        assert_eq!(allow("/pets/7/x"), None);
    }
}
