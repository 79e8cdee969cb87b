//! The pet shop's data as the API shows it and the cache stores it.
//!
//! The same types are poem-openapi schemas (so the spec documents them) and serde
//! values (so the cache can store them). Field rules live here, once: the validators
//! below are both enforced by poem-openapi and published in the spec.

use poem_openapi::Object;
use poem_openapi::types::{ParseError, ParseFromJSON};
use serde::{Deserialize, Serialize};

use crate::entity::pet;

mod species;
pub use species::Species;

/// A pet.
#[derive(Clone, Debug, PartialEq, Eq, Object, Serialize, Deserialize)]
pub struct Pet {
    /// Assigned by the service.
    pub id: i64,
    /// 1–100 characters.
    pub name: String,
    /// As stored: trimmed, single spaces, lower case (see `NewPet.species`).
    pub species: String,
    /// 0–100.
    pub age: i32,
    /// 0–100.
    pub happiness: i32,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub updated_at: String,
}

impl From<pet::Model> for Pet {
    fn from(m: pet::Model) -> Self {
        let ts = |t: sea_orm::prelude::ChronoDateTimeUtc| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        Self {
            id: m.id,
            name: m.name,
            species: m.species,
            age: m.age,
            happiness: m.happiness,
            created_at: ts(m.created_at),
            updated_at: ts(m.updated_at),
        }
    }
}

// poem-openapi's own type errors do not name the field ("expected integer, found ...")
// and its `String` accepts a JSON number or boolean as text; these wrappers add
// "field `x`" so the API's error body can say which one, and refuse non-strings.
fn strict<T: ParseFromJSON>(
    name: &str,
    v: Option<serde_json::Value>,
    string: bool,
) -> Result<T, ParseError<T>> {
    // An optional field is left out, never `null`: the spec does not say nullable.
    if v.as_ref().is_some_and(serde_json::Value::is_null) {
        return Err(ParseError::custom(format_args!(
            "field `{name}`: null is not allowed; leave the field out instead"
        )));
    }
    if string && v.as_ref().is_some_and(|v| !v.is_string()) {
        return Err(ParseError::custom(format_args!(
            "field `{name}`: expected a string"
        )));
    }
    T::parse_from_json(v)
        .map_err(|e| ParseError::custom(format_args!("field `{name}`: {}", e.message())))
}

macro_rules! named_field {
    ($($fn:ident: $ty:ty => $name:literal, $string:literal);* $(;)?) => {$(
        fn $fn(v: Option<serde_json::Value>) -> Result<$ty, ParseError<$ty>> {
            strict::<$ty>($name, v, $string)
        }
    )*};
}
named_field!(
    name_field: String => "name", true;
    species_field: Species => "species", true;
    age_field: i32 => "age", false;
    happiness_field: i32 => "happiness", false;
    opt_name_field: Option<String> => "name", true;
    opt_species_field: Option<Species> => "species", true;
    opt_age_field: Option<i32> => "age", false;
    opt_happiness_field: Option<i32> => "happiness", false;
);

/// The body of `POST /pets`.
#[derive(Clone, Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct NewPet {
    /// 1–100 characters.
    #[oai(
        validator(min_length = 1, max_length = 100),
        deserialize_with = "name_field"
    )]
    pub name: String,
    /// 1–40 characters: letters (accents welcome) in words joined by spaces, a hyphen
    /// or an apostrophe ("Guinea pig", "bearded-dragon"). Stored trimmed, with single
    /// spaces, in lower case: "Guinea  Pig" is "guinea pig".
    #[oai(deserialize_with = "species_field")]
    pub species: Species,
    /// 0–100.
    #[oai(
        validator(minimum(value = "0"), maximum(value = "100")),
        deserialize_with = "age_field"
    )]
    pub age: i32,
    /// 0–100.
    #[oai(
        validator(minimum(value = "0"), maximum(value = "100")),
        deserialize_with = "happiness_field"
    )]
    pub happiness: i32,
}

/// The body of `PATCH /pets/{id}`: the fields to change; `{}` changes nothing.
#[derive(Clone, Debug, Default, Object)]
#[oai(deny_unknown_fields)]
pub struct PetPatch {
    /// 1–100 characters.
    #[oai(
        validator(min_length = 1, max_length = 100),
        deserialize_with = "opt_name_field"
    )]
    pub name: Option<String>,
    /// As in `NewPet`.
    #[oai(deserialize_with = "opt_species_field")]
    pub species: Option<Species>,
    /// 0–100.
    #[oai(
        validator(minimum(value = "0"), maximum(value = "100")),
        deserialize_with = "opt_age_field"
    )]
    pub age: Option<i32>,
    /// 0–100.
    #[oai(
        validator(minimum(value = "0"), maximum(value = "100")),
        deserialize_with = "opt_happiness_field"
    )]
    pub happiness: Option<i32>,
}

impl PetPatch {
    /// True when the patch changes nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.species.is_none()
            && self.age.is_none()
            && self.happiness.is_none()
    }
}

/// The filters and page of `GET /pets`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PetFilter {
    /// Only this species.
    pub species: Option<String>,
    /// Only pets at least this old.
    pub min_age: Option<i32>,
    /// Only pets at most this old.
    pub max_age: Option<i32>,
    /// Page size, 1–100.
    pub limit: u64,
    /// Rows skipped.
    pub offset: u64,
}

impl PetFilter {
    /// What its total counts: the filter without the page.
    #[must_use]
    pub fn matches(&self) -> Matching {
        Matching {
            species: self.species.clone(),
            min_age: self.min_age,
            max_age: self.max_age,
        }
    }
}

/// Which pets a list's total counts: `GET /pets`' filters without the page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Matching {
    /// Only this species.
    pub species: Option<String>,
    /// Only pets at least this old.
    pub min_age: Option<i32>,
    /// Only pets at most this old.
    pub max_age: Option<i32>,
}

impl Matching {
    /// Whether it matches `pet`.
    #[must_use]
    pub fn matches(&self, pet: &Pet) -> bool {
        self.species.as_ref().is_none_or(|s| *s == pet.species)
            && self.min_age.is_none_or(|a| pet.age >= a)
            && self.max_age.is_none_or(|a| pet.age <= a)
    }
}

/// How many pets there are of each species and age (the database's `pet_count`), from
/// which any list's total is summed. What the cache stores for totals; clones share it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PetCounts(std::sync::Arc<[(String, i32, u64)]>);

impl PetCounts {
    /// Counts of `(species, age, pets)`.
    #[must_use]
    pub fn new(mut cells: Vec<(String, i32, u64)>) -> Self {
        cells.retain(|c| c.2 > 0);
        cells.sort();
        Self(cells.into())
    }

    /// How many pets `m` matches.
    #[must_use]
    pub fn total(&self, m: &Matching) -> u64 {
        let cells: &[(String, i32, u64)] = match m.species.as_deref() {
            // Sorted by species: that species' run of cells.
            Some(s) => {
                let start = self.0.partition_point(|c| c.0.as_str() < s);
                let end = start + self.0[start..].partition_point(|c| c.0.as_str() == s);
                &self.0[start..end]
            }
            None => &self.0,
        };
        let (min, max) = (m.min_age.unwrap_or(i32::MIN), m.max_age.unwrap_or(i32::MAX));
        cells
            .iter()
            .filter(|c| (min..=max).contains(&c.1))
            .map(|c| c.2)
            .sum()
    }
}

impl Serialize for PetCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0[..].serialize(s)
    }
}

impl<'de> Deserialize<'de> for PetCounts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<(String, i32, u64)>::deserialize(d).map(Self::new)
    }
}

/// One page of pets and how many match in all: what the cache stores for a list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PetList {
    /// The page, ordered by id.
    pub pets: Vec<Pet>,
    /// Every matching pet, not just this page.
    pub total: u64,
}

/// Aggregates over all pets: what the cache stores for `GET /stats`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatsData {
    /// Number of pets.
    pub total_pets: u64,
    /// Mean happiness, rounded to 2 decimals (0 without pets).
    pub avg_happiness: f64,
    /// Per species, ordered by species.
    pub by_species: Vec<SpeciesStats>,
}

/// Aggregates over one species.
#[derive(Clone, Debug, PartialEq, Object, Serialize, Deserialize)]
pub struct SpeciesStats {
    /// The species.
    pub species: String,
    /// Number of pets of this species.
    pub count: u64,
    /// Mean happiness, rounded to 2 decimals.
    pub avg_happiness: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_total_sums_the_cells_of_its_species_and_ages() {
        let counts = PetCounts::new(vec![
            ("dog".into(), 3, 4),
            ("cat".into(), 2, 1),
            ("cat".into(), 9, 5),
            ("parrot".into(), 2, 0),
            ("cat".into(), 5, 2),
            ("catfish".into(), 5, 7),
        ]);
        let m = |species: Option<&str>, min_age, max_age| Matching {
            species: species.map(str::to_owned),
            min_age,
            max_age,
        };
        assert_eq!(counts.total(&m(None, None, None)), 19);
        assert_eq!(counts.total(&m(Some("cat"), None, None)), 8);
        assert_eq!(counts.total(&m(Some("cat"), Some(3), Some(9))), 7);
        assert_eq!(counts.total(&m(Some("cat"), Some(6), Some(5))), 0);
        assert_eq!(counts.total(&m(None, Some(5), Some(5))), 9);
        assert_eq!(counts.total(&m(Some("ca"), None, None)), 0);
        assert_eq!(counts.total(&m(Some("parrot"), None, None)), 0);
        assert_eq!(counts.total(&m(Some("zebra"), None, None)), 0);
    }
}
