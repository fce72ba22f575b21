//! The error policy.
//!
//! Services return [`AppError`]; it is mapped to a GraphQL error exactly once,
//! in the `From` impl below, which sets `extensions.code`. Client-facing
//! variants carry a message written for the client developer. `Internal`
//! carries the cause for the log only: the client sees a generic message.
//!
//! `AppError` deliberately does not implement `Display`: async-graphql turns
//! any `Display` type into an error without a code, and this way the compiler
//! makes sure every error goes through the mapping that sets one.

use std::fmt;

pub use crate::error_code::ErrorCode;

/// An error of the request path.
pub enum AppError {
    /// No valid access token came with a request that needs one.
    Unauthenticated,
    /// The token was issued before its account was deleted.
    AccountDeleted,
    /// The caller is known but may not do this.
    Forbidden(String),
    /// The thing does not exist, or does not belong to the caller.
    NotFound(String),
    /// The input is invalid; the message says how.
    BadInput(String),
    /// An upstream service (the identity provider) refused or could not be reached.
    Upstream(String),
    /// A concurrent write got in the way: nothing was changed, and sending
    /// the request again is safe. `retry_now`: the database said that the
    /// transaction only has to run again (a deadlock victim, a stale
    /// snapshot); otherwise the lock it needed was not had in time.
    Conflict { retry_now: bool },
    /// Anything else. Logged, never shown.
    Internal(anyhow::Error),
}

impl AppError {
    /// A `NOT_FOUND` for a kind of thing and the id the client sent.
    pub fn not_found(kind: &str, id: impl fmt::Display) -> Self {
        Self::NotFound(format!("no {kind} with id {id}"))
    }

    /// A `BAD_USER_INPUT` with a message for the client.
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::BadInput(message.into())
    }

    /// A `FORBIDDEN` with a message for the client.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }

    /// The stable code clients match on.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unauthenticated | Self::AccountDeleted => ErrorCode::Unauthenticated,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::BadInput(_) => ErrorCode::BadUserInput,
            Self::Upstream(_) => ErrorCode::UpstreamUnavailable,
            Self::Conflict { .. } => ErrorCode::Conflict,
            Self::Internal(_) => ErrorCode::InternalServerError,
        }
    }

    /// The message a client may see.
    pub fn client_message(&self) -> String {
        match self {
            Self::Unauthenticated => "sign in: this needs a valid access token".to_owned(),
            Self::AccountDeleted => {
                "this account was deleted; sign in again to start a new one".to_owned()
            }
            Self::Forbidden(m) | Self::NotFound(m) | Self::BadInput(m) | Self::Upstream(m) => {
                m.clone()
            }
            Self::Conflict { .. } => {
                "a concurrent change got in the way; nothing was changed, send the request again"
                    .to_owned()
            }
            Self::Internal(_) => "internal server error".to_owned(),
        }
    }
}

impl fmt::Debug for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Internal(e) => write!(f, "Internal({e:#})"),
            other => write!(f, "{}({})", other.code(), other.client_message()),
        }
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(err: sea_orm::DbErr) -> Self {
        if database_unavailable(&err) {
            tracing::warn!(error = %err, "the database is unavailable");
            return Self::Upstream("the database is unavailable; try again shortly".into());
        }
        if let Some(race) = lost_race(&err) {
            tracing::info!(error = %err, "a write lost a race with a concurrent one");
            return Self::Conflict {
                retry_now: race == Race::RunAgain,
            };
        }
        Self::Internal(err.into())
    }
}

/// How a write lost to a concurrent one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Race {
    /// The database rolled the transaction back so that it runs again: a
    /// deadlock victim, a serialization failure, a stale SQLite snapshot.
    RunAgain,
    /// The lock it needed was held by another writer for longer than the
    /// database was told to wait (SQLite's busy timeout, PostgreSQL's
    /// `lock_timeout`): running it again at once would only wait again.
    LockTimeout,
}

/// Whether `err` says that a concurrent write got in the way, and how: not
/// a bug, and nothing was changed.
pub fn lost_race(err: &sea_orm::DbErr) -> Option<Race> {
    use sea_orm::{DbErr, RuntimeErr, sqlx};
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = err
    else {
        return None;
    };
    let sqlx::Error::Database(db) = e.as_ref() else {
        return None;
    };
    let code = db.code()?;
    match code.as_ref() {
        // PostgreSQL: serialization_failure, deadlock_detected.
        "40001" | "40P01" => Some(Race::RunAgain),
        // PostgreSQL: lock_not_available.
        "55P03" => Some(Race::LockTimeout),
        // SQLite's extended codes: SQLITE_BUSY_SNAPSHOT (a transaction that
        // read an older snapshot than the last commit cannot write).
        "517" => Some(Race::RunAgain),
        // SQLITE_BUSY, SQLITE_BUSY_RECOVERY, SQLITE_BUSY_TIMEOUT,
        // SQLITE_LOCKED and SQLITE_LOCKED_SHAREDCACHE.
        "5" | "261" | "773" | "6" | "262" => Some(Race::LockTimeout),
        _ => None,
    }
}

/// Whether `err` says the database could not be reached (down, restarting,
/// or the pool waited too long for a connection), as opposed to a statement
/// it refused: the former is the client's to retry, the latter a bug.
pub fn database_unavailable(err: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, sqlx};
    let sqlx_err = match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        _ => return false,
    };
    match sqlx_err.as_ref() {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // PostgreSQL's connection exceptions (class 08) and its shutting
        // down or starting up (57P01 to 57P03).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P0")),
        _ => false,
    }
}

impl From<anyhow::Error> for AppError {
    fn from(err: anyhow::Error) -> Self {
        Self::Internal(err)
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        if let AppError::Internal(cause) = &err {
            tracing::error!(
                error = format!("{cause:#}"),
                "internal error while resolving"
            );
        }
        let code = err.code();
        use async_graphql::ErrorExtensions;
        async_graphql::Error::new(err.client_message()).extend_with(|_, ext| ext.set("code", code))
    }
}

/// Results of the request path.
pub type AppResult<T> = Result<T, AppError>;
