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
//!
//! Here the mirror and its refresh policy; `refresh` fetches and stores a
//! profile, `outbox` sends the changes Auth0 has yet to receive,
//! `authority` is the mirror as the profile service sees it, and `events`
//! takes what Auth0 pushes.

mod authority;
mod events;
mod outbox;
mod refresh;

pub use events::{UserChange, parse_event_stream, parse_log_stream};

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, Shared};
use sea_orm::DatabaseConnection;
use serde_json::{Map, Value};
use tokio::sync::{Notify, mpsc};

use super::{
    UserRecord,
    rows::{self, IdentityProfile},
};
use crate::{
    auth::Principal,
    auth0::{Auth0Error, Auth0User, ManagementClient, Wait},
    error::AppResult,
};

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

fn object(value: Option<&Value>) -> Map<String, Value> {
    value
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}
