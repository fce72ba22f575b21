//! The HTTP surface around GraphQL: health, GraphiQL, CORS, introspection.

use music_gateway::config::CorsOrigins;
use serde_json::json;

use crate::{
    helpers::{Backend, TestApp},
    on_both_databases,
};

async fn health_and_readiness_answer(app: TestApp) {
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    assert_eq!(ready.text().await.unwrap(), "ready");
}

async fn a_browser_gets_graphiql(app: TestApp) {
    let page = app
        .client
        .get(app.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.to_lowercase().contains("graphiql"), "{html}");
}

async fn code_generators_can_introspect_without_a_token(app: TestApp) {
    // The depth of the introspection query GraphiQL and codegen tools send.
    let query = "{ __schema { queryType { name } types { name kind description
        fields(includeDeprecated: true) { name args { name type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
        type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } } } }";
    let (status, body) = app.post(None, query, json!({})).await;
    assert_eq!(status, 200);
    assert!(body.get("errors").is_none(), "{body}");
    let types = body["data"]["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "Me"));
}

async fn cors_allows_configured_origins_only(app: TestApp) {
    // The default app allows no cross-origin calls.
    let preflight = |app: &TestApp, origin: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let denied = preflight(&app, "https://app.example").await.unwrap();
    assert!(
        denied
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    let allowed_app = TestApp::spawn_with(app.backend, |c| {
        c.cors = CorsOrigins::List(vec!["https://app.example".into()]);
    })
    .await;
    let allowed = preflight(&allowed_app, "https://app.example")
        .await
        .unwrap();
    assert!(allowed.status().is_success());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(headers.contains("authorization"), "{headers}");
    let other = preflight(&allowed_app, "https://evil.example")
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

on_both_databases!(
    health_and_readiness_answer,
    a_browser_gets_graphiql,
    code_generators_can_introspect_without_a_token,
    cors_allows_configured_origins_only,
);

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.state.db.clone().close().await.unwrap();
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
}
