//! GraphiQL as the gateway serves it: every asset from the gateway itself,
//! the demo user's token pre-filled in local mode only, and the page driven
//! in headless Chromium with every other host blocked.

use std::{path::PathBuf, process::Command};

use serde_json::{Value, json};

use crate::{
    fake_auth0::FakeAuth0,
    for_both_backends,
    helpers::{Backend, TestApp},
    on_both_databases,
};

/// The GraphiQL page as a browser asks for it: status, headers, body.
async fn page(app: &TestApp) -> (u16, reqwest::header::HeaderMap, String) {
    let response = app
        .client
        .get(app.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// The settings the gateway hands the page's script.
fn page_config(html: &str) -> Value {
    let start = r#"<script id="graphiql-config" type="application/json">"#;
    let from = html.find(start).expect("the page has a config block") + start.len();
    let len = html[from..]
        .find("</script>")
        .expect("the config block ends");
    serde_json::from_str(&html[from..from + len]).expect("the config is JSON")
}

/// The values of every `attribute="…"` in the page.
fn attributes<'a>(html: &'a str, attribute: &str) -> Vec<&'a str> {
    let needle = format!("{attribute}=\"");
    html.match_indices(&needle)
        .map(|(at, _)| {
            let rest = &html[at + needle.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect()
}

/// The bearer token in the page's pre-filled headers, if any.
fn prefilled_token(html: &str) -> Option<String> {
    let headers = page_config(html)["headers"].as_str()?.to_owned();
    let headers: Value = serde_json::from_str(&headers).expect("the headers are JSON");
    let value = headers["Authorization"].as_str()?;
    Some(value.strip_prefix("Bearer ")?.to_owned())
}

const SONG_NAMES: &str = "{ me { id songs { totalCount nodes { name } } } }";

async fn the_page_loads_only_from_the_gateway(app: TestApp) {
    let (status, headers, html) = page(&app).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-store");
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(
        !csp.contains("http"),
        "the policy names another host: {csp}"
    );

    let sources: Vec<&str> = attributes(&html, "src")
        .into_iter()
        .chain(attributes(&html, "href"))
        .collect();
    assert_eq!(sources.len(), 3, "{sources:?}");
    for source in &sources {
        assert!(
            source.starts_with("graphiql/") || source.starts_with("data:"),
            "the page loads {source} from elsewhere"
        );
    }
    for (source, content_type) in [
        (
            attributes(&html, "src")[0],
            "text/javascript; charset=utf-8",
        ),
        (
            attributes(&html, "href")
                .into_iter()
                .find(|h| h.ends_with(".css"))
                .unwrap(),
            "text/css; charset=utf-8",
        ),
    ] {
        let url = app.url(&format!("/{source}"));
        let asset = app.client.get(&url).send().await.unwrap();
        assert_eq!(asset.status().as_u16(), 200, "{url}");
        assert_eq!(asset.headers()["content-type"], content_type);
        assert_eq!(
            asset.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert!(asset.headers().get("content-encoding").is_none());
        let etag = asset.headers()["etag"].clone();
        let body = asset.bytes().await.unwrap();
        assert!(body.len() > 10_000, "{url} is {} bytes", body.len());

        let again = app
            .client
            .get(&url)
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status().as_u16(), 304, "{url}");

        let gzip = app
            .client
            .get(&url)
            .header("accept-encoding", "gzip, br")
            .send()
            .await
            .unwrap();
        assert_eq!(gzip.headers()["content-encoding"], "gzip");
        assert_eq!(gzip.headers()["vary"], "accept-encoding");
        let gzipped = gzip.bytes().await.unwrap();
        assert_eq!(&gzipped[..2], &[0x1f, 0x8b], "{url} is not gzip");
        assert!(gzipped.len() < body.len());
    }

    let missing = app
        .client
        .get(app.url("/graphiql/graphiql.0000000000000000.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}

async fn the_local_page_brings_a_demo_token_and_the_demo_data(app: TestApp) {
    let (_, _, html) = page(&app).await;
    let token = prefilled_token(&html).expect("a pre-filled bearer token");
    let first = app.ok_with(&token, SONG_NAMES, json!({})).await;
    assert_eq!(first["me"]["id"], music_gateway::demo::DEMO_USER);
    let songs = first["me"]["songs"]["totalCount"].as_i64().unwrap();
    assert!(songs > 0, "the demo user has no songs: {first}");

    // A second visit brings a token too, and loads nothing twice.
    let (_, _, html) = page(&app).await;
    let token = prefilled_token(&html).expect("a pre-filled bearer token");
    let second = app.ok_with(&token, SONG_NAMES, json!({})).await;
    assert_eq!(second, first);
}

async fn no_token_is_prefilled_when_graphiql_demo_token_is_false(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.graphiql_demo_token = false).await;
    let (status, _, html) = page(&app).await;
    assert_eq!(status, 200);
    assert_eq!(page_config(&html)["headers"], Value::Null);
    assert!(!html.contains("Bearer ey"), "{html}");
    // Nor are demo songs loaded behind the operator's back.
    let me = app
        .ok(music_gateway::demo::DEMO_USER, SONG_NAMES, json!({}))
        .await;
    assert_eq!(me["me"]["songs"]["totalCount"], 0);
}

async fn no_token_is_prefilled_in_auth0_mode(backend: Backend) {
    let fake = FakeAuth0::start().await;
    let app = TestApp::spawn_auth0(backend, &fake, |_| {}).await;
    let (status, headers, html) = page(&app).await;
    assert_eq!(status, 200);
    assert!(headers.contains_key("content-security-policy"));
    assert_eq!(page_config(&html)["headers"], Value::Null);
    assert!(!html.contains("Bearer ey"), "{html}");
}

async fn graphiql_false_turns_the_page_and_its_assets_off(backend: Backend) {
    let on = TestApp::spawn(backend).await;
    let (_, _, html) = page(&on).await;
    let script = attributes(&html, "src")[0].to_owned();

    let off = TestApp::spawn_with(backend, |c| c.graphiql = false).await;
    let (status, _, _) = page(&off).await;
    assert_eq!(status, 404);
    let asset = off
        .client
        .get(off.url(&format!("/{script}")))
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status().as_u16(), 404);
    // The API itself is unaffected.
    let (status, body) = off.post(None, "{ __typename }", json!({})).await;
    assert_eq!(
        (status, &body["data"]["__typename"]),
        (200, &json!("Query"))
    );
}

on_both_databases!(
    the_page_loads_only_from_the_gateway,
    the_local_page_brings_a_demo_token_and_the_demo_data,
    graphiql_in_chromium_runs_me_with_every_other_host_blocked,
);

for_both_backends!(
    no_token_is_prefilled_when_graphiql_demo_token_is_false,
    no_token_is_prefilled_in_auth0_mode,
    graphiql_false_turns_the_page_and_its_assets_off,
);

/// What tests/browser/graphiql.mjs needs: Node, its node_modules and
/// Chromium. Missing ones fail the test, saying how to get them.
fn browser_test_setup() -> (PathBuf, PathBuf) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let how = "run the suite with scripts/test, which installs Chromium (apt-get, as root) \
               and tests/browser's npm packages when they are missing";
    assert!(
        chromium.exists(),
        "Chromium not found at {} (set CHROMIUM to another path): {how}",
        chromium.display()
    );
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "{} has no node_modules/playwright-core: {how}",
        dir.display()
    );
    (dir, chromium)
}

async fn graphiql_in_chromium_runs_me_with_every_other_host_blocked(app: TestApp) {
    let (dir, chromium) = browser_test_setup();
    let base = app.url("");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("graphiql.mjs")
            .arg(base)
            .env("CHROMIUM", chromium)
            .current_dir(dir)
            .output()
    })
    .await
    .unwrap()
    .expect("node runs (install Node.js 18 or newer)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser script failed ({}):\n{stderr}\n{stdout}",
        output.status
    );
    let seen: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the browser script printed no JSON ({e}):\n{stdout}"));

    // The page rendered from the gateway alone: nothing to block, nothing
    // refused by its Content-Security-Policy, nothing broken.
    assert_eq!(seen["blocked"], json!([]), "{seen}");
    assert!(seen["requests"].as_u64().unwrap() >= 3, "{seen}");
    assert_eq!(seen["cspViolations"], json!([]), "{seen}");
    assert_eq!(seen["failed"], json!([]), "{seen}");
    assert_eq!(seen["pageErrors"], json!([]), "{seen}");
    assert_eq!(seen["consoleErrors"], json!([]), "{seen}");
    assert!(seen["csp"].as_str().unwrap().contains("default-src 'none'"));

    // The headers tab shows the demo user's token, also after a reload.
    assert_eq!(seen["toolTab"], "Headers");
    for key in ["headers", "headersAfterReload"] {
        let headers: Value = serde_json::from_str(seen[key].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{key} is not JSON ({e}): {seen}"));
        assert!(
            headers["Authorization"]
                .as_str()
                .is_some_and(|v| v.starts_with("Bearer ey")),
            "{key}: {headers}"
        );
    }

    // The docs explorer lists `me`.
    let fields = seen["docFields"].as_array().unwrap();
    assert!(fields.contains(&json!("me")), "{seen}");

    // The typed query ran and answered the demo user's songs, as the API
    // answers them to a token of our own.
    assert_eq!(
        seen["typed"],
        "{ me { displayName songs { nodes { name } } } }"
    );
    assert_eq!(seen["queryAfterReload"], seen["typed"]);
    let expected = app
        .ok(
            music_gateway::demo::DEMO_USER,
            "{ me { displayName songs { nodes { name } } } }",
            json!({}),
        )
        .await;
    assert!(
        !expected["me"]["songs"]["nodes"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(seen["result"], json!({ "data": expected }), "{seen}");
}
