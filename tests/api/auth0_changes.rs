//! Auth0 without polling: refreshes only on a change, events pushed by
//! Auth0, and account deletion.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};

use crate::helpers::{count, eventually};
use crate::{
    cli::start_gateway,
    fake_auth0::FakeAuth0,
    for_both_backends,
    helpers::{Backend, TestApp, UPDATED_AT_CLAIM, error_code, fresh_database},
    on_both_databases,
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

/// Rows that belong to `user` in every table that holds a user's data.
async fn rows_of(db: &DatabaseConnection, user: &str) -> i64 {
    let mut total = 0;
    for (table, column) in [
        ("users", "id"),
        ("user_data", "user_id"),
        ("songs", "user_id"),
        ("playlists", "user_id"),
        ("playlist_songs", "user_id"),
    ] {
        total += count(
            db,
            &format!("SELECT COUNT(*) AS n FROM {table} WHERE {column} = '{user}'"),
        )
        .await;
    }
    total
}

/// Waits for alice's account to be gone at Auth0 and the outbox to be
/// empty, then asserts that the only write Auth0 received for her was the
/// DELETE.
async fn deleted_at_auth0_by_one_delete(fake: &FakeAuth0, db: &DatabaseConnection, why: &str) {
    eventually(
        Duration::from_secs(20),
        "the account gone at Auth0",
        async || fake.user("auth0|alice").is_none(),
    )
    .await;
    eventually(Duration::from_secs(5), "an empty outbox", async || {
        count(db, "SELECT COUNT(*) AS n FROM outbox").await == 0
    })
    .await;
    let writes: Vec<_> = fake
        .served()
        .into_iter()
        .filter(|s| s.user_id == "auth0|alice" && s.method != "GET")
        .map(|s| s.method)
        .collect();
    assert_eq!(writes, ["DELETE"], "{why}");
}

/// Gives `token`'s user a song, a played playlist and a favourite genre.
async fn fill(gateway: &TestApp, token: &str) {
    let song = gateway
        .ok_with(
            token,
            "mutation { addSong(input: {name: \"Roads\"}) { id } }",
            json!({}),
        )
        .await["addSong"]["id"]
        .clone();
    let playlist = gateway
        .ok_with(
            token,
            "mutation($s: ID!) { createPlaylist(input: {name: \"P\", songIds: [$s]}) { id } }",
            json!({"s": song}),
        )
        .await["createPlaylist"]["id"]
        .clone();
    gateway
        .ok_with(
            token,
            "mutation($p: ID!) { recordPlay(playlistId: $p) { plays } }",
            json!({"p": playlist}),
        )
        .await;
    gateway
        .ok_with(
            token,
            "mutation { updateMe(input: {favGenre: \"jazz\"}) { favGenre } }",
            json!({}),
        )
        .await;
}

const EMPTY_ME: &str = "{ me { id favGenre songs { totalCount } playlists { totalCount } } }";

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

async fn delete_me_removes_the_data_and_the_auth0_account(backend: Backend) {
    let fake = FakeAuth0::start().await;
    fake.put_user(alice());
    let gateway = TestApp::spawn_auth0(backend, &fake, |_| {}).await;
    let db = Database::connect(&gateway.database_url).await.unwrap();
    let old = fake.mint("auth0|alice", json!({}));
    fill(&gateway, &old).await;
    // An admin change still waiting for Auth0 when the user deletes the account.
    fake.fail_next(1_000_000, 503);
    let admin = fake.mint("auth0|admin", json!({"scope": "write:app_metadata"}));
    gateway
        .ok_with(
            &admin,
            "mutation { setUserPlan(userId: \"auth0|alice\", plan: FAMILY) { plan } }",
            json!({}),
        )
        .await;
    assert!(rows_of(&db, "auth0|alice").await > 0);
    // Delete between two attempts of the change: a PATCH already claimed
    // and on its way (on SQLite it waits for the deletion's write lock to
    // spend the budget, then goes out) may still reach Auth0 before the
    // DELETE; the next attempt is two seconds away.
    eventually(
        Duration::from_secs(20),
        "the plan change failed once and waits for its retry",
        async || {
            count(
                &db,
                "SELECT COUNT(*) AS n FROM outbox WHERE user_id = 'auth0|alice' \
                 AND attempts >= 1 AND locked_by IS NULL",
            )
            .await
                == 1
        },
    )
    .await;

    let deleted = gateway
        .ok_with(&old, "mutation { deleteMe }", json!({}))
        .await;
    assert_eq!(deleted["deleteMe"], "auth0|alice");
    assert_eq!(rows_of(&db, "auth0|alice").await, 0);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) AS n FROM outbox WHERE user_id = 'auth0|alice' AND kind = 'app_metadata'"
        )
        .await,
        0,
        "the pending patch is moot"
    );

    fake.fail_next(0, 503);
    deleted_at_auth0_by_one_delete(&fake, &db, "no PATCH of a deleted account").await;

    // The old token neither reaches data nor brings the account back.
    let (status, body) = gateway.post(Some(&old), EMPTY_ME, json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    assert_eq!(rows_of(&db, "auth0|alice").await, 0);

    // A new signup with the same id works at once and starts empty.
    fake.put_user(json!({"user_id": "auth0|alice", "email": "alice@example.com"}));
    let new = fake.mint("auth0|alice", json!({"iat": unix_now() + 2}));
    let me = gateway.ok_with(&new, EMPTY_ME, json!({})).await;
    assert_eq!(
        me["me"],
        json!({"id": "auth0|alice", "favGenre": null, "songs": {"totalCount": 0}, "playlists": {"totalCount": 0}})
    );
    // ...and the old token stays refused.
    let (_, body) = gateway.post(Some(&old), EMPTY_ME, json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
}

/// A change claimed by a worker that waits for the Management API budget is
/// not sent when the account is deleted meanwhile: the worker looks again
/// once it has the budget's token.
async fn a_change_waiting_for_the_budget_is_not_sent_after_a_deletion(backend: Backend) {
    let fake = FakeAuth0::start().await;
    fake.put_user(alice());
    let gateway = TestApp::spawn_auth0(backend, &fake, |_| {}).await;
    let db = Database::connect(&gateway.database_url).await.unwrap();
    let token = fake.mint("auth0|alice", json!({}));
    gateway.ok_with(&token, "{ me { id } }", json!({})).await;
    // As another client's 429 would: empty, and paused for long.
    db.execute_unprepared("UPDATE mgmt_budget SET tokens = 0, paused_until = 1e12 WHERE id = 1")
        .await
        .unwrap();
    let admin = fake.mint("auth0|admin", json!({"scope": "write:app_metadata"}));
    gateway
        .ok_with(
            &admin,
            "mutation { setUserPlan(userId: \"auth0|alice\", plan: FAMILY) { plan } }",
            json!({}),
        )
        .await;
    eventually(
        Duration::from_secs(10),
        "a worker holding the plan change, waiting for the budget",
        async || {
            count(
                &db,
                "SELECT COUNT(*) AS n FROM outbox WHERE user_id = 'auth0|alice' \
                 AND kind = 'app_metadata' AND locked_by IS NOT NULL",
            )
            .await
                == 1
        },
    )
    .await;

    gateway
        .ok_with(&token, "mutation { deleteMe }", json!({}))
        .await;
    db.execute_unprepared("UPDATE mgmt_budget SET tokens = 10, paused_until = 0 WHERE id = 1")
        .await
        .unwrap();
    deleted_at_auth0_by_one_delete(&fake, &db, "the withdrawn plan change was not sent").await;
}

async fn a_user_already_gone_at_auth0_counts_as_deleted(backend: Backend) {
    for status in [204, 404] {
        let fake = FakeAuth0::start().await;
        fake.put_user(alice());
        fake.set_missing_delete_status(status);
        let gateway = TestApp::spawn_auth0(backend, &fake, |_| {}).await;
        let db = Database::connect(&gateway.database_url).await.unwrap();
        let token = fake.mint("auth0|alice", json!({}));
        gateway.ok_with(&token, "{ me { id } }", json!({})).await;
        // Deleted in the Dashboard meanwhile.
        assert!(fake.remove_user("auth0|alice"));
        gateway
            .ok_with(&token, "mutation { deleteMe }", json!({}))
            .await;
        eventually(Duration::from_secs(20), "an empty outbox", async || {
            count(&db, "SELECT COUNT(*) AS n FROM outbox").await == 0
        })
        .await;
        assert_eq!(fake.calls().delete_user, 1, "answered {status}");
    }
}

async fn admins_delete_users_and_others_may_not(app: TestApp) {
    let db = Database::connect(&app.database_url).await.unwrap();
    let bob = app.token("auth0|bob");
    fill(&app, &bob).await;
    let (_, body) = app
        .post(
            Some(&app.token("auth0|eve")),
            "mutation { deleteUser(userId: \"auth0|bob\") }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    assert!(rows_of(&db, "auth0|bob").await > 0);

    let admin = app.token_with("auth0|admin", json!({"scope": "write:app_metadata"}));
    let (_, body) = app
        .post(
            Some(&admin),
            "mutation { deleteUser(userId: \"auth0|nobody\") }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
    let data = app
        .ok_with(
            &admin,
            "mutation { deleteUser(userId: \"auth0|bob\") }",
            json!({}),
        )
        .await;
    assert_eq!(data["deleteUser"], "auth0|bob");
    assert_eq!(rows_of(&db, "auth0|bob").await, 0);
    let (_, body) = app.post(Some(&bob), EMPTY_ME, json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
}

async fn local_delete_me_removes_the_local_data(app: TestApp) {
    let db = Database::connect(&app.database_url).await.unwrap();
    let old = app.token("auth0|carol");
    fill(&app, &old).await;
    let other = app.token("auth0|dave");
    fill(&app, &other).await;
    let data = app.ok_with(&old, "mutation { deleteMe }", json!({})).await;
    assert_eq!(data["deleteMe"], "auth0|carol");
    assert_eq!(rows_of(&db, "auth0|carol").await, 0);
    assert!(
        rows_of(&db, "auth0|dave").await > 0,
        "no one else's data goes"
    );
    let (_, body) = app.post(Some(&old), EMPTY_ME, json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    // The local issuer stamps iat itself, in whole seconds: a signup after
    // the deletion is a token from a later second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let new = app.token("auth0|carol");
    let me = app.ok_with(&new, EMPTY_ME, json!({})).await;
    assert_eq!(me["me"]["songs"]["totalCount"], 0);
    assert_eq!(me["me"]["favGenre"], Value::Null);
}

/// The account deletion across a real crash: the process is killed with
/// SIGKILL after the local commit while Auth0 is down, and the deletion
/// reaches Auth0 after a restart.
async fn a_deletion_survives_sigkill_after_the_local_commit(backend: Backend) {
    let fake = FakeAuth0::start().await;
    fake.put_user(alice());
    let dir = tempfile::TempDir::new().unwrap();
    let database = fresh_database(backend, dir.path()).await;
    let envs = [
        ("DATA_DIR", dir.path().display().to_string()),
        ("DATABASE_URL", database.url.clone()),
        ("IDENTITY_MODE", "auth0".to_owned()),
        ("AUTH0_DOMAIN", fake.base_url()),
        ("AUTH0_AUDIENCE", fake.audience()),
        ("AUTH0_CLIENT_ID", fake.client_id()),
        ("AUTH0_CLIENT_SECRET", fake.client_secret()),
        ("AUTH0_TIMEOUT_MS", "500".to_owned()),
        ("OUTBOX_LEASE_SECONDS", "3".to_owned()),
    ];
    let client = reqwest::Client::new();
    let post = async |url: &str, token: &str, query: &str| -> Value {
        client
            .post(url)
            .bearer_auth(token)
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let mut first = start_gateway(&envs);
    let token = fake.mint("auth0|alice", json!({}));
    let me = post(&first.url, &token, "{ me { id } }").await;
    assert_eq!(me["data"]["me"]["id"], "auth0|alice", "{me}");
    fake.fail_next(1_000_000, 503);
    let failed_before = fake.calls().failed;
    let deleted = post(&first.url, &token, "mutation { deleteMe }").await;
    assert_eq!(deleted["data"]["deleteMe"], "auth0|alice", "{deleted}");
    eventually(
        Duration::from_secs(20),
        "the outbox to try Auth0",
        async || fake.calls().failed > failed_before,
    )
    .await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert!(fake.user("auth0|alice").is_some());

    fake.fail_next(0, 503);
    let second = start_gateway(&envs);
    let started = Instant::now();
    while fake.user("auth0|alice").is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the deletion never reached Auth0; the restarted gateway's log:\n{}",
            second.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = post(&second.url, &token, "{ me { id } }").await;
    assert_eq!(
        again["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{again}"
    );
}

for_both_backends!(
    token_refreshes_of_an_unchanged_profile_cost_no_management_call,
    the_users_own_change_stores_auth0s_updated_at,
    delete_me_removes_the_data_and_the_auth0_account,
    a_change_waiting_for_the_budget_is_not_sent_after_a_deletion,
    a_user_already_gone_at_auth0_counts_as_deleted,
    a_deletion_survives_sigkill_after_the_local_commit,
);

on_both_databases!(
    admins_delete_users_and_others_may_not,
    local_delete_me_removes_the_local_data,
);
