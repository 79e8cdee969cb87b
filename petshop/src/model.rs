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
