//! Schema-driven fuzzing of the real binary: tests/fuzz/fuzz.py (Hypothesis
//! and hypothesis-graphql, pinned in tests/fuzz/requirements.txt) draws
//! requests from schema.graphql, valid and hostile, and sends them to a
//! gateway process, first with a user's and an admin's tokens (on accounts
//! it fills with songs and playlists through mutations), then without a
//! token. No answer may be a 5xx or carry `INTERNAL_SERVER_ERROR`, the
//! gateway may neither panic nor log an error, and it must still answer
//! afterwards.
//!
//! CI runs a bounded, seeded batch. `MG_FUZZ_SECONDS` runs each of the two
//! for that long instead, `MG_FUZZ_EXAMPLES` sets the batch,
//! `MG_FUZZ_SEED` the seed (a long run draws one and prints it) and
//! `MG_FUZZ_CONCURRENCY` the copies of each request with a token, e.g.
//! `MG_FUZZ_SECONDS=600 cargo test --test api fuzz::schema_fuzzing_breaks_nothing::sqlite -- --nocapture`.

use std::{
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Command, Stdio},
};

use serde_json::{Value, json};

use crate::{
    cli::{Running, gateway, start_gateway},
    for_both_backends,
    helpers::{Backend, fresh_database},
};

/// Requests a run sends with tokens unless `MG_FUZZ_EXAMPLES` says otherwise.
const CI_EXAMPLES: u64 = 500;

/// The anonymous run's share: fewer paths lie behind no token.
const CI_ANONYMOUS_EXAMPLES: u64 = 200;

/// CI's seed: every CI run sends the same requests.
const CI_SEED: u64 = 20_261_206;

/// The least share of the requests with a token whose answer holds some
/// data: a fuzzer whose every request bounced off a refusal (a broken
/// token, a stale schema) would prove nothing. Measured at about 0.2, in
/// CI's run and in long ones alike; most requests are meant to be refused.
const DATA_FLOOR: f64 = 0.1;

/// The virtualenv's interpreter; a missing one fails the test, saying how
/// to get it.
fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run the suite with scripts/test, which installs tests/fuzz's \
         Python packages (tests/fuzz/requirements.txt) into that virtualenv",
        python.display()
    );
    python
}

/// A word for a POSIX shell (fuzz.py splits its mint command like one).
fn quoted(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// How much each run sends: `--examples N` or `--seconds S`, and the seed.
fn budget(ci_examples: u64) -> (Vec<String>, u64) {
    let var = |name: &str| {
        std::env::var(name).ok().map(|v| {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("{name}={v} is not a whole number"))
        })
    };
    let seconds = var("MG_FUZZ_SECONDS");
    let seed = var("MG_FUZZ_SEED").unwrap_or_else(|| match seconds {
        Some(_) => rand::random::<u32>().into(),
        None => CI_SEED,
    });
    let amount = match (seconds, var("MG_FUZZ_EXAMPLES")) {
        (Some(s), _) => vec!["--seconds".into(), s.to_string()],
        (None, Some(n)) => vec!["--examples".into(), n.to_string()],
        (None, None) => vec!["--examples".into(), ci_examples.to_string()],
    };
    (amount, seed)
}

/// Runs fuzz.py with `args` against `url`; answers its summary. Its
/// progress goes to the test's stderr as it comes, with the gateway's RSS
/// beside it, so that a long run shows whether memory levels off.
async fn fuzz(url: &str, args: Vec<String>, who: &str, gateway: &Running) -> Value {
    let python = python();
    let url = url.to_owned();
    let pid = gateway.child.id();
    let (status, stdout, stderr) = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(python)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz/fuzz.py"))
            .args(["--url", &url])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the fuzzer starts");
        let mut stderr = String::new();
        for line in BufReader::new(child.stderr.take().unwrap()).lines() {
            let line = line.unwrap_or_default();
            if line.contains(" examples in ") {
                eprintln!("{line} (gateway RSS {} KiB)", memory(pid).0);
            } else {
                eprintln!("{line}");
            }
            stderr.push_str(&line);
            stderr.push('\n');
        }
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        (child.wait().unwrap(), stdout, stderr)
    })
    .await
    .unwrap();
    assert!(
        status.success(),
        "{who}: the fuzzer found a broken answer ({status}):\n{stderr}\n{stdout}\n\
         the gateway's log ends:\n{}",
        tail(&gateway.log(), 40)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{who}: the fuzzer printed no summary ({e}):\n{stdout}"))
}

fn tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// How many copies of each request with a token go at once:
/// `MG_FUZZ_CONCURRENCY`, or 2.
fn concurrency() -> String {
    std::env::var("MG_FUZZ_CONCURRENCY").unwrap_or_else(|_| "2".into())
}

/// `VmRSS` and `VmHWM` (the peak) of a process, in KiB.
fn memory(pid: u32) -> (u64, u64) {
    // Nothing to read once the process is gone; the checks say why.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn schema_fuzzing_breaks_nothing(backend: Backend) {
    let dir = tempfile::TempDir::new().unwrap();
    let data_dir = dir.path().display().to_string();
    let database = fresh_database(backend, dir.path()).await;
    let database_url = database.url.clone();
    let mut running = start_gateway(&[
        ("DATA_DIR", data_dir.clone()),
        ("DATABASE_URL", database_url.clone()),
        // Reached by the fuzzer's recordPlay, so playlist_editor comes and
        // goes and setPlaylistFeatured gets past its check.
        ("PLAYLIST_EDITOR_THRESHOLD", "5".into()),
        ("RUST_LOG", "info".into()),
    ]);
    let url = running.url.clone();
    let pid = running.child.id();
    let mint = [
        env!("CARGO_BIN_EXE_music-gateway"),
        "token",
        "--data-dir",
        &data_dir,
        "--database-url",
        &database_url,
    ]
    .map(quoted)
    .join(" ");
    let (rss_before, _) = memory(pid);

    let (amount, seed) = budget(CI_EXAMPLES);
    // Each request twice at once: writes of one user race each other, as
    // an app's retries and a user's second device make them.
    let mut args = vec!["--mint".to_owned(), mint, "--seed".into(), seed.to_string()];
    args.extend(["--concurrency".into(), concurrency()]);
    args.extend(amount);
    let with_tokens = fuzz(&url, args, "with tokens", &running).await;
    let (amount, _) = budget(CI_ANONYMOUS_EXAMPLES);
    let mut args = vec!["--anonymous".to_owned(), "--seed".into(), seed.to_string()];
    args.extend(amount);
    let anonymous = fuzz(&url, args, "anonymous", &running).await;

    let sent = with_tokens["requests"].as_f64().unwrap();
    let with_data = with_tokens["with_data"].as_f64().unwrap();
    assert!(
        with_data >= DATA_FLOOR * sent,
        "only {with_data} of {sent} answers with a token held data: {with_tokens}"
    );

    // Still serving, to a user it has never seen too.
    assert!(
        running.child.try_wait().unwrap().is_none(),
        "the gateway exited; its log ends:\n{}",
        tail(&running.log(), 40)
    );
    let output = gateway()
        .args(["token", "--data-dir", &data_dir])
        .args(["--database-url", &database_url, "--sub", "fuzz|after"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let me: Value = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&token)
        .json(&json!({"query": "{ me { id } }"}))
        .send()
        .await
        .expect("the gateway still answers")
        .json()
        .await
        .unwrap();
    assert_eq!(me, json!({"data": {"me": {"id": "fuzz|after"}}}));

    let log = running.log();
    assert!(
        !log.contains("panicked"),
        "the gateway panicked:\n{}",
        log.lines()
            .filter(|l| l.contains("panicked"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // An internal error that no answer shows (a task beside the request's)
    // is logged all the same.
    let level = |wanted: &str| {
        log.lines()
            .filter(|l| l.split_whitespace().nth(1) == Some(wanted))
            .collect::<Vec<_>>()
    };
    let errors = level("ERROR");
    assert!(
        errors.is_empty(),
        "the gateway logged errors:\n{}",
        errors.join("\n")
    );
    let (rss_after, rss_peak) = memory(pid);
    eprintln!(
        "fuzz ({backend:?}, seed {seed}): with tokens {with_tokens}\nanonymous {anonymous}\n\
         gateway RSS {rss_before} KiB before, {rss_after} KiB after, {rss_peak} KiB at the peak; \
         {} warnings logged",
        level("WARN").len()
    );
    running.child.kill().unwrap();
    running.child.wait().unwrap();
}

for_both_backends!(schema_fuzzing_breaks_nothing);
