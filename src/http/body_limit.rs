//! Request bodies up to `MAX_BODY_BYTES`, refused in the route's own JSON.
//!
//! tower-http's limit answers a declared length over the limit itself, in
//! `text/plain` ("length limit exceeded"). So a declared `Content-Length`
//! over the limit is refused here first, before anything is read, by the
//! route's `refuse` (GraphQL's error shape on `/graphql`, the plain routes'
//! elsewhere); tower-http's layer, inside it, then only cuts off a body
//! without a length (chunked) at the limit as it streams, and the handler's
//! read of it fails and says so in the same words.

use crate::error::ErrorCode;
use axum::{
    Json, Router,
    extract::{Request, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use serde_json::json;
use tower_http::limit::RequestBodyLimitLayer;

/// Answers a request whose declared body is over the limit (the headers
/// for content negotiation, the limit in bytes).
pub type Refuse = fn(&HeaderMap, usize) -> Response;

#[derive(Clone, Copy)]
struct Limit {
    max: usize,
    refuse: Refuse,
}

/// `router`'s routes (those added so far) with bodies limited to `max`
/// bytes, a declared length over it answered by `refuse`.
pub fn limit<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    max: usize,
    refuse: Refuse,
) -> Router<S> {
    router
        .route_layer(RequestBodyLimitLayer::new(max))
        .route_layer(middleware::from_fn_with_state(
            Limit { max, refuse },
            refuse_declared,
        ))
}

async fn refuse_declared(State(limit): State<Limit>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit.max as u64) {
        return (limit.refuse)(request.headers(), limit.max);
    }
    next.run(request).await
}

/// The refusal of the routes outside GraphQL, in their shape
/// (`{"error", "message"}`).
pub fn plain(_headers: &HeaderMap, max: usize) -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        Json(json!({
            "error": ErrorCode::BadRequest,
            "message": too_large_message(max),
        })),
    )
        .into_response()
}

/// The plain routes' answer when their `Bytes` extractor could not read
/// the body: over the limit as it streamed, or broken off.
pub fn unread(rejection: &BytesRejection, max: usize) -> Response {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return plain(&HeaderMap::new(), max);
    }
    (
        StatusCode::BAD_REQUEST,
        Json(json!({
            "error": ErrorCode::BadRequest,
            "message": "the request body could not be read",
        })),
    )
        .into_response()
}

/// The words of every refusal of a body over the limit.
pub fn too_large_message(max: usize) -> String {
    format!("the request body is larger than this gateway accepts ({max} bytes)")
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, routing::post};
    use tower::ServiceExt;

    use super::*;

    async fn echo_length(body: Result<axum::body::Bytes, BytesRejection>) -> Response {
        match body {
            Ok(body) => body.len().to_string().into_response(),
            Err(rejection) => unread(&rejection, 10),
        }
    }

    async fn send(router: &Router, body: Body, length: Option<usize>) -> (StatusCode, String) {
        let mut request = Request::post("/").body(body).unwrap();
        if let Some(length) = length {
            request
                .headers_mut()
                .insert(header::CONTENT_LENGTH, length.into());
        }
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            assert_eq!(content_type.as_deref(), Some("application/json"));
        }
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_in_json() {
        let router = limit(Router::new().route("/", post(echo_length)), 10, plain);
        assert_eq!(
            send(&router, Body::from("12345"), Some(5)).await,
            (StatusCode::OK, "5".into())
        );
        let (status, body) = send(&router, Body::from("x".repeat(11)), Some(11)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "BAD_REQUEST");
        assert!(body["message"].as_str().unwrap().contains("10 bytes"));
    }

    #[tokio::test]
    async fn a_body_without_a_length_is_cut_off_at_the_limit() {
        let router = limit(Router::new().route("/", post(echo_length)), 10, plain);
        let chunks = |n: usize| {
            Body::from_stream(futures::stream::iter(
                (0..n).map(|_| Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"xx"))),
            ))
        };
        assert_eq!(
            send(&router, chunks(5), None).await,
            (StatusCode::OK, "10".into())
        );
        // The handler's extractor fails on the cut-off body, and says so.
        let (status, body) = send(&router, chunks(6), None).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(body.contains("10 bytes"), "{body}");
    }
}
