//! The value parsers of the settings: each turns one variable's text into its type,
//! or says what is wrong and which values are allowed.
//!
//! An empty (or blank) value means the default, so every parser that has one takes it
//! as its first argument: clap hands an empty variable to the parser as it is.

use std::net::SocketAddr;
use std::time::Duration;

use cache::Ttl;

use super::{RateLimit, Strategy, Topology, TrustedProxies, WriteConsistency};

/// A parser's verdict: the value, or what is wrong with the text.
pub(super) type Parsed<T> = Result<T, String>;

/// `text` trimmed, or `default` when it is blank.
fn or_default<'a>(text: &'a str, default: &'a str) -> &'a str {
    match text.trim() {
        "" => default,
        t => t,
    }
}

pub(super) fn database_url(text: &str, default: &str) -> Parsed<String> {
    let url = or_default(text, default);
    if ["sqlite:", "postgres://", "postgresql://"]
        .iter()
        .any(|p| url.starts_with(p))
    {
        Ok(url.to_owned())
    } else {
        Err(format!(
            "{:?} is not supported: use sqlite:… (e.g. {default}) or postgres://…",
            super::redact_url(url)
        ))
    }
}

/// `REDIS_URL`; empty is kept empty (unset: no Redis).
pub(super) fn redis_url(text: &str) -> Parsed<String> {
    let url = text.trim();
    if url.is_empty() || url.starts_with("redis://") || url.starts_with("rediss://") {
        Ok(url.to_owned())
    } else {
        Err(format!(
            "{:?} must start with redis:// or rediss://",
            super::redact_url(url)
        ))
    }
}

/// A file's path (`REDIS_TLS_*_FILE`); empty is kept empty (unset). The file is read
/// once the settings are validated.
pub(super) fn path(text: &str) -> Parsed<String> {
    Ok(text.trim().to_owned())
}

/// The seed nodes of a Redis Cluster (`REDIS_CLUSTER_NODES`); empty: none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterNodes(pub Vec<String>);

/// `REDIS_CLUSTER_NODES`: comma-separated `redis://` or `rediss://` URLs of one or more
/// of the cluster's nodes (`redis://h1:7000,redis://h2:7000`); the rest are discovered.
/// Empty is kept empty (no cluster).
pub(super) fn cluster_nodes(text: &str) -> Parsed<ClusterNodes> {
    if text.trim().is_empty() {
        return Ok(ClusterNodes::default());
    }
    let nodes: Vec<String> = text.split(',').map(|n| n.trim().to_owned()).collect();
    // A node is `redis[s]://[user:password@]host:port`: a known scheme and a host.
    let is_node = |n: &str| {
        n.split_once("://").is_some_and(|(scheme, rest)| {
            ["redis", "rediss"].contains(&scheme)
                && !rest.rsplit('@').next().unwrap_or_default().is_empty()
        })
    };
    match nodes.iter().find(|n| !is_node(n)) {
        Some(bad) => Err(format!(
            "{:?} is not a node URL: use comma-separated redis://host:port (or rediss://) URLs of the cluster's nodes",
            super::redact_url(bad)
        )),
        None => Ok(ClusterNodes(nodes)),
    }
}

/// `CACHE_TIERS`: `auto` (or empty) leaves the choice to `REDIS_URL`.
pub(super) fn tiers(text: &str) -> Parsed<Option<Topology>> {
    match or_default(text, "auto") {
        "auto" => Ok(None),
        v => v
            .parse::<Topology>()
            .map(Some)
            .map_err(|_| format!("{v:?} is not one of: none, l1, l2, l1+l2 (or auto)")),
    }
}

pub(super) fn strategy(text: &str, default: &str) -> Parsed<Strategy> {
    let v = or_default(text, default);
    v.parse::<Strategy>()
        .map_err(|_| format!("{v:?} is not one of: cache-aside, write-through, versioned"))
}

pub(super) fn consistency(text: &str, default: &str) -> Parsed<WriteConsistency> {
    let v = or_default(text, default);
    v.parse::<WriteConsistency>()
        .map_err(|_| format!("{v:?} is not one of: available, strict"))
}

pub(super) fn on_off(text: &str, default: &str) -> Parsed<bool> {
    match or_default(text, default) {
        "off" => Ok(false),
        "on" => Ok(true),
        v => Err(format!("{v:?} is not one of: off, on")),
    }
}

pub(super) fn log_json(text: &str, default: &str) -> Parsed<bool> {
    match or_default(text, default) {
        "text" => Ok(false),
        "json" => Ok(true),
        v => Err(format!("{v:?} is not one of: text, json")),
    }
}

fn duration(v: &str) -> Parsed<Duration> {
    humantime::parse_duration(v).map_err(|_| {
        format!("{v:?} is not a duration: use a number with a unit, e.g. 50ms, 5s, 1m")
    })
}

/// A duration between `min` and `max`.
pub(super) fn bounded_duration(
    text: &str,
    default: &str,
    min: Duration,
    max: Duration,
) -> Parsed<Duration> {
    let v = or_default(text, default);
    let d = duration(v)?;
    if d < min || d > max {
        return Err(format!(
            "{v:?} is out of range: between {min:?} and {max:?}"
        ));
    }
    Ok(d)
}

/// `off` (or empty), or a duration between `min` and `max`.
pub(super) fn optional_duration(
    text: &str,
    min: Duration,
    max: Duration,
) -> Parsed<Option<Duration>> {
    match or_default(text, "off") {
        "off" => Ok(None),
        v => {
            let d = humantime::parse_duration(v)
                .map_err(|_| format!("{v:?} is not off or a duration such as 500ms, 30s, 5m"))?;
            if d < min || d > max {
                return Err(format!(
                    "{v:?} is out of range: off, or between {min:?} and {max:?}"
                ));
            }
            Ok(Some(d))
        }
    }
}

pub(super) fn ttl(text: &str, default: &str) -> Parsed<Ttl> {
    let d = duration(or_default(text, default))?;
    Ttl::new(d).map_err(|_| format!("{d:?} is out of range: a TTL is between 1ms and 30 days"))
}

pub(super) fn refresh_ahead(text: &str) -> Parsed<Option<u8>> {
    match or_default(text, "off") {
        "off" => Ok(None),
        v => v
            .parse::<u8>()
            .ok()
            .filter(|p| (1..=99).contains(p))
            .map(Some)
            .ok_or_else(|| {
                format!("{v:?} is not off or an integer from 1 to 99 (percent of STATS_TTL left)")
            }),
    }
}

pub(super) fn percent(text: &str, default: &str) -> Parsed<u8> {
    let v = or_default(text, default);
    v.parse::<u8>()
        .ok()
        .filter(|p| *p <= 100)
        .ok_or_else(|| format!("{v:?} is not an integer from 0 to 100"))
}

pub(super) fn bytes(text: &str, default: &str) -> Parsed<u64> {
    let v = or_default(text, default);
    parse_bytes(v).ok_or_else(|| {
        format!("{v:?} is not a size: use bytes (67108864) or KiB/MiB/GiB (64MiB), above 0")
    })
}

pub(super) fn bind(text: &str, default: &str) -> Parsed<SocketAddr> {
    let v = or_default(text, default);
    v.parse::<SocketAddr>()
        .map_err(|_| format!("{v:?} is not an address such as 127.0.0.1:8000 or 0.0.0.0:8000"))
}

/// `ADMIN_TOKEN`; empty is kept empty (unset: admin endpoints disabled).
pub(super) fn admin_token(text: &str) -> Parsed<String> {
    let t = text.trim();
    if !t.is_empty() && t.len() < 16 {
        return Err(
            "is too short: use at least 16 characters (or leave it unset to disable admin endpoints)"
                .into(),
        );
    }
    Ok(t.to_owned())
}

/// The most requests `RATE_LIMIT` may allow per window.
const MAX_RATE_LIMIT: u64 = 1_000_000_000;
/// The bounds of a `RATE_LIMIT` window.
const RATE_WINDOW: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(24 * 3600));

/// `RATE_LIMIT`: `off` (or empty), or `<requests>/<window>` (`100/1m`, `20/1s`; a bare
/// unit is one of it: `100/m`).
pub(super) fn rate_limit(text: &str) -> Parsed<Option<RateLimit>> {
    let v = match or_default(text, "off") {
        "off" => return Ok(None),
        v => v,
    };
    let bad = |why: &str| {
        format!(
            "{v:?} {why}: use off or <requests>/<window>, e.g. 100/1m or 20/1s \
             (1 to {MAX_RATE_LIMIT} requests, a window of 1s to 24h)"
        )
    };
    let (requests, window) = v.split_once('/').ok_or_else(|| bad("is not a rate"))?;
    let requests = requests
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=MAX_RATE_LIMIT).contains(n))
        .ok_or_else(|| bad("has no valid number of requests"))?;
    let window = window.trim();
    let window = humantime::parse_duration(window)
        .or_else(|_| humantime::parse_duration(&format!("1{window}")))
        .map_err(|_| bad("has no valid window"))?;
    if window < RATE_WINDOW.0 || window > RATE_WINDOW.1 {
        return Err(bad("has a window out of range"));
    }
    Ok(Some(RateLimit { requests, window }))
}

/// `RATE_LIMIT_KEY_HEADER`: a header name (lower-cased), or `off` (count by IP only).
pub(super) fn key_header(text: &str, default: &str) -> Parsed<Option<String>> {
    match or_default(text, default) {
        "off" => Ok(None),
        v => poem::http::HeaderName::from_bytes(v.as_bytes())
            .map(|h| Some(h.as_str().to_owned()))
            .map_err(|_| {
                format!("{v:?} is not a header name (letters, digits and -, e.g. x-api-key) or off")
            }),
    }
}

/// `TRUSTED_PROXIES`: comma-separated addresses or CIDRs; empty: none.
pub(super) fn trusted_proxies(text: &str) -> Parsed<TrustedProxies> {
    text.parse()
}

/// `RUST_LOG`: kept as written; the log set-up checks it.
pub(super) fn log_filter(text: &str, default: &str) -> Parsed<String> {
    Ok(or_default(text, default).to_owned())
}

pub(super) fn parse_bytes(v: &str) -> Option<u64> {
    let v = v.trim();
    let (digits, mult) = [
        ("GiB", 1u64 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("B", 1),
    ]
    .iter()
    .find_map(|(suffix, m)| v.strip_suffix(suffix).map(|d| (d.trim(), *m)))
    .unwrap_or((v, 1));
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_are_comma_separated_node_urls() {
        assert_eq!(
            cluster_nodes("redis://a:7000, rediss://b:7001").unwrap().0,
            ["redis://a:7000", "rediss://b:7001"]
        );
        assert_eq!(cluster_nodes(" ").unwrap(), ClusterNodes::default());
        for bad in [
            "a:7000",
            "redis://a:7000,",
            "redis://a:7000,,redis://b:1",
            "http://a:1",
        ] {
            let message = cluster_nodes(bad).unwrap_err();
            assert!(message.contains("redis://host:port"), "{bad}: {message}");
        }
    }

    #[test]
    fn sizes_accept_plain_bytes_and_binary_units() {
        assert_eq!(parse_bytes("1024"), Some(1024));
        assert_eq!(parse_bytes("64MiB"), Some(64 << 20));
        assert_eq!(parse_bytes("0"), None);
        assert_eq!(parse_bytes("lots"), None);
    }

    #[test]
    fn blank_values_are_the_default() {
        assert_eq!(
            ttl(" ", "5s").unwrap().as_duration(),
            Duration::from_secs(5)
        );
        assert_eq!(tiers("").unwrap(), None);
        assert_eq!(
            optional_duration("", Duration::ZERO, Duration::MAX),
            Ok(None)
        );
        assert_eq!(on_off("", "off"), Ok(false));
        assert_eq!(redis_url(" ").unwrap(), "");
        assert_eq!(rate_limit(" "), Ok(None));
        assert_eq!(key_header("", "x-api-key"), Ok(Some("x-api-key".into())));
    }

    #[test]
    fn rate_limits_are_requests_per_window() {
        let rate = |n, secs| {
            Ok(Some(RateLimit {
                requests: n,
                window: Duration::from_secs(secs),
            }))
        };
        assert_eq!(rate_limit("100/1m"), rate(100, 60));
        assert_eq!(rate_limit(" 20 / 1s "), rate(20, 1));
        assert_eq!(rate_limit("5/h"), rate(5, 3600));
        assert_eq!(rate_limit("off"), Ok(None));
        for bad in [
            "100", "0/1m", "-1/1m", "x/1m", "10/0s", "10/500ms", "10/2days", "10/soon", "10/1m/2",
        ] {
            let e = rate_limit(bad).unwrap_err();
            assert!(
                e.contains("<requests>/<window>") && e.contains(bad),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn key_headers_are_header_names_or_off() {
        assert_eq!(key_header("X-Api-Key", "x"), Ok(Some("x-api-key".into())));
        assert_eq!(key_header("off", "x"), Ok(None));
        assert!(
            key_header("bad header", "x")
                .unwrap_err()
                .contains("not a header name")
        );
    }
}
