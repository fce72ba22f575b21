//! Per-request DataLoaders: every playlist of a response asks for its songs,
//! and one statement answers them all.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;

use crate::music::{MusicService, Page, PageOf, PlaylistSong};

/// Loads a page of songs for many playlists at once. Keys carry the page
/// arguments, so playlists asking for different pages are batched by page.
pub struct PlaylistSongsLoader(pub MusicService);

impl Loader<(i64, Page)> for PlaylistSongsLoader {
    type Value = PageOf<PlaylistSong>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[(i64, Page)],
    ) -> Result<HashMap<(i64, Page), Self::Value>, Self::Error> {
        let mut by_page: HashMap<Page, Vec<i64>> = HashMap::new();
        for (id, page) in keys {
            by_page.entry(*page).or_default().push(*id);
        }
        let mut out = HashMap::with_capacity(keys.len());
        for (page, ids) in by_page {
            for (id, songs) in self.0.playlist_songs(&ids, page).await? {
                out.insert((id, page), songs);
            }
        }
        Ok(out)
    }
}

/// Counts the songs of many playlists at once.
pub struct PlaylistSongCountLoader(pub MusicService);

impl Loader<i64> for PlaylistSongCountLoader {
    type Value = u64;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, u64>, Self::Error> {
        Ok(self.0.playlist_song_counts(keys).await?)
    }
}
