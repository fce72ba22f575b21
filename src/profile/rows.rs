//! The users mirror's rows: every statement that reads or writes a user's
//! profile row lives here, and both authorities ([`super::LocalAuthority`],
//! [`super::Auth0Mirror`]) and the service write through these functions
//! only. Nothing here knows which authority is in charge.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter,
    sea_query::{Expr, ExprTrait, JoinType, OnConflict, Query},
};
use serde_json::{Map, Value};

use super::UserRecord;
use crate::{
    auth::Principal,
    entity::{deleted_users, users},
    error::{AppError, AppResult},
    sql::greatest,
};

/// The columns of a [`UserRecord`], as every statement that reads one selects
/// them (`me`'s read-ahead too), from `users u` and `user_data d`.
pub(crate) const USER_COLUMNS: &str = "u.id, u.email, u.name, u.picture, u.user_metadata, u.app_metadata, u.synced_at, u.auth0_updated_at, u.prior_deletion_at, d.fav_genre";
/// Their tables, filtered by a user id bound right after.
pub(crate) const USER_SOURCE: &str =
    " FROM users u LEFT JOIN user_data d ON d.user_id = u.id WHERE u.id = ";

/// A profile as the identity provider holds it, to be stored in the mirror.
#[derive(Debug, Clone)]
pub struct IdentityProfile {
    pub user_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub picture: Option<String>,
    pub user_metadata: Map<String, Value>,
    pub app_metadata: Map<String, Value>,
    /// The profile's `updated_at` at the identity provider.
    pub updated_at: Option<DateTime<Utc>>,
}

/// Reads one user's record, if the user has been seen.
pub async fn find<C: ConnectionTrait>(conn: &C, user_id: &str) -> AppResult<Option<UserRecord>> {
    let stmt = conn.get_database_backend().build(
        Query::select()
            // The list `me`'s read-ahead shares, written once.
            .expr(Expr::cust(USER_COLUMNS))
            .from_as("users", "u")
            .join_as(
                JoinType::LeftJoin,
                "user_data",
                "d",
                Expr::col(("d", "user_id")).equals(("u", "id")),
            )
            .and_where(Expr::col(("u", "id")).eq(user_id)),
    );
    Ok(UserRecord::find_by_statement(stmt).one(conn).await?)
}

/// Creates a user's row from the token's claims (roles from the roles
/// claim); `synced_at` `None` marks it as not yet synced. Two first requests
/// of one user may race; both then read the winner's row.
pub async fn insert_from_claims<C: ConnectionTrait>(
    conn: &C,
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
        auth0_updated_at: Set(None),
        prior_deletion_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    users::Entity::insert(row)
        .on_conflict(
            OnConflict::column(users::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    tracing::info!(user_id = %principal.user_id, "first request of a new user");
    find(conn, &principal.user_id)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("user row vanished after insert")))
}

/// Writes the identity provider's view of a user and marks it synced now;
/// `create`: also when the row is missing (otherwise a missing row, a user
/// deleted meanwhile, stays missing). An existing row is only overwritten
/// by a view at least as new as the stored one (answers to concurrent calls
/// may arrive in any order). Answers whether a row was written.
pub async fn store_profile<C: ConnectionTrait>(
    conn: &C,
    profile: &IdentityProfile,
    create: bool,
) -> AppResult<bool> {
    let now = Utc::now();
    if !create {
        let result = users::Entity::update_many()
            .col_expr(users::Column::Email, profile.email.clone().into())
            .col_expr(users::Column::Name, profile.name.clone().into())
            .col_expr(users::Column::Picture, profile.picture.clone().into())
            .col_expr(
                users::Column::UserMetadata,
                Value::Object(profile.user_metadata.clone()).into(),
            )
            .col_expr(
                users::Column::AppMetadata,
                Value::Object(profile.app_metadata.clone()).into(),
            )
            .col_expr(users::Column::SyncedAt, Some(now).into())
            .col_expr(users::Column::Auth0UpdatedAt, profile.updated_at.into())
            .col_expr(users::Column::UpdatedAt, now.into())
            .filter(users::Column::Id.eq(profile.user_id.as_str()))
            .filter(match profile.updated_at {
                Some(updated_at) => sea_orm::Condition::any()
                    .add(users::Column::Auth0UpdatedAt.is_null())
                    .add(users::Column::Auth0UpdatedAt.lte(updated_at)),
                // Without a time the view cannot be ordered: it is the newest known.
                None => sea_orm::Condition::all(),
            })
            .exec(conn)
            .await?;
        return Ok(result.rows_affected > 0);
    }
    let row = users::ActiveModel {
        id: Set(profile.user_id.clone()),
        email: Set(profile.email.clone()),
        name: Set(profile.name.clone()),
        picture: Set(profile.picture.clone()),
        user_metadata: Set(Value::Object(profile.user_metadata.clone())),
        app_metadata: Set(Value::Object(profile.app_metadata.clone())),
        synced_at: Set(Some(now)),
        auth0_updated_at: Set(profile.updated_at),
        prior_deletion_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    users::Entity::insert(row)
        .on_conflict(
            OnConflict::column(users::Column::Id)
                .update_columns([
                    users::Column::Email,
                    users::Column::Name,
                    users::Column::Picture,
                    users::Column::UserMetadata,
                    users::Column::AppMetadata,
                    users::Column::SyncedAt,
                    users::Column::Auth0UpdatedAt,
                    users::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(true)
}

/// Marks a row as matching the authority now, changing nothing else.
pub async fn mark_synced<C: ConnectionTrait>(conn: &C, user_id: &str) -> AppResult<()> {
    users::Entity::update_many()
        .col_expr(users::Column::SyncedAt, Some(Utc::now()).into())
        .filter(users::Column::Id.eq(user_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// When the row last matched the authority, if it exists and ever did.
pub async fn synced_at<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
) -> AppResult<Option<DateTime<Utc>>> {
    use sea_orm::QuerySelect;
    Ok(users::Entity::find_by_id(user_id)
        .select_only()
        .column(users::Column::SyncedAt)
        .into_tuple::<Option<DateTime<Utc>>>()
        .one(conn)
        .await?
        .flatten())
}

/// Replaces the row's user_metadata; `synced` (the authority's own answer
/// is being stored, with its `updated_at`) also marks it as matching the
/// authority.
pub async fn write_user_metadata<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
    user_metadata: Map<String, Value>,
    synced: Option<Option<DateTime<Utc>>>,
) -> AppResult<()> {
    let now = Utc::now();
    let mut update = users::Entity::update_many()
        .col_expr(
            users::Column::UserMetadata,
            Value::Object(user_metadata).into(),
        )
        .col_expr(users::Column::UpdatedAt, now.into());
    if let Some(updated_at) = synced {
        update = update.col_expr(users::Column::SyncedAt, Some(now).into());
        if updated_at.is_some() {
            update = update.col_expr(users::Column::Auth0UpdatedAt, updated_at.into());
        }
    }
    update
        .filter(users::Column::Id.eq(user_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Replaces the row's app_metadata.
pub async fn write_app_metadata<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
    app_metadata: Map<String, Value>,
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
    Ok(())
}

/// Serializes writers of one user: the first statement of every write
/// transaction touches the user's row, which takes its row lock on PostgreSQL
/// (on SQLite, [`crate::db::begin_write`] took the one write lock already),
/// so read-modify-write of metadata, of a playlist's songs and the plays rule
/// never interleave, and every statement after it (read committed) sees the
/// writes of the turns before. Returns whether the user exists.
pub async fn lock_user<C: ConnectionTrait>(conn: &C, user_id: &str) -> AppResult<bool> {
    let result = users::Entity::update_many()
        .col_expr(users::Column::UpdatedAt, Utc::now().into())
        .filter(users::Column::Id.eq(user_id))
        .exec(conn)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Deletes the user's row and, through the foreign keys, everything that
/// belongs to them (preferences, songs, playlists and their plays), and
/// leaves a tombstone dated `at`. Tombstones older than `tombstone_ttl` are
/// purged on the way: every token issued before them has expired.
pub async fn delete_user<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
    at: DateTime<Utc>,
    tombstone_ttl: std::time::Duration,
) -> AppResult<()> {
    users::Entity::delete_by_id(user_id).exec(conn).await?;
    write_tombstone(conn, user_id, at).await?;
    let expired = at - chrono::Duration::from_std(tombstone_ttl).unwrap_or(chrono::Duration::MAX);
    deleted_users::Entity::delete_many()
        .filter(deleted_users::Column::DeletedAt.lt(expired))
        .exec(conn)
        .await?;
    Ok(())
}

/// Records that `user_id` was deleted at `at`, keeping a later deletion's time.
async fn write_tombstone<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
    at: DateTime<Utc>,
) -> AppResult<()> {
    let upsert = Query::insert()
        .into_table("deleted_users")
        .columns(["user_id", "deleted_at"])
        .values_panic([user_id.into(), at.into()])
        .on_conflict(
            OnConflict::column("user_id")
                .value(
                    "deleted_at",
                    greatest(
                        Expr::col(("deleted_users", "deleted_at")),
                        Expr::col(("excluded", "deleted_at")),
                    ),
                )
                .to_owned(),
        )
        .to_owned();
    conn.execute_raw(conn.get_database_backend().build(&upsert))
        .await?;
    Ok(())
}

/// When `user_id` was deleted, if a tombstone says so.
pub async fn tombstone<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
) -> AppResult<Option<DateTime<Utc>>> {
    Ok(deleted_users::Entity::find_by_id(user_id)
        .one(conn)
        .await?
        .map(|t| t.deleted_at))
}

/// A new account took over a deleted one's id: its row keeps the deletion
/// time (tokens of the old account stay refused) and the tombstone goes.
pub async fn adopt_tombstone<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
    deleted_at: DateTime<Utc>,
) -> AppResult<()> {
    users::Entity::update_many()
        .col_expr(users::Column::PriorDeletionAt, Some(deleted_at).into())
        .filter(users::Column::Id.eq(user_id))
        .exec(conn)
        .await?;
    deleted_users::Entity::delete_many()
        .filter(deleted_users::Column::UserId.eq(user_id))
        .filter(deleted_users::Column::DeletedAt.eq(deleted_at))
        .exec(conn)
        .await?;
    Ok(())
}
