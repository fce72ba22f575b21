//! Automatic persisted queries, as Apollo's clients speak them.
//!
//! A client first sends only `extensions.persistedQuery {version: 1,
//! sha256Hash}`. A hash the gateway knows runs its query; an unknown one is
//! answered `PersistedQueryNotFound` (HTTP 200, code
//! `PERSISTED_QUERY_NOT_FOUND`, never cached), and the client sends the hash
//! again with the full text, which the gateway checks and keeps.
//!
//! Queries are kept in this process only, in a cache bounded by their total
//! size. Behind a load balancer, a hash another instance knows is a miss
//! here, and the client simply resends the text: the protocol is built for
//! that.

use std::sync::Arc;

use metrics::{counter, describe_counter};
use quick_cache::{Weighter, sync::Cache};
use serde_json::{Map, Value};

use crate::graphql::is_sha256_hex;
use crate::http::refusal::Refusal;

/// Bytes a stored query counts for beyond its text (key and bookkeeping).
const ENTRY_OVERHEAD: u64 = 128;

/// What the store did, by `result`: `hit` (a hash sent alone, its text
/// known), `miss` (one unknown here: the client resends the text; behind
/// a load balancer each instance learns a text once), `registered` (a
/// text kept under its hash).
pub const APQ_REQUESTS: &str = "gateway_apq_requests_total";

/// Query texts by the hex SHA-256 of their text.
pub struct ApqStore {
    queries: Cache<String, Arc<str>, TextWeighter>,
}

#[derive(Clone)]
struct TextWeighter;

impl Weighter<String, Arc<str>> for TextWeighter {
    fn weight(&self, key: &String, query: &Arc<str>) -> u64 {
        (key.len() + query.len()) as u64 + ENTRY_OVERHEAD
    }
}

impl ApqStore {
    /// A store of at most about `max_bytes` of query text.
    pub fn new(max_bytes: usize) -> Self {
        // quick_cache sizes its tables from the expected number of entries;
        // a query is a few hundred bytes to a few kilobytes.
        let expected = (max_bytes / 2048).clamp(16, 65_536);
        describe_counter!(
            APQ_REQUESTS,
            "Automatic persisted queries, by result: hit, miss (the client resends the text), registered."
        );
        // Present from the start, so a dashboard's hit ratio reads zero
        // rather than nothing.
        for result in ["hit", "miss", "registered"] {
            counter!(APQ_REQUESTS, "result" => result).increment(0);
        }
        Self {
            queries: Cache::with_weighter(expected, max_bytes as u64, TextWeighter),
        }
    }

    /// The query stored under `hash`.
    pub fn get(&self, hash: &str) -> Option<Arc<str>> {
        let query = self.queries.get(hash);
        let result = if query.is_some() { "hit" } else { "miss" };
        counter!(APQ_REQUESTS, "result" => result).increment(1);
        query
    }

    /// Keeps `query` under `hash` (already checked to be its SHA-256).
    pub fn insert(&self, hash: String, query: Arc<str>) {
        self.queries.insert(hash, query);
        counter!(APQ_REQUESTS, "result" => "registered").increment(1);
    }

    /// Bytes stored, counted as the cache's bound counts them.
    pub fn weight(&self) -> u64 {
        self.queries.weight()
    }
}

/// The hash of `extensions.persistedQuery`, lowercased, if the request has
/// one. A malformed one is the client's error.
pub fn persisted_query_hash(
    extensions: Option<&Map<String, Value>>,
) -> Result<Option<String>, Refusal> {
    let Some(persisted) = extensions.and_then(|e| e.get("persistedQuery")) else {
        return Ok(None);
    };
    if persisted.is_null() {
        return Ok(None);
    }
    let malformed = || {
        Refusal::bad_input(
            "extensions.persistedQuery must be {\"version\": 1, \"sha256Hash\": \"<64 hex digits>\"}",
        )
    };
    let persisted = persisted.as_object().ok_or_else(malformed)?;
    match persisted.get("version").and_then(Value::as_i64) {
        Some(1) => {}
        Some(_) => {
            return Err(Refusal::bad_input(
                "unsupported persisted query version: only version 1 is supported",
            ));
        }
        None => return Err(malformed()),
    }
    let hash = persisted
        .get("sha256Hash")
        .and_then(Value::as_str)
        .filter(|h| is_sha256_hex(h))
        .ok_or_else(malformed)?;
    Ok(Some(hash.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_store_is_bounded_by_bytes() {
        let store = ApqStore::new(64 * 1024);
        let big: Arc<str> = "x".repeat(4096).into();
        for i in 0..100 {
            store.insert(format!("{i:064x}"), big.clone());
        }
        assert!(store.weight() <= 64 * 1024, "{}", store.weight());
        store.insert("a".repeat(64), "{ me { id } }".into());
        assert_eq!(store.get(&"a".repeat(64)).as_deref(), Some("{ me { id } }"));
    }

    #[test]
    fn the_extension_is_read_as_apollo_sends_it() {
        let ext = |v: Value| v.as_object().cloned();
        let hash = "AB".repeat(32);
        let found = persisted_query_hash(
            ext(json!({"persistedQuery": {"version": 1, "sha256Hash": hash}})).as_ref(),
        );
        assert_eq!(found.ok().flatten(), Some("ab".repeat(32)));
        assert!(matches!(
            persisted_query_hash(ext(json!({})).as_ref()),
            Ok(None)
        ));
        assert!(persisted_query_hash(None).unwrap().is_none());
        for bad in [
            json!({"persistedQuery": {"version": 2, "sha256Hash": "ab".repeat(32)}}),
            json!({"persistedQuery": {"version": 1, "sha256Hash": "abc"}}),
            json!({"persistedQuery": {"sha256Hash": "ab".repeat(32)}}),
            json!({"persistedQuery": "ab"}),
        ] {
            assert!(
                persisted_query_hash(ext(bad.clone()).as_ref()).is_err(),
                "{bad}"
            );
        }
    }
}
