//! Compiled `me` queries answer the very bytes async-graphql answers.
//!
//! Two gateways over one database, one with `COMPILED_QUERIES` on and one
//! with it off, get the same corpus of documents; their bodies must be
//! byte-identical, and `gateway_graphql_compiled_total` must show which
//! ones the compiled plans answered (so the test cannot pass with the fast
//! path never taken).

use serde_json::{Value, json};

use crate::{
    for_both_backends,
    helpers::{Backend, TestApp},
};

const OWNER: &str = "auth0|differential";
const EMPTY: &str = "auth0|empty-library";

/// Names with what JSON escapes in them, and more (control characters,
/// which names may not hold, are in the preferences).
const NAMES: &[&str] = &[
    "plain",
    "quote \" backslash \\ slash /",
    "Ωmega ß \u{a0}",
    "Ünïcödé ♫ 音楽 😀",
    "<script>&amp;</script>",
    "line\u{2028}sep\u{2029}end",
];

/// Both gateways, with the response cache off so each request computes its
/// answer: the compiled one, then async-graphql's over the same database.
pub(crate) async fn pair(backend: Backend) -> (TestApp, TestApp) {
    let fast = TestApp::spawn_with(backend, |c| c.response_cache_max_bytes = 0).await;
    let url = fast.database_url.clone();
    let slow = TestApp::spawn_with(backend, |c| {
        c.response_cache_max_bytes = 0;
        c.compiled_queries = false;
        c.database_url = url;
    })
    .await;
    (fast, slow)
}

/// The status and the raw body of a POST.
pub(crate) async fn raw(
    app: &TestApp,
    token: Option<&str>,
    query: &str,
    variables: &Value,
    operation_name: Option<&str>,
) -> (u16, String) {
    let mut body = json!({"query": query, "variables": variables});
    if let Some(name) = operation_name {
        body["operationName"] = json!(name);
    }
    let mut request = app.client.post(app.url("/graphql")).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// `gateway_graphql_compiled_total` of `app`.
pub(crate) async fn compiled(app: &TestApp) -> u64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix("gateway_graphql_compiled_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no gateway_graphql_compiled_total in {text}"))
}

/// A library with escapes in every text, songs without artist or genre, an
/// empty playlist, and more items than the small pages below.
pub(crate) async fn library(app: &TestApp) {
    let admin = app.token_with(
        "auth0|admin",
        json!({"permissions": ["write:app_metadata"]}),
    );
    app.ok(
        OWNER,
        "mutation($i: UpdateMeInput!) { updateMe(input: $i) { id } }",
        json!({"i": {
            "displayName": "Zoë \"Z\" \\ ♫",
            "favGenre": "jazz\n",
            "preferences": {"theme": "dark", "nested": {"a": [1, 2.5, null, true], "é": "ü"}, "n": -7, "ctl": "\u{1}\n\t\r\u{1f}"}
        }}),
    )
    .await;
    app.ok_with(
        &admin,
        "mutation { setUserRoles(userId: \"auth0|differential\", roles: [\"playlist_editor\", \"b:q-1\"]) { roles } }",
        json!({}),
    )
    .await;
    let mut songs = Vec::new();
    for (i, name) in NAMES.iter().enumerate() {
        let artist = (i % 2 == 0).then(|| format!("artist {name}"));
        let data = app
            .ok(
                OWNER,
                "mutation($i: AddSongInput!) { addSong(input: $i) { id } }",
                json!({"i": {"name": name, "artist": artist, "genre": (i % 3 == 0).then_some("rock")}}),
            )
            .await;
        songs.push(data["addSong"]["id"].as_str().unwrap().to_owned());
    }
    app.create_playlist(OWNER, NAMES[1], &songs).await;
    app.create_playlist(OWNER, "empty", &[]).await;
    let reversed: Vec<String> = songs.iter().rev().take(3).cloned().collect();
    let p = app.create_playlist(OWNER, NAMES[3], &reversed).await;
    app.ok(
        OWNER,
        "mutation($p: ID!) { recordPlay(playlistId: $p) { plays } }",
        json!({"p": p}),
    )
    .await;
    app.create_playlist(OWNER, NAMES[2], &songs[..2]).await;
}

/// One document of the corpus.
struct Case {
    query: String,
    variables: Value,
    operation_name: Option<&'static str>,
    /// Whether the compiled plan must answer it.
    compiled: bool,
    /// Whether it reads the database (in one statement, when compiled).
    reads: bool,
}

fn case(query: &str, variables: Value, compiled: bool) -> Case {
    Case {
        query: query.to_owned(),
        variables,
        operation_name: None,
        compiled,
        reads: true,
    }
}

const SONG: &str = "__typename id name artist genre createdAt";

fn corpus(cursor: &str, position_cursor: &str) -> Vec<Case> {
    let everything = format!(
        "query Everything {{ __typename me {{ __typename id email name picture displayName preferences roles plan canEditFeaturedPlaylists favGenre syncedAt
          songs {{ __typename totalCount pageInfo {{ __typename hasPreviousPage hasNextPage startCursor endCursor }}
                  edges {{ __typename cursor node {{ {SONG} }} }} nodes {{ {SONG} }} }}
          playlists {{ __typename totalCount pageInfo {{ hasPreviousPage hasNextPage startCursor endCursor }}
                      edges {{ cursor node {{ id name }} }}
                      nodes {{ __typename id name plays featured createdAt
                               songs {{ __typename totalCount pageInfo {{ hasPreviousPage hasNextPage startCursor endCursor }}
                                       edges {{ __typename cursor node {{ {SONG} }} }} nodes {{ {SONG} }} }} }} }} }} }}"
    );
    let paged = "query Paged($n: Int, $a: String, $m: Int = 2, $b: String) { me {
          songs(first: $n, after: $a) { totalCount pageInfo { hasPreviousPage hasNextPage startCursor endCursor } edges { cursor node { id name } } }
          playlists(first: $m) { pageInfo { hasNextPage endCursor } nodes { id songs(first: 1, after: $b) { totalCount pageInfo { hasPreviousPage hasNextPage startCursor endCursor } edges { cursor node { name } } } } } } }";
    let mut cases = vec![
        case(
            "query Me { me { id displayName roles favGenre songs(first: 50) { nodes { id name } } playlists(first: 20) { nodes { id name plays songs(first: 10) { nodes { id name } } } } } }",
            json!({}),
            true,
        ),
        case(&everything, json!({}), true),
        case(
            "{ a: me { b: id c: songs(first: 2) { d: nodes { e: name f: __typename } g: pageInfo { h: endCursor } i: totalCount } j: playlists(first: 3) { k: edges { l: node { m: songs(first: 2) { n: nodes { o: id } } } } } } }",
            json!({}),
            true,
        ),
        case(
            "query Frag { me { ...MeFields playlists(first: 2) { ...Lists } } }
             fragment MeFields on Me { displayName songs(first: 3) { ...Songs } }
             fragment Songs on SongConnection { nodes { ...SongFields } totalCount }
             fragment SongFields on Song { id name artist }
             fragment Lists on PlaylistConnection { nodes { ... on Playlist { id name songs(first: 2) { ...Songs } } } }",
            json!({}),
            true,
        ),
        case(
            "{ me { ... on Me { id } ... { displayName } ... @include(if: true) { plan } } }",
            json!({}),
            true,
        ),
        case(
            "{ me { id @skip(if: true) displayName @include(if: true) email @include(if: false) songs(first: 2) @skip(if: false) { nodes { id name @skip(if: true) } } } }",
            json!({}),
            true,
        ),
        case(paged, json!({"n": 2}), true),
        case(paged, json!({"n": 2, "a": cursor}), true),
        case(paged, json!({"n": 0}), true),
        case(paged, json!({"n": null, "m": 1, "b": position_cursor}), true),
        case(paged, json!({}), true),
        case(
            &format!("{{ me {{ songs(first: 1, after: \"{cursor}\") {{ pageInfo {{ hasPreviousPage }} nodes {{ id }} }} }} }}"),
            json!({}),
            true,
        ),
        // Pages after a cursor beside pages from the start: each its own pageInfo.
        case(
            &format!("{{ me {{ a: songs(first: 1, after: \"{cursor}\") {{ pageInfo {{ hasPreviousPage hasNextPage startCursor }} }} b: songs(first: 1) {{ pageInfo {{ hasPreviousPage startCursor }} nodes {{ id }} }} }} }}"),
            json!({}),
            false,
        ),
        case(
            "{ me { songs { totalCount } playlists { totalCount nodes { songs { totalCount } } } } }",
            json!({}),
            true,
        ),
        case("{ me { __typename } }", json!({}), true),
        // No `me`: async-graphql.
        Case {
            reads: false,
            ..case("{ __typename }", json!({}), false)
        },
        case("{ me { songs { __typename } } }", json!({}), true),
        // Objects whose fields are all skipped are `{}`, `me` and `data` too, as
        // the spec answers them (async-graphql's own `null` is put right).
        case(
            "{ me { id @skip(if: true) songs(first: 1) { nodes { id @skip(if: true) } pageInfo { hasNextPage @include(if: false) } } } }",
            json!({}),
            true,
        ),
        case("{ me { id @skip(if: true) } }", json!({}), true),
        // A variable's default decides `@skip` when the request leaves it out.
        case("query($b: Boolean! = true) { me { id @skip(if: $b) displayName } }", json!({}), true),
        case("query($b: Boolean! = true) { me { id @skip(if: $b) displayName } }", json!({"b": false}), true),
        Case {
            reads: false,
            ..case("{ me @skip(if: true) { id } }", json!({}), true)
        },
        // `me` beside the root's `__typename`, in every order, aliased and
        // conditional: one answer, keys in the document's order.
        case("{ me { id } __typename }", json!({}), true),
        case("{ me { id } t: __typename __typename }", json!({}), true),
        case("{ t: __typename me { displayName } }", json!({}), true),
        case("{ __typename @skip(if: true) me { id } }", json!({}), true),
        case(
            "query($b: Boolean! = false) { me { id songs(first: 1) { totalCount } } __typename @include(if: $b) }",
            json!({}),
            true,
        ),
        case(
            "query($b: Boolean! = false) { me { id } __typename @include(if: $b) }",
            json!({"b": true}),
            true,
        ),
    ];
    let directives = "query Dir($s: Boolean!, $i: Boolean!) { me { id @skip(if: $s) roles @include(if: $i)
        ... on Me @include(if: $s) { favGenre } ...F @skip(if: $i)
        playlists(first: 2) @include(if: $i) { nodes { name songs(first: 2) { nodes { name @skip(if: $s) } } } } } }
        fragment F on Me { picture preferences }";
    for (s, i) in [(true, true), (true, false), (false, true), (false, false)] {
        cases.push(case(directives, json!({"s": s, "i": i}), true));
    }
    // Named operations, chosen by name.
    cases.push(Case {
        operation_name: Some("Named"),
        ..case("query Named { me { id } }", json!({}), true)
    });
    // What the compiler leaves to async-graphql: each still answers the
    // same bytes, through the executor.
    for query in [
        // A field it does not read.
        "{ me { totalPlays } }",
        // A key selected twice, merged by async-graphql.
        "{ me { id ... on Me { id } } }",
        // Another root field, before or after `me`, beside `__typename`.
        "{ me { id } featuredPlaylists { totalCount } }",
        "{ featuredPlaylists { totalCount } me { id } __typename }",
        "{ __typename me { id } song(id: \"999999\") { name } }",
        "{ me { songs(first: 1) { nodes { id } } } playlist(id: \"999999\") { id } }",
        // Errors: a page too large, a bad cursor, an unknown field.
        "{ me { songs(first: -1) { nodes { id } } } }",
        "{ me { songs(first: 100000) { nodes { id } } } }",
        "{ me { songs(after: \"not a cursor\") { nodes { id } } } }",
        "{ me { nope } }",
        "{ me { id(x: 1) } }",
        "{ me { songs(first: 1) { nodes { id } } songs(first: 2) { totalCount } } }",
        // An unused variable, an unused fragment.
        "query($x: Int) { me { id } }",
        "{ me { id } } fragment F on Me { name }",
        // A directive it does not know.
        "{ me { id @deprecated } }",
        // A fragment on the wrong type.
        "{ me { ... on Song { id } } }",
        // Two `me`.
        "{ a: me { id } b: me { name } }",
        // A list selected twice: each selection has its own page and columns,
        // which one statement's page cannot give (the case first).
        "{ me { a: songs(first: 1) { nodes { id name } } b: songs(first: 3) { nodes { id artist } } } }",
        "{ me { songs { nodes { id } } c: songs { totalCount } } }",
        "{ me { a: playlists(first: 1) { nodes { id } } b: playlists(first: 3) { nodes { name plays featured } } } }",
        "{ me { playlists { nodes { a: songs(first: 1) { nodes { id } } b: songs(first: 2) { nodes { genre } } } } } }",
        "{ me { playlists(first: 2) { nodes { songs(first: 1) { nodes { id } } } edges { node { songs(first: 3) { nodes { artist } } } } } } }",
        "{ a: me { songs(first: 1) { nodes { id } } } b: me { songs(first: 2) { nodes { createdAt } } } }",
        // A mutation.
        "mutation { updateMe(input: {favGenre: \"pop\"}) { favGenre } }",
    ] {
        cases.push(case(query, json!({}), false));
    }
    // Variables of the wrong type or missing.
    let typed = "query($n: Int, $s: Boolean!) { me { id @skip(if: $s) songs(first: $n) { nodes { id } } } }";
    cases.push(case(typed, json!({"n": "x", "s": false}), false));
    cases.push(case(typed, json!({"n": 1.5, "s": false}), false));
    cases.push(case(typed, json!({"n": 1}), false));
    cases.push(case(typed, json!({"n": 1, "s": null}), false));
    cases.push(case(
        "query($n: String) { me { songs(first: $n) { nodes { id } } } }",
        json!({"n": "1"}),
        false,
    ));
    cases
}

async fn compiled_me_queries_answer_the_bytes_async_graphql_answers(backend: Backend) {
    let (fast, slow) = pair(backend).await;
    library(&fast).await;
    let token = fast.token(OWNER);
    // The cursors of the second song, and of the first song of a playlist.
    let data = fast
        .ok(
            OWNER,
            "{ me { songs(first: 2) { edges { cursor } } playlists(first: 1) { nodes { songs(first: 1) { edges { cursor } } } } } }",
            json!({}),
        )
        .await;
    let cursor = data["me"]["songs"]["edges"][1]["cursor"].as_str().unwrap();
    let position = data["me"]["playlists"]["nodes"][0]["songs"]["edges"][0]["cursor"]
        .as_str()
        .unwrap();

    for case in corpus(cursor, position) {
        let before = compiled(&fast).await;
        let statements = fast.statements();
        let (fast_status, fast_body) = raw(
            &fast,
            Some(&token),
            &case.query,
            &case.variables,
            case.operation_name,
        )
        .await;
        let spent = fast.statements() - statements;
        let answered = compiled(&fast).await - before;
        let (slow_status, slow_body) = raw(
            &slow,
            Some(&token),
            &case.query,
            &case.variables,
            case.operation_name,
        )
        .await;
        assert_eq!(
            (fast_status, &fast_body),
            (slow_status, &slow_body),
            "compiled and async-graphql differ for {} with {}",
            case.query,
            case.variables
        );
        assert_eq!(
            answered,
            u64::from(case.compiled),
            "compiled plan {} {} with {}: {fast_body}",
            if case.compiled {
                "not used for"
            } else {
                "used for"
            },
            case.query,
            case.variables
        );
        if case.compiled && case.reads {
            assert_eq!(spent, 1, "{} cost {spent} statements", case.query);
        }
    }

    // A user with nothing, and users seen for the first time (a different
    // one on each gateway, so no id is asked).
    let empty = "{ me { displayName roles favGenre preferences plan canEditFeaturedPlaylists songs(first: 5) { totalCount pageInfo { hasNextPage startCursor endCursor } nodes { id } } playlists { totalCount nodes { id songs { nodes { id } } } } } }";
    for (fast_user, slow_user) in [(EMPTY, EMPTY), ("auth0|first-fast", "auth0|first-slow")] {
        let before = compiled(&fast).await;
        let (_, fast_body) =
            raw(&fast, Some(&fast.token(fast_user)), empty, &json!({}), None).await;
        assert_eq!(compiled(&fast).await - before, 1, "{fast_body}");
        let (_, slow_body) =
            raw(&slow, Some(&slow.token(slow_user)), empty, &json!({}), None).await;
        assert_eq!(fast_body, slow_body);
        assert!(fast_body.contains("\"totalCount\":0"), "{fast_body}");
    }

    // No token: async-graphql says UNAUTHENTICATED, on both.
    let before = compiled(&fast).await;
    let (_, fast_body) = raw(&fast, None, "{ me { id } }", &json!({}), None).await;
    let (_, slow_body) = raw(&slow, None, "{ me { id } }", &json!({}), None).await;
    assert_eq!(fast_body, slow_body);
    assert!(fast_body.contains("UNAUTHENTICATED"), "{fast_body}");
    assert_eq!(compiled(&fast).await, before);
    assert_eq!(
        compiled(&slow).await,
        0,
        "COMPILED_QUERIES=false compiles nothing"
    );
}

/// With the response cache on, a compiled answer is kept, served and
/// tagged as any other.
async fn compiled_answers_are_cached_and_tagged_like_any_other(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_song(OWNER, NAMES[2]).await;
    let token = app.token(OWNER);
    let query = "{ me { songs { nodes { id name } } } }";
    let send = |etag: Option<String>| {
        let mut request = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(&token)
            .json(&json!({"query": query}));
        if let Some(etag) = etag {
            request = request.header("if-none-match", etag);
        }
        request.send()
    };
    let before = compiled(&app).await;
    let first = send(None).await.unwrap();
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(first.headers()["cache-control"], "private, no-cache");
    let body = first.text().await.unwrap();
    assert_eq!(
        compiled(&app).await - before,
        1,
        "the miss ran the compiled plan"
    );

    let statements = app.statements();
    let hit = send(None).await.unwrap();
    assert_eq!(hit.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(hit.text().await.unwrap(), body);
    assert_eq!(
        app.statements() - statements,
        1,
        "a hit reads the versions only"
    );
    assert_eq!(compiled(&app).await - before, 1, "a hit runs no plan");

    let not_modified = send(Some(etag)).await.unwrap();
    assert_eq!(not_modified.status(), 304);
}

/// A token issued before its account was deleted: the profile policy
/// refuses it after the plan's one statement, and the plan hands the
/// refusal over, so the answer is async-graphql's error and the database is
/// asked no more than without plans.
async fn a_failure_reading_me_is_met_once_and_answered_as_async_graphql_answers_it(
    backend: Backend,
) {
    let query = "{ me { id displayName songs(first: 5) { totalCount nodes { id } } } }";
    let mut seen = Vec::new();
    for compiled_queries in [true, false] {
        let app = TestApp::spawn_with(backend, |c| {
            c.response_cache_max_bytes = 0;
            c.compiled_queries = compiled_queries;
        })
        .await;
        app.add_song("auth0|leaving", "Last song").await;
        let old = app.token("auth0|leaving");
        app.ok("auth0|leaving", "mutation { deleteMe }", json!({}))
            .await;
        let answered = compiled(&app).await;
        let statements = app.statements();
        let (status, body) = raw(&app, Some(&old), query, &json!({}), None).await;
        let statements = app.statements() - statements;
        assert_eq!(compiled(&app).await, answered, "no plan answered");
        seen.push((status, body, statements));
    }
    let (status, body, _) = &seen[0];
    assert_eq!(*status, 200);
    let json: Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(
        json["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{body}"
    );
    assert_eq!(json["errors"][0]["path"], json!(["me"]), "{body}");
    assert_eq!(seen[0], seen[1], "compiled plans on, then off");
}

for_both_backends!(
    compiled_me_queries_answer_the_bytes_async_graphql_answers,
    a_failure_reading_me_is_met_once_and_answered_as_async_graphql_answers_it,
    compiled_answers_are_cached_and_tagged_like_any_other,
);
