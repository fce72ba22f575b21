//! Parsed query documents, kept by query text.
//!
//! Apps send the same few queries again and again, and async-graphql parses
//! each one anew (a PEG parser, a few percent of the gateway's CPU under the
//! load test). Copying a parsed document costs far less than parsing it.
//! Validation still runs on every request, since it depends on the
//! variables and the operation chosen.

use std::{collections::HashMap, sync::Mutex};

use async_graphql::{Request, parser::types::ExecutableDocument};

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
