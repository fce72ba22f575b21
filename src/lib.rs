//! music-gateway: a GraphQL gateway that joins a user's identity profile
//! (Auth0's `user_metadata` and `app_metadata`, mirrored in the `users`
//! table) with their music data in a SQL database.
//!
//! [`App::build`] makes the whole application from a [`Config`], so the binary
//! and the tests run the same code.

pub mod auth;
pub mod config;
pub mod db;
pub mod demo;
pub mod entity;
pub mod error;
pub mod graphql;
pub mod http;
pub mod music;
pub mod profile;
mod sql;

use std::{collections::HashMap, sync::Arc};

use anyhow::Context;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

use crate::{
    auth::{LocalIssuer, TokenVerifier},
    config::{Config, IdentityMode},
    db::StatementCounter,
    graphql::{AppSchema, Limits, Services},
    music::MusicService,
    profile::ProfileService,
};

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: DatabaseConnection,
    pub schema: AppSchema,
    pub services: Services,
    pub verifier: Arc<TokenVerifier>,
    /// The local issuer, in the local identity mode.
    pub issuer: Option<LocalIssuer>,
    pub statements: StatementCounter,
}

/// The built application: its state and its router.
pub struct App {
    pub state: AppState,
    pub router: axum::Router,
}

impl App {
    /// Connects and migrates the database, loads the signing keys and builds
    /// the schema and router.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let (db, statements) = db::connect(&config.database_url, config.db_max_connections).await?;
        db::migrate(&db).await?;
        let issuer = match config.identity_mode {
            IdentityMode::Local => Some(local_issuer(&config)?),
            IdentityMode::Auth0 => None,
        };
        let keys: HashMap<_, _> = issuer
            .iter()
            .map(|i| (i.kid().to_owned(), i.decoding_key().clone()))
            .collect();
        let verifier = TokenVerifier::new(
            &config.token_issuer,
            &config.token_audience,
            keys,
            config.jwt_hs256_secret.as_deref(),
            None,
        );
        let profiles = ProfileService::new(db.clone(), config.playlist_editor_threshold);
        let services = Services {
            music: MusicService::new(db.clone(), profiles.clone()),
            profiles,
            limits: Limits {
                default_page_size: config.default_page_size,
                max_page_size: config.max_page_size,
            },
        };
        let state = AppState {
            schema: graphql::build(services.clone()),
            services,
            config: Arc::new(config),
            db,
            verifier: Arc::new(verifier),
            issuer,
            statements,
        };
        Ok(Self {
            router: http::router(state.clone()),
            state,
        })
    }

    /// Serves until `shutdown` completes, finishing requests in flight.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        axum::serve(listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("the HTTP server failed")
    }
}

/// The local issuer of `config`'s data directory.
pub fn local_issuer(config: &Config) -> anyhow::Result<LocalIssuer> {
    LocalIssuer::load_or_create(
        &config.data_dir,
        &config.token_issuer,
        &config.token_audience,
    )
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
