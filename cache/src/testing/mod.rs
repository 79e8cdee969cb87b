//! Test support (feature `test-util`): throwaway Redis servers and clusters (plain or
//! TLS-only, with certificates made for the test; open, or only to a user with a given
//! [`RedisAcl`]), a server that never answers, and a proxy that injects faults.
//!
//! Tests own their infrastructure: each [`RedisServer`] is a private `redis-server` on
//! a free port, persisting nothing, killed when dropped, so a test can stop, restart or
//! corrupt it without touching anyone else's data; a [`Proxy`] in front of it slows,
//! black-holes or cuts the network to it.

mod cluster;
mod proxy;
mod tls;

pub use self::cluster::{CLUSTER_MASTERS, RedisCluster};
pub use self::proxy::{Fault, Proxy};
pub use self::tls::{ClientAuth, TestCerts};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::tier::RedisAcl;

const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A private `redis-server` process on a free port, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// A TLS-only server: its certificates and what it asks of clients.
    tls: Option<(TestCerts, ClientAuth)>,
    /// A server closed to anonymous clients: its users.
    users: Option<Users>,
}

/// `redis://` (`rediss://` with TLS) to `127.0.0.1:port`, as the restricted user of
/// `users` when there are any.
pub(crate) fn local_url(tls: bool, users: Option<&Users>, port: u16) -> String {
    let scheme = if tls { "rediss" } else { "redis" };
    let credentials = users.map(Users::url_credentials).unwrap_or_default();
    format!("{scheme}://{credentials}127.0.0.1:{port}")
}

/// The users of a server closed to anonymous clients: `default` with a password only
/// the harness knows (its own checks, [`RedisServer::client`]), and one user with
/// exactly a tier's ACL (the [`RedisServer::url`] a tier connects with). So a tier's
/// connection that failed to authenticate as that user is refused, rather than served
/// with every permission.
#[derive(Clone, Debug)]
pub(crate) struct Users {
    acl: RedisAcl,
    password: String,
    admin: String,
}

impl Users {
    fn new(acl: &RedisAcl) -> Self {
        Self {
            acl: acl.clone(),
            password: format!("{:032x}", rand::random::<u128>()),
            admin: format!("{:032x}", rand::random::<u128>()),
        }
    }

    /// `redis-server` arguments: the default user's password and the tier's user.
    pub(crate) fn server_args(&self) -> Vec<String> {
        let mut args = vec![
            "--requirepass".to_owned(),
            self.admin.clone(),
            "--user".to_owned(),
            self.acl.user().to_owned(),
        ];
        args.extend(self.acl.rules(&self.password));
        args
    }

    /// `user:password@`, to put in a URL after the scheme.
    pub(crate) fn url_credentials(&self) -> String {
        format!("{}:{}@", self.acl.user(), self.password)
    }

    /// The default user's password.
    pub(crate) fn admin(&self) -> &str {
        &self.admin
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// A connection to `port`, authenticated as `default` with `admin` if given.
fn connect(port: u16, admin: Option<&str>) -> Option<TcpStream> {
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if let Some(password) = admin {
        let mut ok = [0u8; 5];
        s.write_all(format!("AUTH {password}\r\n").as_bytes())
            .ok()?;
        s.read_exact(&mut ok).ok()?;
        if &ok != b"+OK\r\n" {
            return None;
        }
    }
    Some(s)
}

fn pong(port: u16, admin: Option<&str>) -> bool {
    let Some(mut s) = connect(port, admin) else {
        return false;
    };
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// Whether the server answering on `port` is the process `pid`: a port found free can
/// be taken by another test's server before ours binds it, and that one answers `PING`
/// until its test kills it.
fn is_process(port: u16, pid: u32, admin: Option<&str>) -> bool {
    let Some(mut s) = connect(port, admin) else {
        return false;
    };
    if s.write_all(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
        .is_err()
    {
        return false;
    }
    let (mut reply, mut buf) = (Vec::new(), [0u8; 4096]);
    let wanted = format!("process_id:{pid}\r\n");
    while reply.len() < 64 * 1024 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&reply);
        if text.contains(&wanted) {
            return true;
        }
        if text.contains("process_id:") && text.contains("\r\nrun_id:") {
            return false;
        }
    }
    false
}

/// Whether `child` is up and answering on `port` itself (to `default` with `admin`, if
/// given): `Some(true)` yes, `Some(false)` it exited or another process answers (the
/// port was taken), `None` not yet.
fn owns_port(child: &mut Child, port: u16, admin: Option<&str>) -> Option<bool> {
    if let Ok(Some(_)) = child.try_wait() {
        return Some(false);
    }
    if pong(port, admin) {
        return Some(is_process(port, child.id(), admin));
    }
    None
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers `PING`.
    ///
    /// # Panics
    /// When `redis-server` is not on `PATH` or does not come up within 10 s.
    #[must_use]
    pub fn spawn() -> Self {
        Self::spawn_with(None, None)
    }

    /// Starts a server closed to anonymous clients, with one user that has exactly
    /// `acl` (a random password), and waits until it answers. Its [`RedisServer::url`]
    /// logs in as that user (`redis://{user}:{password}@127.0.0.1:{port}`); the
    /// `default` user has a password only [`RedisServer::client`] knows, for tests that
    /// poke at the server as an administrator. A restart keeps both users.
    ///
    /// # Panics
    /// As [`RedisServer::spawn`].
    #[must_use]
    pub fn spawn_with_acl(acl: &RedisAcl) -> Self {
        Self::spawn_with(None, Some(Users::new(acl)))
    }

    /// Starts a server that speaks only TLS (`--port 0 --tls-port <free>`), with the
    /// server certificate of `certs` and `--tls-auth-clients` as `auth` says, and waits
    /// until it answers. Its [`RedisServer::url`] is `rediss://`.
    ///
    /// # Panics
    /// As [`RedisServer::spawn`].
    #[must_use]
    pub fn spawn_tls(certs: &TestCerts, auth: ClientAuth) -> Self {
        Self::spawn_with(Some((certs.clone(), auth)), None)
    }

    fn spawn_with(tls: Option<(TestCerts, ClientAuth)>, users: Option<Users>) -> Self {
        for _ in 0..5 {
            let mut server = Self {
                port: free_port(),
                child: None,
                tls: tls.clone(),
                users: users.clone(),
            };
            if server.start() {
                return server;
            }
        }
        panic!("redis-server did not start on a free port (is it installed and on PATH?)");
    }

    fn start(&mut self) -> bool {
        let listen = match &self.tls {
            Some((certs, auth)) => certs.server_args(self.port, *auth),
            None => vec!["--port".into(), self.port.to_string()],
        };
        let child = Command::new("redis-server")
            .args(listen)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", &std::env::temp_dir().to_string_lossy()])
            .args(self.users.iter().flat_map(Users::server_args))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run redis-server: install it (Debian: apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        let admin = self.users.as_ref().map(Users::admin);
        while Instant::now() < deadline {
            let owned = self.child.as_mut().and_then(|c| match &self.tls {
                Some((certs, _)) => certs.owns_port(c, self.port, admin),
                None => owns_port(c, self.port, admin),
            });
            match owned {
                Some(true) => return true,
                // Exited, or another server answers: the port was taken meanwhile.
                Some(false) => break,
                None => thread::sleep(Duration::from_millis(10)),
            }
        }
        self.stop();
        false
    }

    /// The server's port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}` (`rediss://` for a TLS server; with the user and
    /// password of its ACL, `redis://{user}:{password}@…`, for one from
    /// [`RedisServer::spawn_with_acl`]).
    #[must_use]
    pub fn url(&self) -> String {
        local_url(self.tls.is_some(), self.users.as_ref(), self.port)
    }

    /// Kills the server (as a crash would) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    ///
    /// # Panics
    /// When it does not come back within 10 s.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.start() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not restart on port {}",
                self.port
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// A plain client of this server, for tests that poke at it directly (of a TLS
    /// server: trusting its CA, with the client certificate; of one with an ACL: as
    /// the `default` user, with every permission).
    #[must_use]
    pub fn client(&self) -> redis::Client {
        let admin = self.users.as_ref().map(Users::admin);
        match &self.tls {
            Some((certs, _)) => certs.client(self.port, admin),
            None => {
                let login = admin.map(|a| format!("default:{a}@")).unwrap_or_default();
                redis::Client::open(format!("redis://{login}127.0.0.1:{}", self.port))
                    .expect("valid url")
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP server that accepts connections and never answers: a hung Redis.
#[derive(Debug)]
pub struct BlackHole {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl BlackHole {
    /// Starts listening on a free port.
    ///
    /// # Panics
    /// When no port can be bound.
    #[must_use]
    pub fn spawn() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((socket, _)) => held.push(socket),
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self { port, stop }
    }

    /// `redis://127.0.0.1:{port}`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
