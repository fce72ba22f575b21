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

use async_graphql::parser::types::OperationType;
use axum::{
    http::HeaderMap,
    response::{IntoResponse, Response},
};

pub use self::wire::{Source, WireRequest};
use self::{document::Documents, execute::execute};
use super::{
    auth::{InvalidToken, MaybePrincipal},
    media::MediaType,
    refusal::Refusal,
};
use crate::{AppState, auth::Principal, graphql as gql, telemetry::GraphqlOperation};

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
    state: &AppState,
    headers: &HeaderMap,
    principal: Result<MaybePrincipal, InvalidToken>,
    source: Source<'_>,
    media: MediaType,
) -> Response {
    let transport = match source {
        Source::Get(_) => Transport::Get,
        Source::Post { .. } => Transport::Post,
    };
    let config = &state.config;
    let wire = match csrf::check(config.csrf.as_ref(), headers) {
        Ok(()) => wire::read(source, &config.guard_limits).await,
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
    match prepare(state, principal.as_ref(), wire, transport) {
        Ok(prepared) => execute(state, principal, prepared, headers, media).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// Every stage before execution, in order, the same for every transport.
pub fn prepare(
    state: &AppState,
    principal: Option<&Principal>,
    wire: WireRequest,
    transport: Transport,
) -> Result<Prepared, Refusal> {
    let config = &state.config;
    let guard_limits = &config.guard_limits;
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
        config.introspection,
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
