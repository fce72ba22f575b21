//! The plan of a compiled operation: what it selects, as a tree the writer
//! walks, and what it reads for a request once its variables are bound.

use std::collections::HashMap;

use async_graphql::{Name, Variables};
use async_graphql_value::ConstValue;

use crate::{
    graphql::{
        context::Limits,
        plan::{Items, ListSelection, plan_list},
    },
    music::{ListPlan, MeMusic, MePlan, PageOf},
};

/// A compiled `query` operation whose root selects only `me` (and
/// `__typename`).
#[derive(Debug)]
pub struct Operation {
    pub(super) variables: Vec<VariableDef>,
    pub(super) root: Vec<Sel<RootField>>,
}

#[derive(Debug)]
pub(super) struct VariableDef {
    pub(super) name: Name,
    pub(super) scalar: Scalar,
    pub(super) nullable: bool,
    pub(super) default: Option<ConstValue>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scalar {
    Int,
    String,
    Boolean,
}

impl Scalar {
    /// Whether `value` is one of this type (`null` only when `nullable`),
    /// as async-graphql's input coercion decides: an `Int` fits in 32 bits.
    pub(super) fn admits(self, value: &ConstValue, nullable: bool) -> bool {
        match (value, self) {
            (ConstValue::Null, _) => nullable,
            (ConstValue::Number(n), Self::Int) => {
                n.as_i64().is_some_and(|n| i32::try_from(n).is_ok())
            }
            (ConstValue::String(_), Self::String) => true,
            (ConstValue::Boolean(_), Self::Boolean) => true,
            _ => false,
        }
    }
}

/// A value of one of the three kinds of input the plan has: a literal, or
/// the index of a variable.
#[derive(Debug)]
pub(super) enum Input<T> {
    Literal(T),
    Variable(usize),
}

/// One selected field: its response key (written as `"key":`), the
/// `@skip`/`@include` conditions on it and on the fragments around it, and
/// what it is.
#[derive(Debug)]
pub(super) struct Sel<K> {
    pub(super) key: Box<[u8]>,
    pub(super) conditions: Box<[Condition]>,
    pub(super) kind: K,
}

#[derive(Debug)]
pub(super) struct Condition {
    /// `@include` (true) or `@skip` (false).
    pub(super) include: bool,
    pub(super) flag: Input<bool>,
}

#[derive(Debug)]
pub(super) enum RootField {
    Typename,
    Me(Vec<Sel<MeField>>),
}

#[derive(Debug)]
pub(super) enum MeField {
    Typename,
    Id,
    Email,
    Name,
    Picture,
    DisplayName,
    Preferences,
    Roles,
    Plan,
    CanEditFeaturedPlaylists,
    FavGenre,
    SyncedAt,
    Songs(Connection<SongField>),
    Playlists(Connection<PlaylistField>),
}

#[derive(Debug)]
pub(super) enum SongField {
    Typename,
    Id,
    Name,
    Artist,
    Genre,
    CreatedAt,
}

#[derive(Debug)]
pub(super) enum PlaylistField {
    Typename,
    Id,
    Name,
    Plays,
    Featured,
    CreatedAt,
    Songs(Connection<SongField>),
}

/// A list field: its page arguments and the selection of the connection.
#[derive(Debug)]
pub(super) struct Connection<N> {
    pub(super) first: Option<Input<Option<i32>>>,
    pub(super) after: Option<Input<Option<String>>>,
    pub(super) fields: Vec<Sel<ConnectionField<N>>>,
}

#[derive(Debug)]
pub(super) enum ConnectionField<N> {
    Typename,
    Edges(Vec<Sel<EdgeField<N>>>),
    Nodes(Vec<Sel<N>>),
    PageInfo(Vec<Sel<PageInfoField>>),
    TotalCount,
}

#[derive(Debug)]
pub(super) enum EdgeField<N> {
    Typename,
    Cursor,
    Node(Vec<Sel<N>>),
}

#[derive(Debug)]
pub(super) enum PageInfoField {
    Typename,
    HasPreviousPage,
    HasNextPage,
    StartCursor,
    EndCursor,
}

/// The variables' values of one request, by definition index.
pub(super) type Values = Vec<ConstValue>;

impl<K> Sel<K> {
    pub(super) fn included(&self, values: &Values) -> bool {
        self.conditions.iter().all(|c| {
            let flag = match &c.flag {
                Input::Literal(b) => *b,
                // Bound as booleans already.
                Input::Variable(i) => matches!(values.get(*i), Some(ConstValue::Boolean(true))),
            };
            flag == c.include
        })
    }
}

impl Operation {
    /// The variables' values, checked against their definitions; `None`
    /// for any value async-graphql would refuse.
    pub(super) fn bind(&self, variables: &Variables) -> Option<Values> {
        self.variables
            .iter()
            .map(|def| {
                let value = match variables.get(&def.name) {
                    Some(value) => value.clone(),
                    None => def.default.clone().unwrap_or(ConstValue::Null),
                };
                def.scalar.admits(&value, def.nullable).then_some(value)
            })
            .collect()
    }

    /// What `me` reads for this request, decided by the planner (`plan`)
    /// from the selections' arguments as bound; `None` for an invalid page,
    /// and for a list selected more than once (aliases, another `me`,
    /// `nodes` beside `edges`): the statement reads one page of each list,
    /// and only async-graphql answers each selection from its own.
    pub(super) fn me_plan(&self, values: &Values, limits: Limits) -> Option<MePlan> {
        let (mut songs, mut playlists, mut playlist_songs) = (Vec::new(), Vec::new(), Vec::new());
        for me in &self.root {
            let RootField::Me(fields) = &me.kind else {
                continue;
            };
            for field in fields {
                match &field.kind {
                    MeField::Songs(conn) => songs.push(conn.selection(values, SongField::name)?),
                    MeField::Playlists(conn) => {
                        playlists.push(conn.selection(values, PlaylistField::name)?);
                        for item in conn.items() {
                            if let PlaylistField::Songs(nested) = &item.kind {
                                playlist_songs.push(nested.selection(values, SongField::name)?);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        let read = |items, selections: &[ListSelection<'_>]| {
            let read = plan_list(items, selections, limits);
            (!read.repeated && !read.invalid_page).then_some(read)
        };
        let songs = read(Items::Songs, &songs)?;
        let playlists = read(Items::Playlists, &playlists)?;
        let playlist_songs = read(Items::Songs, &playlist_songs)?;
        Some(crate::graphql::plan::me_plan(
            songs,
            playlists,
            playlist_songs,
        ))
    }
}

/// What `plan` reads of a user without music.
pub(super) fn empty(plan: &MePlan) -> MeMusic {
    let count = |list: &ListPlan| list.count.then_some(0);
    let playlist_songs = plan.playlists.page.and(plan.playlist_songs.page);
    MeMusic {
        songs: plan.songs.page.map(|page| (page, PageOf::empty())),
        song_count: count(&plan.songs),
        playlists: plan.playlists.page.map(|page| (page, PageOf::empty())),
        playlist_count: count(&plan.playlists),
        playlist_songs: playlist_songs.map(|page| (page, HashMap::new())),
        playlist_song_counts: (plan.playlists.page.is_some() && plan.playlist_songs.count)
            .then(HashMap::new),
    }
}

impl SongField {
    /// The field's name in the schema, for the planner.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Self::Typename => "__typename",
            Self::Id => "id",
            Self::Name => "name",
            Self::Artist => "artist",
            Self::Genre => "genre",
            Self::CreatedAt => "createdAt",
        }
    }
}

impl PlaylistField {
    /// The field's name in the schema, for the planner.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Self::Typename => "__typename",
            Self::Id => "id",
            Self::Name => "name",
            Self::Plays => "plays",
            Self::Featured => "featured",
            Self::CreatedAt => "createdAt",
            Self::Songs(_) => "songs",
        }
    }
}

impl<N> ConnectionField<N> {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Self::Typename => "__typename",
            Self::Edges(_) => "edges",
            Self::Nodes(_) => "nodes",
            Self::PageInfo(_) => "pageInfo",
            Self::TotalCount => "totalCount",
        }
    }
}

impl<N> Connection<N> {
    /// The item selections, under `nodes` and under `edges { node }`.
    pub(super) fn items(&self) -> impl Iterator<Item = &Sel<N>> {
        self.fields
            .iter()
            .flat_map(|f| -> Box<dyn Iterator<Item = &Sel<N>> + '_> {
                match &f.kind {
                    ConnectionField::Nodes(nodes) => Box::new(nodes.iter()),
                    ConnectionField::Edges(edges) => {
                        Box::new(edges.iter().flat_map(|e| match &e.kind {
                            EdgeField::Node(node) => node.iter(),
                            _ => [].iter(),
                        }))
                    }
                    _ => Box::new(std::iter::empty()),
                }
            })
    }

    /// This selection for the planner, its arguments bound to `values`;
    /// `None` for a value of the wrong type.
    pub(super) fn selection(
        &self,
        values: &Values,
        name: fn(&N) -> &'static str,
    ) -> Option<ListSelection<'static>> {
        let first = match &self.first {
            None => None,
            Some(Input::Literal(n)) => *n,
            Some(Input::Variable(i)) => match values.get(*i)? {
                ConstValue::Null => None,
                ConstValue::Number(n) => Some(i32::try_from(n.as_i64()?).ok()?),
                _ => return None,
            },
        };
        let after = match &self.after {
            None => None,
            Some(Input::Literal(s)) => s.clone(),
            Some(Input::Variable(i)) => match values.get(*i)? {
                ConstValue::Null => None,
                ConstValue::String(s) => Some(s.clone()),
                _ => return None,
            },
        };
        Some(ListSelection {
            first,
            after,
            connection: self.fields.iter().map(|f| f.kind.name()).collect(),
            items: self.items().map(|f| name(&f.kind)).collect(),
        })
    }
}
