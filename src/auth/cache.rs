//! Tokens already verified, kept until they expire.
//!
//! A signature check is the most expensive step of a warm request, and a
//! client sends the same token with every request for its lifetime. A token
//! is looked up by its exact text, so a cached answer is only ever given for
//! the very string that was verified, and never after its `exp` (with the
//! same leeway as a fresh verification).
//!
//! Tokens are kept by their SHA-256 digest, not their text: a bearer token
//! is a credential, and at several hundred bytes each its text was most of
//! the cache's memory.

use std::{
    collections::HashMap,
    sync::RwLock,
    time::{SystemTime, UNIX_EPOCH},
};

use sha2::{Digest, Sha256};

use super::{Principal, verifier::LEEWAY_SECS};

/// Tokens kept at most; beyond it, expired ones go, then everything.
const CAPACITY: usize = 10_000;

/// A cache of verified tokens.
#[derive(Default)]
pub struct VerifiedTokens {
    entries: RwLock<HashMap<[u8; 32], Principal>>,
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl VerifiedTokens {
    /// The principal of `token` if it was verified and has not expired.
    pub fn get(&self, token: &str) -> Option<Principal> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .get(&key(token))
            .filter(|p| p.expires_at.saturating_add(LEEWAY_SECS as i64) > now())
            .cloned()
    }

    /// Remembers that `token` speaks for `principal`.
    pub fn insert(&self, token: &str, principal: &Principal) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY {
            let now = now();
            entries.retain(|_, p| p.expires_at.saturating_add(LEEWAY_SECS as i64) > now);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key(token), principal.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(user_id: &str, expires_at: i64) -> Principal {
        Principal {
            user_id: user_id.to_owned(),
            scopes: Vec::new(),
            permissions: Vec::new(),
            issued_at: None,
            expires_at,
            email: None,
            name: None,
            picture: None,
            claimed_roles: None,
            profile_updated_at: None,
        }
    }

    #[test]
    fn only_the_very_token_verified_is_answered_and_only_until_it_expires() {
        let cache = VerifiedTokens::default();
        let later = now() + 3600;
        cache.insert("header.alice.sig", &principal("auth0|alice", later));
        cache.insert("header.old.sig", &principal("auth0|old", now() - 3600));
        let hit = cache.get("header.alice.sig").expect("the verified token");
        assert_eq!(hit.user_id, "auth0|alice");
        // One character off is another token, never verified.
        assert!(cache.get("header.alice.siG").is_none());
        assert!(cache.get("header.alice.sig ").is_none());
        assert!(cache.get("header.old.sig").is_none());
    }
}
