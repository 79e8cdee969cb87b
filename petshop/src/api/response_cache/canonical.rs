//! What a cached request is keyed by: the canonical parameters of each cached route,
//! parsed by hand under the same rules as its handler.

use cache::Params;

use crate::model::Matching;

/// A request a [`super::CachedRoute`] takes.
#[derive(Clone, Debug, PartialEq)]
pub struct Canonical {
    /// What its entry is keyed by.
    pub params: Params,
    /// For a list: the pets its top-level `total` counts (written in at answer time).
    pub total_of: Option<Matching>,
}

impl Canonical {
    fn plain(params: Params) -> Self {
        Self {
            params,
            total_of: None,
        }
    }
}

/// The canonical parameters of `GET /pets/{id}`: the id (the query is ignored, as the
/// handler ignores it).
#[must_use]
pub fn pet_path(path: &str, _query: &str) -> Option<Canonical> {
    let id = path.strip_prefix("/pets/")?;
    if id.is_empty() || id.len() > 18 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Canonical::plain(
        Params::new().with("id", id.parse::<i64>().ok()?),
    ))
}

/// `GET /stats`: no parameters.
#[must_use]
pub fn stats_path(path: &str, _query: &str) -> Option<Canonical> {
    (path == "/stats").then(|| Canonical::plain(Params::new()))
}

/// The canonical parameters of `GET /pets`: the same rules as its handler, by hand.
/// `None` for anything else (the handler then answers it, errors included).
#[must_use]
pub fn pets_query(path: &str, query: &str) -> Option<Canonical> {
    if path != "/pets" {
        return None;
    }
    let (mut species, mut min_age, mut max_age) = (None, None, None);
    let (mut limit, mut offset) = (None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        // Encoded or repeated parameters are left to the handler.
        if value.contains(['%', '+']) || name.contains(['%', '+']) {
            return None;
        }
        let slot = match name {
            "species" => {
                if species.is_some() {
                    return None;
                }
                // Normalised as the handler does, so "Cat" and "cat" share one entry.
                species = Some(crate::model::Species::parse(value).ok()?.into_string());
                continue;
            }
            "min_age" => &mut min_age,
            "max_age" => &mut max_age,
            "limit" => &mut limit,
            "offset" => &mut offset,
            _ => continue,
        };
        if slot.is_some() || value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = Some(value.parse::<u64>().ok()?);
    }
    let age = |a: Option<u64>| match a {
        Some(a) if a > 100 => None,
        a => Some(a),
    };
    let (min_age, max_age) = (age(min_age)?, age(max_age)?);
    let limit = limit.unwrap_or(10);
    let offset = offset.unwrap_or(0);
    if !(1..=100).contains(&limit) || offset > 1_000_000_000 {
        return None;
    }
    // Typed exactly as the handler's filter is, so both build the same key.
    let as_i32 = |a: Option<u64>| a.map(|a| a as i32);
    let total_of = Matching {
        species,
        min_age: as_i32(min_age),
        max_age: as_i32(max_age),
    };
    Some(Canonical {
        params: Params::new()
            .with("species", total_of.species.clone())
            .with("min_age", total_of.min_age)
            .with("max_age", total_of.max_age)
            .with("limit", limit)
            .with("offset", offset),
        total_of: Some(total_of),
    })
}
