//! Batch reads against their physical limits: `read_many` of 100 keys from L1 against one
//! `read`, and from Redis against one `MGET` of the same 100 entries (plus decoding) and
//! against 100 single reads; and, with a writer running on another instance, how fresh
//! a batch is beside single reads, in available and strict mode.
//!
//! `cargo run --release -p benches --bin batch [-- --iters 2000 --out benches/results/batch.md]`
//!
//! A private `redis-server` is spawned for the run. Every value read is checked against
//! the source (untimed): `stale` counts values older than a write acknowledged before
//! the read began.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use benches::pet::{Pet, sample_pet};
use cache::codec::{Bincode, Codec};
use cache::testing::RedisServer;
use cache::tier::{ENVELOPE_HEADER, MokaTier, RedisTier};
use cache::{CacheClient, Fetched, KeyBuilder, Namespace, Strategy, Ttl, WriteConsistency};
use clap::Parser;

const TTL: Ttl = Ttl::secs(3600);
const N: i64 = 100;

#[derive(Parser, Debug)]
struct Args {
    /// Timed operations per row.
    #[arg(long, default_value_t = 2000)]
    iters: usize,
    /// How long the row with a writer runs, in seconds.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Where the markdown goes.
    #[arg(long, default_value = "benches/results/batch.md")]
    out: std::path::PathBuf,
}

/// A value as the source holds it: the pet and its version (bumped by each write).
type Row = (u64, Pet);

/// The source of truth: each id's version, and the versions acknowledged so far.
#[derive(Clone, Default)]
struct Source(Arc<Mutex<HashMap<i64, u64>>>);

impl Source {
    fn row(&self, id: i64) -> Row {
        (
            self.0.lock().unwrap().get(&id).copied().unwrap_or(0),
            sample_pet(id),
        )
    }
}

/// Timings of one row, in ns per operation, and its stale values.
struct Row_ {
    name: &'static str,
    what: &'static str,
    samples: Vec<u64>,
    stale: u64,
    values: u64,
}

impl Row_ {
    fn mean(&self) -> f64 {
        self.samples.iter().sum::<u64>() as f64 / self.samples.len().max(1) as f64
    }
    fn pct(&self, p: f64) -> u64 {
        let mut s = self.samples.clone();
        s.sort_unstable();
        s.get(((s.len() as f64 * p) as usize).min(s.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    }
}

fn ids() -> Vec<i64> {
    (1..=N).collect()
}

async fn batch(c: &CacheClient, ns: &Namespace, src: &Source) -> Vec<(i64, Fetched<Row>)> {
    c.read_many(ns, ids(), TTL)
        .load_many(|missing: Vec<i64>| async {
            Ok::<_, std::io::Error>(
                missing
                    .into_iter()
                    .map(|id| (id, src.row(id)))
                    .collect::<Vec<_>>(),
            )
        })
        .await
        .expect("batch read")
}

async fn single(c: &CacheClient, ns: &Namespace, src: &Source, id: i64) -> Fetched<Row> {
    c.read(ns, id, TTL)
        .load(|| async { Ok::<_, std::io::Error>(src.row(id)) })
        .await
        .expect("read")
}

/// Times `op` `iters` times; `check` counts the stale values of each answer (untimed).
async fn measure<F, Fut, T>(
    name: &'static str,
    what: &'static str,
    iters: usize,
    mut op: F,
    mut check: impl FnMut(&T) -> (u64, u64),
) -> Row_
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    for _ in 0..iters / 10 {
        op().await; // warm-up
    }
    let mut row = Row_ {
        name,
        what,
        samples: Vec::with_capacity(iters),
        stale: 0,
        values: 0,
    };
    for _ in 0..iters {
        let t = Instant::now();
        let out = op().await;
        row.samples
            .push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        let (stale, values) = check(&out);
        row.stale += stale;
        row.values += values;
    }
    row
}

fn client(
    keys: &KeyBuilder,
    l1: bool,
    redis: Option<&str>,
    consistency: WriteConsistency,
) -> anyhow::Result<CacheClient> {
    let mut b = CacheClient::builder(keys)
        .strategy(Strategy::WriteThrough)
        .write_consistency(consistency);
    if l1 {
        b = b.l1(MokaTier::builder().max_bytes(64 << 20));
    }
    if let Some(url) = redis {
        b = b.l2(RedisTier::builder(url).op_timeout(Duration::from_secs(1)));
    }
    Ok(b.build()?)
}

/// `name`'s row: reads of all 100 ids (in one batch, or one by one) through one instance
/// while another makes write-through writes of random ids, for `seconds`. A value is
/// stale when a write acknowledged before the read began had replaced it.
#[allow(clippy::too_many_arguments)]
async fn beside_writer(
    keys: &KeyBuilder,
    url: &str,
    src: &Source,
    name: &'static str,
    what: &'static str,
    consistency: WriteConsistency,
    batched: bool,
    seconds: f64,
) -> anyhow::Result<(Row_, u64)> {
    // A namespace of its own: written entities are stored as `Option<Row>`.
    let ns = keys.namespace(name)?;
    let open = || client(keys, true, Some(url), consistency);
    let (reader, writer) = (open()?, open()?);
    for c in [&reader, &writer] {
        anyhow::ensure!(
            c.wait_for_backplane(Duration::from_secs(10)).await,
            "no backplane"
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(HashMap::<i64, u64>::new()));
    let writes = Arc::new(AtomicU64::new(0));
    let writing = {
        let (src, ns, stop, acked, writes) = (
            src.clone(),
            ns.clone(),
            stop.clone(),
            acked.clone(),
            writes.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let id = rand::random_range(1..=N);
                let ticket = writer.begin_write(&ns, Some(id)).await.expect("begin");
                let v = {
                    let mut rows = src.0.lock().unwrap();
                    let v = rows.entry(id).or_insert(0);
                    *v += 1;
                    *v
                };
                writer
                    .finish_write(ticket, id, Some(&(v, sample_pet(id))), TTL)
                    .await;
                acked.lock().unwrap().insert(id, v);
                writes.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let load = |missing: Vec<i64>| async {
        Ok::<_, std::io::Error>(
            missing
                .into_iter()
                .map(|id| (id, Some(src.row(id))))
                .collect::<Vec<_>>(),
        )
    };
    let mut row = Row_ {
        name,
        what,
        samples: Vec::new(),
        stale: 0,
        values: 0,
    };
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < seconds {
        let before = acked.lock().unwrap().clone();
        let t = Instant::now();
        let got: Vec<(i64, Fetched<Option<Row>>)> = if batched {
            reader.read_many(&ns, ids(), TTL).load_many(load).await?
        } else {
            let mut out = Vec::with_capacity(ids().len());
            for id in ids() {
                let one = reader
                    .read(&ns, id, TTL)
                    .load(|| async { Ok::<_, std::io::Error>(Some(src.row(id))) })
                    .await?;
                out.push((id, one));
            }
            out
        };
        row.samples
            .push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        for (id, f) in &got {
            row.values += 1;
            let seen = f.value.as_ref().map_or(0, |r| r.0);
            if before.get(id).is_some_and(|&v| seen < v) {
                row.stale += 1;
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    writing.await?;
    Ok((row, writes.load(Ordering::SeqCst)))
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 10_000.0 {
        format!("{:.1} µs", ns / 1_000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let redis = RedisServer::spawn();
    let keys = KeyBuilder::new("batchbench")?;
    let ns = keys.namespace("pet")?;
    let src = Source::default();
    let (l1, l2) = (
        client(&keys, true, None, WriteConsistency::Available)?,
        client(
            &keys,
            false,
            Some(&redis.url()),
            WriteConsistency::Available,
        )?,
    );
    batch(&l1, &ns, &src).await;
    batch(&l2, &ns, &src).await;
    let raw = redis.client().get_multiplexed_async_connection().await?;
    let raw_keys: Vec<String> = ids()
        .iter()
        .map(|&id| ns.id(id).as_str().to_owned())
        .collect();
    let fresh = |got: &Vec<(i64, Fetched<Row>)>| (0, got.len() as u64);
    let one = |_: &Fetched<Row>| (0, 1);
    let it = args.iters;
    let mut rows = Vec::new();

    let mut k = 0;
    rows.push(
        measure(
            "read_l1",
            "one `read`, an L1 hit",
            it * 10,
            || {
                k = k % N + 1;
                single(&l1, &ns, &src, k)
            },
            one,
        )
        .await,
    );
    rows.push(
        measure(
            "read_many_l1",
            "`read_many` of 100 L1 hits",
            it,
            || batch(&l1, &ns, &src),
            fresh,
        )
        .await,
    );
    // The floor of any L1 read of 100 values: 100 gets of a plain moka cache.
    let floor: moka::future::Cache<i64, Arc<Row>> = moka::future::Cache::new(1_000);
    for id in ids() {
        floor.insert(id, Arc::new(src.row(id))).await;
    }
    rows.push(
        measure(
            "raw_moka_100",
            "100 gets of a plain moka cache (values cloned)",
            it,
            || async {
                let mut out = Vec::with_capacity(100);
                for id in 1..=N {
                    out.push(Row::clone(&floor.get(&id).await.expect("present")));
                }
                out
            },
            |got: &Vec<Row>| (0, got.len() as u64),
        )
        .await,
    );
    let mut k = 0;
    rows.push(
        measure(
            "raw_get",
            "one raw `GET` of an entry",
            it,
            || {
                k = k % N + 1;
                let (mut con, key) = (raw.clone(), raw_keys[k as usize - 1].clone());
                async move {
                    redis::cmd("GET")
                        .arg(key)
                        .query_async::<Vec<u8>>(&mut con)
                        .await
                        .expect("GET")
                }
            },
            |_| (0, 1),
        )
        .await,
    );
    rows.push(
        measure(
            "raw_mget_decode",
            "one raw `MGET` of the 100 entries + decoding",
            it,
            || {
                let (mut con, keys) = (raw.clone(), raw_keys.clone());
                async move {
                    let got: Vec<Vec<u8>> = redis::cmd("MGET")
                        .arg(&keys)
                        .query_async(&mut con)
                        .await
                        .expect("MGET");
                    got.iter()
                        .map(|b| {
                            Bincode
                                .decode::<Row>(&b[ENVELOPE_HEADER..])
                                .expect("an entry decodes")
                        })
                        .collect::<Vec<Row>>()
                }
            },
            |got: &Vec<Row>| (0, got.len() as u64),
        )
        .await,
    );
    let mut k = 0;
    rows.push(
        measure(
            "read_l2",
            "one `read`, an L2 hit",
            it,
            || {
                k = k % N + 1;
                single(&l2, &ns, &src, k)
            },
            one,
        )
        .await,
    );
    rows.push(
        measure(
            "reads_l2_100",
            "100 single `read`s, L2 hits",
            it / 10,
            || async {
                let mut out = Vec::with_capacity(100);
                for id in ids() {
                    out.push(single(&l2, &ns, &src, id).await);
                }
                out
            },
            |got: &Vec<Fetched<Row>>| (0, got.len() as u64),
        )
        .await,
    );
    rows.push(
        measure(
            "read_many_l2",
            "`read_many` of 100 L2 hits",
            it,
            || batch(&l2, &ns, &src),
            fresh,
        )
        .await,
    );

    // Beside a writer on another instance: available (the backplane window) and strict,
    // batches and single reads.
    let mut writes = Vec::new();
    for (name, what, consistency, batched) in [
        (
            "read_many_writer",
            "`read_many` of 100 (L1+L2, available) beside a writer on another instance",
            WriteConsistency::Available,
            true,
        ),
        (
            "reads_writer",
            "100 single `read`s (L1+L2, available) beside a writer on another instance",
            WriteConsistency::Available,
            false,
        ),
        (
            "read_many_writer_strict",
            "`read_many` of 100 (L1+L2, strict) beside a writer on another instance",
            WriteConsistency::Strict,
            true,
        ),
        (
            "reads_writer_strict",
            "100 single `read`s (L1+L2, strict) beside a writer on another instance",
            WriteConsistency::Strict,
            false,
        ),
    ] {
        let (row, n) = beside_writer(
            &keys,
            &redis.url(),
            &src,
            name,
            what,
            consistency,
            batched,
            args.seconds,
        )
        .await?;
        rows.push(row);
        writes.push(format!("{name} {n}"));
    }

    let by = |name: &str| rows.iter().find(|r| r.name == name).map(Row_::mean);
    let ratio = |a: &str, b: &str| Some(by(a)? / by(b)?);
    let mut md = String::from(
        "# Batch reads\n\n`cargo run --release -p benches --bin batch` (private redis-server on loopback, 2 cores). \
         Per operation: mean and 99th percentile; every value is checked against the source (untimed).\n\n\
         | row | what | mean | p99 | values read | stale |\n|---|---|---:|---:|---:|---:|\n",
    );
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.name,
            r.what,
            fmt_ns(r.mean()),
            fmt_ns(r.pct(0.99) as f64),
            r.values,
            r.stale
        ));
    }
    let f = |x: Option<f64>| x.map_or_else(|| "-".into(), |x| format!("{x:.2}×"));
    md.push_str(&format!(
        "\n| ratio | value | target |\n|---|---:|---|\n\
         | read_many_l1 / read_l1 | {} | ≤ 10× |\n\
         | read_many_l1 / raw_moka_100 | {} | (the floor of 100 L1 values) |\n\
         | read_many_l2 / raw_mget_decode | {} | about one round trip plus decoding |\n\
         | reads_l2_100 / read_many_l2 | {} | (what a batch saves) |\n\
         | read_many_l2 / read_l2 | {} | |\n\
         \nAcknowledged writes beside each row: {}.\n",
        f(ratio("read_many_l1", "read_l1")),
        f(ratio("read_many_l1", "raw_moka_100")),
        f(ratio("read_many_l2", "raw_mget_decode")),
        f(ratio("reads_l2_100", "read_many_l2")),
        f(ratio("read_many_l2", "read_l2")),
        writes.join(", "),
    ));
    println!("{md}");
    std::fs::write(&args.out, &md).with_context(|| format!("writing {}", args.out.display()))?;
    Ok(())
}
