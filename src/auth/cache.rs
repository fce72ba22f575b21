//! Tokens already verified, kept until they expire.
//!
//! A signature check is the most expensive step of a warm request, and a
//! client sends the same token with every request for its lifetime. A token
//! is looked up by its exact text, so a cached answer is only ever given for
//! the very string that was verified, and never after its `exp` (with the
//! same leeway as a fresh verification).

use std::{
    collections::HashMap,
    sync::RwLock,
    time::{SystemTime, UNIX_EPOCH},
};

use super::{Principal, verifier::LEEWAY_SECS};

/// Tokens kept at most; beyond it, expired ones go, then everything.
const CAPACITY: usize = 10_000;

/// A cache of verified tokens.
#[derive(Default)]
pub struct VerifiedTokens {
    entries: RwLock<HashMap<String, Principal>>,
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
            .get(token)
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
        entries.insert(token.to_owned(), principal.clone());
    }
}
