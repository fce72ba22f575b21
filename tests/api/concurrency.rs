//! Concurrent writers on every mutation: no write fails as an internal
//! error, and what the database holds afterwards is exactly what the
//! gateway acknowledged.
//!
//! A write may be refused with `CONFLICT` (a concurrent write got in the way
//! and nothing changed) or with the answer its input deserves once another
//! write won (`NOT_FOUND` for a thing deleted meanwhile, `FORBIDDEN` before
//! a role is granted, …); each test names the refusals it accepts and counts
//! a refused write as not done.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::join_all;
use serde_json::{Value, json};

use crate::{
    for_both_backends,
    helpers::{Backend, TestApp, count},
    on_both_databases,
};

const ADD: &str =
    "mutation($p: ID!, $s: [ID!]!) { addSongsToPlaylist(playlistId: $p, songIds: $s) { id } }";
const REMOVE: &str =
    "mutation($p: ID!, $s: [ID!]!) { removeSongsFromPlaylist(playlistId: $p, songIds: $s) { id } }";
const PLAY: &str = "mutation($p: ID!) { recordPlay(playlistId: $p) { plays } }";

/// Refused because another write got in the way; always accepted, never done.
const CONFLICT: &str = "CONFLICT";

/// Runs one write; answers its `data` when it was acknowledged, `None` when
/// it was refused with `CONFLICT` or one of `may_refuse`. Any other answer
/// (`INTERNAL_SERVER_ERROR` above all) fails the test.
async fn write(
    app: &TestApp,
    token: &str,
    query: &str,
    variables: Value,
    may_refuse: &[&str],
) -> Option<Value> {
    let (status, body) = app.post(Some(token), query, variables.clone()).await;
    assert_eq!(status, 200, "{query} {variables}: {body}");
    let Some(errors) = body.get("errors") else {
        return Some(body["data"].clone());
    };
    let code = errors[0]["extensions"]["code"].as_str().unwrap_or("none");
    assert!(
        code == CONFLICT || may_refuse.contains(&code),
        "a concurrent write answered {code}: {query} {variables}: {body}"
    );
    None
}

fn acked(outcomes: &[Option<Value>]) -> usize {
    outcomes.iter().filter(|o| o.is_some()).count()
}

async fn ids(app: &TestApp, sql: &str) -> BTreeSet<String> {
    use sea_orm::{ConnectionTrait, Statement};
    let db = &app.state.db;
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("query")
        .iter()
        .map(|row| row.try_get_by_index::<i64>(0).expect("id").to_string())
        .collect()
}

/// Four users, each with a playlist, add, remove and play at once: each
/// playlist holds its first songs plus the acknowledged adds minus the
/// acknowledged removes, at distinct positions, and its plays are the
/// acknowledged plays.
async fn playlist_songs_and_plays_are_what_was_acknowledged(app: TestApp) {
    const USERS: usize = 4;
    const SONGS: usize = 8;
    const FIRST: usize = 3;
    let mut setups = Vec::new();
    for u in 0..USERS {
        let sub = format!("auth0|writer-{u}");
        let mut songs = Vec::new();
        for i in 0..SONGS {
            songs.push(app.add_song(&sub, &format!("song {i}")).await);
        }
        let playlist = app.create_playlist(&sub, "mix", &songs[..FIRST]).await;
        let token = app.token(&sub);
        setups.push((token, songs, playlist));
    }

    let tasks = setups.iter().flat_map(|(token, songs, playlist)| {
        let app = &app;
        songs.iter().enumerate().map(move |(i, song)| async move {
            let vars = json!({"p": playlist, "s": [song]});
            let added = write(app, token, ADD, vars.clone(), &[]).await.is_some();
            let played = write(app, token, PLAY, json!({"p": playlist}), &[])
                .await
                .is_some();
            let removed = i % 2 == 1 && write(app, token, REMOVE, vars, &[]).await.is_some();
            (i, added, played, removed)
        })
    });
    let outcomes = join_all(tasks).await;

    let mut conflicts = 0;
    for (u, (_, songs, playlist)) in setups.iter().enumerate() {
        let mine = &outcomes[u * SONGS..(u + 1) * SONGS];
        let expected: BTreeSet<String> = mine
            .iter()
            .filter(|(i, added, _, removed)| (*i < FIRST || *added) && !removed)
            .map(|(i, ..)| songs[*i].clone())
            .collect();
        let held = ids(
            &app,
            &format!("SELECT song_id FROM playlist_songs WHERE playlist_id = {playlist}"),
        )
        .await;
        assert_eq!(held, expected, "the songs of playlist {playlist}");
        let positions = count(
            &app.state.db,
            &format!(
                "SELECT COUNT(DISTINCT position) AS n FROM playlist_songs WHERE playlist_id = {playlist}"
            ),
        )
        .await;
        assert_eq!(positions as usize, held.len(), "positions are distinct");
        let plays = mine.iter().filter(|(_, _, played, _)| *played).count();
        let stored = count(
            &app.state.db,
            &format!("SELECT plays AS n FROM playlists WHERE id = {playlist}"),
        )
        .await;
        assert_eq!(stored as usize, plays, "the plays of playlist {playlist}");
        conflicts += mine
            .iter()
            .map(|(i, added, played, removed)| {
                usize::from(!added) + usize::from(!played) + usize::from(i % 2 == 1 && !removed)
            })
            .sum::<usize>();
    }
    // CONFLICT for everything would keep the state right too.
    assert!(
        conflicts < USERS * SONGS,
        "most writes should get through, {conflicts} of {} did not",
        USERS * SONGS * 5 / 2
    );
}

/// Adds, updates and a delete of one user's songs at once.
async fn songs_are_what_was_acknowledged(app: TestApp) {
    const U: &str = "auth0|song-writer";
    let x = app.add_song(U, "x").await;
    let y = app.add_song(U, "y").await;
    let token = app.token(U);
    let add = "mutation($n: String!) { addSong(input: {name: $n}) { id } }";
    let update =
        "mutation($id: ID!, $i: UpdateSongInput!) { updateSong(id: $id, input: $i) { id } }";
    let delete = "mutation($id: ID!) { deleteSong(id: $id) }";

    let adds = (0..12).map(|i| write(&app, &token, add, json!({"n": format!("new {i}")}), &[]));
    let renames_of_x = (0..10).map(|i| {
        let vars = json!({"id": x, "i": {"name": format!("x {i}")}});
        write(&app, &token, update, vars, &["NOT_FOUND"])
    });
    let genres_of_y = (0..10).map(|i| {
        let vars = json!({"id": y, "i": {"genre": format!("g{i}")}});
        write(&app, &token, update, vars, &[])
    });
    let (adds, renames, genres, deleted) = tokio::join!(
        join_all(adds),
        join_all(renames_of_x),
        join_all(genres_of_y),
        write(&app, &token, delete, json!({"id": x}), &[]),
    );
    let deleted = deleted.is_some();

    let mut expected: BTreeSet<String> = adds
        .iter()
        .flatten()
        .map(|d| d["addSong"]["id"].as_str().unwrap().to_owned())
        .collect();
    expected.insert(y.clone());
    if !deleted {
        expected.insert(x.clone());
    }
    let held = ids(&app, &format!("SELECT id FROM songs WHERE user_id = '{U}'")).await;
    assert_eq!(held, expected, "the user's songs");

    let songs = app
        .ok(
            U,
            "{ me { songs(first: 100) { nodes { id name genre } } } }",
            json!({}),
        )
        .await;
    let by_id: BTreeMap<&str, &Value> = songs["me"]["songs"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s))
        .collect();
    let acked_genres: Vec<String> = genres
        .iter()
        .enumerate()
        .filter(|(_, g)| g.is_some())
        .map(|(i, _)| format!("g{i}"))
        .collect();
    let genre = by_id[y.as_str()]["genre"].as_str().unwrap_or("").to_owned();
    assert!(
        acked_genres.contains(&genre),
        "y's genre {genre} is one that was acknowledged: {acked_genres:?}"
    );
    if !deleted {
        let name = by_id[x.as_str()]["name"].as_str().unwrap().to_owned();
        let acked_names: Vec<String> = renames
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_some())
            .map(|(i, _)| format!("x {i}"))
            .collect();
        assert!(acked_names.contains(&name), "{name} in {acked_names:?}");
    }
    assert!(acked(&adds) > 0 && acked(&genres) > 0);
}

/// Creates (with a song deleted meanwhile), renames and a delete of one
/// user's playlists, and adds of one song to one playlist, at once.
async fn playlists_are_what_was_acknowledged(app: TestApp) {
    const U: &str = "auth0|playlist-writer";
    let s = app.add_song(U, "s").await;
    let t = app.add_song(U, "t").await;
    let p = app.create_playlist(U, "p", std::slice::from_ref(&t)).await;
    let q = app.create_playlist(U, "q", &[]).await;
    let token = app.token(U);
    let create = "mutation($n: String!, $s: [ID!]) { createPlaylist(input: {name: $n, songIds: $s}) { id } }";
    let rename =
        "mutation($id: ID!, $n: String!) { updatePlaylist(id: $id, input: {name: $n}) { id } }";

    // Once s is gone, a create naming it is refused as naming an unknown song.
    let creates = (0..12).map(|i| {
        let vars = json!({"n": format!("c{i}"), "s": [t, s]});
        write(&app, &token, create, vars, &["BAD_USER_INPUT"])
    });
    let renames = (0..10).map(|i| {
        write(
            &app,
            &token,
            rename,
            json!({"id": p, "n": format!("p{i}")}),
            &["NOT_FOUND"],
        )
    });
    let adds = (0..8).map(|_| write(&app, &token, ADD, json!({"p": q, "s": [t]}), &[]));
    let (creates, renames, adds, song_deleted, playlist_deleted) = tokio::join!(
        join_all(creates),
        join_all(renames),
        join_all(adds),
        write(
            &app,
            &token,
            "mutation($id: ID!) { deleteSong(id: $id) }",
            json!({"id": s}),
            &[]
        ),
        write(
            &app,
            &token,
            "mutation($id: ID!) { deletePlaylist(id: $id) }",
            json!({"id": p}),
            &[]
        ),
    );
    let (song_deleted, playlist_deleted) = (song_deleted.is_some(), playlist_deleted.is_some());

    let created: BTreeSet<String> = creates
        .iter()
        .flatten()
        .map(|d| d["createPlaylist"]["id"].as_str().unwrap().to_owned())
        .collect();
    let mut expected = created.clone();
    expected.insert(q.clone());
    if !playlist_deleted {
        expected.insert(p.clone());
    }
    let held = ids(
        &app,
        &format!("SELECT id FROM playlists WHERE user_id = '{U}'"),
    )
    .await;
    assert_eq!(held, expected, "the user's playlists");
    // A create acknowledged before the deletion took s, which the deletion
    // then took out again; one after it was refused.
    let mut songs = BTreeSet::from([t.clone()]);
    if !song_deleted {
        songs.insert(s.clone());
    }
    for c in &created {
        let held = ids(
            &app,
            &format!("SELECT song_id FROM playlist_songs WHERE playlist_id = {c}"),
        )
        .await;
        assert_eq!(held, songs, "the songs of created playlist {c}");
    }
    let in_q = ids(
        &app,
        &format!("SELECT song_id FROM playlist_songs WHERE playlist_id = {q}"),
    )
    .await;
    let expected_q: BTreeSet<String> = if acked(&adds) > 0 {
        BTreeSet::from([t.clone()])
    } else {
        BTreeSet::new()
    };
    assert_eq!(in_q, expected_q, "q holds t once");
    if !playlist_deleted {
        assert!(acked(&renames) > 0);
    }
}

/// updateMe, plays, a playlist's deletion, featuring and an admin's plan
/// changes of one user at once: every acknowledged preference is kept, the
/// plays add up, and the role follows the final total.
async fn profile_plays_and_roles_are_what_was_acknowledged(backend: Backend) {
    const U: &str = "auth0|profile-writer";
    const THRESHOLD: usize = 10;
    let app =
        TestApp::spawn_with(backend, |c| c.playlist_editor_threshold = THRESHOLD as i64).await;
    let one = app.create_playlist(U, "one", &[]).await;
    let two = app.create_playlist(U, "two", &[]).await;
    let token = app.token(U);
    let admin = app.token_with(
        "auth0|admin",
        json!({"permissions": ["write:app_metadata"]}),
    );
    let update_me = "mutation($i: UpdateMeInput!) { updateMe(input: $i) { id } }";
    let feature = "mutation($p: ID!) { setPlaylistFeatured(id: $p, featured: true) { id } }";
    let plan =
        "mutation($p: Plan!) { setUserPlan(userId: \"auth0|profile-writer\", plan: $p) { id } }";

    let updates = (0..10).map(|i| {
        let vars = json!({"i": {"preferences": {format!("k{i}"): i}, "favGenre": format!("g{i}")}});
        write(&app, &token, update_me, vars, &[])
    });
    let plays_one = (0..16).map(|_| write(&app, &token, PLAY, json!({"p": one}), &[]));
    let plays_two = (0..4).map(|_| write(&app, &token, PLAY, json!({"p": two}), &["NOT_FOUND"]));
    let features = (0..6).map(|_| write(&app, &token, feature, json!({"p": one}), &["FORBIDDEN"]));
    let plans = ["PREMIUM", "FAMILY", "PREMIUM", "FAMILY"]
        .map(|p| write(&app, &admin, plan, json!({"p": p}), &[]));
    let (updates, plays_one, _, features, plans, _) = tokio::join!(
        join_all(updates),
        join_all(plays_one),
        join_all(plays_two),
        join_all(features),
        join_all(plans),
        write(
            &app,
            &token,
            "mutation($id: ID!) { deletePlaylist(id: $id) }",
            json!({"id": two}),
            &[]
        ),
    );

    let me = app
        .ok(
            U,
            "{ me { preferences favGenre roles plan totalPlays playlists { nodes { id plays featured } } } }",
            json!({}),
        )
        .await;
    let me = &me["me"];
    let expected: BTreeSet<String> = updates
        .iter()
        .enumerate()
        .filter(|(_, u)| u.is_some())
        .map(|(i, _)| format!("k{i}"))
        .collect();
    let kept: BTreeSet<String> = me["preferences"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(kept, expected, "every acknowledged preference is kept");
    let acked_genres: Vec<String> = updates
        .iter()
        .enumerate()
        .filter(|(_, u)| u.is_some())
        .map(|(i, _)| format!("g{i}"))
        .collect();
    let genre = me["favGenre"].as_str().unwrap_or("").to_owned();
    assert!(
        acked_genres.contains(&genre),
        "favGenre {genre} in {acked_genres:?}"
    );
    let acked_plans: Vec<&str> = ["PREMIUM", "FAMILY", "PREMIUM", "FAMILY"]
        .iter()
        .zip(&plans)
        .filter(|(_, p)| p.is_some())
        .map(|(p, _)| *p)
        .collect();
    let stored_plan = me["plan"].as_str().unwrap();
    assert!(
        acked_plans.contains(&stored_plan),
        "plan {stored_plan} in {acked_plans:?}"
    );

    let playlists = me["playlists"]["nodes"].as_array().unwrap();
    let first = playlists.iter().find(|p| p["id"] == one.as_str()).unwrap();
    assert_eq!(first["plays"].as_u64().unwrap() as usize, acked(&plays_one));
    let total = me["totalPlays"].as_u64().unwrap() as usize;
    let roles: Vec<&str> = me["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(
        roles.contains(&"playlist_editor"),
        total >= THRESHOLD,
        "the role follows the final total of {total} plays: {roles:?}"
    );
    assert_eq!(first["featured"].as_bool().unwrap(), acked(&features) > 0);
    assert!(acked(&updates) > 0 && acked(&plays_one) > 0 && !acked_plans.is_empty());
}

/// An account deleted while its own writes are in flight: each of them
/// is done before the deletion (and goes with it) or refused after it.
async fn an_account_deleted_amid_its_writes_leaves_nothing(app: TestApp) {
    const U: &str = "auth0|leaving";
    let s = app.add_song(U, "s").await;
    let p = app.create_playlist(U, "p", std::slice::from_ref(&s)).await;
    let token = app.token(U);
    // A write that takes its turn after the deletion finds no account.
    let after = ["UNAUTHENTICATED", "NOT_FOUND"];
    let adds = (0..10).map(|i| {
        let vars = json!({"i": {"name": format!("new {i}")}});
        let add = "mutation($i: AddSongInput!) { addSong(input: $i) { id } }";
        write(&app, &token, add, vars, &after)
    });
    let plays = (0..6).map(|_| write(&app, &token, PLAY, json!({"p": p}), &after));
    let creates = (0..6).map(|i| {
        let vars = json!({"i": {"name": format!("c{i}"), "songIds": [s]}});
        let create = "mutation($i: CreatePlaylistInput!) { createPlaylist(input: $i) { id } }";
        write(
            &app,
            &token,
            create,
            vars,
            &["UNAUTHENTICATED", "NOT_FOUND", "BAD_USER_INPUT"],
        )
    });
    let (adds, _, creates, deleted) = tokio::join!(
        join_all(adds),
        join_all(plays),
        join_all(creates),
        write(&app, &token, "mutation { deleteMe }", json!({}), &[]),
    );
    let left = |table: &str| format!("SELECT COUNT(*) AS n FROM {table} WHERE user_id = '{U}'");
    if deleted.is_some() {
        for table in ["songs", "playlists", "playlist_songs"] {
            assert_eq!(count(&app.state.db, &left(table)).await, 0, "{table} left");
        }
        let users = "SELECT COUNT(*) AS n FROM users WHERE id = 'auth0|leaving'";
        assert_eq!(
            count(&app.state.db, users).await,
            0,
            "the user's row is gone"
        );
    } else {
        let songs = count(&app.state.db, &left("songs")).await as usize;
        assert_eq!(songs, 1 + acked(&adds));
        let playlists = count(&app.state.db, &left("playlists")).await as usize;
        assert_eq!(playlists, 1 + acked(&creates));
    }
}

on_both_databases!(
    playlist_songs_and_plays_are_what_was_acknowledged,
    songs_are_what_was_acknowledged,
    playlists_are_what_was_acknowledged,
    an_account_deleted_amid_its_writes_leaves_nothing,
);

for_both_backends!(profile_plays_and_roles_are_what_was_acknowledged);
