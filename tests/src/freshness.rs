//! The freshness checker: concurrent writers and readers through a strategy and a
//! topology, against a source of truth; a read is **stale** if it returns a value older
//! than the newest write acknowledged before the read began, and **backwards** if it
//! returns a value older than one another read had returned before it began.
//!
//! The source here is in memory with an injectable read latency (a slow query), which
//! is what opens the races; the pet shop tests run the same sequence against SQLite
//! and PostgreSQL over HTTP.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache::policy::LeaseConfig;
use cache::tier::{MokaTier, RedisTier, RedisTierBuilder};
use cache::{CacheClient, KeyBuilder, Namespace, Strategy, Ttl};
use serde::{Deserialize, Serialize};

use crate::linearizability::{VersionRead, backwards_windows};

/// One row of the source: its id and how many times it was written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// The id.
    pub id: i64,
    /// 1 when created, +1 per write.
    pub version: u64,
}

/// A source of truth in memory, with a read latency that lets writes overtake reads.
#[derive(Debug)]
pub struct MemorySource {
    rows: Mutex<HashMap<i64, u64>>,
    read_delay: Duration,
    loads: AtomicU64,
}

impl MemorySource {
    /// `ids` rows (0..ids), each at version 1.
    #[must_use]
    pub fn new(ids: i64, read_delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            rows: Mutex::new((0..ids).map(|id| (id, 1)).collect()),
            read_delay,
            loads: AtomicU64::new(0),
        })
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, HashMap<i64, u64>> {
        self.rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads a row as it is now, then takes `read_delay` to return it (a slow query).
    pub async fn read(&self, id: i64) -> Option<Row> {
        self.loads.fetch_add(1, Ordering::Relaxed);
        let row = self.rows().get(&id).map(|&version| Row { id, version });
        if !self.read_delay.is_zero() {
            tokio::time::sleep(self.read_delay).await;
        }
        row
    }

    /// Writes a row (its version goes up by one) and returns it as stored.
    pub fn write(&self, id: i64) -> Row {
        let mut rows = self.rows();
        let v = rows.entry(id).or_insert(0);
        *v += 1;
        Row { id, version: *v }
    }

    /// Sets row `id` to `version` (a writer that owns the row) and returns it as stored.
    pub fn set(&self, id: i64, version: u64) -> Row {
        self.rows().insert(id, version);
        Row { id, version }
    }

    /// The version of row `id` now, without counting a load or waiting.
    #[must_use]
    pub fn peek(&self, id: i64) -> Option<u64> {
        self.rows().get(&id).copied()
    }

    /// How many reads reached the source.
    #[must_use]
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }
}

pub use cache::Topology;

/// How the cache instances are built.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The strategy.
    pub kind: Strategy,
    /// The tiers.
    pub topology: Topology,
    /// Cache instances sharing one Redis (1 or more).
    pub instances: usize,
    /// Whether L1+L2 instances use the backplane.
    pub backplane: bool,
    /// Whether fills go through the fill-race guard.
    pub fill_guard: bool,
    /// Whether misses take a distributed lease.
    pub lease: bool,
}

impl Setup {
    /// One instance with the backplane and the guard, no lease.
    #[must_use]
    pub fn new(kind: Strategy, topology: Topology) -> Self {
        Self {
            kind,
            topology,
            instances: 1,
            backplane: true,
            fill_guard: true,
            lease: false,
        }
    }

    /// A one-line description for reports.
    #[must_use]
    pub fn label(&self) -> String {
        let mut s = format!(
            "{} | {} x{}",
            self.kind,
            self.topology.as_str(),
            self.instances
        );
        if self.topology == Topology::L1L2 && self.instances > 1 && !self.backplane {
            s.push_str(" no backplane");
        }
        if !self.fill_guard {
            s.push_str(" no guard");
        }
        s
    }
}

/// The entity namespace every instance uses for rows.
#[derive(Clone, Debug)]
pub struct Keys {
    /// Rows by id.
    pub rows: Namespace,
    /// A group depending on rows (invalidated by every write).
    pub lists: Namespace,
    /// The key builder (its prefix is unique per run).
    pub builder: KeyBuilder,
}

impl Keys {
    /// Keys under a fresh random prefix, so runs sharing one Redis never meet.
    #[must_use]
    pub fn unique() -> Self {
        let builder =
            KeyBuilder::new(&format!("f{:x}", rand::random::<u64>())).expect("valid prefix");
        Self {
            rows: builder.namespace("row").expect("valid"),
            lists: builder.namespace("rows").expect("valid"),
            builder,
        }
    }
}

/// Where the shared Redis is: one server, or a Redis Cluster's seed nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redis {
    /// `redis://host:port`.
    Node(String),
    /// `redis://host:port` of one or more of the cluster's nodes.
    Cluster(Vec<String>),
}

impl Redis {
    /// A tier builder for this Redis.
    pub fn tier(&self) -> RedisTierBuilder {
        match self {
            Self::Node(url) => RedisTier::builder(url.as_str()),
            Self::Cluster(seeds) => RedisTier::cluster_builder(seeds.iter().map(String::as_str)),
        }
    }
}

/// Builds the cache instances of `setup`, all sharing the Redis at `redis_url`.
///
/// # Panics
/// When the topology needs Redis and `redis_url` is `None`.
#[must_use]
pub fn instances(setup: &Setup, keys: &Keys, redis_url: Option<&str>) -> Vec<CacheClient> {
    instances_on(
        setup,
        keys,
        redis_url.map(|u| Redis::Node(u.to_owned())).as_ref(),
    )
}

/// Builds the cache instances of `setup`, all sharing `redis`.
///
/// # Panics
/// When the topology needs Redis and `redis` is `None`.
#[must_use]
pub fn instances_on(setup: &Setup, keys: &Keys, redis: Option<&Redis>) -> Vec<CacheClient> {
    (0..setup.instances)
        .map(|_| {
            let mut b = CacheClient::builder(&keys.builder)
                .strategy(setup.kind)
                .entity(&keys.rows, &[&keys.lists])
                .backplane(setup.backplane)
                .fill_guard(setup.fill_guard);
            if setup.topology.has_l1() {
                b = b.l1(MokaTier::builder());
            }
            if setup.topology.has_l2() {
                let redis = redis.expect("this topology needs redis");
                b = b.l2(redis.tier().op_timeout(Duration::from_millis(500)));
            }
            if setup.lease {
                b = b.lease(LeaseConfig::default());
            }
            b.build().expect("a valid client")
        })
        .collect()
}

/// How hard a run pushes.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Rows in the source (fewer rows, more contention).
    pub ids: i64,
    /// Concurrent writers (on instance 0).
    pub writers: usize,
    /// Concurrent readers per instance.
    pub readers: usize,
    /// How long writers and readers run.
    pub duration: Duration,
    /// The source's read latency.
    pub read_delay: Duration,
    /// Pause between two writes of one writer.
    pub write_pause: Duration,
    /// Pause between two reads of one reader.
    pub read_pause: Duration,
    /// TTL of entries (long: staleness must not be hidden by expiry).
    pub ttl: Ttl,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            ids: 20,
            writers: 2,
            readers: 4,
            duration: Duration::from_millis(1500),
            read_delay: Duration::from_millis(2),
            write_pause: Duration::from_millis(3),
            read_pause: Duration::from_millis(1),
            ttl: Ttl::secs(600),
        }
    }
}

/// What one run measured.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The configuration.
    pub label: String,
    /// Reads completed.
    pub reads: u64,
    /// Reads that returned a value older than a write acknowledged before they began.
    pub stale_reads: u64,
    /// The longest time a stale read's value had already been superseded.
    pub worst_window: Duration,
    /// Reads that returned a value older than one another read had returned before they
    /// began.
    pub backwards_reads: u64,
    /// The longest time before such a read began that the newer value had been returned.
    pub backwards_window: Duration,
    /// Writes acknowledged.
    pub writes: u64,
    /// Reads that reached the source.
    pub loader_calls: u64,
}

struct ReadRecord {
    id: i64,
    began: Instant,
    ended: Instant,
    version: u64,
}

/// Runs `work` through `setup` and reports staleness.
///
/// # Panics
/// When the topology needs Redis and `redis_url` is `None`, or a backplane does not
/// connect within 5 s.
pub async fn run(setup: &Setup, work: &Workload, redis_url: Option<&str>) -> Report {
    let redis = redis_url.map(|u| Redis::Node(u.to_owned()));
    run_on(setup, work, redis.as_ref()).await
}

/// Runs `work` through `setup` on `redis` and reports staleness.
///
/// # Panics
/// When the topology needs Redis and `redis` is `None`, a backplane does not connect
/// within 5 s, or a read returns an error.
pub async fn run_on(setup: &Setup, work: &Workload, redis: Option<&Redis>) -> Report {
    run_with(setup, work, redis, &Keys::unique()).await.0
}

/// [`run_on`] under `keys`, also returning the instances (for their counters).
///
/// # Panics
/// As [`run_on`].
pub async fn run_with(
    setup: &Setup,
    work: &Workload,
    redis: Option<&Redis>,
    keys: &Keys,
) -> (Report, Vec<CacheClient>) {
    let keys = keys.clone();
    let caches = instances_on(setup, &keys, redis);
    for c in &caches {
        assert!(
            c.wait_for_backplane(Duration::from_secs(5)).await,
            "backplane did not connect"
        );
    }
    let source = MemorySource::new(work.ids, work.read_delay);
    let stop_at = Instant::now() + work.duration;
    let writes = Arc::new(Mutex::new(Vec::<(i64, u64, Instant)>::new()));
    let reads = Arc::new(Mutex::new(Vec::<ReadRecord>::new()));
    let mut tasks = Vec::new();

    for _ in 0..work.writers {
        let (cache, source, keys, writes, work) = (
            caches[0].clone(),
            source.clone(),
            keys.clone(),
            writes.clone(),
            work.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < stop_at {
                let id = rand::random_range(0..work.ids);
                let ticket = cache
                    .begin_write(&keys.rows, Some(id))
                    .await
                    .expect("available writes are never refused");
                let row = source.write(id);
                cache.finish_write(ticket, id, Some(&row), work.ttl).await;
                let acked = Instant::now();
                writes.lock().expect("log").push((id, row.version, acked));
                tokio::time::sleep(work.write_pause).await;
            }
        }));
    }
    for cache in &caches {
        for _ in 0..work.readers {
            let (cache, source, keys, reads, work) = (
                cache.clone(),
                source.clone(),
                keys.clone(),
                reads.clone(),
                work.clone(),
            );
            tasks.push(tokio::spawn(async move {
                while Instant::now() < stop_at {
                    let id = rand::random_range(0..work.ids);
                    let began = Instant::now();
                    let got = cache
                        .get_entity(&keys.rows, id, work.ttl, || async {
                            Ok::<_, Infallible>(source.read(id).await)
                        })
                        .await
                        .expect("the loader cannot fail");
                    let version = got.value.map_or(0, |r| r.version);
                    let ended = Instant::now();
                    reads.lock().expect("log").push(ReadRecord {
                        id,
                        began,
                        ended,
                        version,
                    });
                    // An L1 hit never waits on anything: pace readers so writers and the
                    // backplane get the CPU, as request I/O would in a real service.
                    if work.read_pause.is_zero() {
                        tokio::task::yield_now().await;
                    } else {
                        tokio::time::sleep(work.read_pause).await;
                    }
                }
            }));
        }
    }
    for t in tasks {
        t.await.expect("a worker panicked");
    }
    let writes = std::mem::take(&mut *writes.lock().expect("log"));
    let reads = std::mem::take(&mut *reads.lock().expect("log"));
    let mut report = evaluate(&writes, &reads);
    report.label = setup.label();
    report.loader_calls = source.loads();
    (report, caches)
}

fn evaluate(writes: &[(i64, u64, Instant)], reads: &[ReadRecord]) -> Report {
    // Per id: acknowledged writes in ack order.
    let mut by_id: HashMap<i64, Vec<(Instant, u64)>> = HashMap::new();
    for &(id, version, acked) in writes {
        by_id.entry(id).or_default().push((acked, version));
    }
    for list in by_id.values_mut() {
        list.sort();
    }
    let mut report = Report {
        reads: reads.len() as u64,
        writes: writes.len() as u64,
        ..Report::default()
    };
    let answered: Vec<VersionRead> = reads
        .iter()
        .map(|r| VersionRead {
            key: r.id,
            began: r.began,
            ended: r.ended,
            version: r.version,
        })
        .collect();
    for window in backwards_windows(&answered).into_iter().flatten() {
        report.backwards_reads += 1;
        report.backwards_window = report.backwards_window.max(window);
    }
    for r in reads {
        let Some(list) = by_id.get(&r.id) else {
            continue;
        };
        let before: Vec<_> = list
            .iter()
            .take_while(|(acked, _)| *acked < r.began)
            .collect();
        let newest = before.iter().map(|(_, v)| *v).max().unwrap_or(0);
        if r.version < newest {
            report.stale_reads += 1;
            let superseded = before
                .iter()
                .filter(|(_, v)| *v > r.version)
                .map(|(acked, _)| *acked)
                .min()
                .unwrap_or(r.began);
            report.worst_window = report.worst_window.max(r.began - superseded);
        }
    }
    report
}

/// The report as a markdown table.
#[must_use]
pub fn markdown(reports: &[Report]) -> String {
    let mut out = String::from(
        "| strategy | topology | reads | stale reads | worst window | backwards reads | longest backwards window | writes | loader calls |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in reports {
        let (strategy, topology) = r.label.split_once(" | ").unwrap_or((&r.label, ""));
        out.push_str(&format!(
            "| {strategy} | {topology} | {} | {} | {:.1} ms | {} | {:.1} ms | {} | {} |\n",
            r.reads,
            r.stale_reads,
            r.worst_window.as_secs_f64() * 1000.0,
            r.backwards_reads,
            r.backwards_window.as_secs_f64() * 1000.0,
            r.writes,
            r.loader_calls
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_older_than_an_acknowledged_write_is_stale_and_its_window_measured() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let writes = [(1, 2, ms(10)), (1, 3, ms(20))];
        let reads = [
            ReadRecord {
                id: 1,
                began: ms(5),
                ended: ms(5),
                version: 1,
            }, // before any write: fresh
            ReadRecord {
                id: 1,
                began: ms(15),
                ended: ms(15),
                version: 2,
            }, // saw the newest: fresh
            ReadRecord {
                id: 1,
                began: ms(25),
                ended: ms(25),
                version: 2,
            }, // v3 acked at 20: stale by 5 ms
            ReadRecord {
                id: 1,
                began: ms(30),
                ended: ms(30),
                version: 1,
            }, // v2 acked at 10: stale by 20 ms
            ReadRecord {
                id: 2,
                began: ms(30),
                ended: ms(30),
                version: 1,
            }, // never written
        ];
        let r = evaluate(&writes, &reads);
        assert_eq!((r.reads, r.stale_reads, r.writes), (5, 2, 2));
        // The read of v1 at 30 ms came after v2 had been read at 15 ms.
        assert_eq!(
            (r.backwards_reads, r.backwards_window),
            (1, Duration::from_millis(15))
        );
        assert_eq!(r.worst_window, Duration::from_millis(20));
    }
}
