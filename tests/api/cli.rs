//! The binary as an operator meets it: configuration errors, the token
//! command, serving and shutting down on SIGTERM.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::json;

use crate::helpers::{Backend, TestApp, eventually};

pub(crate) fn gateway() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_music-gateway"));
    for var in [
        "DATABASE_URL",
        "LISTEN_ADDR",
        "DATA_DIR",
        "IDENTITY_MODE",
        "MAX_PAGE_SIZE",
        "DEFAULT_PAGE_SIZE",
        "SHUTDOWN_GRACE_SECONDS",
        "REQUEST_TIMEOUT_SECONDS",
        "TOKIO_WORKER_THREADS",
        "LOG_FORMAT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_SERVICE_NAME",
    ] {
        command.env_remove(var);
    }
    command
}

#[test]
fn a_bad_setting_stops_start_up_naming_it() {
    let dir = tempfile::TempDir::new().unwrap();
    let cases: [(&str, &str, &str); 5] = [
        ("MAX_PAGE_SIZE", "0", "MAX_PAGE_SIZE"),
        ("LISTEN_ADDR", "not-an-address", "LISTEN_ADDR"),
        ("DATABASE_URL", "mysql://db/music", "DATABASE_URL"),
        ("IDENTITY_MODE", "ldap", "IDENTITY_MODE"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT"),
    ];
    for (var, value, named) in cases {
        let output = gateway()
            .env("DATA_DIR", dir.path())
            .env(var, value)
            .arg("schema")
            .output()
            .unwrap();
        assert!(!output.status.success(), "{var}={value} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(named),
            "{var}={value}: stderr does not name it: {stderr}"
        );
        assert!(
            stderr.lines().count() <= 4,
            "{var}={value}: not one clear line: {stderr}"
        );
    }
}

#[test]
fn a_trusted_documents_manifest_that_cannot_be_read_stops_serving_naming_it() {
    // Read by the document stage as the gateway starts, not while parsing,
    // and still refused as a bad setting is: one line, exit status 2.
    let dir = tempfile::TempDir::new().unwrap();
    let output = gateway()
        .env("DATA_DIR", dir.path())
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("TRUSTED_DOCUMENTS", dir.path().join("missing.json"))
        .arg("serve")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let line = format!(
        "music-gateway: invalid setting TRUSTED_DOCUMENTS: cannot read {}",
        dir.path().join("missing.json").display()
    );
    assert!(stderr.starts_with(&line), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn the_schema_command_prints_the_checked_in_sdl() {
    let output = gateway().arg("schema").output().unwrap();
    assert!(output.status.success());
    let checked_in =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    assert_eq!(String::from_utf8(output.stdout).unwrap(), checked_in);
}

#[tokio::test]
async fn a_token_from_the_cli_is_accepted_by_the_gateway() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let output = gateway()
        .env("DATA_DIR", &app.state.config.data_dir)
        .args([
            "token",
            "--sub",
            "auth0|cli",
            "--scope",
            "write:app_metadata",
            "--email",
            "cli@example.com",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let (status, body) = app
        .post(Some(&token), "{ me { id email } }", json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"]["me"],
        json!({"id": "auth0|cli", "email": "cli@example.com"})
    );
    let (_, admin) = app
        .post(
            Some(&token),
            "mutation { setUserPlan(userId: \"auth0|cli\", plan: PREMIUM) { plan } }",
            json!({}),
        )
        .await;
    assert_eq!(admin["data"]["setUserPlan"]["plan"], "PREMIUM", "{admin}");
}

#[tokio::test]
async fn the_gateway_serves_demo_data_and_stops_on_sigterm() {
    let dir = tempfile::TempDir::new().unwrap();
    let demo = gateway()
        .env("DATA_DIR", dir.path())
        .arg("demo")
        .output()
        .unwrap();
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let token = String::from_utf8(demo.stdout).unwrap().trim().to_owned();
    assert!(dir.path().join("music.db").exists());

    let mut gateway = start_gateway(&[("DATA_DIR", dir.path().display().to_string())]);
    let url = gateway.url.clone();

    // The client stays alive, so its connection sits idle in its pool
    // across the SIGTERM, as a browser's or an app's would.
    let client = reqwest::Client::new();
    let body = post_with(
        &client,
        &url,
        &token,
        "{ me { id songs { totalCount } playlists { nodes { name plays } } } }",
    )
    .await;
    assert_eq!(body["data"]["me"]["id"], "demo|listener", "{body}");
    assert_eq!(body["data"]["me"]["songs"]["totalCount"], 8);
    assert_eq!(body["data"]["me"]["playlists"]["nodes"][0]["plays"], 12);

    let stopped_in = terminate(&mut gateway).await;
    // An idle keep-alive connection is closed at once; only a request in
    // flight may hold the shutdown, up to the grace period.
    let log = gateway.log();
    assert!(
        !log.contains("after the shutdown grace period"),
        "stopped in {stopped_in:?}, waiting for an idle connection:\n{log}"
    );
    drop(client);
}

#[tokio::test]
async fn a_request_left_hanging_holds_the_shutdown_only_for_the_grace_period() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut gateway = start_gateway(&[
        ("DATA_DIR", dir.path().display().to_string()),
        ("SHUTDOWN_GRACE_SECONDS", "1".to_owned()),
    ]);
    // A request whose body never arrives in full: in flight for good.
    let address = gateway
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/graphql")
        .to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut stream,
        b"POST /graphql HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"query\"",
    )
    .await
    .unwrap();
    // Kept: nothing the gateway shows says it has parsed these headers (a
    // connection still without a request is closed at once, not waited for).
    tokio::time::sleep(Duration::from_millis(200)).await;

    let stopped_in = terminate(&mut gateway).await;
    let log = gateway.log();
    assert!(
        log.contains("after the shutdown grace period"),
        "stopped in {stopped_in:?} without waiting out the grace period:\n{log}"
    );
    assert!(stopped_in >= Duration::from_secs(1), "{stopped_in:?}");
    drop(stream);
}

/// Sends SIGTERM and waits for a clean exit; answers how long it took.
pub(crate) async fn terminate(gateway: &mut Running) -> Duration {
    Command::new("kill")
        .args(["-TERM", &gateway.child.id().to_string()])
        .status()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = gateway.child.try_wait().unwrap() {
            assert!(
                status.success(),
                "exit status after SIGTERM: {status}\n{}",
                gateway.log()
            );
            let elapsed = started.elapsed();
            // The log is whole once the drain thread has read the last line;
            // the process is gone, so its pipe is at its end and this is quick.
            if let Some(drain) = gateway.drain.take() {
                drain.join().ok();
            }
            return elapsed;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the gateway did not stop on SIGTERM; its log:\n{}",
            gateway.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A gateway process started by a test, with what it has logged so far.
pub(crate) struct Running {
    pub(crate) child: std::process::Child,
    pub(crate) url: String,
    log: Arc<Mutex<Vec<String>>>,
    /// The thread that copies the process's stderr into `log`; it ends
    /// when the process has exited and its last line is in.
    drain: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// The log, for a failure message that shows what the process was doing.
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// `http://addr` of the process, without a path.
    pub(crate) fn base_url(&self) -> String {
        self.url.trim_end_matches("/graphql").to_owned()
    }
}

impl Drop for Running {
    /// A failed test leaves no gateway behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary with `envs`, its HTTP server traced so that a failed
/// shutdown explains itself, and waits until it listens.
pub(crate) fn start_gateway(envs: &[(&str, String)]) -> Running {
    let mut command = gateway();
    command
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "info,axum::serve=trace")
        .stderr(Stdio::piped());
    for (key, value) in envs {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = Arc::new(Mutex::new(Vec::new()));
    let url = loop {
        let line = lines.next().expect("the gateway exited early").unwrap();
        let url = line
            .strip_prefix("GraphiQL:")
            .map(|rest| rest.trim().to_owned())
            .or_else(|| listening_in_json(&line));
        log.lock().unwrap().push(line);
        if let Some(url) = url {
            break url;
        }
    };
    let sink = Arc::clone(&log);
    let drain = std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    Running {
        child,
        url,
        log,
        drain: Some(drain),
    }
}

/// The GraphQL URL from the JSON "listening" event (LOG_FORMAT=json has no
/// hints for a person).
fn listening_in_json(line: &str) -> Option<String> {
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    if event["fields"]["message"] != "music-gateway listening" {
        return None;
    }
    Some(format!(
        "http://{}/graphql",
        event["fields"]["addr"].as_str()?
    ))
}

pub(crate) async fn post(url: &str, token: &str, query: &str) -> serde_json::Value {
    post_with(&reqwest::Client::new(), url, token, query).await
}

async fn post_with(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    query: &str,
) -> serde_json::Value {
    client
        .post(url)
        .bearer_auth(token)
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The outbox across a real crash: the process is killed with SIGKILL while
/// Auth0 is down, and the change reaches Auth0 after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_change_survives_sigkill_and_restart() {
    let fake = crate::fake_auth0::FakeAuth0::start().await;
    fake.put_user(json!({"user_id": "auth0|alice", "app_metadata": {"plan": "free"}}));
    let dir = tempfile::TempDir::new().unwrap();
    let envs = [
        ("DATA_DIR", dir.path().display().to_string()),
        ("IDENTITY_MODE", "auth0".to_owned()),
        ("AUTH0_DOMAIN", fake.base_url()),
        ("AUTH0_AUDIENCE", fake.audience()),
        ("AUTH0_CLIENT_ID", fake.client_id()),
        ("AUTH0_CLIENT_SECRET", fake.client_secret()),
        ("AUTH0_TIMEOUT_MS", "500".to_owned()),
        // A claim the killed process held passes on quickly.
        ("OUTBOX_LEASE_SECONDS", "3".to_owned()),
    ];
    let mut first = start_gateway(&envs);
    let url = first.url.clone();
    let user = fake.mint("auth0|alice", json!({}));
    let me = post(&url, &user, "{ me { id plan } }").await;
    assert_eq!(
        me["data"]["me"],
        json!({"id": "auth0|alice", "plan": "FREE"}),
        "{me}"
    );

    fake.fail_next(1_000_000, 503);
    let failed_before = fake.calls().failed;
    let admin = fake.mint(
        "auth0|admin",
        json!({"permissions": ["write:app_metadata"]}),
    );
    let set = post(
        &url,
        &admin,
        "mutation { setUserPlan(userId: \"auth0|alice\", plan: FAMILY) { plan } }",
    )
    .await;
    assert_eq!(set["data"]["setUserPlan"]["plan"], "FAMILY", "{set}");
    eventually(
        Duration::from_secs(20),
        "the outbox to try Auth0",
        async || fake.calls().failed > failed_before,
    )
    .await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert_eq!(
        fake.user("auth0|alice").unwrap()["app_metadata"]["plan"],
        "free"
    );

    fake.fail_next(0, 503);
    let mut second = start_gateway(&envs);
    let started = std::time::Instant::now();
    while fake.user("auth0|alice").unwrap()["app_metadata"]["plan"] != "family" {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the change never reached Auth0; the restarted gateway's log:\n{}",
            second.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    second.child.kill().unwrap();
    second.child.wait().unwrap();
}

#[tokio::test]
async fn json_logs_carry_the_request_id_on_every_line_of_a_request() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut gateway = start_gateway(&[
        ("DATA_DIR", dir.path().display().to_string()),
        ("LOG_FORMAT", "json".to_owned()),
        // tower-http logs the start and end of each request at debug.
        ("RUST_LOG", "info,tower_http=debug".to_owned()),
    ]);
    let answer = reqwest::Client::new()
        .post(&gateway.url)
        .header("x-request-id", "json-log-probe")
        .json(&json!({"query": "{ me { id } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.headers()["x-request-id"], "json-log-probe");
    terminate(&mut gateway).await;

    let log = gateway.log();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON line: {line}\n{log}"))
        })
        .collect();
    let of_request: Vec<&serde_json::Value> = events
        .iter()
        .filter(|event| event["spans"][0]["name"] == "request")
        .collect();
    assert!(of_request.len() >= 2, "no request's lines:\n{log}");
    for event in of_request {
        assert_eq!(event["spans"][0]["request_id"], "json-log-probe", "{event}");
        assert_eq!(event["spans"][0]["path"], "/graphql", "{event}");
    }
}

/// A stand-in OpenTelemetry collector: what reached `POST /v1/traces`.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

async fn start_collector() -> (String, Received) {
    let received: Received = Arc::default();
    let sink = received.clone();
    let router = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                let content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                sink.lock().unwrap().push((content_type, body.to_vec()));
                axum::http::StatusCode::OK
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}"), received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_collector_when_an_endpoint_is_set() {
    let (endpoint, received) = start_collector().await;
    let dir = tempfile::TempDir::new().unwrap();
    let mut gateway = start_gateway(&[
        ("DATA_DIR", dir.path().display().to_string()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
    ]);
    // The caller's trace, which the gateway's spans continue.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let answer = reqwest::Client::new()
        .post(&gateway.url)
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({"query": "{ me { id } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    // The spans are batched; shutting down sends what is left.
    terminate(&mut gateway).await;

    let received = received.lock().unwrap();
    assert!(
        !received.is_empty(),
        "nothing reached the collector; the gateway's log:\n{}",
        gateway.log()
    );
    let contains = |needle: &[u8]| {
        received
            .iter()
            .any(|(_, body)| body.windows(needle.len()).any(|w| w == needle))
    };
    for (content_type, _) in received.iter() {
        assert_eq!(content_type, "application/x-protobuf");
    }
    assert!(contains(b"music-gateway"), "the service is named");
    assert!(contains(b"request"), "the request's span is there");
    assert!(contains(b"/graphql"), "with its path");
    let trace_id_bytes: Vec<u8> = (0..trace_id.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&trace_id[i..i + 2], 16).unwrap())
        .collect();
    assert!(contains(&trace_id_bytes), "in the caller's trace");
}
