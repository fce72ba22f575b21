//! The webhooks Auth0 pushes profile changes to, in the auth0 identity mode:
//! `POST /auth0/events` (Event Streams) and `POST /auth0/log-stream` (Log
//! Streams), each behind its own bearer token and off without it.
//!
//! Auth0 retries a delivery on 5xx and time-outs only, so the answers are
//! chosen for that: 2xx once every change is committed, 4xx for a delivery
//! that would never succeed (unauthenticated, malformed), 503 when the
//! database failed and a retry may succeed.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::body_limit;
use crate::error::ErrorCode;
use crate::{
    AppState,
    config::Secret,
    profile::{UserChange, parse_event_stream, parse_log_stream},
};

/// The webhook routes whose token is configured.
pub fn routes(state: &AppState) -> Router<AppState> {
    let mut router = Router::new();
    if let Some(auth0) = &state.config.auth0 {
        if auth0.events_token.is_some() {
            router = router.route("/auth0/events", post(events));
        }
        if auth0.log_stream_token.is_some() {
            router = router.route("/auth0/log-stream", post(log_stream));
        }
    }
    router
}

/// Whether `headers` carry `Authorization: Bearer <expected>`. Compares
/// digests in constant time, so neither the token's bytes nor its length
/// show in the timing.
fn authorized(headers: &HeaderMap, expected: Option<&Secret>) -> bool {
    let Some(expected) = expected else {
        return false;
    };
    let Some(sent) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
    else {
        return false;
    };
    let sent = Sha256::digest(sent.as_bytes());
    let expected = Sha256::digest(expected.expose().as_bytes());
    sent.ct_eq(&expected).into()
}

fn answer(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    let mut response = (status, Json(json!({"error": code, "message": message}))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

#[tracing::instrument(skip_all)]
async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_limit::unread(&rejection, state.config.max_body_bytes),
    };
    let token = state
        .config
        .auth0
        .as_ref()
        .and_then(|a| a.events_token.as_ref());
    deliver(&state, &headers, token, &body, parse_event_stream).await
}

#[tracing::instrument(skip_all)]
async fn log_stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_limit::unread(&rejection, state.config.max_body_bytes),
    };
    let Some(auth0) = state.config.auth0.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let client_id = auth0.client_id.clone();
    deliver(
        &state,
        &headers,
        auth0.log_stream_token.as_ref(),
        &body,
        |body| parse_log_stream(body, &client_id),
    )
    .await
}

async fn deliver(
    state: &AppState,
    headers: &HeaderMap,
    token: Option<&Secret>,
    body: &[u8],
    parse: impl FnOnce(&Value) -> Result<Vec<UserChange>, String>,
) -> Response {
    if !authorized(headers, token) {
        tracing::warn!("refused a webhook delivery without the right bearer token");
        return answer(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            "this needs the webhook's bearer token",
        );
    }
    let Some(mirror) = state.services.profiles.auth0() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let changes = match serde_json::from_slice::<Value>(body)
        .map_err(|e| format!("the body is not JSON: {e}"))
        .and_then(|body| parse(&body))
    {
        Ok(changes) => changes,
        Err(message) => {
            tracing::warn!(reason = message, "refused a malformed webhook delivery");
            return answer(StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, &message);
        }
    };
    for change in &changes {
        if let Err(e) = mirror.apply(change).await {
            tracing::error!(user_id = change.user_id(), error = ?e, "cannot apply a change pushed by Auth0; it will be delivered again");
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::UpstreamUnavailable,
                "the change could not be stored; deliver it again later",
            );
        }
    }
    (StatusCode::OK, Json(json!({"applied": changes.len()}))).into_response()
}
