//! Pets: list with filters, get, create, partial update, delete.

use chrono::{SubsecRound, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::entity::pet;
use crate::model::{NewPet, Pet, PetFilter, PetList, PetPatch};

fn condition(filter: &PetFilter) -> Condition {
    let mut cond = Condition::all();
    if let Some(species) = &filter.species {
        cond = cond.add(pet::Column::Species.eq(species.as_str()));
    }
    if let Some(min) = filter.min_age {
        cond = cond.add(pet::Column::Age.gte(min));
    }
    if let Some(max) = filter.max_age {
        cond = cond.add(pet::Column::Age.lte(max));
    }
    cond
}

/// One page of the pets matching `filter`, ordered by id, and how many match in all
/// (two queries).
pub async fn list(db: &DatabaseConnection, filter: &PetFilter) -> Result<PetList, DbErr> {
    let query = pet::Entity::find().filter(condition(filter));
    let total = query.clone().count(db).await?;
    let pets = query
        .order_by_asc(pet::Column::Id)
        .limit(filter.limit)
        .offset(filter.offset)
        .all(db)
        .await?;
    Ok(PetList {
        pets: pets.into_iter().map(Pet::from).collect(),
        total,
    })
}

/// The pet `id`, if it exists (one query).
pub async fn get(db: &DatabaseConnection, id: i64) -> Result<Option<Pet>, DbErr> {
    Ok(pet::Entity::find_by_id(id).one(db).await?.map(Pet::from))
}

/// Stores a new pet (one `INSERT … RETURNING`).
pub async fn create(db: &DatabaseConnection, new: NewPet) -> Result<Pet, DbErr> {
    let now = Utc::now().trunc_subsecs(3);
    let row = pet::ActiveModel {
        name: Set(new.name),
        species: Set(new.species),
        age: Set(new.age),
        happiness: Set(new.happiness),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(row.into())
}

/// Applies `patch` to pet `id` (one `UPDATE … RETURNING`); `None` when it does not exist.
pub async fn update(
    db: &DatabaseConnection,
    id: i64,
    patch: PetPatch,
) -> Result<Option<Pet>, DbErr> {
    let mut row = pet::ActiveModel {
        id: sea_orm::Unchanged(id),
        updated_at: Set(Utc::now().trunc_subsecs(3)),
        ..Default::default()
    };
    if let Some(v) = patch.name {
        row.name = Set(v);
    }
    if let Some(v) = patch.species {
        row.species = Set(v);
    }
    if let Some(v) = patch.age {
        row.age = Set(v);
    }
    if let Some(v) = patch.happiness {
        row.happiness = Set(v);
    }
    match row.update(db).await {
        Ok(m) => Ok(Some(m.into())),
        Err(DbErr::RecordNotUpdated | DbErr::RecordNotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Deletes pet `id` (one query); false when it did not exist.
pub async fn delete(db: &DatabaseConnection, id: i64) -> Result<bool, DbErr> {
    let res = pet::Entity::delete_by_id(id).exec(db).await?;
    Ok(res.rows_affected > 0)
}
