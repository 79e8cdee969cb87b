//! [`Settings`]: every setting as clap reads it, with its variable, its default as
//! `--help` shows it, and its value parser; [`Settings::validate`] checks the rules
//! between settings and gives the [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cache::Ttl;
use clap::Args;

use super::api_keys::ApiKeys;
use super::proxies::TrustedProxies;
use super::tls::TlsFiles;
use super::values::ClusterNodes;

use super::{
    Config, ConfigError, DEFAULT_BIND, DEFAULT_DATABASE_URL, DEFAULT_LOG_FILTER,
    DEFAULT_RATE_LIMIT_KEY_HEADER, RateLimit, Strategy, Topology, WriteConsistency, err, values,
};

// The defaults as `--help` shows them; a unit test checks they match the constants.
const D_STRATEGY: &str = "cache-aside";
const D_CONSISTENCY: &str = "available";
const D_PETS_LIST_TTL: &str = "5s";
const D_PET_TTL: &str = "60s";
const D_STATS_TTL: &str = "10s";
const D_JITTER: &str = "10";
const D_L1_MAX_BYTES: &str = "64MiB";
const D_OP_TIMEOUT: &str = "50ms";
const D_DRAIN: &str = "5s";

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Every setting, as clap reads it: an option (`--pet-ttl 5m`) or its environment
/// variable (`PET_TTL=5m`); the option wins. Cross-setting rules are checked by
/// [`Settings::validate`], which turns these into a [`Config`].
#[derive(Args, Clone, Debug)]
pub struct Settings {
    /// Database: `sqlite:…` (a file, created if missing) or `postgres://user:pw@host/db`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, help_heading = "Database",
          default_value = DEFAULT_DATABASE_URL,
          value_parser = |s: &str| values::database_url(s, DEFAULT_DATABASE_URL))]
    pub database_url: String,

    /// Redis of the shared L2 tier (`redis://…`, `rediss://…`). Unset: no L2.
    #[arg(long, env = "REDIS_URL", hide_env_values = true, help_heading = "Cache",
          value_parser = values::redis_url)]
    pub redis_url: Option<String>,

    /// Or a Redis Cluster as the L2 tier: comma-separated seed nodes
    /// (`redis://h1:7000,redis://h2:7000`); not with REDIS_URL. Unset: no cluster.
    #[arg(long, env = "REDIS_CLUSTER_NODES", hide_env_values = true, help_heading = "Cache",
          value_parser = values::cluster_nodes)]
    pub redis_cluster_nodes: Option<ClusterNodes>,

    /// PEM file of the CA that signs Redis' certificate (rediss://). Unset: the public
    /// roots.
    #[arg(long, env = "REDIS_TLS_CA_FILE", help_heading = "Cache", value_parser = values::path)]
    pub redis_tls_ca_file: Option<String>,

    /// PEM client certificate for mutual TLS with Redis (with REDIS_TLS_KEY_FILE).
    /// Unset: none.
    #[arg(long, env = "REDIS_TLS_CERT_FILE", help_heading = "Cache", value_parser = values::path)]
    pub redis_tls_cert_file: Option<String>,

    /// PEM private key of REDIS_TLS_CERT_FILE. Unset: none.
    #[arg(long, env = "REDIS_TLS_KEY_FILE", help_heading = "Cache", value_parser = values::path)]
    pub redis_tls_key_file: Option<String>,

    /// Cache tiers: none, l1, l2, l1+l2; auto: l1+l2 with REDIS_URL or
    /// REDIS_CLUSTER_NODES, else l1.
    #[arg(long, env = "CACHE_TIERS", help_heading = "Cache", default_value = "auto",
          value_parser = values::tiers)]
    pub cache_tiers: std::option::Option<Topology>,

    /// Write strategy: cache-aside, write-through, versioned.
    #[arg(long, env = "CACHE_STRATEGY", help_heading = "Cache", default_value = D_STRATEGY,
          value_parser = |s: &str| values::strategy(s, D_STRATEGY))]
    pub cache_strategy: Strategy,

    /// When Redis cannot be told about a write: available (write anyway, replay the
    /// cache-side step later) or strict (refuse the write: 503 + Retry-After).
    #[arg(long, env = "CACHE_WRITE_CONSISTENCY", help_heading = "Cache",
          default_value = D_CONSISTENCY,
          value_parser = |s: &str| values::consistency(s, D_CONSISTENCY))]
    pub cache_write_consistency: WriteConsistency,

    /// off, on: a Redis lease, so one instance loads a missing key (needs l2 or l1+l2).
    #[arg(long, env = "CACHE_LEASE", help_heading = "Cache", default_value = "off",
          action = clap::ArgAction::Set, value_parser = |s: &str| values::on_off(s, "off"))]
    pub cache_lease: bool,

    /// off, or 1s–24h: when the database fails, serve the last good value up to this old.
    #[arg(long, env = "CACHE_MAX_STALE", help_heading = "Cache", default_value = "off",
          value_parser = |s: &str| values::optional_duration(s, secs(1), secs(24 * 3600)))]
    pub cache_max_stale: std::option::Option<Duration>,

    /// off, or 1ms–60s (needs CACHE_MAX_STALE): a slower load is answered stale.
    #[arg(long, env = "CACHE_LOAD_TIMEOUT", help_heading = "Cache", default_value = "off",
          value_parser = |s: &str| values::optional_duration(s, ms(1), secs(60)))]
    pub cache_load_timeout: std::option::Option<Duration>,

    /// off, or 1–99: recompute /stats in the background when less than this % of its
    /// TTL is left.
    #[arg(long, env = "STATS_REFRESH_AHEAD", help_heading = "Cache", default_value = "off",
          value_parser = values::refresh_ahead)]
    pub stats_refresh_ahead: std::option::Option<u8>,

    /// TTL of GET /pets pages (1ms–30 days).
    #[arg(long, env = "PETS_LIST_TTL", help_heading = "Cache", default_value = D_PETS_LIST_TTL,
          value_parser = |s: &str| values::ttl(s, D_PETS_LIST_TTL))]
    pub pets_list_ttl: Ttl,

    /// off, or 1ms–60s: an invalidated page may be served (X-Cache: STALE) this long
    /// while one request reloads it.
    #[arg(long, env = "PETS_LIST_MAX_STALE", help_heading = "Cache", default_value = "off",
          value_parser = |s: &str| values::optional_duration(s, ms(1), secs(60)))]
    pub pets_list_max_stale: std::option::Option<Duration>,

    /// TTL of one pet (1ms–30 days).
    #[arg(long, env = "PET_TTL", help_heading = "Cache", default_value = D_PET_TTL,
          value_parser = |s: &str| values::ttl(s, D_PET_TTL))]
    pub pet_ttl: Ttl,

    /// TTL of GET /stats (1ms–30 days).
    #[arg(long, env = "STATS_TTL", help_heading = "Cache", default_value = D_STATS_TTL,
          value_parser = |s: &str| values::ttl(s, D_STATS_TTL))]
    pub stats_ttl: Ttl,

    /// 0–100: TTLs are shortened by up to this % at random, to spread expiries.
    #[arg(long, env = "CACHE_JITTER_PERCENT", help_heading = "Cache", default_value = D_JITTER,
          value_parser = |s: &str| values::percent(s, D_JITTER))]
    pub cache_jitter_percent: u8,

    /// In-process L1 budget: bytes, or KiB/MiB/GiB, above 0.
    #[arg(long, env = "L1_MAX_BYTES", help_heading = "Cache", default_value = D_L1_MAX_BYTES,
          value_parser = |s: &str| values::bytes(s, D_L1_MAX_BYTES))]
    pub l1_max_bytes: u64,

    /// Bound on every Redis call (1ms–60s).
    #[arg(long, env = "REDIS_OP_TIMEOUT", help_heading = "Cache", default_value = D_OP_TIMEOUT,
          value_parser = |s: &str| values::bounded_duration(s, D_OP_TIMEOUT, ms(1), secs(60)))]
    pub redis_op_timeout: Duration,

    /// Listen address (ip:port; 0.0.0.0:8000 in a container).
    #[arg(long, env = "BIND", help_heading = "Server", default_value = DEFAULT_BIND,
          value_parser = |s: &str| values::bind(s, DEFAULT_BIND))]
    pub bind: SocketAddr,

    /// Bearer token of POST /admin/cache/flush (16+ characters). Unset: admin
    /// endpoints answer 403.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true, help_heading = "Server",
          value_parser = values::admin_token)]
    pub admin_token: Option<String>,

    /// 0s–5m: after SIGTERM, /ready answers 503 this long while requests are still
    /// served (Ctrl-C stops at once).
    #[arg(long, env = "SHUTDOWN_DRAIN", help_heading = "Server", default_value = D_DRAIN,
          value_parser = |s: &str| values::bounded_duration(s, D_DRAIN, Duration::ZERO, secs(300)))]
    pub shutdown_drain: Duration,

    /// Comma-separated addresses or CIDRs of the proxies in front (10.0.0.0/8,
    /// 192.168.1.7, fd00::/8): a request from one is from the right-most address of its
    /// X-Forwarded-For (or Forwarded) that is not a trusted proxy. Unset: those headers
    /// are ignored and the client is the peer.
    #[arg(long, env = "TRUSTED_PROXIES", help_heading = "Server",
          value_parser = values::trusted_proxies)]
    pub trusted_proxies: Option<TrustedProxies>,

    /// off, or <requests>/<window> (100/1m, 20/1s; window 1s–24h): each client (a known
    /// API key, else its address, see TRUSTED_PROXIES) may send this many requests per fixed window,
    /// counted on Redis when it is a cache tier; /health, /ready and /metrics are exempt.
    #[arg(long, env = "RATE_LIMIT", help_heading = "Rate limiting", default_value = "off",
          value_parser = values::rate_limit)]
    pub rate_limit: std::option::Option<RateLimit>,

    /// The header a client sends its API key in; a request with a key of
    /// RATE_LIMIT_API_KEYS_FILE is counted by that key, any other by its address. off: by
    /// address only.
    #[arg(long, env = "RATE_LIMIT_KEY_HEADER", help_heading = "Rate limiting",
          default_value = DEFAULT_RATE_LIMIT_KEY_HEADER,
          value_parser = |s: &str| values::key_header(s, DEFAULT_RATE_LIMIT_KEY_HEADER))]
    pub rate_limit_key_header: std::option::Option<String>,

    /// A file of the API keys that get a bucket of their own: one SHA-256 (hex, as
    /// sha256sum prints it) per line, # comments; read at start-up. Unset: no key is
    /// known, every client is counted by its address.
    #[arg(long, env = "RATE_LIMIT_API_KEYS_FILE", help_heading = "Rate limiting",
          value_parser = values::path)]
    pub rate_limit_api_keys_file: Option<String>,

    /// Log lines: text or json.
    #[arg(long, env = "LOG_FORMAT", help_heading = "Logs and tracing", default_value = "text",
          action = clap::ArgAction::Set, value_name = "LOG_FORMAT", value_parser = |s: &str| values::log_json(s, "text"))]
    pub log_format: bool,

    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "RUST_LOG", value_name = "RUST_LOG", help_heading = "Logs and tracing",
          default_value = DEFAULT_LOG_FILTER,
          value_parser = |s: &str| values::log_filter(s, DEFAULT_LOG_FILTER))]
    pub log_filter: String,
}

impl Settings {
    /// Checks the rules between settings and resolves the automatic ones.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let redis_url = self.redis_url.filter(|u| !u.is_empty());
        let redis_cluster_nodes = self
            .redis_cluster_nodes
            .map(|n| n.0)
            .filter(|n| !n.is_empty());
        if redis_url.is_some() && redis_cluster_nodes.is_some() {
            return Err(err(
                "REDIS_CLUSTER_NODES",
                "set either REDIS_URL (one server) or REDIS_CLUSTER_NODES (a cluster), not both",
            ));
        }
        let has_redis = redis_url.is_some() || redis_cluster_nodes.is_some();
        let path = |p: Option<String>| p.filter(|p| !p.is_empty()).map(PathBuf::from);
        let tls_files = TlsFiles {
            ca: path(self.redis_tls_ca_file),
            cert: path(self.redis_tls_cert_file),
            key: path(self.redis_tls_key_file),
        };
        let urls: Vec<String> = redis_url
            .iter()
            .chain(redis_cluster_nodes.iter().flatten())
            .cloned()
            .collect();
        let redis_tls = tls_files.load(&urls)?;
        let cache_tiers = match self.cache_tiers {
            Some(t) => t,
            None if has_redis => Topology::L1L2,
            None => Topology::L1,
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
        if self.cache_lease && !cache_tiers.has_l2() {
            return Err(err(
                "CACHE_LEASE",
                format!(
                    "on needs Redis as a tier (CACHE_TIERS=l2 or l1+l2), not {}",
                    cache_tiers.as_str()
                ),
            ));
        }
        if self.cache_load_timeout.is_some() && self.cache_max_stale.is_none() {
            return Err(err(
                "CACHE_LOAD_TIMEOUT",
                "needs CACHE_MAX_STALE (a slow load is answered with the last good value); set both or neither",
            ));
        }
        let rate_limit_api_keys = path(self.rate_limit_api_keys_file)
            .map(|file| {
                if self.rate_limit_key_header.is_none() {
                    return Err(err(
                        "RATE_LIMIT_API_KEYS_FILE",
                        "needs a RATE_LIMIT_KEY_HEADER to read keys from, not off: set a header \
                         name (e.g. x-api-key) or unset RATE_LIMIT_API_KEYS_FILE",
                    ));
                }
                ApiKeys::load(&file)
            })
            .transpose()?;
        Ok(Config {
            database_url: self.database_url,
            redis_url,
            redis_cluster_nodes,
            redis_tls,
            redis_tls_ca_file: tls_files.ca,
            cache_tiers,
            cache_strategy: self.cache_strategy,
            cache_write_consistency: self.cache_write_consistency,
            cache_lease: self.cache_lease,
            cache_max_stale: self.cache_max_stale,
            cache_load_timeout: self.cache_load_timeout,
            stats_refresh_ahead: self.stats_refresh_ahead,
            pets_list_ttl: self.pets_list_ttl,
            pets_list_max_stale: self.pets_list_max_stale,
            pet_ttl: self.pet_ttl,
            stats_ttl: self.stats_ttl,
            l1_max_bytes: self.l1_max_bytes,
            redis_op_timeout: self.redis_op_timeout,
            cache_jitter_percent: self.cache_jitter_percent,
            bind: self.bind,
            admin_token: self.admin_token.filter(|t| !t.is_empty()),
            log_json: self.log_format,
            log_filter: self.log_filter,
            shutdown_drain: self.shutdown_drain,
            trusted_proxies: self.trusted_proxies.unwrap_or_default(),
            rate_limit: self.rate_limit,
            rate_limit_key_header: self.rate_limit_key_header,
            rate_limit_api_keys,
        })
    }
}
