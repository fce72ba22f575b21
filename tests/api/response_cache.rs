//! The response cache and ETags: what a hit, a miss and a 304 cost, and that
//! no write, through any instance or path, leaves a stale answer behind.

use std::time::Duration;

use chrono::Utc;
use music_gateway::auth0::Wait;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

use crate::{
    fake_auth0::FakeAuth0,
    for_both_backends,
    helpers::{Backend, TestApp, eventually},
    on_both_databases,
};

/// Everything `me` reads ahead in one statement.
const ME: &str = "{ me { displayName roles plan favGenre
    songs(first: 100) { totalCount nodes { id name artist } }
    playlists(first: 100) { totalCount nodes { id name plays featured songs { nodes { name } } } } } }";

const FEATURED: &str =
    "{ featuredPlaylists { totalCount nodes { id name plays songs { nodes { name artist } } } } }";

const PLAYLIST: &str =
    "query($id: ID!) { playlist(id: $id) { name plays songs { nodes { name artist } } } }";

/// One HTTP answer to a GraphQL request.
struct Answer {
    status: u16,
    etag: Option<String>,
    cache_control: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn data(&self) -> Value {
        let json = self.json();
        assert_eq!(self.status, 200, "{}", self.body);
        assert!(json.get("errors").is_none(), "unexpected errors: {json}");
        json["data"].clone()
    }
}

/// Posts `query` with `token`, and `If-None-Match` when given.
async fn fetch(
    app: &TestApp,
    token: &str,
    query: &str,
    variables: Value,
    if_none_match: Option<&str>,
) -> Answer {
    let mut request = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .json(&json!({"query": query, "variables": variables}));
    if let Some(tag) = if_none_match {
        request = request.header("if-none-match", tag);
    }
    let response = request.send().await.expect("request");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().expect("ASCII header").to_owned())
    };
    let (etag, cache_control) = (header("etag"), header("cache-control"));
    let status = response.status().as_u16();
    let body = response.text().await.expect("body");
    Answer {
        status,
        etag,
        cache_control,
        body,
    }
}

/// `fetch`, with the SQL statements it cost.
async fn costed(
    app: &TestApp,
    token: &str,
    query: &str,
    variables: Value,
    if_none_match: Option<&str>,
) -> (Answer, u64) {
    let before = app.statements();
    let answer = fetch(app, token, query, variables, if_none_match).await;
    (answer, app.statements() - before)
}

/// The answer computed afresh: the same query with a variable no earlier
/// request sent (the operation ignores it, the cache key does not), so it
/// cannot come from the cache.
async fn truth(app: &TestApp, token: &str, query: &str, mut variables: Value) -> Value {
    variables["nonce"] = json!(uuid::Uuid::new_v4().to_string());
    fetch(app, token, query, variables, None).await.data()
}

async fn a_hit_costs_one_statement_and_a_304_sends_no_body(app: TestApp) {
    let token = app.token("auth0|hits");
    app.add_song("auth0|hits", "Song").await;

    let (miss, cost) = costed(&app, &token, ME, json!({}), None).await;
    assert_eq!(miss.data()["me"]["songs"]["totalCount"], 1);
    assert_eq!(
        cost, 2,
        "a miss reads the versions, then runs me's one statement"
    );
    let etag = miss.etag.clone().expect("a cacheable answer has an ETag");
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "a strong tag: {etag}"
    );
    assert_eq!(miss.cache_control.as_deref(), Some("private, no-cache"));

    let (hit, cost) = costed(&app, &token, ME, json!({}), None).await;
    assert_eq!(cost, 1, "a hit reads the versions only");
    assert_eq!(hit.body, miss.body);
    assert_eq!(hit.etag.as_deref(), Some(etag.as_str()));
    assert_eq!(hit.cache_control.as_deref(), Some("private, no-cache"));

    // The same document laid out otherwise, with a comment: the same entry.
    let relaid = format!("# reformatted by a client\n{}\n", ME.replace(' ', "\n  ,"));
    let (hit, cost) = costed(&app, &token, &relaid, json!({}), None).await;
    assert_eq!(cost, 1, "a reformatted document is a hit");
    assert_eq!(hit.body, miss.body);
    assert_eq!(hit.etag.as_deref(), Some(etag.as_str()));

    let (not_modified, cost) = costed(&app, &token, ME, json!({}), Some(&etag)).await;
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.body, "");
    assert_eq!(not_modified.etag.as_deref(), Some(etag.as_str()));
    assert_eq!(cost, 1, "a 304 reads the versions only");

    let (other, cost) = costed(&app, &token, ME, json!({}), Some("\"something-else\"")).await;
    assert_eq!((other.status, cost), (200, 1));
    assert_eq!(other.body, miss.body);

    // Other variables are another entry.
    let song_id = miss.data()["me"]["songs"]["nodes"][0]["id"].clone();
    let query = "query($id: ID!) { song(id: $id) { name } }";
    let (_, cost) = costed(&app, &token, query, json!({"id": song_id}), None).await;
    assert_eq!(cost, 3, "the versions, the user's row, the song");
    let (_, cost) = costed(&app, &token, query, json!({"id": song_id}), None).await;
    assert_eq!(cost, 1);

    // After a write, the old tag no longer matches: the new answer comes whole.
    app.add_song("auth0|hits", "Another").await;
    let (changed, cost) = costed(&app, &token, ME, json!({}), Some(&etag)).await;
    assert_eq!((changed.status, cost), (200, 2));
    assert_eq!(changed.data()["me"]["songs"]["totalCount"], 2);
    assert_ne!(changed.etag.as_deref(), Some(etag.as_str()));
}

async fn errors_mutations_admins_and_anonymous_callers_are_not_cached(app: TestApp) {
    let token = app.token("auth0|plain");
    app.ok("auth0|plain", "{ me { id } }", json!({})).await;
    let missing = "{ song(id: \"999999\") { name } }";
    let mut costs = Vec::new();
    for _ in 0..2 {
        let (answer, cost) = costed(&app, &token, missing, json!({}), None).await;
        assert_eq!(
            answer.json()["errors"][0]["extensions"]["code"],
            "NOT_FOUND"
        );
        assert_eq!(answer.etag, None);
        costs.push(cost);
    }
    assert!(
        costs[0] > 1 && costs[1] == costs[0],
        "an answer with errors is computed every time: {costs:?}"
    );
    let mutation = "mutation { updateMe(input: {displayName: \"P\"}) { displayName } }";
    let answer = fetch(&app, &token, mutation, json!({}), None).await;
    assert_eq!(answer.data()["updateMe"]["displayName"], "P");
    assert_eq!(answer.etag, None);

    let admin = app.token_with("auth0|admin", json!({"scope": "write:app_metadata"}));
    app.post(Some(&admin), "{ me { id } }", json!({})).await;
    for _ in 0..2 {
        let (answer, cost) = costed(&app, &admin, "{ me { id } }", json!({}), None).await;
        assert_eq!(answer.data()["me"]["id"], "auth0|admin");
        assert_eq!(answer.etag, None);
        assert_eq!(cost, 1, "the user's row, and no versions read for an admin");
    }

    let (status, body) = app.post(None, "{ me { id } }", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
}

async fn the_cache_can_be_turned_off(backend: Backend) {
    let app = TestApp::spawn_uncached(backend).await;
    let token = app.token("auth0|off");
    app.ok("auth0|off", "{ me { id } }", json!({})).await;
    for _ in 0..2 {
        let (answer, cost) = costed(&app, &token, ME, json!({}), None).await;
        answer.data();
        assert_eq!(answer.etag, None);
        assert_eq!(cost, 1);
    }
}

/// Reads `ME` for `sub` and checks it against the truth; answers it and
/// whether it came from the cache.
async fn read_me(app: &TestApp, sub: &str) -> (Value, bool) {
    let token = app.token(sub);
    let (answer, cost) = costed(app, &token, ME, json!({}), None).await;
    let data = answer.data();
    assert_eq!(
        data,
        truth(app, &token, ME, json!({})).await,
        "a stale answer for {sub}"
    );
    (data, cost == 1)
}

async fn every_mutation_refreshes_its_users_answers_and_no_one_elses(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| config.playlist_editor_threshold = 2).await;
    let (a, b) = ("auth0|a", "auth0|b");
    let s1 = app.add_song(a, "one").await;
    let s2 = app.add_song(a, "two").await;
    let p1 = app
        .create_playlist(a, "first", std::slice::from_ref(&s1))
        .await;
    app.add_song(b, "b's").await;
    let admin = app.token_with("auth0|admin", json!({"scope": "write:app_metadata"}));

    let mutations: Vec<(&str, Value, Option<&str>)> = vec![
        (
            "mutation { updateMe(input: {displayName: \"A\", favGenre: \"soul\"}) { id } }",
            json!({}),
            None,
        ),
        (
            "mutation { addSong(input: {name: \"three\"}) { id } }",
            json!({}),
            None,
        ),
        (
            "mutation($id: ID!) { updateSong(id: $id, input: {name: \"uno\"}) { id } }",
            json!({"id": s1}),
            None,
        ),
        (
            "mutation($id: ID!) { createPlaylist(input: {name: \"second\", songIds: [$id]}) { id } }",
            json!({"id": s2}),
            None,
        ),
        (
            "mutation($id: ID!) { updatePlaylist(id: $id, input: {name: \"premier\"}) { id } }",
            json!({"id": p1}),
            None,
        ),
        (
            "mutation($p: ID!, $s: ID!) { addSongsToPlaylist(playlistId: $p, songIds: [$s]) { id } }",
            json!({"p": p1, "s": s2}),
            None,
        ),
        (
            "mutation($p: ID!, $s: ID!) { removeSongsFromPlaylist(playlistId: $p, songIds: [$s]) { id } }",
            json!({"p": p1, "s": s1}),
            None,
        ),
        (
            "mutation($p: ID!) { recordPlay(playlistId: $p) { id } }",
            json!({"p": p1}),
            None,
        ),
        // The second play grants playlist_editor.
        (
            "mutation($p: ID!) { recordPlay(playlistId: $p) { id } }",
            json!({"p": p1}),
            None,
        ),
        (
            "mutation($p: ID!) { setPlaylistFeatured(id: $p, featured: true) { id } }",
            json!({"p": p1}),
            None,
        ),
        (
            "mutation($id: ID!) { deleteSong(id: $id) }",
            json!({"id": s2}),
            None,
        ),
        (
            "mutation { setUserPlan(userId: \"auth0|a\", plan: FAMILY) { id } }",
            json!({}),
            Some("admin"),
        ),
        (
            "mutation { setUserRoles(userId: \"auth0|a\", roles: [\"x\"]) { id } }",
            json!({}),
            Some("admin"),
        ),
        (
            "mutation($p: ID!) { deletePlaylist(id: $p) }",
            json!({"p": p1}),
            None,
        ),
    ];
    let (mut before, _) = read_me(&app, a).await;
    let (b_before, _) = read_me(&app, b).await;
    for (mutation, variables, by) in mutations {
        let token = match by {
            Some(_) => admin.clone(),
            None => app.token(a),
        };
        fetch(&app, &token, mutation, variables, None).await.data();
        let (after, hit) = read_me(&app, a).await;
        assert!(!hit, "{mutation} left a's answer in the cache");
        assert_ne!(after, before, "{mutation} changed nothing a's me shows");
        let (again, hit) = read_me(&app, a).await;
        assert!(hit, "after {mutation}, a's new answer is cached");
        assert_eq!(again, after);
        let (b_now, hit) = read_me(&app, b).await;
        assert!(hit, "{mutation} by a dropped b's answer");
        assert_eq!(b_now, b_before);
        before = after;
    }
}

/// Reads `query` as `sub`: the answer (checked against the truth) and
/// whether it came from the cache.
async fn read(app: &TestApp, sub: &str, query: &str, variables: Value) -> (Value, bool) {
    let token = app.token(sub);
    let (answer, cost) = costed(app, &token, query, variables.clone(), None).await;
    let data = answer.data();
    assert_eq!(
        data,
        truth(app, &token, query, variables).await,
        "a stale answer for {sub}"
    );
    (data, cost == 1)
}

async fn changes_to_a_featured_playlist_reach_every_user_at_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| config.playlist_editor_threshold = 1).await;
    let (editor, listener) = ("auth0|editor", "auth0|listener");
    let s1 = app.add_song(editor, "one").await;
    let s2 = app.add_song(editor, "two").await;
    let p = app
        .create_playlist(editor, "hits", std::slice::from_ref(&s1))
        .await;
    let by_id = json!({"id": p});
    let run = async |query: &str, variables: Value| {
        fetch(&app, &app.token(editor), query, variables, None)
            .await
            .data();
    };
    run(
        "mutation($p: ID!) { recordPlay(playlistId: $p) { id } }",
        json!({"p": p}),
    )
    .await;
    app.ok(listener, "{ me { id } }", json!({})).await;

    let (empty, _) = read(&app, listener, FEATURED, json!({})).await;
    assert_eq!(empty["featuredPlaylists"]["totalCount"], 0);
    let (listener_me, _) = read_me(&app, listener).await;

    let changes: Vec<(&str, Value)> = vec![
        (
            "mutation($p: ID!) { setPlaylistFeatured(id: $p, featured: true) { id } }",
            json!({"p": p}),
        ),
        (
            "mutation($id: ID!) { updateSong(id: $id, input: {artist: \"Someone\"}) { id } }",
            json!({"id": s1}),
        ),
        (
            "mutation($p: ID!) { recordPlay(playlistId: $p) { id } }",
            json!({"p": p}),
        ),
        (
            "mutation($p: ID!) { updatePlaylist(id: $p, input: {name: \"top\"}) { id } }",
            json!({"p": p}),
        ),
        (
            "mutation($p: ID!, $s: ID!) { addSongsToPlaylist(playlistId: $p, songIds: [$s]) { id } }",
            json!({"p": p, "s": s2}),
        ),
        (
            "mutation($p: ID!, $s: ID!) { removeSongsFromPlaylist(playlistId: $p, songIds: [$s]) { id } }",
            json!({"p": p, "s": s1}),
        ),
        (
            "mutation($id: ID!) { deleteSong(id: $id) }",
            json!({"id": s2}),
        ),
    ];
    let (mut featured, _) = read(&app, listener, FEATURED, json!({})).await;
    // Not featured yet, the playlist is NOT_FOUND for the listener.
    let mut playlist = Value::Null;
    for (mutation, variables) in changes {
        run(mutation, variables).await;
        let (now, hit) = read(&app, listener, FEATURED, json!({})).await;
        assert!(
            !hit,
            "{mutation}: the featured list was served from the cache"
        );
        assert_ne!(now, featured, "{mutation}");
        featured = now;
        let (now, hit) = read(&app, listener, PLAYLIST, by_id.clone()).await;
        assert!(!hit, "{mutation}: playlist(id) was served from the cache");
        assert_ne!(now, playlist, "{mutation}");
        playlist = now;
        // The listener's own data did not change.
        let (me, hit) = read_me(&app, listener).await;
        assert!(hit, "{mutation} dropped the listener's own answer");
        assert_eq!(me, listener_me);
    }
    // What is not featured stays in the cache.
    run(
        "mutation { addSong(input: {name: \"unlisted\"}) { id } }",
        json!({}),
    )
    .await;
    run(
        "mutation { createPlaylist(input: {name: \"private\"}) { id } }",
        json!({}),
    )
    .await;
    let (_, hit) = read(&app, listener, FEATURED, json!({})).await;
    assert!(
        hit,
        "a change to nothing featured dropped the featured answers"
    );
    // Unfeaturing is seen too.
    run(
        "mutation($p: ID!) { setPlaylistFeatured(id: $p, featured: false) { id } }",
        json!({"p": p}),
    )
    .await;
    let (now, hit) = read(&app, listener, FEATURED, json!({})).await;
    assert!(!hit);
    assert_eq!(now["featuredPlaylists"]["totalCount"], 0);
}

async fn a_change_made_by_hand_in_sql_is_seen_at_once(app: TestApp) {
    let user = "auth0|by-hand";
    let song = app.add_song(user, "before").await;
    let (first, _) = read_me(&app, user).await;
    let (_, hit) = read_me(&app, user).await;
    assert!(hit);
    let db = Database::connect(&app.database_url).await.unwrap();
    db.execute_unprepared(&format!(
        "UPDATE songs SET name = 'after' WHERE id = {song}"
    ))
    .await
    .unwrap();
    let (now, hit) = read_me(&app, user).await;
    assert!(!hit);
    assert_eq!(now["me"]["songs"]["nodes"][0]["name"], "after");
    assert_ne!(now, first);
    // The lock writers take on the user's row changes nothing a query reads.
    db.execute_unprepared(&format!(
        "UPDATE users SET updated_at = created_at WHERE id = '{user}'"
    ))
    .await
    .unwrap();
    let (_, hit) = read_me(&app, user).await;
    assert!(hit, "a write of nothing a query reads dropped the answer");
    db.execute_unprepared(&format!("DELETE FROM songs WHERE id = {song}"))
        .await
        .unwrap();
    let (now, hit) = read_me(&app, user).await;
    assert!(!hit);
    assert_eq!(now["me"]["songs"]["totalCount"], 0);
    db.close().await.ok();
}

/// Two gateways over one database: a write on one is seen by the very next
/// read on the other, every time, whichever way round.
async fn two_instances_never_serve_a_stale_answer(backend: Backend) {
    let one = TestApp::spawn(backend).await;
    let shared = one.database_url.clone();
    let two = TestApp::spawn_with(backend, |config| config.database_url = shared).await;
    let user = "auth0|roaming";
    let token = one.token(user);
    let query = "{ me { displayName songs { totalCount } } }";
    one.ok(user, query, json!({})).await;
    let mut hits = 0;
    for i in 0..200 {
        let (writer, reader) = if i % 2 == 0 {
            (&one, &two)
        } else {
            (&two, &one)
        };
        let name = format!("n{i}");
        fetch(
            writer,
            &token,
            "mutation($n: String!) { updateMe(input: {displayName: $n}) { id } }",
            json!({"n": name}),
            None,
        )
        .await
        .data();
        if i % 10 == 0 {
            writer.add_song(user, &name).await;
        }
        // Both instances hold answers for the user from earlier rounds.
        let (answer, cost) = costed(reader, &token, query, json!({}), None).await;
        let data = answer.data();
        assert_eq!(data["me"]["displayName"], name, "round {i}: a stale answer");
        assert_eq!(data["me"]["songs"]["totalCount"], i / 10 + 1, "round {i}");
        let (again, cost_again) = costed(reader, &token, query, json!({}), None).await;
        assert_eq!(again.body, answer.body);
        assert!(
            cost > 1 && cost_again == 1,
            "round {i}: a miss, then a hit: {cost}, {cost_again}"
        );
        hits += 1;
        // The other instance tags the same answer alike.
        let tag = answer.etag.clone().expect("an ETag");
        let (revalidated, _) = costed(writer, &token, query, json!({}), Some(&tag)).await;
        assert_eq!(revalidated.status, 304, "round {i}");
    }
    assert_eq!(hits, 200);
}

async fn auth0_refreshes_and_admin_writes_refresh_the_cache(backend: Backend) {
    let fake = FakeAuth0::start().await;
    fake.put_user(json!({
        "user_id": "auth0|alice",
        "user_metadata": {"displayName": "Alice"},
        "app_metadata": {"roles": []}
    }));
    let gateway = TestApp::spawn_auth0(backend, &fake, |_| {}).await;
    let token = fake.mint("auth0|alice", json!({}));
    let query = "{ me { displayName roles syncedAt } }";
    let first = fetch(&gateway, &token, query, json!({}), None).await;
    assert_eq!(first.data()["me"]["displayName"], "Alice");
    assert_eq!(fake.calls().get_user, 1);
    // The first answer was tagged with the versions before the user's row
    // existed; the second is tagged with the row's.
    let second = fetch(&gateway, &token, query, json!({}), first.etag.as_deref()).await;
    assert_eq!(second.body, first.body);
    let tag = second.etag.clone().expect("an ETag");
    for _ in 0..5 {
        let hit = fetch(&gateway, &token, query, json!({}), Some(&tag)).await;
        assert_eq!(hit.status, 304);
    }
    assert_eq!(fake.calls().management(), 1, "hits make no Auth0 call");

    // Another user, whose answers nothing below may drop.
    fake.put_user(json!({"user_id": "auth0|bob", "user_metadata": {"displayName": "Bob"}}));
    let bob = fake.mint("auth0|bob", json!({}));
    let bob_first = fetch(&gateway, &bob, query, json!({}), None).await;
    let bob_tag = fetch(&gateway, &bob, query, json!({}), bob_first.etag.as_deref())
        .await
        .etag
        .expect("an ETag");
    let bob_unchanged = async || {
        fetch(&gateway, &bob, query, json!({}), Some(&bob_tag))
            .await
            .status
            == 304
    };

    // A refresh that no request asked for (the background worker's): the
    // refreshed row is what the next request sees.
    fake.put_user(json!({
        "user_id": "auth0|alice",
        "user_metadata": {"displayName": "Alice B."},
        "app_metadata": {"roles": []}
    }));
    let mirror = gateway.state.services.profiles.auth0().expect("auth0 mode");
    mirror
        .refresh(
            "auth0|alice",
            Wait::Yes,
            Utc::now() + chrono::Duration::seconds(1),
            false,
        )
        .await
        .expect("refresh");
    let after = fetch(&gateway, &token, query, json!({}), Some(&tag)).await;
    assert_eq!(after.data()["me"]["displayName"], "Alice B.");
    assert!(
        bob_unchanged().await,
        "alice's refresh dropped bob's answer"
    );

    // A new login refreshes even though an answer is cached for the session.
    fake.put_user(json!({
        "user_id": "auth0|alice",
        "user_metadata": {"displayName": "Alice C."},
        "app_metadata": {"roles": []}
    }));
    let later = Utc::now().timestamp() + 5;
    let second = fake.mint("auth0|alice", json!({"iat": later}));
    // The refresh waits for the rate budget the refreshes above spent: the
    // row is served until it is done.
    eventually(Duration::from_secs(10), "the refresh", async || {
        let fresh = fetch(&gateway, &second, query, json!({}), after.etag.as_deref()).await;
        fresh.data()["me"]["displayName"] == "Alice C."
    })
    .await;
    let old_session = fetch(&gateway, &token, query, json!({}), None).await;
    assert_eq!(old_session.data()["me"]["displayName"], "Alice C.");

    // An admin's write goes to the mirror at once (and to Auth0 through the
    // outbox): the user's next answer has it.
    let admin = fake.mint(
        "auth0|admin",
        json!({"permissions": ["write:app_metadata"]}),
    );
    fetch(
        &gateway,
        &admin,
        "mutation { setUserRoles(userId: \"auth0|alice\", roles: [\"moderator\"]) { id } }",
        json!({}),
        None,
    )
    .await
    .data();
    let roles = fetch(&gateway, &token, query, json!({}), None).await;
    assert_eq!(roles.data()["me"]["roles"], json!(["moderator"]));
    assert!(
        bob_unchanged().await,
        "a write to alice dropped bob's answer"
    );
    // Once the outbox delivered it, the mirror stores Auth0's answer, which
    // moves `syncedAt` (a field this query reads): the tag stays valid until
    // then, and what follows is fresh.
    eventually(
        Duration::from_secs(10),
        "the outbox to deliver",
        async || fake.user("auth0|alice").unwrap()["app_metadata"]["roles"] == json!(["moderator"]),
    )
    .await;
    let delivered = fetch(&gateway, &token, query, json!({}), roles.etag.as_deref()).await;
    if delivered.status != 304 {
        assert_eq!(delivered.status, 200);
        assert_eq!(delivered.data()["me"]["roles"], json!(["moderator"]));
        assert_ne!(
            delivered.data()["me"]["syncedAt"],
            roles.data()["me"]["syncedAt"],
            "a new tag for an unchanged answer"
        );
    }
}

on_both_databases!(
    a_hit_costs_one_statement_and_a_304_sends_no_body,
    errors_mutations_admins_and_anonymous_callers_are_not_cached,
    a_change_made_by_hand_in_sql_is_seen_at_once,
);

for_both_backends!(
    the_cache_can_be_turned_off,
    every_mutation_refreshes_its_users_answers_and_no_one_elses,
    changes_to_a_featured_playlist_reach_every_user_at_once,
    two_instances_never_serve_a_stale_answer,
    auth0_refreshes_and_admin_writes_refresh_the_cache,
);
