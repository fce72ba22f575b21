//! Parsed query documents, kept by query text.
//!
//! Apps send the same few queries again and again, and async-graphql parses
//! each one anew (a PEG parser, a few percent of the gateway's CPU under the
//! load test). Copying a parsed document costs far less than parsing it.
//! Validation still runs on every request, since it depends on the
//! variables and the operation chosen.

use std::{collections::HashMap, sync::Mutex};

use async_graphql::{Request, Variables, parser::types::ExecutableDocument};

use super::select_operation;

/// Gives every variable of the operation that runs, which the request leaves
/// out and which has a default, its default, as the spec's coercion of
/// variable values does. async-graphql applies defaults where arguments
/// read them but not in `@skip`/`@include`, which it evaluates before
/// execution from the request's values alone: without this,
/// `query($b: Boolean! = true) { me { id @skip(if: $b) } }` would run `id`.
pub fn fill_variable_defaults(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &mut Variables,
) {
    let Some(operation) = select_operation(document, operation_name) else {
        return;
    };
    for definition in &operation.variable_definitions {
        let definition = &definition.node;
        if let Some(default) = &definition.default_value
            && !variables.contains_key(&definition.name.node)
        {
            variables.insert(definition.name.node.clone(), default.node.clone());
        }
    }
}

/// Longest query text kept; larger ones are parsed every time.
const MAX_QUERY_BYTES: usize = 16 * 1024;

/// A bounded map from query text to its parsed document.
pub struct DocumentCache {
    documents: Mutex<HashMap<String, ExecutableDocument>>,
    capacity: usize,
}

impl DocumentCache {
    /// A cache of at most `capacity` documents.
    pub fn new(capacity: usize) -> Self {
        Self {
            documents: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Gives `request` its parsed document, from the cache or parsed now
    /// and kept. A query that does not parse is left alone, for async-graphql
    /// to report as it always does.
    pub fn prepare(&self, request: &mut Request) {
        if request.query.len() > MAX_QUERY_BYTES {
            return;
        }
        if let Some(document) = self.lock().get(request.query.as_str()) {
            request.set_parsed_query(document.clone());
            return;
        }
        let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
            return;
        };
        {
            let mut documents = self.lock();
            // Many distinct queries (generated ones, or an attack) would
            // otherwise grow the map without bound; starting over keeps the
            // memory bounded and the hot queries return within a request.
            if documents.len() >= self.capacity {
                documents.clear();
            }
            documents.insert(request.query.clone(), document.clone());
        }
        request.set_parsed_query(document);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ExecutableDocument>> {
        // A poisoned lock only means a panic elsewhere; the map is still sound.
        self.documents.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_left_out_take_their_defaults_and_sent_ones_stay() {
        let document = async_graphql::parser::parse_query(
            "query A($a: Boolean! = true, $b: Int = 3, $c: String, $d: Int = 1) { __typename }
             query B($z: Int = 9) { __typename }",
        )
        .unwrap();
        let mut variables = Variables::from_json(serde_json::json!({"d": null}));
        fill_variable_defaults(&document, Some("A"), &mut variables);
        assert_eq!(
            variables.into_value().into_json().unwrap(),
            serde_json::json!({"a": true, "b": 3, "d": null})
        );
    }

    #[test]
    fn a_query_is_parsed_once_and_the_cache_stays_bounded() {
        let cache = DocumentCache::new(2);
        let mut first = Request::new("{ me { id } }");
        cache.prepare(&mut first);
        assert_eq!(cache.len(), 1);
        let mut again = Request::new("{ me { id } }");
        cache.prepare(&mut again);
        assert_eq!(cache.len(), 1);
        assert!(again.parsed_query().is_ok());

        let mut broken = Request::new("{ me { id ");
        cache.prepare(&mut broken);
        assert_eq!(cache.len(), 1, "a query that does not parse is not kept");
        assert!(broken.parsed_query().is_err());

        cache.prepare(&mut Request::new("{ me { email } }"));
        assert_eq!(cache.len(), 2);
        cache.prepare(&mut Request::new("{ me { name } }"));
        assert_eq!(cache.len(), 1, "a full cache starts over");
    }
}
