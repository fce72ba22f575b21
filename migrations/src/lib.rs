//! The music database's schema, for SQLite (the embedded default) and PostgreSQL.
//!
//! Every table that belongs to a user carries `user_id`, and every foreign key
//! and `user_id` column has an index: queries a user can reach always filter by
//! the caller's id, so those lookups must never scan.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_init;
mod m20261122_000002_outbox;
mod m20261201_000003_shared_state;
mod m20261202_000001_data_versions;
mod m20261202_000004_auth0_updated_at;
mod m20261202_000005_account_deletion;
mod m20261207_000001_live_notify;

pub use m20261207_000001_live_notify::CHANNEL as DATA_VERSIONS_CHANNEL;

/// Runs this crate's migrations in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_init::Migration),
            Box::new(m20261122_000002_outbox::Migration),
            Box::new(m20261201_000003_shared_state::Migration),
            Box::new(m20261202_000001_data_versions::Migration),
            Box::new(m20261202_000004_auth0_updated_at::Migration),
            Box::new(m20261202_000005_account_deletion::Migration),
            Box::new(m20261207_000001_live_notify::Migration),
        ]
    }
}
