//! The writer: the answer's bytes, straight from the rows, in the plan's
//! field order, as async-graphql would send them.

use std::io::Write as _;

use async_graphql_value::ConstValue;

use super::plan::{
    Connection, ConnectionField, EdgeField, MeField, PageInfoField, PlaylistField, RootField, Sel,
    SongField, Values,
};
use crate::{
    entity::{playlists, songs},
    graphql::types::encode_cursor,
    music::{MeMusic, Page, PageOf},
    profile::UserRecord,
};

/// What one request writes from.
pub(super) struct Render<'a> {
    pub(super) values: &'a Values,
    pub(super) read: Option<(&'a UserRecord, &'a MeMusic)>,
}

/// One page of a connection, as the writer walks it.
struct PageView<'a, T> {
    page: Page,
    items: &'a [T],
    has_next: bool,
    count: Option<u64>,
}

impl Render<'_> {
    /// The one object skeleton: `{`, each included selection as
    /// `"key":value` (the value written by `value`), `}`. An object whose
    /// fields were all skipped is `{}`, as the spec answers it
    /// (async-graphql's `null` is put right in `order`).
    fn object<K>(
        &self,
        out: &mut Vec<u8>,
        fields: &[Sel<K>],
        mut value: impl FnMut(&mut Vec<u8>, &K) -> Option<()>,
    ) -> Option<()> {
        out.push(b'{');
        let mut first = true;
        for sel in fields.iter().filter(|s| s.included(self.values)) {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(&sel.key);
            value(out, &sel.kind)?;
        }
        out.push(b'}');
        Some(())
    }

    pub(super) fn root(&self, out: &mut Vec<u8>, root: &[Sel<RootField>]) -> Option<()> {
        out.extend_from_slice(b"{\"data\":");
        self.object(out, root, |out, field| {
            match field {
                RootField::Typename => out.extend_from_slice(b"\"Query\""),
                RootField::Me(fields) => {
                    let (user, music) = self.read?;
                    self.me(out, fields, user, music)?;
                }
            }
            Some(())
        })?;
        out.push(b'}');
        Some(())
    }

    fn me(
        &self,
        out: &mut Vec<u8>,
        fields: &[Sel<MeField>],
        user: &UserRecord,
        music: &MeMusic,
    ) -> Option<()> {
        self.object(out, fields, |out, field| {
            match field {
                MeField::Typename => out.extend_from_slice(b"\"Me\""),
                MeField::Id => string(out, &user.id),
                MeField::Email => optional_string(out, user.email.as_deref()),
                MeField::Name => optional_string(out, user.name.as_deref()),
                MeField::Picture => optional_string(out, user.picture.as_deref()),
                MeField::DisplayName => string(out, user.display_name()),
                MeField::Preferences => {
                    serde_json::to_writer(&mut *out, &user.preferences()).ok()?;
                }
                MeField::Roles => serde_json::to_writer(&mut *out, &user.roles()).ok()?,
                MeField::Plan => {
                    let ConstValue::Enum(name) = async_graphql::InputType::to_value(&user.plan())
                    else {
                        return None;
                    };
                    string(out, name.as_str());
                }
                MeField::CanEditFeaturedPlaylists => {
                    boolean(out, user.has_role(crate::profile::PLAYLIST_EDITOR));
                }
                MeField::FavGenre => optional_string(out, user.fav_genre.as_deref()),
                MeField::SyncedAt => match user.synced_at {
                    Some(at) => string(out, &at.to_rfc3339()),
                    None => out.extend_from_slice(b"null"),
                },
                MeField::Songs(conn) => {
                    let view = PageView::of(music.songs.as_ref(), music.song_count);
                    self.connection(
                        out,
                        conn,
                        &view,
                        ("SongConnection", "SongEdge"),
                        |s: &songs::Model| s.id,
                        |out, fields, s| self.song(out, fields, s),
                    )?;
                }
                MeField::Playlists(conn) => {
                    let view = PageView::of(music.playlists.as_ref(), music.playlist_count);
                    self.connection(
                        out,
                        conn,
                        &view,
                        ("PlaylistConnection", "PlaylistEdge"),
                        |p: &playlists::Model| p.id,
                        |out, fields, p| self.playlist(out, fields, p, music),
                    )?;
                }
            }
            Some(())
        })
    }

    /// A connection over `view`; `key` gives an item's cursor key, `node`
    /// writes an item.
    fn connection<N, T>(
        &self,
        out: &mut Vec<u8>,
        conn: &Connection<N>,
        view: &PageView<'_, T>,
        (conn_ty, edge_ty): (&str, &str),
        key: fn(&T) -> i64,
        node: impl Fn(&mut Vec<u8>, &[Sel<N>], &T) -> Option<()>,
    ) -> Option<()> {
        self.object(out, &conn.fields, |out, field| {
            match field {
                ConnectionField::Typename => string(out, conn_ty),
                ConnectionField::TotalCount => {
                    let _ = write!(out, "{}", view.count?);
                }
                ConnectionField::Nodes(fields) => {
                    list(out, view.items, |out, item| node(out, fields, item))?;
                }
                ConnectionField::Edges(fields) => list(out, view.items, |out, item| {
                    self.object(out, fields, |out, edge| {
                        match edge {
                            EdgeField::Typename => string(out, edge_ty),
                            EdgeField::Cursor => string(out, &encode_cursor(key(item))),
                            EdgeField::Node(fields) => node(out, fields, item)?,
                        }
                        Some(())
                    })
                })?,
                ConnectionField::PageInfo(fields) => self.object(out, fields, |out, info| {
                    match info {
                        PageInfoField::Typename => string(out, "PageInfo"),
                        PageInfoField::HasPreviousPage => boolean(out, view.page.after.is_some()),
                        PageInfoField::HasNextPage => boolean(out, view.has_next),
                        PageInfoField::StartCursor => optional_string(
                            out,
                            view.items.first().map(|i| encode_cursor(key(i))).as_deref(),
                        ),
                        PageInfoField::EndCursor => optional_string(
                            out,
                            view.items.last().map(|i| encode_cursor(key(i))).as_deref(),
                        ),
                    }
                    Some(())
                })?,
            }
            Some(())
        })
    }

    fn song(
        &self,
        out: &mut Vec<u8>,
        fields: &[Sel<SongField>],
        song: &songs::Model,
    ) -> Option<()> {
        self.object(out, fields, |out, field| {
            match field {
                SongField::Typename => out.extend_from_slice(b"\"Song\""),
                SongField::Id => id(out, song.id),
                SongField::Name => string(out, &song.name),
                SongField::Artist => optional_string(out, song.artist.as_deref()),
                SongField::Genre => optional_string(out, song.genre.as_deref()),
                SongField::CreatedAt => string(out, &song.created_at.to_rfc3339()),
            }
            Some(())
        })
    }

    fn playlist(
        &self,
        out: &mut Vec<u8>,
        fields: &[Sel<PlaylistField>],
        playlist: &playlists::Model,
        music: &MeMusic,
    ) -> Option<()> {
        self.object(out, fields, |out, field| {
            match field {
                PlaylistField::Typename => out.extend_from_slice(b"\"Playlist\""),
                PlaylistField::Id => id(out, playlist.id),
                PlaylistField::Name => string(out, &playlist.name),
                PlaylistField::Plays => {
                    let _ = write!(out, "{}", playlist.plays);
                }
                PlaylistField::Featured => boolean(out, playlist.featured),
                PlaylistField::CreatedAt => string(out, &playlist.created_at.to_rfc3339()),
                PlaylistField::Songs(conn) => {
                    let count = music
                        .playlist_song_counts
                        .as_ref()
                        .and_then(|c| c.get(&playlist.id).copied());
                    let view = match &music.playlist_songs {
                        // Every playlist read has its page, empty or not.
                        Some((page, pages)) => {
                            let items = pages.get(&playlist.id)?;
                            PageView {
                                page: *page,
                                items: &items.items[..],
                                has_next: items.has_next,
                                count,
                            }
                        }
                        None => PageView::of(None, count),
                    };
                    self.connection(
                        out,
                        conn,
                        &view,
                        ("SongConnection", "SongEdge"),
                        |s: &crate::music::PlaylistSong| s.position,
                        |out, fields, s| self.song(out, fields, &s.song),
                    )?;
                }
            }
            Some(())
        })
    }
}

impl<'a, T> PageView<'a, T> {
    /// The page read of a list, or (not read: only its count or
    /// `__typename` asked) an empty one that nothing reads.
    fn of(read: Option<&'a (Page, PageOf<T>)>, count: Option<u64>) -> Self {
        match read {
            Some((page, items)) => Self {
                page: *page,
                items: &items.items,
                has_next: items.has_next,
                count,
            },
            None => Self {
                page: UNREAD,
                items: &[],
                has_next: false,
                count,
            },
        }
    }
}

/// The page of a connection whose items were not read.
const UNREAD: Page = Page {
    first: 0,
    after: None,
};

/// The one list skeleton: `[`, each item written by `item`, `]`.
fn list<T>(
    out: &mut Vec<u8>,
    items: &[T],
    mut item: impl FnMut(&mut Vec<u8>, &T) -> Option<()>,
) -> Option<()> {
    out.push(b'[');
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item(out, it)?;
    }
    out.push(b']');
    Some(())
}

/// A JSON string, escaped by serde_json as async-graphql's writer does.
fn string(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn optional_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn boolean(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// An `ID`: the number as a string.
fn id(out: &mut Vec<u8>, n: i64) {
    let _ = write!(out, "\"{n}\"");
}
