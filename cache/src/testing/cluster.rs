//! A throwaway 3-master Redis Cluster on free loopback ports (plain or TLS-only), torn
//! down on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::tls::{ClientAuth, TestCerts};
use super::{Users, free_port};
use crate::tier::RedisAcl;

/// Masters of a [`RedisCluster`].
pub const CLUSTER_MASTERS: usize = 3;
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a master may be unreachable before the others mark it failed. Short, so a
/// test that kills one sees the cluster react within a few seconds.
const NODE_TIMEOUT_MS: u64 = 1000;

#[derive(Debug)]
struct Node {
    port: u16,
    bus_port: u16,
    child: Option<Child>,
}

/// A private Redis Cluster: [`CLUSTER_MASTERS`] `redis-server --cluster-enabled yes`
/// processes on free ports of 127.0.0.1 (no replicas, nothing persisted but each node's
/// `nodes.conf`, in a temporary directory), joined with `redis-cli --cluster create`.
/// Dropping it kills every node and removes the directory.
///
/// `cluster-require-full-coverage` is off: while a master is down, the slots of the
/// others keep answering (with Redis' default, the whole cluster would refuse).
///
/// [`RedisCluster::spawn_tls`] makes one that speaks only TLS, to clients and between
/// its nodes (`--tls-cluster yes`, `--tls-replication yes`);
/// [`RedisCluster::spawn_with_acl`] one closed to anonymous clients.
#[derive(Debug)]
pub struct RedisCluster {
    dir: PathBuf,
    nodes: Vec<Node>,
    tls: Option<TestCerts>,
    users: Option<Users>,
}

impl RedisCluster {
    /// Starts the nodes, creates the cluster and waits until every node reports
    /// `cluster_state:ok`.
    ///
    /// # Panics
    /// When `redis-server`/`redis-cli` are missing or the cluster is not up within 30 s.
    #[must_use]
    pub fn spawn() -> Self {
        Self::spawn_with(None, None)
    }

    /// [`RedisCluster::spawn`], every node closed to anonymous clients and with one
    /// user that has exactly `acl`, as [`super::RedisServer::spawn_with_acl`]: the
    /// seeds log in as that user, [`RedisCluster::client`] as `default`.
    ///
    /// # Panics
    /// As [`RedisCluster::spawn`].
    #[must_use]
    pub fn spawn_with_acl(acl: &RedisAcl) -> Self {
        Self::spawn_with(None, Some(Users::new(acl)))
    }

    /// [`RedisCluster::spawn`], every node speaking only TLS with the server
    /// certificate of `certs` (clients present none); the seeds are `rediss://`.
    ///
    /// # Panics
    /// As [`RedisCluster::spawn`].
    #[must_use]
    pub fn spawn_tls(certs: &TestCerts) -> Self {
        Self::spawn_with(Some(certs.clone()), None)
    }

    fn spawn_with(tls: Option<TestCerts>, users: Option<Users>) -> Self {
        let dir = std::env::temp_dir().join(format!("cache-cluster-{:x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("temporary directory for the cluster");
        let mut cluster = Self {
            dir,
            nodes: Vec::new(),
            tls,
            users,
        };
        for _ in 0..CLUSTER_MASTERS {
            let node = cluster.start_on_free_ports();
            cluster.nodes.push(node);
        }
        let status = Command::new("redis-cli")
            .args(cluster.tls.iter().flat_map(TestCerts::cli_args))
            .args(
                cluster
                    .users
                    .iter()
                    .flat_map(|u| ["--no-auth-warning", "-a", u.admin()]),
            )
            .args(["--cluster", "create"])
            .args(
                cluster
                    .nodes
                    .iter()
                    .map(|n| format!("127.0.0.1:{}", n.port)),
            )
            .arg("--cluster-yes")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("cannot run redis-cli: install it (Debian: apt-get install redis-tools)");
        assert!(status.success(), "redis-cli --cluster create failed");
        cluster.wait_until_ok();
        cluster
    }

    /// A new node on free ports, answering `PING`. A port found free can be taken by
    /// another process before the node binds it (tests run in parallel): the node then
    /// exits, and it is started again on other ports.
    fn start_on_free_ports(&self) -> Node {
        for _ in 0..5 {
            let mut node = Node {
                port: free_port(),
                bus_port: free_port(),
                child: None,
            };
            self.start(&mut node);
            let deadline = Instant::now() + START_TIMEOUT;
            let admin = self.users.as_ref().map(Users::admin);
            while Instant::now() < deadline {
                let owned = node.child.as_mut().and_then(|c| match &self.tls {
                    Some(certs) => certs.owns_port(c, node.port, admin),
                    None => super::owns_port(c, node.port, admin),
                });
                match owned {
                    Some(true) => return node,
                    // Exited, or another server answers: a port was taken meanwhile.
                    Some(false) => break,
                    None => thread::sleep(Duration::from_millis(10)),
                }
            }
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        panic!("a cluster node did not start on free ports (is redis-server installed?)");
    }

    fn start(&self, node: &mut Node) {
        let conf = self.dir.join(format!("nodes-{}.conf", node.port));
        let listen = match &self.tls {
            Some(certs) => {
                let mut args = certs.server_args(node.port, ClientAuth::No);
                args.extend(["--tls-cluster", "yes", "--tls-replication", "yes"].map(String::from));
                args
            }
            None => vec!["--port".into(), node.port.to_string()],
        };
        let child = Command::new("redis-server")
            .args(listen)
            .args(["--cluster-port", &node.bus_port.to_string()])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", &conf.to_string_lossy()])
            .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
            .args(["--cluster-require-full-coverage", "no"])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", &self.dir.to_string_lossy()])
            .args(self.users.iter().flat_map(Users::server_args))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run redis-server: install it (Debian: apt-get install redis-server)");
        node.child = Some(child);
    }

    /// Waits (at most 30 s) until every running node says `cluster_state:ok` and
    /// knows every master as up.
    ///
    /// # Panics
    /// When that does not happen in time.
    pub fn wait_until_ok(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            loop {
                if self.healthy(node.port) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster is not ok on node {}",
                    node.port
                );
                thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// A plain client of the node on `port` (as `default`, on a cluster with an ACL).
    fn node_client(&self, port: u16) -> redis::Client {
        let admin = self.users.as_ref().map(Users::admin);
        match &self.tls {
            Some(certs) => certs.client(port, admin),
            None => {
                let login = admin.map(|a| format!("default:{a}@")).unwrap_or_default();
                redis::Client::open(format!("redis://{login}127.0.0.1:{port}")).expect("valid url")
            }
        }
    }

    fn healthy(&self, port: u16) -> bool {
        let Ok(mut con) = self
            .node_client(port)
            .get_connection_with_timeout(Duration::from_millis(500))
        else {
            return false;
        };
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query(&mut con)
            .unwrap_or_default();
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut con)
            .unwrap_or_default();
        let masters = nodes.lines().filter(|l| l.contains("master")).count();
        info.contains("cluster_state:ok") && masters == CLUSTER_MASTERS && !nodes.contains("fail")
    }

    /// The seed URLs (`redis://127.0.0.1:{port}`, `rediss://` with TLS, with the
    /// user and password of its ACL on a cluster that has one), one per master.
    #[must_use]
    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| super::local_url(self.tls.is_some(), self.users.as_ref(), n.port))
            .collect()
    }

    /// A cluster client of these nodes, for tests that poke at them directly (as
    /// `default`, with every permission, on a cluster with an ACL).
    ///
    /// # Panics
    /// Never in practice: the seed URLs are well formed.
    #[must_use]
    pub fn client(&self) -> redis::cluster::ClusterClient {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        let seeds = self
            .nodes
            .iter()
            .map(|n| format!("{scheme}://127.0.0.1:{}", n.port));
        let builder = redis::cluster::ClusterClient::builder(seeds);
        let builder = match &self.users {
            Some(users) => builder.username("default").password(users.admin()),
            None => builder,
        };
        let builder = match &self.tls {
            Some(certs) => {
                crate::tier::install_ring_if_none();
                builder.certs(redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(certs.ca_pem().into()),
                })
            }
            None => builder,
        };
        builder.build().expect("valid seeds")
    }

    /// The index of the master that serves `key`'s slot.
    ///
    /// # Panics
    /// When no running node answers.
    #[must_use]
    pub fn master_of(&self, key: &str) -> usize {
        let node = self
            .nodes
            .iter()
            .find(|n| n.child.is_some())
            .expect("a running node");
        let mut con = self
            .node_client(node.port)
            .get_connection_with_timeout(Duration::from_secs(1))
            .expect("a connection to the cluster");
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut con)
            .expect("CLUSTER KEYSLOT");
        let ranges: Vec<(u16, u16, (String, u16))> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query::<Vec<redis::Value>>(&mut con)
            .expect("CLUSTER SLOTS")
            .into_iter()
            .filter_map(|range| {
                let redis::Value::Array(fields) = range else {
                    return None;
                };
                let mut fields = fields.into_iter();
                let start = redis::from_redis_value(fields.next()?).ok()?;
                let end = redis::from_redis_value(fields.next()?).ok()?;
                let redis::Value::Array(master) = fields.next()? else {
                    return None;
                };
                let mut master = master.into_iter();
                let host = redis::from_redis_value(master.next()?).ok()?;
                let port = redis::from_redis_value(master.next()?).ok()?;
                Some((start, end, (host, port)))
            })
            .collect();
        let (_, _, (_, port)) = ranges
            .iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .expect("every slot is served");
        self.nodes
            .iter()
            .position(|n| n.port == *port)
            .expect("a master of this cluster")
    }

    /// Kills master `i` (as a crash would) and waits for it to exit.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts master `i` again, empty, on the same port with the same `nodes.conf`, and
    /// waits until the cluster is ok on every node.
    ///
    /// # Panics
    /// When the cluster is not ok again within 30 s.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        let mut node = Node {
            port: self.nodes[i].port,
            bus_port: self.nodes[i].bus_port,
            child: None,
        };
        self.start(&mut node);
        self.nodes[i] = node;
        self.wait_until_ok();
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
