//! The query root.

use async_graphql::{Context, ID, Lookahead, Object, Result, Value};

use super::plan::{Items, ListSelection, plan_list};
use super::{
    context::{
        current_user, current_user_id, known_user, page, remember_user, services, take_me_failure,
        user_principal,
    },
    types::{CountOf, Me, Playlist, PlaylistConnection, Song, parse_id, playlist_connection},
};
use crate::music::MePlan;

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

/// What a query selects of the caller's music under `me`, read ahead; the
/// planner (`plan`) decides what that reads, as it does for compiled plans.
fn me_plan(ctx: &Context<'_>, me: &Lookahead<'_>) -> MePlan {
    let limits = services(ctx).limits;
    let playlists = me.field("playlists");
    let mut nested = playlists.field("nodes").field("songs");
    if !nested.exists() {
        nested = playlists.field("edges").field("node").field("songs");
    }
    let songs = plan_list(Items::Songs, &selections(&me.field("songs")), limits);
    let playlist_songs = plan_list(Items::Songs, &selections(&nested), limits);
    let playlists = plan_list(Items::Playlists, &selections(&playlists), limits);
    super::plan::me_plan(songs, playlists, playlist_songs)
}

/// Every selection of a list field (under each alias), with its arguments
/// as bound; arguments that are not a page (left for the resolver to
/// reject) read no page ahead.
fn selections<'a>(list: &Lookahead<'a>) -> Vec<ListSelection<'a>> {
    list.selection_fields()
        .into_iter()
        .map(|field| {
            let mut selection = ListSelection::default();
            let mut valid = true;
            for (name, value) in field.arguments().unwrap_or_default() {
                match (name.as_str(), value) {
                    ("first", Value::Number(n)) => {
                        selection.first = n.as_i64().and_then(|n| i32::try_from(n).ok());
                        valid &= selection.first.is_some();
                    }
                    ("after", Value::String(s)) => selection.after = Some(s),
                    (_, Value::Null) => {}
                    _ => valid = false,
                }
            }
            if !valid {
                // A page no resolver accepts: `first: -1` is refused the same.
                selection.first = Some(-1);
            }
            for part in field.selection_set() {
                selection.connection.push(part.name());
                match part.name() {
                    "nodes" => selection
                        .items
                        .extend(part.selection_set().map(|f| f.name())),
                    "edges" => {
                        for edge in part.selection_set().filter(|f| f.name() == "node") {
                            selection
                                .items
                                .extend(edge.selection_set().map(|f| f.name()));
                        }
                    }
                    _ => {}
                }
            }
            selection
        })
        .collect()
}
