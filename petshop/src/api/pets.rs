//! `/pets`: list with filters, read, create, partial update, delete.

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::api::Tag;
use crate::api::error::ApiError;
use crate::cache_layer::CacheLayer;
use crate::model::{Matching, NewPet, Pet, PetFilter, PetList, PetPatch, Species};
use crate::state::AppState;
use cache::Source;
use cache::http::ResponseTags;

/// The `/pets` operations.
#[derive(Debug, Clone, Copy)]
pub struct PetsApi;

/// One page of pets.
#[derive(Object, Debug)]
pub struct PetPage {
    /// The page, ordered by id.
    pub pets: Vec<Pet>,
    /// Every matching pet, not just this page.
    pub total: u64,
    /// The page size asked for.
    pub limit: u64,
    /// The rows skipped.
    pub offset: u64,
    /// True when the page came from the cache.
    pub cached: bool,
}

/// A page of pets.
#[derive(ApiResponse, Debug)]
pub enum ListResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(
        Json<PetPage>,
        /// HIT-L1, HIT-L2, MISS, BYPASS, or STALE (the database failed and `CACHE_MAX_STALE` allowed the last good value).
        #[oai(header = "X-Cache")]
        String,
        /// cache-aside, write-through or versioned.
        #[oai(header = "X-Cache-Strategy")]
        String,
    ),
}

/// A pet, with where it came from.
#[derive(Object, Debug)]
pub struct CachedPet {
    /// The pet.
    #[oai(flatten)]
    pub pet: Pet,
    /// True when the pet came from the cache.
    pub cached: bool,
}

/// One pet.
#[derive(ApiResponse, Debug)]
pub enum PetResponse {
    /// The pet.
    #[oai(status = 200)]
    Ok(
        Json<CachedPet>,
        /// HIT-L1, HIT-L2, MISS, BYPASS, or STALE (the database failed and `CACHE_MAX_STALE` allowed the last good value).
        #[oai(header = "X-Cache")]
        String,
        /// cache-aside, write-through or versioned.
        #[oai(header = "X-Cache-Strategy")]
        String,
    ),
}

/// A created pet.
#[derive(ApiResponse, Debug)]
pub enum CreatedResponse {
    /// Created.
    #[oai(status = 201)]
    Created(
        Json<Pet>,
        /// `/pets/{id}` of the new pet.
        #[oai(header = "Location")]
        String,
    ),
}

/// An updated pet.
#[derive(ApiResponse, Debug)]
pub enum UpdatedResponse {
    /// The pet as stored now.
    #[oai(status = 200)]
    Ok(Json<Pet>),
}

/// A deleted pet.
#[derive(ApiResponse, Debug)]
pub enum DeletedResponse {
    /// Deleted.
    #[oai(status = 204)]
    NoContent,
}

fn default_limit() -> u64 {
    10
}

/// The filter of a list query. `min_age` above `max_age` is no error (the spec cannot
/// say so): nothing matches, and the page is empty.
fn filter(
    species: Option<Species>,
    min_age: Option<i32>,
    max_age: Option<i32>,
    limit: u64,
    offset: u64,
) -> PetFilter {
    PetFilter {
        species: species.map(Species::into_string),
        min_age,
        max_age,
        limit,
        offset,
    }
}

fn page(
    state: &AppState,
    list: PetList,
    filter: &PetFilter,
    cached: bool,
    x_cache: &str,
) -> ListResponse {
    ListResponse::Ok(
        Json(PetPage {
            pets: list.pets,
            total: list.total,
            limit: filter.limit,
            offset: filter.offset,
            cached,
        }),
        x_cache.to_owned(),
        state.cache.strategy_name().to_owned(),
    )
}

/// A parameter `GET /pets` does not take is a 422 naming it: one misspelt (`specis`)
/// would otherwise be ignored, and the answer would not be what was asked for.
fn refuse_unknown_params(req: &poem::Request) -> Result<(), ApiError> {
    let query = cache::http::Query::parse(req.uri().query().unwrap_or_default());
    let known = |n: &str| n == "ids" || crate::api::cached::LIST_PARAMS.contains(&n);
    match query.names().find(|n| !known(n)) {
        None => Ok(()),
        Some(name) => Err(ApiError::invalid(
            (!name.is_empty()).then_some(name),
            format!(
                "unknown query parameter {name:?}: GET /pets takes {} and ids",
                crate::api::cached::LIST_PARAMS.join(", ")
            ),
        )),
    }
}

/// At most this many ids in one `GET /pets?ids=`.
pub const MAX_IDS: usize = 100;

/// The ids of `GET /pets?ids=1,2,3`, in order, each once.
fn parse_ids(raw: &str) -> Result<Vec<i64>, ApiError> {
    let mut ids = Vec::new();
    for part in raw.split(',') {
        let id = part.trim().parse::<i64>().map_err(|_| {
            ApiError::invalid(Some("ids"), format!("ids: {part:?} is not an integer id"))
        })?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if ids.len() > MAX_IDS {
        return Err(ApiError::invalid(
            Some("ids"),
            format!("ids: at most {MAX_IDS} ids, not {}", ids.len()),
        ));
    }
    Ok(ids)
}

/// `GET /pets?ids=..`: the pets asked for that `m` matches, through one batch read.
async fn by_ids(state: &AppState, raw: &str, m: &Matching) -> Result<ListResponse, ApiError> {
    let ids = parse_ids(raw)?;
    let found = state.pets.get_many(&ids).await?;
    // The answer is as cached as its least cached pet.
    let rank = |s: Source| match s {
        Source::HitL1 => 0,
        Source::HitL2 => 1,
        Source::Stale => 2,
        Source::Miss => 3,
        Source::Bypass => 4,
    };
    let source = found
        .iter()
        .map(|f| f.source)
        .max_by_key(|s| rank(*s))
        .unwrap_or(Source::Miss);
    let pets: Vec<Pet> = found
        .into_iter()
        .filter_map(|f| f.value)
        .filter(|p| m.matches(p))
        .collect();
    Ok(ListResponse::Ok(
        Json(PetPage {
            total: pets.len() as u64,
            pets,
            limit: ids.len() as u64,
            offset: 0,
            cached: source.is_hit(),
        }),
        source.as_header().to_owned(),
        state.cache.strategy_name().to_owned(),
    ))
}

#[OpenApi(tag = "Tag::Pets")]
impl PetsApi {
    /// List pets, filtered, ordered by id, paginated.
    #[oai(path = "/pets", method = "get", operation_id = "list_pets")]
    #[allow(clippy::too_many_arguments)] // one per query parameter
    async fn list(
        &self,
        state: Data<&AppState>,
        req: &poem::Request,
        /// Only this species, compared as stored: trimmed, single spaces, lower case
        /// (`Guinea Pig` finds `guinea pig`).
        species: Query<Option<Species>>,
        /// Only pets at least this old (0–100).
        #[oai(validator(minimum(value = "0"), maximum(value = "100")))]
        min_age: Query<Option<i32>>,
        /// Only pets at most this old (0–100; below `min_age`, nothing matches).
        #[oai(validator(minimum(value = "0"), maximum(value = "100")))]
        max_age: Query<Option<i32>>,
        /// Page size, 1–100.
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        limit: Query<u64>,
        /// Rows to skip.
        #[oai(
            default,
            validator(minimum(value = "0"), maximum(value = "1000000000"))
        )]
        offset: Query<u64>,
        /// Instead of a page: these pets (comma-separated ids, at most 100), in the
        /// order given, a repeated id once; ids no pet has are left out, and so are pets
        /// `species`, `min_age` or `max_age` do not match (`limit` and `offset` do not
        /// apply). `total` is how many are in the answer, `limit` how many ids were asked.
        #[oai(validator(pattern = r"^ *-?[0-9]{1,18} *(, *-?[0-9]{1,18} *){0,99}$"))]
        ids: Query<Option<String>>,
    ) -> Result<ListResponse, ApiError> {
        refuse_unknown_params(req)?;
        let filter = filter(species.0, min_age.0, max_age.0, limit.0, offset.0);
        if let Some(ids) = ids.0 {
            return by_ids(&state, &ids, &filter.matches()).await;
        }
        let list = state.pets.list(&filter).await?;
        // The response cache in front stores this answer with these tags; without it
        // (a query it leaves to this handler) the page is not cached.
        let x_cache = match req.extensions().get::<ResponseTags>() {
            Some(sink) => {
                sink.set(CacheLayer::page_tags(&filter, &list.pets));
                "MISS"
            }
            None => "BYPASS",
        };
        Ok(page(&state, list, &filter, false, x_cache))
    }

    /// Read one pet.
    #[oai(path = "/pets/:id", method = "get", operation_id = "get_pet")]
    async fn get(
        &self,
        state: Data<&AppState>,
        req: &poem::Request,
        id: Path<i64>,
    ) -> Result<PetResponse, ApiError> {
        let fetched = state.pets.get(id.0).await?;
        let Some(pet) = fetched.value else {
            return Err(ApiError::not_found(format!("no pet with id {}", id.0)));
        };
        if let Some(sink) = req.extensions().get::<ResponseTags>() {
            sink.set(CacheLayer::pet_tags(pet.id));
        }
        Ok(PetResponse::Ok(
            Json(CachedPet {
                pet,
                cached: fetched.source.is_hit(),
            }),
            fetched.source.as_header().to_owned(),
            state.cache.strategy_name().to_owned(),
        ))
    }

    /// Create a pet.
    #[oai(path = "/pets", method = "post", operation_id = "create_pet")]
    async fn create(
        &self,
        state: Data<&AppState>,
        body: Json<NewPet>,
    ) -> Result<CreatedResponse, ApiError> {
        let pet = state.pets.create(body.0).await?;
        let location = format!("/pets/{}", pet.id);
        Ok(CreatedResponse::Created(Json(pet), location))
    }

    /// Change some fields of a pet; `{}` changes nothing and answers the pet as it is.
    #[oai(path = "/pets/:id", method = "patch", operation_id = "update_pet")]
    async fn update(
        &self,
        state: Data<&AppState>,
        id: Path<i64>,
        body: Json<PetPatch>,
    ) -> Result<UpdatedResponse, ApiError> {
        let updated = if body.0.is_empty() {
            // Nothing to write: the pet as stored (no cache step, no write).
            crate::service::pets::get(&state.db, id.0).await?
        } else {
            state.pets.update(id.0, body.0).await?
        };
        let Some(pet) = updated else {
            return Err(ApiError::not_found(format!("no pet with id {}", id.0)));
        };
        Ok(UpdatedResponse::Ok(Json(pet)))
    }

    /// Delete a pet.
    #[oai(path = "/pets/:id", method = "delete", operation_id = "delete_pet")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        id: Path<i64>,
    ) -> Result<DeletedResponse, ApiError> {
        if !state.pets.delete(id.0).await? {
            return Err(ApiError::not_found(format!("no pet with id {}", id.0)));
        }
        Ok(DeletedResponse::NoContent)
    }
}
