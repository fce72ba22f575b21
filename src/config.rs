//! One `Config`, from flags and environment, validated once at start-up.
//!
//! Every setting is a flag and an environment variable at once (`--listen-addr`
//! / `LISTEN_ADDR`). Values are parsed into types here, so a bad value stops the
//! process with one line naming the setting instead of failing on a request.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Where the profile (user_metadata, app_metadata) is authoritative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum IdentityMode {
    /// The `users` table is the authority and the gateway issues its own tokens.
    Local,
    /// An Auth0 tenant is the authority; the `users` table mirrors it.
    Auth0,
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
    #[arg(long, env = "JWT_HS256_SECRET", hide_env_values = true, global = true)]
    pub jwt_hs256_secret: Option<String>,
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
    /// Size of the database connection pool.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub db_max_connections: u32,
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
    fn new(setting: &'static str, reason: impl Into<String>) -> Self {
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
    pub jwt_hs256_secret: Option<String>,
    pub playlist_editor_threshold: i64,
    pub default_page_size: u32,
    pub max_page_size: u32,
    pub cors: CorsOrigins,
    pub max_body_bytes: usize,
    pub db_max_connections: u32,
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
        if self.identity_mode == IdentityMode::Auth0 {
            return Err(ConfigError::new(
                "IDENTITY_MODE",
                "`auth0` is not available in this version yet; use `local`",
            ));
        }
        if let Some(secret) = &self.jwt_hs256_secret
            && secret.len() < 32
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
        })
    }
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
    fn short_hs256_secret_is_rejected() {
        let err = settings(&["--jwt-hs256-secret", "short"]).unwrap_err();
        assert!(err.contains("JWT_HS256_SECRET"), "{err}");
    }
}
