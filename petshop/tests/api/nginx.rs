//! The scale-out profile's nginx config (`deploy/nginx/nginx.conf`), checked by the
//! nginx on this machine: `nginx -t`, then a real nginx in front of two instances.
//!
//! No Docker here, so no Docker DNS: a local copy of the config points the upstream at
//! loopback addresses (what `petshop` resolves to, one per replica), listens on a free
//! port and keeps its temporary files in a temporary directory. Everything else is the
//! committed file. Without nginx the tests say loudly that they were skipped (`.ci/run`
//! installs it).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use petshop::model::NewPet;
use petshop::startup::{Application, Shutdown};

use crate::helpers::{bounded, config};
use crate::rate_limit::get_from;
use crate::server::{Binary, free_addr, http, http_with, wait_until_up};

const CONF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/nginx/nginx.conf");
/// The upstream line of the committed config: the compose service name, re-resolved.
const UPSTREAM: &str = "server petshop:8000 resolve max_fails=3 fail_timeout=10s;";
/// The first nginx whose open-source build takes `resolve` in an upstream.
const RESOLVE_SINCE: (u32, u32, u32) = (1, 27, 3);

/// The nginx binary and its version, or `None` (said loudly) when there is none.
fn nginx() -> Option<(PathBuf, (u32, u32, u32))> {
    for bin in ["nginx", "/usr/sbin/nginx"] {
        let Ok(out) = Command::new(bin).arg("-v").output() else {
            continue;
        };
        // `nginx version: nginx/1.22.1` (on stderr)
        let text = String::from_utf8_lossy(&out.stderr);
        let version: Vec<u32> = text
            .split('/')
            .nth(1)
            .unwrap_or("")
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .take(3)
            .filter_map(|s| s.parse().ok())
            .collect();
        if let [a, b, c] = version[..] {
            return Some((PathBuf::from(bin), (a, b, c)));
        }
    }
    // Straight to stderr: libtest captures `eprintln!` of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: nginx is not installed; deploy/nginx/nginx.conf was not checked \
         (apt-get install nginx) ***\n"
    );
    None
}

/// The committed config, made to run here: `upstream` replaces the upstream's server
/// line, nginx listens on `listen`, temporary files stay under `dir`.
fn local_config(dir: &Path, upstream: &str, listen: SocketAddr) -> String {
    let conf = std::fs::read_to_string(CONF).expect("deploy/nginx/nginx.conf");
    assert!(conf.contains(UPSTREAM), "the upstream line changed: {conf}");
    assert!(
        conf.contains("listen 80;"),
        "the listen line changed: {conf}"
    );
    let d = dir.display();
    conf.replace(UPSTREAM, upstream)
        .replace("listen 80;", &format!("listen {listen};"))
        .replacen(
            "http {",
            &format!(
                "http {{\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    \
                 fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    \
                 scgi_temp_path {d}/scgi;\n"
            ),
            1,
        )
}

/// `nginx` on the config file `conf` in `dir`, with `extra` global directives.
fn nginx_cmd(bin: &Path, dir: &Path, conf: &Path, extra: &str) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(conf)
        .arg("-g")
        .arg(format!("pid {}; {extra}", dir.join("nginx.pid").display()));
    cmd
}

#[test]
fn nginx_accepts_the_committed_config() {
    let Some((bin, version)) = nginx() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // `petshop` is Docker DNS's; here `localhost` stands for it.
    let upstream = if version >= RESOLVE_SINCE {
        UPSTREAM.replace("petshop:", "localhost:")
    } else {
        let _ = writeln!(
            std::io::stderr(),
            "\n*** nginx {version:?} predates `resolve` in upstreams ({RESOLVE_SINCE:?}): \
             checking the config without that parameter (the image is nginx:1.28) ***\n"
        );
        UPSTREAM
            .replace("petshop:", "localhost:")
            .replace(" resolve", "")
    };
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, local_config(dir.path(), &upstream, free_addr())).unwrap();

    let out = nginx_cmd(&bin, dir.path(), &conf, "")
        .arg("-t")
        .output()
        .expect("run nginx -t");

    assert!(
        out.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_config_never_caches_and_keeps_upstream_connections_alive() {
    let conf = std::fs::read_to_string(CONF).unwrap();
    let directives: Vec<&str> = conf
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect();
    let has = |d: &str| directives.iter().any(|l| l.starts_with(d));
    for cache in [
        "proxy_cache_path",
        "proxy_cache_valid",
        "fastcgi_cache",
        "expires",
    ] {
        assert!(!has(cache), "nginx must not cache: `{cache}` in {CONF}");
    }
    for needed in [
        "proxy_cache off;",
        "keepalive ",
        "proxy_http_version 1.1;",
        "proxy_set_header Connection \"\";",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header Forwarded \"\";",
        "resolver 127.0.0.11",
        "zone petshop",
    ] {
        assert!(has(needed), "`{needed}` missing from {CONF}");
    }
}

/// A pet shop bound to a free loopback port whose pet 1 is named `name`, with `vars`;
/// stops when the sender is dropped or sent to.
async fn instance(
    name: &str,
    vars: &[(&str, &str)],
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let mut all = vec![("BIND", "127.0.0.1:0"), ("CACHE_TIERS", "l1")];
    all.extend_from_slice(vars);
    let app = Application::build(&config(&all)).await.unwrap();
    petshop::service::pets::create(
        &app.state().db,
        NewPet {
            name: name.into(),
            species: "cat".into(),
            age: 3,
            happiness: 50,
        },
    )
    .await
    .unwrap();
    let addr = app.addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = stopped.await;
        Shutdown::Interrupt
    }));
    (addr, stop)
}

/// nginx with the committed config in front of `instances`, on a free port of
/// 127.0.0.1, until dropped (with its temporary directory).
///
/// The directory comes first, so that nginx is stopped before it is removed.
async fn front(bin: &Path, instances: &[SocketAddr]) -> (SocketAddr, tempfile::TempDir, Binary) {
    let dir = tempfile::tempdir().unwrap();
    let upstream = instances
        .iter()
        .map(|a| format!("server {a} max_fails=3 fail_timeout=10s;"))
        .collect::<Vec<_>>()
        .join("\n        ");
    let listen = free_addr();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, local_config(dir.path(), &upstream, listen)).unwrap();
    let log = std::fs::File::create(dir.path().join("nginx.out")).unwrap();
    let mut nginx = Binary(
        nginx_cmd(bin, dir.path(), &conf, "daemon off;")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start nginx"),
    );
    wait_until_up(listen, &mut nginx.0).await;
    (listen, dir, nginx)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_spreads_requests_over_every_instance_and_skips_one_that_is_down() {
    let Some((bin, _)) = nginx() else {
        return;
    };
    bounded(async {
        // Arrange: two instances (each its own database: pet 1 says who answered), and
        // nginx with the committed config in front of both.
        let (first, stop_first) = instance("first", &[]).await;
        let (second, stop_second) = instance("second", &[]).await;
        let (listen, _dir, _nginx) = front(&bin, &[first, second]).await;
        assert_eq!(http(listen, "GET", "/nginx-health", None).await.0, 200);

        // Act: six reads of pet 1 through nginx, each with its own request id.
        let mut seen: Vec<(String, String)> = Vec::new();
        for i in 0..6 {
            let id = format!("x-request-id: nginx-test-{i}");
            let (status, head, body) = http_with(listen, "GET", "/pets/1", None, &[&id]).await;
            // Assert: every answer is an instance's own, never a copy nginx kept: it
            // echoes this request's id and says how that instance's cache served it.
            assert_eq!(status, 200, "{head}");
            assert_eq!(
                header(&head, "x-request-id"),
                Some(format!("nginx-test-{i}").as_str()),
                "{head}"
            );
            let name = body["name"].as_str().unwrap_or_default().to_owned();
            let x_cache = header(&head, "x-cache").unwrap_or_default().to_owned();
            seen.push((name, x_cache));
        }
        for who in ["first", "second"] {
            let answers: Vec<&str> = seen
                .iter()
                .filter(|(n, _)| n == who)
                .map(|(_, x)| x.as_str())
                .collect();
            assert!(!answers.is_empty(), "{who} never answered: {seen:?}");
            // Each instance missed once, then hit its own L1.
            assert_eq!(answers[0], "miss", "{who}: {seen:?}");
            assert!(answers[1..].iter().all(|x| *x == "hit-l1"), "{seen:?}");
        }

        // Act: the second instance goes away.
        let _ = stop_second.send(());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;

        // Assert: nginx retries a refused connection on the other one: no error reaches
        // the client, and the first instance answers everything.
        for _ in 0..4 {
            let (status, head, body) = http(listen, "GET", "/pets/1", None).await;
            assert_eq!(
                (status, body["name"].as_str()),
                (200, Some("first")),
                "{head}"
            );
        }
        drop(stop_first);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_each_client_has_its_own_limit_and_a_forged_x_forwarded_for_buys_nothing() {
    let Some((bin, _)) = nginx() else {
        return;
    };
    bounded(async {
        // Arrange: an instance trusting nginx (127.0.0.1) with 2 requests a minute per
        // client, nginx with the committed config in front of it.
        let vars = [("RATE_LIMIT", "2/1m"), ("TRUSTED_PROXIES", "127.0.0.1")];
        let (shop, _stop) = instance("only", &vars).await;
        let (listen, _dir, _nginx) = front(&bin, &[shop]).await;

        // Act: 127.0.0.2 forges a new X-Forwarded-For each time; 127.0.0.3 does not.
        let mut forger = Vec::new();
        let mut honest = Vec::new();
        for i in 0..3 {
            let forged = format!("198.51.100.{i}");
            let headers = [("x-forwarded-for", forged.as_str())];
            forger.push(get_from(2, listen, "/pets", &headers).await.status);
            honest.push(get_from(3, listen, "/pets", &[]).await.status);
        }

        // Assert: nginx appends the address it saw, the shop believes only that one:
        // a limit per client, the forged entries ignored.
        assert_eq!(forger, [200, 200, 429]);
        assert_eq!(honest, [200, 200, 429]);
    })
    .await;
}
