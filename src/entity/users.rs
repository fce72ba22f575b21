//! The users mirror: the local copy of an identity profile, keyed by the
//! identity provider's `user_id` (e.g. `google-oauth2|xxxyyy123`).

use sea_orm::entity::prelude::*;

/// One row per user ever seen by the gateway.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub picture: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub user_metadata: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub app_metadata: Json,
    /// When the row last matched the authority; `None` until it first did.
    pub synced_at: Option<DateTimeUtc>,
    /// The identity provider's `updated_at` of the profile as last stored.
    pub auth0_updated_at: Option<DateTimeUtc>,
    /// When an earlier account with this id was deleted: tokens issued
    /// at or before it are refused.
    pub prior_deletion_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
