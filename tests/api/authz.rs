//! The authorization matrix: one user can neither read nor change another's
//! songs and playlists, and no user can change roles or plan.

use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, error_code},
    on_both_databases,
};

const OWNER: &str = "auth0|owner";
const OTHER: &str = "google-oauth2|other";

async fn another_user_can_neither_read_nor_change_my_rows(app: TestApp) {
    let song = app.add_song(OWNER, "Mine").await;
    let playlist = app
        .create_playlist(OWNER, "Private", std::slice::from_ref(&song))
        .await;
    let other_song = app.add_song(OTHER, "Theirs").await;
    let other_playlist = app.create_playlist(OTHER, "Theirs", &[]).await;

    let attempts: Vec<(&str, Value)> = vec![
        (
            "query($s: ID!) { song(id: $s) { name } }",
            json!({"s": song}),
        ),
        (
            "query($p: ID!) { playlist(id: $p) { name } }",
            json!({"p": playlist}),
        ),
        (
            "mutation($s: ID!) { updateSong(id: $s, input: {name: \"pwned\"}) { name } }",
            json!({"s": song}),
        ),
        (
            "mutation($s: ID!) { deleteSong(id: $s) }",
            json!({"s": song}),
        ),
        (
            "mutation($p: ID!) { updatePlaylist(id: $p, input: {name: \"pwned\"}) { name } }",
            json!({"p": playlist}),
        ),
        (
            "mutation($p: ID!) { deletePlaylist(id: $p) }",
            json!({"p": playlist}),
        ),
        (
            "mutation($p: ID!) { recordPlay(playlistId: $p) { plays } }",
            json!({"p": playlist}),
        ),
        (
            "mutation($p: ID!, $s: [ID!]!) { addSongsToPlaylist(playlistId: $p, songIds: $s) { id } }",
            json!({"p": playlist, "s": [other_song]}),
        ),
        (
            "mutation($p: ID!, $s: [ID!]!) { removeSongsFromPlaylist(playlistId: $p, songIds: $s) { id } }",
            json!({"p": playlist, "s": []}),
        ),
        (
            "mutation($p: ID!) { setPlaylistFeatured(id: $p, featured: true) { id } }",
            json!({"p": playlist}),
        ),
    ];
    for (query, vars) in attempts {
        let body = app.gql(OTHER, query, vars).await;
        let code = error_code(&body);
        assert!(
            code == "NOT_FOUND" || code == "FORBIDDEN",
            "{query} answered {body}"
        );
    }
    // Someone else's songs cannot be put into one's own playlist either.
    let smuggle = app
        .gql(
            OTHER,
            "mutation($p: ID!, $s: [ID!]!) { addSongsToPlaylist(playlistId: $p, songIds: $s) { id } }",
            json!({"p": other_playlist, "s": [song]}),
        )
        .await;
    assert_eq!(error_code(&smuggle), "BAD_USER_INPUT");
    let smuggle_create = app
        .gql(
            OTHER,
            "mutation($s: [ID!]) { createPlaylist(input: {name: \"x\", songIds: $s}) { id } }",
            json!({"s": [song]}),
        )
        .await;
    assert_eq!(error_code(&smuggle_create), "BAD_USER_INPUT");

    // Lists show only one's own rows.
    let theirs = app
        .ok(
            OTHER,
            "{ me { songs { nodes { name } } playlists { nodes { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(theirs["me"]["songs"]["nodes"], json!([{"name": "Theirs"}]));
    assert_eq!(
        theirs["me"]["playlists"]["nodes"],
        json!([{"name": "Theirs"}])
    );

    // And the owner's rows are untouched.
    let mine = app
        .ok(OWNER, "{ me { totalPlays songs { nodes { name } } playlists { nodes { name plays songs { totalCount } } } } }", json!({}))
        .await;
    assert_eq!(
        mine["me"],
        json!({"totalPlays": 0, "songs": {"nodes": [{"name": "Mine"}]}, "playlists": {"nodes": [{"name": "Private", "plays": 0, "songs": {"totalCount": 1}}]}})
    );
}

async fn users_cannot_change_roles_or_plan(app: TestApp) {
    app.ok(OWNER, "{ me { id } }", json!({})).await;
    for mutation in [
        "mutation { setUserRoles(userId: \"auth0|owner\", roles: [\"playlist_editor\"]) { roles } }",
        "mutation { setUserPlan(userId: \"auth0|owner\", plan: PREMIUM) { plan } }",
    ] {
        let body = app.gql(OWNER, mutation, json!({})).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{mutation}: {body}");
    }
    // UpdateMeInput has no field for them...
    let body = app
        .gql(
            OWNER,
            "mutation { updateMe(input: {roles: [\"admin\"]}) { roles } }",
            json!({}),
        )
        .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("roles"),
        "{body}"
    );
    // ...and preferences cannot smuggle them in.
    for prefs in [
        json!({"roles": ["playlist_editor"]}),
        json!({"plan": "premium"}),
        json!({"app_metadata": {"roles": ["x"]}}),
    ] {
        let body = app
            .gql(
                OWNER,
                "mutation($p: JSON!) { updateMe(input: {preferences: $p}) { roles } }",
                json!({"p": prefs}),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{prefs}: {body}");
    }
    let me = app
        .ok(
            OWNER,
            "{ me { roles plan canEditFeaturedPlaylists } }",
            json!({}),
        )
        .await;
    assert_eq!(
        me["me"],
        json!({"roles": [], "plan": "FREE", "canEditFeaturedPlaylists": false})
    );
}

async fn a_playlist_editor_cannot_feature_someone_elses_playlist(app: TestApp) {
    let playlist = app.create_playlist(OWNER, "Private", &[]).await;
    app.ok(OTHER, "{ me { id } }", json!({})).await;
    let admin = app.token_with(
        "auth0|admin",
        json!({"permissions": ["write:app_metadata"]}),
    );
    let (_, body) = app
        .post(Some(&admin), "mutation { setUserRoles(userId: \"google-oauth2|other\", roles: [\"playlist_editor\"]) { roles } }", json!({}))
        .await;
    assert_eq!(
        body["data"]["setUserRoles"]["roles"],
        json!(["playlist_editor"])
    );
    let body = app
        .gql(
            OTHER,
            "mutation($p: ID!) { setPlaylistFeatured(id: $p, featured: true) { id } }",
            json!({"p": playlist}),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let featured = app
        .ok(OTHER, "{ featuredPlaylists { totalCount } }", json!({}))
        .await;
    assert_eq!(featured["featuredPlaylists"]["totalCount"], 0);
}

async fn a_machine_token_has_no_profile(app: TestApp) {
    let body = app
        .gql("someclient@clients", "{ me { id } }", json!({}))
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
}

on_both_databases!(
    another_user_can_neither_read_nor_change_my_rows,
    users_cannot_change_roles_or_plan,
    a_playlist_editor_cannot_feature_someone_elses_playlist,
    a_machine_token_has_no_profile,
);
