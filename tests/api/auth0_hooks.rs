//! Auth0 pushing changes: Event Streams and Log Streams deliveries, sent by
//! the fake tenant duplicated and out of order, as Auth0 may.

use std::time::Duration;

use music_gateway::config::Secret;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

use crate::helpers::{count, eventually};
use crate::{
    fake_auth0::FakeAuth0,
    for_both_backends,
    helpers::{Backend, TestApp, UPDATED_AT_CLAIM, error_code},
};

const EVENTS_TOKEN: &str = "events-token-0123456789";
const LOGS_TOKEN: &str = "log-stream-token-0123456789";

async fn spawn(backend: Backend, fake: &FakeAuth0) -> TestApp {
    TestApp::spawn_auth0(backend, fake, |config| {
        let auth0 = config.auth0.as_mut().unwrap();
        auth0.events_token = Some(Secret::new(EVENTS_TOKEN));
        auth0.log_stream_token = Some(Secret::new(LOGS_TOKEN));
    })
    .await
}

fn user(id: &str, display_name: &str) -> Value {
    json!({
        "user_id": id,
        "email": format!("{}@example.com", id.trim_start_matches("auth0|")),
        "user_metadata": {"displayName": display_name},
        "app_metadata": {"roles": [], "plan": "premium"}
    })
}

/// Auth0 dates have milliseconds: a pause makes the next change later.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(5)).await;
}

async fn display_name(gateway: &TestApp, token: &str) -> Value {
    gateway
        .ok_with(token, "{ me { displayName } }", json!({}))
        .await["me"]["displayName"]
        .clone()
}

async fn events_out_of_order_and_twice_leave_the_newest_profile(backend: Backend) {
    let fake = FakeAuth0::start().await;
    fake.put_user(user("auth0|alice", "A0"));
    let gateway = spawn(backend, &fake).await;
    let url = gateway.url("/auth0/events");
    let token = fake.mint("auth0|alice", json!({}));
    assert_eq!(display_name(&gateway, &token).await, "A0");
    tick().await;
    fake.put_user(user("auth0|alice", "A1"));
    tick().await;
    fake.put_user(user("auth0|alice", "A2"));
    let events = fake.events();
    let [e0, e1, e2] = [&events[0], &events[1], &events[2]];
    assert_eq!(e2["type"], "user.updated");

    let delivery = json!([e2, e1, e2, e0]);
    assert_eq!(fake.deliver(&url, EVENTS_TOKEN, &delivery).await, 200);
    assert_eq!(display_name(&gateway, &token).await, "A2");
    // One event alone, older than the stored profile: nothing changes.
    assert_eq!(fake.deliver(&url, EVENTS_TOKEN, e1).await, 200);
    assert_eq!(display_name(&gateway, &token).await, "A2");
    assert_eq!(fake.calls().management(), 1, "{:?}", fake.calls());
}

async fn an_event_keeps_the_app_metadata_change_waiting_in_the_outbox(backend: Backend) {
    let fake = FakeAuth0::start().await;
    fake.put_user(user("auth0|alice", "Alice"));
    let gateway = spawn(backend, &fake).await;
    let token = fake.mint("auth0|alice", json!({}));
    gateway.ok_with(&token, "{ me { id } }", json!({})).await;
    fake.fail_next(1_000_000, 503);
    let admin = fake.mint("auth0|admin", json!({"scope": "write:app_metadata"}));
    gateway
        .ok_with(
            &admin,
            "mutation { setUserPlan(userId: \"auth0|alice\", plan: FAMILY) { plan } }",
            json!({}),
        )
        .await;
    // Meanwhile someone renames Alice in the Dashboard; Auth0 still says premium.
    tick().await;
    fake.put_user(user("auth0|alice", "Dash"));
    let event = fake.events().last().unwrap().clone();
    assert_eq!(
        fake.deliver(&gateway.url("/auth0/events"), EVENTS_TOKEN, &event)
            .await,
        200
    );
    let me = gateway
        .ok_with(&token, "{ me { displayName plan } }", json!({}))
        .await;
    assert_eq!(me["me"], json!({"displayName": "Dash", "plan": "FAMILY"}));
    fake.fail_next(0, 503);
    eventually(Duration::from_secs(20), "the plan at Auth0", async || {
        fake.user("auth0|alice").unwrap()["app_metadata"]["plan"] == "family"
    })
    .await;
}

async fn deliveries_need_their_token_and_a_well_formed_body(backend: Backend) {
    let fake = FakeAuth0::start().await;
    let gateway = spawn(backend, &fake).await;
    let events = gateway.url("/auth0/events");
    let logs = gateway.url("/auth0/log-stream");
    let event = json!({"id": "1", "source": "s", "specversion": "1.0", "type": "user.updated",
        "time": "2026-01-01T00:00:00.000Z",
        "data": {"object": {"user_id": "auth0|x", "updated_at": "2026-01-01T00:00:00.000Z"}}});
    let client = reqwest::Client::new();
    let unauthenticated = client.post(&events).json(&event).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
    assert_eq!(
        fake.deliver(&events, "wrong-token-0123456789", &event)
            .await,
        401
    );
    assert_eq!(fake.deliver(&events, LOGS_TOKEN, &event).await, 401);
    assert_eq!(fake.deliver(&logs, EVENTS_TOKEN, &json!([])).await, 401);
    let not_json = client
        .post(&events)
        .bearer_auth(EVENTS_TOKEN)
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let no_user =
        json!({"id": "1", "source": "s", "specversion": "1.0", "type": "user.updated", "data": {}});
    assert_eq!(fake.deliver(&events, EVENTS_TOKEN, &no_user).await, 400);
    assert_eq!(
        fake.deliver(&logs, LOGS_TOKEN, &json!([{"log_id": "1"}]))
            .await,
        400
    );
    let other = json!({"id": "2", "source": "s", "specversion": "1.0", "type": "organization.created", "data": {}});
    assert_eq!(fake.deliver(&events, EVENTS_TOKEN, &other).await, 200);
    assert_eq!(fake.deliver(&events, EVENTS_TOKEN, &event).await, 200);

    // A database failure is Auth0's to retry.
    let db = Database::connect(&gateway.database_url).await.unwrap();
    db.execute_unprepared("DROP TABLE deleted_users")
        .await
        .unwrap();
    let deleted = json!({"id": "3", "source": "s", "specversion": "1.0", "type": "user.deleted",
        "time": "2026-01-02T00:00:00.000Z", "data": {"object": {"user_id": "auth0|x"}}});
    assert_eq!(fake.deliver(&events, EVENTS_TOKEN, &deleted).await, 503);

    // Without their tokens, the routes are off.
    let plain = TestApp::spawn_auth0(backend, &fake, |_| {}).await;
    assert_eq!(
        fake.deliver(&plain.url("/auth0/events"), EVENTS_TOKEN, &event)
            .await,
        404
    );
    assert_eq!(
        fake.deliver(&plain.url("/auth0/log-stream"), LOGS_TOKEN, &json!([]))
            .await,
        404
    );
}

async fn a_deleted_event_deletes_and_its_late_duplicate_spares_a_new_signup(backend: Backend) {
    let fake = FakeAuth0::start().await;
    fake.put_user(user("auth0|alice", "Alice"));
    let gateway = spawn(backend, &fake).await;
    let db = Database::connect(&gateway.database_url).await.unwrap();
    let url = gateway.url("/auth0/events");
    let old = fake.mint("auth0|alice", json!({}));
    gateway
        .ok_with(
            &old,
            "mutation { addSong(input: {name: \"R\"}) { id } }",
            json!({}),
        )
        .await;
    tick().await;
    assert!(fake.remove_user("auth0|alice"));
    let deleted = fake.events().last().unwrap().clone();
    assert_eq!(deleted["type"], "user.deleted");
    assert_eq!(fake.deliver(&url, EVENTS_TOKEN, &deleted).await, 200);
    assert_eq!(count(&db, "SELECT COUNT(*) AS n FROM songs").await, 0);
    assert_eq!(count(&db, "SELECT COUNT(*) AS n FROM users").await, 0);
    let (_, body) = gateway.post(Some(&old), "{ me { id } }", json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");

    // Alice signs up again with the same id; the deletion arrives once more, late.
    tick().await;
    fake.put_user(user("auth0|alice", "New Alice"));
    let created = fake.events().last().unwrap().clone();
    assert_eq!(created["type"], "user.created");
    assert_eq!(
        fake.deliver(&url, EVENTS_TOKEN, &json!([created, deleted]))
            .await,
        200
    );
    let calls = fake.calls().management();
    let new = fake.mint_after_login(
        "auth0|alice",
        UPDATED_AT_CLAIM,
        json!({"iat": chrono::Utc::now().timestamp() + 2}),
    );
    let me = gateway
        .ok_with(
            &new,
            "{ me { displayName songs { totalCount } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        me["me"],
        json!({"displayName": "New Alice", "songs": {"totalCount": 0}})
    );
    assert_eq!(fake.calls().management(), calls, "served from the event");
    let (_, body) = gateway.post(Some(&old), "{ me { id } }", json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
}

async fn a_thousand_events_for_a_thousand_users_cost_no_management_call(backend: Backend) {
    let fake = FakeAuth0::start().await;
    let gateway = spawn(backend, &fake).await;
    let db = Database::connect(&gateway.database_url).await.unwrap();
    for n in 0..1000 {
        fake.put_user(user(&format!("auth0|u{n}"), &format!("User {n}")));
    }
    let events = fake.events();
    // Out of order (odd ones first, backwards) and a tenth of them twice.
    let mut order: Vec<&Value> = events.iter().rev().step_by(2).collect();
    order.extend(events.iter().step_by(2));
    order.extend(events.iter().step_by(10));
    for batch in order.chunks(100) {
        let status = fake
            .deliver(&gateway.url("/auth0/events"), EVENTS_TOKEN, &json!(batch))
            .await;
        assert_eq!(status, 200);
    }
    assert_eq!(count(&db, "SELECT COUNT(*) AS n FROM users").await, 1000);
    let token = fake.mint_after_login("auth0|u500", UPDATED_AT_CLAIM, json!({}));
    assert_eq!(display_name(&gateway, &token).await, "User 500");
    assert_eq!(fake.calls().management(), 0, "{:?}", fake.calls());
}

async fn log_stream_batches_delete_refresh_and_ignore_the_rest(backend: Backend) {
    let fake = FakeAuth0::start().await;
    for id in ["auth0|alice", "auth0|bob", "auth0|dave"] {
        fake.put_user(user(id, "before"));
    }
    let gateway = spawn(backend, &fake).await;
    let db = Database::connect(&gateway.database_url).await.unwrap();
    let tokens: Vec<String> = ["auth0|alice", "auth0|bob", "auth0|dave"]
        .iter()
        .map(|id| fake.mint(id, json!({})))
        .collect();
    // The free plan's budget syncs two at once, the third a moment later.
    eventually(Duration::from_secs(20), "three synced users", async || {
        let mut synced = true;
        for token in &tokens {
            synced &= display_name(&gateway, token).await == "before";
        }
        synced
    })
    .await;
    // Alice's own change goes through the gateway (its own sapi, ignored).
    gateway
        .ok_with(
            &tokens[0],
            "mutation { updateMe(input: {favGenre: \"jazz\"}) { id } }",
            json!({}),
        )
        .await;
    tick().await;
    let skip = fake.log_entries().len();
    fake.put_user(user("auth0|alice", "changed by an admin"));
    fake.put_user(user("auth0|bob", "changed at login"));
    fake.log_login("auth0|bob");
    fake.remove_user("auth0|dave");
    let logs = fake.log_entries();
    let sapi_alice = &logs[skip];
    let s_bob = &logs[skip + 2];
    let sdu_dave = &logs[skip + 3];
    assert_eq!(
        [
            &sapi_alice["data"]["type"],
            &s_bob["data"]["type"],
            &sdu_dave["data"]["type"]
        ],
        ["sapi", "s", "sdu"]
    );
    let failed_login = json!({"log_id": "x", "data": {"type": "fp", "date": "2026-01-01T00:00:00.000Z", "user_id": "auth0|alice"}});
    let calls = fake.calls().management();
    let batch = json!([sapi_alice, s_bob, sdu_dave, failed_login, sdu_dave]);
    assert_eq!(
        fake.deliver(&gateway.url("/auth0/log-stream"), LOGS_TOKEN, &batch)
            .await,
        200
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) AS n FROM users WHERE id = 'auth0|dave'"
        )
        .await,
        0
    );
    eventually(Duration::from_secs(20), "both refreshes", async || {
        display_name(&gateway, &tokens[0]).await == "changed by an admin"
            && display_name(&gateway, &tokens[1]).await == "changed at login"
    })
    .await;
    assert_eq!(fake.calls().management(), calls + 2, "{:?}", fake.calls());
    assert_eq!(fake.calls().rate_limited, 0);
}

for_both_backends!(
    events_out_of_order_and_twice_leave_the_newest_profile,
    an_event_keeps_the_app_metadata_change_waiting_in_the_outbox,
    deliveries_need_their_token_and_a_well_formed_body,
    a_deleted_event_deletes_and_its_late_duplicate_spares_a_new_signup,
    a_thousand_events_for_a_thousand_users_cost_no_management_call,
    log_stream_batches_delete_refresh_and_ignore_the_rest,
);
