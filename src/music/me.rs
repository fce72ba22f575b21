//! The caller's row and the first pages of their music, in one statement.
//!
//! The `me` query is the gateway's hot path. Read field by field it costs a
//! statement for the user's row and one for each list (and each count),
//! and every statement is a round trip: a socket on PostgreSQL, a hand-over
//! to the connection's worker thread on SQLite. [`MusicService::me_bundle`]
//! reads what a query asks of `me` in one statement instead: the row, the
//! pages of songs and playlists, each playlist's page of songs, and the
//! counts asked for. On PostgreSQL the pages come as plain arrays; on SQLite
//! as JSON built by the database (see the two functions for why).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DbBackend, FromQueryResult, Statement, Value,
    sqlx::{self, Row as _, postgres::PgRow},
};
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

/// SQL text and its bound values, appended in step so placeholders and
/// values stay in the same order. Written out, not built with sea-query: the
/// statement's JSON and array aggregates over per-parent windows are text
/// either way, and this keeps the planner's read on one page.
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
        self.values.push(value.into());
        if self.postgres() {
            self.text.push('$');
            self.text.push_str(&self.values.len().to_string());
        } else {
            self.text.push('?');
        }
        self
    }

    fn statement(self) -> Statement {
        Statement::from_sql_and_values(self.backend, self.text, self.values)
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

    /// `array_agg(f) AS <prefix>f, …` for each of `fields`.
    fn aggregates(&mut self, prefix: &str, fields: &[&str]) -> &mut Self {
        let columns: Vec<String> = fields
            .iter()
            .map(|f| format!("array_agg({f}) AS {prefix}{f}"))
            .collect();
        self.push(&columns.join(", "))
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

/// The playlists of a page, each with what was read of its songs.
struct PlaylistItem {
    model: playlists::Model,
    songs: Option<Vec<PlaylistSong>>,
    song_count: Option<i64>,
}

/// What either backend's statement read, before it becomes pages.
struct Read {
    user: UserRecord,
    songs: Vec<songs::Model>,
    song_count: Option<i64>,
    playlists: Vec<PlaylistItem>,
    playlist_count: Option<i64>,
}

impl MusicService {
    /// The user's row and the music `plan` asks for, in one statement. The
    /// row is `None` for a user not in the database yet.
    pub async fn me_bundle(
        &self,
        user_id: &str,
        plan: &MePlan,
    ) -> AppResult<(Option<UserRecord>, MeMusic)> {
        let read = match self.db.get_database_backend() {
            DbBackend::Postgres => self.me_postgres(user_id, plan).await?,
            backend => self.me_json(backend, user_id, plan).await?,
        };
        let Some(read) = read else {
            return Ok((None, MeMusic::default()));
        };
        let playlist_songs = plan
            .playlist_songs
            .page
            .filter(|_| plan.playlists.page.is_some());
        let mut music = MeMusic {
            song_count: read.song_count.map(|n| n as u64),
            playlist_count: read.playlist_count.map(|n| n as u64),
            ..MeMusic::default()
        };
        if let Some(page) = plan.songs.page {
            music.songs = Some((page, PageOf::from_overfetch(read.songs, page.first)));
        }
        if let Some(page) = plan.playlists.page {
            let mut models = Vec::with_capacity(read.playlists.len());
            let mut pages = HashMap::new();
            let mut counts = HashMap::new();
            for item in read.playlists {
                if let (Some(songs_page), Some(songs)) = (playlist_songs, item.songs) {
                    pages.insert(
                        item.model.id,
                        PageOf::from_overfetch(songs, songs_page.first),
                    );
                }
                if let Some(n) = item.song_count {
                    counts.insert(item.model.id, n as u64);
                }
                models.push(item.model);
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
                for id in &on_page {
                    counts.entry(*id).or_insert(0);
                }
                music.playlist_song_counts = Some(counts);
            }
            music.playlists = Some((page, playlists));
        }
        Ok((Some(read.user), music))
    }

    /// SQLite: the pages as JSON built by the database. Its JSON functions
    /// run in the gateway's process, and one value per list is one hand-over
    /// from the driver's worker thread instead of one per row.
    async fn me_json(
        &self,
        backend: DbBackend,
        user_id: &str,
        plan: &MePlan,
    ) -> AppResult<Option<Read>> {
        let mut q = SqlBuilder {
            backend,
            text: String::with_capacity(2048),
            values: Vec::new(),
        };
        q.push("SELECT ").push(USER_COLUMNS).push(", ");

        let song_fields = fields(SONG_DETAILS, plan.song_columns);
        let playlist_fields = fields(PLAYLIST_DETAILS, plan.playlist_columns);
        let playlist_song_fields = fields(SONG_DETAILS, plan.playlist_song_columns);
        match plan.songs.page {
            Some(page) => {
                q.push("(SELECT ").open_array_agg();
                q.open_object("s", &song_fields).push(") ORDER BY s.id)");
                q.push(" FROM (SELECT ");
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
                    q.push(", 'songs', json((SELECT ");
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
                    q.push(") ps JOIN songs s ON s.id = ps.song_id))");
                }
                if plan.playlist_songs.count {
                    q.push(
                        ", 'song_count', (SELECT COUNT(*) FROM playlist_songs \
                         WHERE playlist_id = p.id)",
                    );
                }
                q.push(") ORDER BY p.id)");
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
        q.push(USER_SOURCE).bind(user_id);

        let stmt = q.statement();
        let Some(row) = MeRow::find_by_statement(stmt).one(&self.db).await? else {
            return Ok(None);
        };
        let songs = match plan.songs.page {
            Some(_) => parse_array::<SongJson>(row.songs_json.as_deref())?
                .into_iter()
                .map(|s| s.into_model(&row.id))
                .collect(),
            None => Vec::new(),
        };
        let playlists = match plan.playlists.page {
            Some(_) => parse_array::<PlaylistJson>(row.playlists_json.as_deref())?
                .into_iter()
                .map(|item| PlaylistItem {
                    songs: item.songs.map(|songs| {
                        songs
                            .into_iter()
                            .map(|s| PlaylistSong {
                                position: s.position,
                                song: s.into_model(&row.id),
                            })
                            .collect()
                    }),
                    song_count: item.song_count,
                    model: playlists::Model {
                        id: item.id,
                        user_id: row.id.clone(),
                        name: item.name,
                        plays: item.plays,
                        featured: item.featured,
                        created_at: item.created_at.unwrap_or_default(),
                    },
                })
                .collect(),
            None => Vec::new(),
        };
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
        Ok(Some(Read {
            user,
            songs,
            song_count: row.song_count,
            playlists,
            playlist_count: row.playlist_count,
        }))
    }

    /// PostgreSQL: plain columns and arrays, no JSON. Each page comes as
    /// parallel arrays (`array_agg` over the page, sorted once in its
    /// subquery), and the songs of every playlist on the page from one
    /// window over `playlist_id = ANY(<the page's ids>)` rather than a
    /// subquery per playlist. Building JSON cost the database about twice
    /// the CPU of the arrays, and the gateway a second parse.
    async fn me_postgres(&self, user_id: &str, plan: &MePlan) -> AppResult<Option<Read>> {
        let mut q = SqlBuilder {
            backend: DbBackend::Postgres,
            text: String::with_capacity(2048),
            values: Vec::new(),
        };
        let playlist_songs = plan
            .playlist_songs
            .page
            .filter(|_| plan.playlists.page.is_some());
        let playlist_fields = fields(PLAYLIST_DETAILS, plan.playlist_columns);
        if let Some(page) = plan.playlists.page {
            q.push("WITH p AS (SELECT ")
                .push(&playlist_fields.join(", "));
            q.push(" FROM playlists WHERE user_id = ").bind(user_id);
            q.page("id", page).push(") ");
        }
        q.push("SELECT ").push(USER_COLUMNS);
        count_column(
            q.push(", "),
            plan.songs.count,
            "songs WHERE user_id = u.id",
            "song_count",
        );
        count_column(
            q.push(", "),
            plan.playlists.count,
            "playlists WHERE user_id = u.id",
            "playlist_count",
        );
        let song_fields = fields(SONG_DETAILS, plan.song_columns);
        let item_fields = fields(SONG_DETAILS, plan.playlist_song_columns);
        if plan.songs.page.is_some() {
            q.push(", sa.*");
        }
        if plan.playlists.page.is_some() {
            q.push(", pa.*");
        }
        if playlist_songs.is_some() {
            q.push(", ka.*");
        }
        if plan.playlists.page.is_some() && plan.playlist_songs.count {
            q.push(", kc.*");
        }
        q.push(" FROM users u LEFT JOIN user_data d ON d.user_id = u.id");
        if let Some(page) = plan.songs.page {
            q.push(" CROSS JOIN (SELECT ")
                .aggregates("song_", &song_fields);
            q.push(" FROM (SELECT ").push(&song_fields.join(", "));
            q.push(" FROM songs WHERE user_id = ").bind(user_id);
            q.page("id", page).push(") s) sa");
        }
        // The ids of the playlists on the page, without the one read past it.
        let on_page = plan
            .playlists
            .page
            .map(|page| format!("ARRAY(SELECT id FROM p ORDER BY id LIMIT {})", page.first));
        if plan.playlists.page.is_some() {
            q.push(" CROSS JOIN (SELECT ")
                .aggregates("playlist_", &playlist_fields);
            q.push(" FROM p) pa");
        }
        if let (Some(songs_page), Some(on_page)) = (playlist_songs, &on_page) {
            q.push(" CROSS JOIN (SELECT array_agg(w.playlist_id) AS item_playlist_ids");
            q.push(", array_agg(w.position) AS item_positions, ")
                .aggregates("item_", &item_fields);
            q.push(" FROM (SELECT ps.playlist_id, ps.position");
            for field in &item_fields {
                q.push(", so.").push(field);
            }
            q.push(
                " FROM (SELECT playlist_id, song_id, position, row_number() OVER \
                 (PARTITION BY playlist_id ORDER BY position, song_id) AS n \
                 FROM playlist_songs WHERE playlist_id = ANY(",
            )
            .push(on_page)
            .push(")");
            if let Some(after) = songs_page.after {
                q.push(" AND position > ").bind(after);
            }
            q.push(") ps JOIN songs so ON so.id = ps.song_id WHERE ps.n <= ");
            q.push(&(songs_page.first + 1).to_string());
            q.push(" ORDER BY ps.playlist_id, ps.position, ps.song_id) w) ka");
        }
        if let (true, Some(on_page)) = (plan.playlist_songs.count, &on_page) {
            q.push(
                " CROSS JOIN (SELECT array_agg(playlist_id) AS count_playlist_ids, \
                 array_agg(n) AS count_values FROM (SELECT playlist_id, \
                 CAST(COUNT(*) AS BIGINT) AS n FROM playlist_songs WHERE playlist_id = ANY(",
            )
            .push(on_page)
            .push(") GROUP BY playlist_id) c) kc");
        }
        q.push(" WHERE u.id = ").bind(user_id);

        let stmt = q.statement();
        let Some(result) = self.db.query_one_raw(stmt).await? else {
            return Ok(None);
        };
        let row = result.try_as_pg_row().ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!(
                "a PostgreSQL statement answered another row type"
            ))
        })?;
        PgMe::decode(row, plan, playlist_songs.is_some())
            .map(Some)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("cannot decode `me`'s row: {e}")))
    }
}

/// Decodes the row of [`MusicService::me_postgres`].
struct PgMe;

impl PgMe {
    fn decode(row: &PgRow, plan: &MePlan, with_items: bool) -> Result<Read, sqlx::Error> {
        let user = UserRecord {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            name: row.try_get("name")?,
            picture: row.try_get("picture")?,
            user_metadata: row.try_get("user_metadata")?,
            app_metadata: row.try_get("app_metadata")?,
            synced_at: row.try_get("synced_at")?,
            auth0_updated_at: row.try_get("auth0_updated_at")?,
            prior_deletion_at: row.try_get("prior_deletion_at")?,
            fav_genre: row.try_get("fav_genre")?,
        };
        let songs = if plan.songs.page.is_some() {
            song_arrays(row, "song_", plan.song_columns)?
                .into_models(&user.id)
                .collect()
        } else {
            Vec::new()
        };
        let mut playlists = Vec::new();
        if plan.playlists.page.is_some() {
            let columns = plan.playlist_columns;
            let ids: Vec<i64> = list(row, "playlist_id")?;
            let mut names: Vec<String> = list(row, "playlist_name")?;
            let plays: Vec<i64> = optional_list(row, "playlist_plays", columns.details)?;
            let featured: Vec<bool> = optional_list(row, "playlist_featured", columns.details)?;
            let created: Vec<DateTime<Utc>> =
                optional_list(row, "playlist_created_at", columns.created_at)?;
            let mut items = if with_items {
                let playlist_ids: Vec<i64> = list(row, "item_playlist_ids")?;
                let positions: Vec<i64> = list(row, "item_positions")?;
                let songs = song_arrays(row, "item_", plan.playlist_song_columns)?;
                Some(
                    playlist_ids
                        .into_iter()
                        .zip(positions)
                        .zip(songs.into_models(&user.id))
                        .peekable(),
                )
            } else {
                None
            };
            let counts: Option<HashMap<i64, i64>> = if plan.playlist_songs.count {
                let ids: Vec<i64> = list(row, "count_playlist_ids")?;
                let values: Vec<i64> = list(row, "count_values")?;
                Some(ids.into_iter().zip(values).collect())
            } else {
                None
            };
            playlists.reserve(ids.len());
            names.reverse();
            for (i, id) in ids.into_iter().enumerate() {
                // Items come sorted by playlist, then position: this
                // playlist's are next, those of playlists not on the page
                // (the one read past it) never are.
                let songs = items.as_mut().map(|items| {
                    let mut songs = Vec::new();
                    while let Some(((_, position), song)) =
                        items.next_if(|((playlist, _), _)| *playlist == id)
                    {
                        songs.push(PlaylistSong { position, song });
                    }
                    songs
                });
                playlists.push(PlaylistItem {
                    model: playlists::Model {
                        id,
                        user_id: user.id.clone(),
                        name: names.pop().unwrap_or_default(),
                        plays: plays.get(i).copied().unwrap_or_default(),
                        featured: featured.get(i).copied().unwrap_or_default(),
                        created_at: created.get(i).copied().unwrap_or_default(),
                    },
                    songs,
                    song_count: counts
                        .as_ref()
                        .map(|c| c.get(&id).copied().unwrap_or_default()),
                });
            }
        }
        Ok(Read {
            song_count: row.try_get("song_count")?,
            playlist_count: row.try_get("playlist_count")?,
            user,
            songs,
            playlists,
        })
    }
}

/// A page of songs as parallel arrays.
struct SongArrays {
    ids: Vec<i64>,
    names: Vec<String>,
    artists: Vec<Option<String>>,
    genres: Vec<Option<String>>,
    created: Vec<DateTime<Utc>>,
}

impl SongArrays {
    fn into_models(self, owner: &str) -> impl Iterator<Item = songs::Model> + '_ {
        let mut artists = self.artists.into_iter();
        let mut genres = self.genres.into_iter();
        let mut created = self.created.into_iter();
        self.ids
            .into_iter()
            .zip(self.names)
            .map(move |(id, name)| songs::Model {
                id,
                user_id: owner.to_owned(),
                name,
                artist: artists.next().flatten(),
                genre: genres.next().flatten(),
                created_at: created.next().unwrap_or_default(),
            })
    }
}

fn song_arrays(row: &PgRow, prefix: &str, columns: Columns) -> Result<SongArrays, sqlx::Error> {
    Ok(SongArrays {
        ids: list(row, &format!("{prefix}id"))?,
        names: list(row, &format!("{prefix}name"))?,
        artists: optional_list(row, &format!("{prefix}artist"), columns.details)?,
        genres: optional_list(row, &format!("{prefix}genre"), columns.details)?,
        created: optional_list(row, &format!("{prefix}created_at"), columns.created_at)?,
    })
}

/// An `array_agg` column; NULL (no rows) is empty.
fn list<'r, T>(row: &'r PgRow, column: &str) -> Result<Vec<T>, sqlx::Error>
where
    Vec<T>: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    Ok(row
        .try_get::<Option<Vec<T>>, _>(column)?
        .unwrap_or_default())
}

/// An `array_agg` column read only when the statement selected it.
fn optional_list<'r, T>(row: &'r PgRow, column: &str, wanted: bool) -> Result<Vec<T>, sqlx::Error>
where
    Vec<T>: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    if wanted {
        list(row, column)
    } else {
        Ok(Vec::new())
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
