//! The identity provider's signing keys, fetched from its JWKS and cached.
//!
//! A token whose `kid` is unknown may mean a key rotation, so it triggers one
//! refetch; refetches are spaced by [`MIN_REFETCH_INTERVAL`], so a flood of
//! tokens with made-up key ids cannot make the gateway hammer the JWKS
//! endpoint. The cached set is also refreshed when older than [`MAX_AGE`].

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use jsonwebtoken::{DecodingKey, jwk::JwkSet};
use tokio::sync::Mutex;

/// Shortest time between two fetches caused by unknown key ids.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// Age after which the key set is fetched again on use.
pub const MAX_AGE: Duration = Duration::from_secs(600);

type Keys = Arc<HashMap<String, DecodingKey>>;

/// A cached remote JWKS.
pub struct RemoteJwks {
    url: String,
    http: reqwest::Client,
    keys: RwLock<Keys>,
    fetched_at: RwLock<Option<Instant>>,
    /// When a fetch for an unknown kid last happened.
    last_refetch: Mutex<Option<Instant>>,
}

impl RemoteJwks {
    /// A JWKS at `url`, fetched on first use.
    pub fn new(url: String, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            url,
            http: reqwest::Client::builder().timeout(timeout).build()?,
            keys: RwLock::new(Arc::default()),
            fetched_at: RwLock::new(None),
            last_refetch: Mutex::new(None),
        })
    }

    fn cached(&self) -> Keys {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn age(&self) -> Option<Duration> {
        self.fetched_at
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .map(|at| at.elapsed())
    }

    /// Fetches the key set now.
    pub async fn fetch(&self) -> anyhow::Result<usize> {
        let set: JwkSet = self
            .http
            .get(&self.url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let keys: HashMap<String, DecodingKey> = set
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?)))
            .collect();
        let count = keys.len();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        *self.fetched_at.write().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        tracing::info!(url = %self.url, keys = count, "fetched the signing keys");
        Ok(count)
    }

    /// The key with id `kid`. The set is fetched again when it is older than
    /// [`MAX_AGE`] or lacks `kid`, at most once per [`MIN_REFETCH_INTERVAL`]:
    /// neither a flood of made-up key ids nor an unreachable JWKS endpoint
    /// turns every request into a fetch; meanwhile the cached keys serve.
    pub async fn key(&self, kid: &str) -> Option<DecodingKey> {
        let fresh = self.age().is_some_and(|age| age <= MAX_AGE);
        if fresh && let Some(key) = self.cached().get(kid) {
            return Some(key.clone());
        }
        {
            let mut last = self.last_refetch.lock().await;
            // Re-check under the lock: a concurrent caller may have fetched.
            let fresh = self.age().is_some_and(|age| age <= MAX_AGE);
            let known = self.cached().contains_key(kid);
            let may_refetch = last.is_none_or(|at| at.elapsed() >= MIN_REFETCH_INTERVAL);
            if (!fresh || !known) && may_refetch {
                *last = Some(Instant::now());
                if let Err(e) = self.fetch().await {
                    tracing::warn!(url = %self.url, error = %e, "cannot fetch the signing keys");
                }
            }
        }
        self.cached().get(kid).cloned()
    }
}
