//! GraphQL over WebSocket on `/graphql`: the `graphql-transport-ws`
//! subprotocol of graphql-ws (its PROTOCOL.md), with the close codes its
//! clients act on:
//!
//! - 4400 a message that is not one of the protocol's;
//! - 4401 `subscribe` before the connection was acknowledged;
//! - 4403 a token refused (from `connection_init`'s payload, or the
//!   upgrade's `Authorization` header), or expired while open;
//! - 4406 no subprotocol the server speaks;
//! - 4408 no `connection_init` within `LIVE_INIT_TIMEOUT_SECONDS`;
//! - 4409 a `subscribe` whose id is already running;
//! - 4429 a second `connection_init`;
//! - 1001 the server shutting down (clients reconnect elsewhere).
//!
//! Every operation goes through [`prepare`], as over HTTP: trusted
//! documents, APQ, the guard, the limits, the same codes; a refusal is an
//! `error` message. Queries and mutations answer one `next` and `complete`.

use std::{collections::HashMap, time::Duration};

use async_graphql::parser::types::OperationType;
use axum::{
    extract::{
        FromRequestParts, Request,
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    },
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tokio::{sync::mpsc, task::AbortHandle};

use super::{
    auth::MaybePrincipal,
    graphql::{Refusal, Transport, WireRequest, prepare},
    streaming::coded,
};
use crate::{
    AppState,
    auth::Principal,
    config::CorsOrigins,
    error::ErrorCode,
    live::{ConnectionSlot, LiveQuery, execute_once},
};

/// graphql-ws's subprotocol.
pub const TRANSPORT_WS: &str = "graphql-transport-ws";

/// subscriptions-transport-ws's subprotocol (confusingly named `graphql-ws`),
/// still the default of Apollo Kotlin's legacy transport.
pub const LEGACY: &str = "graphql-ws";

/// Which of the two a connection speaks. The legacy one names its messages
/// differently (`start`, `stop`, `data`, `ka`), reports a refused document
/// as `data` with the errors followed by `complete`, and a refused token
/// with `connection_error`; the close codes are the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    TransportWs,
    Legacy,
}

impl Protocol {
    fn label(self) -> &'static str {
        match self {
            Self::TransportWs => "ws",
            Self::Legacy => "ws_legacy",
        }
    }

    fn keepalive(self) -> Value {
        match self {
            Self::TransportWs => json!({"type": "ping"}),
            Self::Legacy => json!({"type": "ka"}),
        }
    }

    fn next(self, id: &str, payload: &async_graphql::Response) -> String {
        let kind = match self {
            Self::TransportWs => "next",
            Self::Legacy => "data",
        };
        // Not through `serde_json::Value`, whose map sorts keys: the
        // answer's keys stay in the document's order.
        #[derive(serde::Serialize)]
        struct Next<'a> {
            r#type: &'a str,
            id: &'a str,
            payload: &'a async_graphql::Response,
        }
        super::streaming::ordered_json(&Next {
            r#type: kind,
            id,
            payload,
        })
    }

    /// The messages that end operation `id` as refused.
    fn refused(self, id: &str, errors: &[async_graphql::ServerError]) -> Vec<Value> {
        match self {
            Self::TransportWs => vec![json!({"type": "error", "id": id, "payload": errors})],
            Self::Legacy => vec![
                json!({"type": "data", "id": id, "payload": {"data": null, "errors": errors}}),
                json!({"type": "complete", "id": id}),
            ],
        }
    }
}

/// Bytes each socket reads and writes in one go.
const SOCKET_BUFFER: usize = 8 * 1024;

/// Messages a subscription may have waiting for the socket: a slow client
/// holds its subscriptions back (they then skip to the newest answer)
/// rather than growing a queue.
const OUTBOX: usize = 16;

/// Whether `headers` ask for a WebSocket.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// `GET /graphql` with `Upgrade: websocket`.
pub async fn upgrade(state: AppState, request: Request) -> Response {
    let (mut parts, _) = request.into_parts();
    if let Err(origin) = allowed_origin(&state, &parts.headers) {
        let message = format!(
            "WebSocket connections from the origin {origin} are not allowed \
             (CORS_ALLOWED_ORIGINS)"
        );
        return (
            StatusCode::FORBIDDEN,
            axum::Json(
                json!({"errors": [{"message": message, "extensions": {"code": "FORBIDDEN"}}]}),
            ),
        )
            .into_response();
    }
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    // A bad token in the upgrade closes with 4403 once the client says
    // `connection_init`, as graphql-ws clients expect, unless the init
    // payload brings a good one.
    let principal = MaybePrincipal::from_request_parts(&mut parts, &state)
        .await
        .map(|p| p.0)
        .map_err(|e| e.0.to_string());
    let slot = match state.live.open_connection() {
        Ok(slot) => slot,
        Err(over) => return super::streaming::too_many_connections(over),
    };
    upgrade
        .protocols([TRANSPORT_WS, LEGACY])
        // tungstenite's defaults hold 128 KiB to read and 128 KiB to write
        // for every socket, most of a live connection's memory; the
        // protocol's messages are a few KiB and the buffers grow for a
        // larger one.
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
        .on_upgrade(move |socket| async move {
            Connection::new(state, principal, slot).run(socket).await;
        })
}

/// Browsers send `Origin` with every upgrade, and CORS does not apply to
/// WebSockets: without this check any site's page could open one to the
/// gateway. So an origin that is neither this host nor allowed by
/// `CORS_ALLOWED_ORIGINS` is refused (`Err`: the origin). Native clients
/// send none.
fn allowed_origin(state: &AppState, headers: &HeaderMap) -> Result<(), String> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let same_host = host.is_some_and(|host| {
        origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
    });
    let allowed = same_host
        || match &state.config.cors {
            CorsOrigins::Any => true,
            CorsOrigins::None => false,
            CorsOrigins::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        };
    if allowed {
        return Ok(());
    }
    Err(origin.to_owned())
}

/// What a subscription's task hands the connection.
enum Outgoing {
    Text(String),
    /// The subscription `id` (of generation `generation`) has ended.
    Finished {
        id: String,
        generation: u64,
    },
}

/// Why the connection closes, when the server closes it.
struct Close(u16, String, Option<Value>);

impl Close {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        Self(code, reason.into(), None)
    }

    /// A close after `message`.
    fn with_message(code: u16, reason: impl Into<String>, message: Value) -> Self {
        Self(code, reason.into(), Some(message))
    }
}

struct Connection {
    state: AppState,
    /// The upgrade's principal, or why its token was refused.
    upgrade_principal: Result<Option<Principal>, String>,
    principal: Option<Principal>,
    init_received: bool,
    acknowledged: bool,
    running: HashMap<String, (u64, AbortHandle)>,
    generation: u64,
    outbox: mpsc::Sender<Outgoing>,
    inbox: Option<mpsc::Receiver<Outgoing>>,
    protocol: Protocol,
    _slot: ConnectionSlot,
}

impl Connection {
    fn new(
        state: AppState,
        upgrade_principal: Result<Option<Principal>, String>,
        slot: ConnectionSlot,
    ) -> Self {
        let (outbox, inbox) = mpsc::channel(OUTBOX);
        Self {
            state,
            upgrade_principal,
            principal: None,
            init_received: false,
            acknowledged: false,
            running: HashMap::new(),
            generation: 0,
            outbox,
            inbox: Some(inbox),
            protocol: Protocol::TransportWs,
            _slot: slot,
        }
    }

    async fn run(mut self, mut socket: WebSocket) {
        self.protocol = match socket.protocol().and_then(|p| p.to_str().ok()) {
            Some(TRANSPORT_WS) => Protocol::TransportWs,
            Some(LEGACY) => Protocol::Legacy,
            _ => {
                let _ = socket
                    .send(Message::Close(Some(CloseFrame {
                        code: 4406,
                        reason: "Subprotocol not acceptable".into(),
                    })))
                    .await;
                return;
            }
        };
        let gauge =
            metrics::gauge!("graphql_live_connections", "transport" => self.protocol.label());
        gauge.increment(1.0);
        let close = self.serve(&mut socket).await;
        for (_, (_, task)) in self.running.drain() {
            task.abort();
        }
        if let Some(Close(code, reason, message)) = close {
            if let Some(message) = message {
                let _ = socket.send(text(message)).await;
            }
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code,
                    reason: truncate(reason).into(),
                })))
                .await;
        }
        gauge.decrement(1.0);
    }

    /// Serves until the client goes (`None`) or the server closes.
    async fn serve(&mut self, socket: &mut WebSocket) -> Option<Close> {
        let settings = self.state.live.settings;
        let mut inbox = self.inbox.take()?;
        let init_deadline = tokio::time::sleep(settings.init_timeout);
        tokio::pin!(init_deadline);
        // Set once the connection is acknowledged, when its token expires.
        let expiry = tokio::time::sleep(Duration::from_secs(365 * 24 * 3600));
        tokio::pin!(expiry);
        let mut keepalive = tokio::time::interval(settings.keepalive);
        keepalive.tick().await;
        let live = self.state.live.clone();
        let closing = live.closing();
        tokio::pin!(closing);
        loop {
            tokio::select! {
                () = &mut init_deadline, if !self.acknowledged => {
                    return Some(Close::new(4408, "Connection initialisation timeout"));
                }
                () = &mut expiry, if self.acknowledged => {
                    metrics::counter!("graphql_live_subscriptions_ended_total", "reason" => "token_expired")
                        .increment(self.running.len() as u64);
                    return Some(Close::new(4403, "Forbidden: the access token expired; reconnect with a fresh one"));
                }
                () = &mut closing => {
                    return Some(Close::new(1001, "the server is shutting down"));
                }
                _ = keepalive.tick() => {
                    if socket.send(text(self.protocol.keepalive())).await.is_err() {
                        return None;
                    }
                }
                Some(out) = inbox.recv() => match out {
                    Outgoing::Text(message) => {
                        if socket.send(Message::Text(message.into())).await.is_err() {
                            return None;
                        }
                    }
                    Outgoing::Finished { id, generation } => {
                        if self.running.get(&id).is_some_and(|(g, _)| *g == generation) {
                            self.running.remove(&id);
                        }
                    }
                },
                message = socket.recv() => {
                    let text = match message {
                        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Binary(_))) => {
                            return Some(Close::new(4400, "binary messages are not part of graphql-transport-ws"));
                        }
                        Some(Ok(_)) => continue,
                    };
                    match self.handle(text.as_str()).await {
                        Ok(replies) => {
                            for reply in replies {
                                if socket.send(text_of(reply)).await.is_err() {
                                    return None;
                                }
                            }
                            if let Some(p) = &self.principal
                                && self.acknowledged
                            {
                                let left = p.expires_at - chrono::Utc::now().timestamp();
                                expiry.as_mut().reset(
                                    tokio::time::Instant::now()
                                        + Duration::from_secs(left.max(0) as u64),
                                );
                            }
                        }
                        Err(close) => return Some(close),
                    }
                }
            }
        }
    }

    /// One message from the client: the replies to send, or why to close.
    async fn handle(&mut self, message: &str) -> Result<Vec<Value>, Close> {
        let Ok(Value::Object(message)) = serde_json::from_str::<Value>(message) else {
            return Err(Close::new(
                4400,
                "Invalid message received: not a JSON object",
            ));
        };
        let kind = message.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "connection_init" => {
                if self.init_received {
                    return Err(Close::new(4429, "Too many initialisation requests"));
                }
                self.init_received = true;
                let principal = match init_token(message.get("payload")) {
                    Some(token) => self
                        .state
                        .verifier
                        .verify(token)
                        .await
                        .map(Some)
                        .map_err(|e| e.to_string()),
                    None => self.upgrade_principal.clone(),
                };
                match principal {
                    Ok(principal) => {
                        self.principal = principal;
                        self.acknowledged = true;
                        let mut replies = vec![json!({"type": "connection_ack"})];
                        if self.protocol == Protocol::Legacy {
                            // Its clients time a connection out without one.
                            replies.push(self.protocol.keepalive());
                        }
                        Ok(replies)
                    }
                    Err(why) => {
                        tracing::info!(reason = %why, "refused a WebSocket's access token");
                        let reason = format!("Forbidden: invalid access token: {why}");
                        if self.protocol == Protocol::Legacy {
                            return Err(Close::with_message(
                                4403,
                                reason.clone(),
                                json!({"type": "connection_error", "payload": {"message": reason}}),
                            ));
                        }
                        Err(Close::new(4403, reason))
                    }
                }
            }
            "connection_terminate" if self.protocol == Protocol::Legacy => {
                Err(Close::new(1000, "Normal Closure"))
            }
            "ping" if self.protocol == Protocol::TransportWs => Ok(vec![json!({"type": "pong"})]),
            "pong" if self.protocol == Protocol::TransportWs => Ok(vec![]),
            kind @ ("subscribe" | "start")
                if (kind == "subscribe") == (self.protocol == Protocol::TransportWs) =>
            {
                if !self.acknowledged {
                    return Err(Close::new(4401, "Unauthorized"));
                }
                let (Some(Value::String(id)), Some(payload @ Value::Object(_))) =
                    (message.get("id"), message.get("payload"))
                else {
                    return Err(Close::new(
                        4400,
                        "Invalid message received: subscribe needs a string id and an object payload",
                    ));
                };
                if self.protocol == Protocol::Legacy
                    && let Some((_, task)) = self.running.remove(id)
                {
                    // subscriptions-transport-ws replaces an operation
                    // started again under its id.
                    task.abort();
                }
                if self.running.contains_key(id) {
                    return Err(Close::new(
                        4409,
                        format!("Subscriber for {id} already exists"),
                    ));
                }
                let Ok(wire) = serde_json::from_value::<WireRequest>(payload.clone()) else {
                    return Err(Close::new(
                        4400,
                        "Invalid message received: the payload is not a GraphQL request",
                    ));
                };
                Ok(self.subscribe(id.clone(), wire))
            }
            kind @ ("complete" | "stop")
                if (kind == "complete") == (self.protocol == Protocol::TransportWs) =>
            {
                if let Some(Value::String(id)) = message.get("id")
                    && let Some((_, task)) = self.running.remove(id)
                {
                    task.abort();
                    metrics::counter!("graphql_live_subscriptions_ended_total", "reason" => "client")
                        .increment(1);
                }
                Ok(vec![])
            }
            other => Err(Close::new(
                4400,
                format!(
                    "Invalid message received: unknown type {:?}",
                    truncate(other.to_owned())
                ),
            )),
        }
    }

    /// Starts operation `id`; the messages to send at once if it is
    /// refused.
    fn subscribe(&mut self, id: String, wire: WireRequest) -> Vec<Value> {
        let protocol = self.protocol;
        let error = |errors: Vec<async_graphql::ServerError>| protocol.refused(&id, &errors);
        let limit = self.state.live.settings.max_per_connection;
        if self.running.len() >= limit {
            return error(vec![coded(
                format!(
                    "this connection has {limit} operations running, its limit \
                     (LIVE_MAX_SUBSCRIPTIONS_PER_CONNECTION): complete one first"
                ),
                ErrorCode::TooManySubscriptions,
            )]);
        }
        let prepared = match prepare(
            &self.state,
            self.principal.as_ref(),
            wire,
            Transport::WebSocket,
        ) {
            Ok(prepared) => prepared,
            Err(refusal) => return error(Refusal::into_errors(refusal)),
        };
        let state = self.state.clone();
        let principal = self.principal.clone();
        let outbox = self.outbox.clone();
        self.generation += 1;
        let generation = self.generation;
        let task_id = id.clone();
        let next = move |payload: async_graphql::Response| {
            Outgoing::Text(protocol.next(&task_id, &payload))
        };
        let finished = {
            let id = id.clone();
            move || {
                [
                    Outgoing::Text(json!({"type": "complete", "id": id}).to_string()),
                    Outgoing::Finished { id, generation },
                ]
            }
        };
        let task = if prepared.kind == OperationType::Subscription {
            let slot = match &principal {
                Some(p) => match state.live.open_subscription(&p.user_id) {
                    Ok(slot) => Some(slot),
                    Err(over) => {
                        return error(vec![coded(over.0, ErrorCode::TooManySubscriptions)]);
                    }
                },
                None => None,
            };
            let mut live = match LiveQuery::new(&state, principal, prepared.request) {
                Ok(live) => live,
                Err(e) => return error(vec![e]),
            };
            tokio::spawn(async move {
                let _slot = slot;
                let gauge =
                    metrics::gauge!("graphql_live_subscriptions", "transport" => protocol.label());
                gauge.increment(1.0);
                let mut refused = None;
                while let Some(answer) = live.next().await {
                    let answer = match answer {
                        Ok(answer) => answer,
                        Err(errors) => {
                            refused = Some(errors);
                            break;
                        }
                    };
                    metrics::counter!("graphql_live_events_total", "transport" => protocol.label())
                        .increment(1);
                    if outbox.send(next(answer)).await.is_err() {
                        break;
                    }
                }
                gauge.decrement(1.0);
                end(&outbox, protocol, refused, finished()).await;
            })
        } else {
            tokio::spawn(async move {
                let refused = match execute_once(&state, principal, prepared.request).await {
                    Ok(answer) => {
                        let _ = outbox.send(next(answer)).await;
                        None
                    }
                    Err(errors) => Some(errors),
                };
                end(&outbox, protocol, refused, finished()).await;
            })
        };
        self.running.insert(id, (generation, task.abort_handle()));
        vec![]
    }
}

/// Ends an operation: with `complete`, or with `error` (which ends it
/// too, per the protocol) when it was refused.
async fn end(
    outbox: &mpsc::Sender<Outgoing>,
    protocol: Protocol,
    refused: Option<Vec<async_graphql::ServerError>>,
    [complete, finished]: [Outgoing; 2],
) {
    let messages = match (refused, &finished) {
        (Some(errors), Outgoing::Finished { id, .. }) => protocol
            .refused(id, &errors)
            .into_iter()
            .map(|m| Outgoing::Text(m.to_string()))
            .collect(),
        _ => vec![complete],
    };
    for message in messages {
        let _ = outbox.send(message).await;
    }
    let _ = outbox.send(finished).await;
}

/// The token of a `connection_init` payload: clients put it under
/// `Authorization`, `authorization` or `headers.Authorization`, with or
/// without the `Bearer` scheme.
fn init_token(payload: Option<&Value>) -> Option<&str> {
    let payload = payload?;
    let headers = payload.get("headers");
    let value = ["Authorization", "authorization"]
        .into_iter()
        .find_map(|k| payload.get(k).or_else(|| headers.and_then(|h| h.get(k))))?
        .as_str()?
        .trim();
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        // The scheme with nothing after it: no token, as an empty value.
        None if value.eq_ignore_ascii_case("bearer") => "",
        _ => value,
    };
    (!token.is_empty()).then_some(token)
}

fn text(value: Value) -> Message {
    Message::Text(value.to_string().into())
}

fn text_of(value: Value) -> Message {
    text(value)
}

/// A close frame's reason holds at most 123 bytes.
fn truncate(mut reason: String) -> String {
    if reason.len() > 123 {
        let mut end = 120;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push_str("...");
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_found_where_clients_put_it() {
        for payload in [
            json!({"Authorization": "Bearer abc"}),
            json!({"authorization": "bearer abc"}),
            json!({"headers": {"Authorization": "Bearer abc"}}),
            json!({"authorization": "abc"}),
        ] {
            assert_eq!(init_token(Some(&payload)), Some("abc"), "{payload}");
        }
        assert_eq!(init_token(Some(&json!({}))), None);
        assert_eq!(init_token(Some(&json!({"Authorization": "Bearer "}))), None);
        assert_eq!(init_token(None), None);
    }

    #[test]
    fn a_long_reason_is_cut_to_what_a_close_frame_holds() {
        let reason = truncate("é".repeat(200));
        assert!(reason.len() <= 123, "{}", reason.len());
        assert_eq!(truncate("short".into()), "short");
    }
}
