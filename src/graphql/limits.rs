//! What a query may cost, measured on its parsed document before it runs.
//!
//! async-graphql's complexity limit (`MAX_COMPLEXITY`) counts every field
//! once whatever the page sizes, so a query that asks for `songs(first: 100)`
//! inside `playlists(first: 100)` costs it no more than one asking for a
//! single song, and 200 aliases of the full `me` fit in a 64 KB body. The
//! cost here counts what the answer holds: every field costs 1 for each
//! time it appears in the answer. A paged field's page size (its `first`:
//! a literal, a variable or the variable's default, else the server's
//! default page size; capped at the maximum page size) multiplies what is
//! selected under the lists of items its connection returns (`nodes`), as
//! those are the rows a page can return; the connection's own fields
//! (`totalCount`, `pageInfo`) appear once per connection. Lists nest, so
//! the songs of each playlist of a page count once per playlist. A list
//! that takes no `first` counts as one item. Aliases and root fields are
//! counted as the document would run them, fragments spread where they are
//! used. The check runs before execution, so a refused query costs no SQL.

use std::collections::{HashMap, HashSet};

use async_graphql::{
    Name, Positioned, Variables,
    parser::types::{
        BaseType, DocumentOperations, ExecutableDocument, OperationDefinition, OperationType,
        Selection, SelectionSet, ServiceDocument, Type, TypeKind, TypeSystemDefinition,
        VariableDefinition,
    },
};

use super::Limits;

// The settings are config's, below this layer; their defaults are here.
pub use crate::config::QueryLimits;

impl Default for QueryLimits {
    /// The full `me`, every field of the schema asked for at the largest
    /// page sizes, costs 51,829 (its 10,000 songs of playlists, five fields
    /// each, are most of it), so it is admitted with room to spare; two
    /// aliases of it cost 103,658 and are refused, and so are four, thirty
    /// (within the alias limit) or more.
    fn default() -> Self {
        Self {
            max_aliases: 30,
            max_root_fields: 20,
            max_cost: 100_000,
        }
    }
}

/// What a document measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryCost {
    pub aliases: u64,
    pub root_fields: u64,
    pub cost: u64,
}

/// A limit a query went over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitExceeded {
    Aliases { count: u64, max: u64 },
    RootFields { count: u64, max: u64 },
    Cost { cost: u64, max: u64 },
}

impl LimitExceeded {
    /// The stable code clients match on.
    pub fn code(&self) -> crate::error::ErrorCode {
        use crate::error::ErrorCode;
        match self {
            Self::Aliases { .. } => ErrorCode::QueryTooManyAliases,
            Self::RootFields { .. } => ErrorCode::QueryTooManyRootFields,
            Self::Cost { .. } => ErrorCode::QueryTooCostly,
        }
    }

    /// The message for the client developer.
    pub fn message(&self) -> String {
        match self {
            Self::Aliases { count, max } => format!(
                "the query has {count} aliased fields; at most {max} are allowed (MAX_ALIASES)"
            ),
            Self::RootFields { count, max } => format!(
                "the query selects {count} root fields; at most {max} are allowed (MAX_ROOT_FIELDS)"
            ),
            Self::Cost { cost, max } => format!(
                "the query's estimated cost is {cost}, above the limit of {max} (MAX_QUERY_COST): \
                 every field counts once per item of each list above it; ask for smaller pages \
                 (`first`) or fewer aliases"
            ),
        }
    }

    /// The limit and the value measured, for `extensions`.
    pub fn figures(&self) -> (u64, u64) {
        match *self {
            Self::Aliases { count, max } | Self::RootFields { count, max } => (count, max),
            Self::Cost { cost, max } => (cost, max),
        }
    }
}

/// The schema's shape as far as cost goes: which fields are paged lists and
/// what type each field answers.
#[derive(Debug)]
pub struct QueryLimiter {
    limits: QueryLimits,
    pages: Limits,
    /// Type, then field, to the field's named type and whether it takes
    /// `first`; nested so a lookup by `&str` allocates nothing.
    fields: HashMap<String, HashMap<String, FieldShape>>,
    query_type: String,
    mutation_type: String,
}

#[derive(Debug)]
struct FieldShape {
    ty: String,
    /// Takes `first`: its page size multiplies its lists of items.
    paged: bool,
    /// Answers a list (`nodes`, `roles`), whose items a page size above
    /// multiplies.
    list: bool,
}

impl QueryLimiter {
    /// A limiter for the schema whose SDL is `sdl`.
    pub fn new(sdl: &str, limits: QueryLimits, pages: Limits) -> Self {
        let mut fields = HashMap::new();
        let mut query_type = "Query".to_owned();
        let mut mutation_type = "Mutation".to_owned();
        // The SDL is the schema's own export: it always parses. Should it
        // not, every field costs 1, which still bounds aliases and roots.
        let document = async_graphql::parser::parse_schema(sdl).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the schema for query costs");
            ServiceDocument {
                definitions: Vec::new(),
            }
        });
        for definition in document.definitions {
            match definition {
                TypeSystemDefinition::Schema(schema) => {
                    if let Some(q) = &schema.node.query {
                        query_type = q.node.to_string();
                    }
                    if let Some(m) = &schema.node.mutation {
                        mutation_type = m.node.to_string();
                    }
                }
                TypeSystemDefinition::Type(ty) => {
                    let object_fields = match &ty.node.kind {
                        TypeKind::Object(object) => &object.fields,
                        TypeKind::Interface(interface) => &interface.fields,
                        _ => continue,
                    };
                    for field in object_fields {
                        let field = &field.node;
                        let paged = field.arguments.iter().any(|a| a.node.name.node == "first");
                        fields
                            .entry(ty.node.name.node.to_string())
                            .or_insert_with(HashMap::new)
                            .insert(
                                field.name.node.to_string(),
                                FieldShape {
                                    ty: named_type(&field.ty.node).to_owned(),
                                    paged,
                                    list: matches!(field.ty.node.base, BaseType::List(_)),
                                },
                            );
                    }
                }
                TypeSystemDefinition::Directive(_) => {}
            }
        }
        Self {
            limits,
            pages,
            fields,
            query_type,
            mutation_type,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> QueryLimits {
        self.limits
    }

    /// Measures the operation that `operation_name` selects, or the costliest
    /// of the document's operations when none can be picked (execution then
    /// reports why).
    pub fn measure(
        &self,
        document: &ExecutableDocument,
        operation_name: Option<&str>,
        variables: &Variables,
    ) -> QueryCost {
        match select_operation(document, operation_name) {
            Some(operation) => self.measure_operation(document, operation, variables),
            None => operations(document)
                .map(|op| self.measure_operation(document, op, variables))
                .fold(QueryCost::default(), |a, b| QueryCost {
                    aliases: a.aliases.max(b.aliases),
                    root_fields: a.root_fields.max(b.root_fields),
                    cost: a.cost.max(b.cost),
                }),
        }
    }

    /// Refuses a query over one of the limits, naming which.
    pub fn check(
        &self,
        document: &ExecutableDocument,
        operation_name: Option<&str>,
        variables: &Variables,
    ) -> Result<QueryCost, LimitExceeded> {
        let measured = self.measure(document, operation_name, variables);
        let limits = self.limits;
        if measured.aliases > limits.max_aliases {
            return Err(LimitExceeded::Aliases {
                count: measured.aliases,
                max: limits.max_aliases,
            });
        }
        if measured.root_fields > limits.max_root_fields {
            return Err(LimitExceeded::RootFields {
                count: measured.root_fields,
                max: limits.max_root_fields,
            });
        }
        if measured.cost > limits.max_cost {
            return Err(LimitExceeded::Cost {
                cost: measured.cost,
                max: limits.max_cost,
            });
        }
        Ok(measured)
    }

    fn measure_operation(
        &self,
        document: &ExecutableDocument,
        operation: &OperationDefinition,
        variables: &Variables,
    ) -> QueryCost {
        let root = match operation.ty {
            OperationType::Query => Some(self.query_type.as_str()),
            OperationType::Mutation => Some(self.mutation_type.as_str()),
            OperationType::Subscription => None,
        };
        let mut walk = Walk {
            limiter: self,
            document,
            variables,
            definitions: &operation.variable_definitions,
            fragments: HashMap::new(),
            in_progress: HashSet::new(),
        };
        let tally = walk.selection_set(&operation.selection_set.node, root);
        QueryCost {
            aliases: tally.aliases,
            root_fields: walk.root_fields(
                &operation.selection_set.node,
                &mut HashMap::new(),
                &mut HashSet::new(),
            ),
            // A list at the root has no page size: one item.
            cost: tally.once.saturating_add(tally.per_item),
        }
    }

    /// The page size a paged field asks for.
    fn page_size(
        &self,
        field: &async_graphql::parser::types::Field,
        variables: &Variables,
        definitions: &[Positioned<VariableDefinition>],
    ) -> u64 {
        let requested = field
            .arguments
            .iter()
            .find(|(name, _)| name.node == "first")
            .and_then(|(_, value)| {
                // A variable's value, or its default; absent, the server's default.
                let value = value.node.clone().into_const_with(|name| {
                    variables
                        .get(&name)
                        .or_else(|| {
                            definitions
                                .iter()
                                .find(|d| d.node.name.node == name)
                                .and_then(|d| d.node.default_value.as_ref().map(|v| &v.node))
                        })
                        .cloned()
                        .ok_or(())
                });
                match value {
                    Ok(async_graphql::Value::Number(n)) => n.as_i64(),
                    _ => None,
                }
            });
        let size = match requested {
            Some(n) => u64::try_from(n).unwrap_or(0),
            None => u64::from(self.pages.default_page_size),
        };
        // A page of 0 has no items; its connection's own fields still count.
        size.min(u64::from(self.pages.max_page_size))
    }
}

/// The name under a type's list and non-null wrappers.
fn named_type(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(name) => name.as_str(),
        BaseType::List(inner) => named_type(inner),
    }
}

/// Every operation of a document.
fn operations(document: &ExecutableDocument) -> impl Iterator<Item = &OperationDefinition> {
    document.operations.iter().map(|(_, op)| &op.node)
}

/// The operation a request runs: the named one, or the only one.
pub fn select_operation<'a>(
    document: &'a ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    match (&document.operations, operation_name) {
        (DocumentOperations::Single(op), _) => Some(&op.node),
        (DocumentOperations::Multiple(ops), Some(name)) => {
            ops.get(&Name::new(name)).map(|op| &op.node)
        }
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| &op.node)
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// Aliases and cost of a selection set, its cost in two parts: what appears
/// once in the answer however large the page above, and what its lists of
/// items hold for one item each, which the page size of the field that
/// selected this set multiplies. Kept apart so a fragment's tally is the same
/// wherever it is spread.
#[derive(Clone, Copy, Default)]
struct Tally {
    aliases: u64,
    once: u64,
    per_item: u64,
}

struct Walk<'a> {
    limiter: &'a QueryLimiter,
    document: &'a ExecutableDocument,
    variables: &'a Variables,
    definitions: &'a [Positioned<VariableDefinition>],
    /// A fragment's tally, measured once however often it is spread: a
    /// document of fragments that each spread the next one twice would
    /// otherwise take exponential time to measure.
    fragments: HashMap<&'a str, Tally>,
    /// Fragments being measured; a spread that cycles back counts nothing
    /// (validation refuses such a document before it runs).
    in_progress: HashSet<&'a str>,
}

impl<'a> Walk<'a> {
    fn selection_set(&mut self, set: &'a SelectionSet, parent: Option<&'a str>) -> Tally {
        let limiter = self.limiter;
        let mut tally = Tally::default();
        for selection in &set.items {
            let part = match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let shape = parent
                        .and_then(|p| limiter.fields.get(p))
                        .and_then(|fields| fields.get(field.name.node.as_str()));
                    let page = match shape {
                        Some(shape) if shape.paged => {
                            limiter.page_size(field, self.variables, self.definitions)
                        }
                        _ => 1,
                    };
                    let child_type = shape.map(|s| s.ty.as_str());
                    let children = self.selection_set(&field.selection_set.node, child_type);
                    // What one of this field's values holds in the answer.
                    let value = children
                        .once
                        .saturating_add(page.saturating_mul(children.per_item));
                    let aliases = u64::from(field.alias.is_some()).saturating_add(children.aliases);
                    if shape.is_some_and(|s| s.list) {
                        // The list itself once; its items per item above.
                        Tally {
                            aliases,
                            once: 1,
                            per_item: value,
                        }
                    } else {
                        Tally {
                            aliases,
                            once: value.saturating_add(1),
                            per_item: 0,
                        }
                    }
                }
                Selection::InlineFragment(inline) => {
                    let inline = &inline.node;
                    let ty = inline
                        .type_condition
                        .as_ref()
                        .map(|c| c.node.on.node.as_str())
                        .or(parent);
                    self.selection_set(&inline.selection_set.node, ty)
                }
                Selection::FragmentSpread(spread) => self.fragment(&spread.node.fragment_name.node),
            };
            tally.aliases = tally.aliases.saturating_add(part.aliases);
            tally.once = tally.once.saturating_add(part.once);
            tally.per_item = tally.per_item.saturating_add(part.per_item);
        }
        tally
    }

    fn fragment(&mut self, name: &'a Name) -> Tally {
        if let Some(tally) = self.fragments.get(name.as_str()) {
            return *tally;
        }
        let Some(fragment) = self.document.fragments.get(name) else {
            return Tally::default();
        };
        if !self.in_progress.insert(name.as_str()) {
            return Tally::default();
        }
        let ty = fragment.node.type_condition.node.on.node.as_str();
        let tally = self.selection_set(&fragment.node.selection_set.node, Some(ty));
        self.in_progress.remove(name.as_str());
        self.fragments.insert(name.as_str(), tally);
        tally
    }

    /// Fields at the root, with fragments spread at the root counted in,
    /// each fragment counted once however often it is spread.
    fn root_fields(
        &self,
        set: &'a SelectionSet,
        counted: &mut HashMap<&'a str, u64>,
        in_progress: &mut HashSet<&'a str>,
    ) -> u64 {
        let mut count = 0u64;
        for selection in &set.items {
            count = count.saturating_add(match &selection.node {
                Selection::Field(_) => 1,
                Selection::InlineFragment(inline) => {
                    self.root_fields(&inline.node.selection_set.node, counted, in_progress)
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if let Some(n) = counted.get(name) {
                        *n
                    } else {
                        match self.document.fragments.get(&spread.node.fragment_name.node) {
                            Some(fragment) if in_progress.insert(name) => {
                                let n = self.root_fields(
                                    &fragment.node.selection_set.node,
                                    counted,
                                    in_progress,
                                );
                                in_progress.remove(name);
                                counted.insert(name, n);
                                n
                            }
                            _ => 0,
                        }
                    }
                }
            });
        }
        count
    }
}

/// Whether every root field of every operation is introspection
/// (`__schema`, `__type`, `__typename`): such documents describe the schema
/// and read no data.
pub fn is_introspection_only(document: &ExecutableDocument) -> bool {
    operations(document).all(|op| {
        op.selection_set.node.items.iter().all(|s| match &s.node {
            Selection::Field(field) => field.node.name.node.starts_with("__"),
            _ => false,
        })
    })
}

/// Whether an operation of the document asks for `__schema` or `__type` at
/// its root (directly or through fragments). `__typename` is not
/// introspection of the schema, and clients add it everywhere.
pub fn selects_introspection(document: &ExecutableDocument) -> bool {
    fn walk<'a>(
        document: &'a ExecutableDocument,
        set: &'a SelectionSet,
        seen: &mut HashSet<&'a str>,
    ) -> bool {
        set.items.iter().any(|s| match &s.node {
            Selection::Field(field) => {
                matches!(field.node.name.node.as_str(), "__schema" | "__type")
            }
            Selection::InlineFragment(inline) => {
                walk(document, &inline.node.selection_set.node, seen)
            }
            Selection::FragmentSpread(spread) => {
                let name = &spread.node.fragment_name.node;
                match document.fragments.get(name) {
                    Some(fragment) if seen.insert(name.as_str()) => {
                        walk(document, &fragment.node.selection_set.node, seen)
                    }
                    _ => false,
                }
            }
        })
    }
    operations(document).any(|op| walk(document, &op.selection_set.node, &mut HashSet::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDL: &str = "
        type Query { me: Me featuredPlaylists(first: Int, after: String): PlaylistConnection! }
        type Me { id: ID! roles: [String!]! songs(first: Int, after: String): SongConnection!
                  playlists(first: Int, after: String): PlaylistConnection! }
        type SongConnection { totalCount: Int! nodes: [Song!]! }
        type PlaylistConnection { totalCount: Int! nodes: [Playlist!]! }
        type Playlist { name: String! songs(first: Int, after: String): SongConnection! }
        type Song { name: String! }
        type Mutation { addSong(name: String!): Song! }";

    fn limiter(limits: QueryLimits) -> QueryLimiter {
        QueryLimiter::new(
            SDL,
            limits,
            Limits {
                default_page_size: 20,
                max_page_size: 100,
            },
        )
    }

    fn measure(query: &str, variables: serde_json::Value) -> QueryCost {
        let document = async_graphql::parser::parse_query(query).unwrap();
        limiter(QueryLimits::default()).measure(&document, None, &Variables::from_json(variables))
    }

    #[test]
    fn each_list_multiplies_what_it_selects_by_its_page_size() {
        // me 1, songs 1, nodes 1, a name for each of 100 songs.
        let cost = measure(
            "{ me { songs(first: 100) { nodes { name } } } }",
            serde_json::json!({}),
        );
        assert_eq!(cost.cost, 3 + 100);
        // The default page size (20) when `first` is absent.
        let cost = measure("{ me { songs { nodes { name } } } }", serde_json::json!({}));
        assert_eq!(cost.cost, 3 + 20);
        // Nested lists multiply: each of 100 playlists has its songs
        // connection, its nodes and 100 names.
        let cost = measure(
            "{ me { playlists(first: 100) { nodes { songs(first: 100) { nodes { name } } } } } }",
            serde_json::json!({}),
        );
        assert_eq!(cost.cost, 3 + 100 * (2 + 100));
    }

    #[test]
    fn page_sizes_come_from_variables_and_their_defaults_and_are_capped() {
        let query = "query($n: Int = 50) { me { songs(first: $n) { nodes { name } } } }";
        assert_eq!(measure(query, serde_json::json!({})).cost, 3 + 50);
        assert_eq!(measure(query, serde_json::json!({"n": 10})).cost, 3 + 10);
        assert_eq!(measure(query, serde_json::json!({"n": 5000})).cost, 3 + 100);
        // A page of none (or a negative `first`, refused when it runs) has
        // no items.
        assert_eq!(measure(query, serde_json::json!({"n": 0})).cost, 3);
        assert_eq!(measure(query, serde_json::json!({"n": -5})).cost, 3);
    }

    #[test]
    fn fragments_count_where_they_are_spread() {
        let query = "{ me { a: songs(first: 10) { ...S } b: songs(first: 10) { ...S } } }
                     fragment S on SongConnection { nodes { n: name } }";
        let cost = measure(query, serde_json::json!({}));
        assert_eq!(cost.aliases, 4);
        assert_eq!(cost.cost, 1 + 2 * (2 + 10));
        assert_eq!(cost.root_fields, 1);
    }

    #[test]
    fn fragments_that_spread_each_other_are_measured_once_each() {
        let mut query = String::from("{ me { ...F0 } }\n");
        for i in 0..40 {
            query.push_str(&format!(
                "fragment F{i} on Me {{ a{i}: id ...F{} ...F{} }}\n",
                i + 1,
                i + 1
            ));
        }
        query.push_str("fragment F40 on Me { id }\n");
        let cost = measure(&query, serde_json::json!({}));
        assert_eq!(cost.aliases, (1 << 40) - 1);
        let cyclic = "{ me { ...A } } fragment A on Me { id ...B } fragment B on Me { ...A }";
        assert_eq!(measure(cyclic, serde_json::json!({})).cost, 2);
        // The same at the root: the root fields are counted once a fragment too.
        let mut root = String::from("query Q { ...F0 }\n");
        for i in 0..60 {
            root.push_str(&format!(
                "fragment F{i} on Query {{ ...F{} ...F{} }}\n",
                i + 1,
                i + 1
            ));
        }
        root.push_str("fragment F60 on Query { me { id } }\n");
        assert_eq!(measure(&root, serde_json::json!({})).root_fields, 1 << 60);
    }

    #[test]
    fn each_limit_refuses_with_its_own_code() {
        let limiter = limiter(QueryLimits {
            max_aliases: 1,
            max_root_fields: 2,
            max_cost: 50,
        });
        let check = |q: &str| {
            let document = async_graphql::parser::parse_query(q).unwrap();
            limiter
                .check(&document, None, &Variables::default())
                .map_err(|e| e.code().as_str())
        };
        assert!(check("{ a: me { id } }").is_ok());
        assert_eq!(
            check("{ a: me { id } b: me { id } }"),
            Err("QUERY_TOO_MANY_ALIASES")
        );
        assert_eq!(
            check("{ me { id } featuredPlaylists { totalCount } x: me { id } }"),
            Err("QUERY_TOO_MANY_ROOT_FIELDS")
        );
        assert!(check("{ me { songs(first: 47) { nodes { name } } } }").is_ok());
        assert_eq!(
            check("{ me { songs(first: 48) { nodes { name } } } }"),
            Err("QUERY_TOO_COSTLY")
        );
    }

    #[test]
    fn a_connections_own_fields_count_once_and_its_items_once_each() {
        let cost = measure(
            "{ me { songs(first: 100) { totalCount nodes { name } } roles } }",
            serde_json::json!({}),
        );
        // me, songs, totalCount, nodes, roles, and 100 names.
        assert_eq!(cost.cost, 5 + 100);
        // The same connection in a fragment on it counts the same.
        let cost = measure(
            "{ me { songs(first: 100) { ...C } roles } }
             fragment C on SongConnection { totalCount nodes { name } }",
            serde_json::json!({}),
        );
        assert_eq!(cost.cost, 5 + 100);
    }

    /// Every field of the schema's `me`, every list at the largest page size.
    const FULL_ME: &str = "me { id email name picture displayName preferences roles plan
        canEditFeaturedPlaylists favGenre syncedAt totalPlays
        songs(first: 100) { totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
            nodes { id name artist genre createdAt } }
        playlists(first: 100) { totalCount
            pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
            nodes { id name plays featured createdAt songs(first: 100) { totalCount
                pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
                nodes { id name artist genre createdAt } } } } }";

    #[test]
    fn the_default_limits_admit_the_full_me_and_refuse_two_of_it() {
        let limiter = QueryLimiter::new(
            &super::super::sdl(),
            QueryLimits::default(),
            Limits {
                default_page_size: 20,
                max_page_size: 100,
            },
        );
        let check = |q: &str| {
            let document = async_graphql::parser::parse_query(q).unwrap();
            limiter.check(&document, None, &Variables::default())
        };
        // me and its 12 scalars; each connection 1, totalCount 1, pageInfo
        // 5 and nodes 1; 5 fields a song, 5 a playlist beside its songs.
        let songs = 8 + 100 * 5;
        let one = 1 + 12 + songs + (8 + 100 * (5 + songs));
        let measured = check(&format!("query FullMe {{ {FULL_ME} }}")).unwrap();
        assert_eq!(measured.cost, one);
        assert_eq!(
            check(&format!("{{ a: {FULL_ME} b: {FULL_ME} }}")),
            Err(LimitExceeded::Cost {
                cost: 2 * one,
                max: QueryLimits::default().max_cost
            })
        );
    }

    #[test]
    fn introspection_only_documents_are_told_apart() {
        let doc = |q| async_graphql::parser::parse_query(q).unwrap();
        assert!(is_introspection_only(&doc(
            "{ __schema { types { name } } __typename }"
        )));
        assert!(!is_introspection_only(&doc("{ __typename me { id } }")));
        assert!(selects_introspection(&doc(
            "{ me { id } ...F } fragment F on Query { __type(name: \"Me\") { name } }"
        )));
        assert!(!selects_introspection(&doc("{ __typename me { id } }")));
    }
}
