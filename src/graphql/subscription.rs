//! The subscription root: live queries over `me`, one playlist and the
//! featured playlists.
//!
//! A subscription is answered by the live engine (`crate::live`), which
//! runs the document as the query of the same fields, afresh (new request
//! context, new loaders) after every committed change that may alter it.
//! These resolvers only give the type its fields; they are never run,
//! since no transport hands a subscription to async-graphql's executor.

use async_graphql::{Context, ID, Result, Subscription};
use futures::{Stream, stream};

use super::types::{Me, Playlist, PlaylistConnection};
use crate::error::AppError;

/// Live answers: the current answer at once, then a new one after each
/// committed change that alters it, whoever made it.
pub struct SubscriptionRoot;

fn not_here<T: Send + 'static>() -> impl Stream<Item = Result<T>> {
    stream::once(async {
        Err(AppError::Internal(anyhow::anyhow!(
            "a subscription reached async-graphql's executor instead of the live engine"
        ))
        .into())
    })
}

/// Live answers: the current answer at once, then a new one after each
/// committed change that alters it, whoever made it.
#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// The signed-in user, as `Query.me`, again after every change to it.
    async fn me(&self, _ctx: &Context<'_>) -> impl Stream<Item = Result<Me>> {
        not_here()
    }

    /// One of the caller's playlists, or a featured one, as `Query.playlist`;
    /// `null` once when it is deleted (or no longer visible), and the
    /// subscription completes.
    async fn playlist(
        &self,
        _ctx: &Context<'_>,
        #[graphql(name = "id", desc = "The playlist's id.")] _id: ID,
    ) -> impl Stream<Item = Result<Option<Playlist>>> {
        not_here()
    }

    /// Playlists featured by playlist editors, as `Query.featuredPlaylists`.
    async fn featured_playlists(
        &self,
        _ctx: &Context<'_>,
        #[graphql(
            name = "first",
            desc = "How many playlists, at most (default and maximum set by the server)."
        )]
        _first: Option<i32>,
        #[graphql(
            name = "after",
            desc = "Only playlists after this cursor (`pageInfo.endCursor` of the previous page)."
        )]
        _after: Option<String>,
    ) -> impl Stream<Item = Result<PlaylistConnection>> {
        not_here()
    }
}
