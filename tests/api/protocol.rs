//! GraphQL over HTTP as mobile and web clients speak it: automatic persisted
//! queries, trusted documents, GET, CSRF prevention, cost limits, and the
//! seed's plain-text route.

use music_gateway::{
    config::TrustedSettings,
    graphql::{QueryLimits, sha256_hex},
};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, error_code},
    on_both_databases,
};

const U: &str = "auth0|protocol";

/// The full `me`, every list at the largest page size (as in statements.rs).
const FULL_ME: &str = "me { displayName roles favGenre
    songs(first: 100) { totalCount nodes { name } }
    playlists(first: 100) { totalCount nodes { name plays songs(first: 100) { totalCount nodes { name } } } } }";

/// Every field of `me` at the largest page sizes, as issue 16 wrote it.
const EVERY_FIELD_OF_ME: &str = "me { id email name picture displayName preferences roles plan canEditFeaturedPlaylists favGenre syncedAt totalPlays songs(first: 100) { totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } nodes { id name artist genre createdAt } } playlists(first: 100) { totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } nodes { id name plays featured createdAt songs(first: 100) { totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } nodes { id name artist genre createdAt } } } } }";

/// A POST with a JSON body, as every GraphQL client sends it.
fn post(app: &TestApp, token: Option<&str>, body: Value) -> RequestBuilder {
    let request = app.client.post(app.url("/graphql")).json(&body);
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

/// A GET with `params` in the query string, carrying the header Apollo's
/// mobile clients send.
fn get(app: &TestApp, token: &str, params: &[(&str, &str)]) -> RequestBuilder {
    app.client
        .get(app.url("/graphql"))
        .query(params)
        .bearer_auth(token)
        .header("x-apollo-operation-name", "Test")
}

/// The status and JSON body of a response.
async fn answer(request: RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, body)
}

fn apq(hash: &str) -> Value {
    json!({"persistedQuery": {"version": 1, "sha256Hash": hash}})
}

async fn apq_hash_alone_is_not_found_until_the_text_is_sent_with_it(app: TestApp) {
    let token = app.token(U);
    let query = "query Me { me { id displayName } }";
    let hash = sha256_hex(query);

    let before = app.statements();
    let response = post(&app, Some(&token), json!({"extensions": apq(&hash)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["cache-control"],
        "private, no-cache, must-revalidate"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound");
    assert_eq!(error_code(&body), "PERSISTED_QUERY_NOT_FOUND");
    assert_eq!(app.statements(), before, "a miss runs nothing");

    // Apollo's retry: the hash with the text.
    let (status, body) = answer(post(
        &app,
        Some(&token),
        json!({"query": query, "extensions": apq(&hash)}),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["me"]["displayName"], "user", "{body}");

    // From now on the hash alone is enough, over POST and over GET.
    let (_, body) = answer(post(&app, Some(&token), json!({"extensions": apq(&hash)}))).await;
    assert_eq!(body["data"]["me"]["id"], U, "{body}");
    let extensions = apq(&hash).to_string();
    let (status, body) = answer(get(
        &app,
        &token,
        &[("operationName", "Me"), ("extensions", &extensions)],
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["me"]["id"], U, "{body}");
}

async fn apq_hash_that_does_not_match_its_text_is_refused(app: TestApp) {
    let token = app.token(U);
    let hash = sha256_hex("{ me { id } }");
    let (status, body) = answer(post(
        &app,
        Some(&token),
        json!({"query": "{ me { email } }", "extensions": apq(&hash)}),
    ))
    .await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("does not match"),
        "{body}"
    );
    // The wrong text was not kept under the hash.
    let (_, body) = answer(post(&app, Some(&token), json!({"extensions": apq(&hash)}))).await;
    assert_eq!(error_code(&body), "PERSISTED_QUERY_NOT_FOUND");
    // With APQ off, clients are told to stop sending hashes, and the text
    // sent with a hash still runs.
    let off = TestApp::spawn_with(app.backend, |c| c.apq_cache_bytes = None).await;
    let off_token = off.token(U);
    let (status, body) = answer(post(
        &off,
        Some(&off_token),
        json!({"extensions": apq(&hash)}),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotSupported");
    assert_eq!(error_code(&body), "PERSISTED_QUERY_NOT_SUPPORTED");
    let (_, body) = answer(post(
        &off,
        Some(&off_token),
        json!({"query": "{ me { id } }", "extensions": apq(&hash)}),
    ))
    .await;
    assert_eq!(body["data"]["me"]["id"], U, "{body}");
    // A version other than 1 is not Apollo's protocol.
    let (status, body) = answer(post(
        &app,
        Some(&token),
        json!({"extensions": {"persistedQuery": {"version": 2, "sha256Hash": hash}}}),
    ))
    .await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
}

async fn get_runs_queries_and_picks_the_operation_by_operation_name(app: TestApp) {
    let token = app.token(U);
    app.add_song(U, "Blue in Green").await;
    // The query the issue names, answered as a query rather than GraphiQL.
    let response = get(&app, &token, &[("query", "{me{id}}")])
        .header("accept", "text/html, application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("json")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["me"]["id"], U);

    let document = "query Names($n: Int) { me { songs(first: $n) { nodes { name } } } }
                    query Count { me { songs { totalCount } } }";
    let (status, body) = answer(get(
        &app,
        &token,
        &[
            ("query", document),
            ("operationName", "Names"),
            ("variables", r#"{"n": 1}"#),
        ],
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"]["me"]["songs"]["nodes"],
        json!([{"name": "Blue in Green"}]),
        "{body}"
    );
    let (_, body) = answer(get(
        &app,
        &token,
        &[("query", document), ("operationName", "Count")],
    ))
    .await;
    assert_eq!(body["data"]["me"]["songs"]["totalCount"], 1, "{body}");

    let (status, body) = answer(get(
        &app,
        &token,
        &[("query", "{ me { id } }"), ("variables", "{not json")],
    ))
    .await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    // No query and no HTML: a client's mistake, not a page to render.
    let (status, body) = answer(get(&app, &token, &[])).await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
}

async fn a_mutation_over_get_is_refused_with_405(app: TestApp) {
    let token = app.token(U);
    app.ok(U, "{ me { id } }", json!({})).await;
    let before = app.statements();
    let response = get(
        &app,
        &token,
        &[(
            "query",
            r#"mutation { addSong(input: {name: "x", artist: "y", genre: "z"}) { id } }"#,
        )],
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "BAD_REQUEST");
    assert_eq!(app.statements(), before, "nothing ran");
    let data = app
        .ok(U, "{ me { songs { totalCount } } }", json!({}))
        .await;
    assert_eq!(data["me"]["songs"]["totalCount"], 0);
}

async fn requests_a_browser_sends_without_preflight_are_refused(app: TestApp) {
    let token = app.token(U);
    app.ok(U, "{ me { id } }", json!({})).await;
    let mutation =
        json!({"query": r#"mutation { addSong(input: {name: "x", artist: "y", genre: "z"}) { id } }"#})
            .to_string();
    let before = app.statements();
    for content_type in [
        None,
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
    ] {
        let mut request = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(&token)
            .body(mutation.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let (status, body) = answer(request).await;
        assert_eq!(status, 400, "{content_type:?}: {body}");
        assert_eq!(error_code(&body), "BAD_REQUEST");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("Cross-Site Request Forgery"),
            "{body}"
        );
    }
    // A GET without the header; an empty header does not count.
    let plain_get = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", "{ me { id } }")])
        .bearer_auth(&token);
    assert_eq!(answer(plain_get).await.0, 400);
    let empty = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", "{ me { id } }")])
        .bearer_auth(&token)
        .header("apollo-require-preflight", "");
    assert_eq!(answer(empty).await.0, 400);
    assert_eq!(app.statements(), before, "no refused request ran");

    // With a preflight header the same text/plain request runs.
    let (status, body) = answer(
        app.client
            .post(app.url("/graphql"))
            .bearer_auth(&token)
            .header("content-type", "text/plain")
            .header("apollo-require-preflight", "true")
            .body(mutation.clone()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["addSong"]["id"].is_string(), "{body}");
    // A GET that declares JSON, as Apollo Client on the web sends it.
    let (status, body) = answer(
        app.client
            .get(app.url("/graphql"))
            .query(&[("query", "{ me { id } }")])
            .bearer_auth(&token)
            .header("content-type", "application/json"),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // A page on an allowed origin may send the headers cross-origin.
    let cors = TestApp::spawn_with(app.backend, |c| {
        c.cors = music_gateway::config::CorsOrigins::List(vec!["https://app.example".into()]);
    })
    .await;
    let preflight = cors
        .client
        .request(Method::OPTIONS, cors.url("/graphql"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "apollo-require-preflight")
        .send()
        .await
        .unwrap();
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allowed.contains("apollo-require-preflight"), "{allowed}");
    assert!(allowed.contains("x-apollo-operation-name"), "{allowed}");

    // The list is configurable, and the check can be turned off.
    let custom = TestApp::spawn_with(app.backend, |c| {
        c.csrf = Some(music_gateway::http::CsrfPrevention::new(vec![
            axum::http::HeaderName::from_static("x-requested-with"),
        ]));
    })
    .await;
    let token = custom.token(U);
    let request = |header: &str| {
        custom
            .client
            .get(custom.url("/graphql"))
            .query(&[("query", "{ me { id } }")])
            .bearer_auth(&token)
            .header(header, "1")
    };
    assert_eq!(answer(request("apollo-require-preflight")).await.0, 400);
    assert_eq!(answer(request("x-requested-with")).await.0, 200);
    let off = TestApp::spawn_with(app.backend, |c| c.csrf = None).await;
    let (status, _) = answer(
        off.client
            .post(off.url("/graphql"))
            .bearer_auth(off.token(U))
            .header("content-type", "text/plain")
            .body(json!({"query": "{ me { id } }"}).to_string()),
    )
    .await;
    assert_eq!(status, 200);
}

async fn a_browser_opening_graphql_still_gets_graphiql(app: TestApp) {
    let page = app
        .client
        .get(app.url("/graphql"))
        .header(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

/// What Apollo's clients send as `Accept`, from their sources: Apollo iOS
/// (`Sources/Apollo/JSONRequest.swift`), Apollo Kotlin
/// (`HttpNetworkTransport.kt`, `IncrementalDeliveryProtocolImpl.kt`) and
/// Apollo Client (`selectHttpOptionsAndBody.ts`).
const APOLLO_ACCEPTS: [(&str, &str); 3] = [
    (
        "Apollo iOS",
        "multipart/mixed;deferSpec=20220824,application/graphql-response+json,application/json",
    ),
    (
        "Apollo Kotlin",
        "multipart/mixed;deferSpec=20220824, application/graphql-response+json, application/json",
    ),
    (
        "Apollo Client",
        "application/graphql-response+json,application/json;q=0.9",
    ),
];

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json; charset=utf-8";
const JSON: &str = "application/json; charset=utf-8";

/// Status, `Content-Type` and JSON body of a POST of `body` with `accept`.
async fn post_accepting(
    app: &TestApp,
    token: Option<&str>,
    accept: &str,
    body: Value,
) -> (u16, String, Value) {
    let response = post(app, token, body)
        .header("accept", accept)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let vary = response
        .headers()
        .get_all("vary")
        .iter()
        .any(|v| v == "accept");
    assert!(vary, "every answer varies with Accept");
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, content_type, body)
}

async fn answers_follow_accept(app: TestApp) {
    let token = app.token(U);
    let mut cases: Vec<(&str, &str)> = vec![
        ("*/*", JSON),
        ("application/json", JSON),
        ("text/html, application/json", JSON),
        ("application/graphql-response+json", GRAPHQL_RESPONSE_JSON),
    ];
    cases.extend(APOLLO_ACCEPTS.map(|(_, accept)| (accept, GRAPHQL_RESPONSE_JSON)));
    for (accept, content_type) in cases {
        let graphql = content_type == GRAPHQL_RESPONSE_JSON;
        // Executed: 200 in both, errors of fields included.
        for query in ["{ __typename }", "{ me { id } }"] {
            let (status, ty, body) =
                post_accepting(&app, Some(&token), accept, json!({"query": query})).await;
            assert_eq!(
                (status, ty.as_str()),
                (200, content_type),
                "{accept}: {body}"
            );
            assert!(body["data"].is_object(), "{accept}: {body}");
        }
        let (status, _, body) =
            post_accepting(&app, None, accept, json!({"query": "{ me { id } }"})).await;
        assert_eq!(status, 200, "{accept}: a field's error is no request error");
        assert_eq!(error_code(&body), "UNAUTHENTICATED");

        // Request errors: no data, 400 only under graphql-response+json.
        for (request, code) in [
            (json!({"query": "{"}), "GRAPHQL_PARSE_FAILED"),
            (json!({"query": "{ nope }"}), "GRAPHQL_VALIDATION_FAILED"),
            (
                json!({"query": "{ me { songs(first: $n) { totalCount } } }"}),
                "GRAPHQL_VALIDATION_FAILED",
            ),
            (
                json!({"query": "query A { __typename } query B { __typename }"}),
                "OPERATION_RESOLUTION_FAILURE",
            ),
            (
                json!({"query": "{ __typename }", "operationName": "Nope"}),
                "OPERATION_RESOLUTION_FAILURE",
            ),
            (
                json!({"query": "query S($id: ID!) { song(id: $id) { name } }"}),
                "BAD_USER_INPUT",
            ),
            (
                json!({"query": "query S($id: ID!) { song(id: $id) { name } }", "variables": {"id": null}}),
                "BAD_USER_INPUT",
            ),
            (
                json!({"query": "query S($n: Int) { me { songs(first: $n) { totalCount } } }", "variables": {"n": "ten"}}),
                "GRAPHQL_VALIDATION_FAILED",
            ),
        ] {
            let (status, ty, body) =
                post_accepting(&app, Some(&token), accept, request.clone()).await;
            let expected = if graphql { 400 } else { 200 };
            assert_eq!(
                (status, ty.as_str()),
                (expected, content_type),
                "{accept} {request}: {body}"
            );
            assert_eq!(error_code(&body), code, "{accept} {request}: {body}");
            assert!(body.get("data").is_none(), "{accept} {request}: {body}");
        }
        // Requests that are not GraphQL requests are 4xx in both.
        let (status, ty, body) =
            post_accepting(&app, Some(&token), accept, json!({"query": 1})).await;
        assert_eq!((status, ty.as_str()), (400, content_type), "{body}");
        assert_eq!(error_code(&body), "BAD_USER_INPUT");
    }

    // Neither type acceptable: 406, in JSON.
    let (status, ty, body) = post_accepting(
        &app,
        Some(&token),
        "text/html",
        json!({"query": "{ __typename }"}),
    )
    .await;
    assert_eq!((status, ty.as_str()), (406, JSON));
    assert_eq!(error_code(&body), "BAD_REQUEST");
    let response = get(&app, &token, &[("query", "{ __typename }")])
        .header("accept", "image/png")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 406);
}

/// No `Accept` at all (reqwest always sends one): a legacy client.
async fn a_request_without_accept_gets_application_json(app: TestApp) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = r#"{"query":"{"}"#;
    let request = format!(
        "POST /graphql HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let head = raw.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{raw}");
    assert!(head.contains(&format!("content-type: {JSON}")), "{raw}");
    assert!(raw.contains("GRAPHQL_PARSE_FAILED"), "{raw}");
}

/// APQ's round trip in each of Apollo's clients: the miss is HTTP 200 even
/// under graphql-response+json (Apollo iOS's `ResponseCodeInterceptor`
/// fails any other status before its APQ interceptor sees the error).
async fn apq_round_trips_in_each_apollo_client(app: TestApp) {
    let token = app.token(U);
    for (client, accept) in APOLLO_ACCEPTS {
        let query = format!("query Me {{ me {{ id }} __typename # {client}\n}}");
        let hash = sha256_hex(&query);
        let (status, ty, body) = post_accepting(
            &app,
            Some(&token),
            accept,
            json!({"extensions": apq(&hash)}),
        )
        .await;
        assert_eq!(
            (status, ty.as_str()),
            (200, GRAPHQL_RESPONSE_JSON),
            "{client}: {body}"
        );
        assert_eq!(
            body["errors"][0]["message"], "PersistedQueryNotFound",
            "{client}"
        );
        assert_eq!(error_code(&body), "PERSISTED_QUERY_NOT_FOUND");
        let (status, _, body) = post_accepting(
            &app,
            Some(&token),
            accept,
            json!({"query": query, "extensions": apq(&hash)}),
        )
        .await;
        assert_eq!(status, 200, "{client}: {body}");
        assert_eq!(body["data"]["me"]["id"], U, "{client}: {body}");
        // Apollo Kotlin sends hashed queries over GET by default.
        let extensions = apq(&hash).to_string();
        let response = get(
            &app,
            &token,
            &[("operationName", "Me"), ("extensions", &extensions)],
        )
        .header("accept", accept)
        .send()
        .await
        .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{client}");
        assert_eq!(response.headers()["content-type"], GRAPHQL_RESPONSE_JSON);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["data"]["me"]["id"], U, "{client}: {body}");
    }
}

/// `n` aliases of the full `me`.
fn aliases_of(n: usize, me: &str) -> String {
    let fields: Vec<String> = (0..n).map(|i| format!("m{i}: {me}")).collect();
    format!("{{ {} }}", fields.join(" "))
}

async fn costly_queries_are_refused_before_any_sql(app: TestApp) {
    let token = app.token(U);
    // The full me at the largest page sizes runs, with the featured
    // playlists at the largest page sizes beside it.
    let data = app.ok(U, &format!("{{ {FULL_ME} }}"), json!({})).await;
    assert_eq!(data["me"]["songs"]["totalCount"], 0);
    // Every field of me, at the largest page sizes, over songs and a
    // playlist of them.
    let mut songs = Vec::new();
    for i in 0..3 {
        let added = app
            .ok(
                U,
                "mutation($n: String!) { addSong(input: { name: $n, artist: \"A\", genre: \"rock\" }) { id } }",
                json!({"n": format!("song {i}")}),
            )
            .await;
        songs.push(added["addSong"]["id"].clone());
    }
    app.ok(
        U,
        "mutation($s: [ID!]) { createPlaylist(input: { name: \"all\", songIds: $s }) { id } }",
        json!({"s": songs}),
    )
    .await;
    let full = app
        .ok(
            U,
            &format!("query FullMe {{ {EVERY_FIELD_OF_ME} }}"),
            json!({}),
        )
        .await;
    assert_eq!(full["me"]["songs"]["totalCount"], 3, "{full}");
    assert_eq!(full["me"]["songs"]["nodes"].as_array().unwrap().len(), 3);
    let playlist = &full["me"]["playlists"]["nodes"][0];
    assert_eq!(
        playlist["songs"]["nodes"].as_array().unwrap().len(),
        3,
        "{full}"
    );
    app.ok(
        U,
        &format!(
            "{{ {FULL_ME} featuredPlaylists(first: 100) {{ totalCount
                nodes {{ name plays songs(first: 100) {{ totalCount nodes {{ name }} }} }} }} }}"
        ),
        json!({}),
    )
    .await;

    let before = app.statements();
    // The issue's request: 200 aliases of the full me.
    let query = aliases_of(200, FULL_ME);
    assert!(query.len() < 64 * 1024);
    let (status, body) = answer(post(&app, Some(&token), json!({"query": query}))).await;
    assert_eq!(status, 200);
    assert_eq!(error_code(&body), "QUERY_TOO_MANY_ALIASES", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["value"], 200);
    assert!(body.get("data").is_none(), "{body}");
    // A request error: 400 where the client reads graphql-response+json.
    let (status, _, body) = post_accepting(
        &app,
        Some(&token),
        "application/graphql-response+json",
        json!({"query": query}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), "QUERY_TOO_MANY_ALIASES", "{body}");

    // Four aliases are within the alias limit but cost four full mes; so do
    // two already.
    for n in [4, 2] {
        let (_, body) = answer(post(
            &app,
            Some(&token),
            json!({"query": aliases_of(n, EVERY_FIELD_OF_ME)}),
        ))
        .await;
        assert_eq!(error_code(&body), "QUERY_TOO_COSTLY", "{body}");
        assert_eq!(body["errors"][0]["extensions"]["limit"], 100_000, "{body}");
        assert_eq!(
            body["errors"][0]["extensions"]["value"],
            n * 51_829,
            "{body}"
        );
    }

    // Page sizes from variables count too: four of these at 100 songs of
    // 100 playlists cost 120,812.
    let by_variables = format!(
        "query($n: Int) {{ {} }}",
        (0..4)
            .map(|i| format!(
                "m{i}: me {{ playlists(first: $n) {{ nodes {{ songs(first: $n) {{ nodes {{ name artist genre }} }} }} }} }}"
            ))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let (_, body) = answer(post(
        &app,
        Some(&token),
        json!({"query": by_variables, "variables": {"n": 100}}),
    ))
    .await;
    assert_eq!(error_code(&body), "QUERY_TOO_COSTLY", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["value"], 120_812, "{body}");

    // Many root fields, no alias at all.
    let roots = vec!["me { id }"; 21].join(" ");
    let (_, body) = answer(post(
        &app,
        Some(&token),
        json!({"query": format!("{{ {roots} }}")}),
    ))
    .await;
    assert_eq!(error_code(&body), "QUERY_TOO_MANY_ROOT_FIELDS", "{body}");
    assert_eq!(app.statements(), before, "no refused query ran SQL");
    // The same at pages of 50 costs a quarter of that, and runs.
    app.ok(U, &by_variables, json!({"n": 50})).await;

    // Each limit is a setting.
    let strict = TestApp::spawn_with(app.backend, |c| {
        c.query_limits = QueryLimits {
            max_aliases: 1,
            max_root_fields: 2,
            max_cost: 50,
        };
    })
    .await;
    let body = strict
        .gql(
            U,
            "{ me { songs(first: 48) { nodes { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "QUERY_TOO_COSTLY");
    let body = strict
        .gql(U, "{ a: me { id } b: me { id } }", json!({}))
        .await;
    assert_eq!(error_code(&body), "QUERY_TOO_MANY_ALIASES");
    strict
        .ok(
            U,
            "{ me { songs(first: 47) { nodes { name } } } }",
            json!({}),
        )
        .await;
}

async fn introspection_can_be_turned_off(app: TestApp) {
    let closed = TestApp::spawn_with(app.backend, |c| c.introspection = false).await;
    let body = closed
        .gql(U, "{ __schema { types { name } } }", json!({}))
        .await;
    assert!(body["errors"].is_array(), "{body}");
    assert!(
        body["data"].is_null() || body["data"]["__schema"].is_null(),
        "{body}"
    );
    closed.ok(U, "{ me { id } }", json!({})).await;
    let (status, _, body) = post_accepting(
        &closed,
        Some(&closed.token(U)),
        "application/graphql-response+json",
        json!({"query": "{ __schema { types { name } } }"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), "INTROSPECTION_DISABLED");
    // On by default.
    app.ok(U, "{ __schema { queryType { name } } }", json!({}))
        .await;
}

/// A gateway enforcing `manifest` (written to a file, as TRUSTED_DOCUMENTS
/// names it), with the admin and id-only switches given.
async fn trusted_app(
    app: &TestApp,
    manifest: &Value,
    allow_admin: bool,
    require_id: bool,
) -> TestApp {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("persisted-documents.json");
    std::fs::write(&path, manifest.to_string()).unwrap();
    let settings = TrustedSettings {
        path,
        allow_admin,
        require_id,
    };
    // The app reads the manifest as it starts, before `dir` goes.
    TestApp::spawn_with(app.backend, |c| c.trusted_documents = Some(settings)).await
}

const LISTED: &str = "query Me { me { id displayName } }";
const ADD: &str = "mutation Add($i: AddSongInput!) { addSong(input: $i) { id name } }";

async fn only_trusted_documents_run_when_a_manifest_is_set(app: TestApp) {
    let manifest = json!({
        format!("sha256:{}", sha256_hex(LISTED)): LISTED,
        format!("sha256:{}", sha256_hex(ADD)): ADD,
    });
    let gateway = trusted_app(&app, &manifest, false, false).await;
    let token = gateway.token(U);
    let send = |body: Value| post(&gateway, Some(&token), body);

    // By documentId (the GraphQL-over-HTTP draft), by APQ hash, as text.
    let id = format!("sha256:{}", sha256_hex(LISTED));
    let (status, body) = answer(send(json!({"documentId": id}))).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["me"]["id"], U, "{body}");
    let (_, body) = answer(send(json!({"extensions": apq(&sha256_hex(LISTED))}))).await;
    assert_eq!(body["data"]["me"]["id"], U, "{body}");
    let (_, body) = answer(send(json!({"query": LISTED}))).await;
    assert_eq!(body["data"]["me"]["id"], U, "{body}");
    let (_, body) = answer(send(json!({
        "documentId": format!("sha256:{}", sha256_hex(ADD)),
        "variables": {"i": {"name": "So What", "artist": "Miles Davis", "genre": "jazz"}}
    })))
    .await;
    assert_eq!(body["data"]["addSong"]["name"], "So What", "{body}");
    let (status, body) = answer(get(&gateway, &token, &[("documentId", &id)])).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["me"]["id"], U, "{body}");
    // Introspection stays open for code generators (INTROSPECTION decides).
    let (_, body) = answer(send(
        json!({"query": "{ __schema { queryType { name } } }"}),
    ))
    .await;
    assert_eq!(
        body["data"]["__schema"]["queryType"]["name"], "Query",
        "{body}"
    );

    // Anything else is refused before it runs.
    let before = gateway.statements();
    let response = send(json!({"query": "query Me { me { id displayName email } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    assert_eq!(
        response.headers()["cache-control"],
        "private, no-cache, must-revalidate"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "QUERY_NOT_IN_SAFELIST");
    let (status, body) = answer(send(json!({"query": "{ me { id"}))).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (403, "QUERY_NOT_IN_SAFELIST")
    );
    let unknown = format!("sha256:{}", sha256_hex("{ me { email } }"));
    let (status, body) = answer(send(json!({"documentId": unknown}))).await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "PERSISTED_QUERY_NOT_IN_LIST");
    let (status, body) = answer(send(
        json!({"extensions": apq(&sha256_hex("{ me { email } }"))}),
    ))
    .await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "PERSISTED_QUERY_NOT_IN_LIST");
    let (status, body) = answer(send(json!({"documentId": id, "query": "{ me { email } }"}))).await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(gateway.statements(), before, "no refused document ran");

    // An admin is held to the list too, unless TRUSTED_DOCUMENTS_ALLOW_ADMIN.
    let admin = gateway.token_with(
        "auth0|admin",
        json!({"permissions": ["write:app_metadata"]}),
    );
    let (status, _) = answer(post(
        &gateway,
        Some(&admin),
        json!({"query": "{ me { email } }"}),
    ))
    .await;
    assert_eq!(status, 403);
    let open_to_admins = trusted_app(&app, &manifest, true, false).await;
    let admin = open_to_admins.token_with(
        "auth0|admin",
        json!({"permissions": ["write:app_metadata"]}),
    );
    let (status, body) = answer(post(
        &open_to_admins,
        Some(&admin),
        json!({"query": "{ me { id email } }"}),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["me"]["id"], "auth0|admin", "{body}");
    let user = open_to_admins.token(U);
    let (status, _) = answer(post(
        &open_to_admins,
        Some(&user),
        json!({"query": "{ me { id email } }"}),
    ))
    .await;
    assert_eq!(status, 403);
}

async fn apollo_manifests_and_id_only_mode_are_supported(app: TestApp) {
    let manifest = json!({
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [
            {"id": sha256_hex(LISTED), "name": "Me", "type": "query", "body": LISTED}
        ]
    });
    let gateway = trusted_app(&app, &manifest, false, true).await;
    let token = gateway.token(U);
    // Apollo iOS and Kotlin send the id as the APQ hash.
    let (status, body) = answer(post(
        &gateway,
        Some(&token),
        json!({"operationName": "Me", "extensions": apq(&sha256_hex(LISTED))}),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["me"]["id"], U, "{body}");
    // Id-only: even a listed text is refused.
    let (status, body) = answer(post(&gateway, Some(&token), json!({"query": LISTED}))).await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), "PERSISTED_QUERY_ID_REQUIRED");
}

async fn the_seeds_fav_genre_route_answers_plain_text(app: TestApp) {
    app.ok(
        U,
        "mutation { updateMe(input: {favGenre: \"jazz\"}) { favGenre } }",
        json!({}),
    )
    .await;
    for path in ["/genres/getFav", "/secured/getFavGenre"] {
        let response = app
            .client
            .get(app.url(path))
            .bearer_auth(app.token(U))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        assert_eq!(response.text().await.unwrap(), "jazz", "{path}");
    }
    // Another user has none yet.
    let other = app
        .client
        .get(app.url("/genres/getFav"))
        .bearer_auth(app.token("auth0|other"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 200);
    assert_eq!(other.text().await.unwrap(), "");
    let anonymous = app
        .client
        .get(app.url("/genres/getFav"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let machine = app
        .client
        .request(Method::GET, app.url("/secured/getFavGenre"))
        .bearer_auth(app.token("someclient@clients"))
        .send()
        .await
        .unwrap();
    assert_eq!(machine.status().as_u16(), 403);
}

on_both_databases!(
    apq_hash_alone_is_not_found_until_the_text_is_sent_with_it,
    apq_hash_that_does_not_match_its_text_is_refused,
    get_runs_queries_and_picks_the_operation_by_operation_name,
    a_mutation_over_get_is_refused_with_405,
    requests_a_browser_sends_without_preflight_are_refused,
    a_browser_opening_graphql_still_gets_graphiql,
    costly_queries_are_refused_before_any_sql,
    introspection_can_be_turned_off,
    only_trusted_documents_run_when_a_manifest_is_set,
    apollo_manifests_and_id_only_mode_are_supported,
    the_seeds_fav_genre_route_answers_plain_text,
    answers_follow_accept,
    a_request_without_accept_gets_application_json,
    apq_round_trips_in_each_apollo_client,
);
