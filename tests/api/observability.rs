//! What an operator sees: `/metrics`, and the request id on every answer.
//!
//! Events (request durations, errors, Auth0 requests) are counted in one
//! process-wide registry that every gateway of this test process shares, so
//! tests either use labels no other test uses or check that a count grew by
//! at least what they caused. Per-app values (SQL statements, Management API
//! calls, outbox, pool) are exact.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{
    fake_auth0::FakeAuth0,
    for_both_backends,
    helpers::{Backend, TestApp},
    on_both_databases,
};

/// The gateway's `/metrics`.
async fn scrape(app: &TestApp) -> String {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.unwrap()
}

/// The value of the series `name` whose labels include `labels`; panics if
/// several match, so a test never reads the wrong one.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (series_name, series_labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if series_name != name {
            continue;
        }
        let has = |(k, v): &(&str, &str)| {
            series_labels
                .split("\",")
                .map(|pair| pair.trim_end_matches('"'))
                .any(|pair| pair == format!("{k}=\"{v}"))
        };
        if labels.iter().all(has) {
            assert!(
                found.is_none(),
                "several {name} series match {labels:?}:\n{text}"
            );
            found = Some(value.parse::<f64>().unwrap());
        }
    }
    found
}

fn sample_or_zero(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or(0.0)
}

/// Polls `/metrics` until `check` holds or 20 seconds pass.
async fn eventually_in_metrics(app: &TestApp, what: &str, check: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let text = scrape(app).await;
        if check(&text) {
            return text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}; /metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const DURATION_COUNT: &str = "http_server_request_duration_seconds_count";

/// The labels of a successful `POST /graphql` running `name` of type `kind`.
fn graphql_labels<'a>(name: &'a str, kind: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("http_request_method", "POST"),
        ("http_route", "/graphql"),
        ("http_response_status_code", "200"),
        ("graphql_operation_name", name),
        ("graphql_operation_type", kind),
    ]
}

async fn requests_are_timed_by_graphql_operation_name_and_type(app: TestApp) {
    // Names of their own, so no other test adds to these series.
    let query_name = format!("MetricsProbe{:?}", app.backend);
    let mutation_name = format!("MetricsProbeAdd{:?}", app.backend);
    for _ in 0..2 {
        app.ok(
            "auth0|timed",
            &format!("query {query_name} {{ me {{ id }} }}"),
            json!({}),
        )
        .await;
    }
    app.ok(
        "auth0|timed",
        &format!("mutation {mutation_name} {{ addSong(input: {{name: \"S\"}}) {{ id }} }}"),
        json!({}),
    )
    .await;
    let text = scrape(&app).await;
    assert_eq!(
        sample(&text, DURATION_COUNT, &graphql_labels(&query_name, "query")),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            DURATION_COUNT,
            &graphql_labels(&mutation_name, "mutation")
        ),
        Some(1.0),
        "{text}"
    );
    // A histogram with buckets, not a summary.
    let mut bucket = graphql_labels(&query_name, "query");
    bucket.push(("le", "+Inf"));
    assert_eq!(
        sample(
            &text,
            "http_server_request_duration_seconds_bucket",
            &bucket
        ),
        Some(2.0),
        "{text}"
    );
}

async fn the_counters_of_each_gateway_are_its_own(app: TestApp) {
    app.ok(
        "auth0|counted",
        "{ me { id songs { totalCount } } }",
        json!({}),
    )
    .await;
    let text = scrape(&app).await;
    // Local mode: /metrics sends no SQL of its own, so the counter read
    // after the scrape is the one it showed, and other gateways in this
    // process have counters of their own.
    assert_eq!(
        sample(&text, "gateway_sql_statements_total", &[]),
        Some(app.statements() as f64),
        "{text}"
    );
    assert_eq!(
        sample(&text, "gateway_auth0_management_calls_total", &[]),
        Some(0.0)
    );
    // The pool: TestApp asks for 5 connections.
    assert_eq!(sample(&text, "db_client_connection_max", &[]), Some(5.0));
    let idle = sample(&text, "db_client_connection_count", &[("state", "idle")]).unwrap();
    let used = sample(&text, "db_client_connection_count", &[("state", "used")]).unwrap();
    assert!((1.0..=5.0).contains(&(idle + used)), "{text}");
    // The outbox is an auth0-mode matter.
    assert_eq!(sample(&text, "gateway_outbox_pending_entries", &[]), None);
}

async fn graphql_errors_are_counted_by_code(app: TestApp) {
    let errors =
        |text: &str, code| sample_or_zero(text, "gateway_graphql_errors_total", &[("code", code)]);
    let before = scrape(&app).await;
    let (_, body) = app.post(None, "{ me { id } }", json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    let (_, body) = app.post(None, "{ me { id ", json!({})).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "GRAPHQL_PARSE_FAILED"
    );
    let after = scrape(&app).await;
    // Other tests may add to these at the same time, never take away.
    assert!(
        errors(&after, "UNAUTHENTICATED") >= errors(&before, "UNAUTHENTICATED") + 1.0,
        "{after}"
    );
    assert!(
        errors(&after, "GRAPHQL_PARSE_FAILED") >= errors(&before, "GRAPHQL_PARSE_FAILED") + 1.0,
        "{after}"
    );
}

async fn automatic_persisted_queries_are_counted_by_result(app: TestApp) {
    let apq = |text: &str, result| {
        sample_or_zero(text, "gateway_apq_requests_total", &[("result", result)])
    };
    let query = "query ApqMetrics { __typename }";
    let extensions = json!({"persistedQuery": {
        "version": 1,
        "sha256Hash": music_gateway::graphql::sha256_hex(query),
    }});
    let send = async |body: serde_json::Value| {
        let response = app.client.post(app.url("/graphql")).json(&body).send();
        let body: serde_json::Value = response.await.unwrap().json().await.unwrap();
        body
    };
    let before = scrape(&app).await;
    let missed = send(json!({"extensions": extensions})).await;
    assert_eq!(
        missed["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_NOT_FOUND"
    );
    let sent = send(json!({"query": query, "extensions": extensions})).await;
    assert_eq!(sent["data"]["__typename"], "Query", "{sent}");
    let hit = send(json!({"extensions": extensions})).await;
    assert_eq!(hit["data"]["__typename"], "Query", "{hit}");
    let after = scrape(&app).await;
    // Other tests may add to these at the same time, never take away.
    for result in ["miss", "registered", "hit"] {
        assert!(
            apq(&after, result) >= apq(&before, result) + 1.0,
            "{result}: {after}"
        );
    }
}

async fn every_answer_carries_a_request_id(app: TestApp) {
    let id_of = |response: &reqwest::Response| {
        response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let first = app.client.get(app.url("/healthz")).send().await.unwrap();
    let second = app.client.get(app.url("/healthz")).send().await.unwrap();
    let generated = id_of(&first);
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    assert_ne!(generated, id_of(&second), "each request gets its own");

    let echoed = app
        .client
        .post(app.url("/graphql"))
        .header("x-request-id", "client-chosen-42")
        .json(&json!({"query": "{ me { id } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&echoed), "client-chosen-42");

    let unusable = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "x".repeat(500))
        .send()
        .await
        .unwrap();
    assert!(
        uuid::Uuid::parse_str(&id_of(&unusable)).is_ok(),
        "an overlong id is replaced"
    );
}

async fn paths_that_match_no_route_make_no_series(app: TestApp) {
    let path = format!("/made-up-{:?}", app.backend);
    let missing = app.client.get(app.url(&path)).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let text = scrape(&app).await;
    assert!(!text.contains(&path), "{text}");
}

on_both_databases!(
    requests_are_timed_by_graphql_operation_name_and_type,
    paths_that_match_no_route_make_no_series,
    the_counters_of_each_gateway_are_its_own,
    graphql_errors_are_counted_by_code,
    automatic_persisted_queries_are_counted_by_result,
    every_answer_carries_a_request_id,
);

const AUTH0_REQUESTS: &str = "gateway_auth0_requests_total";
const GET_USER: (&str, &str) = ("endpoint", "GET /api/v2/users/{id}");
const PATCH_USER: (&str, &str) = ("endpoint", "PATCH /api/v2/users/{id}");

/// Auth0 answers 429 once, then the budget (one call, refilled in minutes)
/// is spent: the 429 is visible by endpoint and status, and so is the call
/// not made.
async fn management_api_requests_are_counted_by_endpoint_and_status(backend: Backend) {
    let fake = FakeAuth0::start().await;
    for id in ["auth0|alice", "auth0|bob"] {
        fake.put_user(json!({"user_id": id}));
    }
    let gateway = TestApp::spawn_auth0(backend, &fake, |c| {
        let auth0 = c.auth0.as_mut().unwrap();
        auth0.mgmt_rate = 0.01;
        auth0.mgmt_burst = 1;
    })
    .await;
    let before = scrape(&gateway).await;
    fake.fail_next(1, 429);
    let alice = fake.mint("auth0|alice", json!({}));
    gateway.ok_with(&alice, "{ me { id } }", json!({})).await;
    let bob = fake.mint("auth0|bob", json!({}));
    gateway.ok_with(&bob, "{ me { id } }", json!({})).await;

    let after = scrape(&gateway).await;
    let grew = |name, labels: &[(&str, &str)]| {
        sample_or_zero(&after, name, labels) - sample_or_zero(&before, name, labels)
    };
    assert!(
        grew(AUTH0_REQUESTS, &[GET_USER, ("status", "429")]) >= 1.0,
        "{after}"
    );
    // The token may have been fetched at start-up, before the first scrape.
    assert!(
        sample_or_zero(
            &after,
            AUTH0_REQUESTS,
            &[("endpoint", "POST /oauth/token"), ("status", "200")]
        ) >= 1.0,
        "{after}"
    );
    assert!(
        grew("gateway_auth0_budget_spent_total", &[]) >= 1.0,
        "{after}"
    );
    // This gateway sent exactly one Management API request: the one refused.
    let client_calls = gateway
        .state
        .services
        .profiles
        .auth0()
        .unwrap()
        .client()
        .calls();
    assert_eq!(client_calls, 1);
    assert_eq!(
        sample(&after, "gateway_auth0_management_calls_total", &[]),
        Some(1.0),
        "{after}"
    );
}

/// An admin's change waits in the outbox while Auth0 fails, then Auth0
/// refuses it for good: the gauges follow, read from the database.
async fn the_outbox_depth_age_and_failures_are_gauges(backend: Backend) {
    let fake = FakeAuth0::start().await;
    fake.put_user(json!({"user_id": "auth0|alice", "app_metadata": {"roles": []}}));
    let gateway = TestApp::spawn_auth0(backend, &fake, |_| {}).await;
    let user = fake.mint("auth0|alice", json!({}));
    gateway.ok_with(&user, "{ me { id } }", json!({})).await;
    let before = scrape(&gateway).await;
    assert_eq!(
        sample(&before, "gateway_outbox_pending_entries", &[]),
        Some(0.0)
    );
    assert_eq!(
        sample(&before, "gateway_outbox_oldest_pending_age_seconds", &[]),
        Some(0.0)
    );
    assert_eq!(
        sample(&before, "gateway_outbox_failed_entries", &[]),
        Some(0.0)
    );
    let waits_before = sample_or_zero(&before, "gateway_auth0_budget_wait_seconds_count", &[]);

    fake.fail_next(1_000_000, 503);
    let admin = fake.mint(
        "auth0|admin",
        json!({"permissions": ["write:app_metadata"]}),
    );
    gateway
        .ok_with(
            &admin,
            "mutation { setUserRoles(userId: \"auth0|alice\", roles: [\"moderator\"]) { roles } }",
            json!({}),
        )
        .await;
    let waiting = eventually_in_metrics(&gateway, "the outbox worker's first attempt", |text| {
        sample_or_zero(text, "gateway_auth0_budget_wait_seconds_count", &[]) > waits_before
    })
    .await;
    assert_eq!(
        sample(&waiting, "gateway_outbox_pending_entries", &[]),
        Some(1.0),
        "{waiting}"
    );
    let age = sample(&waiting, "gateway_outbox_oldest_pending_age_seconds", &[]).unwrap();
    assert!(age > 0.0 && age < 600.0, "{waiting}");
    assert_eq!(
        sample(&waiting, "gateway_outbox_failed_entries", &[]),
        Some(0.0)
    );

    // Auth0 now refuses the change as invalid: it stays, as failed.
    fake.fail_next(1_000_000, 400);
    let failed = eventually_in_metrics(&gateway, "the entry marked failed", |text| {
        sample(text, "gateway_outbox_failed_entries", &[]) == Some(1.0)
    })
    .await;
    assert_eq!(
        sample(&failed, "gateway_outbox_pending_entries", &[]),
        Some(0.0),
        "{failed}"
    );
    assert_eq!(
        sample(&failed, "gateway_outbox_oldest_pending_age_seconds", &[]),
        Some(0.0),
        "{failed}"
    );
    for status in ["503", "400"] {
        let patches = sample_or_zero(&failed, AUTH0_REQUESTS, &[PATCH_USER, ("status", status)]);
        assert!(patches >= 1.0, "{status}: {failed}");
    }
}

for_both_backends!(
    management_api_requests_are_counted_by_endpoint_and_status,
    the_outbox_depth_age_and_failures_are_gauges,
);
