//! Live updates (subscriptions): graphql-ws's own npm client (pinned in
//! tests/live/package-lock.json) against the gateway, a raw WebSocket for
//! each close code, and two gateway processes over one PostgreSQL.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

use crate::{
    cli::{gateway, start_gateway},
    for_both_backends,
    helpers::{Backend, TestApp, fresh_database},
    on_both_databases,
};

/// How long any one expected event may take. Generous: it is a bound on a
/// hang, not a measure (SQLite is polled every LIVE_POLL_MS, 250 ms).
const PATIENCE: Duration = Duration::from_secs(20);

/// tests/live and its node_modules; a missing one fails the test, saying
/// how to get it.
fn live_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/live");
    assert!(
        dir.join("node_modules/graphql-ws").is_dir(),
        "{} has no node_modules/graphql-ws: run the suite with scripts/test, which installs \
         tests/live's npm packages (npm ci) when they are missing",
        dir.display()
    );
    dir
}

/// One operation run by graphql-ws's client in a node process; its events
/// as they come.
struct NodeClient {
    child: std::process::Child,
    events: mpsc::UnboundedReceiver<Value>,
}

impl NodeClient {
    fn start(ws_url: &str, token: &str, query: &str, variables: Value) -> Self {
        Self::start_with("ws-client.mjs", ws_url, token, query, variables)
    }

    /// `script` of tests/live (one client library each) against `url`.
    fn start_with(script: &str, url: &str, token: &str, query: &str, variables: Value) -> Self {
        let mut child = Command::new("node")
            .arg(script)
            .args([url, token, query, &variables.to_string()])
            .current_dir(live_dir())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node runs (install Node.js 20 or newer)");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, events) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let event = serde_json::from_str(&line).unwrap_or_else(
                    |e| json!({"event": "garbage", "line": line, "error": e.to_string()}),
                );
                if sender.send(event).is_err() {
                    break;
                }
            }
        });
        Self { child, events }
    }

    async fn next(&mut self) -> Value {
        tokio::time::timeout(PATIENCE, self.events.recv())
            .await
            .expect("the client saw no event in time")
            .expect("the client exited without saying why")
    }

    /// The next event, which must be a `next`: its payload.
    async fn next_payload(&mut self) -> Value {
        let event = self.next().await;
        assert_eq!(event["event"], "next", "{event}");
        event["payload"].clone()
    }
}

impl Drop for NodeClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ws_url(http: &str) -> String {
    http.replacen("http://", "ws://", 1)
}

const ME_SONGS: &str = "subscription { me { favGenre songs { nodes { name } } } }";

async fn a_subscription_to_me_sees_mutations_made_over_http(app: TestApp) {
    let token = app.token("auth0|live");
    let mut client = NodeClient::start(&ws_url(&app.url("/graphql")), &token, ME_SONGS, json!({}));
    let first = client.next_payload().await;
    assert_eq!(
        first,
        json!({"data": {"me": {"favGenre": null, "songs": {"nodes": []}}}})
    );
    // A change the selection does not read sends nothing: the next answer
    // is the one of the song added after it.
    app.ok(
        "auth0|live",
        "mutation { updateMe(input: {displayName: \"Ada\"}) { displayName } }",
        json!({}),
    )
    .await;
    // Its re-read is answered and skipped before the next change (SQLite's
    // poll would otherwise see both changes in one read).
    crate::helpers::eventually(PATIENCE, "the unchanged answer skipped", async || {
        metrics_text(&app)
            .await
            .contains("graphql_live_answers_skipped_total")
    })
    .await;
    app.add_song("auth0|live", "So What").await;
    let second = client.next_payload().await;
    assert_eq!(
        second,
        json!({"data": {"me": {"favGenre": null, "songs": {"nodes": [{"name": "So What"}]}}}})
    );
    // Another user's change is not this subscription's.
    app.add_song("auth0|other", "Elsewhere").await;
    app.ok(
        "auth0|live",
        "mutation { updateMe(input: {favGenre: \"jazz\"}) { favGenre } }",
        json!({}),
    )
    .await;
    let third = client.next_payload().await;
    assert_eq!(third["data"]["me"]["favGenre"], "jazz", "{third}");
    assert_eq!(third["data"]["me"]["songs"]["nodes"][0]["name"], "So What");
    let metrics = metrics_text(&app).await;
    for name in [
        "graphql_live_connections",
        "graphql_live_events_total",
        "graphql_live_answers_skipped_total",
        "graphql_live_wake_to_answer_seconds",
    ] {
        assert!(metrics.contains(name), "/metrics has no {name}");
    }
}

/// Roles are the server's (`app_metadata`): an admin's change reaches the
/// user's open subscription, and so does its withdrawal.
async fn a_role_granted_and_withdrawn_by_an_admin_reaches_the_subscriber(app: TestApp) {
    let user = "auth0|editor";
    app.ok(user, "{ me { id } }", json!({})).await;
    let mut client = NodeClient::start(
        &ws_url(&app.url("/graphql")),
        &app.token(user),
        "subscription { me { roles canEditFeaturedPlaylists } }",
        json!({}),
    );
    let first = client.next_payload().await;
    assert_eq!(first["data"]["me"]["roles"], json!([]), "{first}");
    let admin = app.token_with("auth0|admin", json!({"scope": "write:app_metadata"}));
    let set_roles = |roles: Value| {
        let (app, admin) = (&app, &admin);
        async move {
            app.ok_with(
                admin,
                "mutation($id: ID!, $roles: [String!]!) { setUserRoles(userId: $id, roles: $roles) { roles } }",
                json!({"id": user, "roles": roles}),
            )
            .await
        }
    };
    set_roles(json!(["playlist_editor"])).await;
    let granted = client.next_payload().await;
    assert_eq!(
        granted["data"]["me"],
        json!({"roles": ["playlist_editor"], "canEditFeaturedPlaylists": true}),
        "{granted}"
    );
    set_roles(json!([])).await;
    let withdrawn = client.next_payload().await;
    assert_eq!(
        withdrawn["data"]["me"],
        json!({"roles": [], "canEditFeaturedPlaylists": false}),
        "{withdrawn}"
    );
}

async fn metrics_text(app: &TestApp) -> String {
    app.client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn a_query_runs_over_the_socket(app: TestApp) {
    let token = app.token("auth0|socket");
    let mut client = NodeClient::start(
        &ws_url(&app.url("/graphql")),
        &token,
        "query Who { me { id displayName } }",
        json!({}),
    );
    assert_eq!(
        client.next_payload().await,
        json!({"data": {"me": {"id": "auth0|socket", "displayName": "user"}}})
    );
    assert_eq!(client.next().await["event"], "complete");
}

async fn a_deleted_playlist_sends_null_and_completes(app: TestApp) {
    let sub = "auth0|lists";
    let playlist = app.create_playlist(sub, "Road", &[]).await;
    let token = app.token(sub);
    let mut client = NodeClient::start(
        &ws_url(&app.url("/graphql")),
        &token,
        "subscription($id: ID!) { playlist(id: $id) { name } }",
        json!({"id": playlist}),
    );
    assert_eq!(
        client.next_payload().await,
        json!({"data": {"playlist": {"name": "Road"}}})
    );
    app.ok(
        sub,
        "mutation($id: ID!) { updatePlaylist(id: $id, input: {name: \"Trip\"}) { name } }",
        json!({"id": playlist}),
    )
    .await;
    assert_eq!(
        client.next_payload().await,
        json!({"data": {"playlist": {"name": "Trip"}}})
    );
    app.ok(
        sub,
        "mutation($id: ID!) { deletePlaylist(id: $id) }",
        json!({"id": playlist}),
    )
    .await;
    assert_eq!(
        client.next_payload().await,
        json!({"data": {"playlist": null}})
    );
    assert_eq!(client.next().await["event"], "complete");
}

async fn a_subscription_over_post_is_refused_with_a_clear_error(app: TestApp) {
    let token = app.token("auth0|post");
    let (status, body) = app.post(Some(&token), ME_SONGS, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_REQUEST",
        "{body}"
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("WebSocket"),
        "{body}"
    );
}

/// graphql-sse's client and Apollo Client's HttpLink (multipart) against
/// the same subscription: the current answer, then the one after a
/// mutation; and graphql-sse's client running a query.
async fn the_http_streams_serve_their_own_clients(app: TestApp) {
    let sub = "auth0|streams";
    let token = app.token(sub);
    let url = app.url("/graphql");
    let query = "subscription { me { songs { nodes { name } } } }";
    let mut sse = NodeClient::start_with("sse-client.mjs", &url, &token, query, json!({}));
    let mut apollo = NodeClient::start_with("apollo-client.mjs", &url, &token, query, json!({}));
    for client in [&mut sse, &mut apollo] {
        let first = client.next_payload().await;
        assert_eq!(first["data"]["me"]["songs"]["nodes"], json!([]), "{first}");
    }
    app.add_song(sub, "Flamenco Sketches").await;
    for client in [&mut sse, &mut apollo] {
        let second = client.next_payload().await;
        assert_eq!(
            second["data"]["me"]["songs"]["nodes"][0]["name"], "Flamenco Sketches",
            "{second}"
        );
    }
    let mut once =
        NodeClient::start_with("sse-client.mjs", &url, &token, "{ me { id } }", json!({}));
    assert_eq!(
        once.next_payload().await,
        json!({"data": {"me": {"id": sub}}})
    );
    assert_eq!(once.next().await["event"], "complete");
    // A document that does not validate: a `next` with the errors, then
    // `complete`, as graphql-sse says.
    let mut refused = NodeClient::start_with(
        "sse-client.mjs",
        &url,
        &token,
        "subscription { me { nope } }",
        json!({}),
    );
    let errors = refused.next_payload().await;
    assert_eq!(
        errors["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{errors}"
    );
}

/// Deleting the account ends its subscriptions at once: a last answer with
/// the error a query would get, then `complete`.
async fn a_deleted_account_ends_its_subscriptions(app: TestApp) {
    let sub = "auth0|leaving";
    let token = app.token(sub);
    let mut client = NodeClient::start(&ws_url(&app.url("/graphql")), &token, ME_SONGS, json!({}));
    client.next_payload().await;
    app.ok(sub, "mutation { deleteMe }", json!({})).await;
    let last = client.next_payload().await;
    assert_eq!(last["data"], Value::Null, "{last}");
    assert!(
        last["errors"][0]["extensions"]["code"].is_string(),
        "{last}"
    );
    assert_eq!(client.next().await["event"], "complete");
}

/// Counted on PostgreSQL, where nothing polls: SQLite's poll of the
/// versions would add its statements to the count.
mod shared_reread {
    use crate::helpers::{Backend, TestApp};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::subscriptions_of_one_user_share_one_reread(TestApp::spawn(Backend::Postgres).await)
            .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn featured_across_users() {
        super::featured_subscriptions_of_many_users_share_one_reread(
            TestApp::spawn(Backend::Postgres).await,
        )
        .await
    }
}

on_both_databases!(
    a_role_granted_and_withdrawn_by_an_admin_reaches_the_subscriber,
    a_deleted_account_ends_its_subscriptions,
    the_http_streams_serve_their_own_clients,
    a_subscription_to_me_sees_mutations_made_over_http,
    a_query_runs_over_the_socket,
    a_deleted_playlist_sends_null_and_completes,
    a_subscription_over_post_is_refused_with_a_clear_error,
);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw WebSocket to `app` speaking `protocol`, with `origin` if given.
async fn raw(app: &TestApp, protocol: Option<&str>, origin: Option<&str>) -> Socket {
    let mut request = ws_url(&app.url("/graphql")).into_client_request().unwrap();
    if let Some(protocol) = protocol {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(protocol).unwrap(),
        );
    }
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", HeaderValue::from_str(origin).unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .expect("connect")
        .0
}

async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .expect("send");
}

/// The next protocol message (pings of the keep-alive skipped).
async fn receive(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .expect("a message");
        match message {
            Message::Text(text) => {
                let value: Value = serde_json::from_str(&text).expect("JSON");
                if value["type"] != "ping" {
                    return value;
                }
            }
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// Waits for the server to close `socket`; answers the code and reason.
async fn closed(socket: &mut Socket) -> (u16, String) {
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("a close in time");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Some(Ok(Message::Close(None))) | None => panic!("closed without a code"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("socket error before a close frame: {e}"),
        }
    }
}

async fn acknowledged(app: &TestApp, token: &str) -> Socket {
    let mut socket = raw(app, Some("graphql-transport-ws"), None).await;
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}}),
    )
    .await;
    assert_eq!(
        receive(&mut socket).await,
        json!({"type": "connection_ack"})
    );
    socket
}

async fn each_close_code_of_graphql_transport_ws() {
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.live.init_timeout = Duration::from_millis(300);
    })
    .await;
    let token = app.token("auth0|codes");

    // No connection_init in time: 4408.
    let mut socket = raw(&app, Some("graphql-transport-ws"), None).await;
    assert_eq!(closed(&mut socket).await.0, 4408);

    // A second connection_init: 4429.
    let mut socket = acknowledged(&app, &token).await;
    send(&mut socket, json!({"type": "connection_init"})).await;
    assert_eq!(closed(&mut socket).await.0, 4429);

    // A subscribe before the acknowledgement: 4401.
    let mut socket = raw(&app, Some("graphql-transport-ws"), None).await;
    send(
        &mut socket,
        json!({"type": "subscribe", "id": "1", "payload": {"query": "{ me { id } }"}}),
    )
    .await;
    assert_eq!(closed(&mut socket).await.0, 4401);

    // A token refused, from the payload, or from the upgrade: 4403.
    let mut socket = raw(&app, Some("graphql-transport-ws"), None).await;
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": {"authorization": "Bearer not.a.token"}}),
    )
    .await;
    let (code, reason) = closed(&mut socket).await;
    assert_eq!(code, 4403, "{reason}");
    let mut request = ws_url(&app.url("/graphql")).into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    request.headers_mut().insert(
        "Authorization",
        HeaderValue::from_static("Bearer not.a.token"),
    );
    let mut socket = tokio_tungstenite::connect_async(request).await.unwrap().0;
    send(&mut socket, json!({"type": "connection_init"})).await;
    assert_eq!(closed(&mut socket).await.0, 4403);

    // A duplicate id while the first runs: 4409.
    let mut socket = acknowledged(&app, &token).await;
    let subscribe =
        json!({"type": "subscribe", "id": "a", "payload": {"query": "subscription { me { id } }"}});
    send(&mut socket, subscribe.clone()).await;
    let first = receive(&mut socket).await;
    assert_eq!(first["type"], "next", "{first}");
    assert_eq!(first["payload"]["data"]["me"]["id"], "auth0|codes");
    send(&mut socket, subscribe).await;
    assert_eq!(closed(&mut socket).await.0, 4409);

    // A message of no known type: 4400; and no subprotocol asked for
    // (graphql-transport-ws is the one to ask for): 4406.
    let mut socket = acknowledged(&app, &token).await;
    send(&mut socket, json!({"type": "hello"})).await;
    assert_eq!(closed(&mut socket).await.0, 4400);
    let mut socket = raw(&app, None, None).await;
    assert_eq!(closed(&mut socket).await.0, 4406);

    // ping is answered with pong; a refused document is an `error` message
    // with the code HTTP would give, and the connection stays open.
    let mut socket = acknowledged(&app, &token).await;
    send(&mut socket, json!({"type": "ping"})).await;
    assert_eq!(receive(&mut socket).await, json!({"type": "pong"}));
    send(
        &mut socket,
        json!({"type": "subscribe", "id": "x", "payload": {"query": "subscription { me { nope } }"}}),
    )
    .await;
    let refused = receive(&mut socket).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["id"], "x");
    assert_eq!(
        refused["payload"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{refused}"
    );
    send(
        &mut socket,
        json!({"type": "subscribe", "id": "x", "payload": {"query": "{ me { id } }"}}),
    )
    .await;
    assert_eq!(receive(&mut socket).await["type"], "next");
    assert_eq!(
        receive(&mut socket).await,
        json!({"type": "complete", "id": "x"})
    );
}

async fn an_upgrade_from_an_origin_outside_cors_is_refused() {
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.cors = music_gateway::config::CorsOrigins::List(vec!["https://app.example".into()]);
    })
    .await;
    let mut request = ws_url(&app.url("/graphql")).into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    request
        .headers_mut()
        .insert("Origin", HeaderValue::from_static("https://evil.example"));
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected a refused upgrade, got {other:?}"),
    }
    let mut socket = raw(
        &app,
        Some("graphql-transport-ws"),
        Some("https://app.example"),
    )
    .await;
    send(&mut socket, json!({"type": "connection_init"})).await;
    assert_eq!(
        receive(&mut socket).await,
        json!({"type": "connection_ack"})
    );
}

async fn an_expired_token_ends_the_connection_with_4403() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app
        .issuer
        .mint("auth0|brief", 2, Default::default())
        .unwrap();
    let mut socket = acknowledged(&app, &token).await;
    send(
        &mut socket,
        json!({"type": "subscribe", "id": "1", "payload": {"query": "subscription { me { id } }"}}),
    )
    .await;
    assert_eq!(receive(&mut socket).await["type"], "next");
    let (code, reason) = closed(&mut socket).await;
    assert_eq!(code, 4403, "{reason}");
    assert!(reason.contains("expired"), "{reason}");
}

async fn the_connection_limit_of_an_instance_is_refused_clearly() {
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.live.max_per_connection = 1;
    })
    .await;
    let token = app.token("auth0|many");
    let mut socket = acknowledged(&app, &token).await;
    let subscribe = |id: &str| json!({"type": "subscribe", "id": id, "payload": {"query": "subscription { me { id } }"}});
    send(&mut socket, subscribe("1")).await;
    assert_eq!(receive(&mut socket).await["type"], "next");
    send(&mut socket, subscribe("2")).await;
    let refused = receive(&mut socket).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(
        refused["payload"][0]["extensions"]["code"],
        "TOO_MANY_SUBSCRIPTIONS"
    );
    // Completing the first makes room.
    send(&mut socket, json!({"type": "complete", "id": "1"})).await;
    send(&mut socket, subscribe("3")).await;
    let third = receive(&mut socket).await;
    assert_eq!(third["type"], "next", "{third}");
    assert_eq!(third["id"], "3");
}

/// The legacy subprotocol (subscriptions-transport-ws's `graphql-ws`, the
/// default of Apollo Kotlin's legacy transport): its own message names,
/// a keep-alive right after the ack, refusals as `data` with errors and
/// `complete`, a refused token as `connection_error`.
async fn the_legacy_subprotocol_speaks_its_own_messages() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let sub = "auth0|legacy";
    let token = app.token(sub);
    let mut socket = raw(&app, Some("graphql-ws"), None).await;
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": {"authToken": "ignored", "Authorization": format!("Bearer {token}")}}),
    )
    .await;
    assert_eq!(
        receive(&mut socket).await,
        json!({"type": "connection_ack"})
    );
    assert_eq!(receive(&mut socket).await, json!({"type": "ka"}));
    send(
        &mut socket,
        json!({"type": "start", "id": "1", "payload": {"query": "subscription { me { songs { nodes { name } } } }"}}),
    )
    .await;
    let first = receive(&mut socket).await;
    assert_eq!(first["type"], "data", "{first}");
    assert_eq!(first["payload"]["data"]["me"]["songs"]["nodes"], json!([]));
    app.add_song(sub, "All Blues").await;
    let mut second = receive(&mut socket).await;
    while second["type"] == "ka" {
        second = receive(&mut socket).await;
    }
    assert_eq!(
        second["payload"]["data"]["me"]["songs"]["nodes"][0]["name"], "All Blues",
        "{second}"
    );
    send(&mut socket, json!({"type": "stop", "id": "1"})).await;
    send(
        &mut socket,
        json!({"type": "start", "id": "2", "payload": {"query": "subscription { me { nope } }"}}),
    )
    .await;
    let mut refused = receive(&mut socket).await;
    while refused["type"] == "ka" {
        refused = receive(&mut socket).await;
    }
    assert_eq!(refused["type"], "data", "{refused}");
    assert_eq!(refused["id"], "2");
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
    assert_eq!(
        receive(&mut socket).await,
        json!({"type": "complete", "id": "2"})
    );

    let mut socket = raw(&app, Some("graphql-ws"), None).await;
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": {"Authorization": "Bearer not.a.token"}}),
    )
    .await;
    assert_eq!(receive(&mut socket).await["type"], "connection_error");
    assert_eq!(closed(&mut socket).await.0, 4403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_subprotocol() {
    the_legacy_subprotocol_speaks_its_own_messages().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_codes() {
    each_close_code_of_graphql_transport_ws().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin() {
    an_upgrade_from_an_origin_outside_cors_is_refused().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry() {
    an_expired_token_ends_the_connection_with_4403().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_connection_limit() {
    the_connection_limit_of_an_instance_is_refused_clearly().await;
}

/// Two gateway processes over one database: a mutation through one reaches
/// a subscriber of the other (PostgreSQL: NOTIFY; SQLite is one process's
/// file, but two processes on it see each other's commits by its poll).
async fn a_mutation_on_one_instance_reaches_a_subscriber_on_another(backend: Backend) {
    let dir = TempDir::new().unwrap();
    let database = fresh_database(backend, dir.path()).await;
    let url = database.url.clone();
    let start = |name: &str| {
        let envs = vec![
            ("DATABASE_URL", url.clone()),
            ("DATA_DIR", dir.path().join(name).display().to_string()),
        ];
        tokio::task::spawn_blocking(move || start_gateway(&envs))
    };
    let (a, b) = (start("a").await.unwrap(), start("b").await.unwrap());
    let output = gateway()
        .env("DATABASE_URL", &url)
        .env("DATA_DIR", dir.path().join("a"))
        .args(["token", "--sub", "auth0|across"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();

    let mut client = NodeClient::start(&ws_url(&a.url), &token, ME_SONGS, json!({}));
    let first = client.next_payload().await;
    assert_eq!(first["data"]["me"]["songs"]["nodes"], json!([]), "{first}");
    let added = crate::cli::post(
        &b.url,
        &token,
        "mutation { addSong(input: {name: \"Blue in Green\", artist: \"Miles\", genre: \"jazz\"}) { id } }",
    )
    .await;
    assert!(added.get("errors").is_none(), "{added}");
    let second = client.next_payload().await;
    assert_eq!(
        second["data"]["me"]["songs"]["nodes"],
        json!([{"name": "Blue in Green"}]),
        "{second}\n{}",
        a.log()
    );
}

for_both_backends!(a_mutation_on_one_instance_reaches_a_subscriber_on_another);

/// PostgreSQL restarted under an open subscription: the listener connects
/// again and resyncs, and a change typed by hand in SQL right after the
/// restart (maybe before the listener is back) reaches the subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_open_subscriptions() {
    use sea_orm::ConnectionTrait;
    let server = tokio::task::spawn_blocking(crate::outage::OwnPostgres::start)
        .await
        .unwrap();
    let url = server.url();
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.database_url = url.clone();
        config.db_timeout = Duration::from_secs(2);
    })
    .await;
    let sub = "auth0|restart";
    app.ok(
        sub,
        "mutation { updateMe(input: {favGenre: \"jazz\"}) { favGenre } }",
        json!({}),
    )
    .await;
    let token = app.token(sub);
    let mut client = NodeClient::start(
        &ws_url(&app.url("/graphql")),
        &token,
        "subscription { me { favGenre } }",
        json!({}),
    );
    assert_eq!(
        client.next_payload().await["data"]["me"]["favGenre"],
        "jazz"
    );

    let server = tokio::task::spawn_blocking(move || {
        server.down();
        server.up();
        server
    })
    .await
    .unwrap();
    let db = sea_orm::Database::connect(&url).await.unwrap();
    db.execute_unprepared(&format!(
        "UPDATE user_data SET fav_genre = 'bebop' WHERE user_id = '{sub}'"
    ))
    .await
    .unwrap();
    let next = client.next_payload().await;
    assert_eq!(next["data"]["me"]["favGenre"], "bebop", "{next}");
    crate::helpers::eventually(PATIENCE, "the listener to resync", async || {
        app.state.live.feed.resyncs() >= 1
    })
    .await;
    drop(server);
}

/// Two gateway processes over one PostgreSQL: SIGTERM closes a socket with
/// 1001 (go elsewhere); SIGKILL drops it, and a client that reconnects to
/// the other instance gets the current state at once, including a change
/// made while it had no socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_stopped_or_killed_sends_its_clients_elsewhere() {
    let dir = TempDir::new().unwrap();
    let database = fresh_database(Backend::Postgres, dir.path()).await;
    let url = database.url.clone();
    let start = |name: &str| {
        let envs = vec![
            ("DATABASE_URL", url.clone()),
            ("DATA_DIR", dir.path().join(name).display().to_string()),
        ];
        tokio::task::spawn_blocking(move || start_gateway(&envs))
    };
    let (mut a, mut b, c) = (
        start("a").await.unwrap(),
        start("b").await.unwrap(),
        start("c").await.unwrap(),
    );
    let output = gateway()
        .env("DATABASE_URL", &url)
        .env("DATA_DIR", dir.path().join("a"))
        .args(["token", "--sub", "auth0|moving"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let query = "subscription { me { songs { nodes { name } } } }";

    let mut stopped = NodeClient::start(&ws_url(&a.url), &token, query, json!({}));
    stopped.next_payload().await;
    crate::cli::terminate(&mut a).await;
    let event = stopped.next().await;
    assert_eq!(event["event"], "closed", "{event}");
    assert_eq!(event["code"], 1001, "{event}");

    let urls = format!("{},{}", ws_url(&b.url), ws_url(&c.url));
    let mut moving = NodeClient::start(&urls, &token, query, json!({}));
    assert_eq!(
        moving.next_payload().await["data"]["me"]["songs"]["nodes"],
        json!([])
    );
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    let added = crate::cli::post(
        &c.url,
        &token,
        "mutation { addSong(input: {name: \"Freddie Freeloader\"}) { id } }",
    )
    .await;
    assert!(added.get("errors").is_none(), "{added}");
    let mut event = moving.next().await;
    while event["event"] != "next" {
        event = moving.next().await;
    }
    assert_eq!(
        event["payload"]["data"]["me"]["songs"]["nodes"],
        json!([{"name": "Freddie Freeloader"}]),
        "{event}"
    );
}

/// What one change costs the subscriptions of a user that asked the same,
/// in SQL statements: one re-read, whether one subscription asked or three.
async fn subscriptions_of_one_user_share_one_reread(app: TestApp) {
    async fn statements_per_change(app: &TestApp, sub: &str, subscriptions: usize) -> u64 {
        // The user's row exists before the first answer, which then writes
        // nothing (a write would wake the subscriptions once more).
        app.ok(sub, "{ me { id } }", json!({})).await;
        let mut socket = acknowledged(app, &app.token(sub)).await;
        for id in 0..subscriptions {
            send(
                &mut socket,
                json!({"type": "subscribe", "id": id.to_string(), "payload": {"query": ME_SONGS}}),
            )
            .await;
        }
        for _ in 0..subscriptions {
            assert_eq!(receive(&mut socket).await["type"], "next");
        }
        let before = app.statements();
        app.add_song(sub, "Blue in Green").await;
        for _ in 0..subscriptions {
            let answer = receive(&mut socket).await;
            assert_eq!(
                answer["payload"]["data"]["me"]["songs"]["nodes"][0]["name"], "Blue in Green",
                "{answer}"
            );
        }
        app.statements() - before
    }
    let one = statements_per_change(&app, "auth0|alone", 1).await;
    let three = statements_per_change(&app, "auth0|thrice", 3).await;
    assert_eq!(
        one, three,
        "statements for a change: 1 subscription {one}, 3 subscriptions {three}"
    );
}

/// A featured change costs the `featuredPlaylists` subscriptions of many
/// users one re-read, as it costs one user's: the answer is the same for
/// every signed-in user. A subscriber's own change still runs their own:
/// a deleted account gets its error, not the others' answer.
async fn featured_subscriptions_of_many_users_share_one_reread(app: TestApp) {
    const FEATURED: &str = "subscription { featuredPlaylists { nodes { name } } }";
    let editor = "auth0|featured-editor";
    let admin = app.token_with(
        "auth0|featured-admin",
        json!({"permissions": ["write:app_metadata"]}),
    );
    app.ok(editor, "{ me { id } }", json!({})).await;
    let (_, body) = app
        .post(
            Some(&admin),
            &format!("mutation {{ setUserRoles(userId: \"{editor}\", roles: [\"playlist_editor\"]) {{ roles }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["setUserRoles"]["roles"],
        json!(["playlist_editor"]),
        "{body}"
    );
    let created = app
        .ok(
            editor,
            "mutation { createPlaylist(input: {name: \"Take 0\"}) { id } }",
            json!({}),
        )
        .await;
    let playlist = created["createPlaylist"]["id"].clone();
    app.ok(
        editor,
        "mutation($p: ID!) { setPlaylistFeatured(id: $p, featured: true) { id } }",
        json!({"p": playlist}),
    )
    .await;

    let mut take = 0;
    let mut statements_per_change = async |users: &[&str]| -> (u64, Vec<Socket>) {
        let mut sockets = Vec::new();
        for user in users {
            // The row exists before the first answer, which then writes
            // nothing (a write would wake the subscription once more).
            app.ok(user, "{ me { id } }", json!({})).await;
            let mut socket = acknowledged(&app, &app.token(user)).await;
            send(
                &mut socket,
                json!({"type": "subscribe", "id": "f", "payload": {"query": FEATURED}}),
            )
            .await;
            assert_eq!(receive(&mut socket).await["type"], "next");
            sockets.push(socket);
        }
        take += 1;
        let name = format!("Take {take}");
        let before = app.statements();
        app.ok(
            editor,
            "mutation($p: ID!, $n: String!) { updatePlaylist(id: $p, input: {name: $n}) { id } }",
            json!({"p": playlist, "n": name}),
        )
        .await;
        for socket in &mut sockets {
            let answer = receive(socket).await;
            assert_eq!(
                answer["payload"]["data"]["featuredPlaylists"]["nodes"][0]["name"], name,
                "{answer}"
            );
        }
        let statements = app.statements() - before;
        (statements, sockets)
    };
    let (one, _alone) = statements_per_change(&["auth0|featured-1"]).await;
    let (three, mut sockets) =
        statements_per_change(&["auth0|featured-2", "auth0|featured-3", "auth0|featured-4"]).await;
    assert_eq!(
        one, three,
        "statements for a featured change: 1 user's subscription {one}, 3 users' {three}"
    );

    // The second of the three deletes their account: their subscription
    // runs on its own again and ends with its error; the others see nothing.
    app.ok("auth0|featured-3", "mutation { deleteMe }", json!({}))
        .await;
    let last = receive(&mut sockets[1]).await;
    assert_eq!(last["type"], "next", "{last}");
    assert!(
        last["payload"]["errors"][0]["extensions"]["code"].is_string(),
        "{last}"
    );
    assert_eq!(receive(&mut sockets[1]).await["type"], "complete");
}

/// Under trusted documents a free-text subscription is refused over the
/// socket with the code HTTP gives a free-text query, and a listed one
/// runs by its id.
async fn trusted_documents_apply_to_subscriptions() {
    let listed = "subscription Songs { me { songs { nodes { name } } } }";
    let id = format!("sha256:{}", music_gateway::graphql::sha256_hex(listed));
    let dir = tempfile::tempdir().expect("a directory for the manifest");
    let path = dir.path().join("persisted-documents.json");
    std::fs::write(&path, json!({ id.clone(): listed }).to_string()).expect("manifest");
    let settings = music_gateway::config::TrustedSettings {
        path,
        allow_admin: false,
        require_id: false,
    };
    // The app reads the manifest as it starts, before `dir` goes.
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.trusted_documents = Some(settings)).await;
    let token = app.token("auth0|trusted");
    let (_, http) = app.post(Some(&token), "{ me { id } }", json!({})).await;
    let http_code = http["errors"][0]["extensions"]["code"].clone();
    assert!(http_code.is_string(), "{http}");

    let mut socket = acknowledged(&app, &token).await;
    send(
        &mut socket,
        json!({"type": "subscribe", "id": "free", "payload": {"query": "subscription { me { id } }"}}),
    )
    .await;
    let refused = receive(&mut socket).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(
        refused["payload"][0]["extensions"]["code"], http_code,
        "{refused}"
    );
    send(
        &mut socket,
        json!({"type": "subscribe", "id": "listed", "payload": {"documentId": id}}),
    )
    .await;
    let answer = receive(&mut socket).await;
    assert_eq!(answer["type"], "next", "{answer}");
    assert_eq!(answer["payload"]["data"]["me"]["songs"]["nodes"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_documents() {
    trusted_documents_apply_to_subscriptions().await;
}

/// Every transport writes an answer's keys in the document's order, the
/// bytes an HTTP query of the same selection answers (not sorted, as a
/// JSON map would sort them).
async fn every_transport_keeps_the_documents_key_order() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.token("auth0|order");
    // Neither alphabetical nor its reverse.
    let selection = "me { roles id displayName favGenre }";
    let query = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&token)
        .json(&json!({ "query": format!("{{ {selection} }}") }))
        .send()
        .await
        .expect("query");
    let expected = query.text().await.expect("query answer");
    assert!(expected.contains(r#"{"roles":"#), "{expected}");
    let subscription = format!("subscription {{ {selection} }}");

    let mut socket = acknowledged(&app, &token).await;
    send(
        &mut socket,
        json!({"type": "subscribe", "id": "1", "payload": {"query": subscription}}),
    )
    .await;
    let text = loop {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .expect("a message");
        if let Message::Text(text) = message
            && !text.contains(r#""ping""#)
        {
            break text.to_string();
        }
    };
    assert_eq!(
        text,
        format!(r#"{{"type":"next","id":"1","payload":{expected}}}"#)
    );

    for (accept, opening, closing) in [
        (
            r#"multipart/mixed;subscriptionSpec="1.0", application/json"#,
            "\r\n\r\n",
            "\r\n--graphql",
        ),
        ("text/event-stream", "event: next\ndata: ", "\n\n"),
    ] {
        let mut response = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(&token)
            .header("Accept", accept)
            .json(&json!({ "query": subscription }))
            .send()
            .await
            .expect("stream");
        let mut seen = String::new();
        let first = loop {
            let chunk = tokio::time::timeout(PATIENCE, response.chunk())
                .await
                .expect("a chunk in time")
                .expect("the stream is open")
                .expect("a first answer before the stream ends");
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if let Some(start) = seen.find(&format!("{opening}{{\"")) {
                let body = &seen[start + opening.len()..];
                if let Some(end) = body.find(closing) {
                    break body[..end].to_string();
                }
            }
        };
        let wanted = if accept.starts_with("multipart") {
            format!(r#"{{"payload":{expected}}}"#)
        } else {
            expected.clone()
        };
        assert_eq!(first, wanted, "{accept}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_order() {
    every_transport_keeps_the_documents_key_order().await;
}
