//! Refreshing a user's row from Auth0: concurrent refreshes of one user in
//! this process share one task, instances share one Management API call
//! through a claim in the database (`refresh_claims`), and a background
//! queue refreshes what a request served as it was.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use futures::FutureExt;
use sea_orm::{
    ConnectionTrait, DbErr,
    sea_query::{Expr, ExprTrait, OnConflict, Query},
};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{Auth0Mirror, lock, outbox::pending_outbox};
use crate::{
    auth0::{Auth0Error, Auth0User, Wait},
    db::{begin_write, retry_races},
    error::AppResult,
    profile::{metadata, rows},
    sql::now_seconds,
};

/// How long an instance's claim on a user's refresh lasts; a crashed
/// instance's claim passes to another after it.
const REFRESH_LEASE: Duration = Duration::from_secs(30);

/// How long a request that must not wait waits for another instance's
/// refresh of the same user before serving what the table has.
const REFRESH_JOIN_WAIT: Duration = Duration::from_secs(2);

/// How often a waiter looks whether another instance's refresh is done.
const REFRESH_POLL: Duration = Duration::from_millis(50);

impl Auth0Mirror {
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
    pub(super) async fn store(&self, user: &Auth0User, create: bool) -> AppResult<()> {
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

    pub(super) async fn run_refresh_queue(
        self: Arc<Self>,
        mut queue: mpsc::UnboundedReceiver<String>,
    ) {
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
}
