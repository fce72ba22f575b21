//! Several real gateway processes over one database, as production runs
//! them: started together, sharing one Auth0 budget and one outbox, one of
//! them killed.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use futures::{StreamExt, future::join_all, stream};
use sea_orm::{ConnectionTrait, Database, FromQueryResult, Statement};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::count;
use crate::{
    cli::{Running, gateway, start_gateway},
    fake_auth0::FakeAuth0,
    for_both_backends,
    helpers::{Backend, TestApp, eventually, fresh_database},
};

/// Starts `count` gateways at the same moment, each with its own data
/// directory under `dir` and `envs`.
async fn start_together(count: usize, dir: &TempDir, envs: &[(&str, String)]) -> Vec<Running> {
    let starts = (0..count).map(|i| {
        let data_dir = dir.path().join(format!("instance-{i}"));
        let mut envs: Vec<(String, String)> = envs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        envs.push(("DATA_DIR".into(), data_dir.display().to_string()));
        tokio::task::spawn_blocking(move || {
            let envs: Vec<(&str, String)> =
                envs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            start_gateway(&envs)
        })
    });
    join_all(starts)
        .await
        .into_iter()
        .map(|started| started.expect("an instance failed to start"))
        .collect()
}

async fn post(client: &reqwest::Client, gateway: &Running, token: &str, query: &str) -> Value {
    client
        .post(&gateway.url)
        .bearer_auth(token)
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON body")
}

async fn instances_started_together_all_come_up_and_share_one_signing_key(backend: Backend) {
    let dir = TempDir::new().unwrap();
    let database = fresh_database(backend, dir.path()).await;
    let url = database.url.clone();
    let envs = [("DATABASE_URL", url.clone())];
    let gateways = start_together(3, &dir, &envs).await;

    // `migrate` takes the same lock: two at once on the migrated database
    // both succeed.
    let migrations = (0..2).map(|_| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            gateway()
                .env("DATABASE_URL", url)
                .arg("migrate")
                .output()
                .unwrap()
        })
    });
    for output in join_all(migrations).await {
        let output = output.unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    // A token minted with another data directory but the same database is
    // accepted by every instance.
    let elsewhere = TempDir::new().unwrap();
    let output = gateway()
        .env("DATABASE_URL", &url)
        .env("DATA_DIR", elsewhere.path())
        .args(["token", "--sub", "auth0|shared"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let client = reqwest::Client::new();
    for (i, gateway) in gateways.iter().enumerate() {
        let body = post(&client, gateway, &token, "{ me { id } }").await;
        assert_eq!(
            body["data"]["me"]["id"],
            "auth0|shared",
            "instance {i}: {body}\n{}",
            gateway.log()
        );
        let jwks: Value = client
            .get(format!("{}/.well-known/jwks.json", gateway.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1), "{jwks}");
    }
}

for_both_backends!(instances_started_together_all_come_up_and_share_one_signing_key);

#[derive(Debug, FromQueryResult)]
struct AppMetadata {
    id: String,
    app_metadata: Value,
}

/// The scenario at the free plan's 2 requests a second: three
/// instances over one PostgreSQL database, two hundred first-seen users each
/// seen by two instances at once, role changes spread over all three, and one
/// instance killed with SIGKILL while it holds claimed outbox entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_share_one_budget_and_apply_each_outbox_change_once() {
    const USERS: usize = 200;
    let fake = FakeAuth0::start().await;
    let ids: Vec<String> = (0..USERS).map(|i| format!("auth0|user{i}")).collect();
    for id in &ids {
        fake.put_user(json!({"user_id": id, "app_metadata": {"plan": "free"}}));
    }
    fake.put_user(json!({"user_id": "auth0|admin"}));
    let dir = TempDir::new().unwrap();
    let database = fresh_database(Backend::Postgres, dir.path()).await;
    let url = database.url.clone();
    let envs = [
        ("DATABASE_URL", url.clone()),
        ("IDENTITY_MODE", "auth0".to_owned()),
        ("AUTH0_DOMAIN", fake.base_url()),
        ("AUTH0_AUDIENCE", fake.audience()),
        ("AUTH0_CLIENT_ID", fake.client_id()),
        ("AUTH0_CLIENT_SECRET", fake.client_secret()),
        ("AUTH0_MGMT_RATE", "2".to_owned()),
        ("AUTH0_MGMT_BURST", "2".to_owned()),
        ("OUTBOX_LEASE_SECONDS", "6".to_owned()),
    ];
    let mut gateways = start_together(3, &dir, &envs).await;
    let client = reqwest::Client::new();
    let tokens: Vec<String> = ids.iter().map(|id| fake.mint(id, json!({}))).collect();
    let admin = fake.mint(
        "auth0|admin",
        json!({"permissions": ["write:app_metadata"]}),
    );
    for gateway in &gateways {
        let body = post(&client, gateway, &admin, "{ me { id } }").await;
        assert_eq!(body["data"]["me"]["id"], "auth0|admin", "{body}");
    }

    // Each new user signs in on two instances at the same moment.
    let gateways_ref = &gateways;
    let client_ref = &client;
    let answers: Vec<(usize, Value, Value)> = stream::iter(tokens.iter().enumerate())
        .map(|(i, token)| async move {
            let (a, b) = tokio::join!(
                post(client_ref, &gateways_ref[i % 3], token, "{ me { id } }"),
                post(
                    client_ref,
                    &gateways_ref[(i + 1) % 3],
                    token,
                    "{ me { id } }"
                ),
            );
            (i, a, b)
        })
        .buffer_unordered(12)
        .collect()
        .await;
    for (i, a, b) in answers {
        assert_eq!(a["data"]["me"]["id"], ids[i].as_str(), "{a}");
        assert_eq!(b["data"]["me"]["id"], ids[i].as_str(), "{b}");
    }

    // Role changes through every instance: two for each of the first 20
    // users, the second sent after the first committed.
    let mut committed: Vec<(String, String)> = Vec::new();
    for round in 0..2 {
        let changes: Vec<(String, String, usize)> = (0..20)
            .map(|u| (ids[u].clone(), format!("role-{round}-{u}"), (u + round) % 3))
            .collect();
        let results = join_all(changes.iter().map(|(user, role, via)| {
            let query = format!(
                "mutation {{ setUserRoles(userId: \"{user}\", roles: [\"{role}\"]) {{ roles }} }}"
            );
            let gateway = &gateways[*via];
            let client = &client;
            let admin = &admin;
            async move { post(client, gateway, admin, &query).await }
        }))
        .await;
        for ((user, role, _), body) in changes.into_iter().zip(results) {
            assert_eq!(
                body["data"]["setUserRoles"]["roles"],
                json!([role]),
                "{body}"
            );
            committed.push((user, role));
        }
    }

    // Another client of the tenant spends its budget (as a 429 would tell
    // the gateway): every instance stops sending, while their workers keep
    // claiming. Instance 0 is killed while it holds claims none of which
    // can have been sent.
    let db = Database::connect(&url).await.unwrap();
    db.execute_unprepared(
        "UPDATE mgmt_budget SET tokens = 0, \
         paused_until = extract(epoch from clock_timestamp()) + 8 WHERE id = 1",
    )
    .await
    .unwrap();
    let victim_pid = gateways[0].child.id();
    let held = format!(
        "SELECT count(*) AS n FROM outbox WHERE locked_by LIKE '{victim_pid}-%' AND locked_until > now()"
    );
    let started = Instant::now();
    while count(&db, &held).await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(7),
            "instance 0 never held an outbox claim; pending: {}\n{}",
            count(&db, "SELECT count(*) AS n FROM outbox").await,
            gateways[0].log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gateways[0].child.kill().unwrap();
    gateways[0].child.wait().unwrap();

    // The others finish everything: the outbox drains (the killed
    // instance's claims after their lease), every user is synced.
    let started = Instant::now();
    loop {
        let pending = count(&db, "SELECT count(*) AS n FROM outbox").await;
        let unsynced = count(
            &db,
            "SELECT count(*) AS n FROM users WHERE synced_at IS NULL",
        )
        .await;
        let refreshing = count(&db, "SELECT count(*) AS n FROM refresh_claims").await;
        if pending == 0 && unsynced == 0 && refreshing == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(400),
            "not done: {pending} outbox entries, {unsynced} users unsynced, {refreshing} refreshing\n{}",
            gateways[1].log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let calls = fake.calls();
    assert_eq!(calls.rate_limited, 0, "the tenant answered 429: {calls:?}");
    let served = fake.served();
    let patches: Vec<_> = served.iter().filter(|s| s.method == "PATCH").collect();
    for (user, role) in &committed {
        let sent = patches
            .iter()
            .filter(|p| &p.user_id == user && p.body == json!({"app_metadata": {"roles": [role]}}))
            .count();
        assert_eq!(sent, 1, "the change {user} -> {role} was sent {sent} times");
    }
    assert_eq!(patches.len(), committed.len(), "PATCHes: {patches:#?}");
    // One user's changes arrive in the order they were committed.
    for (u, id) in ids.iter().enumerate().take(20) {
        let order: Vec<&Value> = patches
            .iter()
            .filter(|p| &p.user_id == id)
            .map(|p| &p.body["app_metadata"]["roles"][0])
            .collect();
        assert_eq!(
            order,
            vec![&json!(format!("role-0-{u}")), &json!(format!("role-1-{u}"))]
        );
    }
    // Two instances seeing one new user at once made one request for it
    // at most (none when an outbox PATCH's answer synced the row first).
    let mut gets: HashMap<&str, usize> = HashMap::new();
    for s in served.iter().filter(|s| s.method == "GET") {
        *gets.entry(s.user_id.as_str()).or_default() += 1;
    }
    for id in &ids {
        let synced_by_a_patch = patches.iter().any(|p| &p.user_id == id);
        let expected = if synced_by_a_patch { 0..=1 } else { 1..=1 };
        assert!(
            expected.contains(gets.get(id.as_str()).unwrap_or(&0)),
            "GETs of {id}: {:?}",
            gets.get(id.as_str())
        );
    }

    // Auth0's final state is the database's.
    let rows = AppMetadata::find_by_statement(Statement::from_string(
        db.get_database_backend(),
        "SELECT id, app_metadata FROM users WHERE id LIKE 'auth0|user%'",
    ))
    .all(&db)
    .await
    .unwrap();
    let stored: BTreeMap<String, Value> =
        rows.into_iter().map(|r| (r.id, r.app_metadata)).collect();
    assert_eq!(stored.len(), USERS);
    for id in &ids {
        assert_eq!(
            fake.user(id).unwrap()["app_metadata"],
            stored[id],
            "Auth0 and the database disagree on {id}"
        );
    }
}

/// A 429 that Auth0 sends anyway (another client spent the tenant's bucket)
/// pauses every instance on the database, not only the one that got it.
async fn a_429_pauses_every_instance_until_the_reset(backend: Backend) {
    let fake = FakeAuth0::start().await;
    fake.set_rate(0.2, 1);
    for id in ["auth0|first", "auth0|second"] {
        fake.put_user(json!({"user_id": id, "user_metadata": {"displayName": id}}));
    }
    let slow = |config: &mut music_gateway::config::Config| {
        let auth0 = config.auth0.as_mut().unwrap();
        auth0.mgmt_rate = 0.2;
        auth0.mgmt_burst = 1;
    };
    let a = TestApp::spawn_auth0(backend, &fake, slow).await;
    let shared_url = a.database_url.clone();
    let b = TestApp::spawn_auth0(backend, &fake, |config| {
        slow(config);
        config.database_url = shared_url;
    })
    .await;

    // Another client of the tenant takes the one token of Auth0's bucket.
    let token: Value = reqwest::Client::new()
        .post(format!("{}/oauth/token", fake.base_url()))
        .json(&json!({
            "grant_type": "client_credentials",
            "client_id": fake.client_id(),
            "client_secret": fake.client_secret(),
            "audience": fake.management_audience(),
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let other = reqwest::Client::new()
        .get(format!("{}/api/v2/users/auth0%7Cfirst", fake.base_url()))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    let before = fake.calls();

    // A's first request for a new user meets the 429 and serves the claims.
    let (_, body) = a
        .post(
            Some(&fake.mint("auth0|first", json!({}))),
            "{ me { id } }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["me"]["id"], "auth0|first", "{body}");
    assert_eq!(fake.calls().rate_limited, before.rate_limited + 1);

    // B, on the same database, does not even try until Auth0's reset.
    let (_, body) = b
        .post(
            Some(&fake.mint("auth0|second", json!({}))),
            "{ me { id } }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["me"]["id"], "auth0|second", "{body}");
    let after = fake.calls();
    assert_eq!(after.rate_limited, before.rate_limited + 1, "{after:?}");
    assert_eq!(after.get_user, before.get_user, "{after:?}");

    // Both users are synced in the background once Auth0 allows it, with
    // no further 429.
    let started = Instant::now();
    loop {
        let synced = count(
            &a.state.db,
            "SELECT count(*) AS n FROM users WHERE synced_at IS NOT NULL AND id IN ('auth0|first', 'auth0|second')",
        )
        .await;
        if synced == 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "not synced: {:?}",
            fake.calls()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(fake.calls().rate_limited, before.rate_limited + 1);
}

for_both_backends!(a_429_pauses_every_instance_until_the_reset);

/// A user whose change Auth0 keeps refusing for now holds back their own
/// later changes (they must arrive in order) and no one else's.
async fn one_users_failing_change_holds_back_no_other_user(backend: Backend) {
    let fake = FakeAuth0::start().await;
    for id in ["auth0|alice", "auth0|bob"] {
        fake.put_user(json!({"user_id": id, "app_metadata": {"plan": "free"}}));
    }
    fake.put_user(json!({"user_id": "auth0|admin"}));
    let gateway = TestApp::spawn_auth0(backend, &fake, |config| {
        config.auth0.as_mut().unwrap().mgmt_rate = 20.0;
        config.auth0.as_mut().unwrap().mgmt_burst = 10;
    })
    .await;
    fake.set_rate(50.0, 20);
    for id in ["auth0|alice", "auth0|bob", "auth0|admin"] {
        let me = gateway
            .ok_with(&fake.mint(id, json!({})), "{ me { id } }", json!({}))
            .await;
        assert_eq!(me["me"]["id"], id);
    }
    let admin = fake.mint(
        "auth0|admin",
        json!({"permissions": ["write:app_metadata"]}),
    );
    fake.fail_patches_of("auth0|alice", Some(503));
    for (user, plan) in [
        ("auth0|alice", "FAMILY"),
        ("auth0|alice", "PREMIUM"),
        ("auth0|bob", "FAMILY"),
    ] {
        let query =
            format!("mutation {{ setUserPlan(userId: \"{user}\", plan: {plan}) {{ plan }} }}");
        let data = gateway.ok_with(&admin, &query, json!({})).await;
        assert_eq!(data["setUserPlan"]["plan"], plan);
    }

    // Bob's change, committed after both of Alice's, reaches Auth0 while
    // Alice's first one is still failing.
    let started = Instant::now();
    while fake.user("auth0|bob").unwrap()["app_metadata"]["plan"] != "family" {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "bob's change is held back: {:?}",
            fake.calls()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(fake.calls().failed >= 1, "alice's change was never tried");
    assert_eq!(
        fake.user("auth0|alice").unwrap()["app_metadata"]["plan"],
        "free"
    );

    // Once Auth0 takes Alice's changes, they arrive in the order committed.
    fake.fail_patches_of("auth0|alice", None);
    eventually(
        Duration::from_secs(60),
        "alice's changes to reach Auth0",
        async || count(&gateway.state.db, "SELECT count(*) AS n FROM outbox").await == 0,
    )
    .await;
    let alice: Vec<Value> = fake
        .served()
        .into_iter()
        .filter(|s| s.method == "PATCH" && s.user_id == "auth0|alice")
        .map(|s| s.body["app_metadata"]["plan"].clone())
        .collect();
    assert_eq!(alice, vec![json!("family"), json!("premium")]);
    assert_eq!(
        fake.user("auth0|alice").unwrap()["app_metadata"]["plan"],
        "premium"
    );
}

for_both_backends!(one_users_failing_change_holds_back_no_other_user);
