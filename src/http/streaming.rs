//! Live operations over plain HTTP: a POST to `/graphql` whose `Accept`
//! asks for a stream gets one.
//!
//! - GraphQL over Server-Sent Events, graphql-sse's "distinct connections"
//!   mode: `Accept: text/event-stream`; one `next` event per answer, then
//!   `complete`. Errors found before execution are a `next` event too, as
//!   that protocol says (an EventSource gives up on a 4xx).
//! - Apollo's multipart subscriptions: `Accept: multipart/mixed;
//!   subscriptionSpec="1.0"`; answered
//!   `multipart/mixed;boundary="graphql";subscriptionSpec="1.0"`, each
//!   answer a part `{"payload": …}`, heartbeats `{}`. Each part is followed
//!   by its boundary at once: Apollo Client hands a part over only when the
//!   boundary after it arrives. A request refused before execution gets the
//!   plain JSON answer HTTP would give (these clients accept JSON too).
//!
//! Both authenticate as any POST does (a bad token: 401), run the pipeline
//! (`prepare`), ping with a comment or a heartbeat part every
//! `LIVE_KEEPALIVE_SECONDS`, and end when the token expires (without the
//! stream's closing, so the client reconnects with a fresh token) and when
//! the server shuts down.

use std::{convert::Infallible, time::Duration};

use async_graphql::parser::types::OperationType;
use axum::{
    body::{Body, Bytes},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::error::ErrorCode;
use tokio::sync::mpsc;

use super::{
    auth::{InvalidToken, MaybePrincipal},
    graphql::{Transport, WireRequest, prepare},
};
use crate::{
    AppState,
    auth::Principal,
    live::{LiveQuery, execute_once},
};

/// The multipart boundary; Apollo's clients read it from the content type.
const BOUNDARY: &str = "graphql";

/// Which stream a POST asks for, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Sse,
    Multipart,
}

impl Framing {
    /// The stream `headers` accept; `None`: a plain POST.
    pub fn of(headers: &HeaderMap) -> Option<Self> {
        let accept = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",")
            .to_ascii_lowercase();
        // Apollo's clients list application/json after the multipart type:
        // that they take it is no reason to answer in it.
        if accept.contains("multipart/mixed") && accept.contains("subscriptionspec") {
            Some(Self::Multipart)
        } else if accept.contains("text/event-stream") {
            Some(Self::Sse)
        } else {
            None
        }
    }

    fn transport(self) -> Transport {
        match self {
            Self::Sse => Transport::Sse,
            Self::Multipart => Transport::Multipart,
        }
    }

    fn metric_label(self) -> &'static str {
        match self {
            Self::Sse => "sse",
            Self::Multipart => "multipart",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Sse => "text/event-stream",
            Self::Multipart => "multipart/mixed;boundary=\"graphql\";subscriptionSpec=\"1.0\"",
        }
    }

    /// What the stream begins with.
    fn opening(self) -> Bytes {
        match self {
            Self::Sse => Bytes::from_static(b":\n\n"),
            Self::Multipart => Bytes::from(format!("\r\n--{BOUNDARY}")),
        }
    }

    fn answer(self, answer: &async_graphql::Response) -> Bytes {
        // Serialized as it is, never through `serde_json::Value`, whose map
        // sorts keys: the answer's keys stay in the document's order.
        #[derive(serde::Serialize)]
        struct Payload<'a> {
            payload: &'a async_graphql::Response,
        }
        match self {
            Self::Sse => event("next", &ordered_json(answer)),
            Self::Multipart => part(&ordered_json(&Payload { payload: answer })),
        }
    }

    /// A refusal found before execution, as the stream's own message.
    fn errors(self, errors: Vec<async_graphql::ServerError>) -> Bytes {
        match self {
            Self::Sse => event("next", &json!({"errors": errors}).to_string()),
            Self::Multipart => part(&json!({"payload": {"errors": errors}}).to_string()),
        }
    }

    fn heartbeat(self) -> Bytes {
        match self {
            Self::Sse => Bytes::from_static(b":\n\n"),
            Self::Multipart => part("{}"),
        }
    }

    /// The end of a stream that completed.
    fn closing(self) -> Bytes {
        match self {
            Self::Sse => event("complete", ""),
            Self::Multipart => Bytes::from_static(b"--\r\n"),
        }
    }
}

fn event(name: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// The answer to a live connection over `LIVE_MAX_CONNECTIONS`, for every
/// transport (a WebSocket is refused before its upgrade).
pub(super) fn too_many_connections(over: crate::live::OverLimit) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({"errors": [{
            "message": over.0,
            "extensions": {"code": ErrorCode::TooManyConnections.as_str()}
        }]})),
    )
        .into_response()
}

/// An error of `message` with `code`, as a live transport sends it.
pub(super) fn coded(message: String, code: ErrorCode) -> async_graphql::ServerError {
    let mut error = async_graphql::ServerError::new(message, None);
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code.as_str());
    error
}

/// `value` as JSON text, its maps in their own order.
pub(super) fn ordered_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot serialize a live answer");
        r#"{"errors":[{"message":"internal server error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}"#.into()
    })
}

/// A part and the boundary after it.
fn part(body: &str) -> Bytes {
    Bytes::from(format!(
        "\r\ncontent-type: application/json\r\n\r\n{body}\r\n--{BOUNDARY}"
    ))
}

/// A POST asking for `framing`.
pub async fn post(
    state: AppState,
    headers: HeaderMap,
    principal: Result<MaybePrincipal, InvalidToken>,
    body: Body,
    framing: Framing,
) -> Response {
    if let Err(refusal) = super::pipeline::csrf::check(state.config.csrf.as_ref(), &headers) {
        return refusal.into_response();
    }
    let principal = match principal {
        Ok(MaybePrincipal(principal)) => principal,
        Err(invalid) => return invalid.into_response(),
    };
    let source = super::pipeline::Source::Post {
        body,
        max_bytes: state.config.max_body_bytes,
    };
    let wire = super::pipeline::wire::read(source, &state.config.guard_limits).await;
    let prepared = wire.and_then(|wire: WireRequest| {
        prepare(&state, principal.as_ref(), wire, framing.transport())
    });
    let prepared = match (prepared, framing) {
        (Ok(prepared), _) => Ok(prepared),
        (Err(refusal), Framing::Multipart) => return refusal.into_response(),
        (Err(refusal), Framing::Sse) => Err(refusal.into_errors()),
    };
    let slot = match state.live.open_connection() {
        Ok(slot) => slot,
        Err(over) => return too_many_connections(over),
    };
    let (sender, receiver) = mpsc::channel::<Bytes>(1);
    tokio::spawn(async move {
        let _slot = slot;
        let label = framing.metric_label();
        let gauge = metrics::gauge!("graphql_live_connections", "transport" => label);
        gauge.increment(1.0);
        stream(&state, principal, prepared, framing, &sender).await;
        gauge.decrement(1.0);
    });
    let body = Body::from_stream(futures::stream::unfold(receiver, |mut receiver| async {
        let chunk = receiver.recv().await?;
        Some((Ok::<_, Infallible>(chunk), receiver))
    }));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(framing.content_type()),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies that buffer (nginx) would hold the answers back.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Writes the operation's answers to `sender` until it ends, the client
/// goes (a send fails), the token expires or the server shuts down.
async fn stream(
    state: &AppState,
    principal: Option<Principal>,
    prepared: Result<super::graphql::Prepared, Vec<async_graphql::ServerError>>,
    framing: Framing,
    sender: &mpsc::Sender<Bytes>,
) {
    let send = |bytes: Bytes| sender.send(bytes);
    if send(framing.opening()).await.is_err() {
        return;
    }
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(errors) => {
            let _ = send(framing.errors(errors)).await;
            let _ = send(framing.closing()).await;
            return;
        }
    };
    if prepared.kind != OperationType::Subscription {
        let chunk = match execute_once(state, principal, prepared.request).await {
            Ok(answer) => framing.answer(&answer),
            Err(errors) => framing.errors(errors),
        };
        if send(chunk).await.is_ok() {
            let _ = send(framing.closing()).await;
        }
        return;
    }
    let _user_slot = match &principal {
        Some(p) => match state.live.open_subscription(&p.user_id) {
            Ok(slot) => Some(slot),
            Err(over) => {
                let error = coded(over.0, ErrorCode::TooManySubscriptions);
                let _ = send(framing.errors(vec![error])).await;
                let _ = send(framing.closing()).await;
                return;
            }
        },
        None => None,
    };
    let expires_in = principal.as_ref().map(|p| {
        Duration::from_secs((p.expires_at - chrono::Utc::now().timestamp()).max(0) as u64)
    });
    let mut live = match LiveQuery::new(state, principal, prepared.request) {
        Ok(live) => live,
        Err(error) => {
            let _ = send(framing.errors(vec![error])).await;
            let _ = send(framing.closing()).await;
            return;
        }
    };
    let label = framing.metric_label();
    let gauge = metrics::gauge!("graphql_live_subscriptions", "transport" => label);
    gauge.increment(1.0);
    let expiry = tokio::time::sleep(expires_in.unwrap_or(Duration::from_secs(365 * 24 * 3600)));
    tokio::pin!(expiry);
    let closing = state.live.closing();
    tokio::pin!(closing);
    let mut keepalive = tokio::time::interval(state.live.settings.keepalive);
    keepalive.tick().await;
    let reason = 'stream: loop {
        // The same future across heartbeats: a re-read in flight is never
        // dropped (its wake would be lost with it).
        let next = live.next();
        tokio::pin!(next);
        let answer = loop {
            tokio::select! {
                answer = &mut next => break answer,
                _ = keepalive.tick() => {
                    if send(framing.heartbeat()).await.is_err() {
                        break 'stream "client";
                    }
                }
                () = &mut expiry => break 'stream "token_expired",
                () = &mut closing => break 'stream "shutdown",
            }
        };
        let chunk = match answer {
            None => {
                let _ = send(framing.closing()).await;
                break "completed";
            }
            Some(Ok(answer)) => framing.answer(&answer),
            Some(Err(errors)) => {
                if send(framing.errors(errors)).await.is_ok() {
                    let _ = send(framing.closing()).await;
                }
                break "refused";
            }
        };
        metrics::counter!("graphql_live_events_total", "transport" => label).increment(1);
        if send(chunk).await.is_err() {
            break "client";
        }
    };
    metrics::counter!("graphql_live_subscriptions_ended_total", "reason" => reason).increment(1);
    gauge.decrement(1.0);
}
