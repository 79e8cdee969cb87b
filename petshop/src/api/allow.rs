//! The `Allow` header of a 405 (RFC 9110 §15.5.6): the methods the route serves.
//!
//! The router answers 405 without one, so the middleware adds it from this table: every
//! path of the spec with its operations, and the page's routes (`/`, `/ui/{file}`).
//! `HEAD` is listed wherever `GET` is: poem answers it with the `GET` handler. The same
//! table gives the spec's template of a path ([`spec_route`]) to label answers given
//! before the router ran (a 429 of the rate limiter).

use std::sync::OnceLock;

/// Routes outside the spec that answer 405 to other methods, with their methods.
const PAGE_ROUTES: &[(&str, &[&str])] = &[("/", &["GET"]), ("/ui/{file}", &["GET"])];

struct Route {
    /// The spec's template (`/pets/{id}`); `None` for the page's routes.
    template: Option<String>,
    segments: Vec<String>,
    allow: String,
}

fn routes() -> &'static [Route] {
    static ROUTES: OnceLock<Vec<Route>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let spec: serde_json::Value =
            serde_json::from_str(&crate::api::spec_json()).unwrap_or_default();
        let mut table: Vec<(String, Vec<String>, bool)> = spec["paths"]
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
                (path.clone(), methods, true)
            })
            .collect();
        table.extend(PAGE_ROUTES.iter().map(|(p, m)| {
            let methods = m.iter().map(|m| (*m).to_owned()).collect();
            ((*p).to_owned(), methods, false)
        }));
        table
            .into_iter()
            .map(|(path, mut methods, in_spec)| {
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".into());
                }
                Route {
                    segments: split(&path).map(str::to_owned).collect(),
                    template: in_spec.then_some(path),
                    allow: methods.join(", "),
                }
            })
            .collect()
    })
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

fn find(path: &str) -> Option<&'static Route> {
    let segments: Vec<&str> = split(path).collect();
    routes().iter().find(|r| {
        r.segments.len() == segments.len()
            && r.segments
                .iter()
                .zip(&segments)
                .all(|(t, s)| t.starts_with('{') || t == s)
    })
}

/// The methods `path` serves, as an `Allow` value; `None` for a path not in the table.
#[must_use]
pub fn allow(path: &str) -> Option<&'static str> {
    find(path).map(|r| r.allow.as_str())
}

/// The spec's template of `path` (`/pets/7` → `/pets/{id}`), for labelling an answer
/// given before the router saw the request; `None` outside the spec.
#[must_use]
pub fn spec_route(path: &str) -> Option<&'static str> {
    find(path).and_then(|r| r.template.as_deref())
}

#[cfg(test)]
mod tests {
    use super::{allow, spec_route};

    #[test]
    fn every_route_has_its_methods() {
        assert_eq!(allow("/pets"), Some("GET, POST, HEAD"));
        assert_eq!(allow("/pets/7"), Some("DELETE, GET, PATCH, HEAD"));
        assert_eq!(allow("/admin/cache/flush"), Some("POST"));
        assert_eq!(allow("/"), Some("GET, HEAD"));
        assert_eq!(allow("/ui/app.js"), Some("GET, HEAD"));
        assert_eq!(allow("/pets/7/x"), None);
    }

    #[test]
    fn spec_paths_have_their_template() {
        assert_eq!(spec_route("/pets/7"), Some("/pets/{id}"));
        assert_eq!(spec_route("/pets"), Some("/pets"));
        assert_eq!(spec_route("/ui/app.js"), None);
        assert_eq!(spec_route("/nope"), None);
    }
}
