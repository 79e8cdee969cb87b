//! The closed-loop load generator: a fixed number of workers, each with its own
//! keep-alive connection, sending one request at a time until the run's duration or
//! request budget is spent. What a request is and what its answer tells the run is
//! [`crate::exchange`]'s; what a run measured, [`crate::outcome`]'s.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::exchange::{Conns, http_call};
pub use crate::exchange::{HttpTarget, MixState};
use crate::outcome::record;
pub use crate::outcome::{LoadResult, LoadSpec, XCacheCounts};

/// What a run is aimed at.
#[derive(Clone, Debug)]
pub enum Target {
    /// A workload over HTTP.
    Http(HttpTarget),
    /// Redis `PING`, one multiplexed connection per worker: the shared-tier ceiling.
    RedisPing {
        /// The server.
        url: String,
    },
}

/// Runs `target` under `spec`. `progress`, when given, counts requests as they finish.
pub async fn run(spec: LoadSpec, target: &Target, progress: Option<Arc<AtomicU64>>) -> LoadResult {
    let issued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + spec.duration;
    let mut workers = Vec::with_capacity(spec.concurrency);
    for i in 0..spec.concurrency.max(1) {
        let ctx = WorkerCtx {
            target: target.clone(),
            issued: issued.clone(),
            progress: progress.clone(),
            max_requests: spec.max_requests,
            deadline,
            seed: 0x5eed_0000 + i as u64,
        };
        workers.push(tokio::spawn(ctx.run()));
    }
    let mut total = LoadResult::empty();
    for w in workers {
        match w.await {
            Ok(r) => total.merge(&r),
            Err(e) => total.error(format!("worker panicked: {e}")),
        }
    }
    total.elapsed = start.elapsed();
    total
}

struct WorkerCtx {
    target: Target,
    issued: Arc<AtomicU64>,
    progress: Option<Arc<AtomicU64>>,
    max_requests: u64,
    deadline: Instant,
    seed: u64,
}

impl WorkerCtx {
    fn next(&self) -> bool {
        Instant::now() < self.deadline && self.issued.fetch_add(1, Relaxed) < self.max_requests
    }

    fn tick(&self) {
        if let Some(p) = &self.progress {
            p.fetch_add(1, Relaxed);
        }
    }

    async fn run(self) -> LoadResult {
        let mut out = LoadResult::empty();
        match &self.target {
            Target::Http(t) => {
                let mut rng = SmallRng::seed_from_u64(self.seed);
                let mut conns = Conns::new(t);
                while self.next() {
                    let call = t.population.call(t.workload, &mut rng);
                    http_call(&mut conns, call, t, &mut rng, &mut out).await;
                    self.tick();
                }
            }
            Target::RedisPing { url } => {
                let con = match redis::Client::open(url.as_str()) {
                    Ok(c) => c.get_multiplexed_async_connection().await,
                    Err(e) => Err(e),
                };
                let mut con = match con {
                    Ok(c) => c,
                    Err(e) => {
                        out.error(format!("redis connect: {e}"));
                        return out;
                    }
                };
                while self.next() {
                    let t = Instant::now();
                    out.requests += 1;
                    match redis::cmd("PING").query_async::<String>(&mut con).await {
                        Ok(_) => record(&mut out, t),
                        Err(e) => out.error(format!("PING: {e}")),
                    }
                    self.tick();
                }
            }
        }
        out
    }
}
