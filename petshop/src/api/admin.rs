//! `/cache/stats` and `/admin/cache/flush`.
//!
//! The flush needs `Authorization: Bearer <ADMIN_TOKEN>`. With `ADMIN_TOKEN` unset the
//! admin endpoints are disabled and answer **403**; a missing or wrong token is 401.
//! Tokens are compared in constant time. A flush the service's Redis user may not run
//! (its ACL lacks `SCAN`: README, "Least privilege") is a **403** too, saying so.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use subtle::ConstantTimeEq;

use crate::api::Tag;
use crate::api::error::ApiError;
use crate::state::AppState;

/// The cache endpoints.
#[derive(Debug, Clone, Copy)]
pub struct CacheApi;

/// Checks `Authorization: Bearer <token>` against `ADMIN_TOKEN`.
///
/// Read by hand rather than through a poem-openapi security scheme: the scheme would
/// answer a missing header with 401 before we could say 403 for "disabled".
fn authorize(state: &AppState, req: &poem::Request) -> Result<(), ApiError> {
    let Some(expected) = &state.admin_token else {
        return Err(ApiError::forbidden(
            "admin endpoints are disabled: ADMIN_TOKEN is not set",
        ));
    };
    let given = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token>"))?;
    if bool::from(given.trim().as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        tracing::warn!("admin request refused: wrong token");
        Err(ApiError::unauthorized("wrong admin token"))
    }
}

/// The counters of one tier.
#[derive(Object, Debug)]
pub struct TierStatsBody {
    /// `l1`, `l2` or `none`.
    pub tier: String,
    /// Reads answered.
    pub hits: u64,
    /// Reads not answered.
    pub misses: u64,
    /// Hits over reads.
    pub hit_ratio: f64,
    /// Writes.
    pub sets: u64,
    /// Deletes.
    pub deletes: u64,
    /// Failed operations.
    pub errors: u64,
    /// Undecodable entries.
    pub decode_failures: u64,
    /// Entries dropped for space.
    pub evictions: u64,
    /// Entries dropped by TTL.
    pub expirations: u64,
    /// Operations skipped by the open breaker.
    pub short_circuits: u64,
}

/// Loader counters.
#[derive(Object, Debug)]
pub struct LoaderStatsBody {
    /// Loader runs (trips to the database).
    pub calls: u64,
    /// Failed loader runs.
    pub errors: u64,
    /// Callers that waited for another caller's load.
    pub coalesced: u64,
    /// Loads cut short by `CACHE_LOAD_TIMEOUT` (also counted in `errors`).
    pub timeouts: u64,
    /// Answers served stale because the database failed (`CACHE_MAX_STALE`).
    pub stale_served: u64,
    /// Background refreshes of `/stats` (`STATS_REFRESH_AHEAD`; also in `calls`).
    pub refreshes: u64,
}

/// The backplane's counters (`l1+l2` only).
#[derive(Object, Debug)]
pub struct BackplaneStatsBody {
    /// Subscribed: invalidations from other instances arrive and L1 is in use.
    pub connected: bool,
    /// Invalidations this instance published.
    pub published: u64,
    /// Invalidations received from other instances.
    pub received: u64,
    /// Times the subscription dropped (each one flushed L1).
    pub drops: u64,
}

/// Writes whose cache-side step could not reach Redis, queued for replay.
#[derive(Object, Debug)]
pub struct RecoveryStatsBody {
    /// Waiting for Redis now; reads they concern go to the database (`X-Cache: BYPASS`).
    pub pending: u64,
    /// Queued since start.
    pub queued: u64,
    /// Replayed once Redis answered, since start.
    pub replayed: u64,
    /// Times the queue overflowed and fell back to a flush of the cache.
    pub overflows: u64,
    /// Reads answered by the database because a queued write concerned them.
    pub bypassed_reads: u64,
}

/// The cache's counters.
#[derive(Object, Debug)]
pub struct CacheStatsBody {
    /// `none`, `l1`, `l2` or `l1+l2`.
    pub topology: String,
    /// `cache-aside`, `write-through` or `versioned`.
    pub strategy: String,
    /// `available` or `strict` (`CACHE_WRITE_CONSISTENCY`).
    pub write_consistency: String,
    /// Per tier, nearest first.
    pub tiers: Vec<TierStatsBody>,
    /// The loaders.
    pub loader: LoaderStatsBody,
    /// The backplane, when L1 and L2 are both in use.
    #[oai(skip_serializing_if_is_none)]
    pub backplane: Option<BackplaneStatsBody>,
    /// The recovery queue.
    pub recovery: RecoveryStatsBody,
}

/// The result of a flush.
#[derive(Object, Debug)]
pub struct Flushed {
    /// Always true.
    pub flushed: bool,
}

/// A flush.
#[derive(ApiResponse, Debug)]
pub enum FlushResponse {
    /// Every tier is empty.
    #[oai(status = 200)]
    Ok(Json<Flushed>),
}

#[OpenApi(tag = "Tag::Cache")]
impl CacheApi {
    /// Per-tier counters, hit ratios and loader counters.
    #[oai(path = "/cache/stats", method = "get", operation_id = "cache_stats")]
    async fn stats(&self, state: Data<&AppState>) -> Result<Json<CacheStatsBody>, ApiError> {
        // Never an error of its own; the `Result` documents the API's errors (a 429 of
        // the rate limiter) like every other operation's.
        let stats = state.cache.cache_stats();
        let s = &stats.cache;
        Ok(Json(CacheStatsBody {
            topology: state.cache.topology().as_str().into(),
            strategy: state.cache.strategy_name().into(),
            write_consistency: state.cache.write_consistency().as_str().into(),
            tiers: s
                .tiers
                .iter()
                .map(|t| TierStatsBody {
                    tier: t.tier.into(),
                    hits: t.hits,
                    misses: t.misses,
                    hit_ratio: t.hit_ratio(),
                    sets: t.sets,
                    deletes: t.deletes,
                    errors: t.errors,
                    decode_failures: t.decode_failures,
                    evictions: t.evictions,
                    expirations: t.expirations,
                    short_circuits: t.short_circuits,
                })
                .collect(),
            loader: LoaderStatsBody {
                calls: s.loader.calls,
                errors: s.loader.errors,
                coalesced: s.loader.coalesced,
                timeouts: s.loader.timeouts,
                stale_served: s.loader.stale_served,
                refreshes: s.loader.refreshes,
            },
            backplane: stats.backplane.map(|b| BackplaneStatsBody {
                connected: b.connected,
                published: b.published,
                received: b.received,
                drops: b.drops,
            }),
            recovery: RecoveryStatsBody {
                pending: stats.recovery.pending,
                queued: stats.recovery.queued,
                replayed: stats.recovery.replayed,
                overflows: stats.recovery.overflows,
                bypassed_reads: stats.recovery.bypassed_reads,
            },
        }))
    }

    /// Empty every cache tier (admin: `Authorization: Bearer <ADMIN_TOKEN>`; 403 while
    /// `ADMIN_TOKEN` is unset, or when the Redis user may not flush: `NOPERM`).
    #[oai(
        path = "/admin/cache/flush",
        method = "post",
        operation_id = "flush_cache"
    )]
    async fn flush(
        &self,
        state: Data<&AppState>,
        req: &poem::Request,
    ) -> Result<FlushResponse, ApiError> {
        authorize(&state, req)?;
        match state.cache.flush().await {
            Err(e) if e.is_permission_denied() => {
                return Err(ApiError::forbidden(format!(
                    "Redis refused the flush (NOPERM): the service's Redis user lacks a permission \
                     the flush needs; grant it +scan (and +cluster|nodes on a Redis Cluster). \
                     Nothing was removed from Redis. {e}"
                )));
            }
            flushed => flushed?,
        }
        tracing::info!("cache flushed by admin");
        Ok(FlushResponse::Ok(Json(Flushed { flushed: true })))
    }
}
