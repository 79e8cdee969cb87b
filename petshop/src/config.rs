//! Configuration: every setting comes from an environment variable, validated once at
//! start-up into [`Config`]. A bad value stops the service with a message naming the
//! variable and the values it accepts.
//!
//! [`Config::from_vars`] takes any iterator of `(name, value)` pairs, so tests build
//! configurations without touching the process environment. An empty value counts as
//! unset (handy in `docker-compose.yml`).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use cache::Ttl;
use cache::tier::{DEFAULT_L1_MAX_BYTES, DEFAULT_OP_TIMEOUT};
pub use cache::{Strategy, Topology, WriteConsistency};

/// The default database: a SQLite file in the working directory, created if missing.
pub const DEFAULT_DATABASE_URL: &str = migrations::DEFAULT_DATABASE_URL;
/// The default listen address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8000";
/// The default TTL of `GET /pets` pages.
pub const DEFAULT_PETS_LIST_TTL: Duration = Duration::from_secs(5);
/// The default TTL of one pet.
pub const DEFAULT_PET_TTL: Duration = Duration::from_secs(60);
/// The default TTL of `GET /stats`.
pub const DEFAULT_STATS_TTL: Duration = Duration::from_secs(10);
/// The default TTL jitter, in percent.
pub const DEFAULT_JITTER_PERCENT: u8 = 10;

/// How long `/ready` answers 503 after SIGTERM before the listener closes, so a load
/// balancer stops sending first.
pub const DEFAULT_SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);

/// The validated settings of the service.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// `DATABASE_URL`: SQLite (default) or PostgreSQL.
    pub database_url: String,
    /// `REDIS_URL`: the shared tier's server, if any.
    pub redis_url: Option<String>,
    /// `REDIS_CLUSTER_NODES`: seed nodes of a Redis Cluster as the shared tier, if any
    /// (instead of `REDIS_URL`).
    pub redis_cluster_nodes: Option<Vec<String>>,
    /// `CACHE_TIERS`.
    pub cache_tiers: Topology,
    /// `CACHE_STRATEGY`.
    pub cache_strategy: Strategy,
    /// `CACHE_WRITE_CONSISTENCY`: `available` (writes go ahead when Redis is away; their
    /// cache-side steps are replayed later) or `strict` (such writes are refused, 503).
    pub cache_write_consistency: WriteConsistency,
    /// `CACHE_LEASE`: coalesce misses across instances with a Redis lease.
    pub cache_lease: bool,
    /// `CACHE_MAX_STALE`: when the database fails (or exceeds `CACHE_LOAD_TIMEOUT`),
    /// answer with the last good value up to this old (`X-Cache: STALE`); `None`: off.
    pub cache_max_stale: Option<Duration>,
    /// `CACHE_LOAD_TIMEOUT`: a database load slower than this is answered stale.
    pub cache_load_timeout: Option<Duration>,
    /// `STATS_REFRESH_AHEAD`: refresh `/stats` in the background when less than this
    /// share (percent) of its TTL is left; `None`: off.
    pub stats_refresh_ahead: Option<u8>,
    /// `PETS_LIST_TTL`.
    pub pets_list_ttl: Ttl,
    /// `PETS_LIST_MAX_STALE`: soft invalidation of lists; an invalidated page may be
    /// served (`X-Cache: STALE`) for at most this long while one request reloads it.
    pub pets_list_max_stale: Option<Duration>,
    /// `PET_TTL`.
    pub pet_ttl: Ttl,
    /// `STATS_TTL`.
    pub stats_ttl: Ttl,
    /// `L1_MAX_BYTES`.
    pub l1_max_bytes: u64,
    /// `REDIS_OP_TIMEOUT`.
    pub redis_op_timeout: Duration,
    /// `CACHE_JITTER_PERCENT`.
    pub cache_jitter_percent: u8,
    /// `BIND`.
    pub bind: SocketAddr,
    /// `ADMIN_TOKEN`: unset disables the admin endpoints (403).
    pub admin_token: Option<String>,
    /// `LOG_FORMAT`: `text` (default) or `json`.
    pub log_json: bool,
    /// `SHUTDOWN_DRAIN`: after SIGTERM, how long `/ready` answers 503 while requests
    /// are still served, before the listener closes.
    pub shutdown_drain: Duration,
}

/// A variable with a value the service cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {var}: {message}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong and which values are allowed.
    pub message: String,
}

fn err(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

impl Config {
    /// The configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// The configuration from `(name, value)` pairs; unknown names are ignored.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars: HashMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
        let get = |name: &str| vars.get(name).map(|v| v.trim().to_owned());

        let database_url = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
        if !["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|p| database_url.starts_with(p))
        {
            return Err(err(
                "DATABASE_URL",
                format!(
                    "{:?} is not supported: use sqlite:… (e.g. {DEFAULT_DATABASE_URL}) or postgres://…",
                    redact_url(&database_url)
                ),
            ));
        }
        let redis_url = get("REDIS_URL");
        if let Some(url) = &redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return Err(err(
                "REDIS_URL",
                format!(
                    "{:?} must start with redis:// or rediss://",
                    redact_url(url)
                ),
            ));
        }
        let redis_cluster_nodes = get("REDIS_CLUSTER_NODES")
            .map(|v| parse_cluster_nodes(&v))
            .transpose()?;
        if redis_url.is_some() && redis_cluster_nodes.is_some() {
            return Err(err(
                "REDIS_CLUSTER_NODES",
                "set either REDIS_URL (one server) or REDIS_CLUSTER_NODES (a cluster), not both",
            ));
        }
        let has_redis = redis_url.is_some() || redis_cluster_nodes.is_some();
        let cache_tiers = match get("CACHE_TIERS") {
            None if has_redis => Topology::L1L2,
            None => Topology::L1,
            Some(v) => v.parse::<Topology>().map_err(|_| {
                err(
                    "CACHE_TIERS",
                    format!("{v:?} is not one of: none, l1, l2, l1+l2"),
                )
            })?,
        };
        if cache_tiers.has_l2() && !has_redis {
            return Err(err(
                "CACHE_TIERS",
                format!(
                    "{} needs REDIS_URL or REDIS_CLUSTER_NODES; without Redis use none or l1",
                    cache_tiers.as_str()
                ),
            ));
        }
        let cache_strategy = match get("CACHE_STRATEGY") {
            None => Strategy::CacheAside,
            Some(v) => v.parse::<Strategy>().map_err(|_| {
                err(
                    "CACHE_STRATEGY",
                    format!("{v:?} is not one of: cache-aside, write-through, versioned"),
                )
            })?,
        };
        let cache_write_consistency = match get("CACHE_WRITE_CONSISTENCY") {
            None => WriteConsistency::Available,
            Some(v) => v.parse::<WriteConsistency>().map_err(|_| {
                err(
                    "CACHE_WRITE_CONSISTENCY",
                    format!("{v:?} is not one of: available, strict"),
                )
            })?,
        };
        let cache_lease = match get("CACHE_LEASE").as_deref() {
            None | Some("off") => false,
            Some("on") => true,
            Some(other) => {
                return Err(err(
                    "CACHE_LEASE",
                    format!("{other:?} is not one of: off, on"),
                ));
            }
        };
        if cache_lease && !cache_tiers.has_l2() {
            return Err(err(
                "CACHE_LEASE",
                format!(
                    "on needs Redis as a tier (CACHE_TIERS=l2 or l1+l2), not {}",
                    cache_tiers.as_str()
                ),
            ));
        }
        let optional_duration = |var: &'static str,
                                 min: Duration,
                                 max: Duration|
         -> Result<Option<Duration>, ConfigError> {
            match get(var).as_deref() {
                None | Some("off") => Ok(None),
                Some(v) => {
                    let d = parse_duration(var, v).map_err(|_| {
                        err(
                            var,
                            format!("{v:?} is not off or a duration such as 500ms, 30s, 5m"),
                        )
                    })?;
                    if d < min || d > max {
                        return Err(err(
                            var,
                            format!("{v:?} is out of range: off, or between {min:?} and {max:?}"),
                        ));
                    }
                    Ok(Some(d))
                }
            }
        };
        let cache_max_stale = optional_duration(
            "CACHE_MAX_STALE",
            Duration::from_secs(1),
            Duration::from_secs(24 * 3600),
        )?;
        let cache_load_timeout = optional_duration(
            "CACHE_LOAD_TIMEOUT",
            Duration::from_millis(1),
            Duration::from_secs(60),
        )?;
        if cache_load_timeout.is_some() && cache_max_stale.is_none() {
            return Err(err(
                "CACHE_LOAD_TIMEOUT",
                "needs CACHE_MAX_STALE (a slow load is answered with the last good value); set both or neither",
            ));
        }
        let stats_refresh_ahead = match get("STATS_REFRESH_AHEAD").as_deref() {
            None | Some("off") => None,
            Some(v) => Some(v.parse::<u8>().ok().filter(|p| (1..=99).contains(p)).ok_or_else(
                || {
                    err(
                        "STATS_REFRESH_AHEAD",
                        format!("{v:?} is not off or an integer from 1 to 99 (percent of STATS_TTL left)"),
                    )
                },
            )?),
        };
        let ttl = |var: &'static str, default: Duration| -> Result<Ttl, ConfigError> {
            let d = match get(var) {
                None => default,
                Some(v) => parse_duration(var, &v)?,
            };
            Ttl::new(d).map_err(|_| {
                err(
                    var,
                    format!("{d:?} is out of range: a TTL is between 1ms and 30 days"),
                )
            })
        };
        let pets_list_ttl = ttl("PETS_LIST_TTL", DEFAULT_PETS_LIST_TTL)?;
        let pets_list_max_stale = optional_duration(
            "PETS_LIST_MAX_STALE",
            Duration::from_millis(1),
            Duration::from_secs(60),
        )?;
        let pet_ttl = ttl("PET_TTL", DEFAULT_PET_TTL)?;
        let stats_ttl = ttl("STATS_TTL", DEFAULT_STATS_TTL)?;
        let l1_max_bytes = match get("L1_MAX_BYTES") {
            None => DEFAULT_L1_MAX_BYTES,
            Some(v) => parse_bytes(&v).ok_or_else(|| {
                err(
                    "L1_MAX_BYTES",
                    format!(
                        "{v:?} is not a size: use bytes (67108864) or KiB/MiB/GiB (64MiB), above 0"
                    ),
                )
            })?,
        };
        let redis_op_timeout = match get("REDIS_OP_TIMEOUT") {
            None => DEFAULT_OP_TIMEOUT,
            Some(v) => {
                let d = parse_duration("REDIS_OP_TIMEOUT", &v)?;
                if d.is_zero() || d > Duration::from_secs(60) {
                    return Err(err(
                        "REDIS_OP_TIMEOUT",
                        format!("{v:?} is out of range: between 1ms and 60s"),
                    ));
                }
                d
            }
        };
        let cache_jitter_percent = match get("CACHE_JITTER_PERCENT") {
            None => DEFAULT_JITTER_PERCENT,
            Some(v) => v.parse::<u8>().ok().filter(|p| *p <= 100).ok_or_else(|| {
                err(
                    "CACHE_JITTER_PERCENT",
                    format!("{v:?} is not an integer from 0 to 100"),
                )
            })?,
        };
        let bind_raw = get("BIND").unwrap_or_else(|| DEFAULT_BIND.into());
        let bind = bind_raw.parse::<SocketAddr>().map_err(|_| {
            err(
                "BIND",
                format!("{bind_raw:?} is not an address such as 127.0.0.1:8000 or 0.0.0.0:8000"),
            )
        })?;
        let admin_token = get("ADMIN_TOKEN");
        if let Some(t) = &admin_token
            && t.len() < 16
        {
            return Err(err(
                "ADMIN_TOKEN",
                "is too short: use at least 16 characters (or leave it unset to disable admin endpoints)",
            ));
        }
        let shutdown_drain = match get("SHUTDOWN_DRAIN") {
            None => DEFAULT_SHUTDOWN_DRAIN,
            Some(v) => {
                let d = parse_duration("SHUTDOWN_DRAIN", &v)?;
                if d > Duration::from_secs(300) {
                    return Err(err(
                        "SHUTDOWN_DRAIN",
                        format!("{v:?} is out of range: between 0s and 5m"),
                    ));
                }
                d
            }
        };
        let log_json = match get("LOG_FORMAT").as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(err(
                    "LOG_FORMAT",
                    format!("{other:?} is not one of: text, json"),
                ));
            }
        };
        Ok(Self {
            database_url,
            redis_url,
            redis_cluster_nodes,
            cache_tiers,
            cache_strategy,
            cache_write_consistency,
            cache_lease,
            cache_max_stale,
            cache_load_timeout,
            stats_refresh_ahead,
            pets_list_ttl,
            pets_list_max_stale,
            pet_ttl,
            stats_ttl,
            l1_max_bytes,
            redis_op_timeout,
            cache_jitter_percent,
            bind,
            admin_token,
            log_json,
            shutdown_drain,
        })
    }
}

impl fmt::Debug for Config {
    // Secrets never reach a log line: the token is hidden and URL passwords are masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field(
                "redis_cluster_nodes",
                &self
                    .redis_cluster_nodes
                    .as_ref()
                    .map(|nodes| nodes.iter().map(|n| redact_url(n)).collect::<Vec<_>>()),
            )
            .field("cache_tiers", &self.cache_tiers.as_str())
            .field("cache_strategy", &self.cache_strategy.as_str())
            .field(
                "cache_write_consistency",
                &self.cache_write_consistency.as_str(),
            )
            .field("cache_lease", &self.cache_lease)
            .field("cache_max_stale", &self.cache_max_stale)
            .field("cache_load_timeout", &self.cache_load_timeout)
            .field("stats_refresh_ahead", &self.stats_refresh_ahead)
            .field("pets_list_ttl", &self.pets_list_ttl.as_duration())
            .field("pets_list_max_stale", &self.pets_list_max_stale)
            .field("pet_ttl", &self.pet_ttl.as_duration())
            .field("stats_ttl", &self.stats_ttl.as_duration())
            .field("l1_max_bytes", &self.l1_max_bytes)
            .field("redis_op_timeout", &self.redis_op_timeout)
            .field("cache_jitter_percent", &self.cache_jitter_percent)
            .field("bind", &self.bind)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("log_json", &self.log_json)
            .field("shutdown_drain", &self.shutdown_drain)
            .finish()
    }
}

fn parse_duration(var: &'static str, v: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(v).map_err(|_| {
        err(
            var,
            format!("{v:?} is not a duration: use a number with a unit, e.g. 50ms, 5s, 1m"),
        )
    })
}

/// `REDIS_CLUSTER_NODES`: comma-separated `redis://` or `rediss://` URLs of one or more
/// of the cluster's nodes (`redis://h1:7000,redis://h2:7000`); the rest are discovered.
fn parse_cluster_nodes(v: &str) -> Result<Vec<String>, ConfigError> {
    let nodes: Vec<String> = v.split(',').map(|n| n.trim().to_owned()).collect();
    // A node is `redis[s]://[user:password@]host:port`: a known scheme and a host.
    let is_node = |n: &str| {
        n.split_once("://").is_some_and(|(scheme, rest)| {
            ["redis", "rediss"].contains(&scheme)
                && !rest.rsplit('@').next().unwrap_or_default().is_empty()
        })
    };
    match nodes.iter().find(|n| !is_node(n)) {
        Some(bad) => Err(err(
            "REDIS_CLUSTER_NODES",
            format!(
                "{:?} is not a node URL: use comma-separated redis://host:port (or rediss://) URLs of the cluster's nodes",
                redact_url(bad)
            ),
        )),
        None => Ok(nodes),
    }
}

fn parse_bytes(v: &str) -> Option<u64> {
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

/// `url` with any password replaced by `***` (`redis://:secret@host` → `redis://:***@host`).
#[must_use]
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                format!("{scheme}://{user}@{host}{tail}")
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/petshop"),
            "postgres://app:***@db:5432/petshop"
        );
        assert_eq!(redact_url("redis://:pw@r:6379/0"), "redis://:***@r:6379/0");
        assert_eq!(redact_url("redis://r:6379"), "redis://r:6379");
        assert_eq!(
            redact_url("sqlite://petshop.sqlite?mode=rwc"),
            "sqlite://petshop.sqlite?mode=rwc"
        );
    }

    #[test]
    fn cluster_nodes_are_comma_separated_node_urls() {
        assert_eq!(
            parse_cluster_nodes("redis://a:7000, rediss://b:7001").unwrap(),
            ["redis://a:7000", "rediss://b:7001"]
        );
        for bad in [
            "a:7000",
            "redis://a:7000,",
            "redis://a:7000,,redis://b:1",
            "http://a:1",
        ] {
            let e = parse_cluster_nodes(bad).unwrap_err();
            assert_eq!(e.var, "REDIS_CLUSTER_NODES", "{bad}");
            assert!(
                e.message.contains("redis://host:port"),
                "{bad}: {}",
                e.message
            );
        }
    }

    #[test]
    fn sizes_accept_plain_bytes_and_binary_units() {
        assert_eq!(parse_bytes("1024"), Some(1024));
        assert_eq!(parse_bytes("64MiB"), Some(64 << 20));
        assert_eq!(parse_bytes("0"), None);
        assert_eq!(parse_bytes("lots"), None);
    }
}
