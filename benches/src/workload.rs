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
/// The species of the seed tutorial's 95/5 mix: its lists, and the pets it creates.
pub const SEED_MIX_SPECIES: [&str; 5] = ["cat", "dog", "rabbit", "hamster", "parrot"];
/// Species the mixes create pets of and move pets to.
const WRITE_SPECIES: [&str; 7] = [
    "cat", "dog", "rabbit", "hamster", "parrot", "turtle", "goldfish",
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
    /// Reads (zipf lists and `GET /pets/{id}`) with `100 - read_percent` % writes of
    /// every kind the pet shop's tags tell apart (see [`Population::call`]).
    Mix {
        /// Share of reads, in percent.
        read_percent: u8,
    },
    /// The seed tutorial's mix: `read_percent` % `GET /pets?species=<one of 5>` (95 in
    /// the tutorial), the rest `POST /pets`.
    SeedMix {
        /// Share of reads, in percent.
        read_percent: u8,
    },
    /// `GET /health`: the service's trivial request, the ceiling hits are compared with.
    Health,
    /// The bare-endpoint ceiling: `GET /bench/bare` with the hot query (the same bytes
    /// as a cached hot page, with no cache and no database work).
    Bare,
    /// `GET /pets/{id}` over every seeded id in turn (the L1 memory scenario).
    Sweep,
    /// Every distinct list query, then every seeded pet, once each, in turn: what a
    /// service that has run for a while has seen (the warm-up of a service's first
    /// Zipf or mix row, not a measured row).
    Prime,
}

impl Workload {
    /// The seed tutorial's 95/5 mix.
    pub const SEED_MIX: Self = Self::SeedMix { read_percent: 95 };

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
        matches!(self, Self::Mix { read_percent } | Self::SeedMix { read_percent } if read_percent < 100)
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hot => f.write_str("hot"),
            Self::Zipf => f.write_str("zipf"),
            Self::Stats => f.write_str("stats"),
            Self::Mix { read_percent } => write!(f, "mix-{read_percent}/{}", 100 - read_percent),
            Self::SeedMix { read_percent } => {
                write!(f, "seed-{read_percent}/{}", 100 - read_percent)
            }
            Self::Health => f.write_str("health"),
            Self::Bare => f.write_str("bare"),
            Self::Sweep => f.write_str("sweep"),
            Self::Prime => f.write_str("prime"),
        }
    }
}

/// Which pet a `PATCH` changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PetRef {
    /// This seeded pet.
    Id(i64),
    /// One a list page recently showed (users edit what they see), else this one.
    Shown(i64),
}

/// What a `PATCH` changes: fields no list filters on, or fields they do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// `happiness` (no filter: only the pages showing the pet, and the stats).
    Happiness(u8),
    /// `name` (no filter: only the pages showing the pet).
    Name,
    /// `species` (the lists of the old and new species, the unfiltered lists, the stats).
    Species(&'static str),
    /// `age` (like a species change: lists filter on age).
    Age(u8),
}

/// One request to send, and what to do with its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// A list query (`hot`, `zipf`, the list reads of a mix).
    List(String),
    /// `GET /pets/{id}`: checked for staleness.
    GetPet(i64),
    /// `GET /pets/{id}` of the next id of a sweep (the generator keeps the counter).
    NextPet,
    /// The next request of a [`Workload::Prime`] run (the generator keeps the counter).
    NextPrime,
    /// `GET /stats`.
    Stats,
    /// `GET /health`.
    Health,
    /// `GET /bench/bare` with the hot query.
    Bare,
    /// `PATCH /pets/{id}`.
    Patch {
        /// The pet.
        pet: PetRef,
        /// The change.
        change: Change,
    },
    /// `POST /pets` of a pet of this species.
    Create(&'static str),
    /// `DELETE` of a pet this run created (a `POST` while there is none).
    DeleteCreated,
    /// `DELETE /pets/{id}`: what [`Call::DeleteCreated`] becomes once a pet is picked.
    Delete(i64),
}

impl Call {
    /// True for writes that change which pets a list holds: creates, deletes, and
    /// changes of a filtered field (species, age).
    #[must_use]
    pub fn changes_lists(&self) -> bool {
        matches!(
            self,
            Self::Create(_)
                | Self::DeleteCreated
                | Self::Delete(_)
                | Self::Patch {
                    change: Change::Species(_) | Change::Age(_),
                    ..
                }
        )
    }

    /// True for requests that change data.
    #[must_use]
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Self::Patch { .. } | Self::Create(_) | Self::DeleteCreated | Self::Delete(_)
        )
    }
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

    /// Seeded pets.
    #[must_use]
    pub fn pets(&self) -> usize {
        self.ids.len()
    }

    /// Requests of a [`Workload::Prime`] run: every list query and every pet once.
    #[must_use]
    pub fn prime_requests(&self) -> u64 {
        (self.queries.len() + self.ids.len()) as u64
    }

    /// The `n`-th request of a [`Workload::Prime`] run (from 0; wraps around).
    #[must_use]
    pub fn prime(&self, n: u64) -> Call {
        let n = usize::try_from(n % self.prime_requests().max(1)).unwrap_or(0);
        match self.queries.get(n) {
            Some(q) => Call::List(q.clone()),
            None => Call::GetPet(i64::try_from(n - self.queries.len() + 1).unwrap_or(1)),
        }
    }

    /// The next call of `workload`.
    ///
    /// A mix's writes: 60 % `PATCH` (half of a Zipf-popular pet, half of one a list page
    /// recently showed; of them half change `happiness`, a sixth `name`, a sixth
    /// `species`, a sixth `age`), 20 % `POST`, 20 % `DELETE` of a pet the run created.
    pub fn call(&self, workload: Workload, rng: &mut impl Rng) -> Call {
        match workload {
            Workload::Hot => Call::List(HOT_QUERY.to_owned()),
            Workload::Zipf => Call::List(self.list(rng).to_owned()),
            Workload::Stats => Call::Stats,
            Workload::Health => Call::Health,
            Workload::Bare => Call::Bare,
            Workload::Sweep => Call::NextPet,
            Workload::Prime => Call::NextPrime,
            Workload::SeedMix { read_percent } => {
                let species = SEED_MIX_SPECIES[rng.random_range(0..SEED_MIX_SPECIES.len())];
                if rng.random_range(0..100) < read_percent {
                    Call::List(format!("/pets?species={species}"))
                } else {
                    Call::Create(species)
                }
            }
            Workload::Mix { read_percent } => {
                if rng.random_range(0..100) < read_percent {
                    if rng.random_bool(0.5) {
                        Call::List(self.list(rng).to_owned())
                    } else {
                        Call::GetPet(self.id(rng))
                    }
                } else {
                    let species = WRITE_SPECIES[rng.random_range(0..WRITE_SPECIES.len())];
                    match rng.random_range(0..10) {
                        0..6 => {
                            let id = self.id(rng);
                            let pet = if rng.random_bool(0.5) {
                                PetRef::Shown(id)
                            } else {
                                PetRef::Id(id)
                            };
                            let change = match rng.random_range(0..6) {
                                0..3 => Change::Happiness(rng.random_range(0..=100)),
                                3 => Change::Name,
                                4 => Change::Species(species),
                                _ => Change::Age(rng.random_range(0..15)),
                            };
                            Call::Patch { pet, change }
                        }
                        6..8 => Call::Create(species),
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
            .filter(|_| p.call(mix, &mut rng).is_write())
            .count();
        assert!((1_700..2_300).contains(&writes), "{writes} writes");
        assert_eq!(mix.to_string(), "mix-80/20");
    }

    #[test]
    fn a_mix_writes_every_kind_the_tags_tell_apart() {
        let p = Population::new(50, 3);
        let mut rng = SmallRng::seed_from_u64(7);
        let calls: Vec<Call> = (0..20_000)
            .map(|_| p.call(Workload::Mix { read_percent: 80 }, &mut rng))
            .collect();
        let has = |f: &dyn Fn(&Call) -> bool| calls.iter().any(f);
        assert!(has(&|c| matches!(
            c,
            Call::Patch {
                change: Change::Happiness(_),
                ..
            }
        )));
        assert!(has(&|c| matches!(
            c,
            Call::Patch {
                change: Change::Name,
                ..
            }
        )));
        assert!(has(&|c| matches!(
            c,
            Call::Patch {
                change: Change::Species(_),
                ..
            }
        )));
        assert!(has(&|c| matches!(
            c,
            Call::Patch {
                change: Change::Age(_),
                ..
            }
        )));
        assert!(has(&|c| matches!(
            c,
            Call::Patch {
                pet: PetRef::Shown(_),
                ..
            }
        )));
        assert!(has(&|c| matches!(c, Call::Create(_))));
        assert!(has(&|c| matches!(c, Call::DeleteCreated)));
    }

    #[test]
    fn the_seed_mix_reads_five_species_lists_and_only_creates() {
        let p = Population::new(50, 3);
        let mut rng = SmallRng::seed_from_u64(7);
        let calls: Vec<Call> = (0..10_000)
            .map(|_| p.call(Workload::SeedMix { read_percent: 95 }, &mut rng))
            .collect();
        let writes = calls.iter().filter(|c| c.is_write()).count();
        assert!((350..650).contains(&writes), "{writes} writes");
        assert!(calls.iter().all(|c| {
            match c {
                Call::List(q) => SEED_MIX_SPECIES
                    .iter()
                    .any(|s| *q == format!("/pets?species={s}")),
                Call::Create(s) => SEED_MIX_SPECIES.contains(s),
                _ => false,
            }
        }));
    }

    #[test]
    fn priming_reads_every_list_query_then_every_pet_once() {
        let p = Population::new(30, 7);
        let n = p.prime_requests();
        assert_eq!(n, (DISTINCT_QUERIES + 30) as u64);
        let calls: Vec<Call> = (0..n).map(|i| p.prime(i)).collect();
        let lists: std::collections::HashSet<&str> = calls
            .iter()
            .filter_map(|c| match c {
                Call::List(q) => Some(q.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(lists.len(), DISTINCT_QUERIES);
        let pets: Vec<&Call> = calls
            .iter()
            .filter(|c| matches!(c, Call::GetPet(_)))
            .collect();
        assert_eq!(pets.first(), Some(&&Call::GetPet(1)));
        assert_eq!(pets.last(), Some(&&Call::GetPet(30)));
        assert_eq!(pets.len(), 30);
        assert_eq!(p.prime(n), p.prime(0), "wraps around");
    }
}
