//! Bearer tokens: a present but invalid token is refused with 401 and a
//! `WWW-Authenticate` challenge; no token is anonymous.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use music_gateway::auth::LocalIssuer;
use serde_json::{Value, json};

use crate::{helpers::TestApp, on_both_databases};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(app: &TestApp, overrides: Value) -> Value {
    let config = &app.state.config;
    let mut base = json!({
        "sub": "auth0|alice",
        "iss": config.token_issuer,
        "aud": config.token_audience,
        "iat": now(),
        "exp": now() + 600,
    });
    for (k, v) in overrides.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

/// Signs `claims` with the gateway's own key, so only the claims are wrong.
fn signed(app: &TestApp, claims: &Value) -> String {
    let pem = std::fs::read_to_string(app.state.config.data_dir.join("signing-key.pem")).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(app.issuer.kid().to_owned());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

async fn assert_refused(app: &TestApp, token: &str, why: &str) {
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .json(&json!({"query": "{ me { id } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401, "{why}: expected 401");
    let challenge = response
        .headers()
        .get("www-authenticate")
        .unwrap_or_else(|| panic!("{why}: no WWW-Authenticate header"))
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{why}: {challenge}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{why}"
    );
}

async fn a_valid_token_is_accepted_with_an_array_audience(app: TestApp) {
    let aud = app.state.config.token_audience.clone();
    let token = signed(
        &app,
        &claims(&app, json!({"aud": ["https://other.example/", aud]})),
    );
    let (status, body) = app.post(Some(&token), "{ me { id } }", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["me"]["id"], "auth0|alice");
}

async fn invalid_tokens_are_refused_with_401(app: TestApp) {
    let expired = signed(
        &app,
        &claims(&app, json!({"exp": now() - 3600, "iat": now() - 7200})),
    );
    assert_refused(&app, &expired, "expired").await;
    let future = signed(&app, &claims(&app, json!({"nbf": now() + 3600})));
    assert_refused(&app, &future, "not yet valid").await;
    let audience = signed(&app, &claims(&app, json!({"aud": "https://another-api/"})));
    assert_refused(&app, &audience, "wrong audience").await;
    let issuer = signed(&app, &claims(&app, json!({"iss": "https://evil.example/"})));
    assert_refused(&app, &issuer, "wrong issuer").await;
    let no_sub = {
        let mut c = claims(&app, json!({}));
        c.as_object_mut().unwrap().remove("sub");
        signed(&app, &c)
    };
    assert_refused(&app, &no_sub, "no sub").await;

    // Signed by another key that claims the gateway's kid.
    let dir = tempfile::TempDir::new().unwrap();
    let other = LocalIssuer::load_or_create(dir.path(), "x", "y").unwrap();
    let other_pem = std::fs::read_to_string(dir.path().join("signing-key.pem")).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(app.issuer.kid().to_owned());
    let forged = jsonwebtoken::encode(
        &header,
        &claims(&app, json!({})),
        &EncodingKey::from_rsa_pem(other_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_refused(&app, &forged, "wrong key").await;
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(other.kid().to_owned());
    let unknown_kid = jsonwebtoken::encode(
        &header,
        &claims(&app, json!({})),
        &EncodingKey::from_rsa_pem(other_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_refused(&app, &unknown_kid, "unknown kid").await;

    // alg: none, unsigned.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims(&app, json!({})).to_string())
    );
    assert_refused(&app, &none, "alg none").await;

    // Key confusion: HS256 with the public key's bytes as the secret.
    let jwks = app.issuer.jwks().to_string();
    let confused = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(&app, json!({})),
        &EncodingKey::from_secret(jwks.as_bytes()),
    )
    .unwrap();
    assert_refused(&app, &confused, "HS256 key confusion").await;

    // A valid signature over a tampered payload.
    let good = signed(&app, &claims(&app, json!({})));
    let mut parts: Vec<String> = good.split('.').map(String::from).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(claims(&app, json!({"sub": "auth0|mallory"})).to_string());
    assert_refused(&app, &parts.join("."), "tampered payload").await;

    assert_refused(&app, "garbage", "garbage").await;
    assert_refused(&app, "a.b.c", "three garbage parts").await;
}

async fn a_non_bearer_authorization_header_is_refused(app: TestApp) {
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .json(&json!({"query": "{ me { id } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
}

async fn hs256_tokens_work_only_when_a_secret_is_configured(app: TestApp) {
    let secret = "a-shared-secret-of-at-least-32-bytes!!";
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(&app, json!({})),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    // This gateway has no secret configured: HS256 is refused outright.
    assert_refused(&app, &token, "HS256 without a configured secret").await;

    let with_secret = TestApp::spawn_with(app.backend, |c| {
        c.jwt_hs256_secret = Some(music_gateway::config::Secret::new(secret))
    })
    .await;
    let (status, body) = with_secret
        .post(Some(&token), "{ me { id } }", json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["me"]["id"], "auth0|alice");
    let wrong = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(&with_secret, json!({})),
        &EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes!!!"),
    )
    .unwrap();
    assert_refused(&with_secret, &wrong, "HS256 with the wrong secret").await;
}

async fn the_jwks_publishes_the_key_that_signs_tokens(app: TestApp) {
    let jwks: Value = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], app.issuer.kid());
    assert_eq!(jwks["keys"][0]["alg"], "RS256");
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "the private exponent must never be published"
    );
}

async fn a_cached_token_is_refused_once_expired(app: TestApp) {
    // Verified tokens are cached; the cache must never accept what a fresh
    // verification would refuse. This token is within the 30 s leeway for
    // one more second.
    let token = signed(
        &app,
        &claims(&app, json!({"exp": now() - 29, "iat": now() - 600})),
    );
    for _ in 0..2 {
        let (status, body) = app.post(Some(&token), "{ me { id } }", json!({})).await;
        assert_eq!(status, 200, "{body}");
    }
    // Time must pass: the token's leeway ends in a second, whatever happens.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_refused(&app, &token, "expired after being cached").await;
}

on_both_databases!(
    a_cached_token_is_refused_once_expired,
    a_valid_token_is_accepted_with_an_array_audience,
    invalid_tokens_are_refused_with_401,
    a_non_bearer_authorization_header_is_refused,
    hs256_tokens_work_only_when_a_secret_is_configured,
    the_jwks_publishes_the_key_that_signs_tokens,
);
