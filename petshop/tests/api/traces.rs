//! Trace export: the binary sends spans over OTLP/HTTP to an in-process collector when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` points at it, and sends nothing without `OTEL_*`.
//!
//! The collector accepts any POST and keeps its path and body. OTLP/protobuf writes
//! strings as raw UTF-8, so span names and attribute values are found in the bytes.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Request, Response, Server};

use crate::helpers::bounded;
use crate::server::{Binary, free_addr, http, http_with, petshop, tempdir, wait_until_up};

type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A throwaway OTLP/HTTP collector on `bind`; stops when dropped.
struct Collector {
    addr: SocketAddr,
    received: Received,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Collector {
    async fn start(bind: &str) -> std::io::Result<Self> {
        let acceptor = TcpListener::bind(bind.to_owned()).into_acceptor().await?;
        let addr = *acceptor.local_addr()[0]
            .as_socket_addr()
            .expect("a TCP address");
        let received: Received = Arc::default();
        let store = received.clone();
        let endpoint = poem::endpoint::make(move |req: Request| {
            let store = store.clone();
            async move {
                let path = req.uri().path().to_owned();
                let body = req.into_body().into_vec().await.unwrap_or_default();
                store.lock().unwrap().push((path, body));
                // An empty ExportTraceServiceResponse: all accepted.
                Response::builder()
                    .content_type("application/x-protobuf")
                    .body(Vec::new())
            }
        });
        let task = tokio::spawn(Server::new_with_acceptor(acceptor).run(endpoint));
        Ok(Self {
            addr,
            received,
            task,
        })
    }

    fn bodies(&self) -> Vec<(String, Vec<u8>)> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Runs the binary in `dir` with `env`, serves a few requests (a create, a miss and a
/// hit, a list, one forwarded for 203.0.113.7), stops it with SIGTERM and returns what
/// it logged on stdout.
async fn serve_a_little(dir: &Path, env: &[(&str, &str)]) -> String {
    let addr = free_addr();
    let bind = addr.to_string();
    let db = format!("sqlite://{}?mode=rwc", dir.join("t.sqlite").display());
    let mut all = vec![
        ("BIND", bind.as_str()),
        ("DATABASE_URL", db.as_str()),
        ("SHUTDOWN_DRAIN", "0s"),
        ("RUST_LOG", "info"),
    ];
    all.extend_from_slice(env);
    let mut bin = Binary(
        petshop(dir, &all, &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start petshop"),
    );
    wait_until_up(addr, &mut bin.0).await;
    let body = r#"{"name":"Rex","species":"dog","age":3,"happiness":80}"#;
    let (status, _, pet) = http(addr, "POST", "/pets", Some(body)).await;
    assert_eq!(status, 201);
    for _ in 0..2 {
        let (status, _, _) = http(addr, "GET", &format!("/pets/{}", pet["id"]), None).await;
        assert_eq!(status, 200);
    }
    assert_eq!(http(addr, "GET", "/pets?species=dog", None).await.0, 200);
    let forwarded = ["x-forwarded-for: 203.0.113.7"];
    assert_eq!(
        http_with(addr, "GET", "/stats", None, &forwarded).await.0,
        200
    );
    let pid = bin.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while bin.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "petshop ignored SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut out = String::new();
    if let Some(mut stdout) = bin.0.stdout.take() {
        use std::io::Read as _;
        let _ = stdout.read_to_string(&mut out);
    }
    out
}

#[tokio::test]
async fn with_an_otlp_endpoint_spans_of_requests_loads_and_tier_lookups_are_exported() {
    bounded(async {
        // Arrange: a collector on a free port, the binary pointed at it.
        let collector = Collector::start("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", collector.addr);
        let dir = tempdir();

        // Act: a few requests; SIGTERM flushes the batch.
        let logs = serve_a_little(
            &dir,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                ("OTEL_SERVICE_NAME", "petshop-under-test"),
                ("TRUSTED_PROXIES", "127.0.0.1"),
            ],
        )
        .await;

        // Assert: the standard path, and every kind of span.
        let got = collector.bodies();
        assert!(!got.is_empty(), "nothing exported; logs:\n{logs}");
        assert!(
            got.iter().all(|(path, _)| path == "/v1/traces"),
            "{:?}",
            got.iter().map(|g| &g.0).collect::<Vec<_>>()
        );
        let all: Vec<u8> = got.into_iter().flat_map(|(_, b)| b).collect();
        for needle in [
            "petshop-under-test",
            "POST /pets",
            "GET /pets/{id}",
            "GET /pets",
            "http.response.status_code",
            "db.load",
            "get_pet",
            "cache.lookup",
            "cache.tier",
            // The client address, as the rate limiter sees it: behind a trusted proxy
            // (127.0.0.1 here), the one it forwards.
            "client.address",
            "203.0.113.7",
            "network.peer.address",
        ] {
            assert!(
                contains(&all, needle),
                "no {needle:?} in the exported spans: {}",
                String::from_utf8_lossy(&all)
                    .split(|c: char| c.is_control() || c == '\u{fffd}')
                    .filter(|s| s.len() > 3)
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
        assert!(logs.contains("traces_exported=true"), "{logs}");
        assert!(logs.contains("client.address=203.0.113.7"), "{logs}");
        assert!(logs.contains("client.address=127.0.0.1"), "{logs}");
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

#[tokio::test]
async fn without_otel_variables_nothing_is_exported() {
    bounded(async {
        // Arrange: a collector where an exporter with no settings would send (the
        // OTLP/HTTP default, 127.0.0.1:4318), if that port is free here.
        let collector = Collector::start("127.0.0.1:4318").await.ok();
        if collector.is_none() {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "127.0.0.1:4318 is taken: checking the start-up log only"
            );
        }
        let dir = tempdir();

        // Act.
        let logs = serve_a_little(&dir, &[("OTEL_SERVICE_NAME", "petshop-under-test")]).await;

        // Assert: no exporter was built, and nothing arrived.
        assert!(logs.contains("traces_exported=false"), "{logs}");
        assert!(!logs.contains("exporting traces"), "{logs}");
        // No TRUSTED_PROXIES: the forwarded address is not believed, not even in logs.
        assert!(logs.contains("client.address=127.0.0.1"), "{logs}");
        assert!(!logs.contains("203.0.113.7"), "{logs}");
        if let Some(c) = collector {
            assert!(
                c.bodies().is_empty(),
                "spans were exported without an endpoint"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}
