//! The real thing: the app bound to a port, and the `petshop` binary, over TCP.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use petshop::startup::{Application, Shutdown};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{bounded, config};

/// A minimal HTTP/1.1 exchange (`Connection: close`): status, raw head, JSON body.
pub(crate) async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String, Value) {
    http_with(addr, method, path, body, &[]).await
}

/// [`http`] with more request headers (`name: value`).
pub async fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[&str],
) -> (u16, String, Value) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let body = body.unwrap_or("");
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let json = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, head.to_lowercase(), json)
}

#[tokio::test]
async fn after_sigterm_ready_answers_503_while_requests_are_still_served() {
    bounded(async {
        // Arrange: a server that drains for 2 s on SIGTERM.
        let config = config(&[("BIND", "127.0.0.1:0"), ("SHUTDOWN_DRAIN", "2s")]);
        let app = Application::build(&config).await.unwrap();
        let addr = app.addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
            Shutdown::Terminate
        }));
        let (status, _, ready) = http(addr, "GET", "/ready", None).await;
        assert_eq!((status, ready["status"].as_str()), (200, Some("ready")));

        // Act: SIGTERM.
        let _ = stop.send(());

        // Assert: /ready says draining at once (the load balancer stops sending), while
        // requests are still served until the drain ends; then the server stops.
        let deadline = Instant::now() + Duration::from_secs(1);
        let (status, ready) = loop {
            let (status, _, ready) = http(addr, "GET", "/ready", None).await;
            if status == 503 || Instant::now() > deadline {
                break (status, ready);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!((status, ready["status"].as_str()), (503, Some("draining")));
        assert_eq!(http(addr, "GET", "/health", None).await.0, 200);
        assert_eq!(http(addr, "GET", "/pets", None).await.0, 200);
        tokio::time::timeout(Duration::from_secs(15), server)
            .await
            .expect("the server stops after the drain")
            .expect("no panic")
            .expect("clean shutdown");
    })
    .await;
}

#[tokio::test]
async fn the_app_bound_to_port_0_serves_the_seed_sequence_and_shuts_down_gracefully() {
    bounded(async {
        let app = Application::build(&config(&[("BIND", "127.0.0.1:0")]))
            .await
            .unwrap();
        let addr = app.addr();
        assert_ne!(addr.port(), 0);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
            Shutdown::Interrupt
        }));

        let (status, _, pet) = http(
            addr,
            "POST",
            "/pets",
            Some(r#"{"name":"Rex","species":"dog","age":3,"happiness":80}"#),
        )
        .await;
        assert_eq!(status, 201);
        let path = format!("/pets/{}", pet["id"]);
        let (_, head, first) = http(addr, "GET", &path, None).await;
        assert_eq!(first["cached"], false);
        assert!(
            head.contains("x-cache: miss") && head.contains("x-request-id:"),
            "{head}"
        );
        let (_, head, second) = http(addr, "GET", &path, None).await;
        assert_eq!(second["cached"], true);
        assert!(
            head.contains("x-cache: hit-l1") && head.contains("x-cache-strategy: cache-aside"),
            "{head}"
        );

        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(15), server)
            .await
            .expect("the server stops after the signal")
            .unwrap()
            .unwrap();
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "still listening after shutdown"
        );
    })
    .await;
}

/// A child process (the `petshop` binary, nginx), killed on drop.
pub(crate) struct Binary(pub(crate) Child);

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The `petshop` binary in `dir`, with only `env` (and `PATH`) in its environment.
pub(crate) fn petshop(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_petshop"));
    cmd.current_dir(dir)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied());
    cmd
}

/// Waits (20 s at most) until `child` listens on `addr`; fails if it exits first.
pub(crate) async fn wait_until_up(addr: SocketAddr, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).await.is_err() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the process exited at start-up"
        );
        assert!(
            Instant::now() < deadline,
            "nothing started listening on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_binary_serves_on_its_sqlite_file_and_stops_on_sigterm() {
    bounded(async {
        let dir = tempdir();
        let addr = free_addr();
        let bind = addr.to_string();
        // The default database: a SQLite file in the working directory, created if missing.
        let seeded = petshop(&dir, &[], &["seed", "--pets", "50"])
            .output()
            .unwrap();
        assert!(
            seeded.status.success(),
            "{}",
            String::from_utf8_lossy(&seeded.stderr)
        );
        assert!(String::from_utf8_lossy(&seeded.stdout).contains("seeded 50 pets"));
        assert!(dir.join("petshop.sqlite").exists());

        let mut bin = Binary(
            petshop(&dir, &[("BIND", bind.as_str())], &[])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_until_up(addr, &mut bin.0).await;
        let (_, _, first) = http(addr, "GET", "/pets/1", None).await;
        let (_, head, second) = http(addr, "GET", "/pets/1", None).await;
        assert_eq!(
            (first["cached"].as_bool(), second["cached"].as_bool()),
            (Some(false), Some(true))
        );
        assert!(head.contains("x-cache: hit-l1"), "{head}");
        let (status, _, stats) = http(addr, "GET", "/stats", None).await;
        assert_eq!((status, stats["total_pets"].as_u64()), (200, Some(50)));
        let (status, head, _) = http(addr, "GET", "/docs", None).await;
        assert!(status == 200 || head.contains("location:"), "{head}");

        let pid = bin.0.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(s) = bin.0.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "petshop ignored SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "exit after SIGTERM: {status:?}");
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

#[tokio::test]
async fn the_binary_refuses_bad_configuration_naming_the_variable() {
    bounded(async {
        let dir = tempdir();
        let out = petshop(&dir, &[("CACHE_STRATEGY", "write-back")], &[])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("CACHE_STRATEGY") && err.contains("write-through"),
            "{err}"
        );
        let out = petshop(&dir, &[], &["seed", "--pets", "lots"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

#[tokio::test]
async fn empty_variables_mean_the_default_when_clap_reads_the_environment() {
    bounded(async {
        let dir = tempdir();
        // Every value empty but one that breaks a rule between settings: the error is
        // about that one, so the empty ones were read as their defaults.
        let mut env: Vec<(&str, &str)> = petshop::config::VARIABLES
            .iter()
            .map(|v| (*v, ""))
            .collect();
        env.push(("CACHE_LEASE", "on"));
        let out = petshop(&dir, &env, &["seed", "--pets", "1"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(
            err.contains("invalid CACHE_LEASE") && err.contains("l1+l2"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

#[tokio::test]
async fn the_binary_tells_its_version_and_lists_every_setting_with_its_default() {
    bounded(async {
        let dir = tempdir();
        let out = petshop(&dir, &[], &["--version"]).output().unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("petshop {}", env!("CARGO_PKG_VERSION"))
        );
        let out = petshop(&dir, &[], &["--help"]).output().unwrap();
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        for var in petshop::config::VARIABLES {
            assert!(help.contains(&format!("[env: {var}")), "{var}:\n{help}");
        }
        for default in [
            "[default: sqlite://petshop.sqlite?mode=rwc]",
            "[default: auto]",
            "[default: 60s]",
            "[default: 127.0.0.1:8000]",
            "[default: text]",
        ] {
            assert!(help.contains(default), "{default}:\n{help}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

#[tokio::test]
async fn seeding_is_deterministic() {
    bounded(async {
        use petshop::service::{db, seed};
        let mut pets = Vec::new();
        for _ in 0..2 {
            let conn = db::connect("sqlite::memory:", |_| {}).await.unwrap();
            assert_eq!(seed::seed(&conn, 2_345, 7).await.unwrap(), 2_345);
            let filter = petshop::model::PetFilter {
                species: None,
                min_age: None,
                max_age: None,
                limit: 100,
                offset: 2_300,
            };
            let page = petshop::service::pets::list(&conn, &filter).await.unwrap();
            assert_eq!((page.total, page.pets.len()), (2_345, 45));
            pets.push(
                page.pets
                    .into_iter()
                    .map(|p| (p.id, p.name, p.species, p.age, p.happiness))
                    .collect::<Vec<_>>(),
            );
        }
        assert_eq!(pets[0], pets[1]);
    })
    .await;
}

pub(crate) fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "petshop-test-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn there_is_no_benchmark_endpoint_in_the_service() {
    bounded(async {
        let app = crate::helpers::spawn(&[]).await;
        assert_eq!(app.get("/bench/bare").await.status, 404);
        assert!(!app.get("/openapi.json").await.text.contains("/bench"));
    })
    .await;
}
