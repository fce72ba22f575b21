//! Bulk seeding of benchmark users: profiles, favourite genres, songs,
//! playlists and their songs, with multi-row INSERTs in one transaction.
//!
//! Ids of songs and playlists are assigned here (after the largest id in the
//! table) rather than by the database, so the playlist rows can reference the
//! songs without reading them back. PostgreSQL's sequences are moved past
//! them afterwards, so later inserts by the gateway still get fresh ids.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use chrono::{DateTime, Utc};
use clap::Args;
use rand::{Rng, SeedableRng, rngs::StdRng};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
    TransactionTrait, Value,
};
use serde_json::json;

/// Most bind parameters in one statement: below SQLite's 32766 and
/// PostgreSQL's 65535.
const MAX_PARAMS: usize = 30_000;

/// Genres handed out to users' `fav_genre` and songs, in turn.
const GENRES: &[&str] = &["jazz", "rock", "pop", "folk", "techno", "classical", "soul"];

/// Arguments of `music-gateway-bench seed`.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// The database, already migrated (`music-gateway migrate`).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// How many users.
    #[arg(long, default_value_t = 2000)]
    pub users: u32,
    /// Songs in each user's library.
    #[arg(long, default_value_t = 20)]
    pub songs: u32,
    /// Playlists of each user.
    #[arg(long, default_value_t = 5)]
    pub playlists: u32,
    /// Songs in each playlist (at most `--songs`).
    #[arg(long, default_value_t = 10)]
    pub songs_per_playlist: u32,
    /// User ids are `auth0|{prefix}{n:05}`.
    #[arg(long, default_value = "bench")]
    pub prefix: String,
}

/// `music-gateway-bench seed`.
pub async fn main(args: SeedArgs) -> anyhow::Result<()> {
    let spec = SeedSpec {
        prefix: args.prefix,
        users: args.users,
        songs: args.songs,
        playlists: args.playlists,
        songs_per_playlist: args.songs_per_playlist,
    };
    let db = connect(&args.database_url).await?;
    let seeded = seed(&db, &spec, Utc::now()).await?;
    eprintln!(
        "seeded {} users ({} rows) in {:.1} s",
        spec.users,
        seeded.rows,
        seeded.elapsed.as_secs_f64()
    );
    Ok(())
}

/// What to seed.
#[derive(Clone, Debug)]
pub struct SeedSpec {
    /// User ids are `auth0|{prefix}{n:05}`.
    pub prefix: String,
    pub users: u32,
    pub songs: u32,
    pub playlists: u32,
    pub songs_per_playlist: u32,
}

impl SeedSpec {
    /// The id of user number `n` (0-based).
    pub fn user_id(&self, n: u32) -> String {
        format!("auth0|{}{n:05}", self.prefix)
    }

    /// Every user id, in order.
    pub fn user_ids(&self) -> Vec<String> {
        (0..self.users).map(|n| self.user_id(n)).collect()
    }

    /// Rows the full `me` query returns for one user at page size `first`:
    /// songs, playlists, and each playlist's songs.
    pub fn rows_returned(&self, first: u32) -> u64 {
        let songs = u64::from(first.min(self.songs));
        let playlists = u64::from(first.min(self.playlists));
        let per_playlist = u64::from(first.min(self.songs_per_playlist));
        songs + playlists + playlists * per_playlist
    }
}

/// The profile of user number `n`, as Auth0 would answer it; the `users`
/// row holds the same metadata.
pub fn profile(spec: &SeedSpec, n: u32) -> serde_json::Value {
    json!({
        "user_id": spec.user_id(n),
        "email": format!("{}{n}@bench.invalid", spec.prefix),
        "name": format!("Bench User {n}"),
        "user_metadata": {"displayName": format!("Bench {n}"), "theme": "dark"},
        "app_metadata": {"roles": ["listener"], "plan": "premium"},
    })
}

/// What [`seed`] wrote.
#[derive(Clone, Debug)]
pub struct Seeded {
    /// Rows inserted, over all tables.
    pub rows: u64,
    pub elapsed: Duration,
}

/// Connects with one connection, as the seed needs no more.
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(1)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    Database::connect(options)
        .await
        .with_context(|| format!("cannot connect to {url}"))
}

/// Inserts `spec`'s users with `synced_at` (and the other timestamps) set to
/// `synced_at`, in one transaction, then (PostgreSQL) refreshes the
/// planner's statistics.
pub async fn seed(
    db: &DatabaseConnection,
    spec: &SeedSpec,
    synced_at: DateTime<Utc>,
) -> anyhow::Result<Seeded> {
    ensure!(
        spec.songs_per_playlist <= spec.songs,
        "--songs-per-playlist ({}) cannot exceed --songs ({}): a song is in a playlist once",
        spec.songs_per_playlist,
        spec.songs
    );
    let started = Instant::now();
    let backend = db.get_database_backend();
    let txn = db.begin().await?;
    let first_song = max_id(&txn, "songs").await? + 1;
    let first_playlist = max_id(&txn, "playlists").await? + 1;
    let mut inserter = Inserter { backend, rows: 0 };
    let users = spec.users;
    let (songs, playlists, per_playlist) = (
        i64::from(spec.songs),
        i64::from(spec.playlists),
        i64::from(spec.songs_per_playlist),
    );

    inserter
        .insert(
            &txn,
            "users",
            &[
                "id",
                "email",
                "name",
                "user_metadata",
                "app_metadata",
                "synced_at",
                "created_at",
                "updated_at",
            ],
            (0..users).map(|n| {
                let p = profile(spec, n);
                vec![
                    spec.user_id(n).into(),
                    p["email"].as_str().map(String::from).into(),
                    p["name"].as_str().map(String::from).into(),
                    p["user_metadata"].clone().into(),
                    p["app_metadata"].clone().into(),
                    synced_at.into(),
                    synced_at.into(),
                    synced_at.into(),
                ]
            }),
        )
        .await?;
    inserter
        .insert(
            &txn,
            "user_data",
            &["user_id", "fav_genre", "updated_at"],
            (0..users).map(|n| {
                vec![
                    spec.user_id(n).into(),
                    GENRES[n as usize % GENRES.len()].to_owned().into(),
                    synced_at.into(),
                ]
            }),
        )
        .await?;
    inserter
        .insert(
            &txn,
            "songs",
            &["id", "user_id", "name", "artist", "genre", "created_at"],
            (0..users).flat_map(|n| {
                (0..songs).map(move |j| {
                    let id = first_song + i64::from(n) * songs + j;
                    vec![
                        id.into(),
                        spec.user_id(n).into(),
                        format!("Song {j} of {n}").into(),
                        format!("Artist {}", j % 13).into(),
                        GENRES[j as usize % GENRES.len()].to_owned().into(),
                        synced_at.into(),
                    ]
                })
            }),
        )
        .await?;
    // Plays are random but reproducible, and small enough that no user
    // reaches the playlist_editor threshold by accident.
    let mut rng = StdRng::seed_from_u64(42);
    let plays: Vec<i64> = (0..i64::from(users) * playlists)
        .map(|_| rng.gen_range(0..=9))
        .collect();
    inserter
        .insert(
            &txn,
            "playlists",
            &["id", "user_id", "name", "plays", "featured", "created_at"],
            (0..users).flat_map(|n| {
                let plays = &plays;
                (0..playlists).map(move |k| {
                    let index = i64::from(n) * playlists + k;
                    vec![
                        (first_playlist + index).into(),
                        spec.user_id(n).into(),
                        format!("Playlist {k} of {n}").into(),
                        plays[index as usize].into(),
                        false.into(),
                        synced_at.into(),
                    ]
                })
            }),
        )
        .await?;
    inserter
        .insert(
            &txn,
            "playlist_songs",
            &["playlist_id", "song_id", "user_id", "position"],
            (0..users).flat_map(|n| {
                (0..playlists).flat_map(move |k| {
                    let playlist = first_playlist + i64::from(n) * playlists + k;
                    // Playlist k starts at song k and takes the next ones,
                    // wrapping: distinct songs, different for each playlist.
                    (0..per_playlist).map(move |position| {
                        let song = first_song + i64::from(n) * songs + (k + position) % songs;
                        vec![
                            playlist.into(),
                            song.into(),
                            spec.user_id(n).into(),
                            (position + 1).into(),
                        ]
                    })
                })
            }),
        )
        .await?;
    if backend == DbBackend::Postgres {
        for table in ["songs", "playlists"] {
            txn.execute_unprepared(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                 (SELECT MAX(id) FROM {table}))"
            ))
            .await
            .with_context(|| format!("cannot move the {table} id sequence"))?;
        }
    }
    txn.commit().await.context("cannot commit the seed")?;
    // PostgreSQL's autovacuum would analyze the new rows soon anyway; doing
    // it now keeps the plans the same from the first request. SQLite has no
    // automatic ANALYZE, and a gateway's database normally has no
    // statistics: with them, this SQLite build (STAT4) re-prepares
    // statements whose plan depends on a bound value at every execution,
    // which would make both servers pay a cost they do not pay in use.
    if backend == DbBackend::Postgres {
        db.execute_unprepared("ANALYZE")
            .await
            .context("ANALYZE failed")?;
    }
    Ok(Seeded {
        rows: inserter.rows,
        elapsed: started.elapsed(),
    })
}

async fn max_id(conn: &impl ConnectionTrait, table: &str) -> anyhow::Result<i64> {
    let stmt = Statement::from_string(
        conn.get_database_backend(),
        format!("SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) AS m FROM {table}"),
    );
    let row = conn
        .query_one_raw(stmt)
        .await?
        .context("MAX(id) returned no row")?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

/// Multi-row INSERTs, as many rows a statement as the parameter limit allows.
struct Inserter {
    backend: DbBackend,
    rows: u64,
}

impl Inserter {
    async fn insert(
        &mut self,
        conn: &impl ConnectionTrait,
        table: &str,
        columns: &[&str],
        rows: impl Iterator<Item = Vec<Value>>,
    ) -> anyhow::Result<()> {
        let per_statement = (MAX_PARAMS / columns.len()).max(1);
        let mut batch: Vec<Value> = Vec::with_capacity(per_statement * columns.len());
        let mut in_batch = 0;
        for row in rows {
            debug_assert_eq!(row.len(), columns.len());
            batch.extend(row);
            in_batch += 1;
            if in_batch == per_statement {
                self.flush(conn, table, columns, &mut batch, in_batch)
                    .await?;
                in_batch = 0;
            }
        }
        if in_batch > 0 {
            self.flush(conn, table, columns, &mut batch, in_batch)
                .await?;
        }
        Ok(())
    }

    async fn flush(
        &mut self,
        conn: &impl ConnectionTrait,
        table: &str,
        columns: &[&str],
        batch: &mut Vec<Value>,
        rows: usize,
    ) -> anyhow::Result<()> {
        let sql = insert_sql(self.backend, table, columns, rows);
        let values = std::mem::take(batch);
        conn.execute_raw(Statement::from_sql_and_values(self.backend, sql, values))
            .await
            .with_context(|| format!("cannot insert into {table}"))?;
        self.rows += rows as u64;
        Ok(())
    }
}

/// `INSERT INTO table (a, b) VALUES (?, ?), (?, ?)` with the backend's placeholders.
fn insert_sql(backend: DbBackend, table: &str, columns: &[&str], rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
    let mut n = 0;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns.len() {
            if column > 0 {
                sql.push_str(", ");
            }
            n += 1;
            match backend {
                DbBackend::Postgres => {
                    sql.push('$');
                    sql.push_str(&n.to_string());
                }
                _ => sql.push('?'),
            }
        }
        sql.push(')');
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_sql_numbers_placeholders_for_postgres() {
        assert_eq!(
            insert_sql(DbBackend::Postgres, "t", &["a", "b"], 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
        assert_eq!(
            insert_sql(DbBackend::Sqlite, "t", &["a"], 2),
            "INSERT INTO t (a) VALUES (?), (?)"
        );
    }

    #[test]
    fn ids_and_rows_returned() {
        let spec = SeedSpec {
            prefix: "bench".into(),
            users: 3,
            songs: 20,
            playlists: 5,
            songs_per_playlist: 10,
        };
        assert_eq!(spec.user_id(42), "auth0|bench00042");
        assert_eq!(spec.user_ids().len(), 3);
        assert_eq!(spec.rows_returned(20), 20 + 5 + 5 * 10);
        assert_eq!(spec.rows_returned(1), 3);
        assert_eq!(
            profile(&spec, 42)["user_metadata"]["displayName"],
            "Bench 42"
        );
    }
}
