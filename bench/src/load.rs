//! The load generator: closed-loop workers, one keep-alive HTTP/1.1
//! connection each, sending the full `me` query with a distinct token per
//! simulated user, and exact latency percentiles from the sorted samples.
//!
//! It speaks HTTP through hyper's connection API rather than reqwest's pooled
//! client: the generator shares the machine's two cores with the server under
//! test, so every microsecond it spends is one the server does not get.

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode, Uri, body::Bytes, client::conn::http1, header};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

/// The longest a single load run may last.
const MAX_DURATION_SECS: f64 = 600.0;

/// The full `me` query the load test sends, with `first` on every list.
pub fn me_query(first: u32) -> String {
    format!(
        "{{ me {{ displayName roles favGenre songs(first: {first}) {{ nodes {{ id name artist }} }} \
         playlists(first: {first}) {{ nodes {{ id name plays songs(first: {first}) {{ nodes {{ id name }} }} }} }} }} }}"
    )
}

/// The query of the issue "The hot path at the speed of a hand-written
/// handler", measured on its own seed (50 songs, 20 playlists of 10 songs a
/// user): about 9.4 KB of JSON an answer.
pub const ISSUE_QUERY: &str = "query Me { me { id displayName roles favGenre songs(first: 50) { nodes { id name } } \
     playlists(first: 20) { nodes { id name plays songs(first: 10) { nodes { id name } } } } } }";

/// The JSON body of a GraphQL request for [`me_query`].
pub fn request_body(first: u32) -> Bytes {
    body_of(&me_query(first))
}

/// The JSON body of a GraphQL request for `query`.
pub fn body_of(query: &str) -> Bytes {
    let body = serde_json::json!({ "query": query });
    Bytes::from(body.to_string())
}

/// Arguments of `music-gateway-bench load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The GraphQL endpoint, e.g. `http://127.0.0.1:8080/graphql` (loopback only).
    #[arg(long)]
    pub url: String,
    /// A file with one access token a line; requests take them round-robin.
    #[arg(long)]
    pub tokens_file: PathBuf,
    /// Simulated clients, each with its own keep-alive connection.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// How long to send requests, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// `first` of every list in the query.
    #[arg(long, default_value_t = 20)]
    pub first: u32,
    /// Send the issue's query (`load::ISSUE_QUERY`) instead; `--first` is then ignored.
    #[arg(long)]
    pub issue_query: bool,
    /// Stop after this many requests even if the duration has not passed.
    #[arg(long, default_value_t = 5_000_000)]
    pub max_requests: u64,
}

/// `music-gateway-bench load`: one run, printed as JSON and as a summary line.
pub async fn main(args: LoadArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.tokens_file)
        .with_context(|| format!("cannot read {}", args.tokens_file.display()))?;
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let spec = LoadSpec {
        url: args.url,
        tokens: Arc::new(tokens),
        concurrency: args.concurrency,
        duration: Duration::from_secs_f64(args.duration.clamp(0.0, MAX_DURATION_SECS)),
        body: if args.issue_query {
            body_of(ISSUE_QUERY)
        } else {
            request_body(args.first)
        },
        max_requests: args.max_requests,
    };
    let result = run(&spec).await?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    eprintln!("{}", result.summary());
    ensure!(result.errors == 0, "{} requests failed", result.errors);
    Ok(())
}

/// One load run.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// The endpoint (`http://127.0.0.1:PORT/graphql`).
    pub url: String,
    /// Access tokens, one per simulated user, taken round-robin.
    pub tokens: Arc<Vec<String>>,
    /// Workers, each with one connection and one request in flight.
    pub concurrency: usize,
    /// How long workers start new requests.
    pub duration: Duration,
    /// The request body (see [`request_body`]).
    pub body: Bytes,
    /// An upper bound on the requests of the run.
    pub max_requests: u64,
}

/// What one load run measured. Latencies are in milliseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LoadResult {
    pub concurrency: usize,
    /// Requests completed (successful or not).
    pub requests: u64,
    /// Requests that failed: transport error, a status other than 200, or
    /// a body with `errors`.
    pub errors: u64,
    pub elapsed_secs: f64,
    pub rps: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Mean size of a response body, in bytes.
    pub mean_body_bytes: f64,
    /// The first failure seen, for the report.
    pub first_error: Option<String>,
}

impl LoadResult {
    /// A one-line summary for the console.
    pub fn summary(&self) -> String {
        format!(
            "c={:<3} {:>9.1} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  p99.9 {:>7.3} ms  ({} requests, {} errors)",
            self.concurrency,
            self.rps,
            self.p50_ms,
            self.p99_ms,
            self.p999_ms,
            self.requests,
            self.errors
        )
    }
}

/// Where to connect and what to put in the request line and Host header.
struct Target {
    addr: String,
    host: String,
    path: String,
}

fn parse_target(url: &str) -> anyhow::Result<Target> {
    let uri: Uri = url
        .parse()
        .with_context(|| format!("`{url}` is not a URL"))?;
    ensure!(
        uri.scheme_str() == Some("http"),
        "`{url}`: only http:// is supported"
    );
    let host = uri.host().context("the URL has no host")?;
    // The harness must never become a load generator against another machine.
    let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "::1");
    if !loopback {
        bail!("`{url}`: the load generator only targets loopback addresses");
    }
    let port = uri.port_u16().unwrap_or(80);
    Ok(Target {
        addr: format!("{host}:{port}"),
        host: format!("{host}:{port}"),
        path: uri
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned()),
    })
}

/// State shared by the workers of one run.
struct Shared {
    target: Target,
    spec: LoadSpec,
    deadline: Instant,
    next_token: AtomicUsize,
    issued: AtomicU64,
    body_bytes: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Shared {
    fn fail(&self, message: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(message);
    }
}

/// Runs the load and returns its measurements.
pub async fn run(spec: &LoadSpec) -> anyhow::Result<LoadResult> {
    ensure!(spec.concurrency > 0, "concurrency must be at least 1");
    ensure!(!spec.tokens.is_empty(), "no tokens to send");
    let target = parse_target(&spec.url)?;
    let start = Instant::now();
    let shared = Arc::new(Shared {
        target,
        spec: spec.clone(),
        deadline: start + spec.duration,
        next_token: AtomicUsize::new(0),
        issued: AtomicU64::new(0),
        body_bytes: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_error: Mutex::new(None),
    });
    let workers: Vec<_> = (0..spec.concurrency)
        .map(|_| tokio::spawn(worker(shared.clone())))
        .collect();
    let mut samples = Vec::new();
    for worker in workers {
        samples.extend(worker.await.context("a load worker panicked")?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let requests = samples.len() as u64;
    samples.sort_unstable();
    let ms = |micros: u32| f64::from(micros) / 1000.0;
    let pct = |p: f64| percentile(&samples, p).map_or(0.0, ms);
    let mean_ms = if samples.is_empty() {
        0.0
    } else {
        samples.iter().map(|&s| f64::from(s)).sum::<f64>() / samples.len() as f64 / 1000.0
    };
    let first_error = shared
        .first_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Ok(LoadResult {
        concurrency: spec.concurrency,
        requests,
        errors: shared.errors.load(Ordering::Relaxed),
        elapsed_secs: elapsed,
        rps: if elapsed > 0.0 {
            requests as f64 / elapsed
        } else {
            0.0
        },
        mean_ms,
        p50_ms: pct(50.0),
        p90_ms: pct(90.0),
        p99_ms: pct(99.0),
        p999_ms: pct(99.9),
        max_ms: samples.last().copied().map_or(0.0, ms),
        mean_body_bytes: if requests == 0 {
            0.0
        } else {
            shared.body_bytes.load(Ordering::Relaxed) as f64 / requests as f64
        },
        first_error,
    })
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(addr: &str) -> anyhow::Result<Sender> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // The connection ends when the sender is dropped or the server closes it.
        let _ = connection.await;
    });
    Ok(sender)
}

/// One simulated client: sends requests back to back on its connection until
/// the deadline, and returns each request's latency in microseconds.
async fn worker(shared: Arc<Shared>) -> Vec<u32> {
    let mut samples = Vec::with_capacity(4096);
    let mut sender: Option<Sender> = None;
    while Instant::now() < shared.deadline
        && shared.issued.fetch_add(1, Ordering::Relaxed) < shared.spec.max_requests
    {
        let conn = match sender.as_mut() {
            Some(conn) => conn,
            None => match connect(&shared.target.addr).await {
                Ok(conn) => sender.insert(conn),
                Err(e) => {
                    shared.fail(format!("{e:#}"));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let index = shared.next_token.fetch_add(1, Ordering::Relaxed) % shared.spec.tokens.len();
        let request = Request::post(shared.target.path.as_str())
            .header(header::HOST, shared.target.host.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", shared.spec.tokens[index]),
            )
            .body(Full::new(shared.spec.body.clone()));
        let request = match request {
            Ok(request) => request,
            Err(e) => {
                shared.fail(format!("cannot build a request: {e}"));
                break;
            }
        };
        let started = Instant::now();
        let outcome = exchange(conn, request).await;
        let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        samples.push(micros);
        match outcome {
            Ok((status, body)) => {
                shared
                    .body_bytes
                    .fetch_add(body.len() as u64, Ordering::Relaxed);
                if let Some(problem) = check_response(status, &body) {
                    shared.fail(problem);
                }
            }
            Err(e) => {
                shared.fail(format!("{e:#}"));
                // The connection is in an unknown state: open a new one.
                sender = None;
            }
        }
    }
    samples
}

async fn exchange(
    sender: &mut Sender,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    sender.ready().await.context("the connection closed")?;
    let response = sender
        .send_request(request)
        .await
        .context("request failed")?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .context("cannot read the response body")?
        .to_bytes();
    Ok((status, body))
}

/// Why a response does not count as a success, if it does not.
pub fn check_response(status: StatusCode, body: &[u8]) -> Option<String> {
    // The seeded names never contain `"errors":`, so finding it means GraphQL
    // reported an error.
    let has_errors = body.windows(9).any(|w| w == b"\"errors\":");
    if status == StatusCode::OK && !has_errors && body.starts_with(b"{\"data\":") {
        return None;
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    Some(format!("HTTP {status}: {text}"))
}

/// The `p`th percentile (0 < p <= 100) of sorted samples, nearest-rank: the
/// smallest sample with at least p% of the samples at or below it.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let exact = p / 100.0 * sorted.len() as f64;
    // 99.9% of 1000 is 999.0000000000001 in floating point: a rank that is
    // a whole number up to rounding noise is that whole number.
    let rank = if (exact - exact.round()).abs() < 1e-6 {
        exact.round()
    } else {
        exact.ceil()
    } as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&samples, 50.0), Some(500));
        assert_eq!(percentile(&samples, 99.0), Some(990));
        assert_eq!(percentile(&samples, 99.9), Some(999));
        assert_eq!(percentile(&samples, 100.0), Some(1000));
        assert_eq!(percentile(&[7u32], 99.9), Some(7));
        assert_eq!(percentile::<u32>(&[], 50.0), None);
        // Few samples: p99.9 of 10 is the largest.
        let ten: Vec<u32> = (1..=10).collect();
        assert_eq!(percentile(&ten, 99.9), Some(10));
        assert_eq!(percentile(&ten, 50.0), Some(5));
        assert_eq!(percentile(&ten, 0.0), Some(1));
    }

    #[test]
    fn the_query_has_three_page_sizes() {
        let q = me_query(7);
        assert_eq!(q.matches("first: 7").count(), 3);
        let body: serde_json::Value = serde_json::from_slice(&request_body(7)).unwrap();
        assert_eq!(body["query"], q);
    }

    #[test]
    fn responses_with_errors_or_other_statuses_fail() {
        assert_eq!(
            check_response(StatusCode::OK, br#"{"data":{"me":{}}}"#),
            None
        );
        assert!(check_response(StatusCode::OK, br#"{"data":null,"errors":[{}]}"#).is_some());
        assert!(check_response(StatusCode::UNAUTHORIZED, br#"{"data":{}}"#).is_some());
    }

    #[test]
    fn only_loopback_targets_are_accepted() {
        let t = parse_target("http://127.0.0.1:8080/graphql").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080");
        assert_eq!(t.path, "/graphql");
        assert!(parse_target("http://example.com/graphql").is_err());
        assert!(parse_target("https://127.0.0.1/graphql").is_err());
    }
}
