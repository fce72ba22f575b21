//! The local identity mode: the users table is the authority. A caller's row
//! is created from the token's claims on first sight, and every change is
//! complete once committed.

use chrono::Utc;
use sea_orm::{DatabaseConnection, DatabaseTransaction};
use serde_json::{Map, Value};

use super::{AcceptedMetadata, Authority, UserRecord, rows};
use crate::{auth::Principal, error::AppResult};

/// The table as the authority.
pub struct LocalAuthority {
    db: DatabaseConnection,
}

impl LocalAuthority {
    /// The authority over `db`'s users table.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

#[async_trait::async_trait]
impl Authority for LocalAuthority {
    async fn settle(
        &self,
        principal: &Principal,
        row: Option<UserRecord>,
    ) -> AppResult<UserRecord> {
        match row {
            Some(user) => Ok(user),
            None => rows::insert_from_claims(&self.db, principal, Some(Utc::now())).await,
        }
    }

    async fn accept_user_metadata(
        &self,
        _user_id: &str,
        _patch: &Map<String, Value>,
    ) -> AppResult<Option<AcceptedMetadata>> {
        Ok(None)
    }

    async fn record_app_metadata(
        &self,
        _txn: &DatabaseTransaction,
        _user_id: &str,
        _patch: Map<String, Value>,
    ) -> AppResult<()> {
        Ok(())
    }

    async fn record_deletion(&self, _txn: &DatabaseTransaction, _user_id: &str) -> AppResult<()> {
        Ok(())
    }

    fn committed(&self) {}
}
