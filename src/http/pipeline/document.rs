//! The document stage: what a request runs, by id (trusted documents), by
//! APQ hash, or as text; under trusted documents, nothing else. Its
//! refusals are Apollo's codes for persisted queries.

use std::sync::Arc;

use async_graphql::ServerError;
use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::apq::{self, ApqStore};
use crate::{
    auth::{ADMIN_PERMISSION, Principal},
    config::{ConfigError, TrustedSettings},
    error::ErrorCode,
    graphql::{TrustedDocuments, sha256_hex},
    http::refusal::Refusal,
};

/// The longest id echoed back in an error.
const MAX_ECHOED_ID: usize = 100;

/// What the stage reads: the manifest and the APQ store, each when on.
#[derive(Clone, Copy)]
pub struct Documents<'a> {
    pub trusted: Option<&'a TrustedDocuments>,
    pub apq: Option<&'a ApqStore>,
}

/// The manifest `settings` name, read and checked. At start-up: a
/// manifest that cannot be read, or whose ids are not its documents'
/// hashes, stops the gateway with the setting's name.
pub fn load_trusted(
    settings: Option<&TrustedSettings>,
) -> Result<Option<Arc<TrustedDocuments>>, ConfigError> {
    let Some(settings) = settings else {
        return Ok(None);
    };
    let mut documents = TrustedDocuments::load(&settings.path)
        .map_err(|e| ConfigError::new("TRUSTED_DOCUMENTS", e))?;
    documents.allow_admin = settings.allow_admin;
    documents.require_id = settings.require_id;
    Ok(Some(Arc::new(documents)))
}

/// The document a request runs, and what is left to check once it is parsed.
pub struct Resolved {
    pub query: Arc<str>,
    /// The APQ hash to keep the query under once it proves valid.
    register: Option<String>,
    /// Trusted documents are enforced and the text is not one: it runs only
    /// if it is introspection.
    pub unlisted: bool,
}

impl Resolved {
    /// The refusal of a text that does not parse: an unlisted text is
    /// refused as such whether or not it parses.
    pub fn parse_failed(&self, error: ServerError) -> Refusal {
        if self.unlisted {
            Refusal::not_in_safelist()
        } else {
            Refusal::parse_failed(vec![error])
        }
    }

    /// Keeps an APQ text once it passed every check.
    pub fn register(self, documents: Documents<'_>) {
        if let (Some(hash), Some(store)) = (self.register, documents.apq) {
            store.insert(hash, self.query);
        }
    }
}

/// The stage.
pub fn resolve(
    documents: Documents<'_>,
    principal: Option<&Principal>,
    query: Option<String>,
    document_id: Option<String>,
    extensions: Option<&Map<String, Value>>,
) -> Result<Resolved, Refusal> {
    let apq_hash = apq::persisted_query_hash(extensions)?;
    let query = query.filter(|q| !q.is_empty());
    let trusted = documents.trusted;
    let enforced = trusted
        .filter(|t| !(t.allow_admin && principal.is_some_and(|p| p.grants(ADMIN_PERMISSION))));

    if let Some(id) = document_id {
        let document = trusted.and_then(|t| t.get(&id));
        return match (document, query) {
            (None, _) => Err(Refusal::not_in_list(&id)),
            (Some(document), Some(text)) if *text != *document => Err(Refusal::bad_input(
                "the query sent does not match the document of `documentId`",
            )),
            (Some(document), _) => Ok(Resolved {
                query: document,
                register: None,
                unlisted: false,
            }),
        };
    }

    let mut register = None;
    let sent_hash = apq_hash.is_some();
    if let Some(hash) = apq_hash {
        match &query {
            Some(text) => {
                if sha256_hex(text) != hash {
                    return Err(Refusal::bad_input(
                        "provided sha does not match query: \
                         extensions.persistedQuery.sha256Hash must be the SHA-256 of `query`",
                    ));
                }
                register = documents.apq.is_some().then_some(hash);
            }
            None => {
                if let Some(document) = trusted.and_then(|t| t.get(&hash)) {
                    return Ok(Resolved {
                        query: document,
                        register: None,
                        unlisted: false,
                    });
                }
                // Under trusted documents, a hash the manifest does not list
                // would be refused as text too: say so now.
                if enforced.is_some() {
                    return Err(Refusal::not_in_list(&hash));
                }
                let store = documents
                    .apq
                    .ok_or_else(Refusal::persisted_query_not_supported)?;
                let query = store
                    .get(&hash)
                    .ok_or_else(Refusal::persisted_query_not_found)?;
                return Ok(Resolved {
                    query,
                    register: None,
                    unlisted: false,
                });
            }
        }
    }

    let Some(text) = query else {
        return Err(Refusal::bad_input(
            "the request has no query: send `query`, `documentId` or extensions.persistedQuery",
        ));
    };
    let unlisted = match enforced {
        Some(trusted) if trusted.require_id && !sent_hash => {
            return Err(Refusal::id_required());
        }
        Some(trusted) => !trusted.contains_text(&text),
        None => false,
    };
    Ok(Resolved {
        query: text.into(),
        register,
        unlisted,
    })
}

impl Refusal {
    /// An APQ hash this process has not seen: the client resends the text.
    pub(in crate::http) fn persisted_query_not_found() -> Self {
        Self::new(
            StatusCode::OK,
            ErrorCode::PersistedQueryNotFound,
            "PersistedQueryNotFound",
        )
        .uncached()
    }

    /// APQ turned off: Apollo's clients then stop sending hashes.
    pub(in crate::http) fn persisted_query_not_supported() -> Self {
        Self::new(
            StatusCode::OK,
            ErrorCode::PersistedQueryNotSupported,
            "PersistedQueryNotSupported",
        )
        .uncached()
    }

    pub(in crate::http) fn not_in_list(id: &str) -> Self {
        let id: String = id.chars().take(MAX_ECHOED_ID).collect();
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::PersistedQueryNotInList,
            format!("Persisted query '{id}' not found in the persisted query list"),
        )
        .uncached()
    }

    pub(in crate::http) fn not_in_safelist() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            ErrorCode::QueryNotInSafelist,
            "The operation body was not found in the persisted query safelist: \
             this gateway runs only its apps' trusted documents",
        )
        .uncached()
    }

    pub(in crate::http) fn id_required() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::PersistedQueryIdRequired,
            "This endpoint does not allow freeform GraphQL requests; operations must be sent \
             by id (`documentId`, or the persisted queries GraphQL extension)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_that_cannot_be_read_names_the_setting() {
        let settings = TrustedSettings {
            path: "/nonexistent/manifest.json".into(),
            allow_admin: false,
            require_id: false,
        };
        let err = load_trusted(Some(&settings)).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "invalid setting TRUSTED_DOCUMENTS: cannot read /nonexistent/manifest.json: "
            ),
            "{err}"
        );
        assert!(load_trusted(None).unwrap().is_none());
    }

    #[test]
    fn an_apq_hash_resolves_only_once_its_text_was_registered() {
        let store = ApqStore::new(64 * 1024);
        let documents = Documents {
            trusted: None,
            apq: Some(&store),
        };
        let text = "{ me { id } }";
        let hash = sha256_hex(text);
        let extensions = serde_json::json!({"persistedQuery": {"version": 1, "sha256Hash": hash}});
        let extensions = extensions.as_object();
        let by_hash = || resolve(documents, None, None, None, extensions);
        assert_eq!(
            by_hash().err().map(|r| r.code()),
            Some(ErrorCode::PersistedQueryNotFound)
        );
        let with_text = resolve(documents, None, Some(text.into()), None, extensions).unwrap();
        with_text.register(documents);
        assert_eq!(by_hash().ok().map(|r| r.query), Some(text.into()));
        let off = Documents {
            trusted: None,
            apq: None,
        };
        assert_eq!(
            resolve(off, None, None, None, extensions)
                .err()
                .map(|r| r.code()),
            Some(ErrorCode::PersistedQueryNotSupported)
        );
    }
}
