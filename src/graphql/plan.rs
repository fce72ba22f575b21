//! What `me` reads, decided once for both ways of answering it.
//!
//! The resolvers read a query's selection ahead (async-graphql's look-ahead)
//! and the compiled path reads it from its plan; each describes every
//! selection of a list (songs, playlists, a playlist's songs) as a
//! [`ListSelection`] (its arguments and the names of the fields selected on
//! the connection and on its items), and [`plan_list`] makes the page, the
//! count and the columns of the statement from them. A field added to
//! `Song` or `Playlist` changes [`item_columns`] and nothing else; the page
//! rules are [`page`], which the resolvers' own arguments go through too.

use super::{context::Limits, types::decode_cursor};
use crate::{
    error::{AppError, AppResult},
    music::{Columns, ListPlan, MePlan, Page},
};

/// A list of `me`, for the column rules of its items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Items {
    Songs,
    Playlists,
}

/// One selection of a list field: its page arguments, bound, and what it
/// selects.
#[derive(Clone, Debug, Default)]
pub struct ListSelection<'a> {
    pub first: Option<i32>,
    pub after: Option<String>,
    /// Fields selected on the connection (`nodes`, `edges`, `pageInfo`,
    /// `totalCount`, `__typename`).
    pub connection: Vec<&'a str>,
    /// Fields selected on the items, under `nodes` and under `edges { node }`.
    pub items: Vec<&'a str>,
}

/// What the statement reads for a list selected by `selections`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListRead {
    pub plan: ListPlan,
    pub columns: Columns,
    /// Selected more than once: one page serves only the first selection,
    /// and the others are read when they are resolved.
    pub repeated: bool,
    /// The first selection's page is invalid: nothing is read ahead for it,
    /// and its resolver reports the error.
    pub invalid_page: bool,
}

/// The read for one list: the page of its first selection's arguments (the
/// only one one statement can read), and the count and the columns that any
/// of its selections needs.
pub fn plan_list(items: Items, selections: &[ListSelection<'_>], limits: Limits) -> ListRead {
    let Some(first) = selections.first() else {
        return ListRead {
            plan: ListPlan::default(),
            columns: Columns::NONE,
            repeated: false,
            invalid_page: false,
        };
    };
    let selected = |names: &[&str]| {
        selections
            .iter()
            .any(|s| s.connection.iter().any(|f| names.contains(f)))
    };
    let wants_items = selected(&["nodes", "edges", "pageInfo"]);
    // The page is checked even when only the count is asked: the resolver
    // checks it too.
    let page = page(first.first, first.after.as_deref(), limits).ok();
    ListRead {
        plan: ListPlan {
            page: page.filter(|_| wants_items),
            count: selected(&["totalCount"]),
        },
        columns: selections.iter().flat_map(|s| s.items.iter()).fold(
            Columns::NONE,
            |acc, field| {
                let c = item_columns(items, field);
                Columns {
                    details: acc.details || c.details,
                    created_at: acc.created_at || c.created_at,
                }
            },
        ),
        repeated: selections.len() > 1,
        invalid_page: page.is_none(),
    }
}

/// What `me` reads: the reads of its songs, its playlists and the
/// playlists' songs put together.
pub fn me_plan(songs: ListRead, playlists: ListRead, playlist_songs: ListRead) -> MePlan {
    MePlan {
        songs: songs.plan,
        playlists: playlists.plan,
        playlist_songs: playlist_songs.plan,
        song_columns: songs.columns,
        playlist_columns: playlists.columns,
        playlist_song_columns: playlist_songs.columns,
    }
}

/// The columns one field of an item needs: a song's `artist` and `genre`
/// and a playlist's `plays` and `featured` the detail columns, `createdAt`
/// its own, `id`, `name`, `__typename` and a playlist's `songs` none. A
/// field not named here reads every column, so a field added to a type is
/// never answered from a column left out.
pub fn item_columns(items: Items, field: &str) -> Columns {
    let details = Columns {
        details: true,
        created_at: false,
    };
    match (items, field) {
        (_, "id" | "name" | "__typename") | (Items::Playlists, "songs") => Columns::NONE,
        (_, "createdAt") => Columns {
            details: false,
            created_at: true,
        },
        (Items::Songs, "artist" | "genre") | (Items::Playlists, "plays" | "featured") => details,
        _ => Columns::ALL,
    }
}

/// The page that `first` and `after` ask for: `first` between 0 and the
/// maximum page size (the default page size when absent), `after` a cursor
/// the gateway wrote.
pub fn page(first: Option<i32>, after: Option<&str>, limits: Limits) -> AppResult<Page> {
    let first = match first {
        None => u64::from(limits.default_page_size),
        Some(n) if n < 0 || n as u32 > limits.max_page_size => {
            return Err(AppError::bad_input(format!(
                "first must be between 0 and {}",
                limits.max_page_size
            )));
        }
        Some(n) => n as u64,
    };
    let after = after.map(decode_cursor).transpose()?;
    Ok(Page { first, after })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        default_page_size: 20,
        max_page_size: 100,
    };

    fn selection<'a>(
        first: Option<i32>,
        connection: &[&'a str],
        items: &[&'a str],
    ) -> ListSelection<'a> {
        ListSelection {
            first,
            after: None,
            connection: connection.to_vec(),
            items: items.to_vec(),
        }
    }

    #[test]
    fn the_first_selection_pages_and_every_selection_adds_its_columns() {
        let read = plan_list(
            Items::Songs,
            &[
                selection(Some(1), &["nodes"], &["id", "name"]),
                selection(Some(3), &["totalCount", "edges"], &["artist"]),
            ],
            LIMITS,
        );
        assert_eq!(read.plan.page.map(|p| p.first), Some(1));
        assert!(read.plan.count);
        assert!(read.repeated);
        assert_eq!(
            read.columns,
            Columns {
                details: true,
                created_at: false
            }
        );
        let count_only = plan_list(
            Items::Playlists,
            &[selection(None, &["totalCount"], &[])],
            LIMITS,
        );
        assert_eq!(count_only.plan.page, None);
        assert!(!count_only.repeated);
    }

    #[test]
    fn pages_out_of_range_or_after_a_bad_cursor_are_refused() {
        assert!(page(Some(-1), None, LIMITS).is_err());
        assert!(page(Some(101), None, LIMITS).is_err());
        assert!(page(Some(100), None, LIMITS).is_ok());
        assert!(page(None, Some("not a cursor"), LIMITS).is_err());
        assert_eq!(page(None, None, LIMITS).unwrap().first, 20);
        let invalid = plan_list(
            Items::Songs,
            &[selection(Some(500), &["totalCount"], &[])],
            LIMITS,
        );
        assert!(invalid.invalid_page);
        assert!(invalid.plan.count);
    }

    #[test]
    fn an_unknown_item_field_reads_every_column() {
        assert_eq!(item_columns(Items::Songs, "lyrics"), Columns::ALL);
        assert_eq!(item_columns(Items::Playlists, "songs"), Columns::NONE);
        assert_eq!(item_columns(Items::Songs, "songs"), Columns::ALL);
    }
}
