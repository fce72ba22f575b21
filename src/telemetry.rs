//! What an operator watches the gateway with: Prometheus metrics, logs
//! (text or JSON, each line with its request id) and, when asked for, traces
//! over OTLP.
//!
//! Metrics go through the `metrics` crate into one process-wide Prometheus
//! recorder, installed once by [`install`]. The rest of the code records with
//! the one-line `record_*` functions here, so the names and labels of every
//! series live in this file.
//!
//! Values that are the state of one app rather than events (its SQL
//! statements and Management API calls so far, the outbox, the database pool)
//! are read when `/metrics` is scraped and rendered through a recorder of
//! their own, made for that scrape: several apps in one process (the tests)
//! each show their own, and nothing is kept between scrapes.

use std::{
    collections::HashSet,
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    extract::{MatchedPath, Request},
    http::{HeaderValue, Method},
    middleware::Next,
    response::Response,
};
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseConnectionType, DbErr, EntityTrait, QuerySelect,
    prelude::DateTimeUtc,
};

use crate::{config::LogFormat, entity::outbox, error::ErrorCode};

/// OpenTelemetry's `http.server.request.duration`, in seconds.
pub const HTTP_REQUEST_DURATION: &str = "http_server_request_duration_seconds";
/// GraphQL errors answered, by `extensions.code`.
pub const GRAPHQL_ERRORS: &str = "gateway_graphql_errors_total";
/// Requests sent to Auth0, by endpoint and status.
pub const MGMT_REQUESTS: &str = "gateway_auth0_requests_total";
/// Time Management API calls waited for the rate budget.
pub const BUDGET_WAIT: &str = "gateway_auth0_budget_wait_seconds";
/// Management API calls not made because the budget was spent and the
/// caller had a fallback.
pub const BUDGET_SPENT: &str = "gateway_auth0_budget_spent_total";
/// GraphQL requests answered by a compiled plan.
pub const GRAPHQL_COMPILED: &str = "gateway_graphql_compiled_total";
/// Requests answered REQUEST_TIMEOUT, their work stopped.
pub const REQUESTS_TIMED_OUT: &str = "gateway_http_requests_timed_out_total";
/// Requests whose connection closed before their answer, their work stopped.
pub const REQUESTS_CANCELLED: &str = "gateway_http_requests_cancelled_total";

/// SQL statements sent to the database.
pub const SQL_STATEMENTS: &str = "gateway_sql_statements_total";
/// Requests sent to Auth0's Management API.
pub const AUTH0_CALLS: &str = "gateway_auth0_management_calls_total";
/// Outbox entries waiting to reach Auth0.
pub const OUTBOX_PENDING: &str = "gateway_outbox_pending_entries";
/// Age of the oldest entry waiting to reach Auth0.
pub const OUTBOX_OLDEST_AGE: &str = "gateway_outbox_oldest_pending_age_seconds";
/// Outbox entries Auth0 refused for good, kept for the operator.
pub const OUTBOX_FAILED: &str = "gateway_outbox_failed_entries";
/// OpenTelemetry's `db.client.connection.count`, by `state` (`idle`, `used`).
pub const DB_CONNECTIONS: &str = "db_client_connection_count";
/// OpenTelemetry's `db.client.connection.max`.
pub const DB_CONNECTIONS_MAX: &str = "db_client_connection_max";

/// OpenTelemetry's advice for `http.server.request.duration`.
const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The budget waits from nothing up to Auth0's longest reset the client sits through.
const BUDGET_BUCKETS: &[f64] = &[
    0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Distinct operation names given a series of their own; later ones share
/// [`OTHER`]. Names come from the clients, and each would otherwise be a
/// new series for as long as the process lives.
const MAX_OPERATION_NAMES: usize = 100;

/// Longest operation name kept in a label.
const MAX_OPERATION_NAME_CHARS: usize = 64;

/// The label value for anything beyond a cap, as OpenTelemetry spells it.
pub const OTHER: &str = "_OTHER";

/// How often histogram samples are folded into their buckets when nobody
/// scrapes, so memory does not grow between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the process-wide recorder, once; later calls return the same
/// handle. If another recorder was installed first, events are recorded
/// there and `/metrics` shows only the per-app values.
pub fn install() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_REQUEST_DURATION.into()), REQUEST_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(BUDGET_WAIT.into()), BUDGET_BUCKETS)
            })
            .expect("the bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "another metrics recorder is installed; /metrics shows per-app values only"
            );
        }
        describe();
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the metrics upkeep thread");
        }
        handle
    })
}

fn describe() {
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Duration of HTTP requests, by route, status and GraphQL operation."
    );
    describe_counter!(
        GRAPHQL_ERRORS,
        "GraphQL errors answered, by extensions.code."
    );
    describe_counter!(
        MGMT_REQUESTS,
        "Requests sent to Auth0 (Management API and token endpoint), by endpoint and HTTP status; `unanswered` when no response came."
    );
    describe_histogram!(
        BUDGET_WAIT,
        metrics::Unit::Seconds,
        "Time Management API calls waited for the shared rate budget."
    );
    describe_counter!(
        BUDGET_SPENT,
        "Management API calls not made because the rate budget was spent (the caller served the table instead)."
    );
    // Present from the start, so a dashboard sees zero rather than nothing.
    for code in ErrorCode::ALL {
        counter!(GRAPHQL_ERRORS, "code" => code.as_str()).increment(0);
    }
    counter!(BUDGET_SPENT).increment(0);
}

/// Records a request's duration: the middleware around every route.
/// GraphQL requests carry their operation in a [`GraphqlOperation`]
/// extension of the response, set by the handler.
pub async fn track_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let response = next.run(request).await;
    let mut labels = vec![
        ("http_request_method", method.to_owned()),
        (
            "http_response_status_code",
            response.status().as_u16().to_string(),
        ),
    ];
    if let Some(route) = route {
        labels.push(("http_route", route));
    }
    if let Some(operation) = response.extensions().get::<GraphqlOperation>() {
        labels.push(("graphql_operation_name", operation.name.clone()));
        labels.push(("graphql_operation_type", operation.kind.to_owned()));
    }
    histogram!(HTTP_REQUEST_DURATION, &labels).record(started.elapsed().as_secs_f64());
    response
}

/// OpenTelemetry's known methods; any other is `_OTHER`, since the method
/// is the client's to choose.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => OTHER,
    }
}

/// The GraphQL operation a request ran, as metric labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphqlOperation {
    /// The operation's name: empty for an anonymous one or a document that
    /// did not parse, [`OTHER`] past the cap on distinct names.
    pub name: String,
    /// `query`, `mutation`, `subscription`, or empty when unknown.
    pub kind: &'static str,
}

impl GraphqlOperation {
    /// The operation `request` selects, from its parsed document.
    pub fn of(request: &mut async_graphql::Request) -> Self {
        use async_graphql::parser::types::{DocumentOperations, OperationType};
        let wanted = request.operation_name.clone();
        let Ok(document) = request.parsed_query() else {
            return Self::unknown();
        };
        let selected = match (&document.operations, wanted) {
            (DocumentOperations::Single(op), None) => Some((None, op)),
            (DocumentOperations::Multiple(ops), Some(wanted)) => ops
                .get_key_value(wanted.as_str())
                .map(|(name, op)| (Some(name.as_str()), op)),
            (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops
                .iter()
                .next()
                .map(|(name, op)| (Some(name.as_str()), op)),
            _ => None,
        };
        let Some((name, op)) = selected else {
            return Self::unknown();
        };
        Self {
            name: name.map(operation_name_label).unwrap_or_default(),
            kind: match op.node.ty {
                OperationType::Query => "query",
                OperationType::Mutation => "mutation",
                OperationType::Subscription => "subscription",
            },
        }
    }

    fn unknown() -> Self {
        Self {
            name: String::new(),
            kind: "",
        }
    }
}

/// Operation names as label values: each truncated, the first `capacity`
/// distinct ones kept, any later one [`OTHER`].
struct NameCap {
    seen: Mutex<HashSet<String>>,
    capacity: usize,
}

impl NameCap {
    fn new(capacity: usize) -> Self {
        Self {
            seen: Mutex::new(HashSet::new()),
            capacity,
        }
    }

    fn label(&self, name: &str) -> String {
        let name: String = name.chars().take(MAX_OPERATION_NAME_CHARS).collect();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(&name) {
            return name;
        }
        if seen.len() >= self.capacity {
            return OTHER.to_owned();
        }
        seen.insert(name.clone());
        name
    }
}

/// `name` as a label value, under the process-wide cap.
fn operation_name_label(name: &str) -> String {
    static NAMES: OnceLock<NameCap> = OnceLock::new();
    NAMES
        .get_or_init(|| NameCap::new(MAX_OPERATION_NAMES))
        .label(name)
}

/// Counts one GraphQL error answered with `code`: one of
/// [`ErrorCode::ALL`], or [`OTHER`] for anything else (a bug), rather than
/// a series of its own.
pub fn record_graphql_error(code: &str) {
    match ErrorCode::from_wire(code) {
        Some(code) => record_error_code(code),
        None => counter!(GRAPHQL_ERRORS, "code" => OTHER).increment(1),
    }
}

/// Counts one GraphQL error answered with `code`.
pub fn record_error_code(code: ErrorCode) {
    counter!(GRAPHQL_ERRORS, "code" => code.as_str()).increment(1);
}

/// Counts one request to Auth0 at `url` with `method`, by the status of
/// its `response` (`unanswered`: a timeout or a connection failure).
pub fn record_mgmt_request(method: &str, url: &str, response: &reqwest::Result<reqwest::Response>) {
    let endpoint = auth0_endpoint(method, url);
    let status = match response {
        Ok(response) => response.status().as_u16().to_string(),
        Err(_) => "unanswered".to_owned(),
    };
    counter!(MGMT_REQUESTS, "endpoint" => endpoint, "status" => status).increment(1);
}

/// The route template of an Auth0 URL, so a user id never becomes a label.
fn auth0_endpoint(method: &str, url: &str) -> &'static str {
    let path = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]));
    let path = path.split(['?', '#']).next().unwrap_or("");
    match (method, path) {
        ("POST", "/oauth/token") => "POST /oauth/token",
        ("GET", p) if p.starts_with("/api/v2/users/") => "GET /api/v2/users/{id}",
        ("PATCH", p) if p.starts_with("/api/v2/users/") => "PATCH /api/v2/users/{id}",
        ("DELETE", p) if p.starts_with("/api/v2/users/") => "DELETE /api/v2/users/{id}",
        _ => OTHER,
    }
}

/// Records how long a Management API call waited for the rate budget
/// (zero when a token was there at once).
pub fn record_budget_wait(waited: Duration) {
    histogram!(BUDGET_WAIT).record(waited.as_secs_f64());
}

/// Counts a Management API call given up because the budget was spent.
pub fn record_budget_spent() {
    counter!(BUDGET_SPENT).increment(1);
}

/// One app's state at a scrape, rendered with the process-wide metrics.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// SQL statements the app sent since it started.
    pub sql_statements: u64,
    /// Management API requests the app sent since it started.
    pub auth0_calls: u64,
    /// GraphQL requests answered by a compiled plan since it started.
    pub compiled_answers: u64,
    /// Requests answered REQUEST_TIMEOUT since it started.
    pub requests_timed_out: u64,
    /// Requests whose connection closed before their answer since it started.
    pub requests_cancelled: u64,
    /// The outbox, in the auth0 identity mode.
    pub outbox: Option<OutboxStats>,
    /// The database pool.
    pub pool: Option<PoolStats>,
}

/// The outbox at one moment.
#[derive(Debug, Default)]
pub struct OutboxStats {
    pub pending: u64,
    /// Age of the oldest pending entry; zero when there is none.
    pub oldest_pending_age: Duration,
    pub failed: u64,
}

/// The database pool at one moment.
#[derive(Debug, Default)]
pub struct PoolStats {
    pub idle: u64,
    pub used: u64,
    pub max: u64,
}

/// Reads the outbox: entries waiting (and the oldest one's age) and
/// entries Auth0 refused for good, in one statement, so the three figures
/// are of one moment (read apart, an entry marked failed between two reads
/// counted as waiting and as failed at once).
pub async fn outbox_stats(db: &DatabaseConnection) -> Result<OutboxStats, DbErr> {
    use sea_orm::sea_query::{Expr, Func};
    let waiting = || outbox::Column::FailedAt.is_null();
    let (pending, oldest, failed) = outbox::Entity::find()
        .select_only()
        .column_as(
            Expr::expr(Func::sum(Expr::case(waiting(), 1).finally(0))),
            "pending",
        )
        .column_as(
            Expr::expr(Func::min(Expr::case(
                waiting(),
                Expr::col(outbox::Column::CreatedAt),
            ))),
            "oldest",
        )
        .column_as(
            Expr::expr(Func::sum(Expr::case(waiting(), 0).finally(1))),
            "failed",
        )
        .into_tuple::<(Option<i64>, Option<DateTimeUtc>, Option<i64>)>()
        .one(db)
        .await?
        .unwrap_or_default();
    Ok(OutboxStats {
        pending: u64::try_from(pending.unwrap_or_default()).unwrap_or_default(),
        oldest_pending_age: oldest
            .and_then(|t| (chrono::Utc::now() - t).to_std().ok())
            .unwrap_or_default(),
        failed: u64::try_from(failed.unwrap_or_default()).unwrap_or_default(),
    })
}

/// The pool behind `db`, when it is one of sqlx's (and not closed).
pub fn pool_stats(db: &DatabaseConnection) -> Option<PoolStats> {
    // Matched first: the pool getters panic on any other kind of connection.
    let (size, idle, max) = match &db.inner {
        DatabaseConnectionType::SqlxSqlitePoolConnection(_) => {
            let pool = db.get_sqlite_connection_pool();
            (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            )
        }
        DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
            let pool = db.get_postgres_connection_pool();
            (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            )
        }
        _ => return None,
    };
    let idle = idle as u64;
    Some(PoolStats {
        idle,
        used: u64::from(size).saturating_sub(idle),
        max: u64::from(max),
    })
}

/// The Prometheus text of the process-wide metrics and of `snapshot`.
pub fn render(snapshot: &Snapshot) -> String {
    let mut text = install().render();
    let local = PrometheusBuilder::new().build_recorder();
    let handle = local.handle();
    metrics::with_local_recorder(&local, || {
        describe_counter!(SQL_STATEMENTS, "SQL statements sent to the database.");
        counter!(SQL_STATEMENTS).absolute(snapshot.sql_statements);
        describe_counter!(AUTH0_CALLS, "Requests sent to Auth0's Management API.");
        counter!(AUTH0_CALLS).absolute(snapshot.auth0_calls);
        describe_counter!(
            GRAPHQL_COMPILED,
            "GraphQL requests answered by a compiled plan, without async-graphql's executor."
        );
        counter!(GRAPHQL_COMPILED).absolute(snapshot.compiled_answers);
        describe_counter!(
            REQUESTS_TIMED_OUT,
            "Requests that ran past REQUEST_TIMEOUT_SECONDS: answered REQUEST_TIMEOUT (HTTP 504), their work stopped."
        );
        counter!(REQUESTS_TIMED_OUT).absolute(snapshot.requests_timed_out);
        describe_counter!(
            REQUESTS_CANCELLED,
            "Requests whose connection closed before they were answered (the client went away, or the shutdown's grace period ended): their work stopped."
        );
        counter!(REQUESTS_CANCELLED).absolute(snapshot.requests_cancelled);
        if let Some(outbox) = &snapshot.outbox {
            describe_gauge!(
                OUTBOX_PENDING,
                "app_metadata changes waiting to reach Auth0 (the whole database's)."
            );
            gauge!(OUTBOX_PENDING).set(outbox.pending as f64);
            describe_gauge!(
                OUTBOX_OLDEST_AGE,
                metrics::Unit::Seconds,
                "Age of the oldest change waiting to reach Auth0; 0 when none waits."
            );
            gauge!(OUTBOX_OLDEST_AGE).set(outbox.oldest_pending_age.as_secs_f64());
            describe_gauge!(
                OUTBOX_FAILED,
                "app_metadata changes Auth0 refused for good, kept in the outbox for the operator."
            );
            gauge!(OUTBOX_FAILED).set(outbox.failed as f64);
        }
        if let Some(pool) = &snapshot.pool {
            describe_gauge!(
                DB_CONNECTIONS,
                "Database connections of the pool, by state."
            );
            gauge!(DB_CONNECTIONS, "state" => "idle").set(pool.idle as f64);
            gauge!(DB_CONNECTIONS, "state" => "used").set(pool.used as f64);
            describe_gauge!(DB_CONNECTIONS_MAX, "Largest size of the database pool.");
            gauge!(DB_CONNECTIONS_MAX).set(pool.max as f64);
        }
    });
    text.push_str(&handle.render());
    text
}

/// The `x-request-id` header.
pub const REQUEST_ID: &str = "x-request-id";

/// Longest request id kept from a client; a longer one (or one with
/// characters a log line should not carry) is replaced by a generated one.
const MAX_REQUEST_ID_BYTES: usize = 128;

/// Drops a client's `x-request-id` that is too long or not printable, so
/// that one is generated instead.
pub async fn drop_unusable_request_id(mut request: Request, next: Next) -> Response {
    let usable = |value: &HeaderValue| {
        !value.is_empty()
            && value.len() <= MAX_REQUEST_ID_BYTES
            && value.as_bytes().iter().all(|b| b.is_ascii_graphic())
    };
    if request
        .headers()
        .get(REQUEST_ID)
        .is_some_and(|value| !usable(value))
    {
        request.headers_mut().remove(REQUEST_ID);
    }
    next.run(request).await
}

/// Whether spans are exported, so requests continue their caller's trace.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// The span every request runs in: its log lines carry the request id.
/// When spans are exported, it continues the trace of the caller's W3C
/// `traceparent` header, if any.
pub fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = request.uri().path(),
        request_id,
    );
    if EXPORTING.load(Ordering::Relaxed) {
        use opentelemetry::propagation::TextMapPropagator;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let caller = opentelemetry_sdk::propagation::TraceContextPropagator::new()
            .extract(&opentelemetry_http::HeaderExtractor(request.headers()));
        // Fails only without the OpenTelemetry layer, when there is no trace to continue.
        let _ = span.set_parent(caller);
    }
    span
}

/// Keeps the trace exporter alive; [`Logging::shutdown`] sends what is left.
#[must_use = "shut it down at exit, or the last spans are lost"]
pub struct Logging {
    tracer: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Logging {
    /// Sends the spans still buffered and stops the exporter. Call it
    /// outside the async runtime: the exporter blocks.
    pub fn shutdown(self) {
        if let Some(tracer) = self.tracer
            && let Err(e) = tracer.shutdown()
        {
            eprintln!("music-gateway: cannot flush the traces: {e}");
        }
    }
}

/// Sets up the process's logging: `format` on stderr, filtered by
/// `RUST_LOG`, and spans exported over OTLP (HTTP, protobuf) when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
/// is set. Call it before the async runtime starts.
pub fn init_logging(format: LogFormat) -> anyhow::Result<Logging> {
    use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

    let filter = EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let output = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let tracer = otlp_tracer()?;
    EXPORTING.store(tracer.is_some(), Ordering::Relaxed);
    let otel = tracer.as_ref().map(|provider| {
        use opentelemetry::trace::TracerProvider as _;
        tracing_opentelemetry::layer().with_tracer(provider.tracer("music-gateway"))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .with(otel)
        .try_init()?;
    Ok(Logging { tracer })
}

/// The OTLP trace pipeline, when an endpoint is configured.
fn otlp_tracer() -> anyhow::Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>> {
    let configured = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()));
    if !configured {
        return Ok(None);
    }
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()
        .map_err(|e| {
            anyhow::anyhow!("cannot set up the OTLP exporter (OTEL_EXPORTER_OTLP_ENDPOINT): {e}")
        })?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    // The SDK reads OTEL_SERVICE_NAME; name the service only when it is unset.
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("music-gateway");
    }
    Ok(Some(
        opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth0_urls_become_route_templates() {
        assert_eq!(
            auth0_endpoint(
                "GET",
                "https://t.auth0.com/api/v2/users/auth0%7Calice?fields=x"
            ),
            "GET /api/v2/users/{id}"
        );
        assert_eq!(
            auth0_endpoint("PATCH", "http://127.0.0.1:9/api/v2/users/x"),
            "PATCH /api/v2/users/{id}"
        );
        assert_eq!(
            auth0_endpoint("POST", "https://t.auth0.com/oauth/token"),
            "POST /oauth/token"
        );
        assert_eq!(
            auth0_endpoint("GET", "https://t.auth0.com/api/v2/jobs/1"),
            OTHER
        );
    }

    #[test]
    fn methods_beyond_the_known_ones_share_one_series() {
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), OTHER);
    }

    #[test]
    fn operation_names_are_truncated_and_capped() {
        let cap = NameCap::new(2);
        assert_eq!(
            cap.label(&"Q".repeat(200)),
            "Q".repeat(MAX_OPERATION_NAME_CHARS)
        );
        assert_eq!(cap.label("Second"), "Second");
        assert_eq!(cap.label("Third"), OTHER);
        assert_eq!(
            cap.label("Second"),
            "Second",
            "a name seen before keeps its series"
        );
    }

    #[test]
    fn the_operation_is_the_one_the_request_selects() {
        let mut named = async_graphql::Request::new("query A { me { id } } mutation B { x }")
            .operation_name("B");
        let op = GraphqlOperation::of(&mut named);
        assert_eq!(op.kind, "mutation");
        assert_eq!(op.name, "B");
        let mut anonymous = async_graphql::Request::new("{ me { id } }");
        assert_eq!(
            GraphqlOperation::of(&mut anonymous),
            GraphqlOperation {
                name: String::new(),
                kind: "query"
            }
        );
        let mut ambiguous = async_graphql::Request::new("query A { a } query B { b }");
        assert_eq!(GraphqlOperation::of(&mut ambiguous).kind, "");
        let mut broken = async_graphql::Request::new("{ me { ");
        assert_eq!(
            GraphqlOperation::of(&mut broken),
            GraphqlOperation::unknown()
        );
    }
}
