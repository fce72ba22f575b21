//! What Auth0 pushes to the gateway: Event Streams deliveries (CloudEvents
//! `user.created`, `user.updated`, `user.deleted`) and Log Streams batches
//! (`sdu`, `sapi`, `s`), turned into changes of the mirror.
//!
//! Both arrive at least once and in no guaranteed order, so every change is
//! applied only when it is newer than what the mirror holds: a duplicate or
//! an older delivery changes nothing.

use chrono::{DateTime, Utc};
use sea_orm::EntityTrait;
use serde_json::{Map, Value};

use super::{
    Auth0Mirror,
    outbox::{pending_outbox, withdraw},
};
use crate::{
    auth0::parse_time,
    db::{begin_write, retry_races},
    entity::users,
    error::AppResult,
    profile::{
        metadata,
        rows::{self, IdentityProfile},
    },
};

/// A change Auth0 told the gateway about.
#[derive(Debug, Clone)]
pub enum UserChange {
    /// The profile as it now is (`user.created`, `user.updated`), with the
    /// account's creation time.
    Profile {
        profile: IdentityProfile,
        created_at: Option<DateTime<Utc>>,
    },
    /// The account was deleted at `at`.
    Deleted { user_id: String, at: DateTime<Utc> },
    /// The profile changed at `at`: refresh it unless synced since.
    Changed { user_id: String, at: DateTime<Utc> },
}

impl UserChange {
    /// The user the change is about.
    pub fn user_id(&self) -> &str {
        match self {
            Self::Profile { profile, .. } => &profile.user_id,
            Self::Deleted { user_id, .. } | Self::Changed { user_id, .. } => user_id,
        }
    }
}

/// One event or an array of them, as a list.
fn items(body: &Value) -> Vec<&Value> {
    match body {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

fn string<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Parses an Event Streams delivery: one CloudEvent or an array of them.
/// Event types other than the three user events are acknowledged and
/// ignored. `Err`: the delivery is malformed (a message for the sender), and
/// nothing of it is applied.
pub fn parse_event_stream(body: &Value) -> Result<Vec<UserChange>, String> {
    let mut changes = Vec::new();
    for (i, event) in items(body).into_iter().enumerate() {
        let malformed = |what: &str| format!("event {i}: {what}");
        if !event.is_object() {
            return Err(malformed("not a JSON object"));
        }
        for field in ["id", "source", "specversion", "type"] {
            if string(event, field).is_none() {
                return Err(malformed(&format!("`{field}` is missing")));
            }
        }
        let kind = string(event, "type").unwrap_or_default();
        if !matches!(kind, "user.created" | "user.updated" | "user.deleted") {
            continue;
        }
        let Some(object) = event.pointer("/data/object").filter(|o| o.is_object()) else {
            return Err(malformed("`data.object` is not a user"));
        };
        let Some(user_id) = string(object, "user_id") else {
            return Err(malformed("`data.object.user_id` is missing"));
        };
        let time = |field: &str| -> Result<Option<DateTime<Utc>>, String> {
            match object.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(raw)) => parse_time(raw)
                    .map(Some)
                    .ok_or_else(|| malformed(&format!("`{field}` is not an ISO 8601 time"))),
                Some(_) => Err(malformed(&format!("`{field}` is not an ISO 8601 time"))),
            }
        };
        if kind == "user.deleted" {
            let at = match string(event, "time") {
                Some(raw) => {
                    parse_time(raw).ok_or_else(|| malformed("`time` is not an ISO 8601 time"))?
                }
                None => time("updated_at")?.unwrap_or_else(Utc::now),
            };
            changes.push(UserChange::Deleted {
                user_id: user_id.to_owned(),
                at,
            });
            continue;
        }
        let meta = |field: &str| -> Result<Map<String, Value>, String> {
            match object.get(field) {
                None | Some(Value::Null) => Ok(Map::new()),
                Some(Value::Object(map)) => Ok(map.clone()),
                Some(_) => Err(malformed(&format!("`{field}` is not an object"))),
            }
        };
        let text = |field: &str| string(object, field).map(str::to_owned);
        changes.push(UserChange::Profile {
            profile: IdentityProfile {
                user_id: user_id.to_owned(),
                email: text("email"),
                name: text("name"),
                picture: text("picture"),
                user_metadata: meta("user_metadata")?,
                app_metadata: meta("app_metadata")?,
                updated_at: time("updated_at")?,
            },
            created_at: time("created_at")?,
        });
    }
    Ok(changes)
}

/// The user a Management API path is about: `/api/v2/users/{id}` and below.
fn user_of_path(path: &str) -> Option<String> {
    let rest = path.split('?').next()?.strip_prefix("/api/v2/users/")?;
    let encoded = rest.split('/').next().filter(|id| !id.is_empty())?;
    percent_decode(encoded)
}

fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses a Log Streams batch (custom webhook, JSON array or one object):
/// `sdu` (a user deleted) deletes, `sapi` (a Management API write) on a
/// user's path and `s` (a login) schedule a refresh; every other type is
/// acknowledged and ignored, and so are the Management API writes of
/// `own_client_id`, the gateway itself, whose result the mirror holds.
pub fn parse_log_stream(body: &Value, own_client_id: &str) -> Result<Vec<UserChange>, String> {
    let mut changes = Vec::new();
    for (i, entry) in items(body).into_iter().enumerate() {
        let malformed = |what: &str| format!("log entry {i}: {what}");
        let Some(data) = entry.get("data").filter(|d| d.is_object()) else {
            return Err(malformed("`data` is missing"));
        };
        let Some(kind) = string(data, "type") else {
            return Err(malformed("`data.type` is missing"));
        };
        let at = match string(data, "date") {
            Some(raw) => {
                parse_time(raw).ok_or_else(|| malformed("`data.date` is not an ISO 8601 time"))?
            }
            None => return Err(malformed("`data.date` is missing")),
        };
        let user_id = string(data, "user_id").map(str::to_owned);
        match kind {
            "sdu" => {
                let user_id = user_id.ok_or_else(|| malformed("`sdu` without `user_id`"))?;
                changes.push(UserChange::Deleted { user_id, at });
            }
            "s" => {
                if let Some(user_id) = user_id {
                    changes.push(UserChange::Changed { user_id, at });
                }
            }
            "sapi" => {
                if string(data, "client_id") == Some(own_client_id) {
                    continue;
                }
                let path = data
                    .pointer("/details/request/path")
                    .and_then(Value::as_str)
                    .and_then(user_of_path);
                if let Some(user_id) = path {
                    changes.push(UserChange::Changed { user_id, at });
                }
            }
            _ => {}
        }
    }
    Ok(changes)
}

impl Auth0Mirror {
    /// Applies one change Auth0 pushed, committed before this returns.
    pub async fn apply(&self, change: &UserChange) -> AppResult<()> {
        match change {
            UserChange::Profile {
                profile,
                created_at,
            } => retry_races(|| self.apply_profile(profile, *created_at)).await,
            UserChange::Deleted { user_id, at } => {
                retry_races(|| self.apply_deletion(user_id, *at)).await
            }
            UserChange::Changed { user_id, at } => {
                self.enqueue_after(user_id, Some(*at));
                Ok(())
            }
        }
    }

    /// Writes a pushed profile when it is newer than the stored one, with
    /// the app_metadata changes still waiting in the outbox on top.
    async fn apply_profile(
        &self,
        profile: &IdentityProfile,
        created_at: Option<DateTime<Utc>>,
    ) -> AppResult<()> {
        let user_id = profile.user_id.as_str();
        let Some(updated_at) = profile.updated_at else {
            // Without its time, an event cannot be ordered: ask Auth0.
            self.enqueue_after(user_id, Some(Utc::now()));
            return Ok(());
        };
        let txn = begin_write(&self.db).await?;
        rows::lock_user(&txn, user_id).await?;
        let stored = users::Entity::find_by_id(user_id).one(&txn).await?;
        let tombstone = match &stored {
            Some(row) => {
                if row.auth0_updated_at.is_some_and(|s| s >= updated_at) {
                    return Ok(());
                }
                None
            }
            None => {
                let tombstone = rows::tombstone(&txn, user_id).await?;
                // An event about the deleted account, not a new signup.
                let born = created_at.unwrap_or(updated_at);
                if tombstone.is_some_and(|deleted| born <= deleted) {
                    return Ok(());
                }
                tombstone
            }
        };
        let mut profile = profile.clone();
        for pending in pending_outbox(&txn, user_id).await? {
            if let Value::Object(patch) = pending.payload {
                metadata::merge(&mut profile.app_metadata, &patch);
            }
        }
        rows::store_profile(&txn, &profile, true).await?;
        if let Some(deleted) = tombstone {
            rows::adopt_tombstone(&txn, user_id, deleted).await?;
        }
        txn.commit().await?;
        tracing::info!(user_id, "profile pushed by Auth0 stored");
        Ok(())
    }

    /// Deletes a user's data after Auth0 deleted the account at `at`,
    /// unless the row is newer: Auth0 changed the profile after `at`, or the
    /// row took over from this very deletion (a new signup with the id).
    async fn apply_deletion(&self, user_id: &str, at: DateTime<Utc>) -> AppResult<()> {
        let txn = begin_write(&self.db).await?;
        rows::lock_user(&txn, user_id).await?;
        if let Some(row) = users::Entity::find_by_id(user_id).one(&txn).await?
            && (row.auth0_updated_at.is_some_and(|u| u > at)
                || row.prior_deletion_at.is_some_and(|d| d >= at))
        {
            return Ok(());
        }
        rows::delete_user(&txn, user_id, at, self.tombstone_ttl).await?;
        // Whatever was waiting for the account at Auth0 is moot.
        withdraw(&txn, user_id, None).await?;
        txn.commit().await?;
        tracing::info!(user_id, "account deleted at Auth0; its data deleted here");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn user_paths_name_their_user() {
        assert_eq!(
            user_of_path("/api/v2/users/google-oauth2%7C123").as_deref(),
            Some("google-oauth2|123")
        );
        assert_eq!(
            user_of_path("/api/v2/users/auth0%7Ca/roles").as_deref(),
            Some("auth0|a")
        );
        assert_eq!(user_of_path("/api/v2/clients/x"), None);
        assert_eq!(user_of_path("/api/v2/users/"), None);
    }

    #[test]
    fn unknown_event_types_are_ignored_and_malformed_ones_refused() {
        let ignored = json!({"id": "1", "source": "s", "specversion": "1.0", "type": "organization.created", "data": {}});
        assert!(parse_event_stream(&ignored).unwrap().is_empty());
        let missing = json!([{"id": "1", "source": "s", "specversion": "1.0", "type": "user.updated", "data": {}}]);
        assert!(parse_event_stream(&missing).is_err());
        assert!(parse_event_stream(&json!("text")).is_err());
    }
}
