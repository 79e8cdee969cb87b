//! A TCP proxy a test controls: between a client and its own `redis-server`, it passes
//! bytes, slows replies, black-holes everything or cuts every connection, and counts
//! the commands clients send through it.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How often idle proxy threads look at the mode and the stop flag.
const TICK: Duration = Duration::from_millis(5);

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Bytes pass both ways at once.
    None,
    /// Every reply reaches the client this much later (requests pass at once).
    Delay(Duration),
    /// Connections are accepted, nothing is forwarded either way and nothing is lost:
    /// held bytes flow again when the fault ends (a partition that heals).
    BlackHole,
    /// Every open connection is reset and new ones are closed at once (a crash seen
    /// from the network, or a firewall that rejects).
    Cut,
}

#[derive(Debug)]
struct Shared {
    fault: Mutex<Fault>,
    stop: AtomicBool,
    /// Both ends of every open connection, to reset them on [`Fault::Cut`].
    open: Mutex<Vec<TcpStream>>,
    /// The name of every command forwarded to the server, in order (per connection).
    commands: Mutex<Vec<String>>,
}

impl Shared {
    fn fault(&self) -> Fault {
        *self
            .fault
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Blocks while traffic is black-holed; false when the connection must end.
    fn wait_to_forward(&self) -> bool {
        loop {
            if self.stopped() {
                return false;
            }
            match self.fault() {
                Fault::BlackHole => thread::sleep(TICK),
                Fault::Cut => return false,
                Fault::None | Fault::Delay(_) => return true,
            }
        }
    }

    fn reset_all(&self) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for s in open.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// A proxy on a free loopback port in front of `upstream`, stopped on drop.
///
/// ```
/// use cache::testing::{Fault, Proxy, RedisServer};
/// let redis = RedisServer::spawn();
/// let proxy = Proxy::spawn(redis.port());
/// let mut con = redis::Client::open(proxy.url()).unwrap().get_connection().unwrap();
/// let _: () = redis::cmd("SET").arg("k").arg(1).query(&mut con).unwrap();
/// proxy.set(Fault::Cut);
/// assert!(redis::cmd("GET").arg("k").query::<i64>(&mut con).is_err());
/// proxy.set(Fault::None);
/// let mut con = redis::Client::open(proxy.url()).unwrap().get_connection().unwrap();
/// assert_eq!(redis::cmd("GET").arg("k").query::<i64>(&mut con).unwrap(), 1);
/// ```
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Starts forwarding `127.0.0.1:{free port}` to `127.0.0.1:{upstream_port}`.
    ///
    /// # Panics
    /// When no port can be bound.
    #[must_use]
    pub fn spawn(upstream_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a proxy port");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let upstream = SocketAddr::from(([127, 0, 0, 1], upstream_port));
        let shared = Arc::new(Shared {
            fault: Mutex::new(Fault::None),
            stop: AtomicBool::new(false),
            open: Mutex::default(),
            commands: Mutex::default(),
        });
        let accept = shared.clone();
        thread::spawn(move || accept_loop(&listener, upstream, &accept));
        Self { port, shared }
    }

    /// The proxy's port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}`: the upstream server, through the proxy.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (or ends, with [`Fault::None`]) a fault.
    pub fn set(&self, fault: Fault) {
        *self
            .shared
            .fault
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fault;
        if fault == Fault::Cut {
            self.shared.reset_all();
        }
    }

    /// The fault in force.
    #[must_use]
    pub fn fault(&self) -> Fault {
        self.shared.fault()
    }

    /// The names (upper case) of the commands forwarded to the server so far, on every
    /// connection, each complete command once: with no pipelining, one a round trip.
    #[must_use]
    pub fn commands(&self) -> Vec<String> {
        self.shared
            .commands
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.reset_all();
    }
}

fn accept_loop(listener: &TcpListener, upstream: SocketAddr, shared: &Arc<Shared>) {
    while !shared.stopped() {
        match listener.accept() {
            Ok((client, _)) => {
                if shared.fault() == Fault::Cut {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let shared = shared.clone();
                thread::spawn(move || connect(client, upstream, &shared));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(TICK),
            Err(_) => thread::sleep(TICK),
        }
    }
}

/// Connects a client to the upstream (once traffic may flow) and pipes both ways.
fn connect(client: TcpStream, upstream: SocketAddr, shared: &Arc<Shared>) {
    if !shared.wait_to_forward() {
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(1)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let ends = [&client, &server].map(|s| s.try_clone());
    let [Ok(c2), Ok(s2)] = ends else { return };
    {
        let mut open = shared
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        open.push(c2);
        open.push(s2);
    }
    let (Ok(client_in), Ok(server_out)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = shared.clone();
    thread::spawn(move || requests(client_in, server_out, &up));
    replies(server, client, shared);
}

/// Reads one chunk, waiting in short steps so the stop flag is seen; `None` at the end.
fn read_chunk(from: &mut TcpStream, shared: &Shared) -> Option<Vec<u8>> {
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if shared.stopped() {
            return None;
        }
        match from.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => {
                buf.truncate(n);
                return Some(buf);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return None,
        }
    }
}

/// Client → server: at once, unless black-holed; each complete command is logged.
fn requests(mut from: TcpStream, mut to: TcpStream, shared: &Shared) {
    let mut pending: Vec<u8> = Vec::new();
    while let Some(chunk) = read_chunk(&mut from, shared) {
        if !shared.wait_to_forward() {
            break;
        }
        // Logged before it is forwarded, so before its reply can arrive.
        pending.extend_from_slice(&chunk);
        let (names, used) = parse_commands(&pending);
        pending.drain(..used);
        shared
            .commands
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(names);
        if to.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// Server → client: each chunk after the delay in force when it was read.
fn replies(mut from: TcpStream, to: TcpStream, shared: &Arc<Shared>) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer_shared = shared.clone();
    let writer = thread::spawn(move || {
        let mut to = to;
        for (due, chunk) in rx {
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            if !writer_shared.wait_to_forward() || to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
    while let Some(chunk) = read_chunk(&mut from, shared) {
        let delay = match shared.fault() {
            Fault::Delay(d) => d,
            _ => Duration::ZERO,
        };
        if tx.send((Instant::now() + delay, chunk)).is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.join();
    let _ = from.shutdown(Shutdown::Both);
}

/// The names of the complete RESP commands (arrays of bulk strings) at the front of
/// `buf`, and how many bytes they take. Anything else ends the parse (the bytes are
/// forwarded all the same; only the log misses them).
fn parse_commands(buf: &[u8]) -> (Vec<String>, usize) {
    fn line(buf: &[u8], at: usize) -> Option<(usize, usize)> {
        let end = buf.get(at..)?.windows(2).position(|w| w == b"\r\n")? + at;
        let n = std::str::from_utf8(buf.get(at + 1..end)?)
            .ok()?
            .parse()
            .ok()?;
        Some((n, end + 2))
    }
    let (mut names, mut used) = (Vec::new(), 0);
    'commands: while buf.get(used) == Some(&b'*') {
        let Some((args, mut at)) = line(buf, used) else {
            break;
        };
        let mut name = String::new();
        for i in 0..args {
            if buf.get(at) != Some(&b'$') {
                break 'commands;
            }
            let Some((len, start)) = line(buf, at) else {
                break 'commands;
            };
            if buf.len() < start + len + 2 {
                break 'commands;
            }
            if i == 0 {
                name = String::from_utf8_lossy(&buf[start..start + len]).to_uppercase();
            }
            at = start + len + 2;
        }
        names.push(name);
        used = at;
    }
    (names, used)
}

#[cfg(test)]
mod tests {
    use super::parse_commands;

    #[test]
    fn commands_are_logged_once_complete() {
        let two = b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nset\r\n$1\r\nk\r\n$2\r\nab\r\n*2\r\n$3\r\nGET";
        let (names, used) = parse_commands(two);
        assert_eq!(names, ["PING", "SET"]);
        assert_eq!(&two[used..], b"*2\r\n$3\r\nGET");
    }
}
