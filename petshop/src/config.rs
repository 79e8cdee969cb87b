//! Configuration: every setting is a command-line option and an environment variable
//! (clap, derive with `env`), validated once at start-up into [`Config`]. A bad value
//! stops the service with a message naming the variable and the values it accepts;
//! `petshop --help` lists them all with their defaults.
//!
//! An empty value counts as unset, i.e. the default (handy in `docker-compose.yml`):
//! clap hands an empty variable to the value parser, and every parser in [`values`]
//! reads a blank value as its default.
//!
//! [`Config::from_vars`] takes any iterator of `(name, value)` pairs, so tests build
//! configurations without touching the process environment: the pairs go through the
//! same clap parsers as options, with the process environment switched off.

mod api_keys;
mod proxies;
mod settings;
mod tls;
mod values;

pub use api_keys::{ApiKeys, KeyId};
pub use proxies::{Cidr, TrustedProxies};
pub use settings::Settings;
pub use values::ClusterNodes;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cache::Ttl;
use cache::tier::RedisTls;
#[cfg(doc)]
use cache::tier::{DEFAULT_L1_MAX_BYTES, DEFAULT_OP_TIMEOUT};
pub use cache::{Strategy, Topology, WriteConsistency};
use clap::{CommandFactory, FromArgMatches};

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
/// The default log filter (`RUST_LOG`).
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn,sea_orm=warn";

/// How long `/ready` answers 503 after SIGTERM before the listener closes, so a load
/// balancer stops sending first.
pub const DEFAULT_SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);

/// `RATE_LIMIT`: requests per client per fixed window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests a client may send in one window (at least 1).
    pub requests: u64,
    /// The window (1s–24h).
    pub window: Duration,
}

/// The default `RATE_LIMIT_KEY_HEADER`.
pub const DEFAULT_RATE_LIMIT_KEY_HEADER: &str = "x-api-key";

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
    /// `REDIS_TLS_CA_FILE`, `REDIS_TLS_CERT_FILE`, `REDIS_TLS_KEY_FILE`, read and
    /// checked: what `rediss://` trusts and presents; `None`: the public roots, no
    /// client certificate.
    pub redis_tls: Option<RedisTls>,
    /// `REDIS_TLS_CA_FILE`, to name it when the server's certificate is refused.
    pub redis_tls_ca_file: Option<PathBuf>,
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
    /// `L1_MAX_BYTES` (default [`DEFAULT_L1_MAX_BYTES`]).
    pub l1_max_bytes: u64,
    /// `REDIS_OP_TIMEOUT` (default [`DEFAULT_OP_TIMEOUT`]).
    pub redis_op_timeout: Duration,
    /// `CACHE_JITTER_PERCENT`.
    pub cache_jitter_percent: u8,
    /// `BIND`.
    pub bind: SocketAddr,
    /// `ADMIN_TOKEN`: unset disables the admin endpoints (403).
    pub admin_token: Option<String>,
    /// `LOG_FORMAT`: `text` (default) or `json`.
    pub log_json: bool,
    /// `RUST_LOG`: the log filter.
    pub log_filter: String,
    /// `SHUTDOWN_DRAIN`: after SIGTERM, how long `/ready` answers 503 while requests
    /// are still served, before the listener closes.
    pub shutdown_drain: Duration,
    /// `TRUSTED_PROXIES`: a request from one of them is from the client its
    /// `X-Forwarded-For` (or `Forwarded`) names; empty: those headers are ignored.
    pub trusted_proxies: TrustedProxies,
    /// `RATE_LIMIT`: `None` (the default) is off.
    pub rate_limit: Option<RateLimit>,
    /// `RATE_LIMIT_KEY_HEADER` (lower case): a client sending a known key in it is
    /// counted by that key, any other by its IP address; `None` counts every client by IP.
    pub rate_limit_key_header: Option<String>,
    /// `RATE_LIMIT_API_KEYS_FILE`, read: the keys that get a bucket of their own;
    /// `None` (unset): none, every client is counted by its IP address.
    pub rate_limit_api_keys: Option<ApiKeys>,
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

pub(crate) fn err(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

/// Every variable [`Settings`] reads, in the order `--help` lists them.
pub const VARIABLES: &[&str] = &[
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_CLUSTER_NODES",
    "REDIS_TLS_CA_FILE",
    "REDIS_TLS_CERT_FILE",
    "REDIS_TLS_KEY_FILE",
    "CACHE_TIERS",
    "CACHE_STRATEGY",
    "CACHE_WRITE_CONSISTENCY",
    "CACHE_LEASE",
    "CACHE_MAX_STALE",
    "CACHE_LOAD_TIMEOUT",
    "STATS_REFRESH_AHEAD",
    "PETS_LIST_TTL",
    "PETS_LIST_MAX_STALE",
    "PET_TTL",
    "STATS_TTL",
    "CACHE_JITTER_PERCENT",
    "L1_MAX_BYTES",
    "REDIS_OP_TIMEOUT",
    "BIND",
    "ADMIN_TOKEN",
    "SHUTDOWN_DRAIN",
    "TRUSTED_PROXIES",
    "RATE_LIMIT",
    "RATE_LIMIT_KEY_HEADER",
    "RATE_LIMIT_API_KEYS_FILE",
    "LOG_FORMAT",
    "RUST_LOG",
];

impl ConfigError {
    /// The error clap raised for a value of `settings` (the option or the variable),
    /// naming the variable; `None` for errors that are not about one value (help,
    /// version, an unknown option).
    #[must_use]
    pub fn from_clap(e: &clap::Error) -> Option<Self> {
        use clap::error::{ContextKind, ContextValue, ErrorKind};
        if e.kind() != ErrorKind::ValueValidation {
            return None;
        }
        let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
            return None;
        };
        // "--pet-ttl <PET_TTL>": the value name is the variable.
        let name = arg.split_once('<')?.1.trim_end_matches('>');
        let var = VARIABLES.iter().find(|v| **v == name)?;
        let message =
            std::error::Error::source(e).map_or_else(|| e.to_string(), ToString::to_string);
        Some(err(var, message))
    }
}

/// [`Settings`] alone, as a command of its own.
#[derive(clap::Parser, Debug)]
#[command(name = "petshop")]
struct SettingsOnly {
    #[command(flatten)]
    settings: Settings,
}

impl Config {
    /// The configuration from the process environment (through clap's `env`).
    pub fn from_env() -> Result<Self, ConfigError> {
        let matches = SettingsOnly::command()
            .no_binary_name(true)
            .try_get_matches_from(std::iter::empty::<String>());
        Self::from_matches(matches)
    }

    /// The configuration from `(name, value)` pairs; unknown names are ignored, and the
    /// process environment is not read.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars: HashMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let command = SettingsOnly::command().no_binary_name(true);
        let mut args = Vec::new();
        for arg in command.get_arguments() {
            let (Some(long), Some(var)) = (arg.get_long(), arg.get_env()) else {
                continue;
            };
            if let Some(value) = var.to_str().and_then(|v| vars.get(v)) {
                args.push(format!("--{long}={value}"));
            }
        }
        let matches = command
            .mut_args(|a| a.env(None::<&'static str>))
            .try_get_matches_from(args);
        Self::from_matches(matches)
    }

    fn from_matches(matches: Result<clap::ArgMatches, clap::Error>) -> Result<Self, ConfigError> {
        let settings = matches
            .and_then(|m| SettingsOnly::from_arg_matches(&m))
            .map_err(|e| {
                ConfigError::from_clap(&e).unwrap_or_else(|| err("settings", e.to_string()))
            })?;
        settings.settings.validate()
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
            .field("redis_tls", &self.redis_tls)
            .field("redis_tls_ca_file", &self.redis_tls_ca_file)
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
            .field("log_filter", &self.log_filter)
            .field("shutdown_drain", &self.shutdown_drain)
            .field(
                "trusted_proxies",
                &self
                    .trusted_proxies
                    .networks()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
            )
            .field("rate_limit", &self.rate_limit)
            .field("rate_limit_key_header", &self.rate_limit_key_header)
            .field(
                "rate_limit_api_keys",
                &self.rate_limit_api_keys.as_ref().map(ApiKeys::len),
            )
            .finish()
    }
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
    fn the_defaults_shown_are_the_defaults_used() {
        let c = Config::from_vars(std::iter::empty::<(String, String)>()).unwrap();
        assert_eq!(c.pets_list_ttl.as_duration(), DEFAULT_PETS_LIST_TTL);
        assert_eq!(c.pet_ttl.as_duration(), DEFAULT_PET_TTL);
        assert_eq!(c.stats_ttl.as_duration(), DEFAULT_STATS_TTL);
        assert_eq!(c.cache_jitter_percent, DEFAULT_JITTER_PERCENT);
        assert_eq!(c.l1_max_bytes, cache::tier::DEFAULT_L1_MAX_BYTES);
        assert_eq!(c.redis_op_timeout, cache::tier::DEFAULT_OP_TIMEOUT);
        assert_eq!(c.shutdown_drain, DEFAULT_SHUTDOWN_DRAIN);
        assert_eq!(c.cache_strategy, Strategy::CacheAside);
        assert_eq!(c.cache_write_consistency, WriteConsistency::Available);
        assert_eq!(c.rate_limit, None);
        assert_eq!(
            c.rate_limit_key_header.as_deref(),
            Some(DEFAULT_RATE_LIMIT_KEY_HEADER)
        );
    }

    #[test]
    fn every_option_is_a_listed_variable_named_like_its_value() {
        let command = SettingsOnly::command();
        let vars: Vec<String> = command
            .get_arguments()
            .filter_map(|a| {
                let var = a.get_env()?.to_str()?.to_owned();
                let names = a.get_value_names().unwrap_or_default();
                assert_eq!(names.first().map(|n| n.as_str()), Some(var.as_str()));
                Some(var)
            })
            .collect();
        assert_eq!(vars, VARIABLES);
    }

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
}
