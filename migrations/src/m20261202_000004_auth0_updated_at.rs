use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The identity provider's `updated_at` of the profile as last stored: a
/// token that carries the same time (the post-login Action's claim) needs no
/// refresh, and an event older than it changes nothing.
#[derive(DeriveIden)]
enum Users {
    Table,
    Auth0UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(timestamp_with_time_zone_null(Users::Auth0UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::Auth0UpdatedAt)
                    .to_owned(),
            )
            .await
    }
}
