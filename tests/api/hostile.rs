//! Documents built to hurt the gateway: fragment bombs, deep nests of every
//! kind, with and without a token. Each is answered with a limit's code, and
//! the gateway keeps answering everyone else.

use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, error_code},
    on_both_databases,
};

const U: &str = "auth0|hostile";

/// The codes of the limits a document can be refused by before it runs.
const LIMIT_CODES: [&str; 5] = [
    "QUERY_FRAGMENTS_TOO_DEEP",
    "QUERY_TOO_MANY_SELECTIONS",
    "QUERY_TOO_COSTLY",
    "QUERY_TOO_MANY_ALIASES",
    "QUERY_TOO_MANY_ROOT_FIELDS",
];

/// `levels` fragments, each spreading the next one twice: 2^levels
/// selections once expanded, from a document of a few hundred bytes a level.
fn bomb(root: &str, on: &str, leaf: &str, levels: usize) -> String {
    let mut query = format!("{root}\n");
    for i in 0..levels {
        query.push_str(&format!(
            "fragment F{i} on {on} {{ ...F{} ...F{} }}\n",
            i + 1,
            i + 1
        ));
    }
    query.push_str(&format!("fragment F{levels} on {on} {{ {leaf} }}\n"));
    query
}

/// Fragment bombs at the root, inside `me`, inside a list, through inline
/// fragments, on the mutation root, and wide rather than deep.
fn bombs() -> Vec<String> {
    let mut all = Vec::new();
    for levels in [40, 64] {
        all.push(bomb("query Q { ...F0 }", "Query", "me { id }", levels));
        all.push(bomb("{ me { ...F0 } }", "User", "id", levels));
        all.push(bomb(
            "{ me { playlists { nodes { songs { nodes { ...F0 } } } } } }",
            "Song",
            "name",
            levels,
        ));
        all.push(bomb(
            "{ ... on Query { me { ... { ...F0 } } } }",
            "User",
            "... on User { id }",
            levels,
        ));
        all.push(bomb(
            "mutation M { ...F0 }",
            "Mutation",
            "recordPlay(playlistId: \"1\") { plays }",
            levels,
        ));
    }
    let mut wide = String::from("{ me { ...W0 } }\n");
    for i in 0..6 {
        let spreads = format!("...W{} ", i + 1).repeat(60);
        wide.push_str(&format!("fragment W{i} on User {{ {spreads} }}\n"));
    }
    wide.push_str("fragment W6 on User { id }\n");
    all.push(wide);
    all
}

fn nested(open: &str, inner: &str, close: &str, depth: usize) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

/// Request bodies nesting 10,000 deep: list and input-object literals,
/// selection sets, and JSON variables and extensions.
fn deep_bodies() -> Vec<Value> {
    const DEPTH: usize = 10_000;
    vec![
        json!({"query": format!("{{ me {{ songs(first: {}) {{ totalCount }} }} }}", nested("[", "1", "]", DEPTH))}),
        json!({"query": format!(
            "mutation {{ updateMe(input: {{ preferences: {} }}) {{ id }} }}",
            nested("{a: ", "1", "}", DEPTH)
        )}),
        json!({"query": format!("{{ {} }}", nested("me {", "id", "}", DEPTH))}),
        json!({"query": format!("{{ {} }}", nested("... {", "__typename", "}", DEPTH))}),
    ]
}

async fn assert_still_answers(app: &TestApp, token: &str) {
    let (status, body) = app.post(Some(token), "{ me { id } }", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["me"]["id"], U, "{body}");
}

async fn fragment_bombs_are_refused_with_a_limit_code(app: TestApp) {
    let token = app.token(U);
    let before = app.statements();
    for query in bombs() {
        for token in [Some(token.as_str()), None] {
            let (status, body) = app.post(token, &query, json!({})).await;
            let code = error_code(&body);
            assert!(
                LIMIT_CODES.contains(&code.as_str()),
                "{status} {body} for {}",
                &query[..80.min(query.len())]
            );
            assert!(body.get("data").is_none_or(Value::is_null), "{body}");
        }
    }
    // Refused before execution, the token's user included: nothing was read.
    assert_eq!(app.statements(), before);
    assert_still_answers(&app, &token).await;
}

async fn a_fragment_cycle_is_refused_as_invalid(app: TestApp) {
    let (status, body) = app
        .post(
            Some(&app.token(U)),
            "{ me { ...A } } fragment A on User { id ...B } fragment B on User { ...A }",
            json!({}),
        )
        .await;
    assert_eq!(
        error_code(&body),
        "GRAPHQL_VALIDATION_FAILED",
        "{status} {body}"
    );
}

async fn nests_ten_thousand_deep_are_refused_before_parsing(app: TestApp) {
    let token = app.token(U);
    let mut bodies = deep_bodies();
    bodies.push(json!({"query": "{ me { id } }", "variables": {"v": serde_json::from_str::<Value>(&nested("[", "1", "]", 100)).unwrap()}}));
    for body in bodies {
        for token in [Some(token.as_str()), None] {
            let mut request = app.client.post(app.url("/graphql")).json(&body);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request
                .send()
                .await
                .expect("an answer, not a dropped connection");
            let status = response.status().as_u16();
            let answer: Value = response.json().await.expect("a JSON answer");
            assert_eq!(
                error_code(&answer),
                "QUERY_NESTED_TOO_DEEPLY",
                "{status} {answer}"
            );
        }
    }
    // JSON nested deeper than serde's own recursion limit, raw, and in GET's parameters.
    let deep_json = format!(
        "{{\"query\": \"{{ me {{ id }} }}\", \"variables\": {{\"v\": {}}}}}",
        nested("[", "1", "]", 10_000)
    );
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(deep_json)
        .send()
        .await
        .unwrap();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(error_code(&answer), "QUERY_NESTED_TOO_DEEPLY", "{answer}");
    let deep_variables = format!("{{\"v\": {}}}", nested("{\"a\": ", "1", "}", 300));
    for (name, value) in [
        ("variables", deep_variables.as_str()),
        ("extensions", deep_variables.as_str()),
    ] {
        let response = app
            .client
            .get(app.url("/graphql"))
            .query(&[("query", "{ me { id } }"), (name, value)])
            .bearer_auth(&token)
            .header("x-apollo-operation-name", "Deep")
            .send()
            .await
            .unwrap();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            error_code(&answer),
            "QUERY_NESTED_TOO_DEEPLY",
            "{name}: {answer}"
        );
    }
    assert_still_answers(&app, &token).await;
}

async fn skip_and_include_refuse_arguments_that_are_not_booleans(app: TestApp) {
    let token = app.token(U);
    for query in [
        "{ __typename @skip(if: \"x\") }",
        "{ __typename @include(if: 3) }",
        "query($b: String) { me { id @include(if: $b) } }",
    ] {
        let (status, body) = app.post(Some(&token), query, json!({"b": "yes"})).await;
        assert_eq!(
            error_code(&body),
            "GRAPHQL_VALIDATION_FAILED",
            "{query}: {status} {body}"
        );
    }
    let body = app
        .ok(
            U,
            "{ a: __typename @skip(if: true) b: __typename @include(if: true) }",
            json!({}),
        )
        .await;
    assert_eq!(body, json!({"b": "Query"}));
}

async fn hostile_clients_do_not_hold_up_an_ordinary_one(app: TestApp) {
    let token = app.token(U);
    let mut corpus: Vec<Value> = bombs().into_iter().map(|q| json!({"query": q})).collect();
    corpus.extend(deep_bodies());
    let attackers: Vec<_> = (0..6)
        .map(|i| {
            let client = app.client.clone();
            let url = app.url("/graphql");
            let corpus = corpus.clone();
            tokio::spawn(async move {
                for round in 0..5 {
                    for body in &corpus {
                        let response = client.post(&url).json(body).send().await.unwrap();
                        assert!(
                            response.status().as_u16() < 500,
                            "attacker {i} round {round}: {}",
                            response.status()
                        );
                    }
                }
            })
        })
        .collect();
    for _ in 0..40 {
        assert_still_answers(&app, &token).await;
    }
    for attacker in attackers {
        attacker.await.expect("every hostile request was answered");
    }
    assert_still_answers(&app, &token).await;
}

on_both_databases!(
    fragment_bombs_are_refused_with_a_limit_code,
    a_fragment_cycle_is_refused_as_invalid,
    nests_ten_thousand_deep_are_refused_before_parsing,
    skip_and_include_refuse_arguments_that_are_not_booleans,
    hostile_clients_do_not_hold_up_an_ordinary_one,
);
