//! The reference: what a team would write by hand for the load test's query.
//!
//! `POST /graphql` validates the RS256 bearer token as strictly as the
//! gateway (algorithm pinned, `kid` looked up in a JWKS fetched at start,
//! `exp`/`nbf` with the same 30 s leeway, `iss`, `aud`, required `sub`), then
//! answers the full `me` query with ONE SQL statement.
//!
//! On PostgreSQL the statement returns plain columns and arrays: the user's
//! columns, each page as parallel arrays (`array_agg`), and the songs of
//! every playlist on the page from one window (`row_number() OVER
//! (PARTITION BY playlist_id …)`) over `playlist_id = ANY(<the page's
//! ids>)`, not a subquery per playlist. The handler decodes the row and
//! writes the JSON straight into the response buffer (strings escaped by
//! serde_json), with no tree of values in between: the database builds no
//! JSON and the process parses none. That is the fastest honest handler we
//! know how to write, so the gateway's ratio to it is its real overhead.
//!
//! On SQLite the statement builds each page's JSON (`json_object`/
//! `json_group_array`): SQLite has no arrays, and its JSON functions run in
//! the same process. The handler splices those texts into the answer
//! without parsing them.
//! The second SQLite reference (`--driver rusqlite`) runs that statement
//! on rusqlite connections of its own, one per blocking thread at a time,
//! without sqlx's worker thread and channels per connection.
//!
//! It does not parse GraphQL. It reads the body as JSON and takes the page
//! sizes from the query text: the three `first: N` arguments, in the order
//! the load test's queries have them (songs, playlists, a playlist's songs),
//! and two optional fields: `me { id … }` and a song's `artist`. Any other
//! query gets the same shape of answer; it is a benchmark baseline, not a
//! GraphQL server.
//!
//! Fairness: the same database, a pool of the same size built by the same
//! library (SeaORM's connect, then its sqlx pool, with prepared statements
//! cached per connection as the gateway's are), no cache of answers.

use std::{collections::HashMap, io::Write as _, net::SocketAddr, sync::Arc};

use anyhow::{Context, bail};
use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use clap::Args;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use sea_orm::{
    ConnectOptions, Database, DbBackend,
    sqlx::{self, Row as _, postgres::PgRow},
};
use serde::Deserialize;

/// The gateway's clock-skew allowance on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: u64 = 30;

/// The gateway's largest page size (`MAX_PAGE_SIZE`'s default).
const MAX_PAGE_SIZE: i64 = 100;

/// The PostgreSQL statement, without or with the songs' artists. `$1` the
/// user, `$2`..`$4` the page sizes (songs, playlists, a playlist's songs).
///
/// Each page is sorted in its subquery and aggregated in that order (one
/// sort per page, not one per `array_agg`). The playlists' songs come
/// sorted by playlist id, then position: the playlists' order, so the
/// handler walks the two lists side by side.
fn postgres_me(artist: bool) -> String {
    let (artist_col, artist_agg) = if artist {
        (", artist", ", array_agg(artist)")
    } else {
        ("", "")
    };
    format!(
        "\
WITH p AS (
  SELECT id, name, plays FROM playlists WHERE user_id = $1 ORDER BY id LIMIT $3
)
SELECT u.id,
  COALESCE(u.user_metadata ->> 'displayName', 'user'),
  ARRAY(SELECT e #>> '{{}}' FROM jsonb_array_elements(
          CASE WHEN jsonb_typeof(u.app_metadata -> 'roles') = 'array'
               THEN u.app_metadata -> 'roles' ELSE '[]'::jsonb END) e
        WHERE jsonb_typeof(e) = 'string'),
  d.fav_genre,
  sa.*, pa.*, ka.*
FROM users u
LEFT JOIN user_data d ON d.user_id = u.id
CROSS JOIN (
  SELECT array_agg(id), array_agg(name){artist_agg}
  FROM (SELECT id, name{artist_col} FROM songs WHERE user_id = $1 ORDER BY id LIMIT $2) s
) sa
CROSS JOIN (SELECT array_agg(id), array_agg(name), array_agg(plays) FROM p) pa
CROSS JOIN (
  SELECT array_agg(w.playlist_id), array_agg(w.song_id), array_agg(w.name)
  FROM (
    SELECT ps.playlist_id, ps.song_id, so.name
    FROM (
      SELECT playlist_id, song_id, position,
             row_number() OVER (PARTITION BY playlist_id ORDER BY position, song_id) AS n
      FROM playlist_songs
      WHERE playlist_id = ANY(ARRAY(SELECT id FROM p))
    ) ps
    JOIN songs so ON so.id = ps.song_id
    WHERE ps.n <= $4
    ORDER BY ps.playlist_id, ps.position, ps.song_id
  ) w
) ka
WHERE u.id = $1"
    )
}

/// The statement for SQLite, with the page sizes and the optional fields
/// written in. It answers the user's columns and each page as the JSON text
/// of its array (`json_group_array`), which the handler splices into the
/// answer as it is: no JSON is parsed again, neither by SQLite (a page
/// wrapped into an outer `json_object` would go through `json()` once more,
/// since a value's JSON subtype does not survive a subquery) nor by the
/// process. Only a playlist's songs, nested in its object, go through
/// `json()`.
fn sqlite_me(fields: Fields, pages: Pages) -> String {
    let artist = if fields.song_artist {
        ", 'artist', s.artist"
    } else {
        ""
    };
    let Pages {
        songs,
        playlists,
        playlist_songs,
    } = pages;
    // The page sizes go into the text, as the gateway's do: SQLite expires
    // a prepared statement whose bound LIMIT is rebound, so a bound LIMIT
    // would parse and plan it again every time.
    format!(
        "\
SELECT u.id,
  COALESCE(json_extract(u.user_metadata, '$.displayName'), 'user'),
  COALESCE(json_extract(u.app_metadata, '$.roles'), '[]'),
  d.fav_genre,
  (SELECT json_group_array(json_object('id', CAST(s.id AS TEXT), 'name', s.name{artist}) ORDER BY s.id)
   FROM (SELECT id, name, artist FROM songs WHERE user_id = u.id ORDER BY id LIMIT {songs}) s),
  (SELECT json_group_array(json_object('id', CAST(p.id AS TEXT), 'name', p.name, 'plays', p.plays,
      'songs', json_object('nodes', json((
        SELECT json_group_array(json_object('id', CAST(s.id AS TEXT), 'name', s.name) ORDER BY ps.position, ps.song_id)
        FROM (SELECT song_id, position FROM playlist_songs WHERE playlist_id = p.id
              ORDER BY position, song_id LIMIT {playlist_songs}) ps
        JOIN songs s ON s.id = ps.song_id
      )))) ORDER BY p.id)
   FROM (SELECT id, name, plays FROM playlists WHERE user_id = u.id ORDER BY id LIMIT {playlists}) p)
FROM users u LEFT JOIN user_data d ON d.user_id = u.id
WHERE u.id = ?1"
    )
}

/// [`sqlite_me`]'s row: the user's columns, then the roles and the two
/// pages as JSON text.
struct SqliteRow<'r> {
    id: &'r str,
    display_name: &'r str,
    roles: &'r str,
    fav_genre: Option<&'r str>,
    songs: &'r str,
    playlists: &'r str,
}

impl SqliteRow<'_> {
    /// `{"data":{"me":…}}`, keys in the query's order, the JSON texts
    /// spliced in.
    fn write(&self, fields: Fields, out: &mut Vec<u8>) {
        out.reserve(self.songs.len() + self.playlists.len() + 128);
        out.extend_from_slice(b"{\"data\":{\"me\":{");
        if fields.me_id {
            out.extend_from_slice(b"\"id\":");
            json_str(out, self.id);
            out.push(b',');
        }
        out.extend_from_slice(b"\"displayName\":");
        json_str(out, self.display_name);
        out.extend_from_slice(b",\"roles\":");
        out.extend_from_slice(self.roles.as_bytes());
        out.extend_from_slice(b",\"favGenre\":");
        match self.fav_genre {
            Some(genre) => json_str(out, genre),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"songs\":{\"nodes\":");
        out.extend_from_slice(self.songs.as_bytes());
        out.extend_from_slice(b"},\"playlists\":{\"nodes\":");
        out.extend_from_slice(self.playlists.as_bytes());
        out.extend_from_slice(b"}}}}");
    }
}

/// Arguments of `music-gateway-bench reference`.
#[derive(Debug, Args)]
pub struct ReferenceArgs {
    /// The gateway's database (`sqlite://…` or `postgres://…`).
    #[arg(long)]
    pub database_url: String,
    /// Address to listen on, e.g. `127.0.0.1:8090`.
    #[arg(long)]
    pub listen: SocketAddr,
    /// The JWKS holding the token signing keys, fetched once at start.
    #[arg(long)]
    pub jwks_url: String,
    /// The `iss` tokens must carry.
    #[arg(long)]
    pub issuer: String,
    /// The `aud` tokens must carry.
    #[arg(long)]
    pub audience: String,
    /// Size of the database connection pool (the gateway's DB_MAX_CONNECTIONS).
    #[arg(long, default_value_t = 8)]
    pub pool_size: u32,
    /// The database client: sqlx (the gateway's, through SeaORM), or the
    /// fastest we know for the database: tokio-postgres (with a deadpool
    /// pool) on PostgreSQL, rusqlite on SQLite.
    #[arg(long, value_enum, default_value_t = Driver::Sqlx)]
    pub driver: Driver,
}

/// The reference's database client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Driver {
    Sqlx,
    TokioPostgres,
    Rusqlite,
}

/// `music-gateway-bench reference`: serves until SIGINT or SIGTERM.
pub async fn main(args: ReferenceArgs) -> anyhow::Result<()> {
    let keys = fetch_keys(&args.jwks_url).await?;
    let db = match args.driver {
        Driver::Sqlx => Db::connect(&args.database_url, args.pool_size).await?,
        Driver::TokioPostgres => Db::connect_tokio_postgres(&args.database_url, args.pool_size)?,
        Driver::Rusqlite => Db::connect_rusqlite(&args.database_url, args.pool_size)?,
    };
    let state = Arc::new(Reference {
        keys,
        validation: validation(&args.issuer, &args.audience),
        db,
    });
    let router = Router::new()
        .route("/graphql", post(graphql))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!("reference listening on {}", listener.local_addr()?);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown())
        .await
        .context("the reference server failed")
}

async fn shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}

/// The gateway's validation rules (see `src/auth/verifier.rs`).
fn validation(issuer: &str, audience: &str) -> Validation {
    let mut v = Validation::new(Algorithm::RS256);
    v.leeway = LEEWAY_SECS;
    v.validate_nbf = true;
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
    v
}

async fn fetch_keys(url: &str) -> anyhow::Result<HashMap<String, DecodingKey>> {
    let set: JwkSet = reqwest::get(url)
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("cannot fetch the JWKS at {url}"))?
        .json()
        .await
        .with_context(|| format!("{url} is not a JWKS"))?;
    let keys: HashMap<String, DecodingKey> = set
        .keys
        .iter()
        .filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?)))
        .collect();
    if keys.is_empty() {
        bail!("the JWKS at {url} has no usable key with a kid");
    }
    Ok(keys)
}

/// The reference's state.
struct Reference {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
    db: Db,
}

/// The database pool, per backend.
enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres {
        pool: sqlx::PgPool,
        /// [`postgres_me`] without and with the artists, made once (sqlx
        /// prepares and caches a statement per connection by its text).
        statements: [&'static str; 2],
    },
    /// tokio-postgres: the same statements, prepared once per connection
    /// (deadpool's statement cache) and bound as typed binary parameters;
    /// the row's text is written without a copy.
    TokioPostgres {
        pool: deadpool_postgres::Pool,
        statements: [String; 2],
    },
    /// rusqlite: `pool_size` connections, each lent to one blocking task at
    /// a time; statements are prepared once per connection by their text
    /// (rusqlite's statement cache), as sqlx's are.
    Rusqlite(Arc<RusqlitePool>),
}

/// The rusqlite connections: a permit per connection, then one taken off
/// the stack for the length of a query.
struct RusqlitePool {
    permits: Arc<tokio::sync::Semaphore>,
    idle: std::sync::Mutex<Vec<rusqlite::Connection>>,
}

impl RusqlitePool {
    /// Runs `f` on an idle connection, on a blocking thread.
    async fn with<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        // The permit goes with the connection to the blocking thread: a
        // request dropped while its query runs (the client went away) must
        // not free the permit before the connection is back.
        let permit = Arc::clone(&self.permits).acquire_owned().await?;
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = pool
                .idle
                .lock()
                .map_err(|_| anyhow::anyhow!("the rusqlite pool is poisoned"))?
                .pop()
                .context("a permit without an idle connection")?;
            let result = f(&conn);
            if let Ok(mut idle) = pool.idle.lock() {
                idle.push(conn);
            }
            Ok(result?)
        })
        .await?
    }
}

impl Db {
    /// Connects with the gateway's pool settings (`src/db.rs`).
    async fn connect(url: &str, pool_size: u32) -> anyhow::Result<Self> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(pool_size)
            .min_connections(1)
            .connect_timeout(std::time::Duration::from_secs(10))
            .acquire_timeout(std::time::Duration::from_secs(10))
            // As the gateway's: no ping on acquiring a hot connection.
            .test_before_acquire_if_idle_for(std::time::Duration::from_secs(30))
            .sqlx_logging(false);
        let conn = Database::connect(options)
            .await
            .with_context(|| format!("cannot connect to {url}"))?;
        Ok(match conn.get_database_backend() {
            DbBackend::Sqlite => Self::Sqlite(conn.get_sqlite_connection_pool().clone()),
            DbBackend::Postgres => Self::Postgres {
                pool: conn.get_postgres_connection_pool().clone(),
                // Two strings for the life of the process.
                statements: [postgres_me(false).leak(), postgres_me(true).leak()],
            },
            other => bail!("unsupported database backend {other:?}"),
        })
    }

    /// A deadpool of `pool_size` tokio-postgres connections, without TLS
    /// (the gateway's is a plain connection too). Connections open on first
    /// use; the warm-up opens them before any measured run.
    fn connect_tokio_postgres(url: &str, pool_size: u32) -> anyhow::Result<Self> {
        let config: tokio_postgres::Config = url
            .parse()
            .with_context(|| format!("{url} is not a PostgreSQL URL"))?;
        let manager = deadpool_postgres::Manager::from_config(
            config,
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig {
                // A connection handed back is used again without a query
                // to check it, as sqlx's pool does.
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(pool_size as usize)
            .build()
            .context("cannot build the tokio-postgres pool")?;
        Ok(Self::TokioPostgres {
            pool,
            statements: [postgres_me(false), postgres_me(true)],
        })
    }

    /// `pool_size` rusqlite connections to the SQLite file of `url`,
    /// opened now, in the mode the gateway left the file in (WAL).
    fn connect_rusqlite(url: &str, pool_size: u32) -> anyhow::Result<Self> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .with_context(|| format!("{url} is not a SQLite URL"))?;
        let path = path.split_once('?').map_or(path, |(path, _)| path);
        let idle = (0..pool_size.max(1))
            .map(|_| {
                let conn = rusqlite::Connection::open(path)
                    .with_context(|| format!("cannot open {path}"))?;
                conn.busy_timeout(std::time::Duration::from_secs(5))?;
                Ok(conn)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self::Rusqlite(Arc::new(RusqlitePool {
            permits: Arc::new(tokio::sync::Semaphore::new(idle.len())),
            idle: std::sync::Mutex::new(idle),
        })))
    }

    /// Writes `{"data":{"me":…}}` for `user_id` into `out`; `false` when
    /// there is no such user.
    async fn me(
        &self,
        user_id: &str,
        fields: Fields,
        pages: Pages,
        out: &mut Vec<u8>,
    ) -> anyhow::Result<bool> {
        match self {
            Db::Sqlite(pool) => {
                let sql = sqlite_me(fields, pages);
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(user_id)
                    .fetch_optional(pool)
                    .await?;
                let Some(row) = row else {
                    return Ok(false);
                };
                SqliteRow {
                    id: row.try_get(0)?,
                    display_name: row.try_get(1)?,
                    roles: row.try_get(2)?,
                    fav_genre: row.try_get(3)?,
                    songs: row.try_get(4)?,
                    playlists: row.try_get(5)?,
                }
                .write(fields, out);
                Ok(true)
            }
            Db::Rusqlite(pool) => {
                let sql = sqlite_me(fields, pages);
                let user_id = user_id.to_owned();
                // The answer is written on the blocking thread, the text
                // borrowed from the row.
                let body = pool
                    .with(move |conn| {
                        let mut statement = conn.prepare_cached(&sql)?;
                        let mut rows = statement.query([&user_id])?;
                        let Some(row) = rows.next()? else {
                            return Ok(None);
                        };
                        let text =
                            |i: usize| -> rusqlite::Result<&str> { Ok(row.get_ref(i)?.as_str()?) };
                        let mut body = Vec::with_capacity(16 * 1024);
                        SqliteRow {
                            id: text(0)?,
                            display_name: text(1)?,
                            roles: text(2)?,
                            fav_genre: row.get_ref(3)?.as_str_or_null()?,
                            songs: text(4)?,
                            playlists: text(5)?,
                        }
                        .write(fields, &mut body);
                        Ok(Some(body))
                    })
                    .await?;
                let Some(body) = body else {
                    return Ok(false);
                };
                *out = body;
                Ok(true)
            }
            Db::Postgres { pool, statements } => {
                let row = sqlx::query(statements[usize::from(fields.song_artist)])
                    .bind(user_id)
                    .bind(pages.songs)
                    .bind(pages.playlists)
                    .bind(pages.playlist_songs)
                    .fetch_optional(pool)
                    .await?;
                let Some(row) = row else {
                    return Ok(false);
                };
                let me = MeRow::decode(&row, fields.song_artist)?;
                me.write(fields, out);
                Ok(true)
            }
            Db::TokioPostgres { pool, statements } => {
                let client = pool.get().await?;
                let statement = client
                    .prepare_cached(&statements[usize::from(fields.song_artist)])
                    .await?;
                let row = client
                    .query_opt(
                        &statement,
                        &[
                            &user_id,
                            &pages.songs,
                            &pages.playlists,
                            &pages.playlist_songs,
                        ],
                    )
                    .await?;
                let Some(row) = row else {
                    return Ok(false);
                };
                MeRow::decode_pg(&row, fields.song_artist)?.write(fields, out);
                Ok(true)
            }
        }
    }
}

/// The PostgreSQL row of [`postgres_me`], decoded: its strings owned
/// (`String`, sqlx) or borrowed from the row (`&str`, tokio-postgres, which
/// decodes arrays of text without a copy). An empty page's `array_agg` is
/// NULL, hence the `Option`s.
#[derive(Debug, Default)]
struct MeRow<S> {
    id: S,
    display_name: S,
    roles: Vec<S>,
    fav_genre: Option<S>,
    song_ids: Vec<i64>,
    song_names: Vec<S>,
    song_artists: Vec<Option<S>>,
    playlist_ids: Vec<i64>,
    playlist_names: Vec<S>,
    playlist_plays: Vec<i64>,
    /// The playlists' songs, sorted by playlist (the page's order), then
    /// position.
    item_playlists: Vec<i64>,
    item_ids: Vec<i64>,
    item_names: Vec<S>,
}

impl MeRow<String> {
    fn decode(row: &PgRow, artist: bool) -> Result<Self, sqlx::Error> {
        fn list<'r, T>(row: &'r PgRow, i: usize) -> Result<Vec<T>, sqlx::Error>
        where
            T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
            Vec<T>: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
        {
            Ok(row.try_get::<Option<Vec<T>>, _>(i)?.unwrap_or_default())
        }
        // Columns after the songs' page shift by one when it has artists.
        let a = usize::from(artist);
        Ok(Self {
            id: row.try_get(0)?,
            display_name: row.try_get(1)?,
            roles: row.try_get(2)?,
            fav_genre: row.try_get(3)?,
            song_ids: list(row, 4)?,
            song_names: list(row, 5)?,
            song_artists: if artist { list(row, 6)? } else { Vec::new() },
            playlist_ids: list(row, 6 + a)?,
            playlist_names: list(row, 7 + a)?,
            playlist_plays: list(row, 8 + a)?,
            item_playlists: list(row, 9 + a)?,
            item_ids: list(row, 10 + a)?,
            item_names: list(row, 11 + a)?,
        })
    }
}

impl<'r> MeRow<&'r str> {
    /// The same row through tokio-postgres, its text borrowed from the row.
    fn decode_pg(
        row: &'r tokio_postgres::Row,
        artist: bool,
    ) -> Result<Self, tokio_postgres::Error> {
        fn list<'r, T>(
            row: &'r tokio_postgres::Row,
            i: usize,
        ) -> Result<Vec<T>, tokio_postgres::Error>
        where
            Vec<T>: tokio_postgres::types::FromSql<'r>,
        {
            Ok(row.try_get::<_, Option<Vec<T>>>(i)?.unwrap_or_default())
        }
        let a = usize::from(artist);
        Ok(Self {
            id: row.try_get(0)?,
            display_name: row.try_get(1)?,
            roles: row.try_get(2)?,
            fav_genre: row.try_get(3)?,
            song_ids: list(row, 4)?,
            song_names: list(row, 5)?,
            song_artists: if artist { list(row, 6)? } else { Vec::new() },
            playlist_ids: list(row, 6 + a)?,
            playlist_names: list(row, 7 + a)?,
            playlist_plays: list(row, 8 + a)?,
            item_playlists: list(row, 9 + a)?,
            item_ids: list(row, 10 + a)?,
            item_names: list(row, 11 + a)?,
        })
    }
}

impl<S: AsRef<str>> MeRow<S> {
    /// `{"data":{"me":…}}`, keys in the query's order, as the gateway
    /// writes them (ids as strings, no whitespace).
    fn write(&self, fields: Fields, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"data\":{\"me\":{");
        if fields.me_id {
            out.extend_from_slice(b"\"id\":");
            json_str(out, self.id.as_ref());
            out.push(b',');
        }
        out.extend_from_slice(b"\"displayName\":");
        json_str(out, self.display_name.as_ref());
        out.extend_from_slice(b",\"roles\":[");
        for (i, role) in self.roles.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_str(out, role.as_ref());
        }
        out.extend_from_slice(b"],\"favGenre\":");
        match &self.fav_genre {
            Some(genre) => json_str(out, genre.as_ref()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"songs\":{\"nodes\":[");
        for (i, (id, name)) in self.song_ids.iter().zip(&self.song_names).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            node_start(out, *id, name.as_ref());
            if fields.song_artist {
                out.extend_from_slice(b",\"artist\":");
                match self.song_artists.get(i).and_then(Option::as_ref) {
                    Some(artist) => json_str(out, artist.as_ref()),
                    None => out.extend_from_slice(b"null"),
                }
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"]},\"playlists\":{\"nodes\":[");
        let mut item = 0;
        let playlists = self
            .playlist_ids
            .iter()
            .zip(&self.playlist_names)
            .zip(&self.playlist_plays);
        for (i, ((&id, name), plays)) in playlists.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            node_start(out, id, name.as_ref());
            let _ = write!(out, ",\"plays\":{plays},\"songs\":{{\"nodes\":[");
            // Items of earlier playlists are all consumed; the ones for
            // this playlist follow, in position order.
            let mut first = true;
            while self.item_playlists.get(item) == Some(&id) {
                if !first {
                    out.push(b',');
                }
                first = false;
                node_start(out, self.item_ids[item], self.item_names[item].as_ref());
                out.push(b'}');
                item += 1;
            }
            out.extend_from_slice(b"]}}");
        }
        out.extend_from_slice(b"]}}}}");
    }
}

/// `{"id":"<id>","name":<name>` (the object left open).
fn node_start(out: &mut Vec<u8>, id: i64, name: &str) {
    let _ = write!(out, "{{\"id\":\"{id}\",\"name\":");
    json_str(out, name);
}

/// A JSON string, escaped by serde_json.
fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The page sizes of the load test's query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pages {
    songs: i64,
    playlists: i64,
    playlist_songs: i64,
}

/// The optional fields of the load test's queries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Fields {
    /// `me { id … }`: asked before the songs' page.
    me_id: bool,
    /// A song's `artist` (in the songs' page).
    song_artist: bool,
}

impl Fields {
    fn of(query: &str) -> Self {
        let words = |s: &str| {
            s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let before_songs = query.find("songs(").map_or(query, |at| &query[..at]);
        let head = words(before_songs);
        // `me { id …`: an `id` among `me`'s fields before the songs' page.
        let me_id = head
            .iter()
            .position(|w| w == "me")
            .is_some_and(|at| head[at + 1..].iter().any(|w| w == "id"));
        Self {
            me_id,
            song_artist: words(query).iter().any(|w| w == "artist"),
        }
    }
}

/// The three `first: N` of the query text, in order; `None` unless there are
/// exactly three, each between 0 and the gateway's maximum page size.
fn page_sizes(query: &str) -> Option<Pages> {
    let mut sizes = Vec::with_capacity(3);
    let mut rest = query;
    while let Some(at) = rest.find("first:") {
        rest = rest[at + "first:".len()..].trim_start();
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let n: i64 = rest[..digits].parse().ok()?;
        if n > MAX_PAGE_SIZE {
            return None;
        }
        sizes.push(n);
        rest = &rest[digits..];
    }
    match sizes[..] {
        [songs, playlists, playlist_songs] => Some(Pages {
            songs,
            playlists,
            playlist_songs,
        }),
        _ => None,
    }
}

#[derive(Deserialize)]
struct GraphqlBody {
    query: String,
}

/// Only what the handler reads from the token.
#[derive(Deserialize)]
struct Claims {
    sub: String,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"errors": [{"message": message, "extensions": {"code": code}}]});
    (status, axum::Json(body)).into_response()
}

/// The token's `sub`, or why the token is refused.
fn authenticate(state: &Reference, headers: &HeaderMap) -> Result<String, &'static str> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or("the Authorization header must be `Bearer <token>`")?;
    let header = jsonwebtoken::decode_header(token).map_err(|_| "the token is malformed")?;
    if header.alg != Algorithm::RS256 {
        return Err("the token's algorithm is not accepted");
    }
    let key = header
        .kid
        .as_deref()
        .and_then(|kid| state.keys.get(kid))
        .ok_or("the token was signed by an unknown key")?;
    let claims = jsonwebtoken::decode::<Claims>(token, key, &state.validation)
        .map_err(|_| "the token is invalid")?
        .claims;
    if claims.sub.trim().is_empty() || claims.sub.len() > 255 {
        return Err("the token lacks the `sub` claim");
    }
    Ok(claims.sub)
}

async fn graphql(State(state): State<Arc<Reference>>, headers: HeaderMap, body: Bytes) -> Response {
    let user_id = match authenticate(&state, &headers) {
        Ok(sub) => sub,
        Err(reason) => return error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", reason),
    };
    let Some((fields, pages)) = serde_json::from_slice::<GraphqlBody>(&body)
        .ok()
        .and_then(|b| Some((Fields::of(&b.query), page_sizes(&b.query)?)))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "expected the load test's `me` query with three `first:` arguments",
        );
    };
    let mut out = Vec::with_capacity(16 * 1024);
    match state.db.me(&user_id, fields, pages, &mut out).await {
        Ok(true) => ([(header::CONTENT_TYPE, "application/json")], out).into_response(),
        Ok(false) => error(StatusCode::OK, "NOT_FOUND", "no such user"),
        Err(e) => {
            eprintln!("reference: query failed: {e:#}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_SERVER_ERROR",
                "internal server error",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_are_read_in_order() {
        let q = crate::load::me_query(20);
        assert_eq!(
            page_sizes(&q),
            Some(Pages {
                songs: 20,
                playlists: 20,
                playlist_songs: 20
            })
        );
        assert_eq!(
            page_sizes("{ a(first:1) b(first: 2) c(first:  3) }"),
            Some(Pages {
                songs: 1,
                playlists: 2,
                playlist_songs: 3
            })
        );
        assert_eq!(page_sizes("{ a(first: 1) }"), None);
        assert_eq!(page_sizes("{ a(first: 1) b(first: 2) c(first: x) }"), None);
        assert_eq!(
            page_sizes("{ a(first: 1) b(first: 2) c(first: 101) }"),
            None
        );
    }

    #[test]
    fn the_fields_are_read_from_both_queries() {
        assert_eq!(
            Fields::of(&crate::load::me_query(20)),
            Fields {
                me_id: false,
                song_artist: true
            }
        );
        assert_eq!(
            Fields::of(crate::load::ISSUE_QUERY),
            Fields {
                me_id: true,
                song_artist: false
            }
        );
        assert_eq!(
            page_sizes(crate::load::ISSUE_QUERY),
            Some(Pages {
                songs: 50,
                playlists: 20,
                playlist_songs: 10
            })
        );
    }

    fn sample() -> MeRow<String> {
        MeRow {
            id: "auth0|x".into(),
            display_name: "A \"quoted\"\nname é".into(),
            roles: vec!["listener".into(), "admin".into()],
            fav_genre: None,
            song_ids: vec![1, 2],
            song_names: vec!["One".into(), "Two\\".into()],
            song_artists: vec![Some("Art".into()), None],
            playlist_ids: vec![10, 11, 12],
            playlist_names: vec!["P10".into(), "P11".into(), "P12".into()],
            playlist_plays: vec![3, 0, 7],
            // Playlist 11 has no songs.
            item_playlists: vec![10, 10, 12],
            item_ids: vec![2, 1, 1],
            item_names: vec!["Two\\".into(), "One".into(), "One".into()],
        }
    }

    #[test]
    fn the_row_is_written_in_the_issue_querys_shape_and_order() {
        let mut out = Vec::new();
        sample().write(
            Fields {
                me_id: true,
                song_artist: false,
            },
            &mut out,
        );
        let expected = serde_json::json!({"data": {"me": {
            "id": "auth0|x",
            "displayName": "A \"quoted\"\nname é",
            "roles": ["listener", "admin"],
            "favGenre": null,
            "songs": {"nodes": [{"id": "1", "name": "One"}, {"id": "2", "name": "Two\\"}]},
            "playlists": {"nodes": [
                {"id": "10", "name": "P10", "plays": 3, "songs": {"nodes": [
                    {"id": "2", "name": "Two\\"}, {"id": "1", "name": "One"}]}},
                {"id": "11", "name": "P11", "plays": 0, "songs": {"nodes": []}},
                {"id": "12", "name": "P12", "plays": 7, "songs": {"nodes": [
                    {"id": "1", "name": "One"}]}},
            ]},
        }}});
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            expected
        );
        // The values match; the keys must also come in the query's order,
        // and strings escaped as serde_json escapes them.
        let at = |key: &str| text.find(key).unwrap();
        assert!(text.starts_with(
            "{\"data\":{\"me\":{\"id\":\"auth0|x\",\"displayName\":\"A \\\"quoted\\\"\\nname é\","
        ));
        assert!(at("\"roles\"") < at("\"favGenre\""));
        assert!(at("\"favGenre\"") < at("\"songs\""));
        assert!(at("\"songs\"") < at("\"playlists\""));
        assert!(
            text.contains("{\"id\":\"10\",\"name\":\"P10\",\"plays\":3,\"songs\":{\"nodes\":[")
        );
        assert!(!text.contains("artist"));
    }

    #[test]
    fn artists_are_written_when_asked_and_null_when_missing() {
        let mut out = Vec::new();
        sample().write(
            Fields {
                me_id: false,
                song_artist: true,
            },
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("{\"data\":{\"me\":{\"displayName\":"));
        assert!(text.contains(
            "\"songs\":{\"nodes\":[{\"id\":\"1\",\"name\":\"One\",\"artist\":\"Art\"},{\"id\":\"2\",\"name\":\"Two\\\\\",\"artist\":null}]}"
        ));
    }

    #[test]
    fn the_sqlite_row_splices_its_json_in_the_querys_order() {
        let row = SqliteRow {
            id: "auth0|x",
            display_name: "A \"q\"",
            roles: r#"["listener"]"#,
            fav_genre: None,
            songs: r#"[{"id":"1","name":"One"}]"#,
            playlists: "[]",
        };
        let mut out = Vec::new();
        row.write(
            Fields {
                me_id: true,
                song_artist: false,
            },
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"data":{"me":{"id":"auth0|x","displayName":"A \"q\"","roles":["listener"],"favGenre":null,"songs":{"nodes":[{"id":"1","name":"One"}]},"playlists":{"nodes":[]}}}}"#
        );
        let mut out = Vec::new();
        row.write(Fields::default(), &mut out);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .starts_with(r#"{"data":{"me":{"displayName":"#)
        );
    }

    #[test]
    fn a_user_without_music_gets_empty_lists() {
        let mut out = Vec::new();
        MeRow {
            display_name: "user".into(),
            ..MeRow::<String>::default()
        }
        .write(Fields::default(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"data\":{\"me\":{\"displayName\":\"user\",\"roles\":[],\"favGenre\":null,\"songs\":{\"nodes\":[]},\"playlists\":{\"nodes\":[]}}}}"
        );
    }
}
