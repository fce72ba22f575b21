//! music-gateway: a GraphQL gateway that joins a user's identity profile
//! (Auth0's `user_metadata` and `app_metadata`, mirrored in the `users`
//! table) with their music data in a SQL database.
//!
//! [`App::build`] makes the whole application from a [`Config`], so the binary
//! and the tests run the same code.

pub mod auth;
pub mod auth0;
pub mod config;
pub mod db;
pub mod demo;
pub mod entity;
pub mod error;
pub mod error_code;
pub mod graphql;
pub mod http;
pub mod live;
pub mod music;
pub mod profile;
pub mod shutdown;
mod sql;
pub mod telemetry;

use std::{collections::HashMap, sync::Arc};

use anyhow::Context;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

use crate::{
    auth::{KeySource, LocalIssuer, RemoteJwks, TokenVerifier},
    auth0::ManagementClient,
    config::{Config, Secret},
    db::StatementCounter,
    graphql::{AppSchema, CompiledQueries, Limits, Services},
    http::{PipelineState, RequestDeadline, response_cache::ResponseCache},
    music::MusicService,
    profile::{Auth0Mirror, ProfileService, Workers},
};

/// Parsed query documents kept: far more than the distinct queries an app sends.
const DOCUMENT_CACHE_CAPACITY: usize = 512;

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: DatabaseConnection,
    pub schema: AppSchema,
    pub services: Services,
    pub verifier: Arc<TokenVerifier>,
    /// The local issuer, in the local identity mode. Shared: the state is
    /// cloned for every request, and a deep copy of the keys and the JWK
    /// was a few per cent of the hot path's CPU in a profile.
    pub issuer: Option<Arc<LocalIssuer>>,
    pub statements: StatementCounter,
    /// What the stages before execution read (APQ, trusted documents, the
    /// limits, parsed documents, their settings).
    pub pipeline: PipelineState,
    /// The auth0 mode's background workers (refresh queue, outbox).
    pub workers: Option<Arc<Workers>>,
    /// Answers to queries, checked against the database's data versions;
    /// `None` when `RESPONSE_CACHE_MAX_BYTES` is 0.
    pub response_cache: Option<Arc<ResponseCache>>,
    /// Compiled `me` queries; `None` when `COMPILED_QUERIES` is off.
    pub compiled: Option<Arc<CompiledQueries>>,
    /// Every request's deadline, and the requests it stopped.
    pub deadline: Arc<RequestDeadline>,
    /// Live updates: the change feed, open connections, their limits.
    pub live: Arc<live::Live>,
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
        telemetry::install();
        let limits = Limits {
            default_page_size: config.default_page_size,
            max_page_size: config.max_page_size,
        };
        // First, so a manifest that cannot be read stops start-up before
        // the database is touched.
        let pipeline = PipelineState::new(&config, limits, DOCUMENT_CACHE_CAPACITY)?;
        let (db, statements) = db::connect(
            &config.database_url,
            config.db_max_connections,
            config.db_timeout,
            config.sqlite_cache_kib,
            config.sqlite_busy_timeout,
        )
        .await?;
        db::migrate(&db, &config.database_url).await?;
        let (issuer, verifier, mirror) = match &config.auth0 {
            None => {
                let issuer = LocalIssuer::load_or_create_shared(
                    &db,
                    &config.data_dir,
                    &config.token_issuer,
                    &config.token_audience,
                )
                .await?;
                let keys =
                    HashMap::from([(issuer.kid().to_owned(), issuer.decoding_key().clone())]);
                let verifier = TokenVerifier::new(
                    &config.token_issuer,
                    &config.token_audience,
                    KeySource::Static(keys),
                    config.jwt_hs256_secret.as_ref().map(Secret::expose),
                    None,
                    None,
                );
                (Some(Arc::new(issuer)), verifier, None)
            }
            Some(auth0) => {
                let jwks = Arc::new(RemoteJwks::new(auth0.jwks_url(), auth0.timeout)?);
                if let Err(e) = jwks.fetch().await {
                    // Not fatal: the keys are fetched again when a token needs them.
                    tracing::warn!(error = %e, "cannot fetch the tenant's signing keys at start-up");
                }
                let verifier = TokenVerifier::new(
                    &auth0.issuer(),
                    &auth0.audience,
                    KeySource::Remote(jwks),
                    config.jwt_hs256_secret.as_ref().map(Secret::expose),
                    Some(auth0.roles_claim.clone()),
                    Some(auth0.updated_at_claim.clone()),
                );
                let client = Arc::new(ManagementClient::new(auth0, db.clone())?);
                tokio::spawn({
                    let client = client.clone();
                    async move { client.warm_up().await }
                });
                let (mirror, queue) = Auth0Mirror::new(
                    db.clone(),
                    client,
                    auth0.profile_ttl,
                    auth0.outbox_lease,
                    config.tombstone_ttl,
                );
                let workers = mirror.spawn_workers(queue);
                (None, verifier, Some((mirror, workers)))
            }
        };
        let (mirror, workers) = mirror.unzip();
        let profiles =
            ProfileService::new(db.clone(), config.playlist_editor_threshold, mirror.clone())
                .with_tombstone_ttl(config.tombstone_ttl);
        let services = Services {
            music: MusicService::new(db.clone(), profiles.clone()),
            profiles,
            limits,
        };
        let schema = graphql::build(services.clone(), config.introspection);
        // Instances of one build and settings tag one answer alike.
        let fingerprint = format!(
            "{}\n{}\n{} {}",
            env!("CARGO_PKG_VERSION"),
            schema.sdl(),
            config.default_page_size,
            config.max_page_size
        );
        let response_cache = ResponseCache::new(
            db.clone(),
            config.response_cache_max_bytes,
            fingerprint.as_bytes(),
            mirror,
        )
        .map(Arc::new);
        let compiled = config
            .compiled_queries
            .then(|| Arc::new(CompiledQueries::new(DOCUMENT_CACHE_CAPACITY)));
        let live = live::Live::new(config.live);
        live.feed
            .start(db.clone(), &config.database_url, config.live.poll);
        let state = AppState {
            live,
            deadline: Arc::new(RequestDeadline::new(config.request_timeout)),
            schema,
            pipeline,
            services,
            config: Arc::new(config),
            db,
            verifier: Arc::new(verifier),
            issuer,
            statements,
            workers: workers.map(Arc::new),
            response_cache,
            compiled,
        };
        Ok(Self {
            router: http::router(state.clone()),
            state,
        })
    }

    /// Serves until `shutdown` completes, then gives requests in flight the
    /// configured grace period to finish, and closes what is still open.
    /// This needs a free worker thread; [`shutdown::watch_signals`] ends the
    /// process when none is.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let grace = self.state.config.shutdown_grace;
        let (signalled, mut on_signal) = tokio::sync::watch::channel(false);
        let live = self.state.live.clone();
        let draining = live.clone();
        let server = axum::serve(listener, self.router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                // Upgraded connections are not the server's any more: tell
                // them, so their clients reconnect to another instance.
                live.close_all();
                let _ = signalled.send(true);
            })
            .into_future();
        tokio::pin!(server);
        tokio::select! {
            result = &mut server => return result.context("the HTTP server failed"),
            _ = on_signal.wait_for(|signalled| *signalled) => {}
        }
        // The server does not wait for upgraded connections: wait here for
        // the live ones to send their close frames.
        let stopped = async move {
            let result = server.await;
            draining.drained().await;
            result
        };
        match tokio::time::timeout(grace, stopped).await {
            Ok(result) => result.context("the HTTP server failed"),
            Err(_) => {
                // A client that keeps a request open (or a slow one) must
                // not keep the process from stopping.
                tracing::warn!(
                    grace_seconds = grace.as_secs(),
                    "connections still open after the shutdown grace period: closing them"
                );
                Ok(())
            }
        }
    }
}

/// The local issuer shared by every instance on `config`'s database: connects
/// and migrates first, so it also works on a database no gateway has used yet.
pub async fn local_issuer(config: &Config) -> anyhow::Result<LocalIssuer> {
    let (db, _) = db::connect(
        &config.database_url,
        1,
        config.db_timeout,
        config.sqlite_cache_kib,
        config.sqlite_busy_timeout,
    )
    .await?;
    db::migrate(&db, &config.database_url).await?;
    let issuer = LocalIssuer::load_or_create_shared(
        &db,
        &config.data_dir,
        &config.token_issuer,
        &config.token_audience,
    )
    .await;
    db.close().await.ok();
    issuer
}
