//! Auth0 without polling: refreshes only on a change, events pushed by
//! Auth0, and account deletion.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::{
    fake_auth0::FakeAuth0,
    for_both_backends,
    helpers::{Backend, TestApp, UPDATED_AT_CLAIM},
};

const ME: &str = "{ me { id displayName roles plan } }";

fn alice() -> Value {
    json!({
        "user_id": "auth0|alice",
        "email": "alice@example.com",
        "user_metadata": {"displayName": "Alice"},
        "app_metadata": {"roles": ["beta_tester"], "plan": "premium"}
    })
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn token_refreshes_of_an_unchanged_profile_cost_no_management_call(backend: Backend) {
    let fake = FakeAuth0::start().await;
    fake.put_user(alice());
    let gateway = TestApp::spawn_auth0(backend, &fake, |_| {}).await;
    let first = fake.mint_after_login("auth0|alice", UPDATED_AT_CLAIM, json!({}));
    gateway.ok_with(&first, ME, json!({})).await;
    assert_eq!(fake.calls().management(), 1, "{:?}", fake.calls());

    // Silent authentication and refresh-token exchanges: every token is
    // newer than the last sync, none carries a newer profile.
    let now = unix_now();
    for i in 1..=100 {
        let token = fake.mint_after_login("auth0|alice", UPDATED_AT_CLAIM, json!({"iat": now + i}));
        gateway.ok_with(&token, "{ me { id } }", json!({})).await;
    }
    assert_eq!(fake.calls().management(), 1, "{:?}", fake.calls());

    // A change in the Auth0 Dashboard, then a new token: one read.
    let mut changed = alice();
    changed["user_metadata"]["displayName"] = json!("Alice L.");
    fake.put_user(changed);
    let token = fake.mint_after_login("auth0|alice", UPDATED_AT_CLAIM, json!({"iat": now + 200}));
    let me = gateway.ok_with(&token, ME, json!({})).await;
    assert_eq!(me["me"]["displayName"], "Alice L.");
    assert_eq!(fake.calls().management(), 2, "{:?}", fake.calls());
    // ...and the tokens after it cost nothing again.
    let token = fake.mint_after_login("auth0|alice", UPDATED_AT_CLAIM, json!({"iat": now + 201}));
    gateway.ok_with(&token, ME, json!({})).await;
    assert_eq!(fake.calls().management(), 2, "{:?}", fake.calls());
}

async fn the_users_own_change_stores_auth0s_updated_at(backend: Backend) {
    let fake = FakeAuth0::start().await;
    fake.put_user(alice());
    let gateway = TestApp::spawn_auth0(backend, &fake, |_| {}).await;
    let first = fake.mint_after_login("auth0|alice", UPDATED_AT_CLAIM, json!({}));
    gateway
        .ok_with(
            &first,
            "mutation { updateMe(input: {displayName: \"Ally\"}) { displayName } }",
            json!({}),
        )
        .await;
    assert_eq!(fake.calls().management(), 2, "{:?}", fake.calls());
    // The next login carries the updated_at of the gateway's own write.
    let next = fake.mint_after_login(
        "auth0|alice",
        UPDATED_AT_CLAIM,
        json!({"iat": unix_now() + 10}),
    );
    let me = gateway.ok_with(&next, ME, json!({})).await;
    assert_eq!(me["me"]["displayName"], "Ally");
    assert_eq!(fake.calls().management(), 2, "{:?}", fake.calls());
}

for_both_backends!(
    token_refreshes_of_an_unchanged_profile_cost_no_management_call,
    the_users_own_change_stores_auth0s_updated_at,
);
