//! Compiled `me` queries: the hot path without async-graphql's executor.
//!
//! Apps send the same `me` query again and again, and executing it through
//! async-graphql costs more than the statement behind it: a resolver call,
//! a future and a [`async_graphql::Value`] for each of the hundreds of
//! fields of a page, then the tree serialised. An operation that is a
//! `query` selecting only `me` is compiled here once per (document,
//! operation name) into a plan; at request time the plan binds the
//! variables, reads the bundle [`MusicService::me_bundle`] reads for the
//! resolver (one statement), puts the row through the same profile policy
//! (`settle`), and writes the answer straight from the rows, in the query's
//! field order, with the bytes async-graphql would send.
//!
//! The compiler is also the validator of what it accepts, since
//! async-graphql's validation does not run here: fields that exist on their
//! type with the right arguments, variables defined, used and typed for
//! their uses, fragments on the right types, no response key twice. It
//! answers only the successful, fully understood case: anything else (a
//! field it does not know, a variable of the wrong type, no token, an
//! invalid page, a database error, a user the policy refuses) is `None`,
//! and the request runs through async-graphql as before, which reports the
//! error with its usual code and message.
//!
//! [`MusicService::me_bundle`]: crate::music::MusicService::me_bundle

use std::{
    collections::{HashMap, HashSet},
    io::Write as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use async_graphql::{
    Name, Positioned, Variables,
    parser::types::{
        BaseType, Directive, DocumentOperations, ExecutableDocument, OperationType, Selection,
        SelectionSet, Type,
    },
};
use async_graphql_value::{ConstValue, Value};

use super::{
    context::{Limits, Services},
    plan::{Items, ListSelection, plan_list},
    types::encode_cursor,
};
use crate::{
    auth::Principal,
    entity::{playlists, songs},
    error::AppError,
    music::{ListPlan, MeMusic, MePlan, Page, PageOf},
    profile::UserRecord,
};

/// Longest query text compiled; larger ones always run through async-graphql.
const MAX_QUERY_BYTES: usize = 16 * 1024;

/// Fragments nest at most this deep (a cycle would otherwise loop).
const MAX_FRAGMENT_DEPTH: usize = 8;

/// async-graphql's limit of directives on one field (`limit_directives`).
const MAX_DIRECTIVES: usize = 10;

/// Most fields (counted through every fragment spread) compiled: well
/// under async-graphql's complexity limit, which counts each field once,
/// so no document it would refuse for its size is answered here.
const MAX_FIELDS: usize = super::MAX_COMPLEXITY / 4;

/// Query text → (operation name, plan or `None`: not compilable).
type Plans = HashMap<String, Vec<(Option<String>, Option<Arc<Operation>>)>>;

/// What the compiler does with each field of a selection: the field, its
/// response key (as written) and its conditions.
type OnField<'a, 'd> =
    dyn FnMut(&mut Compiler<'d>, &Field, Box<[u8]>, Box<[Condition]>) -> Option<()> + 'a;

/// Compiled operations by query text and operation name, bounded, and how
/// many answers they gave.
pub struct CompiledQueries {
    /// Query text → (operation name, plan or `None`: not compilable).
    plans: Mutex<Plans>,
    capacity: usize,
    answered: AtomicU64,
}

impl CompiledQueries {
    /// A cache of at most `capacity` query texts.
    pub fn new(capacity: usize) -> Self {
        Self {
            plans: Mutex::new(HashMap::new()),
            capacity,
            answered: AtomicU64::new(0),
        }
    }

    /// Requests answered by a compiled plan since start-up.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// The plan of `request`'s operation, compiled now or earlier; `None`
    /// when the compiler does not take it.
    pub fn plan(&self, request: &mut async_graphql::Request) -> Option<Arc<Operation>> {
        if request.query.len() > MAX_QUERY_BYTES {
            return None;
        }
        {
            let name = request.operation_name.as_deref();
            if let Some(known) = self.lock().get(request.query.as_str())
                && let Some((_, plan)) = known.iter().find(|(n, _)| n.as_deref() == name)
            {
                return plan.clone();
            }
        }
        let name = request.operation_name.clone();
        let plan = compile(request.parsed_query().ok()?, name.as_deref()).map(Arc::new);
        let mut plans = self.lock();
        // As the document cache: many distinct queries start it over, which
        // keeps memory bounded and the hot ones return within a request.
        if plans.len() >= self.capacity {
            plans.clear();
        }
        plans
            .entry(request.query.clone())
            .or_default()
            .push((name, plan.clone()));
        plan
    }

    /// The answer to `operation` for `principal`: its body, or what
    /// async-graphql is to answer instead (any doubt, any error; an error
    /// met reading `me` is handed over, not met again).
    pub async fn answer(
        &self,
        operation: &Operation,
        variables: &Variables,
        principal: Option<&Principal>,
        services: &Services,
    ) -> Answer {
        let Some(values) = operation.bind(variables) else {
            return Answer::Fallback;
        };
        let me = operation
            .root
            .iter()
            .find(|s| matches!(s.kind, RootField::Me(_)) && s.included(&values))
            .map(|_| ());
        let read = match me {
            None => None,
            Some(()) => {
                let Some(principal) = principal.filter(|p| !p.is_machine()) else {
                    return Answer::Fallback;
                };
                let Some(plan) = operation.me_plan(&values, services.limits) else {
                    return Answer::Fallback;
                };
                let (row, music) = match services.music.me_bundle(&principal.user_id, &plan).await {
                    Ok(read) => read,
                    Err(e) => return Answer::Failed(e),
                };
                // No row: a user seen for the first time (or again after
                // deleting the account), whose music is empty, since every
                // row of music references the user's row.
                let music = if row.is_none() { empty(&plan) } else { music };
                let user = match services.profiles.settle(principal, row).await {
                    Ok(user) => user,
                    Err(e) => return Answer::Failed(e),
                };
                Some((user, music))
            }
        };
        let mut out = Vec::with_capacity(16 * 1024);
        let cx = Render {
            values: &values,
            read: read.as_ref().map(|(user, music)| (user, music)),
        };
        if cx.root(&mut out, &operation.root).is_none() {
            return Answer::Fallback;
        }
        self.answered.fetch_add(1, Ordering::Relaxed);
        Answer::Body(out)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Plans> {
        // A poisoned lock only means a panic elsewhere; the map is still sound.
        self.plans.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a compiled plan made of a request.
pub enum Answer {
    /// The whole answer, without errors.
    Body(Vec<u8>),
    /// Not for the plan: async-graphql answers as if it had not been tried.
    Fallback,
    /// Reading `me` failed: async-graphql answers, with this as `me`'s error.
    Failed(AppError),
}

/// A compiled `query` operation whose root selects only `me` (and
/// `__typename`).
#[derive(Debug)]
pub struct Operation {
    variables: Vec<VariableDef>,
    root: Vec<Sel<RootField>>,
}

#[derive(Debug)]
struct VariableDef {
    name: Name,
    scalar: Scalar,
    nullable: bool,
    default: Option<ConstValue>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scalar {
    Int,
    String,
    Boolean,
}

/// A value of one of the three kinds of input the plan has: a literal, or
/// the index of a variable.
#[derive(Debug)]
enum Input<T> {
    Literal(T),
    Variable(usize),
}

/// One selected field: its response key (written as `"key":`), the
/// `@skip`/`@include` conditions on it and on the fragments around it, and
/// what it is.
#[derive(Debug)]
struct Sel<K> {
    key: Box<[u8]>,
    conditions: Box<[Condition]>,
    kind: K,
}

#[derive(Debug)]
struct Condition {
    /// `@include` (true) or `@skip` (false).
    include: bool,
    flag: Input<bool>,
}

#[derive(Debug)]
enum RootField {
    Typename,
    Me(Vec<Sel<MeField>>),
}

#[derive(Debug)]
enum MeField {
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
enum SongField {
    Typename,
    Id,
    Name,
    Artist,
    Genre,
    CreatedAt,
}

#[derive(Debug)]
enum PlaylistField {
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
struct Connection<N> {
    first: Option<Input<Option<i32>>>,
    after: Option<Input<Option<String>>>,
    fields: Vec<Sel<ConnectionField<N>>>,
}

#[derive(Debug)]
enum ConnectionField<N> {
    Typename,
    Edges(Vec<Sel<EdgeField<N>>>),
    Nodes(Vec<Sel<N>>),
    PageInfo(Vec<Sel<PageInfoField>>),
    TotalCount,
}

#[derive(Debug)]
enum EdgeField<N> {
    Typename,
    Cursor,
    Node(Vec<Sel<N>>),
}

#[derive(Debug)]
enum PageInfoField {
    Typename,
    HasPreviousPage,
    HasNextPage,
    StartCursor,
    EndCursor,
}

/// The variables' values of one request, by definition index.
type Values = Vec<ConstValue>;

impl<K> Sel<K> {
    fn included(&self, values: &Values) -> bool {
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
    fn bind(&self, variables: &Variables) -> Option<Values> {
        self.variables
            .iter()
            .map(|def| {
                let value = match variables.get(&def.name) {
                    Some(value) => value.clone(),
                    None => def.default.clone().unwrap_or(ConstValue::Null),
                };
                let ok = match (&value, def.scalar) {
                    (ConstValue::Null, _) => def.nullable,
                    (ConstValue::Number(n), Scalar::Int) => {
                        n.as_i64().is_some_and(|n| i32::try_from(n).is_ok())
                    }
                    (ConstValue::String(_), Scalar::String) => true,
                    (ConstValue::Boolean(_), Scalar::Boolean) => true,
                    _ => false,
                };
                ok.then_some(value)
            })
            .collect()
    }

    /// What `me` reads for this request, decided by the planner (`plan`)
    /// from the selections' arguments as bound; `None` for an invalid page,
    /// and for a list selected more than once (aliases, another `me`,
    /// `nodes` beside `edges`): the statement reads one page of each list,
    /// and only async-graphql answers each selection from its own.
    fn me_plan(&self, values: &Values, limits: Limits) -> Option<MePlan> {
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
        Some(super::plan::me_plan(songs, playlists, playlist_songs))
    }
}

/// What `plan` reads of a user without music.
fn empty(plan: &MePlan) -> MeMusic {
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
    fn name(&self) -> &'static str {
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
    fn name(&self) -> &'static str {
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
    fn name(&self) -> &'static str {
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
    fn items(&self) -> impl Iterator<Item = &Sel<N>> {
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
    fn selection(
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

// ---------------------------------------------------------------------------
// The compiler.

/// Compiles the operation `name` of `document`; `None` when it is not a
/// `me` query the compiler fully understands, or is not valid.
fn compile(document: &ExecutableDocument, name: Option<&str>) -> Option<Operation> {
    let operation = match (&document.operations, name) {
        (DocumentOperations::Single(op), None) => &op.node,
        (DocumentOperations::Multiple(ops), name) if ops.len() == 1 => {
            let (op_name, op) = ops.iter().next()?;
            if name.is_some_and(|n| n != op_name.as_str()) {
                return None;
            }
            &op.node
        }
        _ => return None,
    };
    if operation.ty != OperationType::Query || !operation.directives.is_empty() {
        return None;
    }
    let mut variables = Vec::new();
    let mut names = HashSet::new();
    for def in &operation.variable_definitions {
        let def = &def.node;
        if !def.directives.is_empty() || !names.insert(def.name.node.clone()) {
            return None;
        }
        let (scalar, nullable) = scalar_type(&def.var_type.node)?;
        let default = match &def.default_value {
            None => None,
            Some(value) => {
                let value = value.node.clone();
                let ok = match (&value, scalar) {
                    (ConstValue::Null, _) => nullable,
                    (ConstValue::Number(n), Scalar::Int) => {
                        n.as_i64().is_some_and(|n| i32::try_from(n).is_ok())
                    }
                    (ConstValue::String(_), Scalar::String) => true,
                    (ConstValue::Boolean(_), Scalar::Boolean) => true,
                    _ => false,
                };
                if !ok {
                    return None;
                }
                Some(value)
            }
        };
        variables.push(VariableDef {
            name: def.name.node.clone(),
            scalar,
            nullable,
            default,
        });
    }
    let mut compiler = Compiler {
        document,
        variables: &variables,
        used_variables: vec![false; variables.len()],
        used_fragments: HashSet::new(),
        fields: 0,
    };
    let mut root = Vec::new();
    compiler.selections(
        &operation.selection_set.node,
        "Query",
        &mut Vec::new(),
        0,
        &mut |c, field, key, conditions| {
            let kind = match field.name.node.as_str() {
                "__typename" => {
                    c.no_arguments_or_selection(field)?;
                    RootField::Typename
                }
                "me" => {
                    c.no_arguments(field)?;
                    RootField::Me(c.object(&field.selection_set.node, "Me", me_field)?)
                }
                _ => return None,
            };
            root.push(Sel {
                key,
                conditions,
                kind,
            });
            Some(())
        },
    )?;
    unique_keys(&root)?;
    // `me` twice would read twice; async-graphql answers that.
    if root
        .iter()
        .filter(|s| matches!(s.kind, RootField::Me(_)))
        .count()
        != 1
    {
        return None;
    }
    // Validation refuses unused variables and fragments.
    if compiler.used_variables.contains(&false)
        || compiler.used_fragments.len() != document.fragments.len()
    {
        return None;
    }
    Some(Operation { variables, root })
}

/// `Int`, `String` or `Boolean`, and whether nullable.
fn scalar_type(ty: &Type) -> Option<(Scalar, bool)> {
    let BaseType::Named(name) = &ty.base else {
        return None;
    };
    let scalar = match name.as_str() {
        "Int" => Scalar::Int,
        "String" => Scalar::String,
        "Boolean" => Scalar::Boolean,
        _ => return None,
    };
    Some((scalar, ty.nullable))
}

/// Fields whose response keys repeat must be merged; async-graphql does that.
fn unique_keys<K>(sels: &[Sel<K>]) -> Option<()> {
    let mut keys = HashSet::with_capacity(sels.len());
    sels.iter().all(|s| keys.insert(&s.key)).then_some(())
}

struct Compiler<'a> {
    document: &'a ExecutableDocument,
    variables: &'a [VariableDef],
    used_variables: Vec<bool>,
    used_fragments: HashSet<Name>,
    /// Fields compiled so far.
    fields: usize,
}

type Field = async_graphql::parser::types::Field;

impl<'d> Compiler<'d> {
    /// Walks `set` on the type `ty`, through fragments, calling `each` for
    /// every field with its key and the conditions that apply to it.
    fn selections(
        &mut self,
        set: &SelectionSet,
        ty: &str,
        outer: &mut Vec<Condition>,
        depth: usize,
        each: &mut OnField<'_, 'd>,
    ) -> Option<()> {
        if depth > MAX_FRAGMENT_DEPTH {
            return None;
        }
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    self.fields += 1;
                    if self.fields > MAX_FIELDS {
                        return None;
                    }
                    let mark = outer.len();
                    self.conditions(&field.directives, outer)?;
                    let key = field.response_key().node.as_str();
                    let mut key_bytes = serde_json::to_vec(key).ok()?;
                    key_bytes.push(b':');
                    let conditions: Vec<Condition> = outer.drain(mark..).collect();
                    let all: Box<[Condition]> =
                        outer.iter().map(copy_condition).chain(conditions).collect();
                    each(self, field, key_bytes.into(), all)?;
                }
                Selection::FragmentSpread(spread) => {
                    let spread = &spread.node;
                    let name = &spread.fragment_name.node;
                    let fragment = &self.document.fragments.get(name)?.node;
                    if fragment.type_condition.node.on.node.as_str() != ty
                        || !fragment.directives.is_empty()
                    {
                        return None;
                    }
                    self.used_fragments.insert(name.clone());
                    let mark = outer.len();
                    self.conditions(&spread.directives, outer)?;
                    self.selections(&fragment.selection_set.node, ty, outer, depth + 1, each)?;
                    outer.truncate(mark);
                }
                Selection::InlineFragment(inline) => {
                    let inline = &inline.node;
                    if let Some(on) = &inline.type_condition
                        && on.node.on.node.as_str() != ty
                    {
                        return None;
                    }
                    let mark = outer.len();
                    self.conditions(&inline.directives, outer)?;
                    self.selections(&inline.selection_set.node, ty, outer, depth + 1, each)?;
                    outer.truncate(mark);
                }
            }
        }
        Some(())
    }

    /// Appends the `@skip`/`@include` of `directives` to `out`; `None` for
    /// any other directive, a repeated one, or a bad `if`.
    fn conditions(
        &mut self,
        directives: &[Positioned<Directive>],
        out: &mut Vec<Condition>,
    ) -> Option<()> {
        if directives.len() > MAX_DIRECTIVES {
            return None;
        }
        let mut seen = HashSet::new();
        for directive in directives {
            let directive = &directive.node;
            let include = match directive.name.node.as_str() {
                "include" => true,
                "skip" => false,
                _ => return None,
            };
            if !seen.insert(include) {
                return None;
            }
            let [(name, value)] = directive.arguments.as_slice() else {
                return None;
            };
            if name.node.as_str() != "if" {
                return None;
            }
            let flag = match &value.node {
                Value::Boolean(b) => Input::Literal(*b),
                Value::Variable(var) => {
                    Input::Variable(self.variable(var, Scalar::Boolean, true)?)
                }
                _ => return None,
            };
            out.push(Condition { include, flag });
        }
        Some(())
    }

    /// The index of the variable `name` used where a `scalar` goes (a
    /// non-null one when `required`).
    fn variable(&mut self, name: &Name, scalar: Scalar, required: bool) -> Option<usize> {
        let i = self.variables.iter().position(|v| &v.name == name)?;
        let def = &self.variables[i];
        // A nullable variable in a non-null position: async-graphql's rules
        // on defaults decide; leave it to it.
        if def.scalar != scalar || (required && def.nullable) {
            return None;
        }
        self.used_variables[i] = true;
        Some(i)
    }

    fn no_arguments(&self, field: &Field) -> Option<()> {
        field.arguments.is_empty().then_some(())
    }

    fn no_arguments_or_selection(&self, field: &Field) -> Option<()> {
        (field.arguments.is_empty() && field.selection_set.node.items.is_empty()).then_some(())
    }

    /// The fields of an object of type `ty`, each made by `field_of`.
    fn object<K>(
        &mut self,
        set: &SelectionSet,
        ty: &str,
        mut field_of: impl FnMut(&mut Self, &Field) -> Option<K>,
    ) -> Option<Vec<Sel<K>>> {
        if set.items.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        self.selections(
            set,
            ty,
            &mut Vec::new(),
            0,
            &mut |c, field, key, conditions| {
                let kind = field_of(c, field)?;
                out.push(Sel {
                    key,
                    conditions,
                    kind,
                });
                Some(())
            },
        )?;
        unique_keys(&out)?;
        Some(out)
    }

    /// A leaf field: no arguments, no selection.
    fn leaf<K>(&self, field: &Field, kind: K) -> Option<K> {
        self.no_arguments_or_selection(field)?;
        Some(kind)
    }

    /// A list field's `first`/`after` and its connection of `node_ty`.
    fn connection<N>(
        &mut self,
        field: &Field,
        conn_ty: &str,
        edge_ty: &str,
        node_ty: &str,
        node_field: fn(&mut Self, &Field) -> Option<N>,
    ) -> Option<Connection<N>> {
        let mut first = None;
        let mut after = None;
        for (name, value) in &field.arguments {
            match name.node.as_str() {
                "first" if first.is_none() => {
                    first = Some(match &value.node {
                        Value::Null => Input::Literal(None),
                        Value::Number(n) => Input::Literal(Some(i32::try_from(n.as_i64()?).ok()?)),
                        Value::Variable(var) => {
                            Input::Variable(self.variable(var, Scalar::Int, false)?)
                        }
                        _ => return None,
                    });
                }
                "after" if after.is_none() => {
                    after = Some(match &value.node {
                        Value::Null => Input::Literal(None),
                        Value::String(s) => Input::Literal(Some(s.clone())),
                        Value::Variable(var) => {
                            Input::Variable(self.variable(var, Scalar::String, false)?)
                        }
                        _ => return None,
                    });
                }
                _ => return None,
            }
        }
        let fields = self.object(&field.selection_set.node, conn_ty, |c, f| {
            Some(match f.name.node.as_str() {
                "__typename" => c.leaf(f, ConnectionField::Typename)?,
                "totalCount" => c.leaf(f, ConnectionField::TotalCount)?,
                "nodes" => {
                    c.no_arguments(f)?;
                    ConnectionField::Nodes(c.object(&f.selection_set.node, node_ty, node_field)?)
                }
                "pageInfo" => {
                    c.no_arguments(f)?;
                    ConnectionField::PageInfo(c.object(
                        &f.selection_set.node,
                        "PageInfo",
                        page_info_field,
                    )?)
                }
                "edges" => {
                    c.no_arguments(f)?;
                    ConnectionField::Edges(c.object(&f.selection_set.node, edge_ty, |c, e| {
                        Some(match e.name.node.as_str() {
                            "__typename" => c.leaf(e, EdgeField::Typename)?,
                            "cursor" => c.leaf(e, EdgeField::Cursor)?,
                            "node" => {
                                c.no_arguments(e)?;
                                EdgeField::Node(c.object(
                                    &e.selection_set.node,
                                    node_ty,
                                    node_field,
                                )?)
                            }
                            _ => return None,
                        })
                    })?)
                }
                _ => return None,
            })
        })?;
        Some(Connection {
            first,
            after,
            fields,
        })
    }
}

fn copy_condition(c: &Condition) -> Condition {
    Condition {
        include: c.include,
        flag: match &c.flag {
            Input::Literal(b) => Input::Literal(*b),
            Input::Variable(i) => Input::Variable(*i),
        },
    }
}

fn me_field(c: &mut Compiler<'_>, field: &Field) -> Option<MeField> {
    Some(match field.name.node.as_str() {
        "__typename" => c.leaf(field, MeField::Typename)?,
        "id" => c.leaf(field, MeField::Id)?,
        "email" => c.leaf(field, MeField::Email)?,
        "name" => c.leaf(field, MeField::Name)?,
        "picture" => c.leaf(field, MeField::Picture)?,
        "displayName" => c.leaf(field, MeField::DisplayName)?,
        "preferences" => c.leaf(field, MeField::Preferences)?,
        "roles" => c.leaf(field, MeField::Roles)?,
        "plan" => c.leaf(field, MeField::Plan)?,
        "canEditFeaturedPlaylists" => c.leaf(field, MeField::CanEditFeaturedPlaylists)?,
        "favGenre" => c.leaf(field, MeField::FavGenre)?,
        "syncedAt" => c.leaf(field, MeField::SyncedAt)?,
        "songs" => {
            MeField::Songs(c.connection(field, "SongConnection", "SongEdge", "Song", song_field)?)
        }
        "playlists" => {
            let conn = c.connection(
                field,
                "PlaylistConnection",
                "PlaylistEdge",
                "Playlist",
                playlist_field,
            )?;
            // One page of songs for every playlist: the statement reads one.
            let nested = conn
                .items()
                .filter(|f| matches!(f.kind, PlaylistField::Songs(_)))
                .count();
            if nested > 1 {
                return None;
            }
            MeField::Playlists(conn)
        }
        // `totalPlays` and anything new: async-graphql.
        _ => return None,
    })
}

fn song_field(c: &mut Compiler<'_>, field: &Field) -> Option<SongField> {
    let kind = match field.name.node.as_str() {
        "__typename" => SongField::Typename,
        "id" => SongField::Id,
        "name" => SongField::Name,
        "artist" => SongField::Artist,
        "genre" => SongField::Genre,
        "createdAt" => SongField::CreatedAt,
        _ => return None,
    };
    c.leaf(field, kind)
}

fn playlist_field(c: &mut Compiler<'_>, field: &Field) -> Option<PlaylistField> {
    let kind = match field.name.node.as_str() {
        "__typename" => PlaylistField::Typename,
        "id" => PlaylistField::Id,
        "name" => PlaylistField::Name,
        "plays" => PlaylistField::Plays,
        "featured" => PlaylistField::Featured,
        "createdAt" => PlaylistField::CreatedAt,
        "songs" => {
            return Some(PlaylistField::Songs(c.connection(
                field,
                "SongConnection",
                "SongEdge",
                "Song",
                song_field,
            )?));
        }
        _ => return None,
    };
    c.leaf(field, kind)
}

fn page_info_field(c: &mut Compiler<'_>, field: &Field) -> Option<PageInfoField> {
    let kind = match field.name.node.as_str() {
        "__typename" => PageInfoField::Typename,
        "hasPreviousPage" => PageInfoField::HasPreviousPage,
        "hasNextPage" => PageInfoField::HasNextPage,
        "startCursor" => PageInfoField::StartCursor,
        "endCursor" => PageInfoField::EndCursor,
        _ => return None,
    };
    c.leaf(field, kind)
}

// ---------------------------------------------------------------------------
// The writer.

/// What one request writes from.
struct Render<'a> {
    values: &'a Values,
    read: Option<(&'a UserRecord, &'a MeMusic)>,
}

/// One page of a connection, as the writer walks it.
struct PageView<'a, T> {
    page: Page,
    items: &'a [T],
    has_next: bool,
    count: Option<u64>,
}

impl Render<'_> {
    fn root(&self, out: &mut Vec<u8>, root: &[Sel<RootField>]) -> Option<()> {
        out.extend_from_slice(b"{\"data\":");
        let start = out.len();
        out.push(b'{');
        let mut first = true;
        for sel in root.iter().filter(|s| s.included(self.values)) {
            comma(out, &mut first);
            out.extend_from_slice(&sel.key);
            match &sel.kind {
                RootField::Typename => out.extend_from_slice(b"\"Query\""),
                RootField::Me(fields) => {
                    let (user, music) = self.read?;
                    self.me(out, fields, user, music)?;
                }
            }
        }
        close(out, start, first);
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
        let start = out.len();
        out.push(b'{');
        let mut first = true;
        for sel in fields.iter().filter(|s| s.included(self.values)) {
            comma(out, &mut first);
            out.extend_from_slice(&sel.key);
            match &sel.kind {
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
                    let view = match &music.songs {
                        Some((page, items)) => PageView {
                            page: *page,
                            items: &items.items,
                            has_next: items.has_next,
                            count: music.song_count,
                        },
                        None => PageView {
                            page: UNREAD,
                            items: &[],
                            has_next: false,
                            count: music.song_count,
                        },
                    };
                    self.connection(
                        out,
                        conn,
                        &view,
                        ("SongConnection", "SongEdge"),
                        |s: &songs::Model| s.id,
                        |r, out, fields, s| r.song(out, fields, s),
                    )?;
                }
                MeField::Playlists(conn) => {
                    let (page, items) = music.playlists.as_ref().map_or(
                        (None, &[][..]),
                        |(page, items): &(Page, PageOf<playlists::Model>)| {
                            (Some((*page, items.has_next)), &items.items[..])
                        },
                    );
                    let view = PageView {
                        page: match page {
                            Some((page, _)) => page,
                            None => UNREAD,
                        },
                        items,
                        has_next: page.is_some_and(|(_, next)| next),
                        count: music.playlist_count,
                    };
                    self.connection(
                        out,
                        conn,
                        &view,
                        ("PlaylistConnection", "PlaylistEdge"),
                        |p: &playlists::Model| p.id,
                        |r, out, fields, p| r.playlist(out, fields, p, music),
                    )?;
                }
            }
        }
        close(out, start, first);
        Some(())
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
        node: impl Fn(&Self, &mut Vec<u8>, &[Sel<N>], &T) -> Option<()>,
    ) -> Option<()> {
        let start = out.len();
        out.push(b'{');
        let mut first = true;
        for sel in conn.fields.iter().filter(|s| s.included(self.values)) {
            comma(out, &mut first);
            out.extend_from_slice(&sel.key);
            match &sel.kind {
                ConnectionField::Typename => string(out, conn_ty),
                ConnectionField::TotalCount => {
                    let _ = write!(out, "{}", view.count?);
                }
                ConnectionField::Nodes(fields) => {
                    out.push(b'[');
                    for (i, item) in view.items.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        node(self, out, fields, item)?;
                    }
                    out.push(b']');
                }
                ConnectionField::Edges(fields) => {
                    out.push(b'[');
                    for (i, item) in view.items.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        let start = out.len();
                        out.push(b'{');
                        let mut first = true;
                        for e in fields.iter().filter(|s| s.included(self.values)) {
                            comma(out, &mut first);
                            out.extend_from_slice(&e.key);
                            match &e.kind {
                                EdgeField::Typename => string(out, edge_ty),
                                EdgeField::Cursor => string(out, &encode_cursor(key(item))),
                                EdgeField::Node(fields) => node(self, out, fields, item)?,
                            }
                        }
                        close(out, start, first);
                    }
                    out.push(b']');
                }
                ConnectionField::PageInfo(fields) => {
                    let start = out.len();
                    out.push(b'{');
                    let mut first = true;
                    for p in fields.iter().filter(|s| s.included(self.values)) {
                        comma(out, &mut first);
                        out.extend_from_slice(&p.key);
                        match &p.kind {
                            PageInfoField::Typename => string(out, "PageInfo"),
                            PageInfoField::HasPreviousPage => {
                                boolean(out, view.page.after.is_some());
                            }
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
                    }
                    close(out, start, first);
                }
            }
        }
        close(out, start, first);
        Some(())
    }

    fn song(
        &self,
        out: &mut Vec<u8>,
        fields: &[Sel<SongField>],
        song: &songs::Model,
    ) -> Option<()> {
        let start = out.len();
        out.push(b'{');
        let mut first = true;
        for sel in fields.iter().filter(|s| s.included(self.values)) {
            comma(out, &mut first);
            out.extend_from_slice(&sel.key);
            match &sel.kind {
                SongField::Typename => out.extend_from_slice(b"\"Song\""),
                SongField::Id => id(out, song.id),
                SongField::Name => string(out, &song.name),
                SongField::Artist => optional_string(out, song.artist.as_deref()),
                SongField::Genre => optional_string(out, song.genre.as_deref()),
                SongField::CreatedAt => string(out, &song.created_at.to_rfc3339()),
            }
        }
        close(out, start, first);
        Some(())
    }

    fn playlist(
        &self,
        out: &mut Vec<u8>,
        fields: &[Sel<PlaylistField>],
        playlist: &playlists::Model,
        music: &MeMusic,
    ) -> Option<()> {
        let start = out.len();
        out.push(b'{');
        let mut first = true;
        for sel in fields.iter().filter(|s| s.included(self.values)) {
            comma(out, &mut first);
            out.extend_from_slice(&sel.key);
            match &sel.kind {
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
                        Some((page, pages)) => {
                            let items = pages.get(&playlist.id)?;
                            PageView {
                                page: *page,
                                items: &items.items[..],
                                has_next: items.has_next,
                                count,
                            }
                        }
                        None => PageView {
                            page: UNREAD,
                            items: &[],
                            has_next: false,
                            count,
                        },
                    };
                    self.connection(
                        out,
                        conn,
                        &view,
                        ("SongConnection", "SongEdge"),
                        |s: &crate::music::PlaylistSong| s.position,
                        |r, out, fields, s| r.song(out, fields, &s.song),
                    )?;
                }
            }
        }
        close(out, start, first);
        Some(())
    }
}

/// The page of a connection whose items were not read (only its count or
/// `__typename` asked): nothing reads it.
const UNREAD: Page = Page {
    first: 0,
    after: None,
};

/// Ends the object opened at `start`: async-graphql answers an object
/// with no field (all skipped) as `null`.
/// Ends an object; one whose fields were all skipped is `{}`, as the spec
/// answers it (async-graphql's `null` is put right in `order`).
fn close(out: &mut Vec<u8>, _start: usize, _empty: bool) {
    out.push(b'}');
}

fn comma(out: &mut Vec<u8>, first: &mut bool) {
    if !*first {
        out.push(b',');
    }
    *first = false;
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
