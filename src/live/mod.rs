//! Live updates: the change feed (which data versions moved, on every
//! instance), live queries over it, and the per-instance bookkeeping the
//! transports share (limits, shutdown).

mod feed;
mod query;
mod shared;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

pub use feed::ChangeFeed;
pub use query::{LiveQuery, execute_once};
use tokio::sync::watch;

/// From the change's notification (or poll) reaching this instance to the
/// new answer handed to the transport, in seconds.
pub const WAKE_TO_ANSWER: &str = "graphql_live_wake_to_answer_seconds";

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "graphql_live_connections",
        "Open live connections, by transport (ws, ws_legacy, sse, multipart)."
    );
    describe_gauge!(
        "graphql_live_subscriptions",
        "Running subscriptions, by transport."
    );
    describe_counter!(
        "graphql_live_events_total",
        "Live answers sent, by transport."
    );
    describe_counter!(
        "graphql_live_answers_skipped_total",
        "Live answers not sent because they equal the last one sent."
    );
    describe_counter!(
        "graphql_live_subscriptions_ended_total",
        "Subscriptions ended, by reason."
    );
    describe_histogram!(
        WAKE_TO_ANSWER,
        metrics::Unit::Seconds,
        "From a change reaching this instance to the new live answer."
    );
}

pub use crate::config::LiveSettings;

/// This instance's live connections and subscriptions.
pub struct Live {
    pub feed: Arc<ChangeFeed>,
    /// Runs shared by live queries of one key.
    pub runs: shared::Runs,
    pub settings: LiveSettings,
    connections: Mutex<usize>,
    per_user: Mutex<HashMap<String, usize>>,
    closing: watch::Sender<bool>,
}

/// A refused connection or subscription: over a limit.
#[derive(Debug)]
pub struct OverLimit(pub String);

/// An open connection, counted until dropped.
pub struct ConnectionSlot {
    live: Arc<Live>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        *self
            .live
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner()) -= 1;
    }
}

/// A user's subscription, counted until dropped.
pub struct SubscriptionSlot {
    live: Arc<Live>,
    user: String,
}

impl Drop for SubscriptionSlot {
    fn drop(&mut self) {
        let mut users = self.live.per_user.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = users.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                users.remove(&self.user);
            }
        }
    }
}

impl Live {
    pub fn new(settings: LiveSettings) -> Arc<Self> {
        describe();
        Arc::new(Self {
            feed: Arc::new(ChangeFeed::default()),
            runs: shared::Runs::default(),
            settings,
            connections: Mutex::new(0),
            per_user: Mutex::new(HashMap::new()),
            closing: watch::channel(false).0,
        })
    }

    /// A slot for a new connection, or why not.
    pub fn open_connection(self: &Arc<Self>) -> Result<ConnectionSlot, OverLimit> {
        let mut open = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        if *open >= self.settings.max_connections {
            return Err(OverLimit(format!(
                "this instance has {} live connections open, its limit (LIVE_MAX_CONNECTIONS); \
                 try again shortly",
                *open
            )));
        }
        *open += 1;
        Ok(ConnectionSlot { live: self.clone() })
    }

    /// A slot for one more subscription of `user`, or why not.
    pub fn open_subscription(self: &Arc<Self>, user: &str) -> Result<SubscriptionSlot, OverLimit> {
        let mut users = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        let n = users.entry(user.to_owned()).or_default();
        if *n >= self.settings.max_per_user {
            return Err(OverLimit(format!(
                "this user has {} subscriptions open, the limit \
                 (LIVE_MAX_SUBSCRIPTIONS_PER_USER): complete one first",
                *n
            )));
        }
        *n += 1;
        Ok(SubscriptionSlot {
            live: self.clone(),
            user: user.to_owned(),
        })
    }

    /// Completes when the server begins to shut down.
    pub async fn closing(&self) {
        let mut closing = self.closing.subscribe();
        let _ = closing.wait_for(|c| *c).await;
    }

    /// Completes once no live connection is open.
    pub async fn drained(&self) {
        while *self.connections.lock().unwrap_or_else(|e| e.into_inner()) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The server is shutting down: live connections close so their clients
    /// reconnect to another instance.
    pub fn close_all(&self) {
        self.closing.send_replace(true);
    }
}
