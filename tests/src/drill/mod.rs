//! The fault drill: writers and readers through several cache instances while Redis is
//! killed, restarted empty, slowed, black-holed and recovered, then every entity read
//! through every instance and compared with the source of truth.
//!
//! What it reports, per run: stale reads in each phase (a read is stale when it returns
//! a version older than a write acknowledged before it began) with the longest window,
//! backwards reads (older than a version another read had returned before it began),
//! stale answers in the sweep after recovery (the goal is 0), requests, server errors,
//! refused and lost writes, and how long after Redis came back reads were answered by
//! L2 again and the recovery queues were empty.
//!
//! The harness knows nothing of what it drives: a [`Target`] reads and writes one
//! instance, a [`Truth`] reads the source. [`library`] drives `CacheClient`s over an
//! in-memory source (the freshness checker with a fault schedule); [`petshop`] drives
//! pet shop instances over HTTP on one database.

mod evaluate;
pub mod library;
pub mod petshop;
mod redis;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use self::evaluate::{InstanceLoad, PhaseReport, Report, markdown_phases, markdown_summary};
pub use self::redis::{Action, FaultyRedis};

/// What one read saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    /// An answer: the entity's version (`None`: not found) and the `X-Cache` of it.
    Value {
        /// The version read.
        version: Option<u64>,
        /// `HIT-L1`, `HIT-L2`, `MISS`, `BYPASS` or `STALE`.
        x_cache: &'static str,
    },
    /// A server error (HTTP 5xx, or a library error).
    Failed(String),
}

/// What one write came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// The source has it.
    Acked,
    /// Refused before the source was touched (strict mode, HTTP 503).
    Refused,
    /// A server error: the write may or may not have happened.
    Failed(String),
}

/// One cache instance, as the drill uses it.
pub trait Target: Send + Sync + 'static {
    /// Reads entity `id`.
    fn read(&self, id: i64) -> impl Future<Output = Read> + Send;
    /// Writes entity `id` at `version` (one writer per id: versions only go up).
    fn write(&self, id: i64, version: u64) -> impl Future<Output = Write> + Send;
    /// Effects of writes this instance is holding for Redis.
    fn pending(&self) -> impl Future<Output = u64> + Send;
}

/// The source of truth, read behind every cache.
pub trait Truth: Send + Sync + 'static {
    /// The version of entity `id` in the source.
    fn version(&self, id: i64) -> impl Future<Output = Option<u64>> + Send;
}

/// One step of the schedule.
#[derive(Clone, Debug)]
pub struct Phase {
    /// Its name in reports.
    pub name: &'static str,
    /// What happens to Redis when it starts.
    pub action: Action,
    /// How long it lasts.
    pub length: Duration,
}

/// Redis healthy throughout, `length` long: the load alone (the scale-out run).
#[must_use]
pub fn steady_schedule(length: Duration) -> Vec<Phase> {
    vec![Phase {
        name: "steady",
        action: Action::Heal,
        length,
    }]
}

/// Healthy (warm-up), killed, restarted empty, slowed by `slow`, black-holed, recovered:
/// each phase `length` long.
#[must_use]
pub fn standard_schedule(length: Duration, slow: Duration) -> Vec<Phase> {
    [
        ("healthy", Action::Heal),
        ("killed", Action::Kill),
        ("restarted empty", Action::Restart),
        ("slow", Action::Slow(slow)),
        ("black-holed", Action::BlackHole),
        ("recovered", Action::Heal),
    ]
    .into_iter()
    .map(|(name, action)| Phase {
        name,
        action,
        length,
    })
    .collect()
}

/// How hard the drill pushes.
#[derive(Clone, Debug)]
pub struct Load {
    /// Entities `1..=ids` (fewer: more contention).
    pub ids: i64,
    /// Concurrent writers; each owns a share of the ids and writes through every instance in turn.
    pub writers: usize,
    /// Concurrent readers per instance.
    pub readers: usize,
    /// Pause between two writes of one writer.
    pub write_pause: Duration,
    /// Pause between two reads of one reader.
    pub read_pause: Duration,
}

impl Default for Load {
    fn default() -> Self {
        Self {
            ids: 40,
            writers: 4,
            readers: 4,
            write_pause: Duration::from_millis(10),
            read_pause: Duration::from_millis(2),
        }
    }
}

#[derive(Clone, Debug)]
struct ReadRec {
    id: i64,
    /// The target that served it (an index into the run's targets).
    instance: usize,
    began: Instant,
    ended: Instant,
    read: Read,
}

#[derive(Clone, Debug)]
struct WriteRec {
    id: i64,
    /// The target that took it.
    instance: usize,
    version: u64,
    began: Instant,
    ended: Instant,
    write: Write,
}

/// How long the drill waits, after the load stops, for every instance's recovery queue
/// to empty before the sweep.
const QUIESCE_WAIT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Log {
    reads: Mutex<Vec<ReadRec>>,
    writes: Mutex<Vec<WriteRec>>,
}

/// Runs `load` through `targets` while `schedule` happens to `redis`, then sweeps every
/// entity through every target against `truth`. Entities `1..=load.ids` must exist in
/// the source at version 1.
pub async fn run<T: Target, S: Truth>(
    label: &str,
    targets: Vec<Arc<T>>,
    truth: Arc<S>,
    redis: &FaultyRedis,
    schedule: &[Phase],
    load: &Load,
) -> Report {
    let log = Arc::new(Log::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    let writers = load.writers.max(1);
    for w in 0..writers {
        let (targets, log, stop, load) = (targets.clone(), log.clone(), stop.clone(), load.clone());
        workers.push(tokio::spawn(async move {
            // Writer w owns the ids ≡ w (mod writers), so each id's versions only go up.
            let ids: Vec<i64> = (1..=load.ids)
                .filter(|id| (id - 1) as usize % writers == w)
                .collect();
            let mut next = vec![1u64; ids.len()];
            let mut turn = w;
            while !stop.load(Ordering::SeqCst) && !ids.is_empty() {
                let k = rand::random_range(0..ids.len());
                let (id, version) = (ids[k], next[k] + 1);
                turn += 1;
                let instance = turn % targets.len();
                let began = Instant::now();
                let write = targets[instance].write(id, version).await;
                let ended = Instant::now();
                // A write that failed may still have happened: never reuse its version.
                if !matches!(write, Write::Refused) {
                    next[k] = version;
                }
                log.writes.lock().expect("log").push(WriteRec {
                    id,
                    instance,
                    version,
                    began,
                    ended,
                    write,
                });
                tokio::time::sleep(load.write_pause).await;
            }
        }));
    }
    for (instance, target) in targets.iter().enumerate() {
        for _ in 0..load.readers {
            let (target, log, stop, load) =
                (target.clone(), log.clone(), stop.clone(), load.clone());
            workers.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let id = rand::random_range(1..=load.ids);
                    let began = Instant::now();
                    let read = target.read(id).await;
                    let ended = Instant::now();
                    log.reads.lock().expect("log").push(ReadRec {
                        id,
                        instance,
                        began,
                        ended,
                        read,
                    });
                    tokio::time::sleep(load.read_pause).await;
                }
            }));
        }
    }

    // The schedule, and how long the queues take to drain after each return of Redis.
    let mut marks = Vec::new();
    let mut drained = Vec::new();
    for phase in schedule {
        let start = Instant::now();
        redis.apply(phase.action).await;
        marks.push((start, phase.name));
        let end = start + phase.length;
        let mut empty_at = None;
        while Instant::now() < end {
            if empty_at.is_none() && phase.action.returns() {
                let mut pending = 0;
                for t in &targets {
                    pending += t.pending().await;
                }
                if pending == 0 {
                    empty_at = Some(start.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drained.push(empty_at);
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        let _ = w.await;
    }

    // Quiescence: no request in flight, and no instance holding a write's cache-side
    // step for Redis (bounded: a Redis still down leaves them queued).
    let deadline = Instant::now() + QUIESCE_WAIT;
    while Instant::now() < deadline {
        let mut pending = 0;
        for t in &targets {
            pending += t.pending().await;
        }
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The sweep: every entity through every instance, against the source.
    let mut sweep = Vec::new();
    for id in 1..=load.ids {
        let want = truth.version(id).await;
        for t in &targets {
            sweep.push((want, t.read(id).await));
        }
    }
    let mut finals = Vec::new();
    for id in 1..=load.ids {
        finals.push((id, truth.version(id).await));
    }
    let reads = std::mem::take(&mut *log.reads.lock().expect("log"));
    let writes = std::mem::take(&mut *log.writes.lock().expect("log"));
    evaluate::evaluate(
        label,
        targets.len(),
        schedule,
        &marks,
        &drained,
        &reads,
        &writes,
        &sweep,
        &finals,
    )
}
