//! The mirror as the profile service's authority: user_metadata reaches
//! the table only once Auth0 accepted it; app_metadata and deletions change
//! the table at once and reach Auth0 through the outbox.

use sea_orm::DatabaseTransaction;
use serde_json::{Map, Value, json};

use super::{
    Auth0Mirror, object,
    outbox::{insert_outbox, withdraw},
};
use crate::{
    auth::Principal,
    auth0::{Auth0Error, Auth0User, Wait},
    entity::outbox,
    error::{AppError, AppResult},
    profile::{AcceptedMetadata, Authority, UserRecord, metadata, rows},
};

impl Auth0Mirror {
    /// Sends a user_metadata patch to Auth0, waiting for the budget and
    /// retrying; answers Auth0's view of the user after the change.
    async fn patch_user_metadata(
        &self,
        user_id: &str,
        patch: &Map<String, Value>,
    ) -> AppResult<Auth0User> {
        // An empty object would wipe all of the user's metadata at Auth0.
        debug_assert!(!patch.is_empty());
        match self
            .client
            .patch_user(user_id, &json!({ "user_metadata": patch }), Wait::Yes)
            .await
        {
            Ok(user) => Ok(user),
            Err(Auth0Error::Refused(message)) => Err(AppError::bad_input(format!(
                "the identity provider refused the change: {message}"
            ))),
            Err(Auth0Error::NotFound) => Err(AppError::Upstream(
                "the identity provider does not know this user; nothing was changed".into(),
            )),
            Err(e) => {
                tracing::warn!(user_id, error = %e, "user_metadata write failed");
                Err(AppError::Upstream(
                    "the identity provider is unavailable; nothing was changed, try again later"
                        .into(),
                ))
            }
        }
    }
}

#[async_trait::async_trait]
impl Authority for Auth0Mirror {
    async fn settle(
        &self,
        principal: &Principal,
        row: Option<UserRecord>,
    ) -> AppResult<UserRecord> {
        self.me().user_for(principal, row).await
    }

    async fn accept_user_metadata(
        &self,
        user_id: &str,
        patch: &Map<String, Value>,
    ) -> AppResult<Option<AcceptedMetadata>> {
        let current = rows::find(&self.db, user_id)
            .await?
            .ok_or_else(|| AppError::not_found("user", user_id))?;
        let mut user_metadata = current.user_meta().cloned().unwrap_or_default();
        metadata::merge(&mut user_metadata, patch);
        metadata::check_size(&user_metadata, current.app_meta().unwrap_or(&Map::new()))?;
        let user = self.patch_user_metadata(user_id, patch).await?;
        Ok(Some(AcceptedMetadata {
            user_metadata: object(user.user_metadata.as_ref()),
            updated_at: user.updated_at(),
        }))
    }

    async fn record_app_metadata(
        &self,
        txn: &DatabaseTransaction,
        user_id: &str,
        patch: Map<String, Value>,
    ) -> AppResult<()> {
        self.enqueue_app_metadata(txn, user_id, patch).await
    }

    async fn record_deletion(&self, txn: &DatabaseTransaction, user_id: &str) -> AppResult<()> {
        // Patches for an account about to go would only fail with a 404.
        withdraw(txn, user_id, Some(outbox::KIND_APP_METADATA)).await?;
        insert_outbox(txn, user_id, outbox::KIND_DELETE, Value::Object(Map::new())).await
    }

    fn committed(&self) {
        self.wake_outbox();
    }
}
