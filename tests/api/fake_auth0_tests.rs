//! The fake Auth0 behaves like Auth0, over real HTTP.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

use crate::fake_auth0::{Calls, FakeAuth0, FakeAuth0Options};

/// A tenant whose rate limit never gets in the way.
async fn roomy_fake() -> FakeAuth0 {
    FakeAuth0::start_with(FakeAuth0Options {
        rate_per_second: 1000.0,
        burst: 1000,
        ..FakeAuth0Options::default()
    })
    .await
}

/// A Management API token, by the client credentials grant.
async fn management_token(fake: &FakeAuth0, client: &Client) -> String {
    let response = client
        .post(format!("{}/oauth/token", fake.base_url()))
        .json(&json!({
            "grant_type": "client_credentials",
            "client_id": fake.client_id(),
            "client_secret": fake.client_secret(),
            "audience": fake.management_audience(),
        }))
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("token body");
    body["access_token"].as_str().expect("access_token").into()
}

fn users_url(fake: &FakeAuth0, id: &str) -> String {
    // `|` is sent as `%7C`, as Auth0's documentation asks.
    format!(
        "{}/api/v2/users/{}",
        fake.base_url(),
        id.replace('|', "%7C")
    )
}

async fn get_user(fake: &FakeAuth0, client: &Client, token: &str, id: &str) -> Response {
    client
        .get(users_url(fake, id))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET user")
}

async fn patch_user(
    fake: &FakeAuth0,
    client: &Client,
    token: &str,
    id: &str,
    body: Value,
) -> (StatusCode, Value) {
    let response = client
        .patch(users_url(fake, id))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("PATCH user");
    let status = response.status();
    (status, response.json().await.expect("JSON body"))
}

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("header {name}"))
        .to_str()
        .expect("ASCII header")
        .to_owned()
}

fn alice() -> Value {
    json!({
        "user_id": "auth0|alice",
        "email": "alice@example.com",
        "name": "Alice",
        "user_metadata": {"displayName": "Alice", "prefs": {"theme": "dark", "lang": "en"}},
        "app_metadata": {"roles": ["listener"], "plan": "free"},
    })
}

#[tokio::test]
async fn client_credentials_grant_issues_a_token_and_refuses_wrong_credentials() {
    let fake = FakeAuth0::start().await;
    let client = Client::new();
    let url = format!("{}/oauth/token", fake.base_url());
    let management = format!("{}/api/v2/", fake.base_url());

    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "test-client"),
        ("client_secret", "test-secret"),
        ("audience", management.as_str()),
    ];
    let response = client.post(&url).form(&form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 86400);
    assert_eq!(
        body["scope"],
        "read:users update:users update:users_app_metadata delete:users"
    );
    let token = body["access_token"].as_str().unwrap();
    fake.put_user(alice());
    assert_eq!(
        get_user(&fake, &client, token, "auth0|alice")
            .await
            .status(),
        StatusCode::OK
    );

    let refused = |body: Value| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let response = client.post(url).json(&body).send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let good = json!({
        "grant_type": "client_credentials", "client_id": "test-client",
        "client_secret": "test-secret", "audience": management,
    });
    let with = |key: &str, value: &str| {
        let mut body = good.clone();
        body[key] = value.into();
        body
    };
    assert_eq!(
        refused(with("client_secret", "wrong")).await,
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "access_denied", "error_description": "Unauthorized"})
        )
    );
    let (status, body) = refused(with("grant_type", "password")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "unsupported_grant_type");
    let (status, body) = refused(with("audience", "https://elsewhere.test/api/v2/")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "access_denied");
    assert_eq!(
        body["error_description"],
        "Service not found: https://elsewhere.test/api/v2/"
    );
    assert_eq!(fake.calls().token, 4);
}

#[tokio::test]
async fn management_api_answers_401_without_a_valid_token() {
    let fake = FakeAuth0::start_with(FakeAuth0Options {
        token_expires_in: 0,
        ..FakeAuth0Options::default()
    })
    .await;
    fake.put_user(alice());
    let client = Client::new();
    let expected = json!({
        "statusCode": 401, "error": "Unauthorized",
        "message": "Invalid token", "errorCode": "invalid_token",
    });

    let response = client
        .get(users_url(&fake, "auth0|alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.json::<Value>().await.unwrap(), expected);

    // A user token is not a Management API token.
    let user_token = fake.mint("auth0|alice", json!({}));
    let response = get_user(&fake, &client, &user_token, "auth0|alice").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // expires_in 0: the token is expired as soon as it is issued.
    let expired = management_token(&fake, &client).await;
    let response = get_user(&fake, &client, &expired, "auth0|alice").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.json::<Value>().await.unwrap(), expected);

    let calls = fake.calls();
    assert_eq!((calls.unauthorized, calls.get_user), (3, 0));
}

#[tokio::test]
async fn revoked_management_tokens_answer_401() {
    let fake = FakeAuth0::start().await;
    fake.put_user(alice());
    let client = Client::new();
    let token = management_token(&fake, &client).await;
    fake.revoke_tokens();
    let response = get_user(&fake, &client, &token, "auth0|alice").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn get_user_returns_only_the_requested_fields() {
    let fake = roomy_fake().await;
    fake.put_user(alice());
    let client = Client::new();
    let token = management_token(&fake, &client).await;

    let whole: Value = get_user(&fake, &client, &token, "auth0|alice")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(whole["email"], "alice@example.com");
    assert!(whole["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(whole["updated_at"].is_string());

    let url = users_url(&fake, "auth0|alice");
    let selected: Value = client
        .get(format!(
            "{url}?fields=user_id,user_metadata&include_fields=true"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        selected,
        json!({"user_id": "auth0|alice", "user_metadata": alice()["user_metadata"]})
    );

    let without: Value = client
        .get(format!(
            "{url}?fields=app_metadata,user_metadata&include_fields=false"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(without.get("app_metadata").is_none() && without.get("user_metadata").is_none());
    assert_eq!(without["name"], "Alice");
    assert_eq!(fake.calls().get_user, 3);
}

#[tokio::test]
async fn unknown_users_answer_404_with_auth0s_error_body() {
    let fake = FakeAuth0::start().await;
    let client = Client::new();
    let token = management_token(&fake, &client).await;
    let expected = json!({
        "statusCode": 404, "error": "Not Found",
        "message": "The user does not exist.", "errorCode": "inexistent_user",
    });

    let response = get_user(&fake, &client, &token, "auth0|nobody").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.json::<Value>().await.unwrap(), expected);

    let (status, body) = patch_user(
        &fake,
        &client,
        &token,
        "auth0|nobody",
        json!({"user_metadata": {"a": 1}}),
    )
    .await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, expected));
}

#[tokio::test]
async fn patch_merges_metadata_at_the_top_level_only() {
    let fake = roomy_fake().await;
    fake.put_user(alice());
    let before = fake.user("auth0|alice").unwrap();
    let client = Client::new();
    let token = management_token(&fake, &client).await;
    // Time must pass: updated_at has milliseconds, and the patch must move it.
    tokio::time::sleep(Duration::from_millis(5)).await;

    let (status, user) = patch_user(
        &fake,
        &client,
        &token,
        "auth0|alice",
        json!({
            "user_metadata": {"prefs": {"theme": "light"}, "displayName": null, "avatar": "a.png"},
            "app_metadata": {"plan": "premium"},
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Nested objects are replaced whole, null deletes, other keys stay.
    assert_eq!(
        user["user_metadata"],
        json!({"prefs": {"theme": "light"}, "avatar": "a.png"})
    );
    assert_eq!(
        user["app_metadata"],
        json!({"roles": ["listener"], "plan": "premium"})
    );
    assert_eq!(user["email"], "alice@example.com");
    assert_ne!(user["updated_at"], before["updated_at"]);
    assert_eq!(user["created_at"], before["created_at"]);
    assert_eq!(fake.user("auth0|alice").unwrap(), user);
    assert_eq!(fake.calls().patch_user, 1);
}

#[tokio::test]
async fn patch_with_an_empty_object_wipes_that_metadata() {
    let fake = roomy_fake().await;
    fake.put_user(alice());
    let client = Client::new();
    let token = management_token(&fake, &client).await;

    let (status, user) = patch_user(
        &fake,
        &client,
        &token,
        "auth0|alice",
        json!({"user_metadata": {}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["user_metadata"], json!({}));
    assert_eq!(user["app_metadata"], alice()["app_metadata"]);
}

#[tokio::test]
async fn patch_refuses_dots_and_dollars_at_any_depth_and_changes_nothing() {
    let fake = roomy_fake().await;
    fake.put_user(alice());
    let before = fake.user("auth0|alice").unwrap();
    let client = Client::new();
    let token = management_token(&fake, &client).await;

    for (body, property) in [
        (
            json!({"user_metadata": {"displayName": "Al", "a": {"b.c": 1}}}),
            "user_metadata.a.b.c",
        ),
        (
            json!({"app_metadata": {"plan": "x"}, "user_metadata": {"$set": 1}}),
            "user_metadata.$set",
        ),
        (
            json!({"user_metadata": {"list": [{"ok": {"x$": 1}}]}}),
            "user_metadata.list[0].ok.x$",
        ),
    ] {
        let (status, error) = patch_user(&fake, &client, &token, "auth0|alice", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error["statusCode"], 400);
        assert_eq!(error["error"], "Bad Request");
        assert_eq!(error["errorCode"], "invalid_body");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("Invalid field name"), "{message}");
        assert!(message.contains(property), "{message}");
    }
    assert_eq!(fake.user("auth0|alice").unwrap(), before);
}

#[tokio::test]
async fn patch_refuses_reserved_app_metadata_names_and_bad_shapes() {
    let fake = roomy_fake().await;
    fake.put_user(alice());
    let before = fake.user("auth0|alice").unwrap();
    let client = Client::new();
    let token = management_token(&fake, &client).await;

    for body in [
        json!({"app_metadata": {"plan": "premium", "blocked": true}}),
        json!({"app_metadata": {"user_id": "someone-else"}}),
        json!({"user_metadata": "not an object"}),
        json!({"user_metadata": {"a": 1}, "userMetadata": {"a": 1}}),
        json!({}),
        json!({"user_metadata": {"blob": "x".repeat(17 * 1024)}}),
    ] {
        let (status, error) = patch_user(&fake, &client, &token, "auth0|alice", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error["errorCode"], "invalid_body");
    }
    assert_eq!(fake.user("auth0|alice").unwrap(), before);
    // The reserved names are only reserved in app_metadata.
    let (status, _) = patch_user(
        &fake,
        &client,
        &token,
        "auth0|alice",
        json!({"user_metadata": {"blocked": true}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

fn unix_now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

#[tokio::test]
async fn rate_limit_answers_429_with_headers_once_the_burst_is_spent_and_recovers_at_reset() {
    let fake = roomy_fake().await;
    fake.put_user(alice());
    let client = Client::new();
    let token = management_token(&fake, &client).await;
    fake.set_rate(5.0, 2);

    let first = get_user(&fake, &client, &token, "auth0|alice").await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(&first, "x-ratelimit-limit"), "2");
    assert_eq!(header(&first, "x-ratelimit-remaining"), "1");
    let second = get_user(&fake, &client, &token, "auth0|alice").await;
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(header(&second, "x-ratelimit-remaining"), "0");

    let limited = get_user(&fake, &client, &token, "auth0|alice").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&limited, "x-ratelimit-limit"), "2");
    assert_eq!(header(&limited, "x-ratelimit-remaining"), "0");
    let reset: u128 = header(&limited, "x-ratelimit-reset").parse().unwrap();
    let now = unix_now_ms();
    assert!(reset * 1000 >= now && reset * 1000 <= now + 1500, "{reset}");
    assert_eq!(
        limited.json::<Value>().await.unwrap(),
        json!({
            "statusCode": 429, "error": "Too Many Requests",
            "message": "Global limit has been reached", "errorCode": "too_many_requests",
        })
    );
    // The token endpoint has no part in the management bucket.
    management_token(&fake, &client).await;

    // The rate-limit window must pass: nothing but time ends it.
    let wait = (reset * 1000).saturating_sub(unix_now_ms()) as u64;
    tokio::time::sleep(Duration::from_millis(wait + 10)).await;
    let recovered = get_user(&fake, &client, &token, "auth0|alice").await;
    assert_eq!(recovered.status(), StatusCode::OK);

    let calls = fake.calls();
    assert_eq!((calls.get_user, calls.rate_limited), (3, 1));
    assert_eq!(calls.management(), 3);
}

#[tokio::test]
async fn fail_next_answers_the_injected_status_then_serves_again() {
    let fake = FakeAuth0::start().await;
    fake.put_user(alice());
    let client = Client::new();
    let token = management_token(&fake, &client).await;

    fake.fail_next(2, 503);
    for _ in 0..2 {
        let response = get_user(&fake, &client, &token, "auth0|alice").await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["statusCode"], 503);
        assert_eq!(body["error"], "Service Unavailable");
    }
    // The failures used no rate budget: the burst of 2 is still whole.
    for _ in 0..2 {
        let response = get_user(&fake, &client, &token, "auth0|alice").await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    fake.fail_next_token(1, 500);
    let response = client
        .post(format!("{}/oauth/token", fake.base_url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    management_token(&fake, &client).await;

    let calls = fake.calls();
    assert_eq!((calls.failed, calls.get_user), (3, 2));
}

#[tokio::test]
async fn drop_next_closes_connections_without_an_answer() {
    let fake = FakeAuth0::start().await;
    let jwks_url = fake.jwks_url();

    // A pooled keep-alive connection is dropped too.
    let pooled = Client::new();
    assert!(
        pooled
            .get(&jwks_url)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    fake.drop_next(1);
    let error = pooled.get(&jwks_url).send().await.unwrap_err();
    assert!(error.is_request() || error.is_connect(), "{error:?}");
    assert!(
        pooled
            .get(&jwks_url)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );

    // And so are new connections, one per request.
    let fresh = Client::builder().pool_max_idle_per_host(0).build().unwrap();
    fake.drop_next(2);
    for _ in 0..2 {
        assert!(fresh.get(&jwks_url).send().await.is_err());
    }
    assert!(
        fresh
            .get(&jwks_url)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );

    let calls = fake.calls();
    assert_eq!((calls.dropped, calls.jwks), (3, 3));
}

#[tokio::test]
async fn latency_delays_management_answers() {
    let fake = FakeAuth0::start().await;
    let client = Client::new();
    let token = management_token(&fake, &client).await;
    fake.set_latency(Duration::from_millis(150));
    let started = Instant::now();
    let response = get_user(&fake, &client, &token, "auth0|nobody").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

async fn fetch_jwks(fake: &FakeAuth0) -> JwkSet {
    reqwest::get(fake.jwks_url())
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Verifies a token as a resource server would: key by `kid` from the JWKS,
/// RS256, `iss` and `aud` checked.
fn verify(fake: &FakeAuth0, jwks: &JwkSet, token: &str) -> jsonwebtoken::errors::Result<Value> {
    let kid = jsonwebtoken::decode_header(token)?.kid.expect("kid");
    let jwk = jwks
        .find(&kid)
        .ok_or(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[fake.audience()]);
    validation.set_issuer(&[fake.issuer()]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk)?, &validation)
        .map(|data| data.claims)
}

#[tokio::test]
async fn minted_tokens_verify_against_the_jwks_with_issuer_and_audience_checked() {
    let fake = FakeAuth0::start().await;
    assert_eq!(fake.issuer(), format!("{}/", fake.base_url()));
    let jwks = fetch_jwks(&fake).await;
    let key = &jwks.keys[0];
    assert_eq!(
        key.common.key_id.as_deref(),
        Some(fake.current_kid().as_str())
    );

    let token = fake.mint(
        "auth0|alice",
        json!({"scope": "openid", "https://music-gateway.test/roles": ["playlist_editor"]}),
    );
    let claims = verify(&fake, &jwks, &token).expect("valid token");
    assert_eq!(claims["sub"], "auth0|alice");
    assert_eq!(claims["iss"], fake.issuer());
    assert_eq!(
        claims["https://music-gateway.test/roles"],
        json!(["playlist_editor"])
    );

    let wrong_audience = fake.mint("auth0|alice", json!({"aud": "https://other.test/"}));
    assert!(verify(&fake, &jwks, &wrong_audience).is_err());
    let wrong_issuer = fake.mint("auth0|alice", json!({"iss": fake.base_url()}));
    assert!(verify(&fake, &jwks, &wrong_issuer).is_err());
    let expired = fake.mint_with_ttl("auth0|alice", -120, json!({}));
    assert!(verify(&fake, &jwks, &expired).is_err());
    assert_eq!(fake.calls().jwks, 1);
}

#[tokio::test]
async fn rotate_key_publishes_both_keys_until_the_old_one_is_retired() {
    let fake = FakeAuth0::start().await;
    let old_kid = fake.current_kid();
    let old_token = fake.mint("auth0|alice", json!({}));

    fake.rotate_key();
    let new_kid = fake.current_kid();
    assert_ne!(new_kid, old_kid);
    let new_token = fake.mint("auth0|alice", json!({}));
    let jwks = fetch_jwks(&fake).await;
    let kids: Vec<_> = jwks
        .keys
        .iter()
        .map(|k| k.common.key_id.clone().unwrap())
        .collect();
    assert_eq!(kids, [old_kid.clone(), new_kid.clone()]);
    assert!(verify(&fake, &jwks, &old_token).is_ok());
    assert!(verify(&fake, &jwks, &new_token).is_ok());

    fake.retire_old_keys();
    let jwks = fetch_jwks(&fake).await;
    assert_eq!(jwks.keys.len(), 1);
    assert!(jwks.find(&old_kid).is_none());
    assert!(verify(&fake, &jwks, &old_token).is_err());
    assert!(verify(&fake, &jwks, &new_token).is_ok());
    assert_eq!(
        fake.calls(),
        Calls {
            jwks: 2,
            ..Calls::default()
        }
    );
}
