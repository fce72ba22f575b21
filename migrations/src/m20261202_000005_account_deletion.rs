use sea_orm_migration::{prelude::*, schema::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Deleted accounts, until every token issued before the deletion has
/// expired: such a token may neither recreate the user nor reach data.
#[derive(DeriveIden)]
enum DeletedUsers {
    Table,
    UserId,
    DeletedAt,
}

/// A user row gains the time an earlier account with the same id was
/// deleted, taken over from the tombstone when the new account starts.
#[derive(DeriveIden)]
enum Users {
    Table,
    PriorDeletionAt,
}

/// Outbox entries gain a kind (an app_metadata patch, or the deletion of the
/// account), and lose their foreign key to `users`: a deletion entry must
/// outlive the user's row, which is deleted in the same transaction.
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
    LockedBy,
    LockedUntil,
    Kind,
}

#[derive(DeriveIden)]
enum OutboxRebuilt {
    Table,
}

const COLUMNS: &str = "id, user_id, payload, attempts, next_attempt_at, last_error, failed_at, \
                       created_at, locked_by, locked_until";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DeletedUsers::Table)
                    .col(string(DeletedUsers::UserId).primary_key())
                    .col(timestamp_with_time_zone(DeletedUsers::DeletedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(timestamp_with_time_zone_null(Users::PriorDeletionAt))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "DO $$ DECLARE c text; BEGIN \
                       FOR c IN SELECT conname FROM pg_constraint \
                         WHERE conrelid = 'outbox'::regclass AND contype = 'f' LOOP \
                         EXECUTE format('ALTER TABLE outbox DROP CONSTRAINT %I', c); \
                       END LOOP; END $$",
                )
                .await?;
                manager
                    .alter_table(
                        Table::alter()
                            .table(Outbox::Table)
                            .add_column(string(Outbox::Kind).default("app_metadata"))
                            .to_owned(),
                    )
                    .await?;
            }
            _ => {
                // SQLite cannot drop a foreign key: rebuild the table, as its
                // documentation describes, keeping ids and indexes.
                manager
                    .create_table(
                        Table::create()
                            .table(OutboxRebuilt::Table)
                            .col(big_pk_auto(Outbox::Id))
                            .col(string(Outbox::UserId))
                            .col(json_binary(Outbox::Payload))
                            .col(integer(Outbox::Attempts).default(0))
                            .col(timestamp_with_time_zone(Outbox::NextAttemptAt))
                            .col(text_null(Outbox::LastError))
                            .col(timestamp_with_time_zone_null(Outbox::FailedAt))
                            .col(timestamp_with_time_zone(Outbox::CreatedAt))
                            .col(string_null(Outbox::LockedBy))
                            .col(timestamp_with_time_zone_null(Outbox::LockedUntil))
                            .col(string(Outbox::Kind).default("app_metadata"))
                            .to_owned(),
                    )
                    .await?;
                db.execute_unprepared(&format!(
                    "INSERT INTO outbox_rebuilt ({COLUMNS}) SELECT {COLUMNS} FROM outbox"
                ))
                .await?;
                manager
                    .drop_table(Table::drop().table(Outbox::Table).to_owned())
                    .await?;
                manager
                    .rename_table(
                        Table::rename()
                            .table(OutboxRebuilt::Table, Outbox::Table)
                            .to_owned(),
                    )
                    .await?;
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
                    .await?;
            }
        }
        Ok(())
    }

    /// Leaves the outbox without its foreign key: entries of deleted users
    /// may still be in it.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .drop_column(Outbox::Kind)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::PriorDeletionAt)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(DeletedUsers::Table).to_owned())
            .await
    }
}
