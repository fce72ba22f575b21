//! A faithful fake of the parts of Auth0 the gateway talks to, served over
//! real HTTP on `127.0.0.1:0`:
//!
//! - `GET /.well-known/jwks.json`, the signing keys (with rotation);
//! - `POST /oauth/token`, the client credentials grant for the Management API;
//! - `GET`, `PATCH` and `DELETE /api/v2/users/{id}`, with Auth0's field
//!   selection, its metadata merge rules, its validation errors, and a new
//!   `updated_at` on every change of a profile;
//! - Event Streams and Log Streams: every change of a profile is recorded
//!   as a CloudEvent (`user.created`, `user.updated`, `user.deleted`, see
//!   [`FakeAuth0::events`]) and as a log entry (`sapi`, `sdu`, and `s` for
//!   [`FakeAuth0::log_login`], see [`FakeAuth0::log_entries`]), which a test
//!   delivers to the gateway with [`FakeAuth0::deliver`], in any order and
//!   as often as it likes, as Auth0 may;
//! - Auth0's failures: 401 for missing or unknown tokens, a global token
//!   bucket answering 429 with the `x-ratelimit-*` headers, injected 5xx
//!   answers, latency, and connections closed without an answer.
//!
//! Choices where Auth0's behaviour is not pinned down by the brief:
//!
//! - Order of the checks on `/api/v2`: latency, then injected failures
//!   ([`FakeAuth0::fail_next`], which use no rate budget), then the token
//!   (a 401 uses no rate budget either), then the rate limit, then the route.
//!   Every request that reaches the route (200, 400, 404, 405) uses one token
//!   of the bucket and carries the rate limit headers.
//! - On answers that were served, `x-ratelimit-reset` is when the bucket will
//!   be full again; on a 429 it is when the next token is available. Both are
//!   UNIX seconds rounded up.
//! - `PATCH` accepts `user_metadata`, `app_metadata`, the root profile
//!   attributes Auth0 lets one change (`blocked`, `email`, `email_verified`,
//!   `family_name`, `given_name`, `name`, `nickname`, `phone_number`,
//!   `phone_verified`, `picture`, `username`: stored as given, after a type
//!   check) and Auth0's control fields (`connection`, `client_id`, `password`,
//!   `verify_email`, `verify_phone_number`, `verify_password`: accepted and
//!   ignored). Any other property is refused with 400, as Auth0 does
//!   ("Additional properties not allowed"), so a misspelt field shows up.
//! - Management API access tokens are RS256 JWTs like Auth0's (`sub` is
//!   `{client_id}@clients`, `gty` is `client-credentials`), but what makes one
//!   valid is that this fake issued it and it has not expired.
//! - [`FakeAuth0::drop_next`] works per request rather than per TCP
//!   connection: the next `n` requests, on a new connection or on a pooled
//!   keep-alive one, find their connection closed without any answer. A drop
//!   at accept time only would never reach a client (reqwest) that reuses its
//!   connections.
//! - `calls.token` and `calls.jwks` count every request to those endpoints,
//!   refused ones included.

use std::{
    collections::{BTreeMap, HashMap},
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU32, AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{FromRequest, Path, Query, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::{
    RsaPrivateKey,
    pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding},
    traits::PublicKeyParts,
};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};

/// Scopes granted to every Management API token.
pub const MANAGEMENT_SCOPES: &str =
    "read:users update:users update:users_app_metadata delete:users";

/// Lifetime of the end-user tokens made by [`FakeAuth0::mint`], in seconds.
pub const USER_TOKEN_TTL_SECS: i64 = 3600;

/// Most bytes `user_metadata` and `app_metadata` may take together, serialized.
pub const METADATA_LIMIT_BYTES: usize = 16 * 1024;

/// Names `app_metadata` may not use at its top level.
pub const RESERVED_APP_METADATA_NAMES: &[&str] = &[
    "__tenant",
    "_id",
    "blocked",
    "clientID",
    "created_at",
    "email_verified",
    "email",
    "globalClientID",
    "global_client_id",
    "identities",
    "lastIP",
    "lastLogin",
    "loginsCount",
    "metadata",
    "multifactor_last_modified",
    "multifactor",
    "updated_at",
    "user_id",
];

/// Root profile attributes `PATCH` stores, with the JSON type each must have.
const PATCHABLE_ROOT_ATTRIBUTES: &[(&str, &str)] = &[
    ("blocked", "boolean"),
    ("email", "string"),
    ("email_verified", "boolean"),
    ("family_name", "string"),
    ("given_name", "string"),
    ("name", "string"),
    ("nickname", "string"),
    ("phone_number", "string"),
    ("phone_verified", "boolean"),
    ("picture", "string"),
    ("username", "string"),
];

/// Control fields `PATCH` accepts and ignores.
const IGNORED_PATCH_FIELDS: &[&str] = &[
    "client_id",
    "connection",
    "password",
    "verify_email",
    "verify_password",
    "verify_phone_number",
];

/// How many RSA keys are generated once per test process and shared.
const KEY_POOL_SIZE: usize = 3;

/// How a fake tenant is configured.
#[derive(Clone, Debug)]
pub struct FakeAuth0Options {
    /// Audience of the end users' access tokens (the gateway's API identifier).
    pub audience: String,
    /// The only client allowed to use the client credentials grant.
    pub client_id: String,
    /// That client's secret.
    pub client_secret: String,
    /// Refill rate of the Management API token bucket, in requests a second.
    pub rate_per_second: f64,
    /// Size of the Management API token bucket (`x-ratelimit-limit`).
    pub burst: u32,
    /// `expires_in` of the Management API tokens, in seconds.
    pub token_expires_in: u64,
}

impl Default for FakeAuth0Options {
    /// Auth0's free tier: 2 requests a second, tokens valid for a day.
    fn default() -> Self {
        Self {
            audience: "https://music-gateway.test/api".into(),
            client_id: "test-client".into(),
            client_secret: "test-secret".into(),
            rate_per_second: 2.0,
            burst: 2,
            token_expires_in: 86400,
        }
    }
}

/// How many requests the fake answered, by kind. See [`FakeAuth0::calls`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Calls {
    /// Requests to `POST /oauth/token`, refused ones included.
    pub token: u64,
    /// Requests to `GET /.well-known/jwks.json`.
    pub jwks: u64,
    /// `GET /api/v2/users/{id}` requests that were served (200, 400 or 404).
    pub get_user: u64,
    /// `PATCH /api/v2/users/{id}` requests that were served (200, 400 or 404).
    pub patch_user: u64,
    /// `DELETE /api/v2/users/{id}` requests that were served (204 or 404).
    pub delete_user: u64,
    /// `/api/v2` requests answered 429 by the rate limit.
    pub rate_limited: u64,
    /// `/api/v2` requests answered 401 (missing, unknown or expired token).
    pub unauthorized: u64,
    /// Requests answered with a failure injected by [`FakeAuth0::fail_next`]
    /// or [`FakeAuth0::fail_next_token`].
    pub failed: u64,
    /// Requests whose connection was closed by [`FakeAuth0::drop_next`].
    pub dropped: u64,
}

impl Calls {
    /// Management API requests that were served: `get_user + patch_user +
    /// delete_user` (429s are in `rate_limited`, not here).
    pub fn management(&self) -> u64 {
        self.get_user + self.patch_user + self.delete_user
    }
}

/// A fake Auth0 tenant running on a tokio task of the current runtime. Cheap to
/// clone: clones share the same tenant.
#[derive(Clone)]
pub struct FakeAuth0 {
    inner: Arc<Inner>,
}

impl FakeAuth0 {
    /// Starts a tenant with [`FakeAuth0Options::default`].
    pub async fn start() -> FakeAuth0 {
        Self::start_with(FakeAuth0Options::default()).await
    }

    /// Starts a tenant on `127.0.0.1:0`; it serves until the runtime ends.
    pub async fn start_with(options: FakeAuth0Options) -> FakeAuth0 {
        tokio::task::spawn_blocking(key_pool)
            .await
            .expect("key pool generation");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let first = NEXT_POOL_KEY.fetch_add(1, Ordering::Relaxed) % KEY_POOL_SIZE;
        let inner = Arc::new(Inner {
            base_url: format!("http://{addr}"),
            options: options.clone(),
            keys: Mutex::new(KeyRing {
                published: vec![SigningKey::from_pem(&key_pool()[first])],
                last_pool_index: first,
            }),
            users: Mutex::new(BTreeMap::new()),
            tokens: Mutex::new(HashMap::new()),
            latency: Mutex::new(Duration::ZERO),
            faults: Mutex::new(Faults::default()),
            drops: AtomicU32::new(0),
            bucket: Mutex::new(Bucket::new(options.rate_per_second, options.burst)),
            calls: Mutex::new(Calls::default()),
            log: Mutex::new(Vec::new()),
            missing_delete_status: Mutex::new(StatusCode::NO_CONTENT),
            stream: Mutex::new(Stream::default()),
        });
        let api = Router::new()
            .route(
                "/users/{id}",
                get(get_user).patch(patch_user).delete(delete_user),
            )
            .fallback(api_not_found)
            .layer(middleware::from_fn_with_state(inner.clone(), api_gate));
        let router = Router::new()
            .route("/.well-known/jwks.json", get(jwks))
            .route("/oauth/token", post(token))
            .nest("/api/v2", api)
            .with_state(inner.clone());
        let listener = DroppingListener {
            listener,
            inner: inner.clone(),
        };
        tokio::spawn(async move {
            axum::serve(listener, router)
                .await
                .expect("fake Auth0 server");
        });
        FakeAuth0 { inner }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }

    /// The `iss` of the tokens: the base URL with Auth0's trailing slash.
    pub fn issuer(&self) -> String {
        format!("{}/", self.inner.base_url)
    }

    /// The audience of the end users' tokens.
    pub fn audience(&self) -> String {
        self.inner.options.audience.clone()
    }

    /// The audience to ask `/oauth/token` for: `{base_url}/api/v2/`.
    pub fn management_audience(&self) -> String {
        self.inner.management_audience()
    }

    /// The client allowed to use the client credentials grant.
    pub fn client_id(&self) -> String {
        self.inner.options.client_id.clone()
    }

    /// That client's secret.
    pub fn client_secret(&self) -> String {
        self.inner.options.client_secret.clone()
    }

    /// The JWKS URL, `{base_url}/.well-known/jwks.json`.
    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.inner.base_url)
    }

    /// The `kid` of the key signing from now on.
    pub fn current_kid(&self) -> String {
        self.inner.keys.lock().unwrap().current().kid.clone()
    }

    /// An end user's access token, valid for [`USER_TOKEN_TTL_SECS`]: RS256,
    /// header `kid` of the current key, claims `iss`, `aud`, `sub`, `iat`,
    /// `exp`, then the members of `extra` (an object, or null), which win over
    /// the standard claims so a test can forge a wrong `aud` or `iss`.
    pub fn mint(&self, sub: &str, extra: Value) -> String {
        self.mint_with_ttl(sub, USER_TOKEN_TTL_SECS, extra)
    }

    /// An access token as the shipped post-login Action makes it: the
    /// stored profile's `updated_at` under `claim`, then the members of
    /// `extra`. Panics when the user is unknown.
    pub fn mint_after_login(&self, sub: &str, claim: &str, extra: Value) -> String {
        let updated_at = self.user(sub).expect("a stored user")["updated_at"].clone();
        let mut claims = Map::new();
        claims.insert(claim.into(), updated_at);
        if let Value::Object(extra) = extra {
            claims.extend(extra);
        }
        self.mint(sub, Value::Object(claims))
    }

    /// Like [`FakeAuth0::mint`], expiring `ttl_secs` from now (negative: already expired).
    pub fn mint_with_ttl(&self, sub: &str, ttl_secs: i64, extra: Value) -> String {
        let now = unix_now() as i64;
        let mut claims = Map::new();
        claims.insert("iss".into(), self.issuer().into());
        claims.insert("aud".into(), self.audience().into());
        claims.insert("sub".into(), sub.into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + ttl_secs).into());
        match extra {
            Value::Object(extra) => claims.extend(extra),
            Value::Null => {}
            other => panic!("mint: extra claims must be an object, not {other}"),
        }
        self.inner.sign(&claims)
    }

    /// Adds a new key to the JWKS and signs with it from now on; the previous
    /// keys stay published. Keys come from a pool shared by the process; past
    /// the pool a fresh key is generated (slow, about a second).
    pub fn rotate_key(&self) {
        let mut ring = self.inner.keys.lock().unwrap();
        let pool = key_pool();
        let next = (1..=KEY_POOL_SIZE)
            .map(|step| (ring.last_pool_index + step) % KEY_POOL_SIZE)
            .map(|index| (index, SigningKey::from_pem(&pool[index])))
            .find(|(_, key)| ring.published.iter().all(|k| k.kid != key.kid));
        let key = match next {
            Some((index, key)) => {
                ring.last_pool_index = index;
                key
            }
            None => SigningKey::from_pem(&generate_pem()),
        };
        ring.published.push(key);
    }

    /// Removes every key but the current one from the JWKS.
    pub fn retire_old_keys(&self) {
        let mut ring = self.inner.keys.lock().unwrap();
        let current = ring.published.pop().expect("a current key");
        ring.published = vec![current];
    }

    /// Stores (or replaces) a user. It must have a string `user_id`; missing
    /// `user_metadata` and `app_metadata` become `{}`, missing `created_at`
    /// and `updated_at` become now (ISO 8601, as Auth0 writes them).
    pub fn put_user(&self, user: Value) {
        let Value::Object(mut user) = user else {
            panic!("put_user: a user is a JSON object");
        };
        let id = user
            .get("user_id")
            .and_then(Value::as_str)
            .expect("put_user: the user needs a string user_id")
            .to_owned();
        let now = iso_now();
        let existed = self.inner.users.lock().unwrap().contains_key(&id);
        for (field, default) in [
            ("user_metadata", json!({})),
            ("app_metadata", json!({})),
            ("created_at", json!(now)),
            ("updated_at", json!(now)),
        ] {
            user.entry(field).or_insert(default);
        }
        let user = Value::Object(user);
        let kind = if existed {
            "user.updated"
        } else {
            "user.created"
        };
        self.inner.record_event(kind, &user);
        self.inner.record_log("sapi", &id, None);
        self.inner.users.lock().unwrap().insert(id, user);
    }

    /// Every Event Streams CloudEvent so far, oldest first: one per change
    /// of a profile (`put_user`, `PATCH`, `DELETE`, `remove_user`).
    pub fn events(&self) -> Vec<Value> {
        self.inner.stream.lock().unwrap().events.clone()
    }

    /// Every Log Streams entry so far, oldest first: `sapi` for a write
    /// through the Management API (`client_id` set when it came through one
    /// of this tenant's tokens), `sdu` for a deletion, `s` for
    /// [`FakeAuth0::log_login`].
    pub fn log_entries(&self) -> Vec<Value> {
        self.inner.stream.lock().unwrap().logs.clone()
    }

    /// Records a successful login (`s`) of `user_id` in the log.
    pub fn log_login(&self, user_id: &str) {
        self.inner.record_log("s", user_id, None);
    }

    /// Posts `body` (a delivery: one event, or an array) to `url` with
    /// `Authorization: Bearer {token}`, as a stream's webhook does; answers
    /// the status.
    pub async fn deliver(&self, url: &str, token: &str, body: &Value) -> u16 {
        reqwest::Client::new()
            .post(url)
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("webhook delivery")
            .status()
            .as_u16()
    }

    /// Removes a user, as a deletion in the Auth0 Dashboard does; answers
    /// whether it existed.
    pub fn remove_user(&self, id: &str) -> bool {
        let removed = self.inner.users.lock().unwrap().remove(id);
        if let Some(user) = &removed {
            self.inner.record_event("user.deleted", user);
            self.inner.record_log("sdu", id, None);
        }
        removed.is_some()
    }

    /// What `DELETE /api/v2/users/{id}` answers for a user already gone:
    /// 204 (the default, what Auth0 answers) or 404.
    pub fn set_missing_delete_status(&self, status: u16) {
        *self.inner.missing_delete_status.lock().unwrap() =
            StatusCode::from_u16(status).expect("an HTTP status");
    }

    /// The stored user, as `GET /api/v2/users/{id}` would answer it.
    pub fn user(&self, id: &str) -> Option<Value> {
        self.inner.users.lock().unwrap().get(id).cloned()
    }

    /// Delay applied to every `/api/v2` and `/oauth/token` request before
    /// anything else (zero to remove it).
    pub fn set_latency(&self, d: Duration) {
        *self.inner.latency.lock().unwrap() = d;
    }

    /// The next `n` `/api/v2` requests answer `status` (e.g. 500, 503) with an
    /// Auth0-shaped error body, before the token and rate checks: they use no
    /// rate budget. A 429 comes with the rate limit headers.
    pub fn fail_next(&self, n: u32, status: u16) {
        self.inner.faults.lock().unwrap().api = (n, status);
    }

    /// Every `PATCH` of `user_id` answers `status` (e.g. 503) with an
    /// Auth0-shaped error body, after the rate check, until called again
    /// with `None`.
    pub fn fail_patches_of(&self, user_id: &str, status: Option<u16>) {
        let mut faults = self.inner.faults.lock().unwrap();
        match status {
            Some(status) => faults.users.insert(user_id.to_owned(), status),
            None => faults.users.remove(user_id),
        };
    }

    /// The next `n` `/oauth/token` requests answer `status` with an
    /// OAuth-shaped error body (`{"error":..,"error_description":..}`).
    pub fn fail_next_token(&self, n: u32, status: u16) {
        self.inner.faults.lock().unwrap().token = (n, status);
    }

    /// The next `n` requests, to any endpoint, on new or pooled connections,
    /// find their connection closed without any response.
    pub fn drop_next(&self, n: u32) {
        self.inner.drops.store(n, Ordering::SeqCst);
    }

    /// Changes the Management API token bucket and fills it to `burst`.
    pub fn set_rate(&self, rate_per_second: f64, burst: u32) {
        *self.inner.bucket.lock().unwrap() = Bucket::new(rate_per_second, burst);
    }

    /// Forgets every Management API token issued so far: the next `/api/v2`
    /// requests with one answer 401, as when a token expires or is revoked.
    pub fn revoke_tokens(&self) {
        self.inner.tokens.lock().unwrap().clear();
    }

    /// Every GET, PATCH and DELETE of a user that was served (not refused with 429
    /// or 401), in arrival order.
    pub fn served(&self) -> Vec<Served> {
        self.inner.log.lock().unwrap().clone()
    }

    /// A snapshot of the counters.
    pub fn calls(&self) -> Calls {
        self.inner.calls.lock().unwrap().clone()
    }
}

/// Start index into the key pool of the next fake, so fakes vary their keys.
static NEXT_POOL_KEY: AtomicUsize = AtomicUsize::new(0);

/// PKCS#8 PEMs of RSA 2048 keys, generated (in parallel) once per process.
fn key_pool() -> &'static Vec<String> {
    static POOL: OnceLock<Vec<String>> = OnceLock::new();
    POOL.get_or_init(|| {
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..KEY_POOL_SIZE)
                .map(|_| scope.spawn(generate_pem))
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("key generation"))
                .collect()
        })
    })
}

/// A new RSA 2048 key as a PKCS#8 PEM.
fn generate_pem() -> String {
    let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("RSA key generation");
    key.to_pkcs8_pem(LineEnding::LF)
        .expect("PEM encoding")
        .to_string()
}

/// A key usable for signing, with its public JWK.
struct SigningKey {
    kid: String,
    jwk: Value,
    encoding: EncodingKey,
}

impl SigningKey {
    fn from_pem(pem: &str) -> Self {
        let key = RsaPrivateKey::from_pkcs8_pem(pem).expect("PKCS#8 RSA key");
        let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
        let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(n.as_bytes())[..15]);
        Self {
            jwk: json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e}),
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).expect("RSA PEM"),
            kid,
        }
    }
}

/// The published keys; the last one signs.
struct KeyRing {
    published: Vec<SigningKey>,
    last_pool_index: usize,
}

impl KeyRing {
    fn current(&self) -> &SigningKey {
        self.published.last().expect("a current key")
    }
}

/// Pending injected failures: (how many, which status).
#[derive(Default)]
struct Faults {
    api: (u32, u16),
    token: (u32, u16),
    /// Users whose PATCHes answer this status, as when Auth0 has trouble
    /// with one user's profile (see [`FakeAuth0::fail_patches_of`]).
    users: HashMap<String, u16>,
}

/// A token bucket.
struct Bucket {
    rate: f64,
    burst: u32,
    tokens: f64,
    refilled: Instant,
}

/// What the bucket says about a request.
struct RateVerdict {
    allowed: bool,
    limit: u32,
    remaining: u32,
    reset: u64,
}

impl Bucket {
    fn new(rate: f64, burst: u32) -> Self {
        assert!(rate > 0.0, "the rate must be positive");
        Self {
            rate,
            burst,
            tokens: f64::from(burst),
            refilled: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    fn take(&mut self) -> RateVerdict {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(f64::from(self.burst));
        self.refilled = now;
        let allowed = self.tokens >= 1.0;
        // Seconds until the next token (refused) or until full (allowed).
        let wait = if allowed {
            self.tokens -= 1.0;
            (f64::from(self.burst) - self.tokens) / self.rate
        } else {
            (1.0 - self.tokens) / self.rate
        };
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs_f64();
        RateVerdict {
            allowed,
            limit: self.burst,
            remaining: self.tokens.floor() as u32,
            reset: (now_unix + wait).ceil() as u64,
        }
    }
}

/// The tenant's state, shared by the handlers and the [`FakeAuth0`] handles.
struct Inner {
    base_url: String,
    options: FakeAuth0Options,
    keys: Mutex<KeyRing>,
    users: Mutex<BTreeMap<String, Value>>,
    /// Issued Management API tokens and their `exp` (UNIX seconds).
    tokens: Mutex<HashMap<String, u64>>,
    latency: Mutex<Duration>,
    faults: Mutex<Faults>,
    drops: AtomicU32,
    bucket: Mutex<Bucket>,
    calls: Mutex<Calls>,
    /// Every served request to a user, in arrival order.
    log: Mutex<Vec<Served>>,
    /// What `DELETE` answers for a user that does not exist.
    missing_delete_status: Mutex<StatusCode>,
    /// What Event Streams and Log Streams would have delivered.
    stream: Mutex<Stream>,
}

/// The deliveries of the tenant's streams, in the order of the changes.
#[derive(Default)]
struct Stream {
    events: Vec<Value>,
    logs: Vec<Value>,
}

/// A served `GET`, `PATCH` or `DELETE` of `/api/v2/users/{id}`, as
/// [`FakeAuth0::served`] lists them.
#[derive(Clone, Debug, PartialEq)]
pub struct Served {
    /// `GET`, `PATCH` or `DELETE`.
    pub method: &'static str,
    /// The user id from the path, decoded.
    pub user_id: String,
    /// The PATCH body (`Null` for a GET).
    pub body: Value,
}

impl Inner {
    /// Records the CloudEvent Event Streams would deliver for `user`.
    fn record_event(&self, kind: &str, user: &Value) {
        let event = json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "source": format!("urn:auth0:{}", self.base_url),
            "specversion": "1.0",
            "type": kind,
            "time": iso_now(),
            "data": {"object": user},
        });
        self.stream.lock().unwrap().events.push(event);
    }

    /// Records the entry Log Streams would deliver; `client_id` is the
    /// Management API client that made the change, if any.
    fn record_log(&self, kind: &str, user_id: &str, client_id: Option<&str>) {
        let encoded: String = user_id
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let mut data = json!({
            "type": kind,
            "date": iso_now(),
            "user_id": user_id,
            "details": {"request": {"method": "patch", "path": format!("/api/v2/users/{encoded}")}},
        });
        if let Some(client_id) = client_id {
            data["client_id"] = client_id.into();
        }
        let entry = json!({"log_id": uuid::Uuid::new_v4().simple().to_string(), "data": data});
        self.stream.lock().unwrap().logs.push(entry);
    }

    fn management_audience(&self) -> String {
        format!("{}/api/v2/", self.base_url)
    }

    fn sign(&self, claims: &Map<String, Value>) -> String {
        let ring = self.keys.lock().unwrap();
        let key = ring.current();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).expect("JWT signing")
    }

    fn count(&self, f: impl FnOnce(&mut Calls)) {
        f(&mut self.calls.lock().unwrap());
    }

    async fn delay(&self) {
        let latency = *self.latency.lock().unwrap();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }

    /// Takes one pending failure from `pick(faults)`, if any.
    fn take_fault(&self, pick: impl FnOnce(&mut Faults) -> &mut (u32, u16)) -> Option<u16> {
        let mut faults = self.faults.lock().unwrap();
        let (left, status) = pick(&mut faults);
        if *left == 0 {
            return None;
        }
        *left -= 1;
        Some(*status)
    }

    /// Takes one pending connection drop, if any.
    fn take_drop(&self) -> bool {
        let taken = self
            .drops
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if taken {
            self.count(|c| c.dropped += 1);
        }
        taken
    }

    fn is_valid_token(&self, headers: &HeaderMap) -> bool {
        let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
        else {
            return false;
        };
        self.tokens
            .lock()
            .unwrap()
            .get(token)
            .is_some_and(|&exp| exp > unix_now())
    }
}

// ---------------------------------------------------------------------------
// Connections: a listener whose connections can be closed without an answer.

/// `axum::serve`'s listener: tokio's, with connections wrapped in [`DroppableIo`].
struct DroppingListener {
    listener: TcpListener,
    inner: Arc<Inner>,
}

impl axum::serve::Listener for DroppingListener {
    type Io = DroppableIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    let io = DroppableIo {
                        stream,
                        inner: self.inner.clone(),
                        at_request_start: true,
                        closed: false,
                    };
                    return (io, addr);
                }
                // Connection errors (reset before accept) are the client's business.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// A TCP connection that, when the first bytes of a request arrive while a
/// drop is pending, throws them away and reports end of stream: the server
/// then closes the connection without answering.
struct DroppableIo {
    stream: TcpStream,
    inner: Arc<Inner>,
    /// No bytes read since the last response bytes were written (or ever):
    /// the next bytes read start a request.
    at_request_start: bool,
    closed: bool,
}

impl AsyncRead for DroppableIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.stream).poll_read(cx, buf))?;
        if buf.filled().len() > before && self.at_request_start {
            if self.inner.take_drop() {
                buf.set_filled(before);
                self.closed = true;
            } else {
                self.at_request_start = false;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for DroppableIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.stream).poll_write(cx, data))?;
        self.at_request_start = true;
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.stream).poll_write_vectored(cx, bufs))?;
        self.at_request_start = true;
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

// ---------------------------------------------------------------------------
// Handlers.

type Shared = State<Arc<Inner>>;

async fn jwks(State(inner): Shared) -> Response {
    inner.count(|c| c.jwks += 1);
    let ring = inner.keys.lock().unwrap();
    let keys: Vec<Value> = ring.published.iter().map(|k| k.jwk.clone()).collect();
    Json(json!({ "keys": keys })).into_response()
}

/// An OAuth error answer of the authentication API.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn token(State(inner): Shared, request: Request) -> Response {
    inner.count(|c| c.token += 1);
    inner.delay().await;
    if let Some(status) = inner.take_fault(|f| &mut f.token) {
        inner.count(|c| c.failed += 1);
        let status = StatusCode::from_u16(status).expect("an HTTP status");
        return oauth_error(
            status,
            "server_error",
            status.canonical_reason().unwrap_or("Injected failure"),
        );
    }
    let basic = basic_credentials(request.headers());
    let mut params = match token_parameters(request).await {
        Ok(params) => params,
        Err(description) => {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &description);
        }
    };
    if let Some((id, secret)) = basic {
        params.entry("client_id".into()).or_insert(id);
        params.entry("client_secret".into()).or_insert(secret);
    }
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or("");
    if param("client_id") != inner.options.client_id
        || param("client_secret") != inner.options.client_secret
    {
        return oauth_error(StatusCode::UNAUTHORIZED, "access_denied", "Unauthorized");
    }
    if param("grant_type") != "client_credentials" {
        return oauth_error(
            StatusCode::FORBIDDEN,
            "unsupported_grant_type",
            &format!("Unsupported grant type: {}", param("grant_type")),
        );
    }
    let audience = param("audience");
    if audience == inner.options.audience {
        return oauth_error(
            StatusCode::FORBIDDEN,
            "access_denied",
            &format!(
                "Client is not authorized to access \"{audience}\". You need to create a \
                 \"client-grant\" associated to this API."
            ),
        );
    }
    if audience != inner.management_audience() {
        return oauth_error(
            StatusCode::FORBIDDEN,
            "access_denied",
            &format!("Service not found: {audience}"),
        );
    }
    let now = unix_now();
    let exp = now + inner.options.token_expires_in;
    let mut claims = Map::new();
    claims.insert("iss".into(), format!("{}/", inner.base_url).into());
    claims.insert(
        "sub".into(),
        format!("{}@clients", inner.options.client_id).into(),
    );
    claims.insert("aud".into(), inner.management_audience().into());
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), exp.into());
    claims.insert("jti".into(), uuid::Uuid::new_v4().to_string().into());
    claims.insert("scope".into(), MANAGEMENT_SCOPES.into());
    claims.insert("gty".into(), "client-credentials".into());
    claims.insert("azp".into(), inner.options.client_id.clone().into());
    let access_token = inner.sign(&claims);
    inner
        .tokens
        .lock()
        .unwrap()
        .insert(access_token.clone(), exp);
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "access_token": access_token,
            "expires_in": inner.options.token_expires_in,
            "token_type": "Bearer",
            "scope": MANAGEMENT_SCOPES,
        })),
    )
        .into_response()
}

/// `client_id` and `client_secret` from HTTP Basic authentication, which
/// Auth0 accepts as well as body parameters.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// The token request's parameters, from a form or a JSON body.
async fn token_parameters(request: Request) -> Result<HashMap<String, String>, String> {
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        let axum::Form(params) = axum::Form::<HashMap<String, String>>::from_request(request, &())
            .await
            .map_err(|e| e.body_text())?;
        return Ok(params);
    }
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .map_err(|e| e.to_string())?;
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(&body) else {
        return Err("Invalid request body: a JSON object or a form was expected".into());
    };
    Ok(object
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            _ => None,
        })
        .collect())
}

/// A Management API error answer.
fn api_error(status: StatusCode, message: &str, error_code: Option<&str>) -> Response {
    let mut body = json!({
        "statusCode": status.as_u16(),
        "error": status.canonical_reason().unwrap_or("Error"),
        "message": message,
    });
    if let Some(code) = error_code {
        body["errorCode"] = code.into();
    }
    (status, Json(body)).into_response()
}

fn bad_request(message: String) -> Response {
    api_error(StatusCode::BAD_REQUEST, &message, Some("invalid_body"))
}

fn user_not_found() -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        "The user does not exist.",
        Some("inexistent_user"),
    )
}

fn set_rate_headers(response: &mut Response, verdict: &RateVerdict) {
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", verdict.limit.into()),
        ("x-ratelimit-remaining", verdict.remaining.into()),
        ("x-ratelimit-reset", verdict.reset),
    ] {
        headers.insert(name, HeaderValue::from(value));
    }
}

fn too_many_requests() -> Response {
    api_error(
        StatusCode::TOO_MANY_REQUESTS,
        "Global limit has been reached",
        Some("too_many_requests"),
    )
}

/// Everything `/api/v2` does before the route: latency, injected failures,
/// the token, the rate limit; and the rate limit headers after.
async fn api_gate(State(inner): Shared, request: Request, next: Next) -> Response {
    inner.delay().await;
    if let Some(status) = inner.take_fault(|f| &mut f.api) {
        inner.count(|c| c.failed += 1);
        let status = StatusCode::from_u16(status).expect("an HTTP status");
        if status == StatusCode::TOO_MANY_REQUESTS {
            let bucket = inner.bucket.lock().unwrap();
            let mut response = too_many_requests();
            let verdict = RateVerdict {
                allowed: false,
                limit: bucket.burst,
                remaining: 0,
                reset: unix_now() + 1,
            };
            set_rate_headers(&mut response, &verdict);
            return response;
        }
        let reason = status.canonical_reason().unwrap_or("Error");
        return api_error(status, reason, None);
    }
    if !inner.is_valid_token(request.headers()) {
        inner.count(|c| c.unauthorized += 1);
        return api_error(
            StatusCode::UNAUTHORIZED,
            "Invalid token",
            Some("invalid_token"),
        );
    }
    let verdict = inner.bucket.lock().unwrap().take();
    if !verdict.allowed {
        inner.count(|c| c.rate_limited += 1);
        let mut response = too_many_requests();
        set_rate_headers(&mut response, &verdict);
        return response;
    }
    let mut response = next.run(request).await;
    set_rate_headers(&mut response, &verdict);
    response
}

async fn api_not_found() -> Response {
    api_error(StatusCode::NOT_FOUND, "Not Found", None)
}

async fn get_user(
    State(inner): Shared,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    inner.count(|c| c.get_user += 1);
    inner.log.lock().unwrap().push(Served {
        method: "GET",
        user_id: id.clone(),
        body: Value::Null,
    });
    let include = match query.get("include_fields").map(String::as_str) {
        None | Some("true") => true,
        Some("false") => false,
        Some(_) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "Query validation error: 'Expected type boolean but found type string' on \
                 property include_fields.",
                Some("invalid_query_string"),
            );
        }
    };
    let Some(user) = inner.users.lock().unwrap().get(&id).cloned() else {
        return user_not_found();
    };
    let fields: Vec<&str> = query
        .get("fields")
        .map(|f| {
            f.split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if fields.is_empty() {
        return Json(user).into_response();
    }
    let Value::Object(user) = user else {
        unreachable!("users are objects")
    };
    let selected: Map<String, Value> = user
        .into_iter()
        .filter(|(k, _)| fields.contains(&k.as_str()) == include)
        .collect();
    Json(Value::Object(selected)).into_response()
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Refuses keys with `.` or `$` at any depth below `path`.
fn check_field_names(path: &str, value: &Value) -> Result<(), String> {
    match value {
        Value::Object(object) => object.iter().try_for_each(|(key, value)| {
            let path = format!("{path}.{key}");
            if key.contains('.') || key.contains('$') {
                return Err(format!(
                    "Payload validation error: 'Invalid field name' on property {path}."
                ));
            }
            check_field_names(&path, value)
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_field_names(&format!("{path}[{i}]"), item)),
        _ => Ok(()),
    }
}

/// Checks the body of a `PATCH` before any user is looked at.
fn validate_patch(body: &Map<String, Value>) -> Result<(), String> {
    if body.is_empty() {
        return Err(
            "Payload validation error: 'Too few properties defined (0), minimum 1'.".into(),
        );
    }
    for (property, value) in body {
        match property.as_str() {
            "user_metadata" | "app_metadata" => {
                let Value::Object(metadata) = value else {
                    return Err(format!(
                        "Payload validation error: 'Expected type object but found type {}' \
                         on property {property}.",
                        json_type(value)
                    ));
                };
                if property == "app_metadata"
                    && let Some(reserved) = metadata
                        .keys()
                        .find(|k| RESERVED_APP_METADATA_NAMES.contains(&k.as_str()))
                {
                    return Err(format!(
                        "Payload validation error: 'Invalid field name: {reserved} is a reserved \
                         name' on property app_metadata.{reserved}."
                    ));
                }
                check_field_names(property, value)?;
            }
            name if IGNORED_PATCH_FIELDS.contains(&name) => {}
            name => {
                let Some((_, expected)) =
                    PATCHABLE_ROOT_ATTRIBUTES.iter().find(|(n, _)| *n == name)
                else {
                    return Err(format!(
                        "Payload validation error: 'Additional properties not allowed: {name}'."
                    ));
                };
                if json_type(value) != *expected {
                    return Err(format!(
                        "Payload validation error: 'Expected type {expected} but found type {}' \
                         on property {name}.",
                        json_type(value)
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Auth0's metadata update: `{}` wipes; otherwise a top-level merge where
/// each key replaces the stored value whole and null deletes the key.
fn merge_metadata(stored: &mut Value, patch: &Map<String, Value>) {
    if patch.is_empty() || !stored.is_object() {
        *stored = json!({});
    }
    let stored = stored.as_object_mut().expect("an object");
    for (key, value) in patch {
        if value.is_null() {
            stored.remove(key);
        } else {
            stored.insert(key.clone(), value.clone());
        }
    }
}

async fn patch_user(State(inner): Shared, Path(id): Path<String>, body: Bytes) -> Response {
    let failing = inner.faults.lock().unwrap().users.get(&id).copied();
    if let Some(status) = failing {
        inner.count(|c| c.failed += 1);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return api_error(status, "injected failure for this user", None);
    }
    inner.count(|c| c.patch_user += 1);
    inner.log.lock().unwrap().push(Served {
        method: "PATCH",
        user_id: id.clone(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Invalid request payload JSON format".into());
    };
    let Value::Object(body) = body else {
        return bad_request(format!(
            "Payload validation error: 'Expected type object but found type {}'.",
            json_type(&body)
        ));
    };
    if let Err(message) = validate_patch(&body) {
        return bad_request(message);
    }
    let mut users = inner.users.lock().unwrap();
    let Some(stored) = users.get(&id) else {
        return user_not_found();
    };
    let mut updated = stored.clone();
    for (property, value) in &body {
        match (property.as_str(), value) {
            ("user_metadata" | "app_metadata", Value::Object(patch)) => {
                merge_metadata(&mut updated[property], patch);
            }
            (name, _) if IGNORED_PATCH_FIELDS.contains(&name) => {}
            (name, value) => updated[name] = value.clone(),
        }
    }
    let size = ["user_metadata", "app_metadata"]
        .iter()
        .map(|m| serde_json::to_string(&updated[*m]).expect("JSON").len())
        .sum::<usize>();
    if size > METADATA_LIMIT_BYTES {
        return bad_request(format!(
            "Payload validation error: 'user_metadata and app_metadata together take {size} \
             bytes, more than the {METADATA_LIMIT_BYTES} allowed'."
        ));
    }
    updated["updated_at"] = iso_now().into();
    users.insert(id.clone(), updated.clone());
    drop(users);
    inner.record_event("user.updated", &updated);
    inner.record_log("sapi", &id, Some(&inner.options.client_id));
    Json(updated).into_response()
}

/// Auth0 answers 204 with no body, also for a user already gone (unless
/// [`FakeAuth0::set_missing_delete_status`] says 404).
async fn delete_user(State(inner): Shared, Path(id): Path<String>) -> Response {
    inner.count(|c| c.delete_user += 1);
    inner.log.lock().unwrap().push(Served {
        method: "DELETE",
        user_id: id.clone(),
        body: Value::Null,
    });
    let removed = inner.users.lock().unwrap().remove(&id);
    match removed {
        Some(user) => {
            inner.record_event("user.deleted", &user);
            inner.record_log("sdu", &id, Some(&inner.options.client_id));
        }
        None => {
            let status = *inner.missing_delete_status.lock().unwrap();
            if status == StatusCode::NOT_FOUND {
                return user_not_found();
            }
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Now as Auth0 writes dates: `2024-05-01T12:34:56.789Z`.
fn iso_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
