//! wrk as the load generator (`run --load-tool wrk`): the same closed loop
//! (a keep-alive connection per client, a distinct token per user,
//! round-robin), driven by a well-kept tool instead of the harness's own
//! loop.
//!
//! A Lua script (below) reads the tokens and the body, builds each request
//! with the next token, and prints wrk's summary and latency histogram as one
//! JSON line when the run ends. wrk counts a status other than 2xx/3xx and
//! every socket error as a failure; unlike the harness's loop it does not
//! read bodies, which the run's byte-for-byte check covers before the loads.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, bail, ensure};
use serde::Deserialize;

use crate::load::LoadResult;

/// The script wrk runs: `init` gets the tokens file and the body file.
const SCRIPT: &str = r#"
local threads = 0
function setup(thread)
  thread:set("offset", threads)
  threads = threads + 1
end

function init(args)
  tokens = {}
  for line in io.lines(args[1]) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  local f = assert(io.open(args[2], "rb"))
  body = f:read("*a")
  f:close()
  -- The (at most two) threads start half the list apart.
  n = math.floor((offset or 0) * #tokens / 2)
end

function request()
  n = n % #tokens + 1
  return wrk.format("POST", nil, {
    ["Authorization"] = "Bearer " .. tokens[n],
    ["Content-Type"] = "application/json",
  }, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\n{"requests":%d,"duration_us":%d,"bytes":%d,"socket_errors":%d,"status_errors":%d,' ..
    '"mean_us":%f,"max_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
"#;

/// What the script's `done` prints.
#[derive(Debug, Deserialize)]
struct Summary {
    requests: u64,
    duration_us: u64,
    bytes: u64,
    socket_errors: u64,
    status_errors: u64,
    mean_us: f64,
    max_us: u64,
    p50_us: u64,
    p90_us: u64,
    p99_us: u64,
    p999_us: u64,
}

/// A wrk run: the endpoint, the files of tokens and body, the clients and
/// the duration (rounded to whole seconds, at least one: wrk takes no less).
pub struct WrkRun<'a> {
    pub url: &'a str,
    pub tokens_file: &'a Path,
    pub body_file: &'a Path,
    pub script_dir: &'a Path,
    pub concurrency: usize,
    pub duration: Duration,
}

/// Writes the script into `dir` (once a session) and returns its path.
pub fn write_script(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("wrk-me.lua");
    std::fs::write(&path, SCRIPT).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Runs wrk and reads its summary.
pub async fn run(spec: &WrkRun<'_>) -> anyhow::Result<LoadResult> {
    let script = spec.script_dir.join("wrk-me.lua");
    // wrk wants at least a connection a thread.
    let threads = spec.concurrency.clamp(1, 2);
    let secs = spec.duration.as_secs_f64().round().max(1.0) as u64;
    let mut command = std::process::Command::new("wrk");
    command
        .arg(format!("-t{threads}"))
        .arg(format!("-c{}", spec.concurrency))
        .arg(format!("-d{secs}s"))
        .args(["--timeout", "10s", "-s"])
        .arg(&script)
        .arg(spec.url)
        .arg("--")
        .arg(spec.tokens_file)
        .arg(spec.body_file)
        .stdin(Stdio::null());
    // A blocking wait on its own thread: the harness's tokio has no process
    // feature, and adding it would rebuild tokio for the whole workspace.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .context("the wrk waiter panicked")?
        .context("cannot run wrk (Debian: apt-get install wrk; scripts/bench installs it)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse(&stdout, spec.concurrency)
}

/// The LoadResult of wrk's output (the script's JSON line).
fn parse(stdout: &str, concurrency: usize) -> anyhow::Result<LoadResult> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("{\"requests\""))
        .context("wrk printed no summary")?;
    let s: Summary = serde_json::from_str(line).context("wrk's summary is not JSON")?;
    ensure!(s.duration_us > 0, "wrk ran for no time");
    let ms = |us: u64| us as f64 / 1000.0;
    let elapsed_secs = s.duration_us as f64 / 1e6;
    let errors = s.socket_errors + s.status_errors;
    Ok(LoadResult {
        concurrency,
        requests: s.requests,
        errors,
        elapsed_secs,
        rps: s.requests as f64 / elapsed_secs,
        mean_ms: s.mean_us / 1000.0,
        p50_ms: ms(s.p50_us),
        p90_ms: ms(s.p90_us),
        p99_ms: ms(s.p99_us),
        p999_ms: ms(s.p999_us),
        max_ms: ms(s.max_us),
        // Bytes include the status lines and headers.
        mean_body_bytes: if s.requests == 0 {
            0.0
        } else {
            s.bytes as f64 / s.requests as f64
        },
        first_error: (errors > 0).then(|| {
            format!(
                "wrk: {} socket errors, {} responses with a status other than 2xx/3xx",
                s.socket_errors, s.status_errors
            )
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_summary_becomes_a_load_result() {
        let out = "Running 1s test @ http://127.0.0.1:1/graphql\n  2 threads\n\n\
                   {\"requests\":2000,\"duration_us\":2000000,\"bytes\":20000000,\"socket_errors\":1,\"status_errors\":2,\
                   \"mean_us\":1500.5,\"max_us\":9000,\"p50_us\":1400,\"p90_us\":2000,\"p99_us\":4000,\"p999_us\":8000}\n";
        let r = parse(out, 16).unwrap();
        assert_eq!(r.requests, 2000);
        assert_eq!(r.errors, 3);
        assert!((r.rps - 1000.0).abs() < 1e-9);
        assert!((r.p99_ms - 4.0).abs() < 1e-9);
        assert!((r.p999_ms - 8.0).abs() < 1e-9);
        assert!((r.mean_body_bytes - 10_000.0).abs() < 1e-9);
        assert!(r.first_error.unwrap().contains("2 responses"));
    }

    #[test]
    fn output_without_a_summary_is_an_error() {
        assert!(parse("unable to connect to 127.0.0.1:1\n", 8).is_err());
    }
}
