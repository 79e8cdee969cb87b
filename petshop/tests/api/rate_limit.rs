//! Rate limiting: off by default; one limit across instances sharing a Redis; its own
//! window per client; counted in process (and `/ready` says `local`) while Redis is cut;
//! probes and scrapes exempt; 429s documented in the spec.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use cache::testing::{Fault, Proxy, RedisServer};
use petshop::startup::{Application, Shutdown};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::helpers::{Reply, TestApp, bounded, config, spawn, spawn_config};

/// A reply over TCP: status, headers (lower-case names), JSON body.
struct Answer {
    status: u16,
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
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let key = key
        .map(|k| format!("x-api-key: {k}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{key}Connection: close\r\n\r\n");
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
        let vars = [
            ("REDIS_URL", url.as_str()),
            ("RATE_LIMIT", "10/1m"),
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

        // Another API key has its own window, on either instance.
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
        let app = spawn_config(
            config(&[
                ("REDIS_URL", url.as_str()),
                ("RATE_LIMIT", "3/1m"),
                ("REDIS_OP_TIMEOUT", "100ms"),
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
        let app = spawn(&[("RATE_LIMIT", "2/1h")]).await;
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
