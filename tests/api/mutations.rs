//! Every mutation, answering the object it changed.

use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, error_code},
    on_both_databases,
};

const U: &str = "auth0|mutator";

async fn songs_are_added_updated_and_deleted(app: TestApp) {
    let added = app
        .ok(
            U,
            "mutation { addSong(input: {name: \"  Roads \", artist: \"Portishead\"}) { id name artist genre } }",
            json!({}),
        )
        .await;
    let song = &added["addSong"];
    assert_eq!(song["name"], "Roads", "names are trimmed");
    assert_eq!(song["artist"], "Portishead");
    assert_eq!(song["genre"], Value::Null);
    let id = song["id"].as_str().unwrap();

    let updated = app
        .ok(
            U,
            "mutation($id: ID!) { updateSong(id: $id, input: {genre: \"trip-hop\", artist: null}) { id name artist genre } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        updated["updateSong"],
        json!({"id": id, "name": "Roads", "artist": null, "genre": "trip-hop"})
    );

    let deleted = app
        .ok(
            U,
            "mutation($id: ID!) { deleteSong(id: $id) }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(deleted["deleteSong"], id);
    let body = app
        .gql(
            U,
            "query($id: ID!) { song(id: $id) { id } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let again = app
        .gql(
            U,
            "mutation($id: ID!) { deleteSong(id: $id) }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(error_code(&again), "NOT_FOUND");
}

async fn playlists_are_created_changed_filled_emptied_and_deleted(app: TestApp) {
    let a = app.add_song(U, "A").await;
    let b = app.add_song(U, "B").await;
    let c = app.add_song(U, "C").await;
    let created = app
        .ok(
            U,
            "mutation($s: [ID!]) { createPlaylist(input: {name: \"Mix\", songIds: $s}) { id name plays featured songs { nodes { id } } } }",
            json!({"s": [b]}),
        )
        .await;
    let playlist = &created["createPlaylist"];
    assert_eq!(playlist["name"], "Mix");
    assert_eq!(playlist["plays"], 0);
    assert_eq!(playlist["featured"], false);
    assert_eq!(playlist["songs"]["nodes"], json!([{"id": b}]));
    let id = playlist["id"].as_str().unwrap();

    let renamed = app
        .ok(
            U,
            "mutation($id: ID!) { updatePlaylist(id: $id, input: {name: \"Remix\"}) { name } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(renamed["updatePlaylist"]["name"], "Remix");

    // Adding appends in order and ignores songs already present.
    let added = app
        .ok(
            U,
            "mutation($id: ID!, $s: [ID!]!) { addSongsToPlaylist(playlistId: $id, songIds: $s) { songs { totalCount nodes { id } } } }",
            json!({"id": id, "s": [c, b, a]}),
        )
        .await;
    assert_eq!(
        added["addSongsToPlaylist"]["songs"]["nodes"],
        json!([{"id": b}, {"id": c}, {"id": a}])
    );
    assert_eq!(added["addSongsToPlaylist"]["songs"]["totalCount"], 3);

    let removed = app
        .ok(
            U,
            "mutation($id: ID!, $s: [ID!]!) { removeSongsFromPlaylist(playlistId: $id, songIds: $s) { songs { nodes { id } } } }",
            json!({"id": id, "s": [c]}),
        )
        .await;
    assert_eq!(
        removed["removeSongsFromPlaylist"]["songs"]["nodes"],
        json!([{"id": b}, {"id": a}])
    );

    // Deleting a song takes it out of its playlists too.
    app.ok(
        U,
        "mutation($id: ID!) { deleteSong(id: $id) }",
        json!({"id": a}),
    )
    .await;
    let after = app
        .ok(
            U,
            "query($id: ID!) { playlist(id: $id) { songs { nodes { id } } } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(after["playlist"]["songs"]["nodes"], json!([{"id": b}]));

    let deleted = app
        .ok(
            U,
            "mutation($id: ID!) { deletePlaylist(id: $id) }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(deleted["deletePlaylist"], id);
    let gone = app
        .gql(
            U,
            "query($id: ID!) { playlist(id: $id) { id } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(error_code(&gone), "NOT_FOUND");
}

async fn update_me_merges_preferences_like_auth0(app: TestApp) {
    let set = app
        .ok(
            U,
            r#"mutation { updateMe(input: {displayName: "Ann", favGenre: "jazz",
                preferences: {theme: "dark", player: {volume: 5, shuffle: true}, lang: "en"}}) {
                displayName favGenre preferences } }"#,
            json!({}),
        )
        .await;
    assert_eq!(set["updateMe"]["displayName"], "Ann");
    assert_eq!(set["updateMe"]["favGenre"], "jazz");

    // Top-level merge: nested objects are replaced whole, null deletes a key,
    // untouched keys stay.
    let merged = app
        .ok(
            U,
            r#"mutation { updateMe(input: {preferences: {player: {volume: 7}, lang: null}}) { displayName preferences favGenre } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        merged["updateMe"],
        json!({"displayName": "Ann", "favGenre": "jazz", "preferences": {"theme": "dark", "player": {"volume": 7}}})
    );

    // An empty object changes nothing (it must never wipe the metadata).
    let same = app
        .ok(
            U,
            "mutation { updateMe(input: {preferences: {}}) { preferences displayName } }",
            json!({}),
        )
        .await;
    assert_eq!(
        same["updateMe"]["preferences"],
        json!({"theme": "dark", "player": {"volume": 7}})
    );
    assert_eq!(same["updateMe"]["displayName"], "Ann");

    // null resets the display name to the default and clears the genre.
    let reset = app
        .ok(U, "mutation { updateMe(input: {displayName: null, favGenre: null}) { displayName favGenre } }", json!({}))
        .await;
    assert_eq!(
        reset["updateMe"],
        json!({"displayName": "user", "favGenre": null})
    );
}

async fn record_play_counts_and_the_role_follows_the_threshold(_app: TestApp) {
    let app = TestApp::spawn_with(_app.backend, |c| c.playlist_editor_threshold = 3).await;
    let s = app.add_song(U, "S").await;
    let first = app
        .create_playlist(U, "One", std::slice::from_ref(&s))
        .await;
    let second = app.create_playlist(U, "Two", &[]).await;
    // An admin gives the user an unrelated role, which the rule must keep.
    let admin = app.token_with(
        "auth0|admin",
        json!({"permissions": ["write:app_metadata"]}),
    );
    app.gql(U, "{ me { id } }", json!({})).await;
    let (_, body) = app
        .post(Some(&admin), "mutation { setUserRoles(userId: \"auth0|mutator\", roles: [\"beta_tester\"]) { roles } }", json!({}))
        .await;
    assert_eq!(
        body["data"]["setUserRoles"]["roles"],
        json!(["beta_tester"]),
        "{body}"
    );

    let play = "mutation($p: ID!) { recordPlay(playlistId: $p) { plays } }";
    app.ok(U, play, json!({"p": first})).await;
    app.ok(U, play, json!({"p": first})).await;
    let me = app
        .ok(
            U,
            "{ me { roles canEditFeaturedPlaylists totalPlays } }",
            json!({}),
        )
        .await;
    assert_eq!(
        me["me"],
        json!({"roles": ["beta_tester"], "canEditFeaturedPlaylists": false, "totalPlays": 2})
    );
    let refused = app
        .gql(
            U,
            "mutation($p: ID!) { setPlaylistFeatured(id: $p, featured: true) { featured } }",
            json!({"p": first}),
        )
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN");

    let third = app.ok(U, play, json!({"p": second})).await;
    assert_eq!(third["recordPlay"]["plays"], 1);
    let me = app
        .ok(
            U,
            "{ me { roles canEditFeaturedPlaylists totalPlays } }",
            json!({}),
        )
        .await;
    assert_eq!(
        me["me"],
        json!({"roles": ["beta_tester", "playlist_editor"], "canEditFeaturedPlaylists": true, "totalPlays": 3})
    );

    let featured = app
        .ok(
            U,
            "mutation($p: ID!) { setPlaylistFeatured(id: $p, featured: true) { id featured } }",
            json!({"p": first}),
        )
        .await;
    assert_eq!(
        featured["setPlaylistFeatured"],
        json!({"id": first, "featured": true})
    );
    let listed = app
        .ok(
            "auth0|someone-else",
            "{ featuredPlaylists { totalCount nodes { id name songs { nodes { name } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listed["featuredPlaylists"],
        json!({"totalCount": 1, "nodes": [{"id": first, "name": "One", "songs": {"nodes": [{"name": "S"}]}}]})
    );

    // Deleting the playlist with 2 of the 3 plays drops below the threshold:
    // the editor role goes, the other role stays.
    app.ok(
        U,
        "mutation($p: ID!) { deletePlaylist(id: $p) }",
        json!({"p": first}),
    )
    .await;
    let me = app
        .ok(
            U,
            "{ me { roles canEditFeaturedPlaylists totalPlays } }",
            json!({}),
        )
        .await;
    assert_eq!(
        me["me"],
        json!({"roles": ["beta_tester"], "canEditFeaturedPlaylists": false, "totalPlays": 1})
    );
}

async fn admins_set_plan_and_roles_and_users_see_them(app: TestApp) {
    app.ok(U, "{ me { id } }", json!({})).await;
    let admin = app.token_with("auth0|admin", json!({"scope": "openid write:app_metadata"}));
    let (_, body) = app
        .post(Some(&admin), "mutation { setUserPlan(userId: \"auth0|mutator\", plan: FAMILY) { id plan displayName } }", json!({}))
        .await;
    assert_eq!(
        body["data"]["setUserPlan"],
        json!({"id": U, "plan": "FAMILY", "displayName": "user"}),
        "{body}"
    );
    let me = app.ok(U, "{ me { plan } }", json!({})).await;
    assert_eq!(me["me"]["plan"], "FAMILY");

    let (_, unknown) = app
        .post(
            Some(&admin),
            "mutation { setUserPlan(userId: \"auth0|nobody\", plan: PREMIUM) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&unknown), "NOT_FOUND");
    let (_, bad_role) = app
        .post(
            Some(&admin),
            "mutation { setUserRoles(userId: \"auth0|mutator\", roles: [\"has space\"]) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&bad_role), "BAD_USER_INPUT");
}

on_both_databases!(
    songs_are_added_updated_and_deleted,
    playlists_are_created_changed_filled_emptied_and_deleted,
    update_me_merges_preferences_like_auth0,
    record_play_counts_and_the_role_follows_the_threshold,
    admins_set_plan_and_roles_and_users_see_them,
);
