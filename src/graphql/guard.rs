//! Bounds on a document's shape, checked before anything walks it.
//!
//! Every later walk over a document (async-graphql's parser and validation,
//! the cost limits, the compiled path, the response cache) recurses, and most
//! of them follow fragment spreads where they are used. Unchecked, a 4 KB
//! list literal nested 2,000 deep overflows the parser's stack, and a 1.3 KB
//! document of fragments that each spread the next one twice expands to
//! 2^30 fields. So two passes, each linear in the document and each bounded
//! in how deep it goes, run first:
//!
//! - [`nesting_depth`] reads the text (or a JSON body) with no parser at all
//!   and no recursion, and measures how deep its brackets nest;
//! - [`check_document`] measures each fragment once (memoised, so a spread
//!   costs a lookup) for how many selections it expands to and how deep its
//!   spreads chain, refusing cycles, and checks the arguments of `@skip` and
//!   `@include`, which async-graphql's validation does not type.
//!
//! Past both, every expansion of the document is at most
//! [`GuardLimits::max_selections`] selections long and at most
//! [`GuardLimits::max_nesting`] × [`GuardLimits::max_fragment_depth`] deep,
//! whatever walks it.

use std::collections::HashMap;

use async_graphql::{
    Name, Positioned,
    parser::types::{
        BaseType, Directive, ExecutableDocument, Selection, SelectionSet, VariableDefinition,
    },
};
use async_graphql_value::Value;

pub use crate::config::GuardLimits;
use crate::error::ErrorCode;

/// Why a document was refused before it ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Brackets nested deeper than `max_nesting`.
    Nesting { depth: u64, max: u64 },
    /// A chain of spreads longer than `max_fragment_depth`.
    FragmentDepth { depth: u64, max: u64 },
    /// More selections, fragments expanded, than `max_selections`.
    Selections { count: u64, max: u64 },
    /// Not a valid document: a fragment spreading itself, or a `@skip` or
    /// `@include` whose `if` is not a Boolean.
    Invalid(String),
}

impl Refused {
    /// The stable code clients match on.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Nesting { .. } => ErrorCode::QueryNestedTooDeeply,
            Self::FragmentDepth { .. } => ErrorCode::QueryFragmentsTooDeep,
            Self::Selections { .. } => ErrorCode::QueryTooManySelections,
            Self::Invalid(_) => ErrorCode::GraphqlValidationFailed,
        }
    }

    /// The message for the client developer.
    pub fn message(&self) -> String {
        match self {
            Self::Nesting { depth, max } => format!(
                "the request nests brackets ({{, [ or () at least {depth} deep; at most {max} \
                 levels are allowed (MAX_NESTING)"
            ),
            Self::FragmentDepth { depth, max } => format!(
                "the query's fragment spreads chain at least {depth} deep (a fragment spreading \
                 a fragment that spreads another); at most {max} are allowed (MAX_FRAGMENT_DEPTH)"
            ),
            Self::Selections { count, max } => format!(
                "the query selects at least {count} fields, inline fragments and spreads once \
                 its fragments are expanded; at most {max} are allowed (MAX_SELECTIONS)"
            ),
            Self::Invalid(message) => message.clone(),
        }
    }

    /// The limit and the value measured, for `extensions`; none for an
    /// invalid document.
    pub fn figures(&self) -> Option<(u64, u64)> {
        match *self {
            Self::Nesting { depth, max } | Self::FragmentDepth { depth, max } => Some((depth, max)),
            Self::Selections { count, max } => Some((count, max)),
            Self::Invalid(_) => None,
        }
    }
}

/// Whether `text` is JSON rather than GraphQL: JSON has no comments and no
/// block strings.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Graphql,
    Json,
}

/// The deepest nesting of brackets in `text`, outside strings and comments,
/// or the first depth over `max` (the scan stops there). One pass, no
/// recursion: it runs before any parser sees the text.
pub fn nesting_depth(text: &[u8], syntax: Syntax, max: u64) -> u64 {
    let mut depth = 0u64;
    let mut deepest = 0u64;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'#' if syntax == Syntax::Graphql => {
                while i < text.len() && text[i] != b'\n' && text[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if syntax == Syntax::Graphql && text[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < text.len() && !text[i..].starts_with(b"\"\"\"") {
                    // An escaped triple quote does not end the block.
                    i += if text[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    // A line break ends an unterminated string: the parser
                    // reports it, and what follows is not hidden from the count.
                    if text[i] == b'\n' && syntax == Syntax::Graphql {
                        break;
                    }
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > deepest {
                    deepest = depth;
                    if deepest > max {
                        return deepest;
                    }
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

/// Refuses `text` when its brackets nest deeper than the limit.
pub fn check_nesting(text: &[u8], syntax: Syntax, limits: &GuardLimits) -> Result<(), Refused> {
    let depth = nesting_depth(text, syntax, limits.max_nesting);
    if depth > limits.max_nesting {
        return Err(Refused::Nesting {
            depth,
            max: limits.max_nesting,
        });
    }
    Ok(())
}

/// Refuses a parsed document whose fragments chain too deep, expand to too
/// many selections, or spread themselves, or whose `@skip`/`@include` take
/// anything but a Boolean. Linear in the document: each fragment is measured
/// once, however often it is spread.
pub fn check_document(document: &ExecutableDocument, limits: &GuardLimits) -> Result<(), Refused> {
    let mut walk = Walk {
        document,
        limits,
        measured: HashMap::new(),
        in_progress: Vec::new(),
        variables: &[],
    };
    // Validation walks every operation, not only the one that runs: the
    // bound is on all of them together.
    let mut total = 0u64;
    for (_, operation) in document.operations.iter() {
        walk.variables = &operation.node.variable_definitions;
        check_directives(&operation.node.directives, walk.variables)?;
        let count = walk.selection_set(&operation.node.selection_set.node)?;
        total = total.saturating_add(count);
        walk.check_count(total)?;
    }
    // Fragments no operation spreads are still validated (and refused as
    // unused); measuring them here bounds what validation walks.
    walk.variables = &[];
    for name in document.fragments.keys() {
        walk.fragment(name)?;
    }
    Ok(())
}

struct Walk<'a> {
    document: &'a ExecutableDocument,
    limits: &'a GuardLimits,
    /// Selections each fragment expands to, measured once.
    measured: HashMap<&'a str, u64>,
    /// The chain of fragments being measured: its length is the spread
    /// depth, and a name already in it is a cycle.
    in_progress: Vec<&'a str>,
    /// The variables of the operation being walked; empty inside fragments,
    /// which several operations may share.
    variables: &'a [Positioned<VariableDefinition>],
}

impl<'a> Walk<'a> {
    fn check_count(&self, count: u64) -> Result<(), Refused> {
        if count > self.limits.max_selections {
            return Err(Refused::Selections {
                count,
                max: self.limits.max_selections,
            });
        }
        Ok(())
    }

    fn selection_set(&mut self, set: &'a SelectionSet) -> Result<u64, Refused> {
        let mut count = 0u64;
        for selection in &set.items {
            check_directives(selection.node.directives(), self.variables)?;
            let inner = match &selection.node {
                Selection::Field(field) => {
                    check_typename(&field.node)?;
                    self.selection_set(&field.node.selection_set.node)?
                }
                Selection::InlineFragment(inline) => {
                    self.selection_set(&inline.node.selection_set.node)?
                }
                Selection::FragmentSpread(spread) => {
                    self.fragment(&spread.node.fragment_name.node)?
                }
            };
            count = count.saturating_add(1).saturating_add(inner);
            // Stopping at once keeps a wide document from being added up in full.
            self.check_count(count)?;
        }
        Ok(count)
    }

    fn fragment(&mut self, name: &'a Name) -> Result<u64, Refused> {
        if let Some(count) = self.measured.get(name.as_str()) {
            return Ok(*count);
        }
        // An unknown fragment expands to nothing; validation names it.
        let Some(fragment) = self.document.fragments.get(name) else {
            return Ok(0);
        };
        if self.in_progress.contains(&name.as_str()) {
            return Err(Refused::Invalid(format!(
                "Cannot spread fragment \"{name}\" within itself (through {})",
                self.in_progress.join(" -> ")
            )));
        }
        let depth = self.in_progress.len() as u64 + 1;
        if depth > self.limits.max_fragment_depth {
            return Err(Refused::FragmentDepth {
                depth,
                max: self.limits.max_fragment_depth,
            });
        }
        self.in_progress.push(name.as_str());
        let outer = std::mem::take(&mut self.variables);
        check_directives(&fragment.node.directives, &[])?;
        let count = self.selection_set(&fragment.node.selection_set.node);
        self.variables = outer;
        self.in_progress.pop();
        let count = count?;
        self.measured.insert(name.as_str(), count);
        Ok(count)
    }
}

/// `__typename` takes no arguments and selects nothing; async-graphql's
/// validation does not look at it at all.
fn check_typename(field: &async_graphql::parser::types::Field) -> Result<(), Refused> {
    if field.name.node != "__typename" {
        return Ok(());
    }
    if let Some((name, _)) = field.arguments.first() {
        return Err(Refused::Invalid(format!(
            "Unknown argument \"{}\" on field \"__typename\"",
            name.node
        )));
    }
    if !field.selection_set.node.items.is_empty() {
        return Err(Refused::Invalid(
            "Field \"__typename\" must not have a selection since type \"String!\" has no \
             subfields"
                .to_owned(),
        ));
    }
    Ok(())
}

/// `@skip(if:)` and `@include(if:)` take a `Boolean!`: a literal Boolean, or
/// a variable of type Boolean (a nullable one only with a default). Others
/// pass; validation knows them.
fn check_directives(
    directives: &[Positioned<Directive>],
    variables: &[Positioned<VariableDefinition>],
) -> Result<(), Refused> {
    for directive in directives {
        let name = directive.node.name.node.as_str();
        if name != "skip" && name != "include" {
            continue;
        }
        let Some(value) = directive.node.get_argument("if") else {
            return Err(Refused::Invalid(format!(
                "Directive \"@{name}\" argument \"if\" of type \"Boolean!\" is required, but it \
                 was not provided"
            )));
        };
        match &value.node {
            Value::Boolean(_) => {}
            Value::Variable(variable) => {
                // A variable the operation does not declare (or one used in
                // a fragment) is validation's to report.
                let Some(definition) = variables.iter().find(|d| d.node.name.node == *variable)
                else {
                    continue;
                };
                let ty = &definition.node.var_type.node;
                let boolean = matches!(&ty.base, BaseType::Named(n) if n.as_str() == "Boolean");
                if !boolean || (ty.nullable && definition.node.default_value.is_none()) {
                    return Err(Refused::Invalid(format!(
                        "Variable \"${variable}\" of type \"{ty}\" used in position expecting \
                         type \"Boolean!\" (the argument \"if\" of \"@{name}\")"
                    )));
                }
            }
            other => {
                return Err(Refused::Invalid(format!(
                    "Argument \"if\" of directive \"@{name}\" has an invalid value: expected a \
                     Boolean, found {other}"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: &str) -> Result<(), Refused> {
        let limits = GuardLimits::default();
        check_nesting(query.as_bytes(), Syntax::Graphql, &limits)?;
        let document = async_graphql::parser::parse_query(query).expect("parses");
        check_document(&document, &limits)
    }

    fn bomb(levels: usize, on: &str, root: &str) -> String {
        let mut query = format!("{root}\n");
        for i in 0..levels {
            query.push_str(&format!(
                "fragment F{i} on {on} {{ ...F{} ...F{} }}\n",
                i + 1,
                i + 1
            ));
        }
        query.push_str(&format!("fragment F{levels} on {on} {{ __typename }}\n"));
        query
    }

    #[test]
    fn nesting_is_measured_outside_strings_and_comments() {
        let depth = |t: &str| nesting_depth(t.as_bytes(), Syntax::Graphql, 1000);
        assert_eq!(depth("{ me { songs(first: [[1]]) { totalCount } } }"), 5);
        assert_eq!(depth("{ a(s: \"{{{{[[[\") }"), 2);
        assert_eq!(depth("{ a(s: \"\\\"{{{\") }"), 2);
        assert_eq!(depth("# {{{{{{\n{ a }"), 1);
        assert_eq!(depth("{ a(s: \"\"\"{{{ \\\"\"\" {{{\"\"\") }"), 2);
        // An unterminated string ends at its line; what follows still counts.
        assert_eq!(depth("{ a(s: \"oops\n[[[[ ]]]]) }"), 6);
        let json = |t: &str| nesting_depth(t.as_bytes(), Syntax::Json, 1000);
        assert_eq!(json(r##"{"query": "{ a { b } }", "v": [[{"#": 1}]]}"##), 4);
        // The scan stops once over the limit.
        let deep = "[".repeat(100_000);
        assert_eq!(nesting_depth(deep.as_bytes(), Syntax::Json, 32), 33);
    }

    #[test]
    fn deep_literals_are_refused_before_parsing() {
        let deep = format!(
            "{{ me {{ songs(first: {}1{}) {{ totalCount }} }} }}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let limits = GuardLimits::default();
        let refused = check_nesting(deep.as_bytes(), Syntax::Graphql, &limits).unwrap_err();
        assert_eq!(refused.code(), "QUERY_NESTED_TOO_DEEPLY");
        assert_eq!(refused.figures(), Some((33, 32)));
    }

    #[test]
    fn fragment_bombs_are_refused_quickly_wherever_they_are_spread() {
        for (on, root) in [
            ("Query", "query Q { ...F0 }"),
            ("User", "{ me { ...F0 } }"),
            ("Song", "{ me { songs { nodes { ...F0 } } } }"),
            ("User", "{ me { ... on User { ... { ...F0 } } } }"),
        ] {
            for levels in [11, 30, 40, 200] {
                let refused = check(&bomb(levels, on, root)).unwrap_err();
                let code = refused.code();
                assert!(
                    code == "QUERY_TOO_MANY_SELECTIONS" || code == "QUERY_FRAGMENTS_TOO_DEEP",
                    "{levels} levels on {on}: {refused:?}"
                );
            }
        }
        // Wide rather than deep: each fragment spreads the next 100 times.
        let mut wide = String::from("{ me { ...W0 } }\n");
        for i in 0..5 {
            wide.push_str(&format!(
                "fragment W{i} on User {{ {} }}\n",
                format!("...W{} ", i + 1).repeat(100)
            ));
        }
        wide.push_str("fragment W5 on User { id }\n");
        assert_eq!(
            check(&wide).unwrap_err().code(),
            "QUERY_TOO_MANY_SELECTIONS"
        );
    }

    #[test]
    fn ordinary_fragments_pass() {
        check(
            "query Me($n: Int = 5, $b: Boolean = true, $c: Boolean!) { me { ...U songs(first: $n) @include(if: $b) { nodes { ...S } } } }
             fragment U on User { id displayName @skip(if: $c) playlists { nodes { songs { nodes { ...S } } } } }
             fragment S on Song { id name artist @include(if: false) }",
        )
        .unwrap();
    }

    #[test]
    fn cycles_are_refused_as_invalid() {
        let refused =
            check("{ me { ...A } } fragment A on User { id ...B } fragment B on User { ...A }")
                .unwrap_err();
        assert_eq!(refused.code(), ErrorCode::GraphqlValidationFailed);
        assert!(refused.message().contains("within itself"), "{refused:?}");
    }

    #[test]
    fn skip_and_include_take_only_booleans_and_typename_nothing() {
        for query in [
            "{ __typename @skip(if: \"x\") }",
            "{ __typename @include(if: 3) }",
            "{ __typename @include(if: null) }",
            "{ __typename @include }",
            "query($b: String!) { __typename @include(if: $b) }",
            "query($b: Boolean) { __typename @skip(if: $b) }",
            "{ ...F } fragment F on Query { __typename @skip(if: [true]) }",
            "{ __typename(x: 1) }",
            "{ me { __typename { length } } }",
        ] {
            let refused = check(query).unwrap_err();
            assert_eq!(
                refused.code(),
                ErrorCode::GraphqlValidationFailed,
                "{query}"
            );
        }
        check("query($b: Boolean = false) { __typename @skip(if: $b) }").unwrap();
        check("query($b: Boolean!) { __typename @skip(if: $b) }").unwrap();
    }
}
