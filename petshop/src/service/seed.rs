//! `petshop seed --pets N`: deterministic test data, fast.
//!
//! A seeded RNG makes the same `N` give the same pets. Rows go in as multi-row
//! `INSERT`s of [`BATCH_ROWS`] inside one transaction per [`TXN_ROWS`], which keeps a
//! million rows well under a minute on SQLite.

use chrono::{SubsecRound, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::{DatabaseConnection, DbErr, EntityTrait, Set, TransactionTrait};

use crate::entity::pet;

/// Rows per `INSERT` (7 values each: well under SQLite's and PostgreSQL's parameter limits).
pub const BATCH_ROWS: usize = 1_000;
/// Rows per transaction.
pub const TXN_ROWS: usize = 100_000;
/// The RNG seed used when none is given.
pub const DEFAULT_SEED: u64 = 42;

const SPECIES: &[&str] = &[
    "cat", "dog", "rabbit", "hamster", "parrot", "turtle", "goldfish", "ferret",
];
const NAMES: &[&str] = &[
    "Bella", "Max", "Luna", "Charlie", "Lucy", "Cooper", "Daisy", "Milo", "Coco", "Rocky", "Nala",
    "Oscar", "Ruby", "Teddy", "Willow", "Ziggy",
];

/// Inserts `n` generated pets; returns how many were inserted.
pub async fn seed(db: &DatabaseConnection, n: u64, seed: u64) -> Result<u64, DbErr> {
    let mut rng = StdRng::seed_from_u64(seed);
    let now = Utc::now().trunc_subsecs(3);
    let mut left = usize::try_from(n).unwrap_or(usize::MAX);
    let mut inserted = 0u64;
    while left > 0 {
        let in_txn = left.min(TXN_ROWS);
        let txn = db.begin().await?;
        let mut done = 0;
        while done < in_txn {
            let rows = (in_txn - done).min(BATCH_ROWS);
            let batch: Vec<pet::ActiveModel> = (0..rows)
                .map(|_| pet::ActiveModel {
                    name: Set(format!(
                        "{}-{}",
                        NAMES[rng.random_range(0..NAMES.len())],
                        rng.random_range(1..10_000)
                    )),
                    species: Set(SPECIES[rng.random_range(0..SPECIES.len())].to_owned()),
                    age: Set(rng.random_range(0..=20)),
                    happiness: Set(rng.random_range(0..=100)),
                    created_at: Set(now),
                    updated_at: Set(now),
                    ..Default::default()
                })
                .collect();
            pet::Entity::insert_many(batch)
                .exec_without_returning(&txn)
                .await?;
            done += rows;
        }
        txn.commit().await?;
        left -= in_txn;
        inserted += in_txn as u64;
    }
    Ok(inserted)
}
