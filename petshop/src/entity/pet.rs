//! The `pet` table (created by the `migrations` crate).

use sea_orm::entity::prelude::*;

/// One row of `pet`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pet")]
pub struct Model {
    /// Assigned by the database.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// 1–100 characters.
    pub name: String,
    /// 1–32 lower-case ASCII letters.
    pub species: String,
    /// 0–100.
    pub age: i32,
    /// 0–100.
    pub happiness: i32,
    /// When the pet was created (UTC, millisecond precision).
    pub created_at: ChronoDateTimeUtc,
    /// When the pet last changed (UTC, millisecond precision).
    pub updated_at: ChronoDateTimeUtc,
}

/// `pet` has no relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
