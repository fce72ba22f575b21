//! Access-token validation.

use std::{collections::HashMap, sync::Arc};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::Deserialize;
use serde_json::Value;

use super::{Principal, cache::VerifiedTokens, jwks::RemoteJwks};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub(super) const LEEWAY_SECS: u64 = 30;

/// Why a presented token was refused. The text goes into
/// `WWW-Authenticate: Bearer error="invalid_token", error_description="…"`,
/// so it names the failed check and nothing about the keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the Authorization header must be `Bearer <token>`")]
    NotBearer,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    UnsupportedAlgorithm,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token is meant for another audience")]
    WrongAudience,
    #[error("the token lacks the `{0}` claim")]
    MissingClaim(String),
}

/// The claims the gateway reads. `aud` is checked by the validation itself,
/// as a string or an array.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    permissions: Option<Vec<String>>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    picture: Option<String>,
    #[serde(flatten)]
    other: HashMap<String, Value>,
}

/// Where RS256 keys come from.
pub enum KeySource {
    /// A fixed set by `kid` (the local issuer's key).
    Static(HashMap<String, DecodingKey>),
    /// The identity provider's JWKS.
    Remote(Arc<RemoteJwks>),
}

/// Validates access tokens for one issuer and audience.
pub struct TokenVerifier {
    rs256: Validation,
    hs256: Option<(Validation, DecodingKey)>,
    keys: KeySource,
    roles_claim: Option<String>,
    updated_at_claim: Option<String>,
    verified: VerifiedTokens,
}

impl TokenVerifier {
    /// A verifier accepting RS256 tokens signed by one of `keys` (by `kid`),
    /// and HS256 tokens signed with `hs256_secret` when it is given.
    pub fn new(
        issuer: &str,
        audience: &str,
        keys: KeySource,
        hs256_secret: Option<&str>,
        roles_claim: Option<String>,
        updated_at_claim: Option<String>,
    ) -> Self {
        let validation = |alg| {
            let mut v = Validation::new(alg);
            v.leeway = LEEWAY_SECS;
            v.validate_nbf = true;
            v.set_issuer(&[issuer]);
            v.set_audience(&[audience]);
            v.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
            v
        };
        Self {
            rs256: validation(Algorithm::RS256),
            hs256: hs256_secret.map(|secret| {
                (
                    validation(Algorithm::HS256),
                    DecodingKey::from_secret(secret.as_bytes()),
                )
            }),
            keys,
            roles_claim,
            updated_at_claim,
            verified: VerifiedTokens::default(),
        }
    }

    /// Validates `token` and returns who it speaks for.
    pub async fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        if let Some(principal) = self.verified.get(token) {
            return Ok(principal);
        }
        let principal = self.verify_uncached(token).await?;
        self.verified.insert(token, &principal);
        Ok(principal)
    }

    async fn verify_uncached(&self, token: &str) -> Result<Principal, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            // `alg: none` and other unknown algorithms fail to parse here.
            ErrorKind::Json(_) => TokenError::UnsupportedAlgorithm,
            _ => TokenError::Malformed,
        })?;
        let remote_key;
        let (validation, key) = match header.alg {
            Algorithm::RS256 => {
                let key = match (&self.keys, header.kid.as_deref()) {
                    (KeySource::Static(keys), Some(kid)) => keys.get(kid),
                    // Without `kid`, only a single local key leaves no doubt.
                    (KeySource::Static(keys), None) if keys.len() == 1 => keys.values().next(),
                    (KeySource::Remote(jwks), Some(kid)) => {
                        remote_key = jwks.key(kid).await;
                        remote_key.as_ref()
                    }
                    _ => None,
                };
                (&self.rs256, key.ok_or(TokenError::UnknownKey)?)
            }
            Algorithm::HS256 => match &self.hs256 {
                Some((validation, key)) => (validation, key),
                None => return Err(TokenError::UnsupportedAlgorithm),
            },
            _ => return Err(TokenError::UnsupportedAlgorithm),
        };
        let data =
            jsonwebtoken::decode::<Claims>(token, key, validation).map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                ErrorKind::InvalidAudience => TokenError::WrongAudience,
                ErrorKind::MissingRequiredClaim(claim) => TokenError::MissingClaim(claim.clone()),
                ErrorKind::InvalidAlgorithm => TokenError::UnsupportedAlgorithm,
                _ => TokenError::Malformed,
            })?;
        let claims = data.claims;
        if claims.sub.trim().is_empty() || claims.sub.len() > 255 {
            return Err(TokenError::MissingClaim("sub".into()));
        }
        let claimed_roles = self
            .roles_claim
            .as_ref()
            .and_then(|name| claims.other.get(name))
            .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok());
        // An ISO 8601 string, as Auth0 gives `event.user.updated_at`; a
        // claim that is not one is ignored, and the iat rule applies.
        let profile_updated_at = self
            .updated_at_claim
            .as_ref()
            .and_then(|name| claims.other.get(name))
            .and_then(Value::as_str)
            .and_then(crate::auth0::parse_time);
        Ok(Principal {
            user_id: claims.sub,
            scopes: claims
                .scope
                .map(|s| s.split_whitespace().map(String::from).collect())
                .unwrap_or_default(),
            permissions: claims.permissions.unwrap_or_default(),
            issued_at: claims.iat,
            expires_at: claims.exp,
            email: claims.email,
            name: claims.name,
            picture: claims.picture,
            claimed_roles,
            profile_updated_at,
        })
    }
}
