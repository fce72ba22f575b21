//! The reference: what a team would write by hand for the load test's query.
//!
//! `POST /graphql` validates the RS256 bearer token as strictly as the
//! gateway (algorithm pinned, `kid` looked up in a JWKS fetched at start,
//! `exp`/`nbf` with the same 30 s leeway, `iss`, `aud`, required `sub`), then
//! answers the full `me` query with ONE SQL statement that builds the whole
//! document in the database (PostgreSQL's `json_build_object`/`json_agg`,
//! SQLite's `json_object`/`json_group_array`).
//!
//! It does not parse GraphQL. It reads the body as JSON and takes the page
//! sizes from the query text: the three `first: N` arguments, in the order
//! the load test's query has them (songs, playlists, a playlist's songs).
//! Any other query gets the same shape of answer; it is a benchmark
//! baseline, not a GraphQL server.
//!
//! Fairness: the same database, a pool of the same size built by the same
//! library (SeaORM's connect, then its sqlx pool, with prepared statements
//! cached per connection as the gateway's are), no cache of answers.

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

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
use sea_orm::{ConnectOptions, Database, DbBackend, sqlx};
use serde::Deserialize;

/// The gateway's clock-skew allowance on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: u64 = 30;

/// The gateway's largest page size (`MAX_PAGE_SIZE`'s default).
const MAX_PAGE_SIZE: i64 = 100;

/// The document for PostgreSQL. `json` (not `jsonb`) keeps the keys in the
/// order written, which is the query's order; its output has spaces that
/// [`compact_json`] removes.
const POSTGRES_ME: &str = "\
SELECT json_build_object(
  'displayName', COALESCE(u.user_metadata ->> 'displayName', 'user'),
  'roles', COALESCE(u.app_metadata -> 'roles', '[]'::jsonb),
  'favGenre', d.fav_genre,
  'songs', json_build_object('nodes', COALESCE((
    SELECT json_agg(json_build_object('id', s.id::text, 'name', s.name, 'artist', s.artist) ORDER BY s.id)
    FROM (SELECT id, name, artist FROM songs WHERE user_id = u.id ORDER BY id LIMIT $2) s
  ), '[]'::json)),
  'playlists', json_build_object('nodes', COALESCE((
    SELECT json_agg(json_build_object('id', p.id::text, 'name', p.name, 'plays', p.plays,
      'songs', json_build_object('nodes', COALESCE((
        SELECT json_agg(json_build_object('id', s.id::text, 'name', s.name) ORDER BY ps.position, ps.song_id)
        FROM (SELECT song_id, position FROM playlist_songs WHERE playlist_id = p.id
              ORDER BY position, song_id LIMIT $4) ps
        JOIN songs s ON s.id = ps.song_id
      ), '[]'::json))) ORDER BY p.id)
    FROM (SELECT id, name, plays FROM playlists WHERE user_id = u.id ORDER BY id LIMIT $3) p
  ), '[]'::json))
)::text
FROM users u LEFT JOIN user_data d ON d.user_id = u.id
WHERE u.id = $1";

/// The document for SQLite. A value's JSON subtype does not survive a
/// subquery, so each subquery's array is passed through `json()` to be
/// embedded as JSON rather than as a string.
const SQLITE_ME: &str = "\
SELECT json_object(
  'displayName', COALESCE(json_extract(u.user_metadata, '$.displayName'), 'user'),
  'roles', json(COALESCE(json_extract(u.app_metadata, '$.roles'), '[]')),
  'favGenre', d.fav_genre,
  'songs', json_object('nodes', json((
    SELECT json_group_array(json_object('id', CAST(s.id AS TEXT), 'name', s.name, 'artist', s.artist) ORDER BY s.id)
    FROM (SELECT id, name, artist FROM songs WHERE user_id = u.id ORDER BY id LIMIT ?2) s
  ))),
  'playlists', json_object('nodes', json((
    SELECT json_group_array(json_object('id', CAST(p.id AS TEXT), 'name', p.name, 'plays', p.plays,
      'songs', json_object('nodes', json((
        SELECT json_group_array(json_object('id', CAST(s.id AS TEXT), 'name', s.name) ORDER BY ps.position, ps.song_id)
        FROM (SELECT song_id, position FROM playlist_songs WHERE playlist_id = p.id
              ORDER BY position, song_id LIMIT ?4) ps
        JOIN songs s ON s.id = ps.song_id
      )))) ORDER BY p.id)
    FROM (SELECT id, name, plays FROM playlists WHERE user_id = u.id ORDER BY id LIMIT ?3) p
  )))
)
FROM users u LEFT JOIN user_data d ON d.user_id = u.id
WHERE u.id = ?1";

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
}

/// `music-gateway-bench reference`: serves until SIGINT or SIGTERM.
pub async fn main(args: ReferenceArgs) -> anyhow::Result<()> {
    let keys = fetch_keys(&args.jwks_url).await?;
    let db = Db::connect(&args.database_url, args.pool_size).await?;
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
    Postgres(sqlx::PgPool),
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
            .sqlx_logging(false);
        let conn = Database::connect(options)
            .await
            .with_context(|| format!("cannot connect to {url}"))?;
        Ok(match conn.get_database_backend() {
            DbBackend::Sqlite => Self::Sqlite(conn.get_sqlite_connection_pool().clone()),
            DbBackend::Postgres => Self::Postgres(conn.get_postgres_connection_pool().clone()),
            other => bail!("unsupported database backend {other:?}"),
        })
    }

    /// The `me` document of `user_id`, as the database writes it.
    async fn me(&self, user_id: &str, pages: Pages) -> Result<Option<String>, sqlx::Error> {
        match self {
            Db::Sqlite(pool) => {
                // The page sizes go into the text, as the gateway's do: SQLite
                // expires a prepared statement whose bound LIMIT is rebound,
                // so a bound LIMIT would parse and plan it again every time.
                let sql = SQLITE_ME
                    .replace("LIMIT ?2", &format!("LIMIT {}", pages.songs))
                    .replace("LIMIT ?3", &format!("LIMIT {}", pages.playlists))
                    .replace("LIMIT ?4", &format!("LIMIT {}", pages.playlist_songs));
                sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
                    .bind(user_id)
                    .fetch_optional(pool)
                    .await
            }
            Db::Postgres(pool) => {
                sqlx::query_scalar::<_, String>(POSTGRES_ME)
                    .bind(user_id)
                    .bind(pages.songs)
                    .bind(pages.playlists)
                    .bind(pages.playlist_songs)
                    .fetch_optional(pool)
                    .await
            }
        }
    }
}

/// The page sizes of the load test's query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pages {
    songs: i64,
    playlists: i64,
    playlist_songs: i64,
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
    let Some(pages) = serde_json::from_slice::<GraphqlBody>(&body)
        .ok()
        .and_then(|b| page_sizes(&b.query))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "expected the load test's `me` query with three `first:` arguments",
        );
    };
    match state.db.me(&user_id, pages).await {
        Ok(Some(document)) => {
            let mut out = Vec::with_capacity(document.len() + 20);
            out.extend_from_slice(b"{\"data\":{\"me\":");
            compact_json(&document, &mut out);
            out.extend_from_slice(b"}}");
            ([(header::CONTENT_TYPE, "application/json")], out).into_response()
        }
        Ok(None) => error(StatusCode::OK, "NOT_FOUND", "no such user"),
        Err(e) => {
            eprintln!("reference: query failed: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_SERVER_ERROR",
                "internal server error",
            )
        }
    }
}

/// Appends `json` to `out` without the whitespace between tokens, as
/// serde_json writes it. (PostgreSQL's `json` output puts spaces around `:`
/// and `,`; strings are copied verbatim, escapes included.)
pub fn compact_json(json: &str, out: &mut Vec<u8>) {
    let mut in_string = false;
    let mut escaped = false;
    for &b in json.as_bytes() {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !b.is_ascii_whitespace() {
            if b == b'"' {
                in_string = true;
            }
            out.push(b);
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
    fn compact_json_removes_whitespace_outside_strings_only() {
        let mut out = Vec::new();
        compact_json(
            "{\"a b\" : [1, \n 2], \"c\" : \"x \\\" , y\", \"d\" : null}",
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"a b\":[1,2],\"c\":\"x \\\" , y\",\"d\":null}"
        );
    }
}
