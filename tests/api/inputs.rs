//! Bad input gets `BAD_USER_INPUT` with a message a client developer
//! understands, and changes nothing.

use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, error_code},
    on_both_databases,
};

const U: &str = "auth0|input";

async fn assert_bad(app: &TestApp, query: &str, vars: Value, mentions: &str) {
    let body = app.gql(U, query, vars).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{query}: {body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains(mentions),
        "{query}: message `{message}` should mention `{mentions}`"
    );
}

async fn invalid_inputs_are_refused_with_clear_messages(app: TestApp) {
    let song = app.add_song(U, "Song").await;
    let playlist = app.create_playlist(U, "List", &[]).await;
    let long = "x".repeat(201);
    assert_bad(
        &app,
        "mutation { addSong(input: {name: \"  \"}) { id } }",
        json!({}),
        "name must not be empty",
    )
    .await;
    assert_bad(
        &app,
        "mutation($n: String!) { addSong(input: {name: $n}) { id } }",
        json!({"n": long}),
        "at most 200",
    )
    .await;
    assert_bad(
        &app,
        "mutation($n: String!) { createPlaylist(input: {name: $n}) { id } }",
        json!({"n": ""}),
        "name",
    )
    .await;
    assert_bad(
        &app,
        "mutation($p: ID!) { updatePlaylist(id: $p, input: {name: \"\"}) { id } }",
        json!({"p": playlist}),
        "name",
    )
    .await;
    assert_bad(
        &app,
        "mutation { updateMe(input: {displayName: \"   \"}) { id } }",
        json!({}),
        "displayName",
    )
    .await;
    assert_bad(
        &app,
        "mutation($n: String!) { updateMe(input: {displayName: $n}) { id } }",
        json!({"n": "y".repeat(101)}),
        "displayName",
    )
    .await;
    assert_bad(
        &app,
        "mutation($g: String!) { updateMe(input: {favGenre: $g}) { id } }",
        json!({"g": "g".repeat(51)}),
        "favGenre",
    )
    .await;
    assert_bad(
        &app,
        "mutation { updateMe(input: {preferences: [1, 2]}) { id } }",
        json!({}),
        "JSON object",
    )
    .await;
    assert_bad(
        &app,
        "mutation { updateMe(input: {preferences: \"dark\"}) { id } }",
        json!({}),
        "JSON object",
    )
    .await;
    assert_bad(
        &app,
        "mutation($p: JSON!) { updateMe(input: {preferences: $p}) { id } }",
        json!({"p": {"a.b": 1}}),
        "`.` or `$`",
    )
    .await;
    assert_bad(
        &app,
        "mutation($p: JSON!) { updateMe(input: {preferences: $p}) { id } }",
        json!({"p": {"$where": 1}}),
        "`.` or `$`",
    )
    .await;
    assert_bad(
        &app,
        "mutation($p: JSON!) { updateMe(input: {preferences: $p}) { id } }",
        json!({"p": {"blob": "z".repeat(11 * 1024)}}),
        "limit",
    )
    .await;
    assert_bad(
        &app,
        "{ me { songs(first: 101) { totalCount } } }",
        json!({}),
        "first must be between 0 and 100",
    )
    .await;
    assert_bad(
        &app,
        "{ me { songs(first: -1) { totalCount } } }",
        json!({}),
        "first",
    )
    .await;
    assert_bad(
        &app,
        "{ me { songs(after: \"bm9wZQ\") { totalCount } } }",
        json!({}),
        "cursor",
    )
    .await;
    assert_bad(
        &app,
        "query { song(id: \"abc\") { id } }",
        json!({}),
        "not a valid song id",
    )
    .await;
    assert_bad(
        &app,
        "query { playlist(id: \"-4\") { id } }",
        json!({}),
        "not a valid playlist id",
    )
    .await;
    assert_bad(
        &app,
        "mutation($p: ID!, $s: [ID!]!) { addSongsToPlaylist(playlistId: $p, songIds: $s) { id } }",
        json!({"p": playlist, "s": ["999999"]}),
        "999999",
    )
    .await;
    let too_many: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
    assert_bad(
        &app,
        "mutation($p: ID!, $s: [ID!]!) { addSongsToPlaylist(playlistId: $p, songIds: $s) { id } }",
        json!({"p": playlist, "s": too_many}),
        "at most 100",
    )
    .await;

    // Nothing of the above changed anything.
    let me = app
        .ok(U, "{ me { displayName preferences favGenre songs { nodes { id name } } playlists { nodes { name songs { totalCount } } } } }", json!({}))
        .await;
    assert_eq!(
        me["me"],
        json!({"displayName": "user", "preferences": {}, "favGenre": null,
               "songs": {"nodes": [{"id": song, "name": "Song"}]},
               "playlists": {"nodes": [{"name": "List", "songs": {"totalCount": 0}}]}})
    );
}

async fn an_update_that_fails_validation_changes_nothing(app: TestApp) {
    app.ok(
        U,
        "mutation { updateMe(input: {displayName: \"Kept\", favGenre: \"jazz\"}) { id } }",
        json!({}),
    )
    .await;
    // A valid display name with invalid preferences: the whole update is refused.
    let body = app
        .gql(U, "mutation($p: JSON!) { updateMe(input: {displayName: \"New\", favGenre: \"rock\", preferences: $p}) { id } }", json!({"p": {"x.y": 1}}))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    let me = app
        .ok(U, "{ me { displayName favGenre } }", json!({}))
        .await;
    assert_eq!(me["me"], json!({"displayName": "Kept", "favGenre": "jazz"}));
}

/// U+0000, which PostgreSQL's text and jsonb cannot hold, in every string
/// that reaches the database unchecked otherwise (schema fuzzing met
/// `INTERNAL_SERVER_ERROR` there): refused, or naming no one, alike on both
/// databases, as literals and as variables.
async fn nul_characters_are_answered_alike_on_both_databases(app: TestApp) {
    app.ok(
        U,
        "mutation($p: JSON!) { updateMe(input: {preferences: $p}) { id } }",
        json!({"p": {"theme": "dark"}}),
    )
    .await;
    for preferences in [
        json!({"a": "\u{0}"}),
        json!({"a\u{0}b": 1}),
        json!({"a": {"b": ["x\u{0}"]}}),
        json!({"a": [{"b\u{0}": true}]}),
    ] {
        assert_bad(
            &app,
            "mutation($p: JSON!) { updateMe(input: {favGenre: \"rock\", preferences: $p}) { id } }",
            json!({"p": preferences}),
            "U+0000",
        )
        .await;
    }
    assert_bad(
        &app,
        "mutation { updateMe(input: {preferences: {a: \"\\u0000\"}}) { id } }",
        json!({}),
        "U+0000",
    )
    .await;
    let me = app
        .ok(U, "{ me { preferences favGenre } }", json!({}))
        .await;
    assert_eq!(
        me["me"],
        json!({"preferences": {"theme": "dark"}, "favGenre": null})
    );

    let admin = app.token_with("auth0|admin", json!({"scope": "write:app_metadata"}));
    for id in ["\u{0}", "auth0|input\u{0}"] {
        for query in [
            "mutation($u: ID!) { deleteUser(userId: $u) }",
            "mutation($u: ID!) { setUserPlan(userId: $u, plan: PREMIUM) { plan } }",
            "mutation($u: ID!) { setUserRoles(userId: $u, roles: []) { roles } }",
        ] {
            let (status, body) = app.post(Some(&admin), query, json!({"u": id})).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(error_code(&body), "NOT_FOUND", "{query} {id:?}: {body}");
        }
    }
    let me = app.ok(U, "{ me { id plan } }", json!({})).await;
    assert_eq!(me["me"], json!({"id": U, "plan": "FREE"}));
}

async fn pages_follow_cursors_to_the_end(app: TestApp) {
    for i in 0..5 {
        app.add_song(U, &format!("S{i}")).await;
    }
    let page = "query($a: String) { me { songs(first: 2, after: $a) { totalCount pageInfo { hasNextPage hasPreviousPage endCursor } nodes { name } } } }";
    let mut after = Value::Null;
    let mut names = Vec::new();
    loop {
        let data = app.ok(U, page, json!({"a": after})).await;
        let songs = &data["me"]["songs"];
        assert_eq!(songs["totalCount"], 5);
        assert_eq!(songs["pageInfo"]["hasPreviousPage"], !after.is_null());
        names.extend(
            songs["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["name"].as_str().unwrap().to_owned()),
        );
        if songs["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = songs["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(names, ["S0", "S1", "S2", "S3", "S4"]);
    let default = app
        .ok(U, "{ me { songs { nodes { name } } } }", json!({}))
        .await;
    assert_eq!(default["me"]["songs"]["nodes"].as_array().unwrap().len(), 5);
}

async fn queries_too_deep_or_too_large_are_refused(app: TestApp) {
    let deep = "{ me { playlists { nodes { songs { nodes { id } } } } } }";
    let ok = app.gql(U, deep, json!({})).await;
    assert!(ok.get("errors").is_none(), "{ok}");
    let mut too_deep = String::from("{ __schema { types { fields { type ");
    for _ in 0..20 {
        too_deep.push_str("{ ofType ");
    }
    too_deep.push_str("{ name }");
    too_deep.push_str(&" }".repeat(24));
    let body = app.gql(U, &too_deep, json!({})).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep"),
        "{body}"
    );

    let big = json!({"query": format!("{{ me {{ id }} }} # {}", "x".repeat(70 * 1024))});
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(app.token(U))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("json")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "BAD_REQUEST", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["limit"], 65536, "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("65536 bytes")
    );

    // Without a length (chunked), cut off as it streams: the same answer.
    let raw = chunked_post(&app, &big.to_string()).await;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(
        head.contains("content-type: application/graphql-response+json"),
        "{head}"
    );
    assert!(body.contains("\"code\":\"BAD_REQUEST\""), "{body}");
    assert!(body.contains("65536 bytes"), "{body}");

    // Other routes refuse in their own shape.
    let response = app
        .client
        .post(app.url("/healthz"))
        .header("content-type", "application/json")
        .body(big.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "BAD_REQUEST", "{body}");
}

/// A POST of `body` to `/graphql` in chunks, without a length (reqwest
/// here cannot stream one); the raw answer.
async fn chunked_post(app: &TestApp, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut request = String::from(
        "POST /graphql HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         accept: application/graphql-response+json\r\ntransfer-encoding: chunked\r\n\
         connection: close\r\n\r\n",
    );
    for chunk in body.as_bytes().chunks(4096) {
        request.push_str(&format!("{:x}\r\n", chunk.len()));
        request.push_str(std::str::from_utf8(chunk).unwrap());
        request.push_str("\r\n");
    }
    request.push_str("0\r\n\r\n");
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // The gateway may answer, and close, before it has read everything.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    String::from_utf8_lossy(&raw).into_owned()
}

async fn malformed_requests_get_a_coded_error(app: TestApp) {
    for (query, code, mentions) in [
        (
            "{ me { nope } }",
            "GRAPHQL_VALIDATION_FAILED",
            "Unknown field",
        ),
        (
            "{ me { songs(first: \"ten\") { totalCount } } }",
            "GRAPHQL_VALIDATION_FAILED",
            "first",
        ),
        ("{ me { id }", "GRAPHQL_PARSE_FAILED", "expected"),
    ] {
        let body = app.gql(U, query, json!({})).await;
        assert_eq!(error_code(&body), code, "{query}: {body}");
        assert!(body.get("data").is_none(), "nothing ran: {body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(mentions),
            "{query}: {body}"
        );
    }
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "BAD_USER_INPUT");

    // Bodies that are not a GraphQL request are refused in the gateway's
    // words, not the JSON parser's.
    for (body, code, mentions) in [
        (
            "[{\"query\": \"{ __typename }\"}]",
            "BAD_REQUEST",
            "batched requests",
        ),
        (
            "{\"query\": {\"a\": 1}}",
            "BAD_USER_INPUT",
            "`query` must be a string",
        ),
        (
            "{\"query\": \"{ __typename }\", \"operationName\": 1}",
            "BAD_USER_INPUT",
            "`operationName` must be a string",
        ),
        ("{\"query\": ", "BAD_USER_INPUT", "not JSON (line 1, column"),
        ("", "BAD_USER_INPUT", "empty"),
        ("\"{ __typename }\"", "BAD_USER_INPUT", "a JSON object"),
    ] {
        let response = app
            .client
            .post(app.url("/graphql"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{body}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(error_code(&answer), code, "{body}: {answer}");
        let message = answer["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(mentions), "{body}: {message}");
        assert!(
            !message.contains("invalid type"),
            "serde's words: {message}"
        );
    }
}

on_both_databases!(
    malformed_requests_get_a_coded_error,
    invalid_inputs_are_refused_with_clear_messages,
    an_update_that_fails_validation_changes_nothing,
    nul_characters_are_answered_alike_on_both_databases,
    pages_follow_cursors_to_the_end,
    queries_too_deep_or_too_large_are_refused,
);
