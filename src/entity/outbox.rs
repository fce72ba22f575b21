//! A change waiting to be applied at Auth0: an app_metadata patch, or the
//! deletion of the account.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: String,
    /// The top-level app_metadata patch, with absolute values, so applying it
    /// twice has the effect of applying it once.
    #[sea_orm(column_type = "JsonBinary")]
    pub payload: Json,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub last_error: Option<String>,
    /// Set when Auth0 refused the change for good; kept for the operator.
    pub failed_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    /// The instance applying the entry now, if any.
    pub locked_by: Option<String>,
    /// When that instance's claim ends; another may take the entry after it.
    pub locked_until: Option<DateTimeUtc>,
    /// [`KIND_APP_METADATA`] or [`KIND_DELETE`].
    pub kind: String,
}

/// An entry whose payload is an app_metadata patch.
pub const KIND_APP_METADATA: &str = "app_metadata";
/// An entry that deletes the user at Auth0 (its payload is `{}`).
pub const KIND_DELETE: &str = "delete";

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
