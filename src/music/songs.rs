//! A user's song library.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait,
};

use super::{MusicService, Page, PageOf, lock_caller, validate};
use crate::{
    db::{begin_write, retry_races},
    entity::songs,
    error::{AppError, AppResult},
    sql,
};

/// Fields of a new song.
#[derive(Debug)]
pub struct NewSong {
    pub name: String,
    pub artist: Option<String>,
    pub genre: Option<String>,
}

/// Changes to a song: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct SongChanges {
    pub name: Option<String>,
    pub artist: Option<Option<String>>,
    pub genre: Option<Option<String>>,
}

/// The columns of a song, as read into [`songs::Model`].
pub(super) const SONG_COLUMNS: &[&str] =
    &["id", "user_id", "name", "artist", "genre", "created_at"];

impl MusicService {
    /// One page of the user's songs, oldest first.
    pub async fn songs(&self, user_id: &str, page: Page) -> AppResult<PageOf<songs::Model>> {
        let mut query = songs::Entity::find()
            .filter(songs::Column::UserId.eq(user_id))
            .order_by_asc(songs::Column::Id)
            .limit(page.first + 1);
        if let Some(after) = page.after {
            query = query.filter(songs::Column::Id.gt(after));
        }
        let backend = self.db.get_database_backend();
        let rows = sql::all_rows(&self.db, query.build(backend), SONG_COLUMNS, "t.id").await?;
        Ok(PageOf::from_overfetch(rows, page.first))
    }

    /// How many songs the user has.
    pub async fn count_songs(&self, user_id: &str) -> AppResult<u64> {
        Ok(songs::Entity::find()
            .filter(songs::Column::UserId.eq(user_id))
            .count(&self.db)
            .await?)
    }

    /// One of the user's songs.
    pub async fn song(&self, user_id: &str, id: i64) -> AppResult<songs::Model> {
        songs::Entity::find_by_id(id)
            .filter(songs::Column::UserId.eq(user_id))
            .one(&self.db)
            .await?
            .ok_or_else(|| AppError::not_found("song", id))
    }

    /// Adds a song to the user's library.
    pub async fn add_song(&self, user_id: &str, new: NewSong) -> AppResult<songs::Model> {
        retry_races(|| self.try_add_song(user_id, &new)).await
    }

    async fn try_add_song(&self, user_id: &str, new: &NewSong) -> AppResult<songs::Model> {
        let row = songs::ActiveModel {
            user_id: Set(user_id.to_owned()),
            name: Set(validate::required_text(
                "name",
                &new.name,
                validate::MAX_NAME_CHARS,
            )?),
            artist: Set(validate::optional_text(
                "artist",
                new.artist.as_deref(),
                validate::MAX_NAME_CHARS,
            )?),
            genre: Set(validate::optional_text(
                "genre",
                new.genre.as_deref(),
                validate::MAX_NAME_CHARS,
            )?),
            created_at: Set(Utc::now()),
            ..Default::default()
        };
        let txn = begin_write(&self.db).await?;
        lock_caller(&txn, user_id).await?;
        let song = row.insert(&txn).await?;
        txn.commit().await?;
        Ok(song)
    }

    /// Changes one of the user's songs.
    pub async fn update_song(
        &self,
        user_id: &str,
        id: i64,
        changes: SongChanges,
    ) -> AppResult<songs::Model> {
        retry_races(|| self.try_update_song(user_id, id, &changes)).await
    }

    async fn try_update_song(
        &self,
        user_id: &str,
        id: i64,
        changes: &SongChanges,
    ) -> AppResult<songs::Model> {
        let txn = begin_write(&self.db).await?;
        lock_caller(&txn, user_id).await?;
        let mut row: songs::ActiveModel = songs::Entity::find_by_id(id)
            .filter(songs::Column::UserId.eq(user_id))
            .one(&txn)
            .await?
            .ok_or_else(|| AppError::not_found("song", id))?
            .into();
        if let Some(name) = &changes.name {
            row.name = Set(validate::required_text(
                "name",
                name,
                validate::MAX_NAME_CHARS,
            )?);
        }
        if let Some(artist) = &changes.artist {
            row.artist = Set(validate::optional_text(
                "artist",
                artist.as_deref(),
                validate::MAX_NAME_CHARS,
            )?);
        }
        if let Some(genre) = &changes.genre {
            row.genre = Set(validate::optional_text(
                "genre",
                genre.as_deref(),
                validate::MAX_NAME_CHARS,
            )?);
        }
        let song = row.update(&txn).await?;
        txn.commit().await?;
        Ok(song)
    }

    /// Deletes one of the user's songs (and its places in playlists).
    pub async fn delete_song(&self, user_id: &str, id: i64) -> AppResult<()> {
        retry_races(|| self.try_delete_song(user_id, id)).await
    }

    /// Under the caller's turn, like every write of their rows: a playlist
    /// being created or filled with this song checked that it exists.
    async fn try_delete_song(&self, user_id: &str, id: i64) -> AppResult<()> {
        let txn = begin_write(&self.db).await?;
        lock_caller(&txn, user_id).await?;
        let result = songs::Entity::delete_many()
            .filter(songs::Column::Id.eq(id))
            .filter(songs::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        if result.rows_affected == 0 {
            return Err(AppError::not_found("song", id));
        }
        txn.commit().await?;
        Ok(())
    }
}
