//! The compiler: a parsed document to a plan, and the validator of what it
//! accepts, since async-graphql's validation does not run on this path.

use std::collections::HashSet;

use async_graphql::{
    Name, Positioned,
    parser::types::{
        BaseType, Directive, DocumentOperations, ExecutableDocument, OperationType, Selection,
        SelectionSet, Type,
    },
};
use async_graphql_value::Value;

use super::plan::{
    Condition, Connection, ConnectionField, EdgeField, Input, MeField, Operation, PageInfoField,
    PlaylistField, RootField, Scalar, Sel, SongField, VariableDef,
};

/// Fragments nest at most this deep (a cycle would otherwise loop).
const MAX_FRAGMENT_DEPTH: usize = 8;

/// async-graphql's limit of directives on one field (`limit_directives`).
const MAX_DIRECTIVES: usize = 10;

/// Most fields (counted through every fragment spread) compiled: well
/// under async-graphql's complexity limit, which counts each field once,
/// so no document it would refuse for its size is answered here.
const MAX_FIELDS: usize = crate::graphql::MAX_COMPLEXITY / 4;

/// What the compiler does with each field of a selection: the field, its
/// response key (as written) and its conditions.
type OnField<'a, 'd> =
    dyn FnMut(&mut Compiler<'d>, &Field, Box<[u8]>, Box<[Condition]>) -> Option<()> + 'a;

/// Compiles the operation `name` of `document`; `None` when it is not a
/// `me` query the compiler fully understands, or is not valid.
pub(super) fn compile(document: &ExecutableDocument, name: Option<&str>) -> Option<Operation> {
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
                if !scalar.admits(&value, nullable) {
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
