//! The payloads of the micro-benchmarks: one pet, and pages of 10 and 100.

use serde::{Deserialize, Serialize};

/// A pet as the service caches it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pet {
    /// Primary key.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// `cat`, `dog`, ...
    pub species: String,
    /// Age in years.
    pub age: u8,
    /// 0–100.
    pub happiness: u8,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

const NAMES: [&str; 8] = [
    "Rex", "Tom", "Luna", "Milo", "Bella", "Oscar", "Nala", "Simba",
];
const SPECIES: [&str; 4] = ["cat", "dog", "bird", "rabbit"];

/// A realistic pet with id `id`.
#[must_use]
pub fn sample_pet(id: i64) -> Pet {
    let i = usize::try_from(id.unsigned_abs()).unwrap_or(0);
    Pet {
        id,
        name: format!("{} the {}", NAMES[i % NAMES.len()], i),
        species: SPECIES[i % SPECIES.len()].to_owned(),
        age: u8::try_from(i % 20).unwrap_or(0),
        happiness: u8::try_from(i % 101).unwrap_or(0),
        created_at: "2025-01-01T12:00:00.123456Z".to_owned(),
        updated_at: "2025-06-30T08:15:42.654321Z".to_owned(),
    }
}

/// `n` consecutive pets, as one page of a list query.
#[must_use]
pub fn sample_page(n: usize) -> Vec<Pet> {
    (1..=i64::try_from(n).unwrap_or(i64::MAX))
        .map(sample_pet)
        .collect()
}
