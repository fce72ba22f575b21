//! A shutdown that ends: the real binary, SIGTERM, and requests that do not
//! finish. The bounds on time are generous: they say that it ended at all,
//! not how fast.

use std::{
    io::{BufRead, BufReader},
    os::fd::AsRawFd,
    process::{ChildStderr, Stdio},
    time::{Duration, Instant},
};

use music_gateway::shutdown::{EXIT_MARGIN, FORCED_EXIT_STATUS};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, TransactionTrait};
use serde_json::json;

use crate::{
    cli::{gateway, post, start_gateway, terminate},
    helpers::eventually,
};

/// The grace period the gateways here get.
const GRACE: Duration = Duration::from_secs(1);

/// How much later than grace + margin the exit may come and still count as
/// "in time": the test machine may be slow, never this slow.
const SLACK: Duration = Duration::from_secs(10);

fn sigterm(child: &std::process::Child) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill only sends a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
}

/// The `used` connections of the gateway's pool, from its /metrics.
async fn used_connections(base_url: &str) -> u64 {
    let Ok(response) = reqwest::get(format!("{base_url}/metrics")).await else {
        return 0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix("db_client_connection_count{state=\"used\"} "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_held_on_the_database_holds_sigterm_only_for_the_grace_period() {
    let dir = tempfile::TempDir::new().unwrap();
    let data_dir = dir.path().display().to_string();
    let minted = gateway()
        .env("DATA_DIR", &data_dir)
        .args(["token", "--sub", "auth0|held"])
        .output()
        .unwrap();
    assert!(minted.status.success(), "{minted:?}");
    let token = String::from_utf8(minted.stdout).unwrap().trim().to_owned();
    let mut running = start_gateway(&[
        ("DATA_DIR", data_dir.clone()),
        ("SHUTDOWN_GRACE_SECONDS", GRACE.as_secs().to_string()),
    ]);
    let url = running.url.clone();
    let created = post(
        &url,
        &token,
        "mutation { createPlaylist(input: {name: \"held\"}) { id } }",
    )
    .await;
    let playlist = created["data"]["createPlaylist"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned();

    // The test's uncommitted write holds SQLite's write lock: the play below
    // waits for it (up to SQLite's busy timeout of 5 s) with its connection.
    let mut options = ConnectOptions::new(format!("sqlite://{data_dir}/music.db?mode=rw"));
    options.max_connections(1).sqlx_logging(false);
    let db = Database::connect(options).await.unwrap();
    let lock = db.begin().await.unwrap();
    lock.execute_unprepared("UPDATE users SET updated_at = updated_at")
        .await
        .unwrap();
    let play = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .bearer_auth(token)
            .json(&json!({
                "query": "mutation($p: ID!) { recordPlay(playlistId: $p) { plays } }",
                "variables": {"p": playlist},
            }))
            .send()
            .await
    });
    let base_url = running.base_url();
    eventually(
        Duration::from_secs(10),
        "the play to wait on the lock",
        async || used_connections(&base_url).await == 1,
    )
    .await;

    let stopped_in = terminate(&mut running).await;
    let log = running.log();
    assert!(
        log.contains("after the shutdown grace period"),
        "stopped in {stopped_in:?} without waiting out the grace period:\n{log}"
    );
    assert!(
        stopped_in < GRACE + EXIT_MARGIN + SLACK,
        "stopped in {stopped_in:?}:\n{log}"
    );
    assert!(
        play.await.unwrap().is_err(),
        "the play was answered after all"
    );
    lock.rollback().await.unwrap();
}

/// A gateway whose stderr the test holds without reading, once it has
/// said where it listens.
struct Unread {
    child: std::process::Child,
    base_url: String,
    _stderr: BufReader<ChildStderr>,
}

impl Drop for Unread {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bytes waiting in the pipe behind `fd`.
fn unread_bytes(fd: i32) -> usize {
    let mut waiting: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer given.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut waiting) };
    assert_eq!(rc, 0, "FIONREAD on the gateway's stderr");
    usize::try_from(waiting).unwrap_or(0)
}

/// Once the pipe of its stderr is full, every thread of the gateway that
/// logs blocks in the write: the worker threads serving requests (each
/// logs them), the thread accepting connections, and the one that would
/// log the grace period's end. Nothing that runs on the async runtime can
/// then end the process; it must end all the same.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_process_even_when_every_thread_that_logs_is_stuck() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut child = gateway()
        .env("DATA_DIR", dir.path())
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("SHUTDOWN_GRACE_SECONDS", GRACE.as_secs().to_string())
        .env("LOG_FORMAT", "json")
        // Each request logs its start and end; each connection its accept.
        .env("RUST_LOG", "info,tower_http=debug,axum::serve=trace")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let fd = stderr.as_raw_fd();
    // The smallest pipe there is: a few requests fill it.
    // SAFETY: F_SETPIPE_SZ takes an int; on failure the pipe keeps its size.
    unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, 4096) };
    // SAFETY: F_GETPIPE_SZ takes no argument.
    let capacity = usize::try_from(unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) }).unwrap();
    let mut stderr = BufReader::new(stderr);
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "exited early");
        let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if event["fields"]["message"] == "music-gateway listening" {
            break event["fields"]["addr"].as_str().unwrap().to_owned();
        }
    };
    let mut running = Unread {
        child,
        base_url: format!("http://{addr}"),
        _stderr: stderr,
    };

    // Requests until the pipe is full (the longest line logged is well
    // under 1 KiB), then a few more, which find their threads blocked.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let started = Instant::now();
    while unread_bytes(fd) + 1024 < capacity {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the gateway's stderr never filled: {} of {capacity} bytes",
            unread_bytes(fd)
        );
        let _ = client
            .get(format!("{}/healthz", running.base_url))
            .send()
            .await;
    }
    let stuck: Vec<_> = (0..4)
        .map(|_| {
            let request = client.get(format!("{}/healthz", running.base_url));
            tokio::spawn(async move { request.send().await.is_ok() })
        })
        .collect();
    for request in stuck {
        let _ = request.await;
    }

    sigterm(&running.child);
    let signalled = Instant::now();
    let status = loop {
        if let Some(status) = running.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < GRACE + EXIT_MARGIN + SLACK,
            "still running {:?} after SIGTERM",
            signalled.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        status.code(),
        Some(FORCED_EXIT_STATUS),
        "{status}: the process was to be ended with its threads stuck"
    );
    assert!(signalled.elapsed() >= GRACE, "{:?}", signalled.elapsed());
}
