//! The test harness: a real gateway on port 0 with its own fresh database.
//!
//! Every test gets a new data directory and a new database: a SQLite file, or
//! a database created for it on the PostgreSQL server named by
//! `MG_TEST_POSTGRES_URL` (scripts/test starts a throw-away one).

use std::{net::SocketAddr, path::Path, sync::OnceLock};

use std::time::Duration;

use music_gateway::{
    App, AppState,
    auth::LocalIssuer,
    config::{Auth0Config, Config, IdentityMode, Secret},
};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::fake_auth0::FakeAuth0;

/// The namespaced roles claim the tests' post-login "Action" sets.
pub const ROLES_CLAIM: &str = "https://music-gateway.test/roles";

/// The namespaced claim the tests' post-login "Action" puts the profile's
/// `updated_at` in.
pub const UPDATED_AT_CLAIM: &str = "https://music-gateway.test/updated_at";

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn(TestApp)` once on SQLite and once on PostgreSQL,
/// as `<name>::sqlite` and `<name>::postgres`.
///
/// `on_both_databases!(uncached: …)` runs them with the response cache off,
/// for tests that count what a query itself costs.
#[macro_export]
macro_rules! on_both_databases {
    (uncached: $($name:ident),* $(,)?) => {
        $(
            mod $name {
                use $crate::helpers::{Backend, TestApp};

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(TestApp::spawn_uncached(Backend::Sqlite).await).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(TestApp::spawn_uncached(Backend::Postgres).await).await
                }
            }
        )*
    };
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use $crate::helpers::{Backend, TestApp};

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(TestApp::spawn(Backend::Sqlite).await).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(TestApp::spawn(Backend::Postgres).await).await
                }
            }
        )*
    };
}

/// Runs each named `async fn(Backend)` once per database, for scenarios that
/// build their own gateways.
#[macro_export]
macro_rules! for_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use $crate::helpers::Backend;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(Backend::Postgres).await
                }
            }
        )*
    };
}

/// The signing key PEM, generated once per test process: RSA key generation
/// is the slowest part of starting a gateway.
fn shared_key_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| {
        let dir = TempDir::new().expect("temp dir");
        LocalIssuer::load_or_create(dir.path(), "x", "y").expect("key");
        std::fs::read_to_string(dir.path().join("signing-key.pem")).expect("key file")
    })
}

/// A running gateway and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub state: AppState,
    pub issuer: LocalIssuer,
    pub backend: Backend,
    pub database_url: String,
    /// The database this app made for itself, dropped with it.
    _database: Option<TestDatabase>,
    _dir: TempDir,
}

/// A database made for one test, dropped with this value on PostgreSQL (a
/// SQLite file goes with the test's directory).
pub struct TestDatabase {
    pub url: String,
    /// The PostgreSQL database's name.
    name: Option<String>,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            // Drop runs inside the test's runtime, which cannot be blocked
            // on: a thread of its own with a runtime of its own does it.
            let dropped = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime to drop the test database")
                    .block_on(drop_database(&name))
            })
            .join();
            if dropped.is_err() {
                eprintln!("could not drop a test database");
            }
        }
    }
}

/// Drops a test database, closing the connections of gateways still on it
/// (the test is over: none of them is asked anything again).
pub async fn drop_database(name: &str) {
    let Ok(conn) = Database::connect(&postgres_admin_url()).await else {
        return;
    };
    if let Err(e) = conn
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
    {
        eprintln!("could not drop the test database {name}: {e}");
    }
    conn.close().await.ok();
}

/// The admin URL of the test PostgreSQL server.
pub fn postgres_admin_url() -> String {
    std::env::var("MG_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "MG_TEST_POSTGRES_URL is not set: run the suite with scripts/test, which starts \
             a throw-away PostgreSQL server, or point it at a server where you may create databases"
        )
    })
}

/// Creates a fresh, empty database for one test; it is dropped with the
/// value answered, so keep that until the gateways on it are stopped.
pub async fn fresh_database(backend: Backend, dir: &Path) -> TestDatabase {
    match backend {
        Backend::Sqlite => TestDatabase {
            url: format!("sqlite://{}?mode=rwc", dir.join("music.db").display()),
            name: None,
        },
        Backend::Postgres => {
            let admin = postgres_admin_url();
            let name = format!("mg_test_{}", uuid::Uuid::new_v4().simple());
            let conn = Database::connect(&admin)
                .await
                .expect("connect to the test PostgreSQL server");
            conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create a test database");
            conn.close().await.ok();
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            TestDatabase {
                url: format!("{base}/{name}"),
                name: Some(name),
            }
        }
    }
}

impl TestApp {
    /// A gateway on the embedded defaults and `backend`.
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    /// A gateway with the response cache off.
    pub async fn spawn_uncached(backend: Backend) -> Self {
        Self::spawn_with(backend, |config| config.response_cache_max_bytes = 0).await
    }

    /// A gateway whose configuration `adjust` may change first.
    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = TempDir::new().expect("temp dir");
        std::fs::write(dir.path().join("signing-key.pem"), shared_key_pem()).expect("write key");
        let mut config = Config::embedded(dir.path());
        let fresh = fresh_database(backend, dir.path()).await;
        config.database_url = fresh.url.clone();
        config.db_max_connections = 5;
        adjust(&mut config);
        // The app owns the database made for it, unless it was pointed at
        // another one (another app's, which that app owns): then the one
        // made here is not needed.
        let database = (config.database_url == fresh.url).then_some(fresh);
        let database_url = config.database_url.clone();
        let issuer = LocalIssuer::from_pem(
            shared_key_pem(),
            &config.token_issuer,
            &config.token_audience,
        )
        .expect("issuer");
        let app = App::build(config).await.expect("build the app");
        let state = app.state.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(app.serve(listener, std::future::pending()));
        Self {
            addr,
            client: reqwest::Client::new(),
            state,
            issuer,
            backend,
            database_url,
            _database: database,
            _dir: dir,
        }
    }

    /// A gateway in the auth0 identity mode against `fake`, at the fake's
    /// own rate limit unless `adjust` changes it.
    pub async fn spawn_auth0(
        backend: Backend,
        fake: &FakeAuth0,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let auth0 = Auth0Config {
            base_url: fake.base_url(),
            audience: fake.audience(),
            client_id: fake.client_id(),
            client_secret: Secret::new(fake.client_secret()),
            roles_claim: ROLES_CLAIM.into(),
            updated_at_claim: UPDATED_AT_CLAIM.into(),
            events_token: None,
            log_stream_token: None,
            mgmt_rate: 2.0,
            mgmt_burst: 2,
            profile_ttl: Duration::from_secs(300),
            timeout: Duration::from_secs(2),
            outbox_lease: Duration::from_secs(30),
        };
        Self::spawn_with(backend, |config| {
            config.identity_mode = IdentityMode::Auth0;
            config.auth0 = Some(auth0);
            adjust(config);
        })
        .await
    }

    /// Runs an operation with `token`; answers `data` after checking there
    /// was no error.
    pub async fn ok_with(&self, token: &str, query: &str, variables: Value) -> Value {
        let (status, body) = self.post(Some(token), query, variables).await;
        assert_eq!(status, 200, "unexpected status, body: {body}");
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// `http://addr/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A valid token for `sub`.
    pub fn token(&self, sub: &str) -> String {
        self.token_with(sub, json!({}))
    }

    /// A valid token for `sub` with extra claims.
    pub fn token_with(&self, sub: &str, claims: Value) -> String {
        let map = claims.as_object().cloned().unwrap_or_default();
        self.issuer.mint(sub, 3600, map).expect("mint")
    }

    /// Posts a GraphQL operation with an optional bearer token; answers the
    /// HTTP status and the JSON body.
    pub async fn post(&self, token: Option<&str>, query: &str, variables: Value) -> (u16, Value) {
        let mut request = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({"query": query, "variables": variables}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let body = response.json().await.expect("JSON body");
        (status, body)
    }

    /// Runs an operation as user `sub` and answers the JSON body.
    pub async fn gql(&self, sub: &str, query: &str, variables: Value) -> Value {
        let (status, body) = self.post(Some(&self.token(sub)), query, variables).await;
        assert_eq!(status, 200, "unexpected status, body: {body}");
        body
    }

    /// Runs an operation as `sub` that must succeed; answers `data`.
    pub async fn ok(&self, sub: &str, query: &str, variables: Value) -> Value {
        let body = self.gql(sub, query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// SQL statements sent so far.
    pub fn statements(&self) -> u64 {
        self.state.statements.get()
    }

    /// Adds a song as `sub` and answers its id.
    pub async fn add_song(&self, sub: &str, name: &str) -> String {
        let data = self
            .ok(
                sub,
                "mutation($i: AddSongInput!) { addSong(input: $i) { id } }",
                json!({"i": {"name": name, "artist": "Artist", "genre": "jazz"}}),
            )
            .await;
        data["addSong"]["id"].as_str().expect("song id").to_owned()
    }

    /// Creates a playlist as `sub` with the given songs and answers its id.
    pub async fn create_playlist(&self, sub: &str, name: &str, song_ids: &[String]) -> String {
        let data = self
            .ok(
                sub,
                "mutation($i: CreatePlaylistInput!) { createPlaylist(input: $i) { id } }",
                json!({"i": {"name": name, "songIds": song_ids}}),
            )
            .await;
        data["createPlaylist"]["id"]
            .as_str()
            .expect("playlist id")
            .to_owned()
    }
}

/// The `extensions.code` of the first error, or panics showing the body.
pub fn error_code(body: &Value) -> String {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error with a code, got {body}"))
        .to_owned()
}

/// Polls `check` every 50 ms until it holds or `limit` passes.
pub async fn eventually(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let start = std::time::Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(Debug, sea_orm::FromQueryResult)]
struct Count {
    n: i64,
}

/// `SELECT count(*) AS n …` on a gateway's database.
pub async fn count(db: &sea_orm::DatabaseConnection, sql: &str) -> i64 {
    use sea_orm::FromQueryResult;
    Count::find_by_statement(sea_orm::Statement::from_string(
        db.get_database_backend(),
        sql,
    ))
    .one(db)
    .await
    .expect("count query")
    .map_or(0, |c| c.n)
}
