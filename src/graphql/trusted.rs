//! Trusted documents: the operations a deployment's own apps were built
//! with, and only those.
//!
//! The manifest is written at build time by the apps' code generators, in
//! either of two formats:
//!
//! - graphql-codegen's `persisted-documents.json`: `{"<id>": "<document>"}`,
//!   where the id is `sha256:<hex>` (the GraphQL-over-HTTP persisted
//!   documents draft's prefixed form) or a bare hash;
//! - Apollo's `persisted-query-manifest.json`:
//!   `{"format": "apollo-persisted-query-manifest", "version": 1,
//!   "operations": [{"id", "name", "type", "body"}]}`, whose ids are the
//!   SHA-256 of the body, the hash Apollo's clients send.
//!
//! A document is found by its id as the manifest spells it, by the SHA-256
//! of its text (with or without the `sha256:` prefix, which is what an APQ
//! hash is), or, sent as full text, by hashing that text.

use std::{collections::HashMap, path::Path, sync::Arc};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The lowercase hex SHA-256 of `text`, as APQ and `sha256:` ids spell it.
pub fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        use std::fmt::Write;
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Whether `value` looks like a hex SHA-256.
pub fn is_sha256_hex(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A loaded manifest and how it is enforced.
pub struct TrustedDocuments {
    /// Documents by the id the manifest gives them.
    by_id: HashMap<String, Arc<str>>,
    /// Documents by the hex SHA-256 of their text.
    by_hash: HashMap<String, Arc<str>>,
    /// Tokens with `write:app_metadata` may run any document.
    pub allow_admin: bool,
    /// Documents must be sent by id, never as text.
    pub require_id: bool,
}

impl std::fmt::Debug for TrustedDocuments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedDocuments")
            .field("documents", &self.by_hash.len())
            .field("allow_admin", &self.allow_admin)
            .field("require_id", &self.require_id)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Manifest {
    Apollo {
        format: String,
        version: u32,
        operations: Vec<ApolloOperation>,
    },
    Map(HashMap<String, String>),
}

#[derive(Deserialize)]
struct ApolloOperation {
    id: String,
    body: String,
}

const APOLLO_FORMAT: &str = "apollo-persisted-query-manifest";

impl TrustedDocuments {
    /// Reads the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses a manifest in either format.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let manifest: Manifest = serde_json::from_str(text).map_err(|_| {
            "not a persisted documents manifest: expected graphql-codegen's \
             {\"sha256:<hash>\": \"<document>\"} or Apollo's persisted query manifest"
                .to_owned()
        })?;
        let entries: Vec<(String, String)> = match manifest {
            Manifest::Apollo {
                format,
                version,
                operations,
            } => {
                if format != APOLLO_FORMAT || version != 1 {
                    return Err(format!(
                        "unsupported manifest format {format} version {version} \
                         (expected {APOLLO_FORMAT} version 1)"
                    ));
                }
                operations.into_iter().map(|op| (op.id, op.body)).collect()
            }
            Manifest::Map(map) => map.into_iter().collect(),
        };
        let mut documents = Self {
            by_id: HashMap::new(),
            by_hash: HashMap::new(),
            allow_admin: false,
            require_id: false,
        };
        for (id, body) in entries {
            let hash = sha256_hex(&body);
            // A SHA-256 id must be the hash of its document: clients compute
            // the same hash from the text they were built with, so a mismatch
            // means a stale or hand-edited manifest.
            let claimed = id.strip_prefix("sha256:").unwrap_or(&id);
            if is_sha256_hex(claimed) && !claimed.eq_ignore_ascii_case(&hash) {
                return Err(format!(
                    "the document with id {id} has SHA-256 {hash}: regenerate the manifest"
                ));
            }
            let body: Arc<str> = body.into();
            documents.by_id.insert(id, body.clone());
            documents.by_hash.insert(hash, body);
        }
        Ok(documents)
    }

    /// The number of distinct documents.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether the manifest lists no document.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The document with id `id`: as the manifest spells it, or a
    /// (`sha256:`-prefixed or bare) hash of its text.
    pub fn get(&self, id: &str) -> Option<Arc<str>> {
        if let Some(body) = self.by_id.get(id) {
            return Some(body.clone());
        }
        let hash = id.strip_prefix("sha256:").unwrap_or(id);
        if is_sha256_hex(hash) {
            return self.by_hash.get(&hash.to_ascii_lowercase()).cloned();
        }
        None
    }

    /// Whether `text` is one of the documents, byte for byte.
    pub fn contains_text(&self, text: &str) -> bool {
        self.by_hash.contains_key(&sha256_hex(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "query Me { me { id } }";

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(is_sha256_hex(&sha256_hex(ME)));
        assert!(!is_sha256_hex("sha256:e3b0"));
    }

    #[test]
    fn a_codegen_manifest_is_found_by_id_hash_and_text() {
        let hash = sha256_hex(ME);
        let manifest = serde_json::json!({ format!("sha256:{hash}"): ME }).to_string();
        let docs = TrustedDocuments::from_json(&manifest).unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs.get(&format!("sha256:{hash}")).as_deref(), Some(ME));
        assert_eq!(docs.get(&hash).as_deref(), Some(ME));
        assert_eq!(docs.get(&hash.to_uppercase()).as_deref(), Some(ME));
        assert!(docs.contains_text(ME));
        assert!(!docs.contains_text("query Me { me { id name } }"));
        assert!(docs.get("sha256:00").is_none());
    }

    #[test]
    fn an_apollo_manifest_is_read() {
        let manifest = serde_json::json!({
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [{"id": sha256_hex(ME), "name": "Me", "type": "query", "body": ME}]
        })
        .to_string();
        let docs = TrustedDocuments::from_json(&manifest).unwrap();
        assert_eq!(docs.get(&sha256_hex(ME)).as_deref(), Some(ME));
    }

    #[test]
    fn custom_ids_are_kept_and_wrong_hashes_refused() {
        let docs =
            TrustedDocuments::from_json(&serde_json::json!({"me-v1": ME}).to_string()).unwrap();
        assert_eq!(docs.get("me-v1").as_deref(), Some(ME));
        assert!(docs.contains_text(ME));

        let wrong = serde_json::json!({ format!("sha256:{}", sha256_hex("other")): ME });
        let err = TrustedDocuments::from_json(&wrong.to_string()).unwrap_err();
        assert!(err.contains("regenerate"), "{err}");
        let err = TrustedDocuments::from_json("[1, 2]").unwrap_err();
        assert!(err.contains("manifest"), "{err}");
        let future =
            r#"{"format": "apollo-persisted-query-manifest", "version": 2, "operations": []}"#;
        assert!(
            TrustedDocuments::from_json(future)
                .unwrap_err()
                .contains("version 2")
        );
    }
}
