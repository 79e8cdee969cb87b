//! What a cached answer is keyed by: the route a path matches, the canonical query (its
//! parameters percent-decoded and sorted by name, repeated ones kept in order) and the
//! request headers the route varies by.

use http::{HeaderMap, HeaderName};

use crate::Params;

/// A route's path: literal segments and `{name}` segments that match any one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Pattern(Vec<Segment>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Any,
}

impl Pattern {
    /// `/pets/{id}`: `{…}` matches one segment; `*` alone matches every path.
    pub(super) fn parse(pattern: &str) -> Self {
        if pattern == "*" {
            return Self(Vec::new());
        }
        Self(
            segments(pattern)
                .map(|s| {
                    if s.starts_with('{') && s.ends_with('}') || s.starts_with(':') {
                        Segment::Any
                    } else {
                        Segment::Literal(s.to_owned())
                    }
                })
                .collect(),
        )
    }

    fn is_any(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn matches(&self, path: &str) -> bool {
        if self.is_any() {
            return true;
        }
        let mut got = segments(path);
        for want in &self.0 {
            match (want, got.next()) {
                (_, None) => return false,
                (Segment::Any, Some(s)) => {
                    if s.is_empty() {
                        return false;
                    }
                }
                (Segment::Literal(l), Some(s)) => {
                    if l != s {
                        return false;
                    }
                }
            }
        }
        got.next().is_none()
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.strip_prefix('/').unwrap_or(path).split('/')
}

/// A query string's parameters, percent-decoded (`+` is a space), sorted by name;
/// repeated parameters keep their order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// The canonical form of `query` (the part after `?`).
    #[must_use]
    pub fn parse(query: &str) -> Self {
        let mut pairs: Vec<(String, String)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(name), decode(value))
            })
            .collect();
        // Stable: repeated parameters keep their order.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        Self(pairs)
    }

    /// The first value of `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The names of its parameters, in order (a repeated one as often as it comes).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `name` to the one value `value` (for a route's normalising function).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.retain(|(n, _)| n != name);
        let at = self.0.partition_point(|(n, _)| n.as_str() < name);
        self.0.insert(at, (name.to_owned(), value.into()));
    }

    /// Only the parameters named in `names`.
    pub(super) fn only(&self, names: &[String]) -> Self {
        Self(
            self.0
                .iter()
                .filter(|(n, _)| names.contains(n))
                .cloned()
                .collect(),
        )
    }

    fn write(&self, out: &mut String) {
        for (name, value) in &self.0 {
            escaped(name, out);
            out.push('=');
            escaped(value, out);
            out.push('&');
        }
    }
}

/// Percent-decoding of a query component (`+` is a space); bytes that do not form
/// UTF-8 are replaced, so two such spellings share a key only if they decode alike.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: Option<&u8>) -> Option<u8> {
    match *b? {
        b @ b'0'..=b'9' => Some(b - b'0'),
        b @ b'a'..=b'f' => Some(b - b'a' + 10),
        b @ b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `s` with the key's separators escaped, so no two requests write the same key.
fn escaped(s: &str, out: &mut String) {
    for c in s.chars() {
        if matches!(c, '%' | '&' | '=' | '\n') {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
}

/// The key parameters of a request: its path, its canonical query and the values of
/// the headers in `vary` (a GET and a HEAD share them).
pub(super) fn params(
    path: &str,
    query: &Query,
    vary: &[HeaderName],
    headers: &HeaderMap,
) -> Params {
    let mut key = String::with_capacity(path.len() + 32);
    escaped(path, &mut key);
    key.push('\n');
    query.write(&mut key);
    for name in vary {
        key.push('\n');
        key.push_str(name.as_str());
        for value in headers.get_all(name) {
            key.push('=');
            escaped(&String::from_utf8_lossy(value.as_bytes()), &mut key);
        }
    }
    Params::new().with("request", key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_matches_its_paths_and_no_other() {
        let p = Pattern::parse("/pets/{id}");
        assert!(p.matches("/pets/12") && p.matches("/pets/abc"));
        for path in ["/pets", "/pets/", "/pets/1/2", "/pet/1", "/"] {
            assert!(!p.matches(path), "{path}");
        }
        let list = Pattern::parse("/pets");
        assert!(list.matches("/pets") && !list.matches("/pets/1") && !list.matches("/"));
        assert!(Pattern::parse("*").matches("/anything/at/all"));
        assert!(Pattern::parse("/").matches("/") && !Pattern::parse("/").matches("/x"));
    }

    #[test]
    fn the_query_is_decoded_sorted_and_keeps_repeats_in_order() {
        let a = Query::parse("b=2&a=x%20y&c=1&c=0&empty");
        assert_eq!(
            a.0,
            [
                ("a", "x y"),
                ("b", "2"),
                ("c", "1"),
                ("c", "0"),
                ("empty", "")
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
        assert_eq!(Query::parse("a=x+y&b=2&c=1&c=0&empty="), a);
        assert_ne!(Query::parse("c=0&c=1"), Query::parse("c=1&c=0"));
        assert_eq!(a.get("c"), Some("1"));
        assert_eq!(a.all("c").collect::<Vec<_>>(), ["1", "0"]);
        // Broken escapes are kept as they are, never a panic.
        assert_eq!(Query::parse("a=%&b=%4&c=%zz&d=%41").0.len(), 4);
        assert_eq!(Query::parse("d=%41").get("d"), Some("A"));
        assert_eq!(Query::parse("a=%").get("a"), Some("%"));
        let mut q = Query::parse("c=1&a=1&c=2");
        q.set("c", "3");
        q.set("b", "2");
        assert_eq!(q, Query::parse("a=1&b=2&c=3"));
    }

    #[test]
    fn requests_that_differ_get_different_keys() {
        let h = HeaderMap::new();
        let key = |path: &str, q: &str| params(path, &Query::parse(q), &[], &h);
        assert_eq!(key("/p", "a=1&b=2"), key("/p", "b=2&a=1"));
        // A value holding a separator does not collide with two parameters.
        assert_ne!(key("/p", "a=1%262"), key("/p", "a=1&2"));
        assert_ne!(key("/p", "a=1%3Db"), key("/p", "a%3D1=b"));
        assert_ne!(key("/p", ""), key("/q", ""));
        let mut json = HeaderMap::new();
        json.insert(http::header::ACCEPT, "application/json".parse().unwrap());
        let vary = [http::header::ACCEPT];
        assert_ne!(
            params("/p", &Query::default(), &vary, &json),
            params("/p", &Query::default(), &vary, &h)
        );
    }
}
