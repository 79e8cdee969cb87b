//! A throwaway nginx microcache in front of a service: Debian's `nginx` with
//! `proxy_cache` and `proxy_cache_valid 200 1s`, its configuration and files in a
//! temporary directory, listening on a free loopback port, stopped on drop.

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::http::wait_ready;
use crate::process::free_port;

/// Environment variable naming the nginx executable.
pub const NGINX_BIN_ENV: &str = "NGINX_BIN";
/// Where Debian installs it.
pub const DEBIAN_NGINX: &str = "/usr/sbin/nginx";
/// How long nginx may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// `explicit`, else `$NGINX_BIN`, else Debian's, else `nginx` on the `PATH`; `None`
/// when there is none.
#[must_use]
pub fn find(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return p.is_file().then(|| p.to_owned());
    }
    if let Some(p) = std::env::var_os(NGINX_BIN_ENV) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    if Path::new(DEBIAN_NGINX).is_file() {
        return Some(DEBIAN_NGINX.into());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nginx"))
            .find(|p| p.is_file())
    })
}

/// The microcache configuration: every GET answered 200 is kept 1 s; concurrent misses
/// of one key wait for one upstream request (`proxy_cache_lock`) and, while an entry is
/// refreshed, the old one is served (`proxy_cache_use_stale updating`), as nginx's own
/// microcaching guide does. Two workers, as many as the machine's cores.
#[must_use]
pub fn microcache_config(dir: &Path, port: u16, upstream: SocketAddr) -> String {
    let d = dir.display();
    format!(
        "worker_processes 2;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    proxy_cache_path {d}/cache levels=1:2 keys_zone=micro:16m max_size=256m inactive=60s use_temp_path=off;
    upstream app {{
        server {upstream};
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_cache micro;
            proxy_cache_valid 200 1s;
            proxy_cache_lock on;
            proxy_cache_use_stale updating;
            proxy_ignore_headers Cache-Control Expires Set-Cookie;
            add_header X-Microcache $upstream_cache_status;
        }}
    }}
}}
"
    )
}

/// A running nginx microcache; stopped (its whole process group) on drop.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl Nginx {
    /// Starts `bin` as a microcache in front of `upstream` and waits until it proxies
    /// `GET /health`.
    ///
    /// # Errors
    /// When it cannot start or does not answer in time (the error carries its log).
    pub async fn microcache(bin: &Path, upstream: SocketAddr) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("bench-nginx").tempdir()?;
        let port = free_port();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, microcache_config(dir.path(), port, upstream))?;
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(dir.path().join("stderr.log"))?)
            // Its own process group: the master and its workers are stopped together.
            .process_group(0)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let mut nginx = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        if let Err(e) = wait_ready(nginx.addr, "/health", START_TIMEOUT).await {
            let exited = nginx.child.try_wait().ok().flatten();
            let log = |f: &str| std::fs::read_to_string(nginx.dir.path().join(f));
            bail!(
                "nginx did not answer ({e:#}); exited: {exited:?}; {} {}",
                log("stderr.log").unwrap_or_default(),
                log("error.log").unwrap_or_default()
            );
        }
        Ok(nginx)
    }

    /// Where it listens.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // TERM the group: the master waits for its workers to quit, then exits. Only
        // if it has not within the deadline, KILL the group (still ours: the master,
        // not yet reaped, keeps its id).
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let group = format!("-{}", self.child.id());
        let signal = |sig: &str| {
            let _ = Command::new("kill")
                .args([sig, "--", &group])
                .stderr(Stdio::null())
                .status();
        };
        signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        signal("-KILL");
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_keeps_answers_one_second_on_loopback() {
        let upstream = SocketAddr::from(([127, 0, 0, 1], 9000));
        let conf = microcache_config(Path::new("/tmp/x"), 8081, upstream);
        assert!(conf.contains("proxy_cache_valid 200 1s;"));
        assert!(conf.contains("listen 127.0.0.1:8081;"));
        assert!(conf.contains("server 127.0.0.1:9000;"));
        assert!(conf.contains("pid /tmp/x/nginx.pid;"));
    }
}
