//! The users mirror: reading a user's profile, writing what the user may
//! change (user_metadata) and what only the server and admins may change
//! (app_metadata: roles and plan).
//!
//! In the `local` identity mode the table is the authority. The identity
//! provider's side of every write is kept in this module, so the Auth0 mode
//! changes this module and not the resolvers.

mod auth0;
pub mod metadata;

pub use auth0::{Auth0Mirror, Workers};

use std::sync::Arc;

use async_graphql::Enum;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, FromQueryResult, TransactionTrait,
    sea_query::OnConflict,
};
use serde_json::{Map, Value};

use crate::{
    auth::Principal,
    entity::{user_data, users},
    error::{AppError, AppResult},
    sql,
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
    pub fav_genre: Option<String>,
}

impl UserRecord {
    fn user_meta(&self) -> Option<&Map<String, Value>> {
        self.user_metadata.as_object()
    }

    fn app_meta(&self) -> Option<&Map<String, Value>> {
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

/// Reads and writes profiles.
#[derive(Clone)]
pub struct ProfileService {
    db: DatabaseConnection,
    editor_threshold: i64,
    /// The Auth0 side, in the auth0 identity mode; `None`: the table is the authority.
    auth0: Option<Arc<Auth0Mirror>>,
}

/// The columns of a [`UserRecord`], as every statement that reads one selects them.
macro_rules! user_columns {
    () => {
        "u.id, u.email, u.name, u.picture, u.user_metadata, u.app_metadata, u.synced_at, d.fav_genre"
    };
}

/// Where those columns come from, for the user id bound last.
macro_rules! user_source {
    () => {
        " FROM users u LEFT JOIN user_data d ON d.user_id = u.id WHERE u.id = ?"
    };
}

/// The columns of a [`UserRecord`] (`me`'s read-ahead selects them too).
pub(crate) const USER_COLUMNS: &str = user_columns!();
/// Their tables, filtered by a bound user id.
pub(crate) const USER_SOURCE: &str = user_source!();
const SELECT_USER: &str = concat!("SELECT ", user_columns!(), user_source!());

impl ProfileService {
    /// A service over `db`, granting `playlist_editor` at `editor_threshold` plays.
    pub fn new(
        db: DatabaseConnection,
        editor_threshold: i64,
        auth0: Option<Arc<Auth0Mirror>>,
    ) -> Self {
        Self {
            db,
            editor_threshold,
            auth0,
        }
    }

    /// The threshold of total plays for `playlist_editor`.
    pub fn editor_threshold(&self) -> i64 {
        self.editor_threshold
    }

    /// Reads one user's record, if the user has been seen.
    pub async fn find<C: ConnectionTrait>(
        conn: &C,
        user_id: &str,
    ) -> AppResult<Option<UserRecord>> {
        let stmt = sql::stmt(
            conn.get_database_backend(),
            SELECT_USER,
            vec![user_id.into()],
        );
        Ok(UserRecord::find_by_statement(stmt).one(conn).await?)
    }

    /// The caller's record: in local mode created from the token's claims on
    /// first sight; in auth0 mode under the mirror's refresh policy.
    pub async fn get_or_create(&self, principal: &Principal) -> AppResult<UserRecord> {
        let row = Self::find(&self.db, &principal.user_id).await?;
        self.settle(principal, row).await
    }

    /// The caller's record from `row`, the user's row as just read (by
    /// [`Self::find`] or a statement that also read other data): created
    /// when missing, and in auth0 mode refreshed under the mirror's policy.
    pub async fn settle(
        &self,
        principal: &Principal,
        row: Option<UserRecord>,
    ) -> AppResult<UserRecord> {
        if let Some(mirror) = &self.auth0 {
            return mirror.user_for(principal, row).await;
        }
        match row {
            Some(user) => Ok(user),
            None => Self::insert_from_claims(&self.db, principal, Some(Utc::now())).await,
        }
    }

    /// Creates a user's row from the token's claims (roles from the roles
    /// claim); `synced_at` `None` marks it as not yet synced.
    async fn insert_from_claims(
        db: &DatabaseConnection,
        principal: &Principal,
        synced_at: Option<DateTime<Utc>>,
    ) -> AppResult<UserRecord> {
        let now = Utc::now();
        let mut app_metadata = Map::new();
        if let Some(roles) = &principal.claimed_roles {
            app_metadata.insert("roles".into(), roles.clone().into());
        }
        let row = users::ActiveModel {
            id: Set(principal.user_id.clone()),
            email: Set(principal.email.clone()),
            name: Set(principal.name.clone()),
            picture: Set(principal.picture.clone()),
            user_metadata: Set(Value::Object(Map::new())),
            app_metadata: Set(Value::Object(app_metadata)),
            synced_at: Set(synced_at),
            created_at: Set(now),
            updated_at: Set(now),
        };
        // Two first requests of one user may race; both then read the winner's row.
        users::Entity::insert(row)
            .on_conflict(
                OnConflict::column(users::Column::Id)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
        tracing::info!(user_id = %principal.user_id, "first request of a new user");
        Self::find(db, &principal.user_id)
            .await?
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("user row vanished after insert")))
    }

    /// Applies the user's own changes: display name and preferences to
    /// user_metadata (Auth0's merge rules), favourite genre to the music
    /// database, all or nothing.
    ///
    /// In auth0 mode the user_metadata patch goes to Auth0 first, and the
    /// database changes only once Auth0 accepted it; when Auth0 refuses or
    /// cannot be reached, nothing changes anywhere. The transaction is opened
    /// after Auth0 answered, so no database lock is held across the call.
    pub async fn update_me(&self, user_id: &str, update: MeUpdate) -> AppResult<UserRecord> {
        let mut patch = update.preferences.unwrap_or_default();
        if let Some(display_name) = update.display_name {
            patch.insert(
                metadata::DISPLAY_NAME_KEY.into(),
                display_name.map(Value::String).unwrap_or(Value::Null),
            );
        }
        let mut accepted = None;
        if let Some(mirror) = &self.auth0
            && !patch.is_empty()
        {
            let current = Self::find(&self.db, user_id)
                .await?
                .ok_or_else(|| AppError::not_found("user", user_id))?;
            let mut user_metadata = current.user_meta().cloned().unwrap_or_default();
            metadata::merge(&mut user_metadata, &patch);
            metadata::check_size(&user_metadata, current.app_meta().unwrap_or(&Map::new()))?;
            accepted = Some(mirror.patch_user_metadata(user_id, &patch).await?);
        }
        let txn = self.db.begin().await?;
        lock_user(&txn, user_id).await?;
        let current = Self::find(&txn, user_id)
            .await?
            .ok_or_else(|| AppError::not_found("user", user_id))?;
        if let (Some(mirror), Some(user)) = (&self.auth0, &accepted) {
            mirror.store_patched(&txn, user).await?;
        } else if !patch.is_empty() {
            let mut user_metadata = current.user_meta().cloned().unwrap_or_default();
            metadata::merge(&mut user_metadata, &patch);
            metadata::check_size(&user_metadata, current.app_meta().unwrap_or(&Map::new()))?;
            users::Entity::update_many()
                .col_expr(
                    users::Column::UserMetadata,
                    Value::Object(user_metadata).into(),
                )
                .col_expr(users::Column::UpdatedAt, Utc::now().into())
                .filter(users::Column::Id.eq(user_id))
                .exec(&txn)
                .await?;
        }
        if let Some(fav_genre) = update.fav_genre {
            let row = user_data::ActiveModel {
                user_id: Set(user_id.to_owned()),
                fav_genre: Set(fav_genre),
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
        let updated = Self::find(&txn, user_id)
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
        let txn = self.db.begin().await?;
        if !lock_user(&txn, user_id).await? {
            return Err(AppError::NotFound(format!(
                "no user with id {user_id} has signed in yet"
            )));
        }
        let current = Self::find(&txn, user_id)
            .await?
            .ok_or_else(|| AppError::not_found("user", user_id))?;
        let mut app_metadata = current.app_meta().cloned().unwrap_or_default();
        metadata::merge(&mut app_metadata, &patch);
        metadata::check_size(current.user_meta().unwrap_or(&Map::new()), &app_metadata)?;
        self.write_app_metadata(&txn, user_id, app_metadata, patch)
            .await?;
        let updated = Self::find(&txn, user_id)
            .await?
            .ok_or_else(|| AppError::not_found("user", user_id))?;
        txn.commit().await?;
        self.wake_outbox();
        Ok(updated)
    }

    /// The plays rule: `playlist_editor` is held exactly when the user's
    /// playlists have `editor_threshold` plays or more. Only that role is
    /// touched. Runs inside the caller's transaction, after [`lock_user`].
    pub async fn apply_editor_rule<C: ConnectionTrait>(
        &self,
        conn: &C,
        user_id: &str,
        total_plays: i64,
    ) -> AppResult<()> {
        let Some(current) = Self::find(conn, user_id).await? else {
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
        self.write_app_metadata(conn, user_id, app_metadata, patch)
            .await
    }

    /// Writes the mirror's app_metadata and, in auth0 mode, records `patch`
    /// (top-level keys with absolute values) in the outbox, in the caller's
    /// transaction: both or neither.
    async fn write_app_metadata<C: ConnectionTrait>(
        &self,
        conn: &C,
        user_id: &str,
        app_metadata: Map<String, Value>,
        patch: Map<String, Value>,
    ) -> AppResult<()> {
        users::Entity::update_many()
            .col_expr(
                users::Column::AppMetadata,
                Value::Object(app_metadata).into(),
            )
            .col_expr(users::Column::UpdatedAt, Utc::now().into())
            .filter(users::Column::Id.eq(user_id))
            .exec(conn)
            .await?;
        if let Some(mirror) = &self.auth0 {
            mirror.enqueue_app_metadata(conn, user_id, patch).await?;
        }
        Ok(())
    }

    /// Wakes the outbox worker after a commit that may have added entries.
    pub fn wake_outbox(&self) {
        if let Some(mirror) = &self.auth0 {
            mirror.wake_outbox();
        }
    }

    /// The Auth0 side, in the auth0 identity mode.
    pub fn auth0(&self) -> Option<&Arc<Auth0Mirror>> {
        self.auth0.as_ref()
    }
}

/// Serializes writers of one user: the first statement of every write
/// transaction touches the user's row, which takes its row lock on PostgreSQL
/// and the write lock on SQLite, so read-modify-write of metadata and the
/// plays rule never interleave. Returns whether the user exists.
pub async fn lock_user<C: ConnectionTrait>(conn: &C, user_id: &str) -> AppResult<bool> {
    let result = users::Entity::update_many()
        .col_expr(users::Column::UpdatedAt, Utc::now().into())
        .filter(users::Column::Id.eq(user_id))
        .exec(conn)
        .await?;
    Ok(result.rows_affected > 0)
}

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

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
