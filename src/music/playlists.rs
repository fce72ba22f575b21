//! Playlists, their songs, plays, and the featured list.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, FromQueryResult,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
    sea_query::{Asterisk, Expr, ExprTrait, Func, JoinType, Order, Query, WindowStatement},
};

use super::{MusicService, Page, PageOf, lock_caller, validate};
use crate::{
    db::{begin_write, retry_races},
    entity::{playlist_songs, playlists, songs},
    error::{AppError, AppResult},
    profile::{PLAYLIST_EDITOR, ProfileService},
    sql,
};

/// A song at its position in a playlist.
#[derive(Clone, Debug)]
pub struct PlaylistSong {
    pub position: i64,
    pub song: songs::Model,
}

/// Pages of songs for several playlists, by playlist id.
pub type PlaylistSongsPage = HashMap<i64, PageOf<PlaylistSong>>;

#[derive(FromQueryResult, serde::Deserialize)]
struct PlaylistSongRow {
    playlist_id: i64,
    position: i64,
    id: i64,
    user_id: String,
    name: String,
    artist: Option<String>,
    genre: Option<String>,
    created_at: DateTime<Utc>,
}

#[derive(FromQueryResult)]
struct CountRow {
    playlist_id: i64,
    n: i64,
}

#[derive(FromQueryResult)]
struct Total {
    total: i64,
}

impl MusicService {
    /// One page of the user's playlists, oldest first.
    pub async fn playlists(
        &self,
        user_id: &str,
        page: Page,
    ) -> AppResult<PageOf<playlists::Model>> {
        self.playlist_page(playlists::Column::UserId.eq(user_id), page)
            .await
    }

    /// One page of every user's featured playlists.
    pub async fn featured_playlists(&self, page: Page) -> AppResult<PageOf<playlists::Model>> {
        self.playlist_page(playlists::Column::Featured.eq(true), page)
            .await
    }

    async fn playlist_page(
        &self,
        condition: sea_orm::sea_query::SimpleExpr,
        page: Page,
    ) -> AppResult<PageOf<playlists::Model>> {
        let mut query = playlists::Entity::find()
            .filter(condition)
            .order_by_asc(playlists::Column::Id)
            .limit(page.first + 1);
        if let Some(after) = page.after {
            query = query.filter(playlists::Column::Id.gt(after));
        }
        let backend = self.db.get_database_backend();
        let columns = ["id", "user_id", "name", "plays", "featured", "created_at"];
        let rows = sql::all_rows(&self.db, query.build(backend), &columns, "t.id").await?;
        Ok(PageOf::from_overfetch(rows, page.first))
    }

    /// How many playlists the user has.
    pub async fn count_playlists(&self, user_id: &str) -> AppResult<u64> {
        Ok(playlists::Entity::find()
            .filter(playlists::Column::UserId.eq(user_id))
            .count(&self.db)
            .await?)
    }

    /// How many playlists are featured.
    pub async fn count_featured(&self) -> AppResult<u64> {
        Ok(playlists::Entity::find()
            .filter(playlists::Column::Featured.eq(true))
            .count(&self.db)
            .await?)
    }

    /// A playlist the user may see: their own, or a featured one.
    pub async fn visible_playlist(&self, user_id: &str, id: i64) -> AppResult<playlists::Model> {
        playlists::Entity::find_by_id(id)
            .filter(
                playlists::Column::UserId
                    .eq(user_id)
                    .or(playlists::Column::Featured.eq(true)),
            )
            .one(&self.db)
            .await?
            .ok_or_else(|| AppError::not_found("playlist", id))
    }

    /// The sum of plays over the user's playlists.
    pub async fn total_plays(&self, user_id: &str) -> AppResult<i64> {
        total_plays(&self.db, user_id).await
    }

    /// A page of songs for each of `playlist_ids`, in one statement: a window
    /// function numbers each playlist's songs after the cursor, so paging
    /// happens in SQL.
    ///
    /// One `UNION ALL` branch per playlist, each walking the index and
    /// stopping after the page, reads fewer rows for very long playlists, but
    /// measured slower for playlists of tens of songs on both databases: the
    /// statement grows with the page, and so does its planning.
    pub async fn playlist_songs(
        &self,
        playlist_ids: &[i64],
        page: Page,
    ) -> AppResult<PlaylistSongsPage> {
        if playlist_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let numbered = Query::select()
            .columns(["playlist_id", "song_id", "position"])
            .expr_window_as(
                Func::cust("ROW_NUMBER"),
                WindowStatement::partition_by("playlist_id")
                    .order_by("position", Order::Asc)
                    .order_by("song_id", Order::Asc)
                    .to_owned(),
                "rn",
            )
            .from("playlist_songs")
            .and_where(Expr::col("playlist_id").is_in(playlist_ids.iter().copied()))
            .and_where(Expr::col("position").gt(page.after.unwrap_or(i64::MIN)))
            .to_owned();
        let query = Query::select()
            .columns([("t", "playlist_id"), ("t", "position")])
            .columns(["id", "user_id", "name", "artist", "genre", "created_at"].map(|c| ("s", c)))
            .from_subquery(numbered, "t")
            .join_as(
                JoinType::InnerJoin,
                "songs",
                "s",
                Expr::col(("s", "id")).equals(("t", "song_id")),
            )
            .and_where(Expr::col(("t", "rn")).lte((page.first + 1) as i64))
            .to_owned();
        let stmt = self.db.get_database_backend().build(&query);
        let columns = [
            "playlist_id",
            "position",
            "id",
            "user_id",
            "name",
            "artist",
            "genre",
            "created_at",
        ];
        let rows: Vec<PlaylistSongRow> =
            sql::all_rows(&self.db, stmt, &columns, "t.playlist_id, t.position, t.id").await?;
        let mut grouped: HashMap<i64, Vec<PlaylistSong>> = HashMap::new();
        for row in rows {
            grouped
                .entry(row.playlist_id)
                .or_default()
                .push(PlaylistSong {
                    position: row.position,
                    song: songs::Model {
                        id: row.id,
                        user_id: row.user_id,
                        name: row.name,
                        artist: row.artist,
                        genre: row.genre,
                        created_at: row.created_at,
                    },
                });
        }
        Ok(playlist_ids
            .iter()
            .map(|id| {
                let items = grouped.remove(id).unwrap_or_default();
                (*id, PageOf::from_overfetch(items, page.first))
            })
            .collect())
    }

    /// How many songs each of `playlist_ids` holds, in one statement.
    pub async fn playlist_song_counts(&self, playlist_ids: &[i64]) -> AppResult<HashMap<i64, u64>> {
        if playlist_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let query = Query::select()
            .column("playlist_id")
            .expr_as(
                Expr::from(Func::count(Expr::col(Asterisk))).cast_as("BIGINT"),
                "n",
            )
            .from("playlist_songs")
            .and_where(Expr::col("playlist_id").is_in(playlist_ids.iter().copied()))
            .group_by_col("playlist_id")
            .to_owned();
        let stmt = self.db.get_database_backend().build(&query);
        let rows = CountRow::find_by_statement(stmt).all(&self.db).await?;
        let mut counts: HashMap<i64, u64> = playlist_ids.iter().map(|&id| (id, 0)).collect();
        for row in rows {
            counts.insert(row.playlist_id, u64::try_from(row.n).unwrap_or(0));
        }
        Ok(counts)
    }

    /// Creates a playlist, optionally with songs of the user's library.
    pub async fn create_playlist(
        &self,
        user_id: &str,
        name: &str,
        song_ids: Vec<i64>,
    ) -> AppResult<playlists::Model> {
        let name = validate::required_text("name", name, validate::MAX_NAME_CHARS)?;
        let song_ids = validate::song_ids(song_ids)?;
        retry_races(|| self.try_create_playlist(user_id, &name, &song_ids)).await
    }

    async fn try_create_playlist(
        &self,
        user_id: &str,
        name: &str,
        song_ids: &[i64],
    ) -> AppResult<playlists::Model> {
        let txn = begin_write(&self.db).await?;
        lock_caller(&txn, user_id).await?;
        check_own_songs(&txn, user_id, song_ids).await?;
        let playlist = playlists::ActiveModel {
            user_id: Set(user_id.to_owned()),
            name: Set(name.to_owned()),
            plays: Set(0),
            featured: Set(false),
            created_at: Set(Utc::now()),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        insert_members(&txn, user_id, playlist.id, song_ids, 0).await?;
        txn.commit().await?;
        Ok(playlist)
    }

    /// Renames one of the user's playlists.
    pub async fn rename_playlist(
        &self,
        user_id: &str,
        id: i64,
        name: &str,
    ) -> AppResult<playlists::Model> {
        let name = validate::required_text("name", name, validate::MAX_NAME_CHARS)?;
        retry_races(|| self.try_rename_playlist(user_id, id, &name)).await
    }

    async fn try_rename_playlist(
        &self,
        user_id: &str,
        id: i64,
        name: &str,
    ) -> AppResult<playlists::Model> {
        let txn = begin_write(&self.db).await?;
        lock_caller(&txn, user_id).await?;
        let mut row: playlists::ActiveModel = own_playlist(&txn, user_id, id).await?.into();
        row.name = Set(name.to_owned());
        let playlist = row.update(&txn).await?;
        txn.commit().await?;
        Ok(playlist)
    }

    /// One of the user's own playlists.
    pub async fn own_playlist(&self, user_id: &str, id: i64) -> AppResult<playlists::Model> {
        own_playlist(&self.db, user_id, id).await
    }

    /// Deletes one of the user's playlists; its plays no longer count towards
    /// `playlist_editor`.
    pub async fn delete_playlist(&self, user_id: &str, id: i64) -> AppResult<()> {
        retry_races(|| self.try_delete_playlist(user_id, id)).await
    }

    async fn try_delete_playlist(&self, user_id: &str, id: i64) -> AppResult<()> {
        let txn = begin_write(&self.db).await?;
        lock_caller(&txn, user_id).await?;
        let result = playlists::Entity::delete_many()
            .filter(playlists::Column::Id.eq(id))
            .filter(playlists::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        if result.rows_affected == 0 {
            return Err(AppError::not_found("playlist", id));
        }
        let total = total_plays(&txn, user_id).await?;
        self.profiles
            .apply_editor_rule(&txn, user_id, total)
            .await?;
        txn.commit().await?;
        self.profiles.wake_outbox();
        Ok(())
    }

    /// Appends songs of the user's library to one of their playlists; songs
    /// already in it stay where they are.
    pub async fn add_songs(
        &self,
        user_id: &str,
        id: i64,
        song_ids: Vec<i64>,
    ) -> AppResult<playlists::Model> {
        let song_ids = validate::song_ids(song_ids)?;
        retry_races(|| self.try_add_songs(user_id, id, &song_ids)).await
    }

    async fn try_add_songs(
        &self,
        user_id: &str,
        id: i64,
        song_ids: &[i64],
    ) -> AppResult<playlists::Model> {
        let txn = begin_write(&self.db).await?;
        lock_caller(&txn, user_id).await?;
        let playlist = own_playlist(&txn, user_id, id).await?;
        check_own_songs(&txn, user_id, song_ids).await?;
        let members: Vec<playlist_songs::Model> = playlist_songs::Entity::find()
            .filter(playlist_songs::Column::PlaylistId.eq(id))
            .all(&txn)
            .await?;
        let last = members.iter().map(|m| m.position).max().unwrap_or(0);
        let new: Vec<i64> = song_ids
            .iter()
            .copied()
            .filter(|s| !members.iter().any(|m| m.song_id == *s))
            .collect();
        insert_members(&txn, user_id, id, &new, last).await?;
        txn.commit().await?;
        Ok(playlist)
    }

    /// Removes songs from one of the user's playlists.
    pub async fn remove_songs(
        &self,
        user_id: &str,
        id: i64,
        song_ids: Vec<i64>,
    ) -> AppResult<playlists::Model> {
        let song_ids = validate::song_ids(song_ids)?;
        retry_races(|| self.try_remove_songs(user_id, id, &song_ids)).await
    }

    async fn try_remove_songs(
        &self,
        user_id: &str,
        id: i64,
        song_ids: &[i64],
    ) -> AppResult<playlists::Model> {
        let txn = begin_write(&self.db).await?;
        lock_caller(&txn, user_id).await?;
        let playlist = own_playlist(&txn, user_id, id).await?;
        check_own_songs(&txn, user_id, song_ids).await?;
        if !song_ids.is_empty() {
            playlist_songs::Entity::delete_many()
                .filter(playlist_songs::Column::PlaylistId.eq(id))
                .filter(playlist_songs::Column::SongId.is_in(song_ids.to_vec()))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(playlist)
    }

    /// Counts one play of one of the user's playlists and applies the plays
    /// rule to the user's roles.
    pub async fn record_play(&self, user_id: &str, id: i64) -> AppResult<playlists::Model> {
        retry_races(|| self.try_record_play(user_id, id)).await
    }

    async fn try_record_play(&self, user_id: &str, id: i64) -> AppResult<playlists::Model> {
        let txn = begin_write(&self.db).await?;
        lock_caller(&txn, user_id).await?;
        let result = playlists::Entity::update_many()
            .col_expr(
                playlists::Column::Plays,
                Expr::col(playlists::Column::Plays).add(1),
            )
            .filter(playlists::Column::Id.eq(id))
            .filter(playlists::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        if result.rows_affected == 0 {
            return Err(AppError::not_found("playlist", id));
        }
        let total = total_plays(&txn, user_id).await?;
        self.profiles
            .apply_editor_rule(&txn, user_id, total)
            .await?;
        let playlist = own_playlist(&txn, user_id, id).await?;
        txn.commit().await?;
        self.profiles.wake_outbox();
        Ok(playlist)
    }

    /// Features or unfeatures one of the user's playlists; needs `playlist_editor`.
    pub async fn set_featured(
        &self,
        user_id: &str,
        id: i64,
        featured: bool,
    ) -> AppResult<playlists::Model> {
        retry_races(|| self.try_set_featured(user_id, id, featured)).await
    }

    async fn try_set_featured(
        &self,
        user_id: &str,
        id: i64,
        featured: bool,
    ) -> AppResult<playlists::Model> {
        let txn = begin_write(&self.db).await?;
        lock_caller(&txn, user_id).await?;
        // Read the roles now, in the transaction, not from the request's
        // cached record: a play earlier in the same request may have just
        // granted the role, and a concurrent deletion may withdraw it.
        let user = ProfileService::find(&txn, user_id)
            .await?
            .ok_or(AppError::AccountDeleted)?;
        if !user.has_role(PLAYLIST_EDITOR) {
            return Err(AppError::forbidden(format!(
                "featuring playlists needs the {PLAYLIST_EDITOR} role ({} plays in total)",
                self.profiles.editor_threshold()
            )));
        }
        let mut row: playlists::ActiveModel = own_playlist(&txn, user_id, id).await?.into();
        row.featured = Set(featured);
        let playlist = row.update(&txn).await?;
        txn.commit().await?;
        Ok(playlist)
    }
}

async fn own_playlist<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
    id: i64,
) -> AppResult<playlists::Model> {
    playlists::Entity::find_by_id(id)
        .filter(playlists::Column::UserId.eq(user_id))
        .one(conn)
        .await?
        .ok_or_else(|| AppError::not_found("playlist", id))
}

async fn total_plays<C: ConnectionTrait>(conn: &C, user_id: &str) -> AppResult<i64> {
    let stmt = conn.get_database_backend().build(
        Query::select()
            .expr_as(
                Expr::from(Func::coalesce([
                    Expr::from(Func::sum(Expr::col("plays"))),
                    Expr::val(0),
                ]))
                .cast_as("BIGINT"),
                "total",
            )
            .from("playlists")
            .and_where(Expr::col("user_id").eq(user_id)),
    );
    Ok(Total::find_by_statement(stmt)
        .one(conn)
        .await?
        .map(|t| t.total)
        .unwrap_or(0))
}

/// Fails, naming them, when some ids are not songs of the user's library.
async fn check_own_songs(
    txn: &DatabaseTransaction,
    user_id: &str,
    song_ids: &[i64],
) -> AppResult<()> {
    if song_ids.is_empty() {
        return Ok(());
    }
    let found: Vec<i64> = songs::Entity::find()
        .select_only()
        .column(songs::Column::Id)
        .filter(songs::Column::UserId.eq(user_id))
        .filter(songs::Column::Id.is_in(song_ids.to_vec()))
        .into_tuple()
        .all(txn)
        .await?;
    let unknown: Vec<String> = song_ids
        .iter()
        .filter(|id| !found.contains(id))
        .map(i64::to_string)
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(AppError::bad_input(format!(
            "songIds: no song with id {} in your library",
            unknown.join(", ")
        )))
    }
}

async fn insert_members(
    txn: &DatabaseTransaction,
    user_id: &str,
    playlist_id: i64,
    song_ids: &[i64],
    after_position: i64,
) -> AppResult<()> {
    let rows = song_ids
        .iter()
        .enumerate()
        .map(|(i, song_id)| playlist_songs::ActiveModel {
            playlist_id: Set(playlist_id),
            song_id: Set(*song_id),
            user_id: Set(user_id.to_owned()),
            position: Set(after_position + 1 + i as i64),
        });
    if song_ids.is_empty() {
        return Ok(());
    }
    playlist_songs::Entity::insert_many(rows)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}
