//! The query root.

use async_graphql::{Context, ID, Lookahead, Object, Result, Value};

use super::{
    context::{
        current_user, current_user_id, known_user, page, remember_user, services, take_me_failure,
        user_principal,
    },
    types::{CountOf, Me, Playlist, PlaylistConnection, Song, parse_id, playlist_connection},
};
use crate::music::{Columns, ListPlan, MePlan};

/// Reads. Everything but `featuredPlaylists` is the caller's own.
pub struct QueryRoot;

/// Reads. Everything but `featuredPlaylists` is the caller's own.
#[Object(name = "Query")]
impl QueryRoot {
    /// The signed-in user. Fails with `UNAUTHENTICATED` without a token.
    async fn me(&self, ctx: &Context<'_>) -> Result<Me> {
        if let Some(failure) = take_me_failure(ctx) {
            return Err(failure.into());
        }
        let principal = user_principal(ctx)?;
        if let Some(user) = known_user(ctx) {
            return Ok(Me::new(user.clone()));
        }
        let plan = me_plan(ctx, &ctx.look_ahead());
        if plan.is_empty() {
            return Ok(Me::new(current_user(ctx).await?.clone()));
        }
        // One statement for the row and the music the query asks for; the
        // row then goes through the same policy as a row read on its own.
        let services = services(ctx);
        let (row, music) = services.music.me_bundle(&principal.user_id, &plan).await?;
        let user = services.profiles.settle(principal, row).await?;
        let user = remember_user(ctx, user).await;
        Ok(Me::with_music(user.clone(), music))
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

/// What a query selects of the caller's music under `me`, read ahead.
fn me_plan(ctx: &Context<'_>, me: &Lookahead<'_>) -> MePlan {
    let playlists = me.field("playlists");
    let mut nested = playlists.field("nodes").field("songs");
    if !nested.exists() {
        nested = playlists.field("edges").field("node").field("songs");
    }
    let songs = me.field("songs");
    MePlan {
        songs: list_plan(ctx, &songs),
        playlists: list_plan(ctx, &playlists),
        playlist_songs: list_plan(ctx, &nested),
        song_columns: columns(&songs, &["artist", "genre"], &[]),
        playlist_columns: columns(&playlists, &["plays", "featured"], &["songs"]),
        playlist_song_columns: columns(&nested, &["artist", "genre"], &[]),
    }
}

/// The columns the items of `list` need, from the fields selected on them
/// (under every alias of the list): `details` need the detail columns,
/// `createdAt` its column, and `id`, `name` and `others` none. A field this
/// function does not know reads every column, so a field added to the type
/// later is never answered from a column left out.
fn columns(list: &Lookahead<'_>, details: &[&str], others: &[&str]) -> Columns {
    let mut columns = Columns::NONE;
    let items = [list.field("nodes"), list.field("edges").field("node")];
    for item in items.iter().flat_map(Lookahead::selection_fields) {
        for field in item.selection_set() {
            match field.name() {
                "id" | "name" | "__typename" => {}
                "createdAt" => columns.created_at = true,
                name if details.contains(&name) => columns.details = true,
                name if others.contains(&name) => {}
                _ => return Columns::ALL,
            }
        }
    }
    columns
}

/// The page and count one list field asks for. When a field is selected
/// twice (under aliases), the first selection's arguments are read ahead and
/// the other is read when resolved; arguments that are not a valid page are
/// left for the resolver to reject.
fn list_plan(ctx: &Context<'_>, list: &Lookahead<'_>) -> ListPlan {
    let Some(field) = list.selection_fields().into_iter().next() else {
        return ListPlan::default();
    };
    let wants_items = list.field("nodes").exists()
        || list.field("edges").exists()
        || list.field("pageInfo").exists();
    let page = wants_items
        .then(|| {
            let mut first = None;
            let mut after = None;
            for (name, value) in field.arguments().ok()? {
                match (name.as_str(), value) {
                    ("first", Value::Number(n)) => first = Some(i32::try_from(n.as_i64()?).ok()?),
                    ("after", Value::String(s)) => after = Some(s),
                    (_, Value::Null) => {}
                    _ => return None,
                }
            }
            page(ctx, first, after).ok()
        })
        .flatten();
    ListPlan {
        page,
        count: list.field("totalCount").exists(),
    }
}
