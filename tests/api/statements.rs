//! N+1 never: the statements a query costs do not grow with the rows it returns.

use serde_json::json;

use crate::{helpers::TestApp, on_both_databases};

const QUERY: &str = "{ me { displayName roles favGenre
    songs(first: 100) { totalCount nodes { name } }
    playlists(first: 100) { totalCount nodes { name plays songs(first: 100) { totalCount nodes { name } } } } } }";

/// Gives `user` `playlists` playlists of 3 songs each.
async fn library(app: &TestApp, user: &str, playlists: usize) {
    let songs = [
        app.add_song(user, "a").await,
        app.add_song(user, "b").await,
        app.add_song(user, "c").await,
    ];
    for i in 0..playlists {
        app.create_playlist(user, &format!("p{i}"), &songs).await;
    }
}

async fn cost(app: &TestApp, user: &str) -> (u64, serde_json::Value) {
    // Warm the user's row so both runs measure the same thing.
    app.ok(user, "{ me { id } }", json!({})).await;
    let before = app.statements();
    let data = app.ok(user, QUERY, json!({})).await;
    (app.statements() - before, data)
}

async fn statements_per_query_do_not_grow_with_playlists(app: TestApp) {
    library(&app, "auth0|one", 1).await;
    library(&app, "auth0|fifty", 50).await;
    let (one, small) = cost(&app, "auth0|one").await;
    let (fifty, large) = cost(&app, "auth0|fifty").await;
    assert_eq!(
        small["me"]["playlists"]["nodes"].as_array().unwrap().len(),
        1
    );
    assert_eq!(
        large["me"]["playlists"]["nodes"].as_array().unwrap().len(),
        50
    );
    for playlist in large["me"]["playlists"]["nodes"].as_array().unwrap() {
        assert_eq!(playlist["songs"]["totalCount"], 3);
        assert_eq!(playlist["songs"]["nodes"].as_array().unwrap().len(), 3);
    }
    assert_eq!(
        one, fifty,
        "1 playlist cost {one} statements, 50 cost {fifty}"
    );
    // The user row, both pages, the songs of every playlist and all the
    // counts are read ahead by `me` in a single statement.
    assert_eq!(fifty, 1, "the full query cost {fifty} statements");
}

async fn a_list_asked_twice_with_other_pages_reads_the_second_on_its_own(app: TestApp) {
    library(&app, "auth0|twice", 2).await;
    let (statements, data) = {
        app.ok("auth0|twice", "{ me { id } }", json!({})).await;
        let before = app.statements();
        let data = app
            .ok(
                "auth0|twice",
                "{ me { one: songs(first: 1) { nodes { name } pageInfo { hasNextPage } }
                        all: songs(first: 5) { nodes { name } pageInfo { hasNextPage } }
                        playlists(first: 1) { nodes { name
                            two: songs(first: 2) { nodes { name } }
                            three: songs(first: 3) { totalCount nodes { name } } } } } }",
                json!({}),
            )
            .await;
        (app.statements() - before, data)
    };
    let me = &data["me"];
    assert_eq!(me["one"]["nodes"], json!([{"name": "a"}]));
    assert_eq!(me["one"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(
        me["all"]["nodes"],
        json!([{"name": "a"}, {"name": "b"}, {"name": "c"}])
    );
    assert_eq!(me["all"]["pageInfo"]["hasNextPage"], false);
    let playlist = &me["playlists"]["nodes"][0];
    assert_eq!(playlist["name"], "p0");
    assert_eq!(
        playlist["two"]["nodes"],
        json!([{"name": "a"}, {"name": "b"}])
    );
    assert_eq!(playlist["three"]["totalCount"], 3);
    assert_eq!(
        playlist["three"]["nodes"],
        json!([{"name": "a"}, {"name": "b"}, {"name": "c"}])
    );
    // The statement read ahead answers the first page of each list and the
    // count; the other song page and playlist-songs page cost one each.
    assert_eq!(statements, 3, "{data}");
}

async fn a_warm_me_is_one_statement(app: TestApp) {
    app.ok("auth0|warm", "{ me { id } }", json!({})).await;
    let before = app.statements();
    app.ok(
        "auth0|warm",
        "{ me { displayName roles plan favGenre } }",
        json!({}),
    )
    .await;
    assert_eq!(app.statements() - before, 1);
}

// What a query itself costs: with the response cache on, a miss also reads
// the data versions (see response_cache.rs).
on_both_databases!(
    uncached: statements_per_query_do_not_grow_with_playlists,
    a_warm_me_is_one_statement,
    a_list_asked_twice_with_other_pages_reads_the_second_on_its_own,
);

/// The statement `me` reads ahead selects only the columns a query asks
/// for; whatever the selection, it answers exactly what the field-by-field
/// path answers. The second alias of each list asks for a page size of its
/// own, so it is read on its own and is the yardstick.
async fn read_ahead_answers_match_field_by_field_answers(app: TestApp) {
    let user = "auth0|columns";
    let rock = app
        .ok(
            user,
            "mutation { addSong(input: {name: \"r\", artist: \"A\", genre: \"rock\"}) { id } }",
            json!({}),
        )
        .await["addSong"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let plain = app.add_song(user, "p").await;
    app.create_playlist(user, "mix", &[plain.clone(), rock.clone()])
        .await;
    app.ok(
        user,
        "mutation($id: ID!) { recordPlay(playlistId: $id) { plays } }",
        json!({"id": app.create_playlist(user, "played", &[rock]).await}),
    )
    .await;

    let song_selections = [
        "id",
        "name",
        "artist",
        "genre createdAt",
        "id name artist genre createdAt __typename",
    ];
    let playlist_selections = [
        "name",
        "plays featured",
        "id createdAt",
        "plays songs(first: 5) { nodes { __SONG__ } }",
        "featured songs(first: 5) { edges { cursor node { __SONG__ } } }",
    ];
    for song in song_selections {
        let query = format!(
            "{{ me {{ a: songs(first: 10) {{ nodes {{ {song} }} }}
                      b: songs(first: 11) {{ edges {{ node {{ {song} }} }} }} }} }}"
        );
        let data = app.ok(user, &query, json!({})).await;
        let b: Vec<_> = data["me"]["b"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"].clone())
            .collect();
        assert_eq!(data["me"]["a"]["nodes"], json!(b), "{song}");
        assert_eq!(b.len(), 2);
        for playlist in playlist_selections {
            let playlist = playlist.replace("__SONG__", song);
            let query = format!(
                "{{ me {{ a: playlists(first: 10) {{ nodes {{ {playlist} }} }}
                          b: playlists(first: 11) {{ nodes {{ {playlist} }} }} }} }}"
            );
            let data = app.ok(user, &query, json!({})).await;
            assert_eq!(data["me"]["a"], data["me"]["b"], "{playlist}");
            assert_eq!(data["me"]["a"]["nodes"].as_array().unwrap().len(), 2);
        }
    }
    let data = app
        .ok(
            user,
            "{ me { songs { nodes { artist genre } } playlists { nodes { name plays } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["me"]["songs"]["nodes"],
        json!([{"artist": "A", "genre": "rock"}, {"artist": "Artist", "genre": "jazz"}])
    );
    assert_eq!(
        data["me"]["playlists"]["nodes"][1],
        json!({"name": "played", "plays": 1})
    );
}

on_both_databases!(read_ahead_answers_match_field_by_field_answers);
