//! Where async-graphql 7.2 departs from the spec, or from one answer a
//! document, put right around it.
//!
//! - It resolves a query's fields concurrently and keeps each object's keys
//!   in the order the resolvers finished, so one document can answer the
//!   same JSON with its keys in a different order from one request to the
//!   next. The spec orders them as the document's selections
//!   (CollectFields), which is also what the compiled path writes and what
//!   a byte-compared ETag needs.
//! - An object whose fields are all skipped by `@skip`/`@include` comes back
//!   `null` rather than `{}`.
//! - Its validation does not visit a `__typename`'s directives, so a
//!   variable used only in `__typename @include(if: $v)` is refused as
//!   unused.
//! - It lists errors in the order its rules and resolvers met them, which
//!   varies from run to run: [`sort_errors`] puts them in document order.
//!
//! [`Shape`] is the order of response keys the document asks for, built once
//! per request from the parsed operation with its variables (linear in the
//! document once [`super::guard`] has bounded it); [`Shape::apply`] sorts an
//! answer into it. [`for_executor`] rewrites the document async-graphql
//! runs: every selection set that could end up empty gets one unconditional
//! `__typename` under a reserved key, which [`Shape::apply`] removes again,
//! so such an object is answered `{}`; and a `__typename` with directives
//! becomes the same field inside an inline fragment that carries them
//! (CollectFields treats the two alike), whose directives validation does
//! visit.

use async_graphql::{
    Name, PathSegment, Positioned, ServerError, Variables,
    indexmap::IndexMap,
    parser::types::{
        Directive, DocumentOperations, ExecutableDocument, Field, InlineFragment, OperationType,
        Selection, SelectionSet,
    },
};
use async_graphql_value::{ConstValue, Value};

use super::select_operation;

/// The response key under which [`for_executor`] adds its `__typename`;
/// names starting with `__` are reserved by the spec, so no client's alias
/// can meet it.
const KEEP: &str = "__keep";

/// The response keys of an object, in document order, each with the shape
/// of what it selects.
#[derive(Debug, Default)]
pub struct Shape {
    keys: IndexMap<Name, Shape>,
}

impl Shape {
    /// The shape of the answer to the operation `operation_name` of
    /// `document`; `None` when no operation can be picked (execution says
    /// why).
    pub fn of(
        document: &ExecutableDocument,
        operation_name: Option<&str>,
        variables: &Variables,
    ) -> Option<Self> {
        let operation = select_operation(document, operation_name)?;
        Some(collect(
            document,
            std::iter::once(&operation.selection_set.node),
            variables,
        ))
    }

    /// Sorts `data`'s keys into the document's order, and drops the keys
    /// [`for_executor`] added.
    pub fn apply(&self, data: &mut ConstValue) {
        match data {
            ConstValue::Object(map) => {
                map.shift_remove(KEEP);
                let rank = |key: &Name| self.keys.get_index_of(key).unwrap_or(usize::MAX);
                let ordered = map
                    .keys()
                    .zip(map.keys().skip(1))
                    .all(|(a, b)| rank(a) <= rank(b));
                if !ordered {
                    map.sort_by_cached_key(|key, _| rank(key));
                }
                for (key, value) in map.iter_mut() {
                    // A shape without keys may still hold an object that
                    // has only the added key.
                    if let Some(shape) = self.keys.get(key)
                        && matches!(value, ConstValue::Object(_) | ConstValue::List(_))
                    {
                        shape.apply(value);
                    }
                }
            }
            ConstValue::List(items) => {
                for item in items {
                    self.apply(item);
                }
            }
            _ => {}
        }
    }
}

/// Puts errors in the document's order: by the places each points at, then
/// by its path, then by its message. async-graphql reports them as its validation rules and
/// resolvers meet them, which varies from run to run (it keeps a document's
/// operations in a hash map, and resolves fields concurrently).
pub fn sort_errors(errors: &mut [ServerError]) {
    errors.sort_by_cached_key(|error| {
        let at: Vec<(usize, usize)> = error.locations.iter().map(|p| (p.line, p.column)).collect();
        let path: Vec<(u8, usize, String)> = error
            .path
            .iter()
            .map(|segment| match segment {
                PathSegment::Index(i) => (0, *i, String::new()),
                PathSegment::Field(name) => (1, 0, name.clone()),
            })
            .collect();
        // Errors alike in place and path (one rule meeting one conflict
        // twice) still have one order.
        (at, path, error.message.clone())
    });
}

/// The keys `sets` select together (the fields of one response object),
/// each with the merged shape of what its fields select.
fn collect<'a>(
    document: &'a ExecutableDocument,
    sets: impl Iterator<Item = &'a SelectionSet>,
    variables: &Variables,
) -> Shape {
    let mut fields: IndexMap<&'a Name, Vec<&'a SelectionSet>> = IndexMap::new();
    for set in sets {
        gather(document, set, variables, &mut fields);
    }
    Shape {
        keys: fields
            .into_iter()
            .map(|(key, sets)| (key.clone(), collect(document, sets.into_iter(), variables)))
            .collect(),
    }
}

/// Adds the fields of `set` to `fields` by response key, through fragments,
/// leaving out what `@skip`/`@include` leave out. The spec also leaves out
/// fragments whose type does not apply; their keys are simply absent from
/// the object, so keeping them here orders the rest the same.
fn gather<'a>(
    document: &'a ExecutableDocument,
    set: &'a SelectionSet,
    variables: &Variables,
    fields: &mut IndexMap<&'a Name, Vec<&'a SelectionSet>>,
) {
    for selection in &set.items {
        if skipped(selection.node.directives(), variables) {
            continue;
        }
        match &selection.node {
            Selection::Field(field) => fields
                .entry(&field.node.response_key().node)
                .or_default()
                .push(&field.node.selection_set.node),
            Selection::InlineFragment(inline) => {
                gather(document, &inline.node.selection_set.node, variables, fields)
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node)
                    && !skipped(&fragment.node.directives, variables)
                {
                    gather(
                        document,
                        &fragment.node.selection_set.node,
                        variables,
                        fields,
                    );
                }
            }
        }
    }
}

/// Whether `@skip`/`@include` leave a selection out. A condition that is not
/// a Boolean counts as none: validation refuses it before execution.
fn skipped(directives: &[Positioned<Directive>], variables: &Variables) -> bool {
    directives.iter().any(|directive| {
        let include = match directive.node.name.node.as_str() {
            "skip" => false,
            "include" => true,
            _ => return false,
        };
        let flag = match directive.node.get_argument("if").map(|v| &v.node) {
            Some(Value::Boolean(b)) => Some(*b),
            Some(Value::Variable(name)) => match variables.get(name) {
                Some(ConstValue::Boolean(b)) => Some(*b),
                _ => None,
            },
            _ => None,
        };
        flag.is_some_and(|flag| flag != include)
    })
}

/// Readies a parsed `request` for async-graphql's executor: its document as
/// [`for_executor`] rewrites it, and the [`Shape`] that puts the answer
/// right afterwards (`None` when the document did not parse).
pub fn ready_for_executor(request: &mut async_graphql::Request) -> Option<Shape> {
    // The parsed document borrows the request: the rest is set aside.
    let variables = std::mem::take(&mut request.variables);
    let operation_name = request.operation_name.take();
    let shape = match request.parsed_query() {
        Ok(document) => {
            let shape = Shape::of(document, operation_name.as_deref(), &variables);
            if let Some(kept) = for_executor(document) {
                request.set_parsed_query(kept);
            }
            shape
        }
        Err(_) => None,
    };
    request.variables = variables;
    request.operation_name = operation_name;
    shape
}

/// The document async-graphql should run in place of `document` (see the
/// module comment); `None` when it needs no change (the common case: nothing
/// is copied). Subscriptions are left alone: `__typename` is not allowed at
/// their root.
pub fn for_executor(document: &ExecutableDocument) -> Option<ExecutableDocument> {
    let mut subscription = false;
    let mut needed = false;
    for (_, operation) in document.operations.iter() {
        subscription |= operation.node.ty == OperationType::Subscription;
        needed |= needs_rewrite(&operation.node.selection_set.node);
    }
    for fragment in document.fragments.values() {
        needed |= needs_rewrite(&fragment.node.selection_set.node);
    }
    if subscription || !needed {
        return None;
    }
    let mut document = document.clone();
    match &mut document.operations {
        DocumentOperations::Single(operation) => {
            rewrite(&mut operation.node.selection_set.node, true)
        }
        DocumentOperations::Multiple(operations) => {
            for operation in operations.values_mut() {
                rewrite(&mut operation.node.selection_set.node, true);
            }
        }
    }
    for fragment in document.fragments.values_mut() {
        rewrite(&mut fragment.node.selection_set.node, false);
    }
    Some(document)
}

fn is_typename_with_directives(selection: &Selection) -> bool {
    matches!(selection, Selection::Field(f)
        if f.node.name.node == "__typename" && !f.node.directives.is_empty())
}

/// Whether `set` or a set under it lacks an unconditional field, or has a
/// `__typename` with directives.
fn needs_rewrite(set: &SelectionSet) -> bool {
    !has_plain_field(set)
        || set.items.iter().any(|s| match &s.node {
            selection if is_typename_with_directives(selection) => true,
            Selection::Field(field) => {
                let inner = &field.node.selection_set.node;
                !inner.items.is_empty() && needs_rewrite(inner)
            }
            Selection::InlineFragment(inline) => needs_rewrite(&inline.node.selection_set.node),
            Selection::FragmentSpread(_) => false,
        })
}

fn has_plain_field(set: &SelectionSet) -> bool {
    set.items
        .iter()
        .any(|s| matches!(&s.node, Selection::Field(f) if f.node.directives.is_empty()))
}

/// Wraps the `__typename`s of `set` that have directives, and adds the key
/// to `set` when it is an object's own set (`object`) and lacks a plain
/// field; the same in every set under it.
fn rewrite(set: &mut SelectionSet, object: bool) {
    for selection in &mut set.items {
        if !is_typename_with_directives(&selection.node) {
            continue;
        }
        let pos = selection.pos;
        let placeholder = Selection::InlineFragment(Positioned::new(
            InlineFragment {
                type_condition: None,
                directives: Vec::new(),
                selection_set: Positioned::new(SelectionSet::default(), pos),
            },
            pos,
        ));
        let Selection::Field(mut field) = std::mem::replace(&mut selection.node, placeholder)
        else {
            continue;
        };
        let directives = std::mem::take(&mut field.node.directives);
        selection.node = Selection::InlineFragment(Positioned::new(
            InlineFragment {
                type_condition: None,
                directives,
                selection_set: Positioned::new(
                    SelectionSet {
                        items: vec![Positioned::new(Selection::Field(field), pos)],
                    },
                    pos,
                ),
            },
            pos,
        ));
    }
    if object && !has_plain_field(set) {
        set.items.push(Positioned::new(
            Selection::Field(Positioned::new(
                Field {
                    alias: Some(Positioned::new(Name::new(KEEP), Default::default())),
                    name: Positioned::new(Name::new("__typename"), Default::default()),
                    arguments: Vec::new(),
                    directives: Vec::new(),
                    selection_set: Positioned::new(SelectionSet::default(), Default::default()),
                },
                Default::default(),
            )),
            Default::default(),
        ));
    }
    for selection in &mut set.items {
        match &mut selection.node {
            Selection::Field(field) => {
                let inner = &mut field.node.selection_set.node;
                if !inner.items.is_empty() {
                    rewrite(inner, true);
                }
            }
            Selection::InlineFragment(inline) => {
                rewrite(&mut inline.node.selection_set.node, false)
            }
            Selection::FragmentSpread(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(query: &str, variables: serde_json::Value) -> Shape {
        let document = async_graphql::parser::parse_query(query).unwrap();
        Shape::of(&document, None, &Variables::from_json(variables)).unwrap()
    }

    fn sorted(query: &str, variables: serde_json::Value, data: serde_json::Value) -> String {
        let mut data = ConstValue::from_json(data).unwrap();
        shape(query, variables).apply(&mut data);
        serde_json::to_string(&data).unwrap()
    }

    #[test]
    fn keys_follow_the_document_through_fragments_aliases_and_lists() {
        let query =
            "query($s: Boolean!) { me { b: id ...F songs { nodes { name id } } } __typename }
                     fragment F on User { a: email @skip(if: $s) c: name }";
        let data = serde_json::json!({
            "__typename": "Query",
            "me": {"songs": {"nodes": [{"id": 1, "name": "x"}, {"id": 2, "name": "y"}]}, "c": "n", "b": "i"}
        });
        assert_eq!(
            sorted(query, serde_json::json!({"s": true}), data),
            r#"{"me":{"b":"i","c":"n","songs":{"nodes":[{"name":"x","id":1},{"name":"y","id":2}]}},"__typename":"Query"}"#
        );
    }

    #[test]
    fn objects_that_could_end_up_empty_get_a_key_that_is_taken_out_again() {
        let document = async_graphql::parser::parse_query(
            "query($b: Boolean!) { me { id @skip(if: $b) songs @include(if: true) { nodes { name } } } }",
        )
        .unwrap();
        let kept = for_executor(&document).expect("me has no plain field");
        let Some(DocumentOperations::Single(op)) = Some(&kept.operations) else {
            panic!("one operation");
        };
        // The root has a plain field (`me`); `me` has none, so it gets the key.
        let root = &op.node.selection_set.node;
        assert_eq!(root.items.len(), 1);
        let Selection::Field(me) = &root.items[0].node else {
            panic!("me")
        };
        assert_eq!(me.node.selection_set.node.items.len(), 3);
        assert!(
            for_executor(&async_graphql::parser::parse_query("{ me { id } }").unwrap()).is_none()
        );

        let mut data =
            ConstValue::from_json(serde_json::json!({"me": {"__keep": "User"}})).unwrap();
        shape(
            "query($b: Boolean!) { me { id @skip(if: $b) } }",
            serde_json::json!({"b": true}),
        )
        .apply(&mut data);
        assert_eq!(serde_json::to_string(&data).unwrap(), r#"{"me":{}}"#);
    }
}
