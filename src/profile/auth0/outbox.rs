//! The durable outbox: app_metadata changes and deletions for Auth0,
//! committed in the transaction of the change that caused them and sent by
//! a worker that every instance runs, under a lease, one user's entries in
//! order.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, PaginatorTrait,
    QueryFilter, QueryOrder,
    sea_query::{Expr, ExprTrait, LockBehavior, LockType, Order, Query},
};
use serde_json::{Map, Value, json};

use super::Auth0Mirror;
use crate::{
    auth0::{Auth0Error, Wait},
    entity::outbox,
    error::AppResult,
};

/// Longest wait between two attempts of one outbox entry.
const MAX_OUTBOX_BACKOFF: Duration = Duration::from_secs(60);

/// How often the outbox worker looks for due entries without being woken
/// (entries committed through another instance wake only that instance).
const OUTBOX_POLL: Duration = Duration::from_secs(2);

impl Auth0Mirror {
    /// Records an app_metadata patch for Auth0, in the caller's transaction.
    pub(super) async fn enqueue_app_metadata<C: ConnectionTrait>(
        &self,
        conn: &C,
        user_id: &str,
        patch: Map<String, Value>,
    ) -> AppResult<()> {
        insert_outbox(
            conn,
            user_id,
            outbox::KIND_APP_METADATA,
            Value::Object(patch),
        )
        .await
    }

    /// Tells the outbox worker that an entry was committed.
    pub fn wake_outbox(&self) {
        self.outbox_wake.notify_one();
    }

    /// Applies outbox entries to Auth0. Every instance runs this worker over
    /// the one table: an entry is claimed under a lease before it is sent,
    /// so each is sent once (a retry after a lost answer is the only
    /// repeat), and a crashed instance's claim passes to another when its
    /// lease ends. Only the oldest pending entry of a user can be claimed, so
    /// one user's changes arrive in the order they were committed, while a
    /// user whose entry is failing holds back no one else. An entry is
    /// deleted only after Auth0 accepted it; every entry holds absolute
    /// values, so applying one twice does no harm.
    pub(super) async fn run_outbox(self: Arc<Self>) {
        loop {
            let pause = match self.outbox_step().await {
                Ok(pause) => pause,
                Err(e) => {
                    tracing::error!(error = ?e, "outbox worker failed; retrying");
                    Some(OUTBOX_POLL)
                }
            };
            if let Some(pause) = pause {
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = self.outbox_wake.notified() => {}
                }
            }
        }
    }

    /// Claims the oldest due entry that heads its user's queue, if any.
    ///
    /// On PostgreSQL "now" is the database server's clock, as for refresh
    /// claims: instances on hosts whose clocks are apart must not take over
    /// each other's live leases. A SQLite file is shared only by processes
    /// of one machine, which share its clock.
    async fn claim_outbox(&self) -> AppResult<Option<ClaimedEntry>> {
        let backend = self.db.get_database_backend();
        let (until, now): (Expr, Expr) = if backend == DbBackend::Postgres {
            (
                Expr::cust_with_values(
                    "clock_timestamp() + make_interval(secs => $1)",
                    [self.outbox_lease.as_secs_f64()],
                ),
                Expr::cust("clock_timestamp()"),
            )
        } else {
            let now = Utc::now();
            let until = now + chrono::Duration::from_std(self.outbox_lease).unwrap_or_default();
            (until.into(), now.into())
        };
        let earlier_pending = Query::select()
            .expr(Expr::val(1))
            .from_as("outbox", "p")
            .and_where(Expr::col(("p", "user_id")).equals(("o", "user_id")))
            .and_where(Expr::col(("p", "failed_at")).is_null())
            .and_where(Expr::col(("p", "id")).lt(Expr::col(("o", "id"))))
            .to_owned();
        let due = Query::select()
            .column(("o", "id"))
            .from_as("outbox", "o")
            .and_where(Expr::col(("o", "failed_at")).is_null())
            .and_where(Expr::col(("o", "next_attempt_at")).lte(now.clone()))
            .and_where(
                Expr::col(("o", "locked_until"))
                    .is_null()
                    .or(Expr::col(("o", "locked_until")).lt(now)),
            )
            .and_where(Expr::exists(earlier_pending).not())
            .order_by(("o", "id"), Order::Asc)
            .limit(1)
            // Claimers on PostgreSQL skip each other's locked rows; SQLite
            // runs the whole statement under its one write lock and has no
            // row locks (sea-query writes none there).
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .to_owned();
        let claim = Query::update()
            .table("outbox")
            .value("locked_by", self.instance.clone())
            .value("locked_until", until)
            .and_where(Expr::col("id").eq(due))
            .returning(Query::returning().columns(["id", "user_id", "payload", "attempts", "kind"]))
            .to_owned();
        let stmt = backend.build(&claim);
        Ok(ClaimedEntry::find_by_statement(stmt).one(&self.db).await?)
    }

    /// The time `after` from now on the clock claims compare with (see
    /// `claim_outbox`).
    fn db_time_in(&self, after: Duration) -> sea_orm::sea_query::SimpleExpr {
        if self.db.get_database_backend() == DbBackend::Postgres {
            // A number of our own, not input: written into the SQL.
            sea_orm::sea_query::Expr::cust(format!(
                "clock_timestamp() + make_interval(secs => {})",
                after.as_secs_f64()
            ))
        } else {
            (Utc::now() + chrono::Duration::from_std(after).unwrap_or_default()).into()
        }
    }

    /// Handles one claimed entry; answers how long to pause, if at all.
    async fn outbox_step(&self) -> AppResult<Option<Duration>> {
        let Some(entry) = self.claim_outbox().await? else {
            return Ok(Some(OUTBOX_POLL));
        };
        let release = outbox::Entity::update_many()
            .col_expr(outbox::Column::LockedBy, Option::<String>::None.into())
            .col_expr(
                outbox::Column::LockedUntil,
                Option::<DateTime<Utc>>::None.into(),
            )
            .filter(outbox::Column::Id.eq(entry.id));
        // Wait for the budget for half the lease at most, so the call is
        // over well before another instance could take the entry over.
        let deadline = Instant::now() + self.outbox_lease / 2;
        if self
            .client
            .budget()
            .acquire_until(Some(deadline))
            .await
            .is_none()
        {
            crate::telemetry::record_budget_spent();
            release.exec(&self.db).await?;
            return Ok(None);
        }
        // The wait can be long (an empty budget; on SQLite, another
        // transaction's write lock): an account deleted meanwhile took its
        // pending changes with it, and they are not to be sent.
        let still_claimed = outbox::Entity::find_by_id(entry.id)
            .filter(outbox::Column::LockedBy.eq(self.instance.as_str()))
            .count(&self.db)
            .await?
            > 0;
        if !still_claimed {
            tracing::info!(user_id = %entry.user_id, id = entry.id, kind = entry.kind, "outbox change withdrawn while it waited for the budget; not sent");
            return Ok(None);
        }
        let result = if entry.kind == outbox::KIND_DELETE {
            self.client
                .delete_user(&entry.user_id, Wait::Spent)
                .await
                .map(|()| None)
        } else {
            let body = json!({ "app_metadata": entry.payload });
            self.client
                .patch_user(&entry.user_id, &body, Wait::Spent)
                .await
                .map(Some)
        };
        match result {
            Ok(answered) => {
                outbox::Entity::delete_by_id(entry.id)
                    .exec(&self.db)
                    .await?;
                // Auth0 answered the whole profile as it now is, with its
                // new updated_at: storing it spares the refresh the next
                // token's updated_at claim would otherwise cause.
                if let Some(user) = answered
                    && let Err(e) = self.store(&user, false).await
                {
                    tracing::warn!(user_id = %entry.user_id, error = ?e, "cannot store the profile Auth0 answered");
                }
                tracing::info!(user_id = %entry.user_id, id = entry.id, kind = entry.kind, "outbox change applied at Auth0");
            }
            Err(Auth0Error::BudgetSpent) => {
                // Not sent: hand the entry back as it was.
                release.exec(&self.db).await?;
            }
            Err(e @ (Auth0Error::Refused(_) | Auth0Error::NotFound)) => {
                tracing::error!(user_id = %entry.user_id, id = entry.id, kind = entry.kind, error = %e, "Auth0 refused an outbox change for good; kept in the outbox as failed");
                release
                    .col_expr(outbox::Column::FailedAt, Some(Utc::now()).into())
                    .col_expr(outbox::Column::LastError, Some(e.to_string()).into())
                    .exec(&self.db)
                    .await?;
            }
            Err(e) => {
                let attempts = entry.attempts.saturating_add(1);
                let backoff = Duration::from_secs(1u64 << attempts.clamp(0, 6) as u32)
                    .min(MAX_OUTBOX_BACKOFF);
                tracing::warn!(user_id = %entry.user_id, id = entry.id, kind = entry.kind, attempts, error = %e, "outbox change not applied yet; will retry");
                release
                    .col_expr(outbox::Column::Attempts, attempts.into())
                    .col_expr(outbox::Column::NextAttemptAt, self.db_time_in(backoff))
                    .col_expr(outbox::Column::LastError, Some(e.to_string()).into())
                    .exec(&self.db)
                    .await?;
            }
        }
        Ok(None)
    }
}

/// Records an outbox entry of `kind`, due now, in the caller's transaction.
pub(super) async fn insert_outbox<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
    kind: &str,
    payload: Value,
) -> AppResult<()> {
    let now = Utc::now();
    outbox::Entity::insert(outbox::ActiveModel {
        user_id: Set(user_id.to_owned()),
        payload: Set(payload),
        kind: Set(kind.to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        last_error: Set(None),
        failed_at: Set(None),
        created_at: Set(now),
        ..Default::default()
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// An outbox entry this instance claimed.
#[derive(Debug, FromQueryResult)]
pub(super) struct ClaimedEntry {
    id: i64,
    user_id: String,
    payload: Value,
    attempts: i32,
    kind: String,
}

pub(super) async fn pending_outbox<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
) -> AppResult<Vec<outbox::Model>> {
    Ok(outbox::Entity::find()
        .filter(outbox::Column::UserId.eq(user_id))
        .filter(outbox::Column::Kind.eq(outbox::KIND_APP_METADATA))
        .filter(outbox::Column::FailedAt.is_null())
        .order_by_asc(outbox::Column::Id)
        .all(conn)
        .await?)
}

/// Deletes the user's entries of `kind` (`None`: of every kind), in the
/// caller's transaction: changes for an account that is going or gone.
pub(super) async fn withdraw<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
    kind: Option<&str>,
) -> AppResult<()> {
    let mut delete = outbox::Entity::delete_many().filter(outbox::Column::UserId.eq(user_id));
    if let Some(kind) = kind {
        delete = delete.filter(outbox::Column::Kind.eq(kind));
    }
    delete.exec(conn).await?;
    Ok(())
}
