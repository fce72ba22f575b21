//! The query root.

use async_graphql::{Context, ID, Object, Result};

use super::{
    context::{current_user, current_user_id, page, services},
    types::{CountOf, Me, Playlist, PlaylistConnection, Song, parse_id, playlist_connection},
};

/// Reads. Everything but `featuredPlaylists` is the caller's own.
pub struct QueryRoot;

/// Reads. Everything but `featuredPlaylists` is the caller's own.
#[Object(name = "Query")]
impl QueryRoot {
    /// The signed-in user. Fails with `UNAUTHENTICATED` without a token.
    async fn me(&self, ctx: &Context<'_>) -> Result<Me> {
        Ok(Me(current_user(ctx).await?.clone()))
    }

    /// Playlists featured by playlist editors, visible to every signed-in user.
    async fn featured_playlists(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many playlists, at most (default and maximum set by the server).")]
        first: Option<i32>,
        #[graphql(
            desc = "Only playlists after this cursor (`pageInfo.endCursor` of the previous page)."
        )]
        after: Option<String>,
    ) -> Result<PlaylistConnection> {
        current_user_id(ctx).await?;
        let page = page(ctx, first, after)?;
        let items = services(ctx).music.featured_playlists(page).await?;
        Ok(playlist_connection(page, items, CountOf::FeaturedPlaylists))
    }

    /// One of the caller's playlists, or a featured one. `NOT_FOUND` otherwise.
    async fn playlist(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The playlist's id.")] id: ID,
    ) -> Result<Playlist> {
        let user = current_user_id(ctx).await?;
        let id = parse_id("playlist", &id)?;
        Ok(Playlist::from(
            services(ctx).music.visible_playlist(user, id).await?,
        ))
    }

    /// One of the caller's songs. `NOT_FOUND` otherwise.
    async fn song(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The song's id.")] id: ID,
    ) -> Result<Song> {
        let user = current_user_id(ctx).await?;
        let id = parse_id("song", &id)?;
        Ok(Song(services(ctx).music.song(user, id).await?))
    }
}
