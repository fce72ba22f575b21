use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Changes to app_metadata waiting to be applied at the identity provider.
/// The mirror changes in the same transaction as the insert, so a change is
/// either in both or in neither, and survives a crash until applied.
#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    UserId,
    Payload,
    Attempts,
    NextAttemptAt,
    LastError,
    FailedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(big_pk_auto(Outbox::Id))
                    .col(string(Outbox::UserId))
                    .col(json_binary(Outbox::Payload))
                    .col(integer(Outbox::Attempts).default(0))
                    .col(timestamp_with_time_zone(Outbox::NextAttemptAt))
                    .col(text_null(Outbox::LastError))
                    .col(timestamp_with_time_zone_null(Outbox::FailedAt))
                    .col(timestamp_with_time_zone(Outbox::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Outbox::Table, Outbox::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The worker reads due entries in order; a refresh reads one user's.
        manager
            .create_index(
                Index::create()
                    .name("idx_outbox_due")
                    .table(Outbox::Table)
                    .col(Outbox::NextAttemptAt)
                    .col(Outbox::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_outbox_user_id")
                    .table(Outbox::Table)
                    .col(Outbox::UserId)
                    .col(Outbox::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Outbox::Table).to_owned())
            .await
    }
}
