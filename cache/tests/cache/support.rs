//! Fixtures: a typed cache over a chosen topology, with handles on each tier.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache::clock::ManualClock;
use cache::codec::Json;
use cache::testing::{RedisCluster, RedisServer};
use cache::tier::{Cache, MokaTier, NoCache, RedisAcl, RedisTier, RedisTierBuilder, TieredCache};
use cache::typed::TypedCache;
use cache::{KeyBuilder, Namespace};
use serde::{Deserialize, Serialize};

/// Runs each named `async fn(Topology)` as a bounded test per topology (L1, L2, L1+L2,
/// L2 and L1+L2 on a 3-master Redis Cluster, and L2, L1+L2 and L1+L2 on a cluster whose
/// tier logs in as a user with exactly the tier's ACL).
macro_rules! per_topology {
    ($($name:ident),* $(,)?) => {
        mod l1 {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { crate::support::bounded(super::$name(crate::support::Topology::L1)).await })*
        }
        mod l2 {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { crate::support::bounded(super::$name(crate::support::Topology::L2)).await })*
        }
        mod l1_l2 {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { crate::support::bounded(super::$name(crate::support::Topology::L1L2)).await })*
        }
        mod l2_cluster {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { crate::support::bounded(super::$name(crate::support::Topology::L2_CLUSTER)).await })*
        }
        mod l1_l2_cluster {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { crate::support::bounded(super::$name(crate::support::Topology::L1L2_CLUSTER)).await })*
        }
        mod acl_l2 {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { crate::support::bounded(super::$name(crate::support::Topology::ACL_L2)).await })*
        }
        mod acl_l1_l2 {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { crate::support::bounded(super::$name(crate::support::Topology::ACL_L1L2)).await })*
        }
        mod acl_l1_l2_cluster {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { crate::support::bounded(super::$name(crate::support::Topology::ACL_L1L2_CLUSTER)).await })*
        }
    };
}
pub(crate) use per_topology;

/// The bound on any one test.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `f`, failing the test if it takes longer than [`TEST_TIMEOUT`].
pub async fn bounded<F: Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .expect("test exceeded its time bound");
}

/// The Redis behind an L2 topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redis {
    /// One `redis-server`.
    Server,
    /// A 3-master Redis Cluster.
    Cluster,
    /// One `redis-server` closed to anonymous clients: the tier logs in as a user with
    /// exactly [`RedisAcl`] for its prefix (no flush).
    ServerAcl,
    /// A 3-master Redis Cluster, likewise.
    ClusterAcl,
}

/// A topology of the suite: the tiers, and the Redis behind L2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Topology {
    pub tiers: cache::Topology,
    pub redis: Redis,
}

impl Topology {
    pub const L1: Self = Self::on(cache::Topology::L1, Redis::Server);
    pub const L2: Self = Self::on(cache::Topology::L2, Redis::Server);
    pub const L1L2: Self = Self::on(cache::Topology::L1L2, Redis::Server);
    pub const L2_CLUSTER: Self = Self::on(cache::Topology::L2, Redis::Cluster);
    pub const L1L2_CLUSTER: Self = Self::on(cache::Topology::L1L2, Redis::Cluster);
    pub const ACL_L2: Self = Self::on(cache::Topology::L2, Redis::ServerAcl);
    pub const ACL_L1L2: Self = Self::on(cache::Topology::L1L2, Redis::ServerAcl);
    pub const ACL_L1L2_CLUSTER: Self = Self::on(cache::Topology::L1L2, Redis::ClusterAcl);

    const fn on(tiers: cache::Topology, redis: Redis) -> Self {
        Self { tiers, redis }
    }

    pub fn has_l1(self) -> bool {
        self.tiers.has_l1()
    }

    pub fn has_l2(self) -> bool {
        self.tiers.has_l2()
    }
}

impl std::fmt::Display for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.redis {
            Redis::Server => write!(f, "{}", self.tiers),
            Redis::Cluster => write!(f, "{} on a cluster", self.tiers),
            Redis::ServerAcl => write!(f, "{} as a least-privileged user", self.tiers),
            Redis::ClusterAcl => {
                write!(f, "{} on a cluster as a least-privileged user", self.tiers)
            }
        }
    }
}

/// A private Redis of either kind, killed on drop.
pub enum Backend {
    Server(RedisServer),
    Cluster(RedisCluster),
}

impl Backend {
    /// A private Redis of kind `redis`, for a tier under `prefix` (the ACL kinds let
    /// that prefix's user in, and no other).
    pub fn spawn(redis: Redis, prefix: &str) -> Self {
        let acl = || RedisAcl::new("tier", prefix).unwrap();
        match redis {
            Redis::Server => Self::Server(RedisServer::spawn()),
            Redis::Cluster => Self::Cluster(RedisCluster::spawn()),
            Redis::ServerAcl => Self::Server(RedisServer::spawn_with_acl(&acl())),
            Redis::ClusterAcl => Self::Cluster(RedisCluster::spawn_with_acl(&acl())),
        }
    }

    /// A tier builder for this Redis.
    pub fn tier(&self) -> RedisTierBuilder {
        match self {
            Self::Server(s) => RedisTier::builder(s.url()),
            Self::Cluster(c) => RedisTier::cluster_builder(c.seeds()),
        }
    }
}

/// A plain connection to either kind of Redis.
#[derive(Clone)]
pub enum Raw {
    Node(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Raw {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Self::Node(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Self::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        0
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pet {
    pub id: i64,
    pub name: String,
    pub species: String,
    pub age: u8,
    pub tags: Vec<String>,
}

pub fn pet(id: i64) -> Pet {
    Pet {
        id,
        name: format!("pet-{id}"),
        species: "cat".into(),
        age: (id % 20) as u8,
        tags: vec!["friendly".into(), "indoor".into()],
    }
}

pub struct Fixture {
    pub topology: Topology,
    pub cache: Arc<dyn Cache>,
    pub l1: Option<MokaTier>,
    pub l2: Option<RedisTier>,
    /// The Redis behind L2, when it is one server.
    pub redis: Option<RedisServer>,
    /// The Redis behind L2, when it is a cluster.
    pub cluster: Option<RedisCluster>,
    pub clock: ManualClock,
    pub ns: Namespace,
}

pub struct Options {
    pub l1_max_bytes: u64,
    pub op_timeout: Duration,
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            l1_max_bytes: 8 << 20,
            op_timeout: Duration::from_millis(200),
            breaker_threshold: 3,
            breaker_cooldown: Duration::from_millis(200),
        }
    }
}

pub fn fixture(topology: Topology) -> Fixture {
    fixture_with(topology, Options::default())
}

/// A unique prefix per fixture, so no two tests ever share a key.
fn prefix() -> String {
    format!("t{:x}", rand::random::<u64>())
}

pub fn fixture_with(topology: Topology, o: Options) -> Fixture {
    let clock = ManualClock::new();
    let keys = KeyBuilder::new(&prefix()).unwrap();
    let ns = keys.namespace("pet").unwrap();
    let l1 = topology.has_l1().then(|| {
        MokaTier::builder()
            .max_bytes(o.l1_max_bytes)
            .clock(Arc::new(clock.clone()))
            .build()
            .unwrap()
    });
    let backend = topology
        .has_l2()
        .then(|| Backend::spawn(topology.redis, keys.prefix()));
    let l2 = backend.as_ref().map(|b| {
        b.tier()
            .prefix(keys.prefix())
            .op_timeout(o.op_timeout)
            .breaker(o.breaker_threshold, o.breaker_cooldown)
            .build()
            .unwrap()
    });
    let cache: Arc<dyn Cache> = match (&l1, &l2) {
        (Some(l1), None) => Arc::new(l1.clone()),
        (None, Some(l2)) => Arc::new(l2.clone()),
        (Some(l1), Some(l2)) => Arc::new(TieredCache::builder(l1.clone(), l2.clone()).build()),
        (None, None) => Arc::new(NoCache::new()),
    };
    let (redis, cluster) = match backend {
        Some(Backend::Server(s)) => (Some(s), None),
        Some(Backend::Cluster(c)) => (None, Some(c)),
        None => (None, None),
    };
    Fixture {
        topology,
        cache,
        l1,
        l2,
        redis,
        cluster,
        clock,
        ns,
    }
}

impl Fixture {
    pub fn typed(&self) -> TypedCache {
        TypedCache::builder_dyn(self.cache.clone()).build()
    }

    pub fn typed_json(&self) -> TypedCache<Json> {
        TypedCache::builder_dyn(self.cache.clone())
            .codec(Json)
            .build()
    }

    pub async fn raw(&self) -> Raw {
        match (&self.redis, &self.cluster) {
            (Some(s), _) => Raw::Node(s.client().get_multiplexed_async_connection().await.unwrap()),
            (_, Some(c)) => Raw::Cluster(c.client().get_async_connection().await.unwrap()),
            (None, None) => panic!("topology has no redis"),
        }
    }

    /// Makes every entry written with `ttl` dead in every tier: the manual clock moves
    /// for L1; Redis owns its own timing, so we wait (bounded) until it drops the key.
    pub async fn expire(&self, key: &cache::Key, ttl: Duration) {
        self.clock.advance(ttl + Duration::from_millis(1));
        if self.topology.has_l2() {
            let mut con = self.raw().await;
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let exists: bool = redis::cmd("EXISTS")
                    .arg(key.as_str())
                    .query_async(&mut con)
                    .await
                    .unwrap();
                if !exists {
                    break;
                }
                assert!(Instant::now() < deadline, "redis kept {key} past its TTL");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
