//! The change feed: per process, which data-version scopes (a user's id, or
//! the featured scope) moved, whoever moved them.
//!
//! The `data_versions` table stays the truth; the feed only wakes the live
//! queries that watch a scope, which then re-read and compare. So a wake too
//! many costs a re-read, and a lost one is made good by a resync: every
//! watched scope woken at once.
//!
//! - PostgreSQL: the triggers that bump a version also `NOTIFY` (channel
//!   [`migration::DATA_VERSIONS_CHANNEL`], payload the scope, delivered at
//!   commit), and each instance `LISTEN`s on one connection of its own.
//!   When that connection is lost, the listener connects again and then
//!   resyncs, so a change committed while it was away is seen.
//! - SQLite: one process owns the file, and no notification crosses
//!   connections, so the feed reads the versions of the watched scopes (one
//!   statement) every `LIVE_POLL_MS`; that also sees SQL typed by hand.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use sea_orm::{DatabaseBackend, DatabaseConnection, FromQueryResult, Statement, Value};
use tokio::sync::watch;

/// How long the listener waits before connecting again after a failure.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// Scopes of one SQLite poll, at most: bounds the statement's parameters.
const POLL_CHUNK: usize = 500;

/// Wakes per scope. A scope is kept while a live query watches it.
#[derive(Default)]
pub struct ChangeFeed {
    scopes: Mutex<HashMap<String, watch::Sender<u64>>>,
    /// Resyncs so far, for metrics and tests.
    resyncs: std::sync::atomic::AtomicU64,
}

impl ChangeFeed {
    /// A receiver woken after every change of `scope` from now on.
    pub fn watch(&self, scope: &str) -> watch::Receiver<u64> {
        let mut scopes = self.scopes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = scopes.get(scope) {
            return sender.subscribe();
        }
        // Drop the scopes nobody watches any more before adding one: the
        // map stays as large as what is watched.
        if scopes.len() >= 64 && scopes.len().is_power_of_two() {
            scopes.retain(|_, s| s.receiver_count() > 0);
        }
        let (sender, receiver) = watch::channel(0);
        scopes.insert(scope.to_owned(), sender);
        receiver
    }

    /// `scope` changed: wakes whoever watches it.
    pub fn changed(&self, scope: &str) {
        let mut scopes = self.scopes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = scopes.get(scope) {
            if sender.receiver_count() == 0 {
                scopes.remove(scope);
            } else {
                sender.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }

    /// Changes may have been missed: wakes every watcher.
    pub fn resync(&self) {
        self.resyncs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut scopes = self.scopes.lock().unwrap_or_else(|e| e.into_inner());
        scopes.retain(|_, s| s.receiver_count() > 0);
        for sender in scopes.values() {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// How often the feed resynced (the listener came back).
    pub fn resyncs(&self) -> u64 {
        self.resyncs.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn watched(&self) -> Vec<String> {
        let mut scopes = self.scopes.lock().unwrap_or_else(|e| e.into_inner());
        scopes.retain(|_, s| s.receiver_count() > 0);
        scopes.keys().cloned().collect()
    }

    /// Starts what feeds `self` from `db` (at `url`): the PostgreSQL
    /// listener, or the SQLite poll every `poll`. Runs until the runtime
    /// stops.
    pub fn start(self: &Arc<Self>, db: DatabaseConnection, url: &str, poll: Duration) {
        let feed = self.clone();
        let url = url.to_owned();
        match db.get_database_backend() {
            DatabaseBackend::Postgres => tokio::spawn(async move { feed.listen(&url).await }),
            _ => tokio::spawn(async move { feed.poll(db, poll).await }),
        };
    }

    async fn listen(self: Arc<Self>, url: &str) {
        use sea_orm::sqlx::postgres::PgListener;
        let mut first = true;
        loop {
            // A connection of its own, outside the pool: held for good, it
            // would take a pool slot from every request.
            let mut listener = match PgListener::connect(url).await {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!(error = %e, "live updates: cannot connect the listener; retrying");
                    tokio::time::sleep(RECONNECT_DELAY).await;
                    continue;
                }
            };
            if let Err(e) = listener.listen(migration::DATA_VERSIONS_CHANNEL).await {
                tracing::warn!(error = %e, "live updates: LISTEN failed; retrying");
                tokio::time::sleep(RECONNECT_DELAY).await;
                continue;
            }
            if !first {
                tracing::info!("live updates: the listener is back; resyncing every subscription");
                self.resync();
            }
            first = false;
            // `try_recv` answers `None` when the connection is lost (and
            // would reconnect on the next call without saying so): reconnect
            // here instead, so the resync comes after LISTEN is back.
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) => self.changed(notification.payload()),
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "live updates: the listener failed");
                        break;
                    }
                }
            }
            tracing::warn!("live updates: the listener's connection was lost; connecting again");
            // Whatever was committed from now until LISTEN is back is seen
            // by the resync after it.
            tokio::time::sleep(RECONNECT_DELAY).await;
        }
    }

    async fn poll(self: Arc<Self>, db: DatabaseConnection, every: Duration) {
        #[derive(FromQueryResult)]
        struct Row {
            scope: String,
            version: i64,
        }
        let mut seen: HashMap<String, i64> = HashMap::new();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let watched = self.watched();
            seen.retain(|scope, _| watched.contains(scope));
            for chunk in watched.chunks(POLL_CHUNK) {
                let marks = vec!["?"; chunk.len()].join(", ");
                let statement = Statement::from_sql_and_values(
                    DatabaseBackend::Sqlite,
                    format!("SELECT scope, version FROM data_versions WHERE scope IN ({marks})"),
                    chunk.iter().map(|s| Value::from(s.as_str())),
                );
                let rows = match Row::find_by_statement(statement).all(&db).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::warn!(error = %e, "live updates: cannot read data versions");
                        continue;
                    }
                };
                for row in rows {
                    // A scope seen for the first time wakes its watchers
                    // too: it may have moved between their first answer and
                    // this read. An unchanged answer is not sent again.
                    if seen.insert(row.scope.clone(), row.version) != Some(row.version) {
                        self.changed(&row.scope);
                    }
                }
            }
        }
    }
}
