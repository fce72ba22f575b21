//! The Management API client.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use reqwest::{Method, StatusCode};
use sea_orm::DatabaseConnection;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::RateBudget;
use crate::config::{Auth0Config, Secret};

/// Attempts per call, the first included.
const MAX_ATTEMPTS: u32 = 4;

/// Longest wait for Auth0's rate-limit reset that a call sits through.
const MAX_RESET_WAIT: Duration = Duration::from_secs(30);

/// The fields the gateway reads from a user.
const USER_FIELDS: &str = "user_id,email,name,picture,user_metadata,app_metadata,updated_at";

/// Why a Management API call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Auth0Error {
    /// Auth0 has no such user.
    #[error("the user does not exist at Auth0")]
    NotFound,
    /// Auth0 refused the request as invalid (a 4xx other than 404 and 429).
    #[error("Auth0 refused the request: {0}")]
    Refused(String),
    /// The call was not made: the rate budget had no token and the caller would not wait.
    #[error("the Management API budget is spent for now")]
    BudgetSpent,
    /// Auth0 could not be reached or kept failing after retries.
    #[error("Auth0 is unavailable: {0}")]
    Unavailable(String),
}

/// Whether a call may wait for the rate budget and for retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Only if a token is available now, and no retries: the caller has a
    /// fallback and a request is waiting on it.
    No,
    /// Wait for the budget and retry with backoff.
    Yes,
    /// Wait for the budget until the deadline, then send once, without
    /// retries: the caller holds a lease that must outlast the call, and
    /// retries on its own schedule.
    Once(Instant),
    /// The caller took the budget's token already (so it could check,
    /// after a wait, that the call is still wanted): send once, at once.
    Spent,
}

/// A user as the Management API returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct Auth0User {
    pub user_id: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub picture: Option<String>,
    #[serde(default)]
    pub user_metadata: Option<Value>,
    #[serde(default)]
    pub app_metadata: Option<Value>,
    /// When the profile last changed at Auth0 (ISO 8601).
    #[serde(default)]
    pub updated_at: Option<String>,
}

impl Auth0User {
    /// `updated_at` as a time, when present and well formed.
    pub fn updated_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        parse_time(self.updated_at.as_deref()?)
    }
}

/// An ISO 8601 time as Auth0 writes them (`2024-05-01T12:34:56.789Z`).
pub fn parse_time(raw: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default = "default_expires_in")]
    expires_in: u64,
}

fn default_expires_in() -> u64 {
    86_400
}

/// The client: one per gateway, cheap to share.
pub struct ManagementClient {
    http: reqwest::Client,
    base_url: String,
    client_id: String,
    client_secret: Secret,
    budget: Arc<RateBudget>,
    token: Mutex<Option<(String, Instant)>>,
    calls: AtomicU64,
}

enum Attempt {
    Done(Result<Value, Auth0Error>),
    Retry(String),
    RetryAfter(Instant, String),
}

impl ManagementClient {
    /// A client for the tenant of `config`.
    pub fn new(config: &Auth0Config, db: DatabaseConnection) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(3)))
            .user_agent(concat!("music-gateway/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base_url: config.base_url.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            budget: Arc::new(RateBudget::new(db, config.mgmt_rate, config.mgmt_burst)),
            token: Mutex::new(None),
            calls: AtomicU64::new(0),
        })
    }

    /// Management API requests sent since start-up.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The shared rate budget.
    pub fn budget(&self) -> &RateBudget {
        &self.budget
    }

    fn user_url(&self, user_id: &str) -> String {
        // Ids such as `google-oauth2|123` must be encoded (`|` is `%7C`).
        let encoded: String = url_encode(user_id);
        format!("{}/api/v2/users/{encoded}", self.base_url)
    }

    /// `GET /api/v2/users/{id}` with the fields the gateway mirrors.
    #[tracing::instrument(skip(self), err(level = "warn"))]
    pub async fn get_user(&self, user_id: &str, wait: Wait) -> Result<Auth0User, Auth0Error> {
        let url = format!(
            "{}?fields={USER_FIELDS}&include_fields=true",
            self.user_url(user_id)
        );
        let value = self.call(Method::GET, &url, None, wait).await?;
        serde_json::from_value(value)
            .map_err(|e| Auth0Error::Unavailable(format!("unexpected user body: {e}")))
    }

    /// `PATCH /api/v2/users/{id}` with `body`, e.g. `{"user_metadata": {...}}`.
    #[tracing::instrument(skip(self, body), err(level = "warn"))]
    pub async fn patch_user(
        &self,
        user_id: &str,
        body: &Value,
        wait: Wait,
    ) -> Result<Auth0User, Auth0Error> {
        let value = self
            .call(Method::PATCH, &self.user_url(user_id), Some(body), wait)
            .await?;
        serde_json::from_value(value)
            .map_err(|e| Auth0Error::Unavailable(format!("unexpected user body: {e}")))
    }

    /// `DELETE /api/v2/users/{id}`. Auth0 answers 204 also for a user
    /// already gone; a 404 counts as done too.
    #[tracing::instrument(skip(self), err(level = "warn"))]
    pub async fn delete_user(&self, user_id: &str, wait: Wait) -> Result<(), Auth0Error> {
        match self
            .call(Method::DELETE, &self.user_url(user_id), None, wait)
            .await
        {
            Ok(_) | Err(Auth0Error::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        wait: Wait,
    ) -> Result<Value, Auth0Error> {
        let mut last = String::new();
        for attempt in 1..=MAX_ATTEMPTS {
            let outcome = self.attempt(method.clone(), url, body, wait).await;
            let retry_at = match outcome {
                Attempt::Done(result) => return result,
                Attempt::Retry(why) => {
                    last = why;
                    // 200 ms, 400 ms, 800 ms, with jitter so that callers spread out.
                    let base = 200u64 << (attempt - 1);
                    Instant::now() + Duration::from_millis(base + rand::random::<u64>() % base)
                }
                Attempt::RetryAfter(until, why) => {
                    last = why;
                    until
                }
            };
            if wait != Wait::Yes || attempt == MAX_ATTEMPTS {
                break;
            }
            tokio::time::sleep(retry_at.saturating_duration_since(Instant::now())).await;
        }
        Err(Auth0Error::Unavailable(last))
    }

    async fn attempt(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        wait: Wait,
    ) -> Attempt {
        let token = match self.access_token().await {
            Ok(token) => token,
            Err(why) => return Attempt::Retry(why),
        };
        // Spend from the budget only now, right before sending: time spent
        // between taking a token and sending (fetching the access token, say)
        // would bunch requests up by the time they reach Auth0.
        match wait {
            Wait::Yes => {
                self.budget.acquire().await;
            }
            Wait::No => {
                if !self.budget.try_acquire().await {
                    crate::telemetry::record_budget_spent();
                    return Attempt::Done(Err(Auth0Error::BudgetSpent));
                }
            }
            Wait::Once(deadline) => {
                if self.budget.acquire_until(Some(deadline)).await.is_none() {
                    crate::telemetry::record_budget_spent();
                    return Attempt::Done(Err(Auth0Error::BudgetSpent));
                }
            }
            Wait::Spent => {}
        }
        let mut request = self.http.request(method.clone(), url).bearer_auth(&token);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let response = request.send().await;
        crate::telemetry::record_mgmt_request(method.as_str(), url, &response);
        let response = match response {
            Ok(response) => response,
            Err(e) => return Attempt::Retry(transport_error(&e)),
        };
        let status = response.status();
        let reset = reset_wait(response.headers());
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match status {
            s if s.is_success() => Attempt::Done(Ok(body)),
            StatusCode::NOT_FOUND => Attempt::Done(Err(Auth0Error::NotFound)),
            StatusCode::UNAUTHORIZED => {
                // The token was revoked or expired early: fetch a new one next time.
                *self.token.lock().await = None;
                Attempt::Retry("the Management API token was refused".into())
            }
            StatusCode::TOO_MANY_REQUESTS => {
                let wait = reset.unwrap_or(Duration::from_secs(1));
                let until = Instant::now() + wait;
                self.budget.pause_for(wait).await;
                tracing::warn!("Auth0 answered 429 despite the budget; pausing until its reset");
                Attempt::RetryAfter(until, "rate limited by Auth0".into())
            }
            s if s.is_client_error() => {
                Attempt::Done(Err(Auth0Error::Refused(error_message(&body, s))))
            }
            s => Attempt::Retry(format!("Auth0 answered {}", s.as_u16())),
        }
    }

    /// Fetches the Management API token ahead of the first call, so the first
    /// requests of a fresh process do not queue behind it.
    pub async fn warm_up(&self) {
        if let Err(why) = self.access_token().await {
            tracing::warn!(reason = why, "cannot get a Management API token yet");
        }
    }

    /// The client-credentials token, fetched once for all concurrent callers
    /// and kept until a minute before it expires.
    async fn access_token(&self) -> Result<String, String> {
        let mut cached = self.token.lock().await;
        if let Some((token, expires)) = cached.as_ref()
            && Instant::now() < *expires
        {
            return Ok(token.clone());
        }
        let url = format!("{}/oauth/token", self.base_url);
        let response = self
            .http
            .post(&url)
            .json(&json!({
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret.expose(),
                "audience": format!("{}/api/v2/", self.base_url),
            }))
            .send()
            .await;
        crate::telemetry::record_mgmt_request("POST", &url, &response);
        let response = response
            .map_err(|e| format!("cannot get a Management API token: {}", transport_error(&e)))?;
        let status = response.status();
        if !status.is_success() {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let reason = body["error_description"]
                .as_str()
                .or(body["error"].as_str())
                .unwrap_or("");
            tracing::error!(
                status = status.as_u16(),
                reason,
                "Auth0 refused the client credentials"
            );
            return Err(format!(
                "cannot get a Management API token: Auth0 answered {}",
                status.as_u16()
            ));
        }
        let token: TokenResponse = response
            .json()
            .await
            .map_err(|e| format!("unexpected token body: {e}"))?;
        let lifetime = Duration::from_secs(token.expires_in);
        let margin = Duration::from_secs(60).min(lifetime / 10);
        *cached = Some((
            token.access_token.clone(),
            Instant::now() + lifetime - margin,
        ));
        Ok(token.access_token)
    }
}

fn transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        "connection failed".into()
    }
}

/// Auth0's error bodies: `{"statusCode":400,"error":"Bad Request","message":"…","errorCode":"…"}`.
fn error_message(body: &Value, status: StatusCode) -> String {
    body["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("status {}", status.as_u16()))
}

/// How long until `x-ratelimit-reset`, which is in UNIX seconds.
fn reset_wait(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let reset: u64 = headers
        .get("x-ratelimit-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    let wait = (reset as f64 - now).clamp(0.0, MAX_RESET_WAIT.as_secs_f64());
    Some(Duration::from_secs_f64(wait))
}

fn url_encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() * 3);
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_percent_encoded() {
        assert_eq!(url_encode("google-oauth2|123"), "google-oauth2%7C123");
        assert_eq!(url_encode("auth0|a b/c"), "auth0%7Ca%20b%2Fc");
    }

    #[test]
    fn error_bodies_give_their_message() {
        let body = json!({"statusCode": 400, "error": "Bad Request", "message": "Payload validation error", "errorCode": "invalid_body"});
        assert_eq!(
            error_message(&body, StatusCode::BAD_REQUEST),
            "Payload validation error"
        );
        assert_eq!(
            error_message(&Value::Null, StatusCode::CONFLICT),
            "status 409"
        );
    }
}
