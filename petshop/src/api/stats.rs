//! `/stats`: aggregates over all pets.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::api::Tag;
use crate::api::error::ApiError;
use crate::cache_layer::CacheLayer;
use crate::model::SpeciesStats;
use crate::service::stats;
use crate::state::AppState;
use cache::http::ResponseTags;

/// The `/stats` operation.
#[derive(Debug, Clone, Copy)]
pub struct StatsApi;

/// Aggregates over all pets.
#[derive(Object, Debug)]
pub struct Stats {
    /// Number of pets.
    pub total_pets: u64,
    /// Mean happiness, 2 decimals (0 without pets).
    pub avg_happiness: f64,
    /// Per species, ordered by species.
    pub by_species: Vec<SpeciesStats>,
    /// True when the stats came from the cache.
    pub cached: bool,
}

/// The stats.
#[derive(ApiResponse, Debug)]
pub enum StatsResponse {
    /// The stats.
    #[oai(status = 200)]
    Ok(
        Json<Stats>,
        /// HIT-L1, HIT-L2, MISS, BYPASS, or STALE (the database failed and `CACHE_MAX_STALE` allowed the last good value).
        #[oai(header = "X-Cache")]
        String,
        /// cache-aside, write-through or versioned.
        #[oai(header = "X-Cache-Strategy")]
        String,
    ),
}

#[OpenApi(tag = "Tag::Stats")]
impl StatsApi {
    /// Pet counts and mean happiness, overall and per species.
    #[oai(path = "/stats", method = "get", operation_id = "get_stats")]
    async fn stats(
        &self,
        state: Data<&AppState>,
        req: &poem::Request,
    ) -> Result<StatsResponse, ApiError> {
        if let Some(sink) = req.extensions().get::<ResponseTags>() {
            sink.set(CacheLayer::stats_tags());
        }
        let db = state.db.clone();
        let fetched = state
            .cache
            .stats(move || {
                let db = db.clone();
                async move { stats::compute(&db).await }
            })
            .await?;
        let s = fetched.value;
        Ok(StatsResponse::Ok(
            Json(Stats {
                total_pets: s.total_pets,
                avg_happiness: s.avg_happiness,
                by_species: s.by_species,
                cached: fetched.source.is_hit(),
            }),
            fetched.source.as_header().to_owned(),
            state.cache.strategy_name().to_owned(),
        ))
    }
}
