//! Who is calling: access-token validation and the [`Principal`] it yields.
//!
//! Tokens are validated with a pinned algorithm: RS256 against the issuer's
//! keys (by `kid`), or HS256 with the shared secret when one is configured.
//! Nothing in a token's header can make the gateway pick another algorithm or
//! verify an RS256 key as an HMAC secret.

mod cache;
mod jwks;
mod local_issuer;
mod verifier;

pub use jwks::RemoteJwks;
pub use local_issuer::LocalIssuer;
pub use verifier::{KeySource, TokenError, TokenVerifier};

/// The scope or permission that lets a token write any user's app_metadata.
pub const ADMIN_PERMISSION: &str = "write:app_metadata";

/// The authenticated caller of one request.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The `sub` claim: the identity provider's `user_id`.
    pub user_id: String,
    /// Space-separated `scope` claim, split.
    pub scopes: Vec<String>,
    /// The `permissions` claim (Auth0 RBAC).
    pub permissions: Vec<String>,
    /// `iat`, when the token was issued (a new login is a newer `iat`).
    pub issued_at: Option<i64>,
    /// `exp`, in UNIX seconds.
    pub expires_at: i64,
    /// Profile claims that seed a user's row when it is first seen.
    pub email: Option<String>,
    pub name: Option<String>,
    pub picture: Option<String>,
    /// Roles copied into the token by a post-login Action, if any.
    pub claimed_roles: Option<Vec<String>>,
    /// When the profile last changed at the identity provider, copied into
    /// the token by a post-login Action, if any.
    pub profile_updated_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Principal {
    /// A principal for `user_id` with no scopes, permissions or profile claims,
    /// that never expires: for tools that act as a user in-process (demo data,
    /// benchmarks), never for a request.
    pub fn for_user(user_id: &str) -> Self {
        Self {
            user_id: user_id.to_owned(),
            scopes: Vec::new(),
            permissions: Vec::new(),
            issued_at: None,
            expires_at: i64::MAX,
            email: None,
            name: None,
            picture: None,
            claimed_roles: None,
            profile_updated_at: None,
        }
    }

    /// A client-credentials token (`sub` ends in `@clients`) speaks for a
    /// machine, not a user: it has no profile of its own.
    pub fn is_machine(&self) -> bool {
        self.user_id.ends_with("@clients")
    }

    /// Whether the token grants `permission` through `permissions` or `scope`.
    pub fn grants(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
            || self.scopes.iter().any(|s| s == permission)
    }
}
