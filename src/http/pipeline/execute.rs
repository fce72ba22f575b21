//! The stages that answer a prepared query or mutation over HTTP, in order:
//! the response cache, the compiled `me` plan, async-graphql.

use std::sync::Arc;

use async_graphql_axum::GraphQLResponse;
use axum::{
    extract::FromRef,
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};

use super::Prepared;
use crate::{
    AppState,
    auth::Principal,
    error::ErrorCode,
    graphql::{self as gql, Answer, AppSchema, CompiledQueries, RequestContext, Services},
    http::{
        media::{self, MediaType},
        refusal::{Refusal, set_default_code},
        response_cache::{Lookup, Pending, ResponseCache},
    },
    telemetry::GraphqlOperation,
};

/// What the execution stages read. Built from [`AppState`]'s fields, as
/// the schema and the services are the other routes' too.
#[derive(Clone)]
pub struct ExecuteState {
    pub schema: AppSchema,
    pub services: Services,
    /// `None` when `RESPONSE_CACHE_MAX_BYTES` is 0.
    pub response_cache: Option<Arc<ResponseCache>>,
    /// `None` when `COMPILED_QUERIES` is off.
    pub compiled: Option<Arc<CompiledQueries>>,
}

impl FromRef<AppState> for ExecuteState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            schema: state.schema.clone(),
            services: state.services.clone(),
            response_cache: state.response_cache.clone(),
            compiled: state.compiled.clone(),
        }
    }
}

/// The stages, in order; each answers or hands the request on, and takes
/// only its part of the state.
pub async fn execute(
    state: &ExecuteState,
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
    let mut response = 'answered: {
        // Only now, past every refusal and with the variables set: they
        // are part of the cache key.
        let cache = state.response_cache.as_ref();
        let pending = match cached(cache, principal.as_ref(), &mut request, headers, media).await {
            Ok(response) => break 'answered response,
            Err(pending) => pending,
        };
        let plans = state.compiled.as_deref();
        let context = match compiled(plans, &state.services, principal.as_ref(), &mut request).await
        {
            Compiled::Answered(body) => {
                break 'answered match pending {
                    Some(pending) => pending.finish_bytes(body),
                    None => ([(header::CONTENT_TYPE, media::GRAPHQL_RESPONSE_JSON)], body)
                        .into_response(),
                };
            }
            Compiled::Fallback => RequestContext::new(principal),
            Compiled::Failed(error) => RequestContext::with_me_failure(principal, error),
        };
        run(&state.schema, request, context, pending).await
    };
    response
        .extensions_mut()
        .insert::<GraphqlOperation>(operation);
    response
}

/// The response cache: an answer still true for these data versions, or
/// what to keep the answer under once it is made.
async fn cached(
    cache: Option<&Arc<ResponseCache>>,
    principal: Option<&Principal>,
    request: &mut async_graphql::Request,
    headers: &HeaderMap,
    media: MediaType,
) -> Result<Response, Option<Pending>> {
    let Some(cache) = cache else {
        return Err(None);
    };
    match cache.lookup(principal, request, headers, media).await {
        Lookup::Answered(response) => Ok(response),
        Lookup::Miss(pending) => Err(Some(pending)),
        Lookup::Uncached => Err(None),
    }
}

enum Compiled {
    Answered(axum::body::Bytes),
    /// Not a `me` query the compiler takes.
    Fallback,
    /// The plan's `me` failed: async-graphql answers the rest of the
    /// request with that error in `me`'s place.
    Failed(crate::error::AppError),
}

/// A `me` query the compiler takes is answered from its plan; anything it
/// cannot answer (errors included) runs through async-graphql.
async fn compiled(
    compiled: Option<&CompiledQueries>,
    services: &Services,
    principal: Option<&Principal>,
    request: &mut async_graphql::Request,
) -> Compiled {
    let Some(compiled) = compiled else {
        return Compiled::Fallback;
    };
    let Some(plan) = compiled.plan(request) else {
        return Compiled::Fallback;
    };
    match compiled
        .answer(&plan, &request.variables, principal, services)
        .await
    {
        Answer::Body(body) => Compiled::Answered(axum::body::Bytes::from(body)),
        Answer::Fallback => Compiled::Fallback,
        Answer::Failed(error) => Compiled::Failed(error),
    }
}

/// async-graphql's executor, its answer put in the gateway's order and
/// shape.
async fn run(
    schema: &AppSchema,
    mut request: async_graphql::Request,
    context: RequestContext,
    pending: Option<Pending>,
) -> Response {
    // async-graphql orders keys as its resolvers finish and answers an
    // object whose fields are all skipped `null`: put both right (see
    // `graphql::Shape`).
    let shape = gql::ready_for_executor(&mut request);
    let mut response = schema.execute(request.data(context)).await;
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
        return Refusal::request_errors(errors, ErrorCode::GraphqlValidationFailed).into_response();
    }
    // Errors without a code are async-graphql's, about arguments: the
    // client's to fix.
    for error in &mut response.errors {
        set_default_code(error, ErrorCode::BadUserInput);
    }
    match pending {
        Some(pending) => pending.finish(response),
        None => GraphQLResponse::from(response).into_response(),
    }
}
