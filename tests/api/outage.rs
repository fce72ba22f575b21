//! The database going away under load and coming back: the gateway says so
//! (503 from /readyz, UPSTREAM_UNAVAILABLE in GraphQL), never hangs, never
//! half-applies a write, and serves again without a restart.

use std::{
    path::PathBuf,
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::{Backend, TestApp, eventually};

/// A PostgreSQL server of the test's own, which it may stop and start: the
/// suite's shared server must stay up for the other tests.
pub(crate) struct OwnPostgres {
    bin: PathBuf,
    dir: TempDir,
    port: u16,
}

impl OwnPostgres {
    pub(crate) fn start() -> Self {
        let bin = PathBuf::from(std::env::var("PG_BIN").expect(
            "PG_BIN is not set: run the suite with scripts/test, which finds PostgreSQL's binaries",
        ));
        let dir = TempDir::new().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Self { bin, dir, port };
        if server.as_root() {
            // initdb refuses to run as root: the server runs as `postgres`,
            // which scripts/test creates.
            Command::new("chown")
                .args(["postgres"])
                .arg(server.dir.path())
                .status()
                .unwrap();
        }
        server.run(
            "initdb",
            &[
                "-D",
                &server.data(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
        );
        server.up();
        server
    }

    fn as_root(&self) -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let output = if self.as_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .output()
        } else {
            Command::new(&program).args(args).output()
        }
        .unwrap();
        assert!(
            output.status.success(),
            "{} {args:?}: {}",
            program.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub(crate) fn up(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
    }

    /// Stops the server at once, as a crash or a failover would.
    pub(crate) fn down(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = Command::new(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
        if self.as_root() {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"))
                .args(["-D", &self.data(), "-m", "immediate", "stop"])
                .output();
        }
    }
}

/// What the load saw, answer by answer.
#[derive(Default)]
struct Seen {
    ok: usize,
    codes: Vec<String>,
    other: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_going_away_under_load_is_reported_and_survived() {
    let server = tokio::task::spawn_blocking(OwnPostgres::start)
        .await
        .unwrap();
    let url = server.url();
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.database_url = url;
        config.db_timeout = Duration::from_secs(2);
    })
    .await;
    let user = "auth0|steady";
    app.add_song(user, "Still Here").await;
    let token = app.token(user);
    let client = reqwest::Client::builder()
        // The bound a request must never pass: the database timeout plus
        // plenty of slack for a loaded machine.
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (stop, next, seen) = (stop.clone(), next.clone(), seen.clone());
            let (client, token, graphql) = (client.clone(), token.clone(), app.url("/graphql"));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    // Half reads, half writes of two sources at once: the
                    // display name (user_metadata) and the favourite genre
                    // (the music database), always changed together.
                    let query = if w % 2 == 0 {
                        json!({"query": "{ me { displayName songs { nodes { name } } } }"})
                    } else {
                        json!({
                            "query": "mutation($n: String!, $g: String!) { updateMe(input: {displayName: $n, favGenre: $g}) { displayName } }",
                            "variables": {"n": format!("n{i}"), "g": format!("g{i}")},
                        })
                    };
                    let answer = match client
                        .post(&graphql)
                        .bearer_auth(&token)
                        .json(&query)
                        .send()
                        .await
                    {
                        Ok(response) => response
                            .json::<Value>()
                            .await
                            .map_err(|e| format!("not JSON: {e}")),
                        Err(e) => Err(format!("no answer: {e}")),
                    };
                    {
                        let mut seen = seen.lock().unwrap();
                        match answer {
                            Err(e) => seen.other.push(e),
                            Ok(body) => match body["errors"][0]["extensions"]["code"].as_str() {
                                None if body["data"].is_object() => seen.ok += 1,
                                Some(code) => seen.codes.push(code.to_owned()),
                                None => seen.other.push(body.to_string()),
                            },
                        }
                    }
                    // A steady load, not a flood: time between requests.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();

    eventually(
        Duration::from_secs(20),
        "the load to be served",
        async || seen.lock().unwrap().ok >= 8,
    )
    .await;
    let server = tokio::task::spawn_blocking(move || {
        server.down();
        server
    })
    .await
    .unwrap();
    let stopped = Instant::now();

    // Readiness turns 503 within a few seconds.
    loop {
        let ready = client.get(app.url("/readyz")).send().await.unwrap();
        if ready.status() == 503 {
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "/readyz still answers {} with the database down",
            ready.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every worker has had answers with the database down.
    let before_down = seen.lock().unwrap().codes.len();
    eventually(
        Duration::from_secs(60),
        "answers during the outage",
        async || seen.lock().unwrap().codes.len() >= before_down + 8,
    )
    .await;
    let during = {
        let seen = seen.lock().unwrap();
        (seen.codes.clone(), seen.other.clone())
    };
    assert!(
        during.0.iter().any(|c| c == "UPSTREAM_UNAVAILABLE"),
        "no request saw the outage: {during:?}"
    );
    assert!(
        during.0.iter().all(|c| c == "UPSTREAM_UNAVAILABLE"),
        "errors other than UPSTREAM_UNAVAILABLE: {:?}",
        during.0
    );
    assert!(
        during.1.is_empty(),
        "requests without a GraphQL answer: {:?}",
        during.1
    );

    // Back: every request is served again, without a restart.
    let server = tokio::task::spawn_blocking(move || {
        server.up();
        server
    })
    .await
    .unwrap();
    let back = Instant::now();
    loop {
        let ready = client.get(app.url("/readyz")).send().await.unwrap();
        let (_, body) = app
            .post(
                Some(&token),
                "{ me { songs { nodes { name } } } }",
                json!({}),
            )
            .await;
        if ready.status() == 200 && body["data"]["me"].is_object() {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "not serving again after the database came back: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let served_before = seen.lock().unwrap().ok;
    eventually(
        Duration::from_secs(20),
        "the load to be served again",
        async || seen.lock().unwrap().ok >= served_before + 8,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    {
        let seen = seen.lock().unwrap();
        assert!(seen.ok > served_before, "the load is not served again");
        assert!(
            seen.codes.iter().all(|c| c == "UPSTREAM_UNAVAILABLE"),
            "errors other than UPSTREAM_UNAVAILABLE: {:?}",
            seen.codes
        );
        assert!(seen.other.is_empty(), "{:?}", seen.other);
    }

    // No write was half applied: the name and the genre come from one update.
    let me = app
        .ok(
            user,
            "{ me { displayName favGenre songs { totalCount } } }",
            json!({}),
        )
        .await;
    let name = me["me"]["displayName"].as_str().unwrap();
    let genre = me["me"]["favGenre"].as_str().unwrap();
    assert_eq!(
        name.trim_start_matches('n'),
        genre.trim_start_matches('g'),
        "{me}"
    );
    assert_eq!(me["me"]["songs"]["totalCount"], 1);
    drop(server);
}
