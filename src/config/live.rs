//! The live-updates stage's settings: the subscription transports'
//! timeouts and limits, and SQLite's poll.

use std::time::Duration;

use clap::Args;

/// Live updates (subscriptions over WebSocket, SSE and multipart HTTP).
#[derive(Debug, Clone, Args)]
pub struct LiveArgs {
    /// Seconds a WebSocket may take to send `connection_init` (else 4408).
    #[arg(long, env = "LIVE_INIT_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600), global = true)]
    pub live_init_timeout_seconds: u64,
    /// Seconds between keep-alive pings on an open live connection.
    #[arg(long, env = "LIVE_KEEPALIVE_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=600), global = true)]
    pub live_keepalive_seconds: u64,
    /// Open live connections (WebSockets, streams) per instance, at most.
    #[arg(long, env = "LIVE_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000), global = true)]
    pub live_max_connections: u64,
    /// Operations running on one live connection, at most.
    #[arg(long, env = "LIVE_MAX_SUBSCRIPTIONS_PER_CONNECTION", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000), global = true)]
    pub live_max_subscriptions_per_connection: u64,
    /// Subscriptions of one user on one instance, at most.
    #[arg(long, env = "LIVE_MAX_SUBSCRIPTIONS_PER_USER", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=100_000), global = true)]
    pub live_max_subscriptions_per_user: u64,
    /// On SQLite, milliseconds between reads of the watched data versions
    /// (PostgreSQL notifies instead).
    #[arg(long, env = "LIVE_POLL_MS", default_value_t = 250, value_parser = clap::value_parser!(u64).range(10..=60_000), global = true)]
    pub live_poll_ms: u64,
}

impl LiveArgs {
    /// The settings the live transports read.
    pub fn settings(&self) -> LiveSettings {
        LiveSettings {
            init_timeout: Duration::from_secs(self.live_init_timeout_seconds),
            keepalive: Duration::from_secs(self.live_keepalive_seconds),
            // The range checks above keep these well inside usize.
            max_connections: self.live_max_connections as usize,
            max_per_connection: self.live_max_subscriptions_per_connection as usize,
            max_per_user: self.live_max_subscriptions_per_user as usize,
            poll: Duration::from_millis(self.live_poll_ms),
        }
    }
}

/// The live-update settings.
#[derive(Clone, Copy, Debug)]
pub struct LiveSettings {
    /// How long a WebSocket may take to send `connection_init`.
    pub init_timeout: Duration,
    /// How often the server pings an idle connection.
    pub keepalive: Duration,
    /// Open live connections of this instance, at most.
    pub max_connections: usize,
    /// Subscriptions of one connection, at most.
    pub max_per_connection: usize,
    /// Subscriptions of one user on this instance, at most.
    pub max_per_user: usize,
    /// How often SQLite's data versions are read for changes.
    pub poll: Duration,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            init_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(15),
            max_connections: 10_000,
            max_per_connection: 100,
            max_per_user: 200,
            poll: Duration::from_millis(250),
        }
    }
}
