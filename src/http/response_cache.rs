//! The response cache and conditional requests (`ETag`, `If-None-Match`).
//!
//! The database keeps a version per user and one for what every user can
//! see (featured playlists), in `data_versions`. Triggers on every table a
//! query reads bump them in the transaction of the write, whoever writes:
//! any instance, the outbox, an Auth0 refresh, or SQL typed by hand. An
//! answer is kept under the caller, the normalized document, the operation
//! name and the variables, with the versions read just before it was
//! computed; a
//! request answered from it first reads the versions again, in one
//! statement, and uses the entry only if they are the same. So an entry is
//! never stale, on any instance: a write committed anywhere before the
//! versions are read changes them.
//!
//! The versions are read before the query runs, so an answer that already
//! saw a newer write is kept under older versions: it is then never used,
//! which costs a miss and nothing else.
//!
//! The `ETag` of an answer is a hash of its key and versions, and of the
//! build and page-size settings, so every instance of one deployment gives
//! one answer the same tag, and a request whose `If-None-Match` holds it gets
//! `304 Not Modified` for the price of the versions read, whichever instance
//! computed the answer.
//!
//! Only queries of signed-in users are cached, and never for admins (their
//! tokens may see more), machines or anonymous callers. Answers with errors
//! are not kept and carry no `ETag`.

use std::sync::Arc;

use async_graphql::{
    IntrospectionMode,
    parser::types::{
        DocumentOperations, ExecutableDocument, OperationDefinition, OperationType, Selection,
        SelectionSet,
    },
};
use async_graphql_axum::GraphQLResponse;
use axum::{
    body::{Body, Bytes},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use headers::{ETag, HeaderMapExt, IfNoneMatch};
use sea_orm::{
    DatabaseConnection, FromQueryResult,
    sea_query::{Expr, ExprTrait, Query},
};
use sha2::{Digest, Sha256};

use super::media::{self, MediaType};
use crate::error::ErrorCode;
use crate::{
    auth::{ADMIN_PERMISSION, Principal},
    profile::Auth0Mirror,
};

/// The scope of what every user can see; the migration's triggers bump it.
pub const FEATURED_SCOPE: &str = "*featured*";

/// What a cached answer tells caches between the gateway and the client: a
/// user's own data, to be revalidated on every use.
const CACHE_CONTROL: &str = "private, no-cache";

/// Bookkeeping counted against the memory budget on top of each body.
const ENTRY_OVERHEAD: u64 = 160;

/// An answer heavier than this share of the budget is not kept.
const LARGEST_SHARE: u64 = 8;

/// Which versions an answer depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Versions {
    own: i64,
    /// `None` when the query reads nothing featured.
    featured: Option<i64>,
}

/// A kept answer. Its tag is not kept: it depends on the media type each
/// request negotiates, and costs a hash to compute again.
struct Entry {
    versions: Versions,
    body: Bytes,
}

#[derive(Clone)]
struct Weigh;

impl quick_cache::Weighter<[u8; 32], Arc<Entry>> for Weigh {
    fn weight(&self, _key: &[u8; 32], entry: &Arc<Entry>) -> u64 {
        entry.body.len() as u64 + ENTRY_OVERHEAD
    }
}

/// Cached answers of this instance, bounded in bytes.
pub struct ResponseCache {
    db: DatabaseConnection,
    entries: quick_cache::sync::Cache<[u8; 32], Arc<Entry>, Weigh>,
    largest: u64,
    /// What makes answers of one query differ between deployments: the
    /// build, the schema, the page sizes.
    fingerprint: [u8; 32],
    /// In the auth0 mode, the refresh policy a hit must not skip.
    mirror: Option<Arc<Auth0Mirror>>,
}

/// What the cache did with a request.
pub enum Lookup {
    /// Answered from the cache, or `304 Not Modified`: send this.
    Answered(Response),
    /// Not in the cache (or stale): run the query, then [`Pending::finish`].
    Miss(Pending),
    /// Not for the cache (a mutation, an admin, …): run the query as usual.
    Uncached,
}

/// A miss waiting for its answer.
pub struct Pending {
    cache: Arc<ResponseCache>,
    key: [u8; 32],
    versions: Versions,
    etag: HeaderValue,
}

#[derive(FromQueryResult)]
struct VersionRow {
    own: Option<i64>,
    featured: Option<i64>,
    synced_at: Option<DateTime<Utc>>,
    auth0_updated_at: Option<DateTime<Utc>>,
}

impl ResponseCache {
    /// A cache of at most `max_bytes` over `db`; `None` when `max_bytes` is
    /// 0 (the cache is off). `fingerprint` names what else an answer
    /// depends on (the build, the schema, the settings that shape answers).
    pub fn new(
        db: DatabaseConnection,
        max_bytes: u64,
        fingerprint: &[u8],
        mirror: Option<Arc<Auth0Mirror>>,
    ) -> Option<Self> {
        if max_bytes == 0 {
            return None;
        }
        // An estimate for the table's initial size: a `me` answer of a few KB.
        let estimated_items = usize::try_from(max_bytes / 4096)
            .unwrap_or(usize::MAX)
            .max(16);
        Some(Self {
            db,
            entries: quick_cache::sync::Cache::with_weighter(estimated_items, max_bytes, Weigh),
            largest: max_bytes / LARGEST_SHARE,
            fingerprint: Sha256::digest(fingerprint).into(),
            mirror,
        })
    }

    /// Looks `request` up, to be answered in `media`. Costs one statement
    /// (the versions) for a request the cache takes, none for others.
    /// `request` gets its parsed document if it has none yet.
    pub async fn lookup(
        self: &Arc<Self>,
        principal: Option<&Principal>,
        request: &mut async_graphql::Request,
        headers: &HeaderMap,
        media: MediaType,
    ) -> Lookup {
        let Some(principal) = principal.filter(|p| cacheable_caller(p)) else {
            return Lookup::Uncached;
        };
        if !request.uploads.is_empty()
            || request.introspection_mode == IntrospectionMode::IntrospectionOnly
        {
            return Lookup::Uncached;
        }
        let operation_name = request.operation_name.clone();
        let Some(reads_featured) = request
            .parsed_query()
            .ok()
            .and_then(|document| featured_read(document, operation_name.as_deref()))
        else {
            return Lookup::Uncached;
        };
        let key = self.key(principal, request);
        let row = match self.read_versions(&principal.user_id).await {
            Ok(row) => row,
            Err(e) if crate::error::database_unavailable(&e) => {
                // Running the query would wait for the database a second time.
                tracing::warn!(error = %e, "cannot read data versions: the database is unavailable");
                crate::telemetry::record_error_code(ErrorCode::UpstreamUnavailable);
                let mut error = async_graphql::ServerError::new(
                    "the database is unavailable; try again shortly",
                    None,
                );
                error
                    .extensions
                    .get_or_insert_with(Default::default)
                    .set("code", ErrorCode::UpstreamUnavailable);
                return Lookup::Answered(
                    GraphQLResponse::from(async_graphql::Response::from_errors(vec![error]))
                        .into_response(),
                );
            }
            Err(e) => {
                // The query reports the database's state to the client.
                tracing::warn!(error = %e, "cannot read data versions; answering without the cache");
                return Lookup::Uncached;
            }
        };
        let versions = Versions {
            own: row.own.unwrap_or(0),
            featured: reads_featured.then(|| row.featured.unwrap_or(0)),
        };
        let etag = etag(&key, versions, media);
        let pending = Pending {
            cache: self.clone(),
            key,
            versions,
            etag,
        };
        if let Some(mirror) = &self.mirror
            && !mirror.serves_row_as_is(principal, row.synced_at, row.auth0_updated_at)
        {
            // The refresh policy has work to do: let the query run it.
            return Lookup::Miss(pending);
        }
        if not_modified(headers, &pending.etag) {
            return Lookup::Answered(pending.not_modified());
        }
        match self.entries.get(&key) {
            Some(entry) if entry.versions == versions => {
                Lookup::Answered(respond(&pending.etag, entry.body.clone()))
            }
            _ => Lookup::Miss(pending),
        }
    }

    /// The cache key: the deployment, the caller, the normalized document,
    /// the operation and the variables, each length-prefixed.
    fn key(&self, principal: &Principal, request: &async_graphql::Request) -> [u8; 32] {
        let variables = serde_json::to_vec(&request.variables).unwrap_or_default();
        let mut hash = Sha256::new();
        hash.update(self.fingerprint);
        let document = normalized(&request.query);
        for part in [
            principal.user_id.as_bytes(),
            document.as_bytes(),
            request.operation_name.as_deref().unwrap_or("").as_bytes(),
            &variables,
        ] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        hash.finalize().into()
    }

    /// One statement: the caller's and the featured version, and in the
    /// auth0 mode when the caller's row was last synced.
    async fn read_versions(&self, user_id: &str) -> Result<VersionRow, sea_orm::DbErr> {
        let backend = self.db.get_database_backend();
        // One value of one row, as a column of the statement.
        let one = |column: &'static str, table: &'static str, key: &'static str, value: &str| {
            Expr::from(
                Query::select()
                    .column(column)
                    .from(table)
                    .and_where(Expr::col(key).eq(value))
                    .to_owned(),
            )
        };
        let mut query = Query::select();
        query
            .expr_as(one("version", "data_versions", "scope", user_id), "own")
            .expr_as(
                one("version", "data_versions", "scope", FEATURED_SCOPE),
                "featured",
            );
        if self.mirror.is_some() {
            query
                .expr_as(one("synced_at", "users", "id", user_id), "synced_at")
                .expr_as(
                    one("auth0_updated_at", "users", "id", user_id),
                    "auth0_updated_at",
                );
        } else {
            query
                .expr_as(Expr::null(), "synced_at")
                .expr_as(Expr::null(), "auth0_updated_at");
        }
        let row = VersionRow::find_by_statement(backend.build(&query))
            .one(&self.db)
            .await?;
        Ok(row.unwrap_or(VersionRow {
            own: None,
            featured: None,
            synced_at: None,
            auth0_updated_at: None,
        }))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

impl Pending {
    /// The HTTP answer to `response`, kept in the cache and tagged when it
    /// has no errors.
    pub fn finish(self, response: async_graphql::Response) -> Response {
        if !response.is_ok()
            || !response.http_headers.is_empty()
            || response.cache_control.value().is_some()
        {
            return GraphQLResponse::from(response).into_response();
        }
        match serde_json::to_vec(&response) {
            Ok(body) => self.finish_bytes(Bytes::from(body)),
            Err(_) => GraphQLResponse::from(response).into_response(),
        }
    }

    /// The HTTP answer of a body written without async-graphql (a
    /// compiled plan's, always without errors), kept and tagged as
    /// [`Self::finish`] keeps and tags one.
    pub fn finish_bytes(self, body: Bytes) -> Response {
        if (body.len() as u64) + ENTRY_OVERHEAD <= self.cache.largest {
            self.cache.entries.insert(
                self.key,
                Arc::new(Entry {
                    versions: self.versions,
                    // A copy of exactly the body's size: the buffer it was
                    // written into has room to spare (a 16 KiB start, or
                    // serde_json's doubling), which the budget, counting
                    // body bytes, would not see; kept for every entry it
                    // grew the process by up to half again the budget.
                    body: Bytes::copy_from_slice(&body),
                }),
            );
        }
        respond(&self.etag, body)
    }

    fn not_modified(&self) -> Response {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        tag(response.headers_mut(), &self.etag);
        response
    }
}

/// The document without what GraphQL ignores between tokens (white space,
/// commas, comments), so texts that differ only in layout share one entry
/// and one `ETag`: generated clients, hand-written queries and persisted
/// documents send the same operation formatted differently. Strings and
/// block strings are kept as they are; one space stays where two names or
/// numbers would otherwise run together.
fn normalized(query: &str) -> String {
    let bytes = query.as_bytes();
    let mut out = String::with_capacity(query.len());
    let mut i = 0;
    // Whether ignored characters were skipped since the last token.
    let mut gap = false;
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                gap = true;
                i += 1;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
                gap = true;
            }
            b'"' => {
                let start = i;
                i = if query[i..].starts_with("\"\"\"") {
                    block_string_end(query, i + 3)
                } else {
                    string_end(bytes, i + 1)
                };
                out.push_str(&query[start..i]);
                gap = false;
            }
            _ => {
                if gap && word(b) && out.as_bytes().last().is_some_and(|&last| word(last)) {
                    out.push(' ');
                }
                gap = false;
                // Copy one whole character (names are ASCII; anything else
                // is an error async-graphql reports, but must not split a
                // UTF-8 sequence here).
                let len = query[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&query[i..i + len]);
                i += len;
            }
        }
    }
    out
}

/// The index just past the `"` closing a string whose text starts at `i`
/// (or the end of an unterminated one).
fn string_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            b'\n' | b'\r' => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The index just past the `"""` closing a block string whose text starts
/// at `i` (`\"""` does not close it).
fn block_string_end(query: &str, mut i: usize) -> usize {
    while i < query.len() {
        if query[i..].starts_with("\\\"\"\"") {
            i += 4;
        } else if query[i..].starts_with("\"\"\"") {
            return i + 3;
        } else {
            i += query[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    query.len()
}

/// Whether answers to `principal` may be cached: a user's token, not an
/// admin's (whose answers are not the user's own), not a machine's.
fn cacheable_caller(principal: &Principal) -> bool {
    !principal.is_machine() && !principal.grants(ADMIN_PERMISSION)
}

/// For a query the cache takes, whether it reads the featured scope; `None`
/// for anything else (a mutation, introspection, an operation that cannot
/// be chosen: those run as usual and report their own errors).
fn featured_read(document: &ExecutableDocument, operation_name: Option<&str>) -> Option<bool> {
    let operation: &OperationDefinition = match (&document.operations, operation_name) {
        (DocumentOperations::Single(op), None) => &op.node,
        (DocumentOperations::Multiple(ops), Some(name)) => &ops.get(name)?.node,
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => &ops.values().next()?.node,
        _ => return None,
    };
    if operation.ty != OperationType::Query {
        return None;
    }
    root_reads_featured(document, &operation.selection_set.node, 0)
}

/// Fragments nest at most this deep at the root (validation rejects cycles
/// later; this keeps a cyclic document from looping here first).
const MAX_FRAGMENT_DEPTH: usize = 8;

fn root_reads_featured(
    document: &ExecutableDocument,
    selections: &SelectionSet,
    depth: usize,
) -> Option<bool> {
    if depth > MAX_FRAGMENT_DEPTH {
        return None;
    }
    let mut featured = false;
    for selection in &selections.items {
        let reads = match &selection.node {
            Selection::Field(field) => match field.node.name.node.as_str() {
                // The caller's own rows.
                "me" | "song" | "__typename" => false,
                // Another user's featured playlist, or the list of them.
                "playlist" | "featuredPlaylists" => true,
                // Introspection, or a field validation will reject.
                _ => return None,
            },
            Selection::FragmentSpread(spread) => {
                let fragment = document.fragments.get(&spread.node.fragment_name.node)?;
                root_reads_featured(document, &fragment.node.selection_set.node, depth + 1)?
            }
            Selection::InlineFragment(inline) => {
                root_reads_featured(document, &inline.node.selection_set.node, depth + 1)?
            }
        };
        featured |= reads;
    }
    Some(featured)
}

/// A strong tag: the hash of the key, the versions and the media type
/// (the same bytes as `application/json` and as
/// `application/graphql-response+json` are two representations).
fn etag(key: &[u8; 32], versions: Versions, media: MediaType) -> HeaderValue {
    let mut hash = Sha256::new();
    hash.update(key);
    hash.update([media.tag()]);
    hash.update(versions.own.to_be_bytes());
    match versions.featured {
        Some(v) => {
            hash.update([1]);
            hash.update(v.to_be_bytes());
        }
        None => hash.update([0]),
    }
    let digest = hash.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex is a valid header value")
}

/// Whether the request's `If-None-Match` holds `etag` (or `*`).
fn not_modified(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Some(condition) = headers.typed_get::<IfNoneMatch>() else {
        return false;
    };
    let Some(etag) = etag.to_str().ok().and_then(|t| t.parse::<ETag>().ok()) else {
        return false;
    };
    !condition.precondition_passes(&etag)
}

fn tag(headers: &mut HeaderMap, etag: &HeaderValue) {
    headers.insert(header::ETAG, etag.clone());
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    // Answers depend on the caller, who is named by the token (and on
    // `Accept`, which `MediaType::finish` adds to every answer).
    headers.append(header::VARY, HeaderValue::from_static("authorization"));
}

/// A cacheable answer, as async-graphql's own responder would send it, tagged.
fn respond(etag: &HeaderValue, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media::GRAPHQL_RESPONSE_JSON),
    );
    tag(headers, etag);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_comments_do_not_change_the_normalized_document() {
        let compact = normalized("query Me($n:Int){me{id songs(first:$n){nodes{id name}}}}");
        assert_eq!(
            compact,
            "query Me($n:Int){me{id songs(first:$n){nodes{id name}}}}"
        );
        let spread = normalized(
            "# the screen's query\nquery  Me( $n : Int ) {\n  me {\n    id,\n    songs(first: $n) { # page\n      nodes { id name }\n    }\n  }\n}\n",
        );
        assert_eq!(spread, compact);
        assert_eq!(
            normalized("{ a: me { ... on Me { id } } }"),
            "{a:me{...on Me{id}}}"
        );
        assert_eq!(
            normalized("{ f(n: 1 2) }"),
            "{f(n:1 2)}",
            "tokens stay apart"
        );
    }

    #[test]
    fn strings_keep_their_text() {
        assert_eq!(
            normalized("{ f(s: \"a  ,#b\\\" c\") }"),
            "{f(s:\"a  ,#b\\\" c\")}"
        );
        assert_ne!(
            normalized("{ f(s: \"a b\") }"),
            normalized("{ f(s: \"a  b\") }")
        );
        assert_eq!(
            normalized("{ f(s: \"\"\"x ,\\\"\"\" # y\"\"\") g }"),
            "{f(s:\"\"\"x ,\\\"\"\" # y\"\"\")g}"
        );
        assert_eq!(normalized("{ f(s: \"é  ü\") }"), "{f(s:\"é  ü\")}");
        // Unterminated: kept to the end, for async-graphql to refuse.
        assert_eq!(normalized("{ f(s: \"abc"), "{f(s:\"abc");
    }

    fn reads(query: &str, operation: Option<&str>) -> Option<bool> {
        let document = async_graphql::parser::parse_query(query).expect("parses");
        featured_read(&document, operation)
    }

    #[test]
    fn only_queries_of_known_root_fields_are_cached() {
        assert_eq!(
            reads("{ me { id } song(id: 1) { name } }", None),
            Some(false)
        );
        assert_eq!(
            reads("{ me { id } featuredPlaylists { totalCount } }", None),
            Some(true)
        );
        assert_eq!(
            reads(
                "query A { me { id } } query B { playlist(id: 1) { name } }",
                Some("B")
            ),
            Some(true)
        );
        assert_eq!(
            reads(
                "fragment F on Query { playlist(id: 1) { name } } { me { id } ...F }",
                None
            ),
            Some(true)
        );
        assert_eq!(reads("{ ... on Query { me { id } } }", None), Some(false));
        assert_eq!(
            reads("mutation { recordPlay(id: 1) { plays } }", None),
            None
        );
        assert_eq!(reads("{ __schema { types { name } } }", None), None);
        assert_eq!(
            reads("query A { me { id } } query B { me { id } }", None),
            None
        );
        assert_eq!(reads("fragment F on Query { ...F } { ...F }", None), None);
    }

    #[test]
    fn a_tag_changes_with_each_version_it_depends_on() {
        let key = [7; 32];
        let tag =
            |key: &[u8; 32], own, featured, media| etag(key, Versions { own, featured }, media);
        let base = tag(&key, 1, None, MediaType::Json);
        assert_eq!(base, tag(&key, 1, None, MediaType::Json));
        assert_ne!(base, tag(&key, 2, None, MediaType::Json));
        assert_ne!(base, tag(&key, 1, Some(1), MediaType::Json));
        assert_ne!(base, tag(&[8; 32], 1, None, MediaType::Json));
        assert_ne!(
            base,
            tag(&key, 1, None, MediaType::GraphqlResponseJson),
            "another media type is another representation"
        );
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, base.clone());
        assert!(not_modified(&headers, &base));
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"other\", W/\"x\""),
        );
        assert!(!not_modified(&headers, &base));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(not_modified(&headers, &base));
    }

    #[tokio::test]
    async fn memory_stays_within_the_budget() {
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        let cache = Arc::new(ResponseCache::new(db, 64 * 1024, b"test", None).unwrap());
        for i in 0..200u8 {
            let pending = Pending {
                cache: cache.clone(),
                key: [i; 32],
                versions: Versions {
                    own: 1,
                    featured: None,
                },
                etag: etag(
                    &[i; 32],
                    Versions {
                        own: 1,
                        featured: None,
                    },
                    MediaType::Json,
                ),
            };
            let response =
                async_graphql::Response::new(async_graphql::Value::String("x".repeat(2000)));
            pending.finish(response);
        }
        assert!(cache.entries.weight() <= 64 * 1024);
        assert!(cache.len() > 0 && cache.len() < 200);
    }
}
