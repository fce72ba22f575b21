use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The channel every bump of a data version is announced on; the payload
/// is the scope (a user's id, or the featured scope). PostgreSQL delivers
/// it at commit, and once per scope and transaction however many rows
/// moved, so listeners (the live subscriptions of every instance) wake
/// only for committed changes. SQLite has no such thing: the gateway is
/// its only process there and watches the versions itself.
pub const CHANNEL: &str = "data_versions";

fn bump(notify: bool) -> String {
    let notify = if notify {
        format!("; SELECT pg_notify('{CHANNEL}', s)")
    } else {
        String::new()
    };
    format!(
        "CREATE OR REPLACE FUNCTION data_version_bump(s text) RETURNS void LANGUAGE sql AS $$ \
         INSERT INTO data_versions (scope, version) VALUES (s, 1) \
         ON CONFLICT (scope) DO UPDATE SET version = data_versions.version + 1{notify} $$"
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(&bump(true))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(&bump(false))
                .await?;
        }
        Ok(())
    }
}
