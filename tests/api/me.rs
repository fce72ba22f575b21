//! The `me` query end to end.

use serde_json::json;

use crate::{
    helpers::{TestApp, error_code},
    on_both_databases,
};

const FULL_ME: &str = "{ me { id email name displayName preferences roles plan canEditFeaturedPlaylists favGenre totalPlays
    songs { totalCount nodes { id name artist genre } }
    playlists { totalCount nodes { id name plays featured songs { totalCount nodes { name } } } } } }";

async fn full_me_query_joins_profile_and_music_data(app: TestApp) {
    let user = "auth0|alice";
    let a = app.add_song(user, "So What").await;
    let b = app.add_song(user, "Teardrop").await;
    let playlist = app
        .create_playlist(user, "Late night", &[b.clone(), a.clone()])
        .await;
    app.ok(
        user,
        "mutation($p: ID!) { recordPlay(playlistId: $p) { plays } }",
        json!({"p": playlist}),
    )
    .await;
    app.ok(
        user,
        "mutation { updateMe(input: {displayName: \"Alice\", favGenre: \"jazz\", preferences: {theme: \"dark\"}}) { id } }",
        json!({}),
    )
    .await;

    let me = &app.ok(user, FULL_ME, json!({})).await["me"];
    assert_eq!(me["id"], user);
    assert_eq!(me["displayName"], "Alice");
    assert_eq!(me["preferences"], json!({"theme": "dark"}));
    assert_eq!(me["roles"], json!([]));
    assert_eq!(me["plan"], "FREE");
    assert_eq!(me["canEditFeaturedPlaylists"], false);
    assert_eq!(me["favGenre"], "jazz");
    assert_eq!(me["totalPlays"], 1);
    assert_eq!(me["songs"]["totalCount"], 2);
    assert_eq!(me["songs"]["nodes"][0]["name"], "So What");
    let list = &me["playlists"]["nodes"][0];
    assert_eq!(list["name"], "Late night");
    assert_eq!(list["plays"], 1);
    assert_eq!(list["featured"], false);
    assert_eq!(list["songs"]["totalCount"], 2);
    // Playlist order is the order the songs were given in, not library order.
    assert_eq!(
        list["songs"]["nodes"],
        json!([{"name": "Teardrop"}, {"name": "So What"}])
    );
}

async fn a_new_user_gets_defaults(app: TestApp) {
    let me = &app
        .ok(
            "auth0|new",
            "{ me { displayName roles plan favGenre totalPlays songs { totalCount } } }",
            json!({}),
        )
        .await["me"];
    assert_eq!(
        me,
        &json!({"displayName": "user", "roles": [], "plan": "FREE", "favGenre": null, "totalPlays": 0, "songs": {"totalCount": 0}})
    );
}

async fn me_without_a_token_is_unauthenticated(app: TestApp) {
    let (status, body) = app.post(None, "{ me { id } }", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    assert_eq!(body["data"], json!(null));
}

on_both_databases!(
    full_me_query_joins_profile_and_music_data,
    a_new_user_gets_defaults,
    me_without_a_token_is_unauthenticated,
);
