//! Micro-benchmarks of the typed cache against raw moka and raw Redis baselines.
//!
//! Every benchmark runs on three payloads (one pet, pages of 10 and 100) in one run, so
//! each ratio compares numbers measured minutes apart on the same machine. Redis is a
//! private `redis-server` spawned for the run. At the end the estimates are turned into
//! `benches/results/micro.md` (see `benches::micro_report`).
//!
//! `cargo bench -p benches --bench micro [-- --measurement-time 2 --warm-up-time 1]`
//! (`MICRO_MEASURE_SECS` sets the default measurement time, 2 s: the whole run takes
//! about five minutes on 2 cores).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use benches::pet::{Pet, sample_page, sample_pet};
use cache::codec::{Bincode, Codec, Json};
use cache::testing::RedisServer;
use cache::tier::{Cache, ENVELOPE_HEADER, MokaTier, RedisTier, TieredCache};
use cache::typed::TypedCache;
use cache::{Key, KeyBuilder, Ttl};
use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use redis::aio::ConnectionManager;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::runtime::Runtime;

const TTL: Ttl = Ttl::secs(600);
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// Everything the benchmarks share: the runtime, one Redis server, and the caches.
struct Fixture {
    rt: Runtime,
    _redis: RedisServer,
    con: ConnectionManager,
    keys: cache::Namespace,
    l1: MokaTier,
    typed_l1: TypedCache,
    typed_l2: TypedCache,
    tiered_l1: MokaTier,
    typed_tiered: TypedCache,
    fresh: AtomicI64,
}

impl Fixture {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let redis = RedisServer::spawn();
        let builder = KeyBuilder::new("bench").expect("prefix");
        let keys = builder.namespace("pet").expect("namespace");
        let (con, l1, typed_l1, typed_l2, tiered_l1, typed_tiered) = rt.block_on(async {
            let con = redis
                .client()
                .get_connection_manager()
                .await
                .expect("redis connection");
            let l2 = || {
                RedisTier::builder(redis.url())
                    .prefix("bench")
                    .op_timeout(REDIS_TIMEOUT)
                    .build()
                    .expect("redis tier")
            };
            let l1 = MokaTier::builder()
                .max_bytes(256 << 20)
                .build()
                .expect("l1");
            let tiered_l1 = MokaTier::builder()
                .max_bytes(256 << 20)
                .build()
                .expect("l1");
            let tiered = TieredCache::builder(tiered_l1.clone(), l2()).build();
            (
                con,
                l1.clone(),
                TypedCache::builder(l1).build(),
                TypedCache::builder(l2()).build(),
                tiered_l1,
                TypedCache::builder(tiered).build(),
            )
        });
        Self {
            rt,
            _redis: redis,
            con,
            keys,
            l1,
            typed_l1,
            typed_l2,
            tiered_l1,
            typed_tiered,
            fresh: AtomicI64::new(1_000_000),
        }
    }

    fn key(&self, group: &str, n: i64) -> Key {
        let id = match group {
            "pet" => n,
            "page10" => 10_000 + n,
            _ => 20_000 + n,
        };
        self.keys.id(id)
    }
}

/// Times `op` once per iteration after an untimed `setup`.
async fn timed<S, SF, O, OF>(iters: u64, mut setup: S, mut op: O) -> Duration
where
    S: FnMut() -> SF,
    SF: Future<Output = ()>,
    O: FnMut() -> OF,
    OF: Future,
{
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        setup().await;
        let t = Instant::now();
        black_box(op().await);
        total += t.elapsed();
    }
    total
}

fn bench_payload<T>(c: &mut Criterion, f: &Fixture, group: &str, value: &T)
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    let mut g = c.benchmark_group(group);
    reads(&mut g, f, group, value);
    writes(&mut g, f, group, value);
    codecs(&mut g, value);
    g.finish();
}

fn reads<T>(g: &mut BenchmarkGroup<'_, WallTime>, f: &Fixture, group: &str, value: &T)
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    let key = f.key(group, 1);
    let raw_key = format!("raw:{group}");
    let raw_moka: moka::future::Cache<String, T> = moka::future::Cache::new(10_000);
    f.rt.block_on(async {
        raw_moka.insert(raw_key.clone(), value.clone()).await;
        f.typed_l1.set(&key, value, TTL).await.expect("set");
        f.typed_l2.set(&key, value, TTL).await.expect("set");
        f.typed_tiered.set(&key, value, TTL).await.expect("set");
        // The raw baseline reads the very bytes the L2 tier stored (envelope and all).
        let mut con = f.con.clone();
        let stored: Vec<u8> = redis::cmd("GET")
            .arg(key.as_str())
            .query_async(&mut con)
            .await
            .expect("raw get of the L2 entry");
        assert!(
            stored.len() > ENVELOPE_HEADER,
            "the L2 entry is where expected"
        );
        redis::cmd("SET")
            .arg(&raw_key)
            .arg(&stored)
            .query_async::<()>(&mut con)
            .await
            .expect("raw set");
    });

    g.bench_function("raw_moka_get", |b| {
        b.to_async(&f.rt)
            .iter(|| async { raw_moka.get(&raw_key).await.expect("present") });
    });
    g.bench_function("typed_l1_hit", |b| {
        b.to_async(&f.rt)
            .iter(|| async { f.typed_l1.get::<T>(&key).await.expect("hit") });
    });
    g.bench_function("tiered_l1_hit", |b| {
        b.to_async(&f.rt)
            .iter(|| async { f.typed_tiered.get::<T>(&key).await.expect("hit") });
    });
    g.bench_function("raw_redis_get", |b| {
        b.to_async(&f.rt).iter(|| async {
            let mut con = f.con.clone();
            redis::cmd("GET")
                .arg(&raw_key)
                .query_async::<Vec<u8>>(&mut con)
                .await
                .expect("raw get")
        });
    });
    g.bench_function("raw_redis_get_decode", |b| {
        b.to_async(&f.rt).iter(|| async {
            let mut con = f.con.clone();
            let raw: Vec<u8> = redis::cmd("GET")
                .arg(&raw_key)
                .query_async(&mut con)
                .await
                .expect("raw get");
            Bincode
                .decode::<T>(&raw[ENVELOPE_HEADER..])
                .expect("decode")
        });
    });
    g.bench_function("typed_l2_hit", |b| {
        b.to_async(&f.rt)
            .iter(|| async { f.typed_l2.get::<T>(&key).await.expect("hit") });
    });
    // L1 must miss every time: drop the entry from the tiered cache's own L1 (untimed).
    g.bench_function("tiered_l2_promote", |b| {
        b.to_async(&f.rt).iter_custom(|iters| {
            timed(
                iters,
                || async {
                    f.tiered_l1.delete(&key).await.expect("l1 delete");
                },
                || async { f.typed_tiered.get::<T>(&key).await.expect("hit") },
            )
        });
    });
}

fn writes<T>(g: &mut BenchmarkGroup<'_, WallTime>, f: &Fixture, group: &str, value: &T)
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    let key = f.key(group, 2);
    let raw_key = format!("raw:{group}:w");
    let raw_moka: moka::future::Cache<String, T> = moka::future::Cache::new(10_000);
    let loaded = Arc::new(value.clone());
    let load = || {
        let v = loaded.clone();
        async move { Ok::<T, std::io::Error>(T::clone(&v)) }
    };

    g.bench_function("raw_moka_insert", |b| {
        b.to_async(&f.rt)
            .iter(|| async { raw_moka.insert(raw_key.clone(), value.clone()).await });
    });
    g.bench_function("set_l1", |b| {
        b.to_async(&f.rt)
            .iter(|| async { f.typed_l1.set(&key, value, TTL).await.expect("set") });
    });
    // A fresh key per iteration: the miss is real, the L1 budget evicts old entries.
    g.bench_function("miss_load_fill_l1", |b| {
        b.to_async(&f.rt).iter(|| async {
            let k = f.keys.id(f.fresh.fetch_add(1, Relaxed));
            f.typed_l1.get_or_load(&k, TTL, load).await.expect("load")
        });
    });
    g.bench_function("raw_redis_set_encode", |b| {
        b.to_async(&f.rt).iter(|| async {
            let mut con = f.con.clone();
            let bytes = Bincode.encode(value).expect("encode");
            redis::cmd("SET")
                .arg(&raw_key)
                .arg(bytes)
                .arg("PX")
                .arg(TTL.as_millis())
                .query_async::<()>(&mut con)
                .await
                .expect("raw set");
        });
    });
    g.bench_function("set_l2", |b| {
        b.to_async(&f.rt)
            .iter(|| async { f.typed_l2.set(&key, value, TTL).await.expect("set") });
    });
    g.bench_function("set_l1l2", |b| {
        b.to_async(&f.rt)
            .iter(|| async { f.typed_tiered.set(&key, value, TTL).await.expect("set") });
    });
    // One key, removed from both tiers before each (timed) miss + load + fill.
    g.bench_function("miss_load_fill_l1l2", |b| {
        b.to_async(&f.rt).iter_custom(|iters| {
            timed(
                iters,
                || async { f.typed_tiered.delete(&key).await },
                || async {
                    f.typed_tiered
                        .get_or_load(&key, TTL, load)
                        .await
                        .expect("load")
                },
            )
        });
    });
    g.bench_function("raw_redis_del", |b| {
        b.to_async(&f.rt).iter_custom(|iters| {
            timed(
                iters,
                || async {
                    let mut con = f.con.clone();
                    redis::cmd("SET")
                        .arg(&raw_key)
                        .arg(b"x")
                        .query_async::<()>(&mut con)
                        .await
                        .expect("raw set");
                },
                || async {
                    let mut con = f.con.clone();
                    redis::cmd("UNLINK")
                        .arg(&raw_key)
                        .query_async::<()>(&mut con)
                        .await
                        .expect("raw del");
                },
            )
        });
    });
    g.bench_function("delete_l1l2", |b| {
        b.to_async(&f.rt).iter_custom(|iters| {
            timed(
                iters,
                || async { f.typed_tiered.set(&key, value, TTL).await.expect("set") },
                || async { f.typed_tiered.delete(&key).await },
            )
        });
    });
    f.rt.block_on(f.l1.run_pending_tasks());
}

fn codecs<T>(g: &mut BenchmarkGroup<'_, WallTime>, value: &T)
where
    T: Serialize + DeserializeOwned,
{
    let bin = Bincode.encode(value).expect("encode");
    let json = Json.encode(value).expect("encode");
    g.bench_function("bincode_encode", |b| {
        b.iter(|| Bincode.encode(black_box(value)))
    });
    g.bench_function("json_encode", |b| b.iter(|| Json.encode(black_box(value))));
    g.bench_function("bincode_decode", |b| {
        b.iter(|| Bincode.decode::<T>(black_box(&bin)).expect("decode"));
    });
    g.bench_function("json_decode", |b| {
        b.iter(|| Json.decode::<T>(black_box(&json)).expect("decode"));
    });
}

fn main() {
    let secs = std::env::var("MICRO_MEASURE_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs_f64(secs))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    // A fresh fixture (tiers and redis-server) per payload: the write benchmarks of one
    // payload fill L1 with many keys, which must not weigh on the next one's reads.
    bench_payload::<Pet>(&mut c, &Fixture::new(), "pet", &sample_pet(1));
    bench_payload::<Vec<Pet>>(&mut c, &Fixture::new(), "page10", &sample_page(10));
    bench_payload::<Vec<Pet>>(&mut c, &Fixture::new(), "page100", &sample_page(100));
    c.final_summary();

    let dir = benches::micro_report::criterion_dir();
    let out = benches::micro_report::default_out();
    match benches::micro_report::write(&dir, &out) {
        Ok(md) => println!("{md}\nwritten to {}", out.display()),
        Err(e) => eprintln!("micro report not written: {e:#}"),
    }
}
