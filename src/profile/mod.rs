//! Identity profiles: reading a user's profile, writing what the user may
//! change (user_metadata) and what only the server and admins may change
//! (app_metadata: roles and plan).
//!
//! Three parts, each calling only downwards:
//!
//! - [`rows`]: the users mirror's rows, the one place that reads and writes them;
//! - [`Authority`]: who is in charge of the profile, with two implementations
//!   over those rows: [`LocalAuthority`] (the table is the authority) and
//!   [`Auth0Mirror`] (Auth0 is, the table is its cache);
//! - [`ProfileService`]: the rules (the user's own changes, the admin
//!   changes, the plays rule), over the rows and one authority.
//!
//! Neither authority calls the service or the other authority.

mod auth0;
mod local;
pub mod metadata;
pub mod rows;

pub use auth0::{Auth0Mirror, UserChange, Workers, parse_event_stream, parse_log_stream};
pub use local::LocalAuthority;
pub use rows::{IdentityProfile, lock_user};
pub(crate) use rows::{USER_COLUMNS, USER_SOURCE};

use std::{sync::Arc, time::Duration};

use async_graphql::Enum;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, DatabaseConnection, DatabaseTransaction, EntityTrait, FromQueryResult,
    sea_query::OnConflict,
};
use serde_json::{Map, Value};

use crate::{
    auth::Principal,
    db::{begin_write, retry_races},
    entity::user_data,
    error::{AppError, AppResult},
};

/// The role granted by the plays rule.
pub const PLAYLIST_EDITOR: &str = "playlist_editor";

/// What `displayName` reads when the user never set one (the seed's rule).
pub const DEFAULT_DISPLAY_NAME: &str = "user";

// Stored lower-case in `app_metadata.plan` (see `as_str`); the doc comment
// below is the schema's description, written for client developers.
/// A subscription plan. Only the server and admins change it.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Plan {
    /// The default plan.
    #[default]
    Free,
    /// A paid single-user plan.
    Premium,
    /// A paid plan shared by a household.
    Family,
}

impl Plan {
    /// The value stored in app_metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Premium => "premium",
            Plan::Family => "family",
        }
    }

    fn parse(stored: &str) -> Option<Self> {
        match stored {
            "free" => Some(Plan::Free),
            "premium" => Some(Plan::Premium),
            "family" => Some(Plan::Family),
            _ => None,
        }
    }
}

/// A user's profile joined with their music-database record.
#[derive(Clone, Debug, FromQueryResult)]
pub struct UserRecord {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub picture: Option<String>,
    pub user_metadata: Value,
    pub app_metadata: Value,
    pub synced_at: Option<DateTime<Utc>>,
    /// The identity provider's `updated_at` of the profile as last stored.
    pub auth0_updated_at: Option<DateTime<Utc>>,
    /// When an earlier account with this id was deleted.
    pub prior_deletion_at: Option<DateTime<Utc>>,
    pub fav_genre: Option<String>,
}

impl UserRecord {
    pub(crate) fn user_meta(&self) -> Option<&Map<String, Value>> {
        self.user_metadata.as_object()
    }

    pub(crate) fn app_meta(&self) -> Option<&Map<String, Value>> {
        self.app_metadata.as_object()
    }

    /// `user_metadata.displayName`, or `"user"` when unset.
    pub fn display_name(&self) -> &str {
        self.user_meta()
            .and_then(|m| m.get(metadata::DISPLAY_NAME_KEY))
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_DISPLAY_NAME)
    }

    /// The user's preferences: user_metadata without the display name.
    pub fn preferences(&self) -> Map<String, Value> {
        let mut map = self.user_meta().cloned().unwrap_or_default();
        map.remove(metadata::DISPLAY_NAME_KEY);
        map
    }

    /// `app_metadata.roles`, ignoring anything that is not a string.
    pub fn roles(&self) -> Vec<String> {
        roles_of(self.app_meta())
    }

    /// `app_metadata.plan`, `FREE` when unset or unknown.
    pub fn plan(&self) -> Plan {
        let stored = self
            .app_meta()
            .and_then(|m| m.get("plan"))
            .and_then(Value::as_str);
        match stored {
            None => Plan::Free,
            Some(s) => Plan::parse(s).unwrap_or_else(|| {
                tracing::warn!(user_id = %self.id, plan = s, "unknown plan in app_metadata; reading it as free");
                Plan::Free
            }),
        }
    }

    /// Whether the user holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles().iter().any(|r| r == role)
    }
}

fn roles_of(app_metadata: Option<&Map<String, Value>>) -> Vec<String> {
    app_metadata
        .and_then(|m| m.get("roles"))
        .and_then(Value::as_array)
        .map(|roles| {
            roles
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// What `updateMe` may change. `None` leaves a field alone; `Some(None)`
/// clears it.
#[derive(Debug, Default)]
pub struct MeUpdate {
    pub display_name: Option<Option<String>>,
    pub preferences: Option<Map<String, Value>>,
    pub fav_genre: Option<Option<String>>,
}

/// What the authority accepted of a user_metadata change: the user_metadata
/// to store, as the authority now holds it.
#[derive(Debug, Clone)]
pub struct AcceptedMetadata {
    pub user_metadata: Map<String, Value>,
    /// The profile's `updated_at` at the authority after the change.
    pub updated_at: Option<DateTime<Utc>>,
}

/// Who is in charge of identity profiles. The service applies its rules to
/// the rows and asks the authority only what depends on it: how a caller's
/// row comes to be, whether a user_metadata change is accepted, and what a
/// committed app_metadata change must still reach.
#[async_trait::async_trait]
pub trait Authority: Send + Sync {
    /// The caller's record from `row`, their row as just read (`None`: not
    /// in the database yet): created when missing, refreshed when the
    /// authority's policy says so.
    async fn settle(&self, principal: &Principal, row: Option<UserRecord>)
    -> AppResult<UserRecord>;

    /// Offers a user_metadata patch (Auth0's merge semantics) before the
    /// database changes. `None`: the table is the authority, the service
    /// merges the patch into the row itself.
    async fn accept_user_metadata(
        &self,
        user_id: &str,
        patch: &Map<String, Value>,
    ) -> AppResult<Option<AcceptedMetadata>>;

    /// Records, in the caller's transaction, an app_metadata patch (top-level
    /// keys with absolute values) that the authority must still receive.
    async fn record_app_metadata(
        &self,
        txn: &DatabaseTransaction,
        user_id: &str,
        patch: Map<String, Value>,
    ) -> AppResult<()>;

    /// Records, in the caller's transaction that deletes the user's rows,
    /// that the account must go at the authority too; changes still waiting
    /// for it are moot.
    async fn record_deletion(&self, txn: &DatabaseTransaction, user_id: &str) -> AppResult<()>;

    /// Called after a commit that may have recorded changes.
    fn committed(&self);
}

/// How long tombstones are kept by default: Auth0's default access-token
/// lifetime (24 hours) and an hour of margin.
pub const DEFAULT_TOMBSTONE_TTL: Duration = Duration::from_secs(25 * 3600);

/// Whether `principal`'s token was issued at or before `at` (a token
/// without `iat` could be from any time).
fn issued_at_or_before(principal: &Principal, at: DateTime<Utc>) -> bool {
    principal.issued_at.is_none_or(|iat| iat <= at.timestamp())
}

/// An admin's answer for a user id that no one has signed in with.
fn never_signed_in(user_id: &str) -> AppError {
    AppError::NotFound(format!("no user with id {user_id} has signed in yet"))
}

/// No identity provider's user id holds U+0000, and PostgreSQL's text
/// cannot: such an id names nobody, and is answered so before it reaches a
/// database that would refuse it as an error of its own.
fn could_have_signed_in(user_id: &str) -> AppResult<()> {
    if user_id.contains('\0') {
        return Err(never_signed_in(user_id));
    }
    Ok(())
}

/// Reads and writes profiles.
#[derive(Clone)]
pub struct ProfileService {
    db: DatabaseConnection,
    editor_threshold: i64,
    authority: Arc<dyn Authority>,
    /// How long a deleted account's tombstone is kept.
    tombstone_ttl: Duration,
    /// The Auth0 authority itself, in the auth0 identity mode, for what only
    /// it offers (its Management API client, its webhooks).
    auth0: Option<Arc<Auth0Mirror>>,
}

impl ProfileService {
    /// A service over `db`, granting `playlist_editor` at `editor_threshold`
    /// plays; `auth0`: Auth0 is the authority, `None`: the table is.
    pub fn new(
        db: DatabaseConnection,
        editor_threshold: i64,
        auth0: Option<Arc<Auth0Mirror>>,
    ) -> Self {
        let authority: Arc<dyn Authority> = match &auth0 {
            Some(mirror) => mirror.clone(),
            None => Arc::new(LocalAuthority::new(db.clone())),
        };
        Self {
            db,
            editor_threshold,
            authority,
            tombstone_ttl: DEFAULT_TOMBSTONE_TTL,
            auth0,
        }
    }

    /// Keeps deleted accounts' tombstones for `ttl`: at least the lifetime
    /// of the longest-lived access token.
    pub fn with_tombstone_ttl(mut self, ttl: Duration) -> Self {
        self.tombstone_ttl = ttl;
        self
    }

    /// The threshold of total plays for `playlist_editor`.
    pub fn editor_threshold(&self) -> i64 {
        self.editor_threshold
    }

    /// Reads one user's record, if the user has been seen.
    pub async fn find<C: sea_orm::ConnectionTrait>(
        conn: &C,
        user_id: &str,
    ) -> AppResult<Option<UserRecord>> {
        rows::find(conn, user_id).await
    }

    /// The caller's record: created on first sight, and kept up to date
    /// under the authority's policy.
    pub async fn get_or_create(&self, principal: &Principal) -> AppResult<UserRecord> {
        let row = rows::find(&self.db, &principal.user_id).await?;
        self.settle(principal, row).await
    }

    /// The caller's record from `row`, the user's row as just read (by
    /// [`Self::find`] or a statement that also read other data). A token
    /// issued at or before the deletion of the account it names is refused
    /// (`UNAUTHENTICATED`); a later one (a new signup with the same id)
    /// starts a new, empty account.
    pub async fn settle(
        &self,
        principal: &Principal,
        row: Option<UserRecord>,
    ) -> AppResult<UserRecord> {
        if let Some(user) = row {
            if user
                .prior_deletion_at
                .is_some_and(|at| issued_at_or_before(principal, at))
            {
                return Err(AppError::AccountDeleted);
            }
            return self.authority.settle(principal, Some(user)).await;
        }
        let tombstone = rows::tombstone(&self.db, &principal.user_id).await?;
        if let Some(at) = tombstone
            && issued_at_or_before(principal, at)
        {
            return Err(AppError::AccountDeleted);
        }
        let mut user = self.authority.settle(principal, None).await?;
        if let Some(at) = tombstone {
            rows::adopt_tombstone(&self.db, &user.id, at).await?;
            user.prior_deletion_at = Some(at);
            tracing::info!(user_id = %user.id, "a new account took over a deleted one's id");
        }
        Ok(user)
    }

    /// Deletes a user's account: their songs, playlists, plays,
    /// preferences and profile row, in one transaction, and (when the table
    /// is not the authority) the account at the authority, durably: once
    /// this returns, the deletion reaches the authority even across a crash.
    pub async fn delete_user(&self, user_id: &str) -> AppResult<()> {
        could_have_signed_in(user_id)?;
        retry_races(|| self.try_delete_user(user_id)).await?;
        self.authority.committed();
        tracing::info!(user_id, "account deleted");
        Ok(())
    }

    async fn try_delete_user(&self, user_id: &str) -> AppResult<()> {
        let txn = begin_write(&self.db).await?;
        if !rows::lock_user(&txn, user_id).await? {
            return Err(never_signed_in(user_id));
        }
        rows::delete_user(&txn, user_id, Utc::now(), self.tombstone_ttl).await?;
        self.authority.record_deletion(&txn, user_id).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Applies the user's own changes: display name and preferences to
    /// user_metadata (Auth0's merge rules), favourite genre to the music
    /// database, all or nothing.
    ///
    /// When the table is not the authority, the user_metadata patch goes to
    /// the authority first, and the database changes only once it accepted
    /// it; when it refuses or cannot be reached, nothing changes anywhere.
    /// The transaction is opened after the authority answered, so no
    /// database lock is held across the call.
    pub async fn update_me(&self, user_id: &str, update: MeUpdate) -> AppResult<UserRecord> {
        let mut patch = update.preferences.unwrap_or_default();
        if let Some(display_name) = update.display_name {
            patch.insert(
                metadata::DISPLAY_NAME_KEY.into(),
                display_name.map(Value::String).unwrap_or(Value::Null),
            );
        }
        let accepted = if patch.is_empty() {
            None
        } else {
            self.authority.accept_user_metadata(user_id, &patch).await?
        };
        // Only the database part runs again after a lost race: the
        // authority accepted its part already.
        retry_races(|| self.try_update_me(user_id, &patch, accepted.as_ref(), &update.fav_genre))
            .await
    }

    async fn try_update_me(
        &self,
        user_id: &str,
        patch: &Map<String, Value>,
        accepted: Option<&AcceptedMetadata>,
        fav_genre: &Option<Option<String>>,
    ) -> AppResult<UserRecord> {
        let txn = begin_write(&self.db).await?;
        rows::lock_user(&txn, user_id).await?;
        let current = rows::find(&txn, user_id)
            .await?
            .ok_or_else(|| AppError::not_found("user", user_id))?;
        if let Some(accepted) = accepted {
            rows::write_user_metadata(
                &txn,
                user_id,
                accepted.user_metadata.clone(),
                Some(accepted.updated_at),
            )
            .await?;
        } else if !patch.is_empty() {
            let mut user_metadata = current.user_meta().cloned().unwrap_or_default();
            metadata::merge(&mut user_metadata, patch);
            metadata::check_size(&user_metadata, current.app_meta().unwrap_or(&Map::new()))?;
            rows::write_user_metadata(&txn, user_id, user_metadata, None).await?;
        }
        if let Some(fav_genre) = fav_genre {
            let row = user_data::ActiveModel {
                user_id: Set(user_id.to_owned()),
                fav_genre: Set(fav_genre.clone()),
                updated_at: Set(Utc::now()),
            };
            user_data::Entity::insert(row)
                .on_conflict(
                    OnConflict::column(user_data::Column::UserId)
                        .update_columns([user_data::Column::FavGenre, user_data::Column::UpdatedAt])
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
        }
        let updated = rows::find(&txn, user_id)
            .await?
            .ok_or_else(|| AppError::not_found("user", user_id))?;
        txn.commit().await?;
        Ok(updated)
    }

    /// Admin: sets another user's plan.
    pub async fn set_plan(&self, user_id: &str, plan: Plan) -> AppResult<UserRecord> {
        let mut patch = Map::new();
        patch.insert("plan".into(), plan.as_str().into());
        self.patch_app_metadata(user_id, patch).await
    }

    /// Admin: replaces another user's roles.
    pub async fn set_roles(&self, user_id: &str, roles: Vec<String>) -> AppResult<UserRecord> {
        let mut patch = Map::new();
        patch.insert("roles".into(), roles.into());
        self.patch_app_metadata(user_id, patch).await
    }

    async fn patch_app_metadata(
        &self,
        user_id: &str,
        patch: Map<String, Value>,
    ) -> AppResult<UserRecord> {
        could_have_signed_in(user_id)?;
        let updated = retry_races(|| self.try_patch_app_metadata(user_id, &patch)).await?;
        self.authority.committed();
        Ok(updated)
    }

    async fn try_patch_app_metadata(
        &self,
        user_id: &str,
        patch: &Map<String, Value>,
    ) -> AppResult<UserRecord> {
        let txn = begin_write(&self.db).await?;
        if !rows::lock_user(&txn, user_id).await? {
            return Err(never_signed_in(user_id));
        }
        let current = rows::find(&txn, user_id)
            .await?
            .ok_or_else(|| AppError::not_found("user", user_id))?;
        let mut app_metadata = current.app_meta().cloned().unwrap_or_default();
        metadata::merge(&mut app_metadata, patch);
        metadata::check_size(current.user_meta().unwrap_or(&Map::new()), &app_metadata)?;
        self.write_app_metadata(&txn, user_id, app_metadata, patch.clone())
            .await?;
        let updated = rows::find(&txn, user_id)
            .await?
            .ok_or_else(|| AppError::not_found("user", user_id))?;
        txn.commit().await?;
        Ok(updated)
    }

    /// The plays rule: `playlist_editor` is held exactly when the user's
    /// playlists have `editor_threshold` plays or more. Only that role is
    /// touched. Runs inside the caller's transaction, after [`lock_user`].
    pub async fn apply_editor_rule(
        &self,
        txn: &DatabaseTransaction,
        user_id: &str,
        total_plays: i64,
    ) -> AppResult<()> {
        let Some(current) = rows::find(txn, user_id).await? else {
            return Ok(());
        };
        let should_hold = total_plays >= self.editor_threshold;
        if current.has_role(PLAYLIST_EDITOR) == should_hold {
            return Ok(());
        }
        let mut app_metadata = current.app_meta().cloned().unwrap_or_default();
        let mut roles = roles_of(Some(&app_metadata));
        if should_hold {
            roles.push(PLAYLIST_EDITOR.to_owned());
        } else {
            roles.retain(|r| r != PLAYLIST_EDITOR);
        }
        let mut patch = Map::new();
        patch.insert("roles".into(), roles.clone().into());
        app_metadata.insert("roles".into(), roles.into());
        tracing::info!(
            user_id,
            total_plays,
            granted = should_hold,
            "playlist_editor rule applied"
        );
        self.write_app_metadata(txn, user_id, app_metadata, patch)
            .await
    }

    /// Writes the mirror's app_metadata and records `patch` for the
    /// authority, in the caller's transaction: both or neither.
    async fn write_app_metadata(
        &self,
        txn: &DatabaseTransaction,
        user_id: &str,
        app_metadata: Map<String, Value>,
        patch: Map<String, Value>,
    ) -> AppResult<()> {
        rows::write_app_metadata(txn, user_id, app_metadata).await?;
        self.authority
            .record_app_metadata(txn, user_id, patch)
            .await
    }

    /// Tells the authority that a transaction which may have recorded
    /// changes was committed.
    pub fn wake_outbox(&self) {
        self.authority.committed();
    }

    /// The Auth0 side, in the auth0 identity mode.
    pub fn auth0(&self) -> Option<&Arc<Auth0Mirror>> {
        self.auth0.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(user_metadata: Value, app_metadata: Value) -> UserRecord {
        UserRecord {
            id: "auth0|a".into(),
            email: None,
            name: None,
            picture: None,
            user_metadata,
            app_metadata,
            synced_at: None,
            auth0_updated_at: None,
            prior_deletion_at: None,
            fav_genre: None,
        }
    }

    #[test]
    fn display_name_defaults_to_user() {
        assert_eq!(record(json!({}), json!({})).display_name(), "user");
        assert_eq!(
            record(json!({"displayName": "Ann"}), json!({})).display_name(),
            "Ann"
        );
    }

    #[test]
    fn plan_reads_lower_case_and_defaults_to_free() {
        assert_eq!(record(json!({}), json!({})).plan(), Plan::Free);
        assert_eq!(
            record(json!({}), json!({"plan": "family"})).plan(),
            Plan::Family
        );
        assert_eq!(
            record(json!({}), json!({"plan": "gold"})).plan(),
            Plan::Free
        );
    }

    #[test]
    fn preferences_hide_the_display_name() {
        let r = record(json!({"displayName": "Ann", "theme": "dark"}), json!({}));
        assert_eq!(Value::Object(r.preferences()), json!({"theme": "dark"}));
    }
}
