//! The caller's row and the first pages of their music, in one statement.
//!
//! The `me` query is the gateway's hot path. Read field by field it costs a
//! statement for the user's row and one for each list (and each count),
//! and every statement is a round trip: a socket on PostgreSQL, a hand-over
//! to the connection's worker thread on SQLite. [`MusicService::me_bundle`]
//! reads what a query asks of `me` in one statement instead: the row, the
//! pages of songs and playlists as JSON built by the database, each
//! playlist's page of songs nested in it, and the counts asked for.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{DbBackend, FromQueryResult, Value};
use serde::{Deserialize, de::DeserializeOwned};

use super::{MusicService, Page, PageOf, PlaylistSong, PlaylistSongsPage};
use crate::{
    entity::{playlists, songs},
    error::{AppError, AppResult},
    profile::{USER_COLUMNS, USER_SOURCE, UserRecord},
    sql,
};

/// What a query reads of one list: a page of it, its total count, or both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListPlan {
    /// The page asked for, if any item or page info is selected.
    pub page: Option<Page>,
    /// Whether `totalCount` is selected.
    pub count: bool,
}

impl ListPlan {
    fn is_empty(&self) -> bool {
        self.page.is_none() && !self.count
    }
}

/// What a query reads of the caller's music under `me`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MePlan {
    pub songs: ListPlan,
    pub playlists: ListPlan,
    /// The songs of each playlist in the playlists page (needs that page).
    pub playlist_songs: ListPlan,
    /// The optional columns of the songs of `songs`.
    pub song_columns: Columns,
    /// The optional columns of the playlists of `playlists`.
    pub playlist_columns: Columns,
    /// The optional columns of the songs of `playlist_songs`.
    pub playlist_song_columns: Columns,
}

/// Which columns beyond `id` and `name` a list's items need. A column left
/// out is not read, and its field in the row read ahead is left empty: only
/// the query that asked for no such field reads that row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Columns {
    /// A song's `artist` and `genre`; a playlist's `plays` and `featured`.
    pub details: bool,
    /// `created_at`.
    pub created_at: bool,
}

impl Columns {
    /// Every column.
    pub const ALL: Self = Self {
        details: true,
        created_at: true,
    };
    /// Only `id` and `name`.
    pub const NONE: Self = Self {
        details: false,
        created_at: false,
    };
}

impl Default for Columns {
    fn default() -> Self {
        Self::ALL
    }
}

impl MePlan {
    /// Whether the query reads no music at all.
    pub fn is_empty(&self) -> bool {
        self.songs.is_empty() && self.playlists.is_empty()
    }
}

/// The music a [`MePlan`] read, each part with the page it answers.
#[derive(Debug, Default)]
pub struct MeMusic {
    pub songs: Option<(Page, PageOf<songs::Model>)>,
    pub song_count: Option<u64>,
    pub playlists: Option<(Page, PageOf<playlists::Model>)>,
    pub playlist_count: Option<u64>,
    /// Songs of every playlist in `playlists`, for one page.
    pub playlist_songs: Option<(Page, PlaylistSongsPage)>,
    /// Song counts of every playlist in `playlists`.
    pub playlist_song_counts: Option<HashMap<i64, u64>>,
}

#[derive(FromQueryResult)]
struct MeRow {
    id: String,
    email: Option<String>,
    name: Option<String>,
    picture: Option<String>,
    user_metadata: serde_json::Value,
    app_metadata: serde_json::Value,
    synced_at: Option<DateTime<Utc>>,
    auth0_updated_at: Option<DateTime<Utc>>,
    prior_deletion_at: Option<DateTime<Utc>>,
    fav_genre: Option<String>,
    songs_json: Option<String>,
    song_count: Option<i64>,
    playlists_json: Option<String>,
    playlist_count: Option<i64>,
}

#[derive(Deserialize)]
struct PlaylistJson {
    id: i64,
    name: String,
    #[serde(default)]
    plays: i64,
    #[serde(default, deserialize_with = "sql::json_bool")]
    featured: bool,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    songs: Option<Vec<SongJson>>,
    #[serde(default)]
    song_count: Option<i64>,
}

#[derive(Deserialize)]
struct SongJson {
    #[serde(default)]
    position: i64,
    id: i64,
    name: String,
    #[serde(default)]
    artist: Option<String>,
    #[serde(default)]
    genre: Option<String>,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
}

impl SongJson {
    /// The song of `owner` (every song read here is the caller's).
    fn into_model(self, owner: &str) -> songs::Model {
        songs::Model {
            id: self.id,
            user_id: owner.to_owned(),
            name: self.name,
            artist: self.artist,
            genre: self.genre,
            created_at: self.created_at.unwrap_or_default(),
        }
    }
}

/// The columns of a song or playlist to read, by [`Columns`].
fn fields(details: [&'static str; 2], columns: Columns) -> Vec<&'static str> {
    let mut fields = vec!["id", "name"];
    if columns.details {
        fields.extend(details);
    }
    if columns.created_at {
        fields.push("created_at");
    }
    fields
}

const SONG_DETAILS: [&str; 2] = ["artist", "genre"];
const PLAYLIST_DETAILS: [&str; 2] = ["plays", "featured"];

/// SQL text and its bound values, appended in step so `?` placeholders and
/// values stay in the same order.
struct SqlBuilder {
    backend: DbBackend,
    text: String,
    values: Vec<Value>,
}

impl SqlBuilder {
    fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.text.push('?');
        self.values.push(value.into());
        self
    }

    fn postgres(&self) -> bool {
        self.backend == DbBackend::Postgres
    }

    /// `json_object('k', alias.k, …` without the closing parenthesis, so the
    /// caller can add more pairs.
    fn open_object(&mut self, alias: &str, fields: &[&str]) -> &mut Self {
        let function = if self.postgres() {
            "json_build_object("
        } else {
            "json_object("
        };
        self.text.push_str(function);
        let pairs: Vec<String> = fields
            .iter()
            .map(|f| format!("'{f}', {alias}.{f}"))
            .collect();
        self.text.push_str(&pairs.join(", "));
        self
    }

    /// The aggregate function opening a JSON array of objects.
    fn open_array_agg(&mut self) -> &mut Self {
        let function = if self.postgres() {
            "json_agg("
        } else {
            "json_group_array("
        };
        self.push(function)
    }

    /// Keyset page condition and limit (one more row than the page, so the
    /// answer tells whether a next page follows).
    fn page(&mut self, key: &str, page: Page) -> &mut Self {
        if let Some(after) = page.after {
            self.push(" AND ").push(key).push(" > ").bind(after);
        }
        self.push(" ORDER BY ").push(key).limit(page)
    }

    /// `LIMIT n` with the number in the text, not bound. SQLite (3.47 and
    /// later) lets a bound LIMIT steer its plan, so rebinding it, as every
    /// execution does, expires the prepared statement: each request then
    /// parsed and planned the whole statement again, a fifth of the
    /// gateway's CPU in a profile. A page size is a validated number, and
    /// the few sizes clients use each get their own cached statement.
    fn limit(&mut self, page: Page) -> &mut Self {
        self.push(" LIMIT ").push(&(page.first + 1).to_string())
    }
}

impl MusicService {
    /// The user's row and the music `plan` asks for, in one statement. The
    /// row is `None` for a user not in the database yet.
    pub async fn me_bundle(
        &self,
        user_id: &str,
        plan: &MePlan,
    ) -> AppResult<(Option<UserRecord>, MeMusic)> {
        let backend = self.db.get_database_backend();
        let mut q = SqlBuilder {
            backend,
            text: String::with_capacity(2048),
            values: Vec::new(),
        };
        let text_cast = if q.postgres() { "::text" } else { "" };
        q.push("SELECT ").push(USER_COLUMNS).push(", ");

        let song_fields = fields(SONG_DETAILS, plan.song_columns);
        let playlist_fields = fields(PLAYLIST_DETAILS, plan.playlist_columns);
        let playlist_song_fields = fields(SONG_DETAILS, plan.playlist_song_columns);
        match plan.songs.page {
            Some(page) => {
                q.push("(SELECT ").open_array_agg();
                q.open_object("s", &song_fields).push(") ORDER BY s.id)");
                q.push(text_cast).push(" FROM (SELECT ");
                q.push(&song_fields.join(", "));
                q.push(" FROM songs WHERE user_id = u.id").page("id", page);
                q.push(") s) AS songs_json, ");
            }
            None => {
                q.push("CAST(NULL AS TEXT) AS songs_json, ");
            }
        }
        count_column(
            &mut q,
            plan.songs.count,
            "songs WHERE user_id = u.id",
            "song_count",
        );
        q.push(", ");

        let playlist_songs = plan
            .playlist_songs
            .page
            .filter(|_| plan.playlists.page.is_some());
        match plan.playlists.page {
            Some(page) => {
                q.push("(SELECT ").open_array_agg();
                q.open_object("p", &playlist_fields);
                if let Some(songs_page) = playlist_songs {
                    q.push(", 'songs', ");
                    if q.postgres() {
                        q.push("COALESCE((SELECT ");
                    } else {
                        q.push("json((SELECT ");
                    }
                    q.open_array_agg().open_object("s", &playlist_song_fields);
                    q.push(", 'position', ps.position) ORDER BY ps.position, ps.song_id)");
                    q.push(
                        " FROM (SELECT song_id, position FROM playlist_songs \
                         WHERE playlist_id = p.id",
                    );
                    if let Some(after) = songs_page.after {
                        q.push(" AND position > ").bind(after);
                    }
                    q.push(" ORDER BY position, song_id").limit(songs_page);
                    q.push(") ps JOIN songs s ON s.id = ps.song_id)");
                    q.push(if q.postgres() { ", '[]'::json)" } else { ")" });
                }
                if plan.playlist_songs.count {
                    q.push(
                        ", 'song_count', (SELECT COUNT(*) FROM playlist_songs \
                         WHERE playlist_id = p.id)",
                    );
                }
                q.push(") ORDER BY p.id)").push(text_cast);
                q.push(" FROM (SELECT ").push(&playlist_fields.join(", "));
                q.push(" FROM playlists WHERE user_id = u.id")
                    .page("id", page);
                q.push(") p) AS playlists_json, ");
            }
            None => {
                q.push("CAST(NULL AS TEXT) AS playlists_json, ");
            }
        }
        count_column(
            &mut q,
            plan.playlists.count,
            "playlists WHERE user_id = u.id",
            "playlist_count",
        );
        q.push(USER_SOURCE);
        q.values.push(user_id.into());

        let stmt = sql::stmt(backend, &q.text, q.values);
        let Some(row) = MeRow::find_by_statement(stmt).one(&self.db).await? else {
            return Ok((None, MeMusic::default()));
        };

        let mut music = MeMusic {
            song_count: row.song_count.map(|n| n as u64),
            playlist_count: row.playlist_count.map(|n| n as u64),
            ..MeMusic::default()
        };
        if let Some(page) = plan.songs.page {
            let songs: Vec<SongJson> = parse_array(row.songs_json.as_deref())?;
            let songs = songs.into_iter().map(|s| s.into_model(&row.id)).collect();
            music.songs = Some((page, PageOf::from_overfetch(songs, page.first)));
        }
        if let Some(page) = plan.playlists.page {
            let items: Vec<PlaylistJson> = parse_array(row.playlists_json.as_deref())?;
            let mut models = Vec::with_capacity(items.len());
            let mut pages = HashMap::new();
            let mut counts = HashMap::new();
            for item in items {
                if let (Some(songs_page), Some(songs)) = (playlist_songs, item.songs) {
                    let songs = songs
                        .into_iter()
                        .map(|s| PlaylistSong {
                            position: s.position,
                            song: s.into_model(&row.id),
                        })
                        .collect();
                    pages.insert(item.id, PageOf::from_overfetch(songs, songs_page.first));
                }
                if let Some(n) = item.song_count {
                    counts.insert(item.id, n as u64);
                }
                models.push(playlists::Model {
                    id: item.id,
                    user_id: row.id.clone(),
                    name: item.name,
                    plays: item.plays,
                    featured: item.featured,
                    created_at: item.created_at.unwrap_or_default(),
                });
            }
            let playlists = PageOf::from_overfetch(models, page.first);
            // The extra row fetched to learn `has_next` is not on the page.
            let on_page: Vec<i64> = playlists.items.iter().map(|p| p.id).collect();
            if let Some(songs_page) = playlist_songs {
                pages.retain(|id, _| on_page.contains(id));
                for id in &on_page {
                    pages.entry(*id).or_insert(PageOf {
                        items: Vec::new(),
                        has_next: false,
                    });
                }
                music.playlist_songs = Some((songs_page, pages));
            }
            if plan.playlist_songs.count {
                counts.retain(|id, _| on_page.contains(id));
                music.playlist_song_counts = Some(counts);
            }
            music.playlists = Some((page, playlists));
        }
        let user = UserRecord {
            id: row.id,
            email: row.email,
            name: row.name,
            picture: row.picture,
            user_metadata: row.user_metadata,
            app_metadata: row.app_metadata,
            synced_at: row.synced_at,
            auth0_updated_at: row.auth0_updated_at,
            prior_deletion_at: row.prior_deletion_at,
            fav_genre: row.fav_genre,
        };
        Ok((Some(user), music))
    }
}

/// `(SELECT COUNT(*) FROM <from>) AS <name>` or a typed NULL.
fn count_column(q: &mut SqlBuilder, wanted: bool, from: &str, name: &str) {
    if wanted {
        q.push("(SELECT CAST(COUNT(*) AS BIGINT) FROM ")
            .push(from)
            .push(") AS ");
    } else {
        q.push("CAST(NULL AS BIGINT) AS ");
    }
    q.push(name);
}

/// A JSON array built by the database; `None` (no rows, on PostgreSQL) is empty.
fn parse_array<T: DeserializeOwned>(text: Option<&str>) -> AppResult<Vec<T>> {
    match text {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| {
            AppError::Internal(anyhow::anyhow!("unexpected JSON from the database: {e}"))
        }),
    }
}
