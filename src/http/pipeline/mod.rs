//! The GraphQL request pipeline: every request to `/graphql`, whatever its
//! transport, passes the same stages in the same order, each a module that
//! owns its checks, its refusals (with their [`ErrorCode`]s) and its tests.
//!
//! The order is [`http`] (what HTTP adds around it) and [`prepare`] (what
//! every transport shares); a stage refuses with a [`Refusal`] before
//! anything after it runs.
//!
//! [`ErrorCode`]: crate::error::ErrorCode

pub mod apq;
pub mod csrf;
pub mod document;
mod execute;
pub mod guard;
mod limits;
mod operation;
pub mod wire;

use std::sync::Arc;

use async_graphql::parser::types::OperationType;
use axum::{
    extract::FromRef,
    http::HeaderMap,
    response::{IntoResponse, Response},
};

pub use self::execute::ExecuteState;
pub use self::wire::{Source, WireRequest};
use self::{apq::ApqStore, document::Documents, execute::execute};
use super::{
    auth::{InvalidToken, MaybePrincipal},
    media::MediaType,
    refusal::Refusal,
};
use crate::{
    AppState,
    auth::Principal,
    config::{Config, ConfigError, CsrfPrevention, GuardLimits},
    graphql::{self as gql, DocumentCache, Limits, QueryLimiter, TrustedDocuments},
    telemetry::GraphqlOperation,
};

/// What the stages before execution read: their settings and the stores
/// they keep, not the rest of the gateway's state. A field of [`AppState`];
/// a handler takes it as `State<PipelineState>`, and [`prepare`] from
/// anything that holds it.
#[derive(Clone)]
pub struct PipelineState {
    /// CSRF prevention; `None`: off.
    pub csrf: Option<CsrfPrevention>,
    /// Bounds on a document's shape (and a JSON body's nesting).
    pub guard_limits: GuardLimits,
    /// Whether introspection queries are answered.
    pub introspection: bool,
    /// The largest body the wire stage reads.
    pub max_body_bytes: usize,
    /// Automatic persisted queries, by hash; `None` when APQ is off.
    pub apq: Option<Arc<ApqStore>>,
    /// The manifest, when only trusted documents run.
    pub trusted: Option<Arc<TrustedDocuments>>,
    /// The cost limits, with the schema's shape.
    pub limiter: Arc<QueryLimiter>,
    /// Parsed query documents, by query text.
    pub documents: Arc<DocumentCache>,
}

impl PipelineState {
    /// The stages' state for `config`, keeping up to `document_capacity`
    /// parsed documents. The trusted documents' manifest is read here, at
    /// start-up, so a bad one stops the gateway naming its setting.
    pub fn new(
        config: &Config,
        pages: Limits,
        document_capacity: usize,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            trusted: document::load_trusted(config.trusted_documents.as_ref())?,
            csrf: config.csrf.clone(),
            guard_limits: config.guard_limits,
            introspection: config.introspection,
            max_body_bytes: config.max_body_bytes,
            apq: config
                .apq_cache_bytes
                .map(|bytes| Arc::new(ApqStore::new(bytes))),
            limiter: Arc::new(QueryLimiter::new(&gql::sdl(), config.query_limits, pages)),
            documents: Arc::new(DocumentCache::new(document_capacity)),
        })
    }
}

impl FromRef<AppState> for PipelineState {
    fn from_ref(state: &AppState) -> Self {
        state.pipeline.clone()
    }
}

// What `prepare` takes: the pipeline's state, or any state holding it (a
// transport that keeps the whole `AppState` passes `&state`).
impl AsRef<PipelineState> for PipelineState {
    fn as_ref(&self) -> &PipelineState {
        self
    }
}

impl AsRef<PipelineState> for AppState {
    fn as_ref(&self) -> &PipelineState {
        &self.pipeline
    }
}

/// How a request reached the pipeline: what it may run over it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `GET /graphql`: queries only.
    Get,
    /// `POST /graphql` with a JSON body.
    Post,
}

/// A request past every refusal, with its document parsed and checked and
/// its variables' defaults filled in: what any transport executes.
pub struct Prepared {
    pub request: async_graphql::Request,
    pub operation: GraphqlOperation,
    // Read by the subscription transports, which run only subscriptions.
    #[allow(dead_code)]
    pub kind: OperationType,
}

/// `/graphql` over HTTP, GET and POST alike: CSRF prevention before the
/// body is read, the wire request, the bearer token's verdict, then
/// [`prepare`] and the execution stages (response cache, compiled plan,
/// async-graphql).
pub async fn http(
    pipeline: &PipelineState,
    execution: &ExecuteState,
    headers: &HeaderMap,
    principal: Result<MaybePrincipal, InvalidToken>,
    source: Source<'_>,
    media: MediaType,
) -> Response {
    let transport = match source {
        Source::Get(_) => Transport::Get,
        Source::Post { .. } => Transport::Post,
    };
    let wire = match csrf::check(pipeline.csrf.as_ref(), headers) {
        Ok(()) => wire::read(source, &pipeline.guard_limits).await,
        Err(refusal) => Err(refusal),
    };
    let wire = match wire {
        Ok(wire) => wire,
        Err(refusal) => return refusal.into_response(),
    };
    let principal = match principal {
        Ok(MaybePrincipal(principal)) => principal,
        Err(invalid) => return invalid.into_response(),
    };
    match prepare(pipeline, principal.as_ref(), wire, transport) {
        Ok(prepared) => execute(execution, principal, prepared, headers, media).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// Every stage before execution, in order, the same for every transport.
/// `state` is the [`PipelineState`] or what holds it (`&AppState`).
pub fn prepare(
    state: &impl AsRef<PipelineState>,
    principal: Option<&Principal>,
    wire: WireRequest,
    transport: Transport,
) -> Result<Prepared, Refusal> {
    let state = state.as_ref();
    let guard_limits = &state.guard_limits;
    let documents = Documents {
        trusted: state.trusted.as_deref(),
        apq: state.apq.as_deref(),
    };

    let wire::Fields {
        mut variables,
        extensions,
    } = wire::fields(wire.variables, wire.extensions)?;
    let operation_name = wire.operation_name.as_deref();
    let resolved = document::resolve(
        documents,
        principal,
        wire.query,
        wire.document_id,
        extensions.as_ref(),
    )?;
    guard::check_text(&resolved.query, guard_limits)?;

    let mut request = async_graphql::Request::new(resolved.query.as_ref());
    if let Some(name) = operation_name {
        request = request.operation_name(name);
    }
    state.documents.prepare(&mut request);
    let document = request
        .parsed_query()
        .map_err(|error| resolved.parse_failed(error))?;
    let too_many_selections = guard::check_document(document, guard_limits)?;
    let kind = operation::check(
        state.introspection,
        &resolved,
        document,
        operation_name,
        &variables,
        transport,
    )?;
    limits::check(&state.limiter, document, operation_name, &variables)?;
    too_many_selections.check()?;

    gql::fill_variable_defaults(document, operation_name, &mut variables);
    resolved.register(documents);
    let mut request = request.variables(variables);
    let operation = GraphqlOperation::of(&mut request);
    Ok(Prepared {
        request,
        operation,
        kind,
    })
}
