//! Configuration: defaults, and every bad value stopping start-up with a message that
//! names the variable and what it accepts.

use std::time::Duration;

use petshop::config::{Config, DEFAULT_BIND, Strategy, Topology};

fn from(vars: &[(&str, &str)]) -> Result<Config, petshop::config::ConfigError> {
    Config::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

#[test]
fn defaults_need_no_services() {
    let c = from(&[]).unwrap();
    assert!(c.database_url.starts_with("sqlite:"), "{}", c.database_url);
    assert_eq!(c.redis_url, None);
    assert_eq!(c.cache_tiers, Topology::L1);
    assert_eq!(c.cache_strategy, Strategy::CacheAside);
    assert!(!c.cache_lease);
    assert_eq!(c.pets_list_ttl.as_duration(), Duration::from_secs(5));
    assert_eq!(c.pet_ttl.as_duration(), Duration::from_secs(60));
    assert_eq!(c.stats_ttl.as_duration(), Duration::from_secs(10));
    assert_eq!(c.l1_max_bytes, 64 << 20);
    assert_eq!(c.bind.to_string(), DEFAULT_BIND);
    assert_eq!(c.admin_token, None);
    assert_eq!(
        (
            c.cache_max_stale,
            c.cache_load_timeout,
            c.stats_refresh_ahead
        ),
        (None, None, None)
    );
}

#[test]
fn serve_stale_and_refresh_ahead_are_read() {
    let c = from(&[
        ("CACHE_MAX_STALE", "5m"),
        ("CACHE_LOAD_TIMEOUT", "250ms"),
        ("STATS_REFRESH_AHEAD", "20"),
    ])
    .unwrap();
    assert_eq!(c.cache_max_stale, Some(Duration::from_secs(300)));
    assert_eq!(c.cache_load_timeout, Some(Duration::from_millis(250)));
    assert_eq!(c.stats_refresh_ahead, Some(20));
    let off = from(&[("CACHE_MAX_STALE", "off"), ("STATS_REFRESH_AHEAD", "off")]).unwrap();
    assert_eq!((off.cache_max_stale, off.stats_refresh_ahead), (None, None));
}

#[test]
fn redis_url_turns_on_both_tiers_by_default() {
    let c = from(&[("REDIS_URL", "redis://127.0.0.1:1")]).unwrap();
    assert_eq!(c.cache_tiers, Topology::L1L2);
}

#[test]
fn every_setting_is_read() {
    let c = from(&[
        ("DATABASE_URL", "postgres://u:p@db/petshop"),
        ("REDIS_URL", "redis://r:6379/0"),
        ("CACHE_TIERS", "l2"),
        ("CACHE_STRATEGY", "versioned"),
        ("CACHE_LEASE", "on"),
        ("PETS_LIST_TTL", "2s"),
        ("PET_TTL", "5m"),
        ("STATS_TTL", "1500ms"),
        ("L1_MAX_BYTES", "16MiB"),
        ("REDIS_OP_TIMEOUT", "20ms"),
        ("CACHE_JITTER_PERCENT", "0"),
        ("BIND", "0.0.0.0:9000"),
        ("ADMIN_TOKEN", "0123456789abcdef"),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "debug"),
    ])
    .unwrap();
    assert_eq!(c.cache_tiers, Topology::L2);
    assert_eq!(c.cache_strategy, Strategy::Versioned);
    assert!(c.cache_lease);
    assert_eq!(c.pets_list_ttl.as_duration(), Duration::from_secs(2));
    assert_eq!(c.pet_ttl.as_duration(), Duration::from_secs(300));
    assert_eq!(c.stats_ttl.as_duration(), Duration::from_millis(1500));
    assert_eq!(c.l1_max_bytes, 16 << 20);
    assert_eq!(c.redis_op_timeout, Duration::from_millis(20));
    assert_eq!(c.cache_jitter_percent, 0);
    assert_eq!(c.bind.port(), 9000);
    assert!(c.log_json);
    // Secrets stay out of logs.
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("0123456789abcdef") && !shown.contains(":p@"),
        "{shown}"
    );
}

#[test]
fn empty_values_count_as_unset() {
    let c = from(&[("REDIS_URL", ""), ("CACHE_TIERS", " "), ("ADMIN_TOKEN", "")]).unwrap();
    assert_eq!(
        (c.redis_url, c.cache_tiers, c.admin_token),
        (None, Topology::L1, None)
    );
}

#[test]
fn bad_values_name_the_variable_and_the_allowed_values() {
    /// Variables, the one at fault, words its message must contain.
    type Case = (
        &'static [(&'static str, &'static str)],
        &'static str,
        &'static [&'static str],
    );
    let cases: &[Case] = &[
        (
            &[("CACHE_TIERS", "l3")],
            "CACHE_TIERS",
            &["none", "l1", "l2", "l1+l2"],
        ),
        (&[("CACHE_TIERS", "l2")], "CACHE_TIERS", &["REDIS_URL"]),
        (&[("CACHE_TIERS", "l1+l2")], "CACHE_TIERS", &["REDIS_URL"]),
        (
            &[("CACHE_STRATEGY", "write-back")],
            "CACHE_STRATEGY",
            &["cache-aside", "write-through", "versioned"],
        ),
        (&[("CACHE_LEASE", "yes")], "CACHE_LEASE", &["off", "on"]),
        (&[("CACHE_LEASE", "on")], "CACHE_LEASE", &["l2", "l1+l2"]),
        (&[("PETS_LIST_TTL", "5")], "PETS_LIST_TTL", &["5s"]),
        (&[("PET_TTL", "soon")], "PET_TTL", &["5s"]),
        (&[("STATS_TTL", "0s")], "STATS_TTL", &["1ms", "30 days"]),
        (&[("PET_TTL", "31days")], "PET_TTL", &["1ms", "30 days"]),
        (&[("L1_MAX_BYTES", "0")], "L1_MAX_BYTES", &["MiB"]),
        (&[("L1_MAX_BYTES", "lots")], "L1_MAX_BYTES", &["MiB"]),
        (
            &[("REDIS_OP_TIMEOUT", "0ms")],
            "REDIS_OP_TIMEOUT",
            &["1ms", "60s"],
        ),
        (
            &[("CACHE_JITTER_PERCENT", "101")],
            "CACHE_JITTER_PERCENT",
            &["0 to 100"],
        ),
        (&[("BIND", "localhost")], "BIND", &["127.0.0.1:8000"]),
        (&[("ADMIN_TOKEN", "short")], "ADMIN_TOKEN", &["16"]),
        (&[("LOG_FORMAT", "xml")], "LOG_FORMAT", &["text", "json"]),
        (
            &[("CACHE_MAX_STALE", "forever")],
            "CACHE_MAX_STALE",
            &["off", "30s"],
        ),
        (
            &[("CACHE_MAX_STALE", "10ms")],
            "CACHE_MAX_STALE",
            &["off", "1s"],
        ),
        (
            &[("CACHE_LOAD_TIMEOUT", "200ms")],
            "CACHE_LOAD_TIMEOUT",
            &["CACHE_MAX_STALE"],
        ),
        (
            &[("STATS_REFRESH_AHEAD", "100")],
            "STATS_REFRESH_AHEAD",
            &["off", "1 to 99"],
        ),
        (
            &[("DATABASE_URL", "mysql://u:secret@h/db")],
            "DATABASE_URL",
            &["sqlite:", "postgres://"],
        ),
        (
            &[("REDIS_URL", "http://r:6379")],
            "REDIS_URL",
            &["redis://"],
        ),
    ];
    for (vars, var, allowed) in cases {
        let e = from(vars).expect_err(&format!("{vars:?} must be refused"));
        assert_eq!(e.var, *var, "{vars:?}");
        let msg = e.to_string();
        assert!(msg.contains(var), "{vars:?}: {msg}");
        for a in *allowed {
            assert!(msg.contains(a), "{vars:?}: {msg:?} should mention {a:?}");
        }
        assert!(!msg.contains("secret"), "a password leaked: {msg}");
    }
}

#[test]
fn rate_limits_are_read_and_bad_ones_name_the_variable() {
    let c = from(&[
        ("RATE_LIMIT", "100/1m"),
        ("RATE_LIMIT_KEY_HEADER", "X-Client"),
    ])
    .unwrap();
    let rate = c.rate_limit.unwrap();
    assert_eq!((rate.requests, rate.window), (100, Duration::from_secs(60)));
    assert_eq!(c.rate_limit_key_header.as_deref(), Some("x-client"));
    let off = from(&[("RATE_LIMIT", ""), ("RATE_LIMIT_KEY_HEADER", "off")]).unwrap();
    assert_eq!((off.rate_limit, off.rate_limit_key_header), (None, None));
    for (var, value) in [
        ("RATE_LIMIT", "lots"),
        ("RATE_LIMIT", "0/1m"),
        ("RATE_LIMIT", "10/100ms"),
        ("RATE_LIMIT_KEY_HEADER", "x api key"),
    ] {
        let e = from(&[(var, value)]).unwrap_err();
        assert_eq!(e.var, var, "{value}: {e}");
        assert!(e.to_string().contains(value), "{e}");
    }
}

#[test]
fn trusted_proxies_and_api_keys_are_read() {
    let keys = crate::helpers::api_keys_file(&["alice-key", "bob-key"]);
    let c = from(&[
        ("TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7,fd00::/8"),
        ("RATE_LIMIT_API_KEYS_FILE", keys.path().to_str().unwrap()),
    ])
    .unwrap();
    let ip = |s: &str| -> std::net::IpAddr { s.parse().unwrap() };
    assert!(c.trusted_proxies.contains(ip("10.1.2.3")));
    assert!(c.trusted_proxies.contains(ip("192.168.1.7")));
    assert!(c.trusted_proxies.contains(ip("fd00::1")));
    assert!(!c.trusted_proxies.contains(ip("192.168.1.8")));
    let known = c.rate_limit_api_keys.as_ref().unwrap();
    assert_eq!(known.len(), 2);
    assert!(known.find(b"alice-key").is_some() && known.find(b"eve-key").is_none());
    assert!(
        !format!("{c:?}").contains(&known.find(b"alice-key").unwrap().to_string()),
        "no hash in the logged configuration"
    );
    let none = from(&[("TRUSTED_PROXIES", ""), ("RATE_LIMIT_API_KEYS_FILE", "")]).unwrap();
    assert!(none.trusted_proxies.is_empty() && none.rate_limit_api_keys.is_none());
}

#[test]
fn a_keys_file_made_as_the_readme_says_knows_its_key() {
    // The README's recipe: `printf %s "$KEY" | sha256sum | cut -d' ' -f1 >> keys`.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("api-keys");
    let made = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"KEY=0123abcd; printf %s "$KEY" | sha256sum | cut -d' ' -f1 >> "$1""#)
        .arg("sh")
        .arg(&file)
        .status()
        .expect("sh");
    assert!(made.success());
    let c = from(&[("RATE_LIMIT_API_KEYS_FILE", file.to_str().unwrap())]).unwrap();
    assert!(c.rate_limit_api_keys.unwrap().find(b"0123abcd").is_some());
}

#[test]
fn a_bad_proxy_or_keys_file_stops_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let bad = dir.path().join("bad");
    let hash = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    std::fs::write(&bad, format!("# keys\n{hash}\nsecret-raw-key\n")).unwrap();
    let (missing, bad) = (missing.to_str().unwrap(), bad.to_str().unwrap());
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a [&'a str]);
    let cases: &[Case<'_>] = &[
        (
            &[("TRUSTED_PROXIES", "10.0.0.0/8,10.0.0.0/33")],
            "TRUSTED_PROXIES",
            &["\"10.0.0.0/33\"", "CIDR"],
        ),
        (
            &[("TRUSTED_PROXIES", "nginx")],
            "TRUSTED_PROXIES",
            &["\"nginx\""],
        ),
        (
            &[("RATE_LIMIT_API_KEYS_FILE", missing)],
            "RATE_LIMIT_API_KEYS_FILE",
            &["cannot read", missing],
        ),
        (
            &[("RATE_LIMIT_API_KEYS_FILE", bad)],
            "RATE_LIMIT_API_KEYS_FILE",
            &[bad, "line 3", "SHA-256"],
        ),
        (
            &[
                ("RATE_LIMIT_API_KEYS_FILE", bad),
                ("RATE_LIMIT_KEY_HEADER", "off"),
            ],
            "RATE_LIMIT_API_KEYS_FILE",
            &["RATE_LIMIT_KEY_HEADER"],
        ),
    ];
    for (vars, var, words) in cases {
        let e = from(vars).expect_err(&format!("{vars:?} must be refused"));
        assert_eq!(e.var, *var, "{vars:?}: {e}");
        let msg = e.to_string();
        assert!(msg.contains(var), "{msg}");
        for w in *words {
            assert!(msg.contains(w), "{vars:?}: {msg:?} should mention {w:?}");
        }
        assert!(
            !msg.contains("secret-raw-key"),
            "a line that may be a key leaked: {msg}"
        );
    }
}
