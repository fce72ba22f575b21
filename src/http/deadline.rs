//! Every request's deadline (`REQUEST_TIMEOUT_SECONDS`), and its work
//! stopped when its client goes away.
//!
//! The connection's task reads the request's body, then runs the rest of
//! the request (the handler: the work) as a task of its own and awaits it
//! with the deadline. The answer then does not depend on the work ever
//! yielding: while the work holds a worker thread (a document costly to
//! analyse, a long synchronous stretch), the connection's task runs on
//! another worker, answers `REQUEST_TIMEOUT` on time and sees its client
//! hang up, and the other connections are served.
//!
//! tokio's scheduler takes care here (see [`run`] and [`YieldOnce`]): a task
//! woken from a worker goes to that worker's LIFO slot, which no other worker
//! can take it from, and wakes no other worker; while the work holds that
//! worker's thread, a task waiting in its slot waits for the work, and if
//! the other workers sleep, none polls the I/O and time drivers: no timer
//! fires, no socket is read. (tokio's `enable_eager_driver_handoff` would
//! cover that, but it is unstable.)
//!
//! At the deadline, or when the connection closes first (hyper drops a
//! request's future when it sees its client close the connection), the
//! task is aborted: its future is dropped at its next `.await`, and with it
//! its database work (a transaction dropped before its commit is rolled
//! back; a statement already sent may still run to its end). Work that
//! never reaches an `.await` cannot be stopped from outside the thread
//! running it: it goes on until it returns, and it cannot hold up the
//! process's exit (see `crate::shutdown`).
//!
//! The deadline runs from the request's headers until its answer's head:
//! the body's upload is within it; a body streamed after the head would
//! not be (every answer today is in memory by then).

use std::{
    pin::Pin,
    sync::Arc,
    sync::atomic::{AtomicU64, Ordering},
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::Body,
    extract::{MatchedPath, Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use tokio::task::{JoinError, JoinHandle};
use tracing::Instrument;

use super::{refusal::Refusal, routes::plain_error};
use crate::error::ErrorCode;

/// The route whose answers are GraphQL responses.
const GRAPHQL_ROUTE: &str = "/graphql";

/// The deadline of one app's requests, and what it has stopped.
#[derive(Debug)]
pub struct RequestDeadline {
    limit: Duration,
    timed_out: AtomicU64,
    cancelled: AtomicU64,
}

impl RequestDeadline {
    /// Requests answered at the latest `limit` after their headers came.
    pub fn new(limit: Duration) -> Self {
        Self {
            limit,
            timed_out: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
        }
    }

    /// Requests answered REQUEST_TIMEOUT so far.
    pub fn timed_out(&self) -> u64 {
        self.timed_out.load(Ordering::Relaxed)
    }

    /// Requests whose connection closed before their answer so far.
    pub fn cancelled(&self) -> u64 {
        self.cancelled.load(Ordering::Relaxed)
    }
}

/// The middleware: runs the rest of the request under the deadline.
pub async fn enforce(
    State(deadline): State<Arc<RequestDeadline>>,
    request: Request,
    next: Next,
) -> Response {
    let graphql = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|path| path.as_str() == GRAPHQL_ROUTE);
    // A GraphQL answer made here follows `Accept` as the handler's would.
    let media = graphql
        .then(|| super::media::negotiate(request.headers()).ok())
        .flatten();
    let graphql_answer = |refusal: Refusal| match media {
        Some(media) => media.finish(refusal.into_response()),
        None => refusal.into_response(),
    };
    let mut unanswered = Unanswered {
        deadline: &deadline,
        span: tracing::Span::current(),
        answered: false,
    };
    let outcome =
        tokio::time::timeout(deadline.limit, run(request, next, unanswered.span.clone())).await;
    unanswered.answered = true;
    match outcome {
        Ok(Ok(response)) => response,
        Ok(Err(failure)) => {
            tracing::error!(error = %failure, "the request's work failed without an answer");
            if graphql {
                graphql_answer(Refusal::internal())
            } else {
                plain_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::InternalServerError,
                    "internal server error",
                )
            }
        }
        Err(_) => {
            deadline.timed_out.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                limit_seconds = deadline.limit.as_secs_f64(),
                "request ran past its deadline: answered REQUEST_TIMEOUT, its work stopped"
            );
            if graphql {
                graphql_answer(Refusal::request_timeout(deadline.limit))
            } else {
                let message = format!(
                    "the request did not finish within the gateway's limit of {} s and was stopped",
                    deadline.limit.as_secs_f64()
                );
                plain_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    ErrorCode::RequestTimeout,
                    &message,
                )
            }
        }
    }
}

/// Reads the body, then runs the rest of the request as a task of its own
/// and waits for its answer; dropping this future aborts the task.
///
/// The body is read here, on the connection's task, because reading it
/// from the work's would have the work wake the connection's task as the
/// body's bytes are taken: tokio puts a task woken from a worker in that
/// worker's LIFO slot, and when the work then holds the thread, the
/// connection's task waits behind it, unseen by the other workers.
async fn run(request: Request, next: Next, span: tracing::Span) -> Result<Response, JoinError> {
    let (parts, body) = request.into_parts();
    // The body limit is the body's own (`RequestBodyLimitLayer`); an error
    // (over the limit, a client gone) is handed on for the handler to
    // answer as it would have.
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => Body::from(bytes),
        Err(e) => Body::from_stream(futures::stream::once(async move {
            Err::<axum::body::Bytes, _>(e)
        })),
    };
    let request = Request::from_parts(parts, body);
    let mut task = AbortOnDrop(tokio::spawn(next.run(request).instrument(span)));
    YieldOnce::default().await;
    (&mut task.0).await
}

/// Pending once, after waking its own task. A task woken while it runs is
/// put at the back of its worker's queue, which other workers steal from,
/// and an idle worker is woken; the work just spawned is in the LIFO slot,
/// which they cannot take. So if the work holds this worker's thread, an
/// idle one takes this task (whose deadline and client are then watched)
/// and the I/O and time drivers. (tokio's `yield_now` would not do: it
/// defers the wake until the worker has nothing else to run.)
#[derive(Default)]
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Aborts its task when dropped: the work is not wanted once its answer
/// is not (aborting a finished task does nothing).
struct AbortOnDrop(JoinHandle<Response>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Counts a request dropped before its answer: its connection closed.
struct Unanswered<'a> {
    deadline: &'a RequestDeadline,
    span: tracing::Span,
    answered: bool,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.deadline.cancelled.fetch_add(1, Ordering::Relaxed);
            let _span = self.span.enter();
            tracing::debug!("the connection closed before the answer: the request's work stopped");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::AtomicBool,
        time::{Duration, Instant},
    };

    use axum::{Router, middleware, routing::get};
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// What the test handlers did.
    #[derive(Default)]
    struct Seen {
        started: AtomicBool,
        stop: AtomicBool,
        finished: AtomicBool,
        dropped: AtomicBool,
    }

    /// Holds its thread without yielding until told to stop (or, so that a
    /// failing test ends, for a minute).
    async fn spin(State(seen): State<Arc<Seen>>) -> &'static str {
        seen.started.store(true, Ordering::SeqCst);
        let until = Instant::now() + Duration::from_secs(60);
        while !seen.stop.load(Ordering::SeqCst) && Instant::now() < until {
            std::hint::spin_loop();
        }
        seen.finished.store(true, Ordering::SeqCst);
        "done"
    }

    struct SetOnDrop(Arc<Seen>);

    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.dropped.store(true, Ordering::SeqCst);
        }
    }

    /// Waits for good, and says when its future is dropped.
    async fn wait(State(seen): State<Arc<Seen>>) -> &'static str {
        let _guard = SetOnDrop(seen.clone());
        seen.started.store(true, Ordering::SeqCst);
        std::future::pending::<()>().await;
        "never"
    }

    /// Serves the test routes under `limit`; answers the address, what the
    /// handlers saw and the deadline's counts.
    async fn serve(limit: Duration) -> (String, Arc<Seen>, Arc<RequestDeadline>) {
        let seen = Arc::new(Seen::default());
        let deadline = Arc::new(RequestDeadline::new(limit));
        let router = Router::new()
            .route("/graphql", get(spin))
            .route("/spin", get(spin))
            .route("/wait", get(wait))
            .route("/fast", get(|| async { "fast" }))
            .route_layer(middleware::from_fn_with_state(deadline.clone(), enforce))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        (format!("http://{addr}"), seen, deadline)
    }

    async fn until(what: &str, check: impl Fn() -> bool) {
        let started = Instant::now();
        while !check() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_that_holds_its_thread_is_answered_at_the_deadline_while_others_are_served() {
        let (base, seen, deadline) = serve(Duration::from_millis(300)).await;
        let client = reqwest::Client::new();
        let stuck = tokio::spawn({
            let client = client.clone();
            let url = format!("{base}/graphql");
            async move { client.get(url).send().await }
        });
        until("the handler to start", || {
            seen.started.load(Ordering::SeqCst)
        })
        .await;
        let fast = client.get(format!("{base}/fast")).send().await.unwrap();
        assert_eq!(fast.text().await.unwrap(), "fast");

        let answer = stuck.await.unwrap().unwrap();
        assert!(
            !seen.finished.load(Ordering::SeqCst),
            "answered only once the work was done"
        );
        assert_eq!(answer.status(), StatusCode::GATEWAY_TIMEOUT);
        // No `Accept`: plain JSON, as the handler would answer.
        assert_eq!(
            answer.headers()["content-type"],
            "application/json; charset=utf-8"
        );
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "REQUEST_TIMEOUT");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("0.3 s")
        );
        assert_eq!(deadline.timed_out(), 1);
        seen.stop.store(true, Ordering::SeqCst);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_routes_time_out_with_their_own_error_shape() {
        let (base, seen, _) = serve(Duration::from_millis(300)).await;
        let answer = reqwest::get(format!("{base}/spin")).await.unwrap();
        seen.stop.store(true, Ordering::SeqCst);
        assert_eq!(answer.status(), StatusCode::GATEWAY_TIMEOUT);
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["error"], "REQUEST_TIMEOUT", "{body}");
        assert!(body["message"].is_string(), "{body}");
    }

    /// Sends a GET to `path` over a connection of its own, and answers it.
    async fn open(base: &str, path: &str) -> tokio::net::TcpStream {
        let addr = base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        stream
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_hangs_up_drops_its_requests_work() {
        let (base, seen, deadline) = serve(Duration::from_secs(3600)).await;
        let stream = open(&base, "/wait").await;
        until("the handler to start", || {
            seen.started.load(Ordering::SeqCst)
        })
        .await;
        assert!(!seen.dropped.load(Ordering::SeqCst));
        drop(stream);
        until("the work to be dropped", || {
            seen.dropped.load(Ordering::SeqCst)
        })
        .await;
        assert_eq!(deadline.cancelled(), 1);
        assert_eq!(deadline.timed_out(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_hanging_up_is_seen_while_its_work_holds_a_thread() {
        let (base, seen, deadline) = serve(Duration::from_secs(3600)).await;
        let stream = open(&base, "/spin").await;
        until("the handler to start", || {
            seen.started.load(Ordering::SeqCst)
        })
        .await;
        drop(stream);
        until("the connection's close to be seen", || {
            deadline.cancelled() == 1
        })
        .await;
        assert!(!seen.finished.load(Ordering::SeqCst));
        seen.stop.store(true, Ordering::SeqCst);
    }
}
