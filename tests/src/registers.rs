//! Pets as registers, over HTTP: real pet shop instances (each with its own cache, on
//! its own listener) on one database and one Redis; writers `PATCH /pets/{id}` with
//! unique names and readers `GET /pets/{id}`, each operation on a random pet through a
//! random instance; every invocation and return on one monotonic clock. The history is
//! then checked for linearizability per pet ([`crate::linearizability`]).
//!
//! A run can freeze Redis in the middle (every connection held, nothing answered,
//! through a proxy the run controls). A write the service refuses (`503`, strict mode)
//! must never be seen by a read nor be in the database afterwards; a write that got no
//! answer may have happened or not, and the checker allows both.

mod http;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use cache::{Strategy, Topology, WriteConsistency};
use hyper::Method;
use petshop::model::NewPet;
use petshop::startup::{Application, Shutdown};

use self::http::Conn;
use crate::drill::{Action, FaultyRedis};
use crate::linearizability::{Kind, Op, Verdict, check};
use crate::postgres::FreshDatabase;

/// Where the instances keep their pets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Store {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the PostgreSQL server of this admin URL (dropped afterwards).
    Postgres(String),
}

/// What the instances run.
#[derive(Clone, Debug)]
pub struct Setup {
    /// `CACHE_STRATEGY`.
    pub strategy: Strategy,
    /// `CACHE_WRITE_CONSISTENCY`.
    pub consistency: WriteConsistency,
    /// `CACHE_TIERS`.
    pub topology: Topology,
    /// How many instances share the database and Redis.
    pub instances: usize,
    /// The database.
    pub store: Store,
}

impl Setup {
    /// Two instances of `strategy`, `consistency` and `topology` on SQLite.
    #[must_use]
    pub fn new(strategy: Strategy, consistency: WriteConsistency, topology: Topology) -> Self {
        Self {
            strategy,
            consistency,
            topology,
            instances: 2,
            store: Store::Sqlite,
        }
    }

    /// `strategy | consistency | tiers xN`; without a cache, strategy and consistency
    /// change nothing and are left out.
    #[must_use]
    pub fn label(&self) -> String {
        if self.topology == Topology::None {
            return format!("none x{}", self.instances);
        }
        format!(
            "{} | {} | {} x{}",
            self.strategy,
            self.consistency,
            self.topology.as_str(),
            self.instances
        )
    }
}

/// Redis stops answering for `length`, `after` the load started.
#[derive(Clone, Copy, Debug)]
pub struct Freeze {
    /// When it starts.
    pub after: Duration,
    /// How long it lasts.
    pub length: Duration,
}

/// How hard a run pushes.
#[derive(Clone, Debug)]
pub struct Load {
    /// Pets `1..=keys`.
    pub keys: i64,
    /// Concurrent writers.
    pub writers: usize,
    /// Concurrent readers.
    pub readers: usize,
    /// How long they run.
    pub length: Duration,
    /// Redis frozen in the middle, if at all.
    pub freeze: Option<Freeze>,
    /// Every other read is one `GET /pets?ids=..` of every pet (a batch read; each pet
    /// in its answer is a read of that pet, invoked and returned with it).
    pub batch: bool,
}

impl Default for Load {
    fn default() -> Self {
        Self {
            keys: 3,
            writers: 3,
            readers: 6,
            length: Duration::from_secs(6),
            freeze: None,
            batch: false,
        }
    }
}

/// What one run found.
#[derive(Clone, Debug, Default)]
pub struct Run {
    /// The setup's label (with `+ freeze` when Redis was frozen).
    pub label: String,
    /// The checker's verdict over every pet.
    pub verdict: Verdict,
    /// Writes answered `200`.
    pub writes_acked: u64,
    /// Writes answered `503` (refused before the database was touched).
    pub writes_refused: u64,
    /// Writes without an answer, or with another status: they may or may not have happened.
    pub writes_unknown: u64,
    /// Reads without a `200`.
    pub read_errors: u64,
    /// Answers with a 5xx other than a write's `503`.
    pub server_errors: u64,
    /// Refused writes whose value is in the database afterwards (must be 0).
    pub refused_in_db: u64,
    /// Latency of acknowledged writes: median and 99th percentile.
    pub write_p50: Duration,
    /// See `write_p50`.
    pub write_p99: Duration,
    /// `X-Cache` of the stale and backwards reads.
    pub flagged_sources: BTreeMap<String, u64>,
    /// `X-Cache` of every read: how much of the traffic the cache answered.
    pub read_sources: BTreeMap<String, u64>,
    /// The stale and backwards reads in detail: `key value X-Cache@instance invoked-returned`.
    pub flagged: Vec<String>,
    /// Each instance's backplane counters at the end.
    pub backplanes: Vec<String>,
    /// Every operation on a flagged read's pet from 200 ms before the first flagged read
    /// began until the last returned, in order of invocation: what a failure is
    /// diagnosed from.
    pub history: Vec<String>,
}

impl Run {
    /// The share of reads answered by a cache tier (`HIT-L1`, `HIT-L2`, `STALE`).
    #[must_use]
    pub fn hit_ratio(&self) -> f64 {
        let reads: u64 = self.read_sources.values().sum();
        let hits: u64 = self
            .read_sources
            .iter()
            .map(|(k, n)| (k.strip_prefix("batch ").unwrap_or(k), n))
            .filter(|(k, _)| k.starts_with("HIT") || *k == "STALE")
            .map(|(_, n)| n)
            .sum();
        if reads == 0 {
            0.0
        } else {
            hits as f64 / reads as f64
        }
    }
}

/// Per operation, what the checker does not need.
#[derive(Clone, Debug)]
struct Meta {
    x_cache: String,
    instance: usize,
}

#[derive(Default)]
struct Log {
    ops: Vec<Op>,
    meta: Vec<Meta>,
    refused: Vec<(i64, String)>,
    read_errors: u64,
    server_errors: u64,
}

/// How long one request may take before it counts as unanswered.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A running instance: its address and how to stop it.
struct Instance {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Runs `load` against `setup`'s instances and checks the history.
///
/// # Errors
/// When Redis, the database or an instance cannot be set up.
pub async fn run(setup: &Setup, load: &Load) -> anyhow::Result<Run> {
    let redis = if setup.topology.has_l2() {
        Some(
            tokio::task::spawn_blocking(FaultyRedis::spawn)
                .await
                .context("starting redis-server")?,
        )
    } else {
        None
    };
    let dir = tempfile::tempdir()?;
    let (database_url, _db) = match &setup.store {
        Store::Sqlite => (
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("pets.sqlite").display()
            ),
            None,
        ),
        Store::Postgres(admin) => {
            let db = FreshDatabase::create(admin, "petshop_lin").await?;
            (db.url().to_owned(), Some(db))
        }
    };
    let mut vars = vec![
        ("DATABASE_URL".to_owned(), database_url),
        ("BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("CACHE_TIERS".to_owned(), setup.topology.as_str().to_owned()),
        (
            "CACHE_STRATEGY".to_owned(),
            setup.strategy.as_str().to_owned(),
        ),
        (
            "CACHE_WRITE_CONSISTENCY".to_owned(),
            setup.consistency.as_str().to_owned(),
        ),
        // Long enough that no staleness hides behind an expiry.
        ("PET_TTL".to_owned(), "60s".to_owned()),
    ];
    if let Some(redis) = &redis {
        vars.push(("REDIS_URL".to_owned(), redis.url()));
    }
    let config = petshop::config::Config::from_vars(vars)?;

    // One by one: a SQLite file takes its migrations from one writer at a time.
    let mut instances = Vec::new();
    let mut caches: Vec<petshop::cache_layer::CacheLayer> = Vec::new();
    let mut db = None;
    for i in 0..setup.instances {
        let app = Application::build(&config)
            .await
            .with_context(|| format!("instance {i} did not start"))?;
        let state = app.state().clone();
        let _ = state
            .cache
            .wait_for_backplane(Duration::from_secs(10))
            .await;
        db.get_or_insert_with(|| state.db.clone());
        caches.push(state.cache.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let addr = app.addr();
        let served = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
            Shutdown::Interrupt
        }));
        instances.push(Instance {
            addr,
            stop: Some(tx),
            served,
        });
    }
    let db = db.context("no instance")?;
    let mut initial = HashMap::new();
    for k in 1..=load.keys {
        let name = format!("init-{k}");
        let pet = petshop::service::pets::create(
            &db,
            NewPet {
                name: name.clone(),
                species: "cat".into(),
                age: 3,
                happiness: 50,
            },
        )
        .await
        .context("insert a pet")?;
        initial.insert(pet.id, name);
    }
    let keys: Vec<i64> = initial.keys().copied().collect();

    let addrs: Vec<SocketAddr> = instances.iter().map(|i| i.addr).collect();
    let log = Arc::new(Mutex::new(Log::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut workers = Vec::new();
    for w in 0..load.writers + load.readers {
        let writer = w < load.writers;
        let (addrs, keys, log, stop) = (addrs.clone(), keys.clone(), log.clone(), stop.clone());
        let every: Vec<String> = keys.iter().map(i64::to_string).collect();
        let batch_path = format!("/pets?ids={}", every.join(","));
        let batch = load.batch && !writer;
        workers.push(tokio::spawn(async move {
            let mut conns: Vec<Conn> = addrs.iter().map(|a| Conn::new(*a)).collect();
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let key = keys[rand::random_range(0..keys.len())];
                let instance = rand::random_range(0..conns.len());
                let path = format!("/pets/{key}");
                n += 1;
                if batch && n.is_multiple_of(2) {
                    let invoked = start.elapsed();
                    let answer = conns[instance]
                        .send(Method::GET, &batch_path, None, REQUEST_TIMEOUT)
                        .await;
                    let returned = start.elapsed();
                    record_batch(&log, keys.len(), instance, invoked, returned, answer);
                    continue;
                }
                let (method, body, value) = if writer {
                    let value = format!("w{w}.{n}");
                    let body = serde_json::json!({ "name": value }).to_string();
                    (Method::PATCH, Some(body), Some(value))
                } else {
                    (Method::GET, None, None)
                };
                let invoked = start.elapsed();
                let answer = conns[instance]
                    .send(method, &path, body, REQUEST_TIMEOUT)
                    .await;
                let returned = start.elapsed();
                record(&log, key, instance, value, invoked, returned, answer);
            }
        }));
    }

    let freeze = async {
        if let (Some(f), Some(redis)) = (load.freeze, &redis) {
            tokio::time::sleep(f.after).await;
            redis.apply(Action::BlackHole).await;
            tokio::time::sleep(f.length).await;
            redis.apply(Action::Heal).await;
        }
    };
    tokio::join!(freeze, tokio::time::sleep(load.length));
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.context("a worker panicked")?;
    }
    let backplanes: Vec<String> = caches
        .iter()
        .map(|c| format!("{:?}", c.cache_stats().backplane))
        .collect();
    for mut i in instances {
        if let Some(tx) = i.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(15), &mut i.served).await;
    }

    let log = std::mem::take(&mut *log.lock().expect("log"));
    let mut refused_in_db = 0;
    for (key, value) in &log.refused {
        let now = petshop::service::pets::get(&db, *key).await?;
        if now.is_some_and(|p| &p.name == value) {
            refused_in_db += 1;
        }
    }
    let mut run = summarize(setup, load, &initial, log, refused_in_db);
    run.backplanes = backplanes;
    Ok(run)
}

/// Adds one operation to `log`. `value` is what a write wrote (`None`: a read).
fn record(
    log: &Mutex<Log>,
    key: i64,
    instance: usize,
    value: Option<String>,
    invoked: Duration,
    returned: Duration,
    answer: anyhow::Result<http::Answer>,
) {
    let mut log = log.lock().expect("log");
    let (status, x_cache, body) = match answer {
        Ok(a) => (Some(a.status), a.x_cache.unwrap_or_default(), a.body),
        Err(_) => (None, String::new(), bytes::Bytes::new()),
    };
    if status.is_some_and(|s| s >= 500 && !(value.is_some() && s == 503)) {
        log.server_errors += 1;
    }
    let op = match (value, status) {
        (Some(value), Some(200)) => Op {
            key,
            kind: Kind::Write,
            value,
            invoked,
            returned: Some(returned),
        },
        (Some(value), Some(503)) => {
            log.refused.push((key, value));
            return;
        }
        (Some(value), _) => Op {
            key,
            kind: Kind::Write,
            value,
            invoked,
            returned: None,
        },
        (None, Some(200)) => {
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            Op {
                key,
                kind: Kind::Read,
                value: json["name"].as_str().unwrap_or_default().to_owned(),
                invoked,
                returned: Some(returned),
            }
        }
        (None, _) => {
            log.read_errors += 1;
            return;
        }
    };
    log.ops.push(op);
    log.meta.push(Meta { x_cache, instance });
}

/// Adds the reads of one batch answer (`GET /pets?ids=..` of `asked` pets) to `log`:
/// one per pet in it, all invoked and returned with it.
fn record_batch(
    log: &Mutex<Log>,
    asked: usize,
    instance: usize,
    invoked: Duration,
    returned: Duration,
    answer: anyhow::Result<http::Answer>,
) {
    let mut log = log.lock().expect("log");
    let answer = match answer {
        Ok(a) if a.status == 200 => a,
        Ok(a) => {
            if a.status >= 500 {
                log.server_errors += 1;
            }
            log.read_errors += 1;
            return;
        }
        Err(_) => {
            log.read_errors += 1;
            return;
        }
    };
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    let pets = json["pets"].as_array().cloned().unwrap_or_default();
    if pets.len() != asked {
        // Pets are never deleted: a batch that lacks one is wrong.
        log.read_errors += 1;
    }
    let x_cache = format!("batch {}", answer.x_cache.unwrap_or_default());
    for pet in pets {
        let (Some(key), Some(name)) = (pet["id"].as_i64(), pet["name"].as_str()) else {
            log.read_errors += 1;
            continue;
        };
        log.ops.push(Op {
            key,
            kind: Kind::Read,
            value: name.to_owned(),
            invoked,
            returned: Some(returned),
        });
        log.meta.push(Meta {
            x_cache: x_cache.clone(),
            instance,
        });
    }
}

fn summarize(
    setup: &Setup,
    load: &Load,
    initial: &HashMap<i64, String>,
    log: Log,
    refused_in_db: u64,
) -> Run {
    let verdict = check(initial, &log.ops, &log.refused);
    let mut read_sources = BTreeMap::new();
    for (op, meta) in log.ops.iter().zip(&log.meta) {
        if op.kind == Kind::Read {
            *read_sources.entry(meta.x_cache.clone()).or_default() += 1;
        }
    }
    let mut flagged_sources = BTreeMap::new();
    let mut flagged = Vec::new();
    for &i in &verdict.flagged {
        let (op, meta) = (&log.ops[i], &log.meta[i]);
        *flagged_sources.entry(meta.x_cache.clone()).or_default() += 1;
        flagged.push(format!(
            "pet {} {:?} {}@{} {:.3}-{:.3} ms",
            op.key,
            op.value,
            meta.x_cache,
            meta.instance,
            op.invoked.as_secs_f64() * 1e3,
            op.returned.unwrap_or_default().as_secs_f64() * 1e3
        ));
    }
    let mut latencies: Vec<Duration> = log
        .ops
        .iter()
        .filter(|o| o.kind == Kind::Write)
        .filter_map(|o| o.returned.map(|r| r - o.invoked))
        .collect();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let writes = |returned: bool| {
        log.ops
            .iter()
            .filter(|o| o.kind == Kind::Write && o.returned.is_some() == returned)
            .count() as u64
    };
    let mut label = setup.label();
    if load.freeze.is_some() {
        label.push_str(" + freeze");
    }
    if load.batch {
        label.push_str(" + batch");
    }
    Run {
        label,
        writes_acked: writes(true),
        writes_unknown: writes(false),
        writes_refused: log.refused.len() as u64,
        read_errors: log.read_errors,
        server_errors: log.server_errors,
        refused_in_db,
        write_p50: pct(0.5),
        write_p99: pct(0.99),
        flagged_sources,
        read_sources,
        history: history_of(&log, &verdict.flagged),
        flagged,
        backplanes: Vec::new(),
        verdict,
    }
}

/// How many lines [`Run::history`] keeps at most.
const HISTORY_LINES: usize = 80;

/// The operations on the pets of the `flagged` reads around them (see [`Run::history`]).
fn history_of(log: &Log, flagged: &[usize]) -> Vec<String> {
    let Some(from) = flagged.iter().map(|&i| log.ops[i].invoked).min() else {
        return Vec::new();
    };
    let from = from.saturating_sub(Duration::from_millis(200));
    let until = flagged
        .iter()
        .filter_map(|&i| log.ops[i].returned)
        .max()
        .unwrap_or(from);
    let keys: std::collections::BTreeSet<i64> = flagged.iter().map(|&i| log.ops[i].key).collect();
    let mut around: Vec<(&Op, &Meta)> = log
        .ops
        .iter()
        .zip(&log.meta)
        .filter(|(op, _)| keys.contains(&op.key))
        .filter(|(op, _)| op.invoked <= until && op.returned.is_none_or(|r| r >= from))
        .collect();
    around.sort_by_key(|(op, _)| op.invoked);
    around
        .into_iter()
        .take(HISTORY_LINES)
        .map(|(op, meta)| {
            format!(
                "pet {} {} {:?} {}@{} {:.3}-{}",
                op.key,
                if op.kind == Kind::Write {
                    "write"
                } else {
                    "read"
                },
                op.value,
                meta.x_cache,
                meta.instance,
                op.invoked.as_secs_f64() * 1e3,
                op.returned.map_or("?".to_owned(), |r| format!(
                    "{:.3} ms",
                    r.as_secs_f64() * 1e3
                )),
            )
        })
        .collect()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The runs as a markdown table.
#[must_use]
pub fn markdown(runs: &[Run]) -> String {
    let mut out = String::from(
        "| configuration | operations | linearizable | stale reads | longest stale window | backwards reads | longest backwards window | flagged reads by X-Cache | reads from the cache | writes acked / refused / unknown | write p50 / p99 | 5xx |\n\
         |---|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|\n",
    );
    for r in runs {
        let v = &r.verdict;
        let sources = if r.flagged_sources.is_empty() {
            "-".to_owned()
        } else {
            r.flagged_sources
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.0} % | {} / {} / {} | {} / {} | {} |\n",
            r.label,
            v.ops,
            if v.linearizable { "yes" } else { "**no**" },
            v.stale_reads,
            ms(v.stale_window),
            v.backwards_reads,
            ms(v.backwards_window),
            sources,
            r.hit_ratio() * 100.0,
            r.writes_acked,
            r.writes_refused,
            r.writes_unknown,
            ms(r.write_p50),
            ms(r.write_p99),
            r.server_errors,
        ));
    }
    out
}
