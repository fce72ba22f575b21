//! GraphQL object types. Each wraps a service value; none is a database row
//! type itself, so the schema can change without touching the tables.
//!
//! `Me` and the types a page repeats (songs, playlists, their edges and
//! connections) resolve their fields one after another (`#[Object(serial)]`):
//! those fields read what `me` read ahead, or one batch that every item of a
//! page shares, so resolving them concurrently bought nothing and cost a task
//! allocation for every field of every item. It also answers their fields in
//! the order the query names them (async-graphql's concurrent resolution
//! answers them in the order they finish). The query root stays concurrent:
//! its fields are independent reads.

use std::sync::{Arc, Mutex};

use async_graphql::{
    ComplexObject, Context, ID, Json, Object, Result, SimpleObject, connection::PageInfo,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::Value;

use super::{
    context::{page, services},
    loaders::PlaylistBatch,
    scalars::Timestamp,
};
use crate::{
    entity::{playlists, songs},
    error::{AppError, AppResult},
    music::{self, MeMusic, PageOf},
    profile::{PLAYLIST_EDITOR, Plan, UserRecord},
};

const CURSOR_PREFIX: &str = "k:";

/// An opaque pagination cursor for a keyset position (never an offset).
pub(super) fn encode_cursor(key: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{key}"))
}

/// Parses a cursor the gateway handed out earlier.
pub(super) fn decode_cursor(s: &str) -> AppResult<i64> {
    URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(CURSOR_PREFIX)?.parse().ok())
        .ok_or_else(|| AppError::bad_input(format!("after: `{s}` is not a cursor from this API")))
}

/// Parses a numeric id sent as a GraphQL `ID`.
pub(super) fn parse_id(kind: &str, id: &ID) -> AppResult<i64> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| AppError::bad_input(format!("`{}` is not a valid {kind} id", id.as_str())))
}

/// Where a list's total count comes from; counted only when asked for.
#[derive(Clone)]
pub(super) enum CountOf {
    /// Counted already, by the statement that read the page.
    Known(u64),
    UserSongs(String),
    UserPlaylists(String),
    FeaturedPlaylists,
    PlaylistSongs(i64, Arc<PlaylistBatch>),
}

/// A Relay connection type and its edge type, documented for the SDL.
macro_rules! connection_type {
    ($conn:ident, $edge:ident, $node:ident, $conn_doc:literal, $edge_doc:literal) => {
        #[doc = $conn_doc]
        pub struct $conn {
            edges: Vec<$edge>,
            has_previous_page: bool,
            has_next_page: bool,
            count: CountOf,
        }

        #[doc = $edge_doc]
        pub struct $edge {
            key: i64,
            node: $node,
        }

        #[doc = $edge_doc]
        #[Object(serial)]
        impl $edge {
            /// An opaque cursor; pass it as `after` to continue after this item.
            async fn cursor(&self) -> String {
                // Encoded on demand: most clients ask for `nodes` only.
                encode_cursor(self.key)
            }

            /// The item.
            async fn node(&self) -> &$node {
                &self.node
            }
        }

        #[doc = $conn_doc]
        #[Object(serial)]
        impl $conn {
            /// The items of this page with their cursors.
            async fn edges(&self) -> &[$edge] {
                &self.edges
            }

            /// The items of this page.
            async fn nodes(&self) -> Vec<&$node> {
                self.edges.iter().map(|e| &e.node).collect()
            }

            /// Where this page stands in the whole list.
            async fn page_info(&self) -> PageInfo {
                PageInfo {
                    has_previous_page: self.has_previous_page,
                    has_next_page: self.has_next_page,
                    start_cursor: self.edges.first().map(|e| encode_cursor(e.key)),
                    end_cursor: self.edges.last().map(|e| encode_cursor(e.key)),
                }
            }

            /// The number of items in the whole list, across all pages.
            async fn total_count(&self, ctx: &Context<'_>) -> Result<u64> {
                total_count(ctx, &self.count).await
            }
        }

        impl From<NodePage<$node>> for $conn {
            fn from(page: NodePage<$node>) -> Self {
                Self {
                    edges: page
                        .items
                        .into_iter()
                        .map(|(key, node)| $edge { key, node })
                        .collect(),
                    has_previous_page: page.has_previous_page,
                    has_next_page: page.has_next_page,
                    count: page.count,
                }
            }
        }
    };
}

async fn total_count(ctx: &Context<'_>, count: &CountOf) -> Result<u64> {
    let music = &services(ctx).music;
    Ok(match count {
        CountOf::Known(n) => *n,
        CountOf::UserSongs(user) => music.count_songs(user).await?,
        CountOf::UserPlaylists(user) => music.count_playlists(user).await?,
        CountOf::FeaturedPlaylists => music.count_featured().await?,
        CountOf::PlaylistSongs(id, batch) => batch.song_count(music, *id).await?,
    })
}

/// A page of nodes with their cursor keys, before it becomes a connection.
pub(super) struct NodePage<N> {
    items: Vec<(i64, N)>,
    has_previous_page: bool,
    has_next_page: bool,
    count: CountOf,
}

connection_type!(
    SongConnection,
    SongEdge,
    Song,
    "A page of songs, in Relay's connection format.",
    "A song and its cursor."
);
connection_type!(
    PlaylistConnection,
    PlaylistEdge,
    Playlist,
    "A page of playlists, in Relay's connection format.",
    "A playlist and its cursor."
);

/// Builds a page from the service's items and a cursor key for each.
pub(super) fn connection<T, N, C: From<NodePage<N>>>(
    page: music::Page,
    items: PageOf<T>,
    count: CountOf,
    cursor_and_node: impl FnMut(T) -> (i64, N),
) -> C {
    C::from(NodePage {
        items: items.items.into_iter().map(cursor_and_node).collect(),
        has_previous_page: page.after.is_some(),
        has_next_page: items.has_next,
        count,
    })
}

/// A song in a user's library.
pub struct Song(pub songs::Model);

/// A song in a user's library.
#[Object(serial)]
impl Song {
    /// The song's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The song's title.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The performing artist, if known.
    async fn artist(&self) -> Option<&str> {
        self.0.artist.as_deref()
    }

    /// The song's genre, if known.
    async fn genre(&self) -> Option<&str> {
        self.0.genre.as_deref()
    }

    /// When the song was added to the library.
    async fn created_at(&self) -> Timestamp {
        self.0.created_at.into()
    }
}

/// A playlist: an ordered list of songs, with a play counter.
pub struct Playlist {
    model: playlists::Model,
    batch: Arc<PlaylistBatch>,
}

impl From<playlists::Model> for Playlist {
    /// A playlist on its own, as a mutation answers it.
    fn from(model: playlists::Model) -> Self {
        Self {
            batch: PlaylistBatch::new([model.id]),
            model,
        }
    }
}

/// A connection over a page of playlists that share one batch for their songs.
pub(super) fn playlist_connection(
    page: music::Page,
    items: PageOf<playlists::Model>,
    count: CountOf,
) -> PlaylistConnection {
    let batch = PlaylistBatch::new(items.items.iter().map(|p| p.id));
    playlist_page(page, items, count, batch)
}

fn playlist_page(
    page: music::Page,
    items: PageOf<playlists::Model>,
    count: CountOf,
    batch: Arc<PlaylistBatch>,
) -> PlaylistConnection {
    connection(page, items, count, |model| {
        (
            model.id,
            Playlist {
                model,
                batch: batch.clone(),
            },
        )
    })
}

/// A playlist: an ordered list of songs, with a play counter.
#[Object(serial)]
impl Playlist {
    /// The playlist's id.
    async fn id(&self) -> ID {
        ID(self.model.id.to_string())
    }

    /// The playlist's name.
    async fn name(&self) -> &str {
        &self.model.name
    }

    /// How many times the playlist was played.
    async fn plays(&self) -> i64 {
        self.model.plays
    }

    /// Whether the playlist is featured for every user.
    async fn featured(&self) -> bool {
        self.model.featured
    }

    /// When the playlist was created.
    async fn created_at(&self) -> Timestamp {
        self.model.created_at.into()
    }

    /// The playlist's songs, in playlist order.
    async fn songs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many songs, at most (default and maximum set by the server).")] first: Option<i32>,
        #[graphql(
            desc = "Only songs after this cursor (`pageInfo.endCursor` of the previous page)."
        )]
        after: Option<String>,
    ) -> Result<SongConnection> {
        let page = page(ctx, first, after)?;
        let items = self
            .batch
            .songs(&services(ctx).music, self.model.id, page)
            .await?;
        Ok(connection(
            page,
            items,
            CountOf::PlaylistSongs(self.model.id, self.batch.clone()),
            |s| (s.position, Song(s.song)),
        ))
    }
}

/// The signed-in user: the identity profile joined with their music data.
pub struct Me {
    user: UserRecord,
    /// What the `me` resolver read ahead for the fields below; each part is
    /// taken by the first field that asks for exactly that page.
    music: Mutex<MeMusic>,
}

impl Me {
    /// The user, with nothing read ahead.
    pub fn new(user: UserRecord) -> Self {
        Self::with_music(user, MeMusic::default())
    }

    /// The user, with the music read ahead for this query.
    pub fn with_music(user: UserRecord, music: MeMusic) -> Self {
        Self {
            user,
            music: Mutex::new(music),
        }
    }

    fn music(&self) -> std::sync::MutexGuard<'_, MeMusic> {
        // A poisoned lock only means another resolver panicked; the data is still sound.
        self.music.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The signed-in user: the identity profile joined with their music data.
#[Object(serial)]
impl Me {
    /// The user id of the identity provider, e.g. `google-oauth2|1234`.
    async fn id(&self) -> ID {
        ID(self.user.id.clone())
    }

    /// The email address from the identity profile.
    async fn email(&self) -> Option<&str> {
        self.user.email.as_deref()
    }

    /// The full name from the identity profile.
    async fn name(&self) -> Option<&str> {
        self.user.name.as_deref()
    }

    /// The avatar URL from the identity profile.
    async fn picture(&self) -> Option<&str> {
        self.user.picture.as_deref()
    }

    /// The name shown in the app; `"user"` until the user sets one.
    async fn display_name(&self) -> &str {
        self.user.display_name()
    }

    /// The user's own settings: a JSON object whose keys the app chooses,
    /// changed with `updateMe`. Kept in the identity profile, which holds
    /// about 10 KB in all.
    async fn preferences(&self) -> Json<Value> {
        Json(Value::Object(self.user.preferences()))
    }

    /// Roles granted by the server or an admin (read-only to the user).
    async fn roles(&self) -> Vec<String> {
        self.user.roles()
    }

    /// The subscription plan (read-only to the user).
    async fn plan(&self) -> Plan {
        self.user.plan()
    }

    /// Whether the user may feature playlists (holds `playlist_editor`).
    async fn can_edit_featured_playlists(&self) -> bool {
        self.user.has_role(PLAYLIST_EDITOR)
    }

    /// The user's favourite genre, kept in the music database.
    async fn fav_genre(&self) -> Option<&str> {
        self.user.fav_genre.as_deref()
    }

    /// When the gateway last brought its copy of the profile up to date;
    /// `null` while it has not read the profile from the identity provider yet.
    async fn synced_at(&self) -> Option<Timestamp> {
        self.user.synced_at.map(Timestamp)
    }

    /// The user's songs, oldest first.
    async fn songs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many songs, at most (default and maximum set by the server).")] first: Option<i32>,
        #[graphql(
            desc = "Only songs after this cursor (`pageInfo.endCursor` of the previous page)."
        )]
        after: Option<String>,
    ) -> Result<SongConnection> {
        let page = page(ctx, first, after)?;
        let (read, count) = {
            let mut music = self.music();
            let read = music.songs.take_if(|(p, _)| *p == page);
            (read, music.song_count)
        };
        let items = match read {
            Some((_, items)) => items,
            None => services(ctx).music.songs(&self.user.id, page).await?,
        };
        let count = match count {
            Some(n) => CountOf::Known(n),
            None => CountOf::UserSongs(self.user.id.clone()),
        };
        Ok(connection(page, items, count, |s| (s.id, Song(s))))
    }

    /// The user's playlists, oldest first.
    async fn playlists(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many playlists, at most (default and maximum set by the server).")]
        first: Option<i32>,
        #[graphql(
            desc = "Only playlists after this cursor (`pageInfo.endCursor` of the previous page)."
        )]
        after: Option<String>,
    ) -> Result<PlaylistConnection> {
        let page = page(ctx, first, after)?;
        let (read, count) = {
            let mut music = self.music();
            let read = music
                .playlists
                .take_if(|(p, _)| *p == page)
                .map(|(_, items)| {
                    (
                        items,
                        music.playlist_songs.take(),
                        music.playlist_song_counts.take(),
                    )
                });
            (read, music.playlist_count)
        };
        let count = match count {
            Some(n) => CountOf::Known(n),
            None => CountOf::UserPlaylists(self.user.id.clone()),
        };
        Ok(match read {
            Some((items, songs, counts)) => {
                let batch =
                    PlaylistBatch::with_loaded(items.items.iter().map(|p| p.id), songs, counts);
                playlist_page(page, items, count, batch)
            }
            None => {
                let items = services(ctx).music.playlists(&self.user.id, page).await?;
                playlist_connection(page, items, count)
            }
        })
    }

    /// Plays summed over all the user's playlists.
    async fn total_plays(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(services(ctx).music.total_plays(&self.user.id).await?)
    }
}

/// A user's profile as an admin sees it after changing it.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct UserProfile {
    /// The user id of the identity provider.
    pub id: ID,
    /// The email address from the identity profile.
    pub email: Option<String>,
    /// The full name from the identity profile.
    pub name: Option<String>,
    /// The name shown in the app.
    pub display_name: String,
    /// Roles granted by the server or an admin.
    pub roles: Vec<String>,
    /// The subscription plan.
    pub plan: Plan,
    #[graphql(skip)]
    pub(super) has_editor: bool,
}

#[ComplexObject]
impl UserProfile {
    /// Whether the user may feature playlists (holds `playlist_editor`).
    async fn can_edit_featured_playlists(&self) -> bool {
        self.has_editor
    }
}

impl From<UserRecord> for UserProfile {
    fn from(user: UserRecord) -> Self {
        Self {
            id: ID(user.id.clone()),
            display_name: user.display_name().to_owned(),
            roles: user.roles(),
            plan: user.plan(),
            has_editor: user.has_role(PLAYLIST_EDITOR),
            email: user.email,
            name: user.name,
        }
    }
}
