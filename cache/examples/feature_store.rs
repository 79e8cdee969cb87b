//! The seed's feature store: a batch job computes each user's features from their
//! events and stores them for an hour; the API reads 100 users' features in one call
//! (one pass over L1, one Redis round trip for what L1 lacks, and one computation for
//! users the job has not reached). L1 + L2 with `REDIS_URL` (L1 alone when unset): the
//! job and the API are then two instances, as two processes would be.
//!
//! `REDIS_URL=redis://127.0.0.1:6379 cargo run -p cache --release --example feature_store`

use std::time::Instant;

use cache::tier::{MokaTier, RedisTier};
use cache::{CacheClient, Fetched, KeyBuilder, Namespace, Strategy, Ttl};
use futures::future::try_join_all;
use serde::{Deserialize, Serialize};

type Error = Box<dyn std::error::Error + Send + Sync>;
const TTL: Ttl = Ttl::secs(3600);

/// What the model reads of a user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Features {
    pub purchases_7d: u32,
    pub spend_7d_cents: u64,
    pub days_since_seen: u16,
}

/// The offline computation from a user's events (made up here; a warehouse query in
/// life). `None`: a user with no events.
pub fn compute(user: i64) -> Option<Features> {
    let seed = u64::try_from(user)
        .ok()?
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (seed % 10 != 0).then_some(Features {
        purchases_7d: (seed % 13) as u32,
        spend_7d_cents: seed % 50_000,
        days_since_seen: (seed % 30) as u16,
    })
}

/// One instance's view of the store: the cache, and the namespace of users' features.
#[derive(Clone)]
pub struct Store {
    cache: CacheClient,
    users: Namespace,
}

impl Store {
    pub fn open(redis: Option<&str>) -> Result<Self, Error> {
        let keys = KeyBuilder::new("features")?;
        let users = keys.namespace("user")?;
        let mut b = CacheClient::builder(&keys)
            .strategy(Strategy::WriteThrough) // a write stores the value it wrote
            .negative_ttl(TTL) // and "no features" as well
            .entity(&users, &[])
            .l1(MokaTier::builder().max_bytes(64 << 20));
        if let Some(url) = redis {
            b = b.l2(RedisTier::builder(url));
        }
        Ok(Self {
            cache: b.build()?,
            users,
        })
    }

    /// The batch job: computes and stores the features of `users`, 64 at a time.
    pub async fn run_job(&self, users: impl Iterator<Item = i64>) -> Result<usize, Error> {
        let users: Vec<i64> = users.collect();
        for chunk in users.chunks(64) {
            try_join_all(chunk.iter().map(|&user| async move {
                let write = self.cache.begin_write(&self.users, Some(user)).await?;
                let features = compute(user);
                self.cache
                    .finish_write(write, user, features.as_ref(), TTL)
                    .await;
                Ok::<_, Error>(())
            }))
            .await?;
        }
        Ok(users.len())
    }

    /// The API's read: the features of `users` in one call (`None`: no events).
    pub async fn features(
        &self,
        users: &[i64],
    ) -> Result<Vec<(i64, Fetched<Option<Features>>)>, Error> {
        let read = self
            .cache
            .read_many(&self.users, users.iter().copied(), TTL);
        let computed = |missing: Vec<i64>| async move {
            Ok::<_, Error>(missing.into_iter().map(|u| (u, compute(u))))
        };
        Ok(read.load_many(computed).await?)
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let redis = std::env::var("REDIS_URL").ok();
    let job = Store::open(redis.as_deref())?;
    let api = match &redis {
        Some(url) => Store::open(Some(url))?,
        None => job.clone(),
    };
    let started = Instant::now();
    let done = job.run_job(1..=10_000).await?;
    println!(
        "job: features of {done} users stored in {:?}",
        started.elapsed()
    );
    for round in 0..4 {
        // 100 users; the last round's second half are beyond the job's.
        let first = 1 + round * 3_317;
        let users: Vec<i64> = (first..first + 100).collect();
        let started = Instant::now();
        let got = api.features(&users).await?;
        let hits = got.iter().filter(|(_, f)| f.source.is_hit()).count();
        println!(
            "read of {} users: {:?}, {hits} from the cache",
            got.len(),
            started.elapsed()
        );
    }
    Ok(())
}
