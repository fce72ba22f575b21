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

/// `me` and a playlist answer their fields in the order the query names
/// them, as the GraphQL spec asks, even when the first one waits for the
/// database and the second does not (the body is read as text: a JSON value would not keep the
/// order).
async fn items_answer_fields_in_query_order(app: TestApp) {
    let user = "auth0|order";
    let song = app.add_song(user, "Blue").await;
    let playlist = app.create_playlist(user, "Mix", &[song]).await;
    for (query, expected) in [
        (
            "query($id: ID!) { playlist(id: $id) { songs { totalCount } name } }",
            r#"{"data":{"playlist":{"songs":{"totalCount":1},"name":"Mix"}}}"#,
        ),
        (
            "query($id: ID!) { playlist(id: $id) { name songs { totalCount } } }",
            r#"{"data":{"playlist":{"name":"Mix","songs":{"totalCount":1}}}}"#,
        ),
        (
            "{ me { totalPlays id } }",
            r#"{"data":{"me":{"totalPlays":0,"id":"auth0|order"}}}"#,
        ),
    ] {
        let body = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(app.token(user))
            .json(&json!({ "query": query, "variables": {"id": playlist} }))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, expected);
    }
}

on_both_databases!(
    items_answer_fields_in_query_order,
    full_me_query_joins_profile_and_music_data,
    a_new_user_gets_defaults,
    me_without_a_token_is_unauthenticated,
);
