//! The `pet` table and the indexes behind the list filters (`species`, `age`).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden, Clone)]
pub(crate) enum Pet {
    Table,
    Id,
    Name,
    Species,
    Age,
    Happiness,
    CreatedAt,
    UpdatedAt,
}

// The trait's methods take `&SchemaManager` with an elided lifetime; async_trait needs the
// same spelling here, which the 2018-idioms lint would otherwise flag.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Pet::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Pet::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Pet::Name).string_len(100).not_null())
                    .col(ColumnDef::new(Pet::Species).string_len(32).not_null())
                    .col(ColumnDef::new(Pet::Age).integer().not_null())
                    .col(ColumnDef::new(Pet::Happiness).integer().not_null())
                    .col(
                        ColumnDef::new(Pet::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Pet::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        // `species` (with `id` for the ORDER BY) serves `?species=`; `age` serves the range filters.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_pet_species_id")
                    .table(Pet::Table)
                    .col(Pet::Species)
                    .col(Pet::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_pet_age")
                    .table(Pet::Table)
                    .col(Pet::Age)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Pet::Table).if_exists().to_owned())
            .await
    }
}
