//! Batch loading of the lists nested in a page of playlists.
//!
//! Every playlist of a page shares one [`PlaylistBatch`]. The first of them
//! whose `songs` (or `songs.totalCount`) is resolved loads the songs of all
//! of them in one statement, and the others read the result. Unlike a
//! time-window DataLoader, the batch is fixed by the parent page, so the
//! number of statements is exactly one per nested list field and page size,
//! however the resolvers are scheduled across threads.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::OnceCell;

use crate::{
    error::AppResult,
    music::{MusicService, Page, PageOf, PlaylistSong, PlaylistSongsPage},
};

/// The playlists of one page, and what has been loaded for them.
#[derive(Default)]
pub struct PlaylistBatch {
    ids: Vec<i64>,
    songs: Mutex<HashMap<Page, Arc<OnceCell<PlaylistSongsPage>>>>,
    counts: OnceCell<HashMap<i64, u64>>,
}

impl PlaylistBatch {
    /// A batch over the playlists `ids`.
    pub fn new(ids: impl IntoIterator<Item = i64>) -> Arc<Self> {
        Arc::new(Self {
            ids: ids.into_iter().collect(),
            ..Self::default()
        })
    }

    /// A batch over the playlists `ids` with what was already read for them:
    /// one page of songs of each, and their song counts.
    pub fn with_loaded(
        ids: impl IntoIterator<Item = i64>,
        songs: Option<(Page, PlaylistSongsPage)>,
        counts: Option<HashMap<i64, u64>>,
    ) -> Arc<Self> {
        let pages = songs
            .map(|(page, loaded)| (page, Arc::new(OnceCell::new_with(Some(loaded)))))
            .into_iter()
            .collect();
        Arc::new(Self {
            ids: ids.into_iter().collect(),
            songs: Mutex::new(pages),
            counts: OnceCell::new_with(counts),
        })
    }

    /// One page of playlist `id`'s songs, loading that page for the whole batch.
    pub async fn songs(
        &self,
        music: &MusicService,
        id: i64,
        page: Page,
    ) -> AppResult<PageOf<PlaylistSong>> {
        let cell = {
            // A poisoned lock only means another resolver panicked; the map is still sound.
            let mut pages = self.songs.lock().unwrap_or_else(|e| e.into_inner());
            pages.entry(page).or_default().clone()
        };
        let loaded = cell
            .get_or_try_init(|| music.playlist_songs(&self.ids, page))
            .await?;
        Ok(loaded.get(&id).cloned().unwrap_or(PageOf {
            items: Vec::new(),
            has_next: false,
        }))
    }

    /// How many songs playlist `id` holds, counting for the whole batch.
    pub async fn song_count(&self, music: &MusicService, id: i64) -> AppResult<u64> {
        let counts = self
            .counts
            .get_or_try_init(|| music.playlist_song_counts(&self.ids))
            .await?;
        Ok(counts.get(&id).copied().unwrap_or(0))
    }
}
