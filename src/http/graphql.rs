//! `/graphql` over GET and POST: the handlers, which negotiate the media
//! type and hand the request to [`pipeline::http`]. The stages themselves,
//! and [`prepare`], the part every transport shares, are in
//! [`super::pipeline`].
//!
//! Every refusal has the shape of any other GraphQL error of the gateway:
//! `{"errors": [{"message", "extensions": {"code"}}]}`, in the media type
//! negotiated from `Accept` (see [`media`]). A GraphQL request error (a
//! document that does not parse or validate, no operation to run, variables
//! that do not coerce, a limit) has no `data` and is HTTP 400 under
//! `application/graphql-response+json`, 200 under `application/json`.

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
};

pub use super::pipeline::wire::is_navigation;
// Where the subscription transports (issue 17) take the shared stages from.
use super::{
    auth::{InvalidToken, MaybePrincipal},
    media::{self, MediaType},
    pipeline::{self, ExecuteState, PipelineState, Source},
};
#[allow(unused_imports)]
pub use super::{
    pipeline::{Prepared, Transport, WireRequest, prepare},
    refusal::Refusal,
};
use crate::error::ErrorCode;

/// `GET /graphql?query=…&variables=…&operationName=…&extensions=…`.
#[tracing::instrument(skip_all, fields(user_id))]
pub async fn get(
    pipeline: &PipelineState,
    execution: &ExecuteState,
    headers: HeaderMap,
    uri: Uri,
    principal: Result<MaybePrincipal, InvalidToken>,
) -> Response {
    let source = Source::Get(&uri);
    match media::negotiate(&headers) {
        Ok(media) => media
            .finish(pipeline::http(pipeline, execution, &headers, principal, source, media).await),
        Err(media::NotAcceptable) => not_acceptable(),
    }
}

/// `POST /graphql` with a JSON body.
#[tracing::instrument(skip_all, fields(user_id))]
pub async fn post(
    State(pipeline): State<PipelineState>,
    State(execution): State<ExecuteState>,
    headers: HeaderMap,
    principal: Result<MaybePrincipal, InvalidToken>,
    body: Body,
) -> Response {
    let source = Source::Post {
        body,
        max_bytes: pipeline.max_body_bytes,
    };
    match media::negotiate(&headers) {
        Ok(media) => media.finish(
            pipeline::http(&pipeline, &execution, &headers, principal, source, media).await,
        ),
        Err(media::NotAcceptable) => not_acceptable(),
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
        ErrorCode::BadRequest,
        "this endpoint answers in application/graphql-response+json or application/json, \
         and the request's Accept header allows neither",
    );
    MediaType::Json.finish(refusal.into_response())
}
