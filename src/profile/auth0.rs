//! The auth0 identity mode: the users table as a cache of Auth0's profiles.
//!
//! Reads come from the table, so a warm request costs no Management API
//! call. A row is refreshed from Auth0 when the user is first seen, when a
//! token was issued after the row's last sync (a new login), and in the
//! background once older than the TTL. Concurrent refreshes of one user share
//! one call. When the rate budget is spent, a first-seen user gets a row from
//! the token's claims, marked not yet synced (`synced_at` null), and a
//! background worker syncs it as soon as the budget allows.
//!
//! Writes: user_metadata goes to Auth0 first and reaches the table only once
//! Auth0 accepted it. app_metadata (roles, plan) changes in the table at once
//! and reaches Auth0 through the durable outbox.

mod events;

pub use events::{UserChange, parse_event_stream, parse_log_stream};

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter, QueryOrder,
    sea_query::{Expr, ExprTrait, LockBehavior, LockType, OnConflict, Order, Query},
};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, mpsc};

use super::{
    AcceptedMetadata, Authority, UserRecord, metadata,
    rows::{self, IdentityProfile},
};
use crate::{
    auth::Principal,
    auth0::{Auth0Error, Auth0User, ManagementClient, Wait},
    db::{begin_write, retry_races},
    entity::outbox,
    error::{AppError, AppResult},
    sql::now_seconds,
};

/// Longest wait between two attempts of one outbox entry.
const MAX_OUTBOX_BACKOFF: Duration = Duration::from_secs(60);

/// How often the outbox worker looks for due entries without being woken
/// (entries committed through another instance wake only that instance).
const OUTBOX_POLL: Duration = Duration::from_secs(2);

/// How long an instance's claim on a user's refresh lasts; a crashed
/// instance's claim passes to another after it.
const REFRESH_LEASE: Duration = Duration::from_secs(30);

/// How long a request that must not wait waits for another instance's
/// refresh of the same user before serving what the table has.
const REFRESH_JOIN_WAIT: Duration = Duration::from_secs(2);

/// How often a waiter looks whether another instance's refresh is done.
const REFRESH_POLL: Duration = Duration::from_millis(50);

type SharedRefresh = Shared<BoxFuture<'static, Result<(), Auth0Error>>>;

/// The Auth0 side of the profile service.
pub struct Auth0Mirror {
    /// This mirror, for the tasks it spawns from a borrowed `&self`.
    this: Weak<Auth0Mirror>,
    db: DatabaseConnection,
    client: Arc<ManagementClient>,
    ttl: Duration,
    inflight: Mutex<HashMap<String, (Wait, SharedRefresh)>>,
    /// Users waiting in the refresh queue, with the time a sync must be
    /// newer than (`None`: older than the TTL).
    queued: Mutex<HashMap<String, Option<DateTime<Utc>>>>,
    /// How long a deleted account's tombstone is kept.
    tombstone_ttl: Duration,
    queue: mpsc::UnboundedSender<String>,
    outbox_wake: Notify,
    /// This process's name in the outbox's claims, for the operator.
    instance: String,
    outbox_lease: Duration,
}

/// What the refresh policy makes of a synced row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowState {
    /// Served as it is.
    AsIs,
    /// The profile changed at Auth0 (or may have): refresh now.
    Changed,
    /// Older than the TTL: served, and refreshed behind it.
    Stale,
}

/// The background work of the mirror, started by [`Auth0Mirror::spawn_workers`].
pub struct Workers {
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Workers {
    /// Stops the workers at their next await point, as a crash would.
    pub fn abort(&self) {
        for handle in &self.handles {
            handle.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Auth0Mirror {
    /// A mirror over `db` fed by `client`; profiles older than `ttl` are refreshed.
    pub fn new(
        db: DatabaseConnection,
        client: Arc<ManagementClient>,
        ttl: Duration,
        outbox_lease: Duration,
        tombstone_ttl: Duration,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<String>) {
        let (queue, rx) = mpsc::unbounded_channel();
        let mirror = Arc::new_cyclic(|this| Self {
            this: this.clone(),
            db,
            client,
            ttl,
            inflight: Mutex::new(HashMap::new()),
            queued: Mutex::new(HashMap::new()),
            tombstone_ttl,
            queue,
            outbox_wake: Notify::new(),
            instance: format!(
                "{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            outbox_lease,
        });
        (mirror, rx)
    }

    /// Starts the refresh queue and the outbox worker. Pending outbox entries
    /// left by an earlier run are picked up at once.
    pub fn spawn_workers(self: &Arc<Self>, queue: mpsc::UnboundedReceiver<String>) -> Workers {
        Workers {
            handles: vec![
                tokio::spawn(self.clone().run_refresh_queue(queue)),
                tokio::spawn(self.clone().run_outbox()),
            ],
        }
    }

    fn me(&self) -> Arc<Self> {
        self.this
            .upgrade()
            .expect("the mirror is alive while it is borrowed")
    }

    /// The Management API client.
    pub fn client(&self) -> &ManagementClient {
        &self.client
    }

    /// The caller's record under the refresh policy, from `row`, their row
    /// as just read (`None`: not in the database yet).
    pub async fn user_for(
        self: &Arc<Self>,
        principal: &Principal,
        row: Option<UserRecord>,
    ) -> AppResult<UserRecord> {
        let user_id = principal.user_id.as_str();
        let Some(row) = row else {
            return self.first_seen(principal).await;
        };
        let Some(synced_at) = row.synced_at else {
            self.enqueue(user_id);
            return Ok(row);
        };
        match self.judge(principal, synced_at, row.auth0_updated_at) {
            RowState::Changed => {
                let issued = principal
                    .issued_at
                    .and_then(|iat| chrono::DateTime::from_timestamp(iat, 0))
                    .unwrap_or(synced_at);
                match self.refresh(user_id, Wait::No, issued, false).await {
                    Ok(()) => Ok(rows::find(&self.db, user_id).await?.unwrap_or(row)),
                    Err(_) => {
                        self.enqueue(user_id);
                        Ok(row)
                    }
                }
            }
            RowState::Stale => {
                // Stale while revalidate: serve the row, refresh behind it.
                self.enqueue(user_id);
                Ok(row)
            }
            RowState::AsIs => Ok(row),
        }
    }

    /// What the refresh policy makes of a synced row for this caller.
    fn judge(
        &self,
        principal: &Principal,
        synced_at: DateTime<Utc>,
        auth0_updated_at: Option<DateTime<Utc>>,
    ) -> RowState {
        // The post-login Action's claim says when the profile last changed
        // at Auth0: refresh only when that is newer than what is stored.
        // Without it, a token issued after the last sync may carry a change.
        let changed = match principal.profile_updated_at {
            Some(claimed) => auth0_updated_at.is_none_or(|stored| claimed > stored),
            None => principal
                .issued_at
                .is_some_and(|iat| iat > synced_at.timestamp()),
        };
        if changed {
            return RowState::Changed;
        }
        let age = (Utc::now() - synced_at).to_std().unwrap_or_default();
        if age > self.ttl {
            RowState::Stale
        } else {
            RowState::AsIs
        }
    }

    /// Whether [`Self::user_for`] would serve the caller's row, synced at
    /// `synced_at` (`None`: not synced, or no row) with Auth0's
    /// `auth0_updated_at`, as it is: no refresh now and none queued. Only
    /// then may a cached answer stand in for running the query, so that a
    /// cache hit never skips a refresh the policy asks for.
    pub fn serves_row_as_is(
        &self,
        principal: &Principal,
        synced_at: Option<DateTime<Utc>>,
        auth0_updated_at: Option<DateTime<Utc>>,
    ) -> bool {
        synced_at.is_some_and(|synced_at| {
            self.judge(principal, synced_at, auth0_updated_at) == RowState::AsIs
        })
    }

    async fn first_seen(self: &Arc<Self>, principal: &Principal) -> AppResult<UserRecord> {
        let user_id = principal.user_id.as_str();
        let synced = match self
            .refresh(user_id, Wait::No, chrono::DateTime::<Utc>::MIN_UTC, true)
            .await
        {
            Ok(()) => {
                if let Some(row) = rows::find(&self.db, user_id).await? {
                    return Ok(row);
                }
                None
            }
            // Auth0 does not know the user (a token of a deleted user, say):
            // the claims are all there is, and asking again will not help.
            Err(Auth0Error::NotFound) => Some(Utc::now()),
            Err(e) => {
                tracing::info!(user_id, reason = %e, "serving a new user from the token's claims until the budget allows a sync");
                self.enqueue(user_id);
                None
            }
        };
        rows::insert_from_claims(&self.db, principal, synced).await
    }

    /// Asks the background worker to refresh `user_id` (once, however often asked).
    pub fn enqueue(&self, user_id: &str) {
        self.enqueue_after(user_id, None);
    }

    /// Asks the background worker to refresh `user_id` unless it was synced
    /// after `changed_at` (`None`: unless synced within the TTL), once
    /// however often asked.
    pub fn enqueue_after(&self, user_id: &str, changed_at: Option<DateTime<Utc>>) {
        let mut queued = lock(&self.queued);
        match queued.get_mut(user_id) {
            Some(waiting) => {
                if changed_at > *waiting {
                    *waiting = changed_at;
                }
            }
            None => {
                if self.queue.send(user_id.to_owned()).is_ok() {
                    queued.insert(user_id.to_owned(), changed_at);
                }
            }
        }
    }

    /// Refreshes one user's row from Auth0, unless it was synced at or after
    /// `fresh_after` by the time this instance may refresh it; `create`: also
    /// when the row is missing (a first-seen user), otherwise a user deleted
    /// meanwhile stays deleted. Concurrent calls in this process share one
    /// task, and instances share one request through a claim in the database.
    pub async fn refresh(
        self: &Arc<Self>,
        user_id: &str,
        wait: Wait,
        fresh_after: DateTime<Utc>,
        create: bool,
    ) -> Result<(), Auth0Error> {
        let shared = {
            let mut inflight = lock(&self.inflight);
            match inflight.get(user_id) {
                // A caller that must not wait does not join a refresh that may.
                Some((Wait::Yes, _)) if wait == Wait::No => return Err(Auth0Error::BudgetSpent),
                Some((_, shared)) => shared.clone(),
                None => {
                    let mirror = self.clone();
                    let id = user_id.to_owned();
                    // Spawned, so the refresh completes even if the request is dropped.
                    let task = tokio::spawn(async move {
                        let result = mirror.claimed_refresh(&id, wait, fresh_after, create).await;
                        lock(&mirror.inflight).remove(&id);
                        result
                    });
                    let shared = async move {
                        task.await.unwrap_or_else(|_| {
                            Err(Auth0Error::Unavailable("the refresh task failed".into()))
                        })
                    }
                    .boxed()
                    .shared();
                    inflight.insert(user_id.to_owned(), (wait, shared.clone()));
                    shared
                }
            }
        };
        shared.await
    }

    /// The refresh under this instance's claim on the user, or the wait for
    /// another instance's.
    async fn claimed_refresh(
        &self,
        user_id: &str,
        wait: Wait,
        fresh_after: DateTime<Utc>,
        create: bool,
    ) -> Result<(), Auth0Error> {
        let joined_by = Instant::now()
            + match wait {
                Wait::No => REFRESH_JOIN_WAIT,
                _ => REFRESH_LEASE,
            };
        loop {
            match self.claim_refresh(user_id).await {
                Ok(true) => break,
                Ok(false) => {
                    if Instant::now() >= joined_by {
                        return Err(Auth0Error::BudgetSpent);
                    }
                    tokio::time::sleep(REFRESH_POLL).await;
                }
                Err(e) => {
                    tracing::warn!(user_id, error = %e, "cannot claim a refresh");
                    return Err(Auth0Error::Unavailable(
                        "the database is unavailable".into(),
                    ));
                }
            }
        }
        let result = match rows::synced_at(&self.db, user_id).await {
            Ok(Some(synced)) if synced >= fresh_after => Ok(()),
            _ => {
                // The claim's lease must outlast the call: wait for the
                // budget for part of it only, and send once.
                let wait = match wait {
                    Wait::Yes => Wait::Once(Instant::now() + REFRESH_LEASE / 2),
                    other => other,
                };
                self.fetch_and_store(user_id, wait, create).await
            }
        };
        self.release_refresh(user_id).await;
        result
    }

    /// Takes the user's refresh claim unless another instance holds it.
    async fn claim_refresh(&self, user_id: &str) -> Result<bool, DbErr> {
        let backend = self.db.get_database_backend();
        let now = now_seconds(backend);
        let claim = Query::insert()
            .into_table("refresh_claims")
            .columns(["user_id", "claimed_until"])
            .values_panic([user_id.into(), now.clone().add(REFRESH_LEASE.as_secs_f64())])
            .on_conflict(
                OnConflict::column("user_id")
                    .update_column("claimed_until")
                    .action_and_where(Expr::col(("refresh_claims", "claimed_until")).lt(now))
                    .to_owned(),
            )
            .to_owned();
        let result = self.db.execute_raw(backend.build(&claim)).await?;
        Ok(result.rows_affected() == 1)
    }

    async fn release_refresh(&self, user_id: &str) {
        let backend = self.db.get_database_backend();
        let released = self
            .db
            .execute_raw(
                backend.build(
                    Query::delete()
                        .from_table("refresh_claims")
                        .and_where(Expr::col("user_id").eq(user_id)),
                ),
            )
            .await;
        if let Err(e) = released {
            // The lease ends the claim anyway.
            tracing::warn!(user_id, error = %e, "cannot release a refresh claim");
        }
    }

    async fn fetch_and_store(
        &self,
        user_id: &str,
        wait: Wait,
        create: bool,
    ) -> Result<(), Auth0Error> {
        let fetched = self.client.get_user(user_id, wait).await;
        let stored = match fetched {
            Ok(user) => self.store(&user, create).await,
            Err(Auth0Error::NotFound) => {
                tracing::warn!(
                    user_id,
                    "Auth0 does not know this user; keeping the row from the token"
                );
                if let Err(e) = rows::mark_synced(&self.db, user_id).await {
                    tracing::error!(user_id, error = ?e, "cannot mark the row as synced");
                }
                return Err(Auth0Error::NotFound);
            }
            Err(e) => return Err(e),
        };
        stored.map_err(|e| {
            let message = format!("{e:?}");
            tracing::error!(user_id, error = message, "cannot store a refreshed profile");
            Auth0Error::Unavailable("cannot store the profile".into())
        })
    }

    /// Writes Auth0's view of a user into the mirror, with the app_metadata
    /// changes still waiting in the outbox applied on top, so a refresh never
    /// undoes a change Auth0 has not received yet.
    async fn store(&self, user: &Auth0User, create: bool) -> AppResult<()> {
        retry_races(|| self.try_store(user, create)).await
    }

    async fn try_store(&self, user: &Auth0User, create: bool) -> AppResult<()> {
        let txn = begin_write(&self.db).await?;
        rows::lock_user(&txn, &user.user_id).await?;
        let mut profile = user.profile();
        for pending in pending_outbox(&txn, &user.user_id).await? {
            if let Value::Object(patch) = pending.payload {
                metadata::merge(&mut profile.app_metadata, &patch);
            }
        }
        rows::store_profile(&txn, &profile, create).await?;
        txn.commit().await?;
        Ok(())
    }

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

    /// Records an app_metadata patch for Auth0, in the caller's transaction.
    async fn enqueue_app_metadata<C: ConnectionTrait>(
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

    async fn run_refresh_queue(self: Arc<Self>, mut queue: mpsc::UnboundedReceiver<String>) {
        while let Some(user_id) = queue.recv().await {
            let changed_at = lock(&self.queued).remove(&user_id).flatten();
            // A row synced within the TTL (or after the change Auth0 told
            // of) needs nothing: another instance refreshed it since it was
            // queued here.
            let fresh_after = changed_at.unwrap_or_else(|| {
                Utc::now() - chrono::Duration::from_std(self.ttl).unwrap_or_default()
            });
            match self.refresh(&user_id, Wait::Yes, fresh_after, false).await {
                Ok(()) | Err(Auth0Error::NotFound) => {}
                Err(e) => {
                    tracing::warn!(user_id, error = %e, "background refresh failed; will retry");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    self.enqueue_after(&user_id, changed_at);
                }
            }
        }
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
    async fn run_outbox(self: Arc<Self>) {
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
        outbox::Entity::delete_many()
            .filter(outbox::Column::UserId.eq(user_id))
            .filter(outbox::Column::Kind.eq(outbox::KIND_APP_METADATA))
            .exec(txn)
            .await?;
        insert_outbox(txn, user_id, outbox::KIND_DELETE, Value::Object(Map::new())).await
    }

    fn committed(&self) {
        self.wake_outbox();
    }
}

impl Auth0User {
    /// The profile to store in the mirror.
    fn profile(&self) -> IdentityProfile {
        IdentityProfile {
            user_id: self.user_id.clone(),
            email: self.email.clone(),
            name: self.name.clone(),
            picture: self.picture.clone(),
            user_metadata: object(self.user_metadata.as_ref()),
            app_metadata: object(self.app_metadata.as_ref()),
            updated_at: self.updated_at(),
        }
    }
}

/// Records an outbox entry of `kind`, due now, in the caller's transaction.
async fn insert_outbox<C: ConnectionTrait>(
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
struct ClaimedEntry {
    id: i64,
    user_id: String,
    payload: Value,
    attempts: i32,
    kind: String,
}

async fn pending_outbox<C: ConnectionTrait>(
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

fn object(value: Option<&Value>) -> Map<String, Value> {
    value
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}
