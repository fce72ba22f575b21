//! A GraphQL request answered with errors alone, before (or instead of)
//! execution: the one type every stage of `/graphql` refuses with, whatever
//! transport the request came by.

use async_graphql::ServerError;
use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

use super::{
    body_limit,
    media::{self, RequestError},
};
use crate::error::ErrorCode;

/// Apollo's value for answers a client must not cache: a persisted query
/// unknown now may be known a moment later.
const DONT_CACHE: &str = "private, no-cache, must-revalidate";

/// Gives `error` `code` unless it has one, and counts it by its code.
pub fn set_default_code(error: &mut ServerError, code: ErrorCode) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", code);
    }
    if let Some(async_graphql::Value::String(code)) = extensions.get("code") {
        crate::telemetry::record_graphql_error(code);
    }
}

/// A request answered with an error alone: refused before execution, or
/// stopped by its deadline (see `super::deadline`).
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    pub(in crate::http) extensions: Map<String, Value>,
    no_cache: bool,
    pub(in crate::http) allow_post: bool,
    /// A GraphQL request error: 200 instead of 400 under `application/json`.
    request_error: bool,
    /// async-graphql's own errors (a parse error, with its locations),
    /// answered in place of `message` when there are any.
    errors: Vec<ServerError>,
}

impl Refusal {
    pub(in crate::http) fn new(
        status: StatusCode,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extensions: Map::new(),
            no_cache: false,
            allow_post: false,
            request_error: false,
            errors: Vec::new(),
        }
    }

    /// A request error from async-graphql's parser.
    pub fn parse_failed(errors: Vec<ServerError>) -> Self {
        Self::request_errors(errors, ErrorCode::GraphqlParseFailed)
    }

    /// A request error in async-graphql's words (its parser, its
    /// validation): its errors, each with `code` unless it has one.
    pub fn request_errors(mut errors: Vec<ServerError>, code: ErrorCode) -> Self {
        for error in &mut errors {
            let extensions = error.extensions.get_or_insert_with(Default::default);
            if extensions.get("code").is_none() {
                extensions.set("code", code);
            }
        }
        let message = errors
            .first()
            .map(|e| e.message.clone())
            .unwrap_or_default();
        let mut refusal = Self::request_error(code, message);
        refusal.errors = errors;
        refusal
    }

    /// The stable code clients and metrics see.
    // The subscription transports read these two.
    #[allow(dead_code)]
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The refusal as GraphQL errors, for a transport that carries them in
    /// its own frames rather than as an HTTP answer.
    #[allow(dead_code)]
    pub fn into_errors(self) -> Vec<ServerError> {
        if !self.errors.is_empty() {
            return self.errors;
        }
        let mut error = ServerError::new(self.message, None);
        let mut extensions = async_graphql::ErrorExtensionValues::default();
        for (name, value) in self.extensions {
            if let Ok(value) = async_graphql::Value::from_json(value) {
                extensions.set(name, value);
            }
        }
        extensions.set("code", self.code);
        error.extensions = Some(extensions);
        vec![error]
    }

    /// A GraphQL request error (the operation cannot run as sent): HTTP 400
    /// under `application/graphql-response+json`, 200 under `application/json`.
    pub fn request_error(code: ErrorCode, message: impl Into<String>) -> Self {
        let mut refusal = Self::new(StatusCode::BAD_REQUEST, code, message);
        refusal.request_error = true;
        refusal
    }

    /// A body over `MAX_BODY_BYTES`.
    pub(in crate::http) fn too_large(limit: usize) -> Self {
        let mut refusal = Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BadRequest,
            body_limit::too_large_message(limit),
        );
        refusal.extensions.insert("limit".into(), limit.into());
        refusal
    }

    /// HTTP 400, `BAD_USER_INPUT`.
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, message)
    }

    pub(in crate::http) fn uncached(mut self) -> Self {
        self.no_cache = true;
        self
    }

    /// The request ran past `REQUEST_TIMEOUT_SECONDS` and its work was
    /// stopped. HTTP 504: the gateway did not get its own work done in time,
    /// most often waiting on the database or Auth0. Not 408, which blames
    /// the client's sending and which some clients retry on their own, a
    /// mutation included; not 503, which says the whole service is away and
    /// leads a load balancer to take the instance out.
    pub(super) fn request_timeout(limit: std::time::Duration) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::RequestTimeout,
            format!(
                "the request did not finish within the gateway's limit of {} s and was stopped; \
                 a mutation may or may not have taken effect, so read before retrying it",
                limit.as_secs_f64()
            ),
        )
        .uncached()
    }

    /// The request's work failed in a way nothing else answered (a panic):
    /// what went wrong is in the log, not in the answer.
    pub(super) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalServerError,
            "internal server error",
        )
        .uncached()
    }
}

impl IntoResponse for Refusal {
    fn into_response(mut self) -> Response {
        match self.code {
            // The protocol's normal first step.
            ErrorCode::PersistedQueryNotFound => tracing::debug!(
                code = self.code.as_str(),
                "GraphQL request answered before execution"
            ),
            // Logged where they happen, with what ran out or went wrong.
            ErrorCode::RequestTimeout | ErrorCode::InternalServerError => {}
            // A misbehaving client or a stale manifest, for an operator.
            _ => tracing::info!(
                code = self.code.as_str(),
                status = self.status.as_u16(),
                "GraphQL request refused before execution"
            ),
        }
        if self.errors.is_empty() {
            crate::telemetry::record_error_code(self.code);
        }
        for error in &mut self.errors {
            set_default_code(error, self.code);
        }
        let body = if self.errors.is_empty() {
            let mut extensions = self.extensions;
            extensions.insert("code".into(), self.code.into());
            json!({"errors": [{"message": self.message, "extensions": extensions}]}).to_string()
        } else {
            #[derive(serde::Serialize)]
            struct Errors<'a> {
                errors: &'a [ServerError],
            }
            serde_json::to_string(&Errors { errors: &self.errors }).unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot serialize GraphQL errors");
                r#"{"errors":[{"message":"internal server error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}"#.into()
            })
        };
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, media::GRAPHQL_RESPONSE_JSON)],
            body,
        )
            .into_response();
        if self.request_error {
            response.extensions_mut().insert(RequestError);
        }
        let headers = response.headers_mut();
        if self.no_cache {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(DONT_CACHE));
        }
        if self.allow_post {
            headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}
