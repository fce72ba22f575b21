//! One `Config`, from flags and environment, validated once at start-up.
//!
//! Every setting is a flag and an environment variable at once (`--listen-addr`
//! / `LISTEN_ADDR`). Values are parsed into types here, so a bad value stops the
//! process with one line naming the setting instead of failing on a request.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

mod live;
#[cfg(test)]
mod readme;
mod stages;

pub use self::live::{LiveArgs, LiveSettings};
pub use self::stages::{
    CompiledSettings, CsrfPrevention, CsrfSettings, DEFAULT_REQUIRED_HEADERS, DocumentSettings,
    GuardLimits, GuardSettings, LimitSettings, OperationSettings, QueryLimits,
    ResponseCacheSettings, TrustedSettings,
};

/// Where the profile (user_metadata, app_metadata) is authoritative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum IdentityMode {
    /// The `users` table is the authority and the gateway issues its own tokens.
    Local,
    /// An Auth0 tenant is the authority; the `users` table mirrors it.
    Auth0,
}

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event, with the spans it happened in.
    #[default]
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}

/// The command line: global settings plus an optional subcommand (`serve` by default).
#[derive(Debug, Parser)]
#[command(
    name = "music-gateway",
    version,
    about = "GraphQL gateway joining Auth0 profiles with a SQL music database"
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve GraphQL over HTTP (the default).
    Serve,
    /// Print an access token signed by the local issuer (local identity mode).
    Token(TokenArgs),
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Run the database migrations on DATABASE_URL and exit.
    Migrate,
    /// Load a demo user with songs and playlists, and print a token for it.
    Demo,
}

/// Arguments of `music-gateway token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user id (`sub` claim), e.g. `auth0|alice`.
    #[arg(long)]
    pub sub: String,
    /// Lifetime of the token in seconds.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub ttl: u64,
    /// Space-separated scopes, e.g. "write:app_metadata".
    #[arg(long)]
    pub scope: Option<String>,
    /// The email claim copied into a new user's profile.
    #[arg(long)]
    pub email: Option<String>,
    /// The name claim copied into a new user's profile.
    #[arg(long)]
    pub name: Option<String>,
}

/// Global settings, shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Directory for the SQLite database and the local signing key.
    #[arg(long, env = "DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    /// Database URL: `sqlite://path?mode=rwc` or `postgres://user:pass@host/db`.
    /// Defaults to a SQLite file in DATA_DIR.
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Address and port to listen on.
    #[arg(
        long,
        env = "LISTEN_ADDR",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen_addr: SocketAddr,
    /// Who is authoritative for profiles: `local` or `auth0`.
    #[arg(
        long,
        env = "IDENTITY_MODE",
        value_enum,
        default_value = "local",
        global = true
    )]
    pub identity_mode: IdentityMode,
    /// The `iss` of tokens minted and accepted in local mode.
    #[arg(
        long,
        env = "TOKEN_ISSUER",
        default_value = "music-gateway-local",
        global = true
    )]
    pub token_issuer: String,
    /// The `aud` that access tokens must carry in local mode.
    #[arg(
        long,
        env = "TOKEN_AUDIENCE",
        default_value = "music-gateway",
        global = true
    )]
    pub token_audience: String,
    /// Shared secret that enables legacy HS256 tokens (at least 32 bytes). Off when unset.
    #[arg(long, env = "JWT_HS256_SECRET", hide_env_values = true, value_parser = parse_secret, global = true)]
    pub jwt_hs256_secret: Option<Secret>,
    /// Total plays at or above which a user holds the `playlist_editor` role.
    #[arg(long, env = "PLAYLIST_EDITOR_THRESHOLD", default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..), global = true)]
    pub playlist_editor_threshold: i64,
    /// Page size of a list when `first` is not given.
    #[arg(long, env = "DEFAULT_PAGE_SIZE", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub default_page_size: u32,
    /// The largest `first` a client may ask for.
    #[arg(long, env = "MAX_PAGE_SIZE", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub max_page_size: u32,
    /// Comma-separated origins allowed to call the API from a browser, or `*`.
    /// Empty: same-origin only.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", default_value = "", global = true)]
    pub cors_allowed_origins: String,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 64 * 1024, value_parser = clap::value_parser!(u64).range(1024..=16 * 1024 * 1024), global = true)]
    pub max_body_bytes: u64,
    /// Auth0 tenant: a host such as `example.eu.auth0.com`, or a full
    /// `http(s)://host:port` URL (a local Auth0 for tests). Auth0 mode only.
    #[arg(long, env = "AUTH0_DOMAIN", global = true)]
    pub auth0_domain: Option<String>,
    /// The identifier of the Auth0 API that access tokens are issued for.
    #[arg(long, env = "AUTH0_AUDIENCE", global = true)]
    pub auth0_audience: Option<String>,
    /// Client id of the machine-to-machine application for the Management API.
    #[arg(long, env = "AUTH0_CLIENT_ID", global = true)]
    pub auth0_client_id: Option<String>,
    /// Its client secret. Never logged.
    #[arg(
        long,
        env = "AUTH0_CLIENT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub auth0_client_secret: Option<String>,
    /// The namespaced access-token claim holding the user's roles (set by a post-login Action).
    #[arg(
        long,
        env = "AUTH0_ROLES_CLAIM",
        default_value = "https://music-gateway.example/roles",
        global = true
    )]
    pub auth0_roles_claim: String,
    /// The namespaced access-token claim holding the profile's `updated_at`
    /// (set by the post-login Action): a token whose time is not newer than
    /// the stored profile's costs no Management API call.
    #[arg(
        long,
        env = "AUTH0_UPDATED_AT_CLAIM",
        default_value = "https://music-gateway.example/updated_at",
        global = true
    )]
    pub auth0_updated_at_claim: String,
    /// Bearer token Auth0 Event Streams sends to `POST /auth0/events`
    /// (at least 16 characters). The route is off without it.
    #[arg(
        long,
        env = "AUTH0_EVENTS_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub auth0_events_token: Option<String>,
    /// Bearer token an Auth0 Log Streams custom webhook sends to
    /// `POST /auth0/log-stream` (at least 16 characters). The route is off
    /// without it.
    #[arg(
        long,
        env = "AUTH0_LOG_STREAM_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub auth0_log_stream_token: Option<String>,
    /// Management API requests a second the gateway allows itself (Auth0's free tier: 2).
    #[arg(long, env = "AUTH0_MGMT_RATE", default_value_t = 2.0, global = true)]
    pub auth0_mgmt_rate: f64,
    /// Management API requests the gateway may send at once after a quiet spell.
    #[arg(long, env = "AUTH0_MGMT_BURST", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub auth0_mgmt_burst: u32,
    /// Age after which a profile is refreshed from Auth0 in the background.
    #[arg(long, env = "PROFILE_TTL_SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub profile_ttl_seconds: u64,
    /// Timeout of one Management API call, in milliseconds.
    #[arg(long, env = "AUTH0_TIMEOUT_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(100..=60_000), global = true)]
    pub auth0_timeout_ms: u64,
    /// Size of the database connection pool.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub db_max_connections: u32,
    /// Longest wait, in milliseconds, for a database connection (and for the
    /// readiness check's ping): past it, a request answers
    /// UPSTREAM_UNAVAILABLE and /readyz 503, instead of hanging while the
    /// database is away.
    #[arg(long, env = "DB_TIMEOUT_MS", default_value_t = 3000, value_parser = clap::value_parser!(u64).range(100..=60_000), global = true)]
    pub db_timeout_ms: u64,
    /// SQLite only: the page cache of each pooled connection, in KiB. The
    /// operating system caches the file as well, so a small one costs little.
    #[arg(long, env = "SQLITE_CACHE_KIB", default_value_t = crate::db::DEFAULT_SQLITE_CACHE_KIB, value_parser = clap::value_parser!(u32).range(64..=1_048_576), global = true)]
    pub sqlite_cache_kib: u32,
    /// SQLite only: longest wait, in milliseconds, of a write for the write
    /// lock another connection holds (SQLite has one writer at a time);
    /// past it the write answers CONFLICT, with nothing changed.
    #[arg(long, env = "SQLITE_BUSY_TIMEOUT_MS", default_value_t = crate::db::DEFAULT_SQLITE_BUSY_TIMEOUT.as_millis() as u64, value_parser = clap::value_parser!(u64).range(1..=60_000), global = true)]
    pub sqlite_busy_timeout_ms: u64,
    /// Seconds an instance's claim on an outbox entry lasts (auth0 mode). An
    /// entry claimed by an instance that crashed is applied by another once
    /// its claim ends.
    #[arg(long, env = "OUTBOX_LEASE_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(2..=3600), global = true)]
    pub outbox_lease_seconds: u64,
    /// Seconds a deleted account's tombstone is kept: tokens issued before
    /// the deletion are refused until then. At least the longest access-token
    /// lifetime (Auth0's default: 86400).
    #[arg(long, env = "TOMBSTONE_TTL_SECONDS", default_value_t = 90_000, value_parser = clap::value_parser!(u64).range(60..), global = true)]
    pub tombstone_ttl_seconds: u64,
    /// Seconds requests in flight get to finish after SIGTERM or SIGINT. The
    /// process exits at the latest a few seconds later, whatever is running.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=3600), global = true)]
    pub shutdown_grace_seconds: u64,
    /// Seconds a request may take, from its headers to its answer: past them
    /// it is answered REQUEST_TIMEOUT and its work is stopped, so a slow
    /// client, a stuck database or a costly document cannot hold the
    /// gateway's resources for longer.
    #[arg(long, env = "REQUEST_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub request_timeout_seconds: u64,
    /// Serve GraphiQL to browsers at GET /graphql (`true` or `false`).
    #[arg(long, env = "GRAPHIQL", default_value_t = true, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), global = true)]
    pub graphiql: bool,
    /// In the local identity mode, pre-fill GraphiQL's headers with a token
    /// for the demo user and load the demo data (`true` or `false`). Unset:
    /// only when LISTEN_ADDR is a loopback address, since anyone who can
    /// open the page can act as the demo user.
    #[arg(long, env = "GRAPHIQL_DEMO_TOKEN", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), global = true)]
    pub graphiql_demo_token: Option<bool>,
    #[command(flatten)]
    pub documents: DocumentSettings,
    #[command(flatten)]
    pub csrf: CsrfSettings,
    #[command(flatten)]
    pub limits: LimitSettings,
    #[command(flatten)]
    pub guard: GuardSettings,
    #[command(flatten)]
    pub operation: OperationSettings,
    #[command(flatten)]
    pub response_cache: ResponseCacheSettings,
    #[command(flatten)]
    pub compiled: CompiledSettings,
    #[command(flatten)]
    pub live: LiveArgs,
    /// Log lines as `text` or `json` (one object a line, for a log collector).
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

/// A setting that parsed but does not make sense with the others.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting}: {reason}")]
pub struct ConfigError {
    /// The environment variable naming the setting.
    pub setting: &'static str,
    /// What is wrong, in words an operator can act on.
    pub reason: String,
}

impl ConfigError {
    /// `setting` is wrong for `reason`.
    pub fn new(setting: &'static str, reason: impl Into<String>) -> Self {
        Self {
            setting,
            reason: reason.into(),
        }
    }
}

/// The validated configuration the application is built from.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub listen_addr: SocketAddr,
    pub identity_mode: IdentityMode,
    pub token_issuer: String,
    pub token_audience: String,
    pub jwt_hs256_secret: Option<Secret>,
    pub playlist_editor_threshold: i64,
    pub default_page_size: u32,
    pub max_page_size: u32,
    pub cors: CorsOrigins,
    pub max_body_bytes: usize,
    pub db_max_connections: u32,
    pub db_timeout: std::time::Duration,
    /// SQLite's page cache per connection, in KiB.
    pub sqlite_cache_kib: u32,
    /// How long a SQLite write waits for the write lock.
    pub sqlite_busy_timeout: std::time::Duration,
    pub shutdown_grace: std::time::Duration,
    /// How long a request may take before it is answered REQUEST_TIMEOUT.
    pub request_timeout: std::time::Duration,
    /// How long a deleted account's tombstone is kept.
    pub tombstone_ttl: std::time::Duration,
    /// Whether GET /graphql serves GraphiQL.
    pub graphiql: bool,
    /// Whether GraphiQL comes with the demo user's token (local mode only).
    pub graphiql_demo_token: bool,
    /// Memory for cached GraphQL answers; `0`: no response cache, no ETags.
    pub response_cache_max_bytes: u64,
    /// Whether `me` queries run as compiled plans (`COMPILED_QUERIES`).
    pub compiled_queries: bool,
    pub log_format: LogFormat,
    /// The Auth0 tenant, in the auth0 identity mode.
    pub auth0: Option<Auth0Config>,
    /// Bytes of the APQ store; `None`: APQ is off.
    pub apq_cache_bytes: Option<usize>,
    /// The manifest, when only trusted documents may run (loaded by the
    /// document stage at start-up).
    pub trusted_documents: Option<TrustedSettings>,
    /// CSRF prevention; `None`: off.
    pub csrf: Option<CsrfPrevention>,
    /// Limits on aliases, root fields and cost.
    pub query_limits: QueryLimits,
    /// Bounds on a document's shape, checked before it is walked.
    pub guard_limits: GuardLimits,
    /// Whether introspection queries are answered.
    pub introspection: bool,
    /// Live updates: timeouts, limits, SQLite's poll.
    pub live: LiveSettings,
}

/// A secret that never prints.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Secrets on the command line and in the environment, kept out of `Debug`.
fn parse_secret(value: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(value))
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Settings of the auth0 identity mode.
#[derive(Debug, Clone)]
pub struct Auth0Config {
    /// `https://tenant.example.auth0.com`, without a trailing slash.
    pub base_url: String,
    /// The audience of user access tokens (the gateway's API identifier).
    pub audience: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub roles_claim: String,
    /// The claim holding the profile's `updated_at`.
    pub updated_at_claim: String,
    /// The bearer token of Event Streams deliveries; `None`: the route is off.
    pub events_token: Option<Secret>,
    /// The bearer token of Log Streams deliveries; `None`: the route is off.
    pub log_stream_token: Option<Secret>,
    pub mgmt_rate: f64,
    pub mgmt_burst: u32,
    pub profile_ttl: std::time::Duration,
    pub timeout: std::time::Duration,
    /// How long an instance's claim on an outbox entry lasts.
    pub outbox_lease: std::time::Duration,
}

impl Auth0Config {
    /// The issuer of the tenant's tokens: Auth0's ends with a slash.
    pub fn issuer(&self) -> String {
        format!("{}/", self.base_url)
    }

    /// The JWKS of the tenant.
    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.base_url)
    }
}

/// Which browser origins may call the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No cross-origin access.
    None,
    /// Any origin (`*`); credentials are bearer tokens, not cookies, so this is safe to offer.
    Any,
    /// Exactly these origins.
    List(Vec<String>),
}

impl Settings {
    /// Checks the settings together and resolves defaults that depend on others.
    pub fn validate(self) -> Result<Config, ConfigError> {
        if self.default_page_size > self.max_page_size {
            return Err(ConfigError::new(
                "DEFAULT_PAGE_SIZE",
                format!(
                    "{} is larger than MAX_PAGE_SIZE ({})",
                    self.default_page_size, self.max_page_size
                ),
            ));
        }
        let auth0 = match self.identity_mode {
            IdentityMode::Local => None,
            IdentityMode::Auth0 => Some(self.auth0_config()?),
        };
        if let Some(secret) = &self.jwt_hs256_secret
            && secret.expose().len() < 32
        {
            return Err(ConfigError::new(
                "JWT_HS256_SECRET",
                "must be at least 32 bytes long",
            ));
        }
        if self.token_issuer.trim().is_empty() {
            return Err(ConfigError::new("TOKEN_ISSUER", "must not be empty"));
        }
        if self.token_audience.trim().is_empty() {
            return Err(ConfigError::new("TOKEN_AUDIENCE", "must not be empty"));
        }
        let database_url = match self.database_url {
            Some(url)
                if url.starts_with("sqlite:")
                    || url.starts_with("postgres://")
                    || url.starts_with("postgresql://") =>
            {
                url
            }
            Some(_) => {
                return Err(ConfigError::new(
                    "DATABASE_URL",
                    "must start with sqlite:, postgres:// or postgresql://",
                ));
            }
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("music.db").display()
            ),
        };
        let cors = parse_cors(&self.cors_allowed_origins)?;
        let trusted_documents = self.documents.trusted_documents();
        let csrf = self.csrf.validate()?;
        Ok(Config {
            data_dir: self.data_dir,
            database_url,
            listen_addr: self.listen_addr,
            identity_mode: self.identity_mode,
            token_issuer: self.token_issuer,
            token_audience: self.token_audience,
            jwt_hs256_secret: self.jwt_hs256_secret,
            playlist_editor_threshold: self.playlist_editor_threshold,
            default_page_size: self.default_page_size,
            max_page_size: self.max_page_size,
            cors,
            // The range check above keeps this well inside usize.
            max_body_bytes: self.max_body_bytes as usize,
            db_max_connections: self.db_max_connections,
            db_timeout: std::time::Duration::from_millis(self.db_timeout_ms),
            sqlite_cache_kib: self.sqlite_cache_kib,
            sqlite_busy_timeout: std::time::Duration::from_millis(self.sqlite_busy_timeout_ms),
            shutdown_grace: std::time::Duration::from_secs(self.shutdown_grace_seconds),
            request_timeout: std::time::Duration::from_secs(self.request_timeout_seconds),
            tombstone_ttl: std::time::Duration::from_secs(self.tombstone_ttl_seconds),
            graphiql: self.graphiql,
            graphiql_demo_token: self
                .graphiql_demo_token
                .unwrap_or_else(|| self.listen_addr.ip().is_loopback()),
            response_cache_max_bytes: self.response_cache.response_cache_max_bytes,
            compiled_queries: self.compiled.compiled_queries,
            live: self.live.settings(),
            log_format: self.log_format,
            auth0,
            apq_cache_bytes: self.documents.apq_cache_bytes(),
            trusted_documents,
            csrf,
            query_limits: self.limits.query_limits(),
            guard_limits: self.guard.guard_limits(),
            introspection: self.operation.introspection,
        })
    }

    fn auth0_config(&self) -> Result<Auth0Config, ConfigError> {
        fn required(value: &Option<String>, setting: &'static str) -> Result<String, ConfigError> {
            match value.as_deref().map(str::trim) {
                Some(v) if !v.is_empty() => Ok(v.to_owned()),
                _ => Err(ConfigError::new(
                    setting,
                    "is required when IDENTITY_MODE=auth0",
                )),
            }
        }
        let base_url = parse_auth0_domain(&required(&self.auth0_domain, "AUTH0_DOMAIN")?)?;
        let namespaced = |claim: &str, setting: &'static str, example: &str| {
            let claim = claim.trim();
            if (claim.starts_with("https://") || claim.starts_with("http://"))
                && !claim.contains(".auth0.com")
            {
                Ok(claim.to_owned())
            } else {
                Err(ConfigError::new(
                    setting,
                    format!(
                        "must be namespaced with an http(s) URL that is not an Auth0 domain, e.g. {example}"
                    ),
                ))
            }
        };
        let roles_claim = namespaced(
            &self.auth0_roles_claim,
            "AUTH0_ROLES_CLAIM",
            "https://music.example/roles",
        )?;
        let updated_at_claim = namespaced(
            &self.auth0_updated_at_claim,
            "AUTH0_UPDATED_AT_CLAIM",
            "https://music.example/updated_at",
        )?;
        if !(self.auth0_mgmt_rate.is_finite()
            && self.auth0_mgmt_rate > 0.0
            && self.auth0_mgmt_rate <= 1000.0)
        {
            return Err(ConfigError::new(
                "AUTH0_MGMT_RATE",
                "must be a number of requests a second above 0 and at most 1000",
            ));
        }
        Ok(Auth0Config {
            base_url,
            audience: required(&self.auth0_audience, "AUTH0_AUDIENCE")?,
            client_id: required(&self.auth0_client_id, "AUTH0_CLIENT_ID")?,
            client_secret: Secret::new(required(&self.auth0_client_secret, "AUTH0_CLIENT_SECRET")?),
            roles_claim,
            updated_at_claim,
            events_token: webhook_token(&self.auth0_events_token, "AUTH0_EVENTS_TOKEN")?,
            log_stream_token: webhook_token(
                &self.auth0_log_stream_token,
                "AUTH0_LOG_STREAM_TOKEN",
            )?,
            mgmt_rate: self.auth0_mgmt_rate,
            mgmt_burst: self.auth0_mgmt_burst,
            profile_ttl: std::time::Duration::from_secs(self.profile_ttl_seconds),
            timeout: std::time::Duration::from_millis(self.auth0_timeout_ms),
            outbox_lease: std::time::Duration::from_secs(self.outbox_lease_seconds),
        })
    }
}

/// A webhook's bearer token: unset or empty turns the route off; a short
/// one would be guessable.
fn webhook_token(
    value: &Option<String>,
    setting: &'static str,
) -> Result<Option<Secret>, ConfigError> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(token) if token.len() < 16 => Err(ConfigError::new(
            setting,
            "must be at least 16 characters long",
        )),
        Some(token) => Ok(Some(Secret::new(token))),
    }
}

/// `tenant.eu.auth0.com` becomes `https://tenant.eu.auth0.com`; a full URL
/// (for a local Auth0 in tests) is kept without its trailing slash.
fn parse_auth0_domain(raw: &str) -> Result<String, ConfigError> {
    let invalid = || {
        ConfigError::new(
            "AUTH0_DOMAIN",
            format!(
                "`{raw}` is not a tenant host such as example.eu.auth0.com or a URL such as http://127.0.0.1:3000"
            ),
        )
    };
    let (scheme, rest) = match raw.split_once("://") {
        Some((scheme @ ("http" | "https"), rest)) => (scheme, rest),
        Some(_) => return Err(invalid()),
        None => ("https", raw),
    };
    let host = rest.trim_end_matches('/');
    let valid = !host.is_empty()
        && !host.contains('/')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !valid {
        return Err(invalid());
    }
    Ok(format!("{scheme}://{host}"))
}

fn parse_cors(raw: &str) -> Result<CorsOrigins, ConfigError> {
    let origins: Vec<&str> = raw
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty() {
        return Ok(CorsOrigins::None);
    }
    if origins == ["*"] {
        return Ok(CorsOrigins::Any);
    }
    for origin in &origins {
        let valid = (origin.starts_with("http://") || origin.starts_with("https://"))
            && !origin.ends_with('/')
            && origin.parse::<axum::http::HeaderValue>().is_ok();
        if !valid {
            return Err(ConfigError::new(
                "CORS_ALLOWED_ORIGINS",
                format!("`{origin}` is not an origin like https://app.example.com (or `*`)"),
            ));
        }
    }
    Ok(CorsOrigins::List(
        origins.into_iter().map(String::from).collect(),
    ))
}

impl Config {
    /// A configuration for the embedded default, as the CLI would build it with
    /// no flags: used by tests and tools that build the app in-process.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        let settings = Cli::parse_from(["music-gateway"]).settings;
        let data_dir = data_dir.into();
        Settings {
            database_url: None,
            identity_mode: IdentityMode::Local,
            data_dir,
            ..settings
        }
        .validate()
        .expect("the default settings are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> Result<Config, String> {
        let mut argv = vec!["music-gateway"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        cli.settings.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn default_database_is_a_sqlite_file_in_the_data_dir() {
        let config = settings(&["--data-dir", "/tmp/x"]).unwrap();
        assert_eq!(config.database_url, "sqlite:///tmp/x/music.db?mode=rwc");
    }

    #[test]
    fn default_page_size_above_the_maximum_is_rejected_naming_the_setting() {
        let err = settings(&["--default-page-size", "50", "--max-page-size", "10"]).unwrap_err();
        assert!(err.contains("DEFAULT_PAGE_SIZE"), "{err}");
    }

    #[test]
    fn unknown_database_scheme_is_rejected() {
        let err = settings(&["--database-url", "mysql://x"]).unwrap_err();
        assert!(err.contains("DATABASE_URL"), "{err}");
    }

    #[test]
    fn cors_origins_parse_and_reject_paths() {
        let config = settings(&[
            "--cors-allowed-origins",
            "https://a.example, http://localhost:3000",
        ])
        .unwrap();
        assert_eq!(
            config.cors,
            CorsOrigins::List(vec![
                "https://a.example".into(),
                "http://localhost:3000".into()
            ])
        );
        assert_eq!(
            settings(&["--cors-allowed-origins", "*"]).unwrap().cors,
            CorsOrigins::Any
        );
        let err = settings(&["--cors-allowed-origins", "https://a.example/"]).unwrap_err();
        assert!(err.contains("CORS_ALLOWED_ORIGINS"), "{err}");
    }

    #[test]
    fn auth0_mode_needs_its_settings_and_never_prints_the_secret() {
        let err = settings(&["--identity-mode", "auth0"]).unwrap_err();
        assert!(err.contains("AUTH0_DOMAIN"), "{err}");
        let base = [
            "--identity-mode",
            "auth0",
            "--auth0-domain",
            "example.eu.auth0.com",
            "--auth0-audience",
            "https://api.example",
            "--auth0-client-id",
            "id",
        ];
        let err = settings(&base).unwrap_err();
        assert!(err.contains("AUTH0_CLIENT_SECRET"), "{err}");
        let mut args = base.to_vec();
        args.extend(["--auth0-client-secret", "s3cret-value"]);
        let config = settings(&args).unwrap();
        let auth0 = config.auth0.as_ref().unwrap();
        assert_eq!(auth0.issuer(), "https://example.eu.auth0.com/");
        assert!(!format!("{config:?}").contains("s3cret-value"));
        assert!(config.auth0.as_ref().unwrap().events_token.is_none());
        let mut hooks = args.clone();
        hooks.extend([
            "--auth0-events-token",
            "0123456789abcdef",
            "--auth0-log-stream-token",
            "short",
        ]);
        let err = settings(&hooks).unwrap_err();
        assert!(err.contains("AUTH0_LOG_STREAM_TOKEN"), "{err}");
        hooks.pop();
        hooks.push("fedcba9876543210");
        let hooked = settings(&hooks).unwrap();
        assert!(!format!("{hooked:?}").contains("0123456789abcdef"));
        let mut bare = args.clone();
        bare.extend(["--auth0-updated-at-claim", "updated_at"]);
        assert!(
            settings(&bare)
                .unwrap_err()
                .contains("AUTH0_UPDATED_AT_CLAIM")
        );
        args.extend(["--auth0-roles-claim", "roles"]);
        assert!(settings(&args).unwrap_err().contains("AUTH0_ROLES_CLAIM"));
    }

    #[test]
    fn auth0_domain_accepts_hosts_and_local_urls() {
        assert_eq!(
            parse_auth0_domain("t.auth0.com").unwrap(),
            "https://t.auth0.com"
        );
        assert_eq!(
            parse_auth0_domain("http://127.0.0.1:4000/").unwrap(),
            "http://127.0.0.1:4000"
        );
        assert!(parse_auth0_domain("ftp://x").is_err());
        assert!(parse_auth0_domain("https://t.auth0.com/api").is_err());
        assert!(parse_auth0_domain("bad host").is_err());
    }

    #[test]
    fn graphiql_is_on_and_its_demo_token_only_on_loopback_unless_told() {
        let config = settings(&[]).unwrap();
        assert!(config.graphiql && config.graphiql_demo_token);
        let config = settings(&["--graphiql", "false", "--graphiql-demo-token", "no"]).unwrap();
        assert!(!config.graphiql && !config.graphiql_demo_token);
        // Reachable from other machines: no demo token unless asked for.
        let config = settings(&["--listen-addr", "0.0.0.0:8080"]).unwrap();
        assert!(config.graphiql && !config.graphiql_demo_token);
        let config = settings(&[
            "--listen-addr",
            "[::]:8080",
            "--graphiql-demo-token",
            "true",
        ])
        .unwrap();
        assert!(config.graphiql_demo_token);
        assert!(
            settings(&["--listen-addr", "[::1]:8080"])
                .unwrap()
                .graphiql_demo_token
        );
        assert!(settings(&["--graphiql", "maybe"]).is_err());
    }

    #[test]
    fn protocol_settings_parse_and_name_themselves_when_wrong() {
        let config = settings(&[]).unwrap();
        assert!(config.apq_cache_bytes.is_some());
        assert!(config.csrf.is_some());
        assert!(config.introspection);
        assert!(config.trusted_documents.is_none());
        let config = settings(&[
            "--apq",
            "false",
            "--csrf-prevention",
            "no",
            "--introspection",
            "0",
            "--max-query-cost",
            "500",
        ])
        .unwrap();
        assert_eq!(config.apq_cache_bytes, None);
        assert_eq!(config.csrf, None);
        assert!(!config.introspection);
        assert_eq!(config.query_limits.max_cost, 500);
        let config = settings(&["--csrf-required-headers", "X-Requested-With"]).unwrap();
        assert_eq!(
            config.csrf.unwrap().required_headers()[0].as_str(),
            "x-requested-with"
        );
        let err = settings(&["--csrf-required-headers", " , "]).unwrap_err();
        assert!(err.contains("CSRF_REQUIRED_HEADERS"), "{err}");
        // Read at start-up by the document stage, which tests a missing one.
        let config = settings(&[
            "--trusted-documents",
            "/nonexistent/manifest.json",
            "--trusted-documents-require-id",
            "true",
        ])
        .unwrap();
        assert_eq!(
            config.trusted_documents,
            Some(TrustedSettings {
                path: "/nonexistent/manifest.json".into(),
                allow_admin: false,
                require_id: true,
            })
        );
    }

    #[test]
    fn log_format_is_text_or_json() {
        assert_eq!(settings(&[]).unwrap().log_format, LogFormat::Text);
        assert_eq!(
            settings(&["--log-format", "json"]).unwrap().log_format,
            LogFormat::Json
        );
        let err = settings(&["--log-format", "xml"]).unwrap_err();
        assert!(err.contains("LOG_FORMAT"), "{err}");
    }

    #[test]
    fn request_timeout_is_whole_seconds_within_an_hour() {
        assert_eq!(
            settings(&[]).unwrap().request_timeout,
            std::time::Duration::from_secs(30)
        );
        assert_eq!(
            settings(&["--request-timeout-seconds", "5"])
                .unwrap()
                .request_timeout,
            std::time::Duration::from_secs(5)
        );
        for bad in ["0", "3601", "1.5", "soon"] {
            let err = settings(&["--request-timeout-seconds", bad]).unwrap_err();
            assert!(err.contains("request-timeout-seconds"), "{bad}: {err}");
        }
    }

    #[test]
    fn short_hs256_secret_is_rejected() {
        let err = settings(&["--jwt-hs256-secret", "short"]).unwrap_err();
        assert!(err.contains("JWT_HS256_SECRET"), "{err}");
    }

    #[test]
    fn the_hs256_secret_never_prints() {
        let secret = "a-shared-secret-of-at-least-32-bytes!";
        let cli = Cli::try_parse_from(["music-gateway", "--jwt-hs256-secret", secret]).unwrap();
        assert!(!format!("{:?}", cli.settings).contains(secret));
        let config = cli.settings.validate().unwrap();
        assert!(!format!("{config:?}").contains(secret));
        assert_eq!(config.jwt_hs256_secret.unwrap().expose(), secret);
    }
}
