//! Rate limiting: off by default; one limit across instances sharing a Redis; its own
//! window per client (a known API key, else the client address); counted in process
//! (and `/ready` says `local`) while Redis is cut; probes and scrapes exempt; 429s
//! documented in the spec. Made-up keys and forged forwarding headers buy nothing;
//! behind a trusted proxy each forwarded client has its own window.
//!
//! Clients with addresses of their own connect from 127.0.0.x (all of 127/8 is
//! loopback), to a shop on 127.0.0.1.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use cache::testing::{Fault, Proxy, RedisServer};
use petshop::startup::{Application, Shutdown};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;

use crate::helpers::{Reply, TestApp, api_keys_file, bounded, config, spawn, spawn_config};

/// A reply over TCP: status, headers (lower-case names), JSON body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    headers: HashMap<String, String>,
    json: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<u64> {
        self.headers.get(name).and_then(|v| v.parse().ok())
    }
}

/// `GET path` from 127.0.0.1, with an `x-api-key` if given.
async fn get(addr: SocketAddr, path: &str, key: Option<&str>) -> Answer {
    let key = key.map(|k| ("x-api-key", k));
    get_from(1, addr, path, key.as_slice()).await
}

/// `GET path` from 127.0.0.`host`, with `headers`.
pub(crate) async fn get_from(
    host: u8,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let socket = TcpSocket::new_v4().expect("socket");
    let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)), 0);
    socket.bind(from).expect("bind a loopback address");
    let mut s = socket.connect(addr).await.expect("connect");
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
        .collect();
    // A chunked body would need decoding; these answers are small and sized.
    let json = serde_json::from_str(body).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        json,
    }
}

/// A pet shop on a free port of 127.0.0.1, stopped when the sender is dropped.
async fn serve(vars: &[(&str, &str)]) -> (SocketAddr, oneshot::Sender<()>) {
    let mut all = vec![("BIND", "127.0.0.1:0")];
    all.extend_from_slice(vars);
    let app = Application::build(&config(&all)).await.expect("app builds");
    let addr = app.addr();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = stopped.await;
        Shutdown::Interrupt
    }));
    (addr, stop)
}

async fn rate_keys(redis: &RedisServer) -> Vec<String> {
    let mut con = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut con)
        .await
        .unwrap()
}

fn metric(text: &str, outcome: &str, counter: &str) -> u64 {
    let series = format!(
        "petshop_rate_limit_requests_total{{counter=\"{counter}\",outcome=\"{outcome}\"}} "
    );
    text.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in the metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_one_redis_let_exactly_the_limit_through() {
    bounded(async {
        // Arrange: two pet shops on one Redis, 10 requests per minute per client.
        let redis = RedisServer::spawn();
        let url = redis.url();
        let keys = api_keys_file(&["key-two"]);
        let keys_path = keys.path().display().to_string();
        let vars = [
            ("REDIS_URL", url.as_str()),
            ("RATE_LIMIT", "10/1m"),
            ("RATE_LIMIT_API_KEYS_FILE", keys_path.as_str()),
            ("DATABASE_URL", "sqlite::memory:"),
        ];
        let ((a, _stop_a), (b, _stop_b)) = (serve(&vars).await, serve(&vars).await);

        // Act: 30 requests from 127.0.0.1, alternating instances.
        let mut answers = Vec::new();
        for i in 0..30 {
            let addr = if i % 2 == 0 { a } else { b };
            answers.push(get(addr, "/pets", None).await);
        }

        // Assert: the first 10 pass, counting down; the 20 others are 429s.
        let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
        assert_eq!(statuses[..10], [200; 10], "{statuses:?}");
        assert_eq!(statuses[10..], [429; 20], "{statuses:?}");
        let remaining: Vec<u64> = answers
            .iter()
            .map(|r| {
                r.header("ratelimit-remaining")
                    .expect("RateLimit-Remaining")
            })
            .collect();
        assert_eq!(remaining[..10], [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
        for r in &answers {
            assert_eq!(r.header("ratelimit-limit"), Some(10));
            let reset = r.header("ratelimit-reset").expect("RateLimit-Reset");
            assert!((1..=60).contains(&reset), "reset {reset}");
        }
        for r in &answers[10..] {
            assert_eq!(r.header("ratelimit-remaining"), Some(0));
            let retry = r.header("retry-after").expect("Retry-After");
            assert!((1..=60).contains(&retry), "Retry-After {retry}");
            assert!(r.headers["content-type"].starts_with("application/json"));
            assert!(
                r.json["error"]
                    .as_str()
                    .unwrap()
                    .contains("too many requests"),
                "{}",
                r.json
            );
        }
        assert!(
            answers[..10]
                .iter()
                .all(|r| r.header("retry-after").is_none())
        );

        // A known API key has its own window, on either instance.
        for addr in [a, b] {
            let r = get(addr, "/pets", Some("key-two")).await;
            assert_eq!(r.status, 200);
            assert_eq!(r.header("ratelimit-limit"), Some(10));
        }
        assert_eq!(
            get(a, "/pets", Some("key-two"))
                .await
                .header("ratelimit-remaining"),
            Some(7)
        );

        // Probes and scrapes are never limited, and say where requests are counted.
        for path in ["/health", "/ready", "/metrics"] {
            let r = get(a, path, None).await;
            assert_eq!(r.status, 200, "{path}");
            assert!(r.header("ratelimit-limit").is_none(), "{path} is exempt");
        }
        assert_eq!(get(b, "/ready", None).await.json["rate_limit"], "shared");
        let scrape = scrape_metrics(a).await;
        assert_eq!(metric(&scrape, "allowed", "shared"), 5 + 2);
        assert_eq!(metric(&scrape, "limited", "shared"), 10);
        assert_eq!(metric(&scrape, "allowed", "local"), 0);

        // The counters in Redis are named by hashes, never by the client key.
        let keys: Vec<String> = rate_keys(&redis)
            .await
            .into_iter()
            .filter(|k| k.contains(":rate:"))
            .collect();
        assert_eq!(keys.len(), 2, "one counter per client: {keys:?}");
        for key in rate_keys(&redis).await {
            assert!(
                !key.contains("127.0.0.1") && !key.contains("key-two"),
                "{key}"
            );
        }
        for key in &keys {
            let hash = key
                .strip_prefix("{petshop:rate:")
                .and_then(|k| k.strip_suffix('}'))
                .expect("under the prefix");
            assert!(
                hash.len() == 32 && hash.bytes().all(|c| c.is_ascii_hexdigit()),
                "{key}"
            );
        }
    })
    .await;
}

/// `/metrics` as text (its body is not JSON).
async fn scrape_metrics(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

async fn keyed(app: &TestApp, key: &str) -> Reply {
    app.send("GET", "/stats", &[("x-api-key", key)], None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_cut_requests_are_counted_in_process_and_ready_says_local() {
    bounded(async {
        // Arrange: a pet shop reaching its Redis through a proxy, 3 requests a minute.
        let redis = RedisServer::spawn();
        let proxy = Proxy::spawn(redis.port());
        let url = proxy.url();
        let keys = api_keys_file(&["k", "probe"]);
        let app = spawn_config(
            config(&[
                ("REDIS_URL", url.as_str()),
                ("RATE_LIMIT", "3/1m"),
                ("REDIS_OP_TIMEOUT", "100ms"),
                (
                    "RATE_LIMIT_API_KEYS_FILE",
                    keys.path().to_str().expect("a UTF-8 path"),
                ),
            ]),
            None,
        )
        .await;
        let statuses = |rs: &[Reply]| rs.iter().map(|r| r.status).collect::<Vec<_>>();
        let mut shared = Vec::new();
        for _ in 0..4 {
            shared.push(keyed(&app, "k").await);
        }
        assert_eq!(statuses(&shared), [200, 200, 200, 429]);
        assert_eq!(app.get("/ready").await.json["rate_limit"], "shared");

        // Act: cut the network to Redis.
        proxy.set(Fault::Cut);
        let mut local = Vec::new();
        for _ in 0..4 {
            local.push(keyed(&app, "k").await);
        }

        // Assert: a window of its own in this process (the limit holds per instance),
        // no 5xx, and /ready says so.
        assert_eq!(statuses(&local), [200, 200, 200, 429]);
        assert!(local[3].header("retry-after").is_some());
        let ready = app.get("/ready").await;
        assert_eq!(ready.status, 200, "{}", ready.text);
        assert_eq!(ready.json["rate_limit"], "local", "{}", ready.text);
        let scrape = app.get("/metrics").await.text;
        assert_eq!(metric(&scrape, "allowed", "local"), 3);
        assert_eq!(metric(&scrape, "limited", "local"), 1);
        assert_eq!(metric(&scrape, "allowed", "shared"), 3);

        // Redis back: counting returns to it (a fresh key probes, once the breaker
        // lets it), and the client's shared window, used up before the cut, holds.
        proxy.set(Fault::None);
        loop {
            assert_ne!(keyed(&app, "probe").await.status, 500);
            if app.get("/ready").await.json["rate_limit"] == "shared" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(keyed(&app, "k").await.status, 429);
        drop(redis);
    })
    .await;
}

#[tokio::test]
async fn off_by_default_no_headers_and_never_a_429() {
    bounded(async {
        let app = spawn(&[]).await;
        for _ in 0..50 {
            let r = keyed(&app, "k").await;
            assert_eq!(r.status, 200);
            assert!(r.header("ratelimit-limit").is_none());
        }
        assert_eq!(app.get("/ready").await.json["rate_limit"], "off");
    })
    .await;
}

#[tokio::test]
async fn without_redis_the_limit_is_counted_in_process_and_probes_are_exempt() {
    bounded(async {
        let keys = api_keys_file(&["k"]);
        let app = spawn(&[
            ("RATE_LIMIT", "2/1h"),
            ("RATE_LIMIT_API_KEYS_FILE", keys.path().to_str().unwrap()),
        ])
        .await;
        let statuses: Vec<u16> = four_statuses(&app).await;
        assert_eq!(statuses, [200, 200, 429, 429]);
        let r = keyed(&app, "k").await;
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((3500..=3600).contains(&retry), "Retry-After {retry}");
        assert_eq!(r.header("ratelimit-reset"), r.header("retry-after"));
        for path in ["/health", "/ready", "/metrics"] {
            for _ in 0..5 {
                assert_eq!(app.get(path).await.status, 200, "{path}");
            }
        }
        assert_eq!(app.get("/ready").await.json["rate_limit"], "local");
        // The client without a key (the test client's address) has its own window.
        assert_eq!(app.get("/pets").await.status, 200);
    })
    .await;
}

async fn four_statuses(app: &TestApp) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..4 {
        out.push(keyed(app, "k").await.status);
    }
    out
}

/// The statuses of `answers`.
fn statuses(answers: &[Answer]) -> Vec<u16> {
    answers.iter().map(|a| a.status).collect()
}

/// `n` answers to `GET /pets` from 127.0.0.`host`, the `i`th with `headers(i)`.
async fn several(
    n: usize,
    host: u8,
    addr: SocketAddr,
    headers: impl Fn(usize) -> Vec<(&'static str, String)>,
) -> Vec<Answer> {
    let mut out = Vec::new();
    for i in 0..n {
        let owned = headers(i);
        let hs: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
        out.push(get_from(host, addr, "/pets", &hs).await);
    }
    out
}

#[tokio::test]
async fn without_trusted_proxies_a_forged_x_forwarded_for_changes_nothing() {
    bounded(async {
        // Arrange: 3 requests a minute, no TRUSTED_PROXIES.
        let (addr, _stop) = serve(&[("RATE_LIMIT", "3/1m")]).await;

        // Act: one client, a new forwarded address in each request.
        let forged = several(6, 1, addr, |i| {
            vec![
                ("x-forwarded-for", format!("203.0.113.{i}")),
                ("forwarded", format!("for=198.51.100.{i}")),
            ]
        })
        .await;

        // Assert: counted by its own address all the same.
        assert_eq!(statuses(&forged), [200, 200, 200, 429, 429, 429]);
    })
    .await;
}

#[tokio::test]
async fn made_up_api_keys_count_against_the_address_and_a_known_key_has_its_own_bucket() {
    bounded(async {
        // Arrange: 3 requests a minute; one key is known.
        let keys = api_keys_file(&["the-known-key"]);
        let path = keys.path().display().to_string();
        let (addr, _stop) = serve(&[
            ("RATE_LIMIT", "3/1m"),
            ("RATE_LIMIT_API_KEYS_FILE", path.as_str()),
        ])
        .await;

        // Act: a new made-up key in each request.
        let rotated = several(6, 1, addr, |i| vec![("x-api-key", format!("made-up-{i}"))]).await;

        // Assert: the address's limit holds, as without a key.
        assert_eq!(statuses(&rotated), [200, 200, 200, 429, 429, 429]);
        assert_eq!(get_from(1, addr, "/pets", &[]).await.status, 429);
        // The hash from the file is not a key either.
        let hash = std::fs::read_to_string(keys.path()).unwrap();
        let hash = hash.lines().last().unwrap().to_owned();
        assert_eq!(get(addr, "/pets", Some(hash.as_str())).await.status, 429);

        // The known key has a bucket of its own, wherever it comes from.
        let known = several(2, 1, addr, |_| vec![("x-api-key", "the-known-key".into())]).await;
        let elsewhere = several(2, 2, addr, |_| vec![("x-api-key", "the-known-key".into())]).await;
        assert_eq!(statuses(&known), [200, 200]);
        assert_eq!(statuses(&elsewhere), [200, 429]);
        assert_eq!(known[0].header("ratelimit-remaining"), Some(2));
        // 127.0.0.2 itself has used none of its window.
        assert_eq!(
            get_from(2, addr, "/pets", &[])
                .await
                .header("ratelimit-remaining"),
            Some(2)
        );
    })
    .await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() {
    bounded(async {
        // Arrange: 2 requests a minute; 127.0.0.1 is the proxy, 127.0.0.2 is not.
        let (addr, _stop) =
            serve(&[("RATE_LIMIT", "2/1m"), ("TRUSTED_PROXIES", "127.0.0.1")]).await;
        let via_proxy = |xff: &str| vec![("x-forwarded-for", xff.to_owned())];

        // Act + Assert: two clients behind the proxy, a window each.
        let first = several(3, 1, addr, |_| via_proxy("203.0.113.1")).await;
        let second = several(3, 1, addr, |_| via_proxy("203.0.113.2")).await;
        assert_eq!(statuses(&first), [200, 200, 429]);
        assert_eq!(statuses(&second), [200, 200, 429]);

        // A new client of the proxy's own (its address is one more trusted hop).
        let third = several(1, 1, addr, |_| via_proxy("203.0.113.3, 127.0.0.1")).await;
        assert_eq!(statuses(&third), [200]);

        // The first client forging a left-most entry is still the first client.
        let forged = several(3, 1, addr, |i| {
            via_proxy(&format!("198.51.100.{i}, 203.0.113.1"))
        })
        .await;
        assert_eq!(statuses(&forged), [429, 429, 429]);

        // Forwarded (RFC 7239), with a quoted IPv6 address and port.
        let v6 = several(3, 1, addr, |_| {
            vec![(
                "forwarded",
                r#"for=192.0.2.1, for="[2001:db8::1]:4711";proto=http"#.into(),
            )]
        })
        .await;
        assert_eq!(statuses(&v6), [200, 200, 429]);

        // A malformed right-most entry: the proxy itself is the client.
        let garbled = several(3, 1, addr, |i| {
            via_proxy(&format!("203.0.113.{}, garbage", 10 + i))
        })
        .await;
        assert_eq!(statuses(&garbled), [200, 200, 429]);
        assert_eq!(get_from(1, addr, "/pets", &[]).await.status, 429);

        // A peer that is not a trusted proxy is its own client, whatever it forwards:
        // 203.0.113.3 has a request left, 127.0.0.2 two.
        let untrusted = several(3, 2, addr, |_| via_proxy("203.0.113.3")).await;
        assert_eq!(statuses(&untrusted), [200, 200, 429]);
    })
    .await;
}

#[test]
fn the_spec_documents_a_429_with_its_headers_on_every_limited_operation() {
    let spec: Value = serde_json::from_str(&petshop::api::spec_json()).unwrap();
    let mut limited = 0;
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let r429 = &op["responses"]["429"];
            if petshop::api::rate_limit::EXEMPT.contains(&path.as_str()) {
                assert!(r429.is_null(), "{method} {path} is exempt");
                continue;
            }
            limited += 1;
            let headers: Vec<String> = r429["headers"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path}: no 429"))
                .keys()
                .map(|h| h.to_lowercase())
                .collect();
            for h in [
                "retry-after",
                "ratelimit-limit",
                "ratelimit-remaining",
                "ratelimit-reset",
            ] {
                assert!(headers.contains(&h.to_owned()), "{method} {path}: {h}");
            }
        }
    }
    assert_eq!(limited, 8);
    let mode = &spec["components"]["schemas"]["Readiness"]["properties"]["rate_limit"];
    assert!(mode.to_string().contains("shared"), "{mode}");
}
