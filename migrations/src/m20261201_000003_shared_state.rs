use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The local issuer's signing key, shared by every instance on the database
/// (one row today; the id leaves room for rotation).
#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Id,
    Pem,
    CreatedAt,
}

/// The Management API's token bucket, shared by every instance: Auth0's
/// limits are per tenant. Times are UNIX seconds as doubles, so both backends
/// do the same arithmetic on them.
#[derive(DeriveIden)]
enum MgmtBudget {
    Table,
    Id,
    Tokens,
    UpdatedAt,
    PausedUntil,
}

/// Which instance is refreshing a user from Auth0, until when: concurrent
/// refreshes of one user coalesce across instances.
#[derive(DeriveIden)]
enum RefreshClaims {
    Table,
    UserId,
    ClaimedUntil,
}

/// The outbox gains a claim: the instance applying an entry and the end of
/// its lease, after which another instance may take the entry over.
#[derive(DeriveIden)]
enum Outbox {
    Table,
    LockedBy,
    LockedUntil,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SigningKeys::Table)
                    .col(integer(SigningKeys::Id).primary_key())
                    .col(text(SigningKeys::Pem))
                    .col(timestamp_with_time_zone(SigningKeys::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MgmtBudget::Table)
                    .col(integer(MgmtBudget::Id).primary_key())
                    .col(double(MgmtBudget::Tokens))
                    .col(double(MgmtBudget::UpdatedAt))
                    .col(double(MgmtBudget::PausedUntil))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RefreshClaims::Table)
                    .col(string(RefreshClaims::UserId).primary_key())
                    .col(double(RefreshClaims::ClaimedUntil))
                    .to_owned(),
            )
            .await?;
        // SQLite alters one column a statement.
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .add_column(string_null(Outbox::LockedBy))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .add_column(timestamp_with_time_zone_null(Outbox::LockedUntil))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .drop_column(Outbox::LockedUntil)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .drop_column(Outbox::LockedBy)
                    .to_owned(),
            )
            .await?;
        for table in [
            RefreshClaims::Table.into_iden(),
            MgmtBudget::Table.into_iden(),
            SigningKeys::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
