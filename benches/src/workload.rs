//! What the load generator asks the service: the workloads and the requests they draw.

use std::fmt;

use rand::Rng;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, Zipf};
use serde::Serialize;

/// Distinct list queries of the `zipf` workload.
pub const DISTINCT_QUERIES: usize = 10_000;
/// Zipf exponent of query and id popularity.
pub const ZIPF_EXPONENT: f64 = 1.0;
/// The list query of the `hot` workload.
pub const HOT_QUERY: &str = "/pets?species=cat&limit=10";
/// What the bare-endpoint ceiling requests: the benchmarks' own route (see
/// [`crate::service`]), the bytes of the hot page, pre-encoded, through the service's
/// middleware.
pub const BARE_ENDPOINT: &str = "GET /bench/bare?species=cat&limit=10";

/// The path and query of [`BARE_ENDPOINT`].
#[must_use]
pub fn bare_path() -> String {
    format!(
        "{}{}",
        crate::service::BARE_PATH,
        HOT_QUERY.trim_start_matches("/pets")
    )
}

/// Species of petshop's seed, and no species filter.
const SPECIES: [Option<&str>; 8] = [
    None,
    Some("cat"),
    Some("dog"),
    Some("rabbit"),
    Some("hamster"),
    Some("parrot"),
    Some("turtle"),
    Some("goldfish"),
];
const MIN_AGES: [Option<u8>; 5] = [None, Some(0), Some(1), Some(2), Some(3)];
const MAX_AGES: [Option<u8>; 5] = [None, Some(5), Some(8), Some(12), Some(15)];
const OFFSETS: usize = 50; // 0, 10, ..., 490: 8 x 5 x 5 x 50 = 10,000 queries

/// One workload of a comparison row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Workload {
    /// One list query, over and over.
    Hot,
    /// 10,000 distinct list queries, Zipf-distributed.
    Zipf,
    /// `GET /stats`.
    Stats,
    /// Reads (zipf lists and `GET /pets/{id}`) with `100 - read_percent` % writes.
    Mix {
        /// Share of reads, in percent.
        read_percent: u8,
    },
    /// The bare-endpoint ceiling: `GET /bench/bare` with the hot query (the same bytes
    /// as a cached hot page, with no cache and no database work).
    Bare,
}

impl Workload {
    /// The workloads of every configuration, in run order.
    pub const ALL: [Self; 5] = [
        Self::Hot,
        Self::Zipf,
        Self::Stats,
        Self::Mix { read_percent: 95 },
        Self::Mix { read_percent: 80 },
    ];

    /// True when the workload writes.
    #[must_use]
    pub fn writes(self) -> bool {
        matches!(self, Self::Mix { read_percent } if read_percent < 100)
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hot => f.write_str("hot"),
            Self::Zipf => f.write_str("zipf"),
            Self::Stats => f.write_str("stats"),
            Self::Mix { read_percent } => write!(f, "mix-{read_percent}/{}", 100 - read_percent),
            Self::Bare => f.write_str("bare"),
        }
    }
}

/// One request to send, and what to do with its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// A list query (`hot`, `zipf`, the list reads of a mix).
    List(String),
    /// `GET /pets/{id}`: checked for staleness.
    GetPet(i64),
    /// `GET /stats`.
    Stats,
    /// `GET /bench/bare` with the hot query.
    Bare,
    /// `PATCH /pets/{id}` setting `happiness`.
    Patch {
        /// The pet.
        id: i64,
        /// The new happiness.
        happiness: u8,
    },
    /// `POST /pets`.
    Create,
    /// `DELETE` of a pet this run created (a `POST` while there is none).
    DeleteCreated,
    /// `DELETE /pets/{id}`: what [`Call::DeleteCreated`] becomes once a pet is picked.
    Delete(i64),
}

/// The population requests are drawn from: the list queries and the seeded pet ids.
#[derive(Debug)]
pub struct Population {
    queries: Vec<String>,
    query_zipf: Zipf<f64>,
    /// Seeded ids, shuffled so that popularity does not follow id order.
    ids: Vec<i64>,
    id_zipf: Zipf<f64>,
}

impl Population {
    /// The 10,000 list queries and pets `1..=pets`, in an order fixed by `seed`.
    ///
    /// # Panics
    /// When `pets` is 0.
    #[must_use]
    pub fn new(pets: u64, seed: u64) -> Self {
        assert!(pets > 0, "a population needs pets");
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut queries = all_queries();
        queries.shuffle(&mut rng);
        let mut ids: Vec<i64> = (1..=i64::try_from(pets).unwrap_or(i64::MAX)).collect();
        ids.shuffle(&mut rng);
        Self {
            query_zipf: zipf(queries.len()),
            id_zipf: zipf(ids.len()),
            queries,
            ids,
        }
    }

    /// The distinct list queries.
    #[must_use]
    pub fn queries(&self) -> &[String] {
        &self.queries
    }

    /// A list query, Zipf-distributed.
    pub fn list(&self, rng: &mut impl Rng) -> &str {
        &self.queries[rank(&self.query_zipf, rng, self.queries.len())]
    }

    /// A seeded pet id, Zipf-distributed.
    pub fn id(&self, rng: &mut impl Rng) -> i64 {
        self.ids[rank(&self.id_zipf, rng, self.ids.len())]
    }

    /// The next call of `workload`.
    pub fn call(&self, workload: Workload, rng: &mut impl Rng) -> Call {
        match workload {
            Workload::Hot => Call::List(HOT_QUERY.to_owned()),
            Workload::Zipf => Call::List(self.list(rng).to_owned()),
            Workload::Stats => Call::Stats,
            Workload::Bare => Call::Bare,
            Workload::Mix { read_percent } => {
                if rng.random_range(0..100) < read_percent {
                    if rng.random_bool(0.5) {
                        Call::List(self.list(rng).to_owned())
                    } else {
                        Call::GetPet(self.id(rng))
                    }
                } else {
                    match rng.random_range(0..10) {
                        0..6 => Call::Patch {
                            id: self.id(rng),
                            happiness: rng.random_range(0..=100),
                        },
                        6..8 => Call::Create,
                        _ => Call::DeleteCreated,
                    }
                }
            }
        }
    }
}

fn zipf(n: usize) -> Zipf<f64> {
    #[allow(clippy::cast_precision_loss)]
    Zipf::new(n as f64, ZIPF_EXPONENT).expect("n >= 1 and a positive exponent")
}

fn rank(z: &Zipf<f64>, rng: &mut impl Rng, n: usize) -> usize {
    // Zipf samples 1..=n as floats.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let r = z.sample(rng) as usize;
    r.clamp(1, n) - 1
}

fn all_queries() -> Vec<String> {
    let mut out = Vec::with_capacity(DISTINCT_QUERIES);
    for species in SPECIES {
        for min_age in MIN_AGES {
            for max_age in MAX_AGES {
                for page in 0..OFFSETS {
                    let mut q = String::from("/pets?limit=10");
                    if let Some(s) = species {
                        q.push_str("&species=");
                        q.push_str(s);
                    }
                    if let Some(a) = min_age {
                        q.push_str(&format!("&min_age={a}"));
                    }
                    if let Some(a) = max_age {
                        q.push_str(&format!("&max_age={a}"));
                    }
                    q.push_str(&format!("&offset={}", page * 10));
                    out.push(q);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    #[test]
    fn the_bare_endpoint_asks_for_the_hot_page() {
        assert_eq!(format!("GET {}", bare_path()), BARE_ENDPOINT);
    }

    #[test]
    fn there_are_ten_thousand_distinct_list_queries() {
        let p = Population::new(100, 1);
        let distinct: HashSet<_> = p.queries().iter().collect();
        assert_eq!(distinct.len(), DISTINCT_QUERIES);
    }

    #[test]
    fn zipf_draws_favour_a_few_queries_but_reach_many() {
        let p = Population::new(100, 1);
        let mut rng = SmallRng::seed_from_u64(7);
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for _ in 0..20_000 {
            *counts.entry(p.list(&mut rng)).or_default() += 1;
        }
        let top = counts.values().max().copied().unwrap_or(0);
        assert!(top > 1_000, "most popular query drawn {top} times");
        assert!(
            counts.len() > 1_000,
            "{} distinct queries drawn",
            counts.len()
        );
    }

    #[test]
    fn ids_stay_within_the_seeded_range() {
        let p = Population::new(50, 3);
        let mut rng = SmallRng::seed_from_u64(7);
        assert!((0..5_000).all(|_| (1..=50).contains(&p.id(&mut rng))));
    }

    #[test]
    fn a_mix_draws_its_share_of_writes() {
        let p = Population::new(50, 3);
        let mut rng = SmallRng::seed_from_u64(7);
        let mix = Workload::Mix { read_percent: 80 };
        let writes = (0..10_000)
            .filter(|_| {
                matches!(
                    p.call(mix, &mut rng),
                    Call::Patch { .. } | Call::Create | Call::DeleteCreated
                )
            })
            .count();
        assert!((1_700..2_300).contains(&writes), "{writes} writes");
        assert_eq!(mix.to_string(), "mix-80/20");
    }
}
