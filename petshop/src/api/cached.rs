//! The cached routes: `GET /pets`, `GET /pets/{id}` and `GET /stats`, through the
//! library's response cache ([`cache::http`]); this file only declares them.
//!
//! A list page is stored without its `total`: a create or a delete changes the totals
//! of many lists but the rows of few pages, so the total is written into the page's
//! bytes as it is answered, summed from the per species and age counts the cache
//! keeps ([`PetService::total`]). Handlers give the tags of their answers through
//! [`cache::http::ResponseTags`].

use std::sync::Arc;

use cache::http::{LiveNumber, Query, ResponseCache, Route};

use crate::cache_layer::CacheLayer;
use crate::model::{Matching, Species};
use crate::service::pets::PetService;

/// The query parameters of a `GET /pets` page (the handler refuses any other but `ids`).
pub const LIST_PARAMS: &[&str] = &["species", "min_age", "max_age", "limit", "offset"];

/// The pet shop's response cache, totals from `pets`.
#[must_use]
pub fn response_cache(cache: &CacheLayer, pets: PetService) -> ResponseCache {
    let a = cache.answers();
    let total: LiveNumber = Arc::new(move |query: &Query| {
        let (pets, of) = (pets.clone(), matching(query));
        Box::pin(async move { pets.total(&of?).await.ok() })
    });
    let mut list = Route::new("/pets", &a.lists, a.list_ttl)
        .name("list_pets")
        .query_params(LIST_PARAMS)
        // `?ids=` is a batch read of pets the handler makes itself, and it refuses
        // parameters it does not know.
        .pass_with(&["ids"])
        .others_pass()
        .normalize(normalize)
        .marker("cached")
        .live_number("total", total);
    if a.lists_soft {
        list = list.soft();
    }
    let mut responses = ResponseCache::new(cache.client().clone())
        .route(list)
        .route(
            Route::new("/pets/{id}", &a.pet, a.pet_ttl)
                .name("get_pet")
                .query_params(&[])
                .marker("cached"),
        );
    // Refresh-ahead of the stats lives beneath, in the typed layer: a stored answer in
    // front would hide the hits that trigger it.
    if let Some(stats) = a.stats {
        responses = responses.route(
            Route::new("/stats", &stats, a.stats_ttl)
                .name("get_stats")
                .query_params(&[])
                .marker("cached"),
        );
    }
    responses
}

/// A list query as its handler reads it: the default page, species as stored (`Cat`
/// and `cat` share one entry).
fn normalize(query: &mut Query) {
    if query.get("limit").is_none() {
        query.set("limit", "10");
    }
    if query.get("offset").is_none() {
        query.set("offset", "0");
    }
    if let Some(species) = query.get("species").and_then(|s| Species::parse(s).ok()) {
        query.set("species", species.into_string());
    }
}

/// The pets a stored page's total counts, from its query (as its handler reads it);
/// `None` for a query the handler would have refused.
fn matching(query: &Query) -> Option<Matching> {
    let age = |name| match query.get(name) {
        None => Some(None),
        Some(v) => v
            .parse::<i32>()
            .ok()
            .filter(|a| (0..=100).contains(a))
            .map(Some),
    };
    let species = match query.get("species") {
        None => None,
        Some(s) => Some(Species::parse(s).ok()?.into_string()),
    };
    Some(Matching {
        species,
        min_age: age("min_age")?,
        max_age: age("max_age")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_counts_the_pets_its_handler_lists() {
        let m = matching(&Query::parse("species=Cat&min_age=2&limit=5")).unwrap();
        assert_eq!(
            m,
            Matching {
                species: Some("cat".into()),
                min_age: Some(2),
                max_age: None
            }
        );
        assert_eq!(matching(&Query::parse("")).unwrap(), Matching::default());
        for bad in ["min_age=101", "max_age=-1", "min_age=x", "species=cat2"] {
            assert!(matching(&Query::parse(bad)).is_none(), "{bad}");
        }
    }
}
