//! `/graphql` over GET and POST, from the wire to execution; [`prepare`]
//! is the part every transport shares.
//!
//! In order, each step refusing before anything runs:
//! 1. CSRF prevention (before the body is read);
//! 2. the request, from the query string (GET) or the JSON body (POST), with
//!    the GraphQL-over-HTTP names (`operationName`, `documentId`);
//! 3. the document: by id (trusted documents), by APQ hash, or as text;
//!    trusted documents refuse any other;
//! 4. over GET, only queries;
//! 5. the cost limits;
//! 6. execution: a compiled plan for a `me` query it answers (see
//!    `graphql::CompiledQueries`), async-graphql for everything else.
//!
//! Every refusal has the shape of any other GraphQL error of the gateway:
//! `{"errors": [{"message", "extensions": {"code"}}]}`, in the media type
//! negotiated from `Accept` (see [`media`]). A GraphQL request error (a
//! document that does not parse or validate, no operation to run, variables
//! that do not coerce, a limit) has no `data` and is HTTP 400 under
//! `application/graphql-response+json`, 200 under `application/json`.

use std::sync::Arc;

use async_graphql::{
    Variables,
    parser::types::{ExecutableDocument, OperationType},
};
use async_graphql_axum::GraphQLResponse;
use axum::{
    body::Body,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Map, Value};

pub use super::refusal::Refusal;
use super::{
    apq,
    auth::{InvalidToken, MaybePrincipal},
    media::{self, MediaType},
    refusal::set_default_code,
    response_cache::Lookup,
};
use crate::{
    AppState,
    auth::{ADMIN_PERMISSION, Principal},
    graphql::{
        self as gql, Answer, RequestContext, Syntax, check_required_variables, choose_operation,
        is_introspection_only, selects_introspection, sha256_hex,
    },
    telemetry::GraphqlOperation,
};

/// Apollo's code for a request whose operation cannot be chosen.
const OPERATION_RESOLUTION_FAILURE: &str = "OPERATION_RESOLUTION_FAILURE";

/// A GraphQL request as it comes over the wire, before its document is known.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireRequest {
    pub query: Option<String>,
    pub operation_name: Option<String>,
    pub variables: Option<Value>,
    pub extensions: Option<Value>,
    /// The GraphQL-over-HTTP persisted documents draft's id.
    pub document_id: Option<String>,
}

/// GET's parameters: the same fields, `variables` and `extensions` as JSON.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
    document_id: Option<String>,
}

/// Whether a GET to `/graphql` is a browser opening the page (no operation
/// in the query string, HTML accepted) rather than a client's query.
pub fn is_navigation(headers: &HeaderMap, uri: &Uri) -> bool {
    let accepts_html = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/html"));
    let params = Query::<GetParams>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default();
    accepts_html
        && params.query.is_none()
        && params.document_id.is_none()
        && params.extensions.is_none()
}

/// `GET /graphql?query=…&variables=…&operationName=…&extensions=…`.
#[tracing::instrument(skip_all, fields(user_id))]
pub async fn get(
    state: AppState,
    headers: HeaderMap,
    uri: Uri,
    principal: Result<MaybePrincipal, InvalidToken>,
) -> Response {
    match media::negotiate(&headers) {
        Ok(media) => media.finish(answer_get(&state, &headers, &uri, principal, media).await),
        Err(media::NotAcceptable) => not_acceptable(),
    }
}

async fn answer_get(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    principal: Result<MaybePrincipal, InvalidToken>,
    media: MediaType,
) -> Response {
    if let Err(refusal) = prevent_csrf(state, headers) {
        return refusal.into_response();
    }
    let Ok(Query(params)) = Query::<GetParams>::try_from_uri(uri) else {
        return Refusal::bad_input(
            "the query string is not a GraphQL request: `query`, `operationName`, \
             `variables`, `extensions` and `documentId` may each appear once",
        )
        .into_response();
    };
    if params.query.is_none() && params.document_id.is_none() && params.extensions.is_none() {
        return Refusal::bad_input(
            "a GET request needs a `query` parameter (or a persisted query's id); \
             open /graphql in a browser for GraphiQL",
        )
        .into_response();
    }
    let json_param = |name: &str, value: Option<String>| -> Result<Option<Value>, Refusal> {
        match value.filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(text) => {
                gql::guard::check_nesting(
                    text.as_bytes(),
                    Syntax::Json,
                    &state.config.guard_limits,
                )
                .map_err(Refusal::guard)?;
                serde_json::from_str(&text).map(Some).map_err(|e| {
                    Refusal::bad_input(format!("`{name}` is not JSON ({})", json_position(&e)))
                })
            }
        }
    };
    let wire = match (
        json_param("variables", params.variables),
        json_param("extensions", params.extensions),
    ) {
        (Ok(variables), Ok(extensions)) => WireRequest {
            query: params.query,
            operation_name: params.operation_name,
            variables,
            extensions,
            document_id: params.document_id,
        },
        (Err(refusal), _) | (_, Err(refusal)) => return refusal.into_response(),
    };
    match principal {
        Ok(MaybePrincipal(principal)) => {
            run(state, principal, wire, headers, Transport::Get, media).await
        }
        Err(invalid) => invalid.into_response(),
    }
}

/// `POST /graphql` with a JSON body.
#[tracing::instrument(skip_all, fields(user_id))]
pub async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    principal: Result<MaybePrincipal, InvalidToken>,
    body: Body,
) -> Response {
    match media::negotiate(&headers) {
        Ok(media) => media.finish(answer_post(&state, &headers, principal, body, media).await),
        Err(media::NotAcceptable) => not_acceptable(),
    }
}

async fn answer_post(
    state: &AppState,
    headers: &HeaderMap,
    principal: Result<MaybePrincipal, InvalidToken>,
    body: Body,
    media: MediaType,
) -> Response {
    if let Err(refusal) = prevent_csrf(state, headers) {
        return refusal.into_response();
    }
    // A declared length over the limit was refused before this (see
    // `too_large`); a body without one is cut off at the limit as it
    // streams. Any error here is that, or a client gone, which reads no answer.
    let limit = state.config.max_body_bytes;
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return Refusal::too_large(limit).into_response();
    };
    if let Err(refused) =
        gql::guard::check_nesting(&bytes, Syntax::Json, &state.config.guard_limits)
    {
        return Refusal::guard(refused).into_response();
    }
    let wire = match wire_request(&bytes) {
        Ok(wire) => wire,
        Err(refusal) => return refusal.into_response(),
    };
    match principal {
        Ok(MaybePrincipal(principal)) => {
            run(state, principal, wire, headers, Transport::Post, media).await
        }
        Err(invalid) => invalid.into_response(),
    }
}

/// The answer to a request to `/graphql` whose declared `Content-Length`
/// is over `limit`, before anything is read.
pub fn too_large(headers: &HeaderMap, limit: usize) -> Response {
    let media = media::negotiate(headers).unwrap_or(MediaType::Json);
    media.finish(Refusal::too_large(limit).into_response())
}

/// The answer to an `Accept` that allows neither of the media types; in
/// `application/json`, which a client that names no JSON type at all is
/// most likely to read.
fn not_acceptable() -> Response {
    let refusal = Refusal::new(
        StatusCode::NOT_ACCEPTABLE,
        "BAD_REQUEST",
        "this endpoint answers in application/graphql-response+json or application/json, \
         and the request's Accept header allows neither",
    );
    MediaType::Json.finish(refusal.into_response())
}

/// A POST body as a GraphQL request, past the guard, for the transports
/// that stream their answers.
pub fn parse_body(state: &AppState, bytes: &[u8]) -> Result<WireRequest, Refusal> {
    gql::guard::check_nesting(bytes, Syntax::Json, &state.config.guard_limits)
        .map_err(Refusal::guard)?;
    wire_request(bytes)
}

/// A POST body as a GraphQL request; a body that is not one is refused in
/// the gateway's words, not the JSON parser's.
fn wire_request(bytes: &[u8]) -> Result<WireRequest, Refusal> {
    let error = match serde_json::from_slice::<WireRequest>(bytes) {
        Ok(wire) => return Ok(wire),
        Err(error) => error,
    };
    let not_a_request =
        |why: String| Refusal::bad_input(format!("the body is not a GraphQL request: {why}"));
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(not_a_request(
            "it is empty; send a JSON object such as {\"query\": \"{ me { id } }\"}".into(),
        ));
    }
    Err(match serde_json::from_slice::<Value>(bytes) {
        Err(e) => not_a_request(format!("it is not JSON ({})", json_position(&e))),
        Ok(Value::Array(_)) => Refusal::new(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "batched requests (a JSON array of operations) are not supported: \
             send each operation in a request of its own",
        ),
        Ok(Value::Object(map)) => {
            let wrong = ["query", "operationName", "documentId"]
                .into_iter()
                .find(|name| {
                    map.get(*name)
                        .is_some_and(|v| !v.is_string() && !v.is_null())
                });
            match wrong {
                Some(name) => not_a_request(format!("`{name}` must be a string")),
                // A field twice, say: serde refuses it, the map keeps one.
                None => {
                    tracing::debug!(error = %error, "a POST body was refused");
                    not_a_request(
                        "each of `query`, `operationName`, `variables`, `extensions` and \
                         `documentId` may appear once"
                            .into(),
                    )
                }
            }
        }
        Ok(_) => {
            not_a_request("it must be a JSON object such as {\"query\": \"{ me { id } }\"}".into())
        }
    })
}

/// Where JSON text stopped making sense, for a message.
fn json_position(error: &serde_json::Error) -> String {
    format!("line {}, column {}", error.line(), error.column())
}

fn prevent_csrf(state: &AppState, headers: &HeaderMap) -> Result<(), Refusal> {
    match &state.config.csrf {
        Some(csrf) if !csrf.allows(headers) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            csrf.message(),
        )),
        _ => Ok(()),
    }
}

/// The document a request runs, and what is left to check once it is parsed.
struct Resolved {
    query: Arc<str>,
    /// The APQ hash to keep the query under once it proves valid.
    register: Option<String>,
    /// Trusted documents are enforced and the text is not one: it runs only
    /// if it is introspection.
    unlisted: bool,
}

fn resolve(
    state: &AppState,
    principal: Option<&Principal>,
    query: Option<String>,
    document_id: Option<String>,
    extensions: Option<&Map<String, Value>>,
) -> Result<Resolved, Refusal> {
    let apq_hash = apq::persisted_query_hash(extensions)?;
    let query = query.filter(|q| !q.is_empty());
    let trusted = state.config.trusted_documents.as_deref();
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
                register = state.apq.is_some().then_some(hash);
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
                let store = state
                    .apq
                    .as_ref()
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

/// The checks that need the parsed document.
fn check_document(
    state: &AppState,
    resolved: &Resolved,
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
    transport: Transport,
) -> Result<OperationType, Refusal> {
    // First: every check below walks the document through its fragments.
    // Only the count of selections waits for the cost limits, whose codes
    // say more (each fragment is measured once there too).
    let shape = gql::guard::check_document(document, &state.config.guard_limits);
    if let Err(refused) = &shape
        && !matches!(refused, gql::Refused::Selections { .. })
    {
        return Err(Refusal::guard(refused.clone()));
    }
    if resolved.unlisted && !(state.config.introspection && is_introspection_only(document)) {
        return Err(Refusal::not_in_safelist());
    }
    let operation = choose_operation(document, operation_name)
        .map_err(|why| Refusal::request_error(OPERATION_RESOLUTION_FAILURE, why))?;
    // async-graphql would answer `__schema: null` without a word.
    if !state.config.introspection && selects_introspection(document) {
        return Err(Refusal::request_error(
            "INTROSPECTION_DISABLED",
            "introspection is turned off on this gateway (INTROSPECTION=false): \
             take the schema from its schema.graphql",
        ));
    }
    if transport == Transport::Get && operation.ty != OperationType::Query {
        let mut refusal = Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "BAD_REQUEST",
            format!(
                "GET requests only support query operations, not {} operations: send it with POST",
                operation.ty
            ),
        );
        refusal.allow_post = true;
        return Err(refusal);
    }
    if operation.ty == OperationType::Subscription && transport == Transport::Post {
        return Err(Refusal::request_error(
            "BAD_REQUEST",
            "a subscription needs a live transport: a WebSocket (graphql-transport-ws) to \
             /graphql, GraphQL over SSE, or a POST accepting multipart/mixed",
        ));
    }
    check_required_variables(operation, variables)
        .map_err(|why| Refusal::request_error("BAD_USER_INPUT", why))?;
    state
        .limiter
        .check(document, operation_name, variables)
        .map_err(Refusal::limit)?;
    shape.map_err(Refusal::guard)?;
    Ok(operation.ty)
}

/// How a request reached the pipeline: what it may run over it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `GET /graphql`: queries only.
    Get,
    /// `POST /graphql` with a JSON body.
    Post,
    /// A WebSocket on `/graphql`: every kind of operation.
    WebSocket,
    /// A POST answered with Server-Sent Events.
    Sse,
    /// A POST answered with Apollo's multipart subscription stream.
    Multipart,
}

/// A request past every refusal, with its document parsed and checked and
/// its variables' defaults filled in: what any transport executes.
pub struct Prepared {
    pub request: async_graphql::Request,
    pub operation: GraphqlOperation,
    pub kind: OperationType,
}

/// Every stage before execution, in order, the same for every transport:
/// the request's shape, the document (trusted documents, APQ, text), the
/// guard against hostile documents, the choice of operation, what the
/// transport allows, the required variables and the cost limits.
pub fn prepare(
    state: &AppState,
    principal: Option<&Principal>,
    wire: WireRequest,
    transport: Transport,
) -> Result<Prepared, Refusal> {
    let mut variables = match wire.variables {
        None | Some(Value::Null) => Variables::default(),
        Some(value @ Value::Object(_)) => Variables::from_json(value),
        Some(_) => return Err(Refusal::bad_input("`variables` must be an object")),
    };
    let extensions = match wire.extensions {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(map),
        Some(_) => return Err(Refusal::bad_input("`extensions` must be an object")),
    };
    let resolved = resolve(
        state,
        principal,
        wire.query,
        wire.document_id,
        extensions.as_ref(),
    )?;

    // Before any parser: a deep enough nest would overflow its stack.
    gql::guard::check_nesting(
        resolved.query.as_bytes(),
        Syntax::Graphql,
        &state.config.guard_limits,
    )
    .map_err(Refusal::guard)?;
    let mut request = async_graphql::Request::new(resolved.query.as_ref());
    if let Some(name) = &wire.operation_name {
        request = request.operation_name(name.as_str());
    }
    state.documents.prepare(&mut request);
    let kind = match request.parsed_query() {
        Ok(document) => {
            let kind = check_document(
                state,
                &resolved,
                document,
                wire.operation_name.as_deref(),
                &variables,
                transport,
            )?;
            gql::fill_variable_defaults(document, wire.operation_name.as_deref(), &mut variables);
            if let (Some(hash), Some(store)) = (resolved.register, &state.apq) {
                store.insert(hash, resolved.query.clone());
            }
            kind
        }
        // An unlisted text is refused as such whether or not it parses.
        Err(_) if resolved.unlisted => return Err(Refusal::not_in_safelist()),
        Err(error) => return Err(Refusal::parse_failed(vec![error])),
    };
    let mut request = request.variables(variables);
    let operation = GraphqlOperation::of(&mut request);
    Ok(Prepared {
        request,
        operation,
        kind,
    })
}

async fn run(
    state: &AppState,
    principal: Option<Principal>,
    wire: WireRequest,
    headers: &HeaderMap,
    transport: Transport,
    media: MediaType,
) -> Response {
    match prepare(state, principal.as_ref(), wire, transport) {
        Ok(prepared) => execute(state, principal, prepared, headers, media).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// A prepared query or mutation over HTTP: the response cache, then the
/// compiled `me` plan, then async-graphql.
async fn execute(
    state: &AppState,
    principal: Option<Principal>,
    prepared: Prepared,
    headers: &HeaderMap,
    media: MediaType,
) -> Response {
    let Prepared {
        mut request,
        operation,
        ..
    } = prepared;
    if let Some(p) = &principal {
        tracing::Span::current().record("user_id", p.user_id.as_str());
    }
    // Only now, past every refusal and with the variables set: they are part
    // of the cache key.
    let pending = match &state.response_cache {
        Some(cache) => match cache
            .lookup(principal.as_ref(), &mut request, headers, media)
            .await
        {
            Lookup::Answered(mut response) => {
                response.extensions_mut().insert(operation);
                return response;
            }
            Lookup::Miss(pending) => Some(pending),
            Lookup::Uncached => None,
        },
        None => None,
    };
    // A `me` query the compiler takes is answered from its plan; anything
    // it cannot answer (errors included) runs through async-graphql below.
    let mut me_failure = None;
    if let Some(compiled) = &state.compiled
        && let Some(plan) = compiled.plan(&mut request)
    {
        match compiled
            .answer(
                &plan,
                &request.variables,
                principal.as_ref(),
                &state.services,
            )
            .await
        {
            Answer::Body(body) => {
                let body = axum::body::Bytes::from(body);
                let mut response = match pending {
                    Some(pending) => pending.finish_bytes(body),
                    None => ([(header::CONTENT_TYPE, media::GRAPHQL_RESPONSE_JSON)], body)
                        .into_response(),
                };
                response.extensions_mut().insert(operation);
                return response;
            }
            Answer::Fallback => {}
            Answer::Failed(error) => me_failure = Some(error),
        }
    }
    let context = match me_failure {
        Some(error) => RequestContext::with_me_failure(principal, error),
        None => RequestContext::new(principal),
    };
    // async-graphql orders keys as its resolvers finish and answers an
    // object whose fields are all skipped `null`: put both right (see
    // `graphql::Shape`).
    let variables = std::mem::take(&mut request.variables);
    let operation_name = request.operation_name.take();
    let shape = match request.parsed_query() {
        Ok(document) => {
            let shape = gql::Shape::of(document, operation_name.as_deref(), &variables);
            if let Some(kept) = gql::for_executor(document) {
                request.set_parsed_query(kept);
            }
            shape
        }
        Err(_) => None,
    };
    request.variables = variables;
    request.operation_name = operation_name;
    let mut response = state.schema.execute(request.data(context)).await;
    if let Some(shape) = &shape {
        shape.apply(&mut response.data);
    }
    gql::sort_errors(&mut response.errors);
    // Nothing ran if no error points at a field and there is no data:
    // async-graphql refused the document (validation, its depth and
    // complexity limits). Resolvers' errors carry their field's path.
    if response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
    {
        let errors = std::mem::take(&mut response.errors);
        let mut answer = Refusal::request_errors(errors, gql::VALIDATION_FAILED).into_response();
        answer.extensions_mut().insert(operation);
        return answer;
    }
    // Errors without a code are async-graphql's, about arguments: the
    // client's to fix.
    for error in &mut response.errors {
        set_default_code(error, "BAD_USER_INPUT");
    }
    let mut response = match pending {
        Some(pending) => pending.finish(response),
        None => GraphQLResponse::from(response).into_response(),
    };
    response.extensions_mut().insert(operation);
    response
}
