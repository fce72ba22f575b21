//! Every request's deadline, and a request's work stopped when its client
//! hangs up: a mutation held on a database lock that the test holds.
//!
//! The gateway gets a single database connection, so a request that reads
//! after the lock is gone waits for whatever the stopped request left on
//! that connection: had its work gone on, its commit would come first.

use std::time::Duration;

use music_gateway::telemetry;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction,
    TransactionTrait,
};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::{
    for_both_backends,
    helpers::{Backend, TestApp, eventually},
};

const USER: &str = "auth0|held";

const RECORD_PLAY: &str = "mutation($p: ID!) { recordPlay(playlistId: $p) { plays } }";

/// A gateway with one database connection, `USER` and a playlist of theirs.
async fn gateway(backend: Backend, request_timeout: Duration) -> (TestApp, String) {
    let app = TestApp::spawn_with(backend, |config| {
        config.request_timeout = request_timeout;
        config.db_max_connections = 1;
        config.response_cache_max_bytes = 0;
    })
    .await;
    let playlist = app.create_playlist(USER, "held", &[]).await;
    (app, playlist)
}

/// The test's own write to `USER`'s row, uncommitted: every write
/// transaction of the gateway for that user waits for it (the row lock on
/// PostgreSQL, the database's write lock on SQLite).
struct Lock {
    _db: DatabaseConnection,
    txn: DatabaseTransaction,
}

impl Lock {
    async fn take(app: &TestApp) -> Self {
        let mut options = ConnectOptions::new(app.database_url.clone());
        options.max_connections(1).sqlx_logging(false);
        let db = Database::connect(options).await.unwrap();
        let txn = db.begin().await.unwrap();
        txn.execute_unprepared(&format!(
            "UPDATE users SET updated_at = updated_at WHERE id = '{USER}'"
        ))
        .await
        .unwrap();
        Self { _db: db, txn }
    }

    async fn release(self) {
        self.txn.rollback().await.unwrap();
    }
}

/// The playlist's plays, read through the gateway.
async fn plays(app: &TestApp) -> i64 {
    let data = app
        .ok(USER, "{ me { playlists { nodes { plays } } } }", json!({}))
        .await;
    data["me"]["playlists"]["nodes"][0]["plays"]
        .as_i64()
        .unwrap_or_else(|| panic!("no plays in {data}"))
}

async fn a_request_past_its_deadline_is_answered_request_timeout_and_its_work_stopped(
    backend: Backend,
) {
    let (app, playlist) = gateway(backend, Duration::from_secs(1)).await;
    let lock = Lock::take(&app).await;

    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(app.token(USER))
        .header(
            "accept",
            "application/graphql-response+json, application/json;q=0.9",
        )
        .json(&json!({"query": RECORD_PLAY, "variables": {"p": playlist}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 504);
    // As the handler's own answers, it follows `Accept`.
    assert_eq!(
        response.headers()["content-type"],
        "application/graphql-response+json; charset=utf-8"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "REQUEST_TIMEOUT",
        "{body}"
    );
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("1 s"), "{message}");
    assert!(body.get("data").is_none(), "{body}");
    assert_eq!(app.state.deadline.timed_out(), 1);
    assert_eq!(app.state.deadline.cancelled(), 0);

    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gateway_http_requests_timed_out_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "{}{{code=\"REQUEST_TIMEOUT\"}}",
            telemetry::GRAPHQL_ERRORS
        )),
        "{metrics}"
    );

    lock.release().await;
    assert_eq!(plays(&app).await, 0, "the stopped play was counted");
    // The gateway works on as before.
    let data = app.ok(USER, RECORD_PLAY, json!({"p": playlist})).await;
    assert_eq!(data["recordPlay"]["plays"], 1);
}

async fn a_client_that_hangs_up_stops_its_requests_work(backend: Backend) {
    let (app, playlist) = gateway(backend, Duration::from_secs(3600)).await;
    let lock = Lock::take(&app).await;

    let body = json!({"query": RECORD_PLAY, "variables": {"p": playlist}}).to_string();
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "POST /graphql HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        app.token(USER),
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    eventually(
        Duration::from_secs(10),
        "the request to take the connection",
        async || telemetry::pool_stats(&app.state.db).is_some_and(|pool| pool.used == 1),
    )
    .await;

    drop(stream);
    eventually(
        Duration::from_secs(10),
        "the hang-up to stop the request",
        async || app.state.deadline.cancelled() == 1,
    )
    .await;
    assert_eq!(app.state.deadline.timed_out(), 0);

    lock.release().await;
    assert_eq!(plays(&app).await, 0, "the abandoned play was counted");
}

for_both_backends!(
    a_request_past_its_deadline_is_answered_request_timeout_and_its_work_stopped,
    a_client_that_hangs_up_stops_its_requests_work,
);
