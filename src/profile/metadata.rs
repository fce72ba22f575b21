//! Auth0's metadata rules, applied the same way in every identity mode so a
//! client sees one behaviour: top-level merge, nested objects replaced whole,
//! `null` deletes a key, no `.` or `$` in keys, and a size limit; and, for
//! PostgreSQL, no NUL anywhere.

use serde_json::{Map, Value};

use crate::error::AppError;

/// Auth0 refuses profiles whose metadata serializes to more than about this.
pub const MAX_METADATA_BYTES: usize = 10 * 1024;

/// Longest metadata key accepted.
pub const MAX_KEY_CHARS: usize = 100;

/// The user_metadata key holding the display name.
pub const DISPLAY_NAME_KEY: &str = "displayName";

/// Keys a user may not set through `preferences`: the display name has its own
/// validated field, and roles and plan are the server's (they live in
/// app_metadata, and a look-alike in user_metadata would only mislead).
const RESERVED_PREFERENCE_KEYS: [&str; 4] = [DISPLAY_NAME_KEY, "roles", "plan", "app_metadata"];

/// Checks a key against Auth0's field-name rules.
pub fn check_key(key: &str) -> Result<(), AppError> {
    if key.is_empty() {
        return Err(AppError::bad_input("preferences: keys must not be empty"));
    }
    if key.chars().count() > MAX_KEY_CHARS {
        return Err(AppError::bad_input(format!(
            "preferences: key `{}…` is longer than {MAX_KEY_CHARS} characters",
            key.chars().take(20).collect::<String>()
        )));
    }
    if key.contains('.') || key.contains('$') {
        return Err(AppError::bad_input(format!(
            "preferences: key `{key}` may not contain `.` or `$`"
        )));
    }
    check_no_nul(key)
}

/// PostgreSQL's `jsonb` cannot hold U+0000 in a key or a string, and the
/// same preferences must be accepted alike on every database.
fn check_no_nul(text: &str) -> Result<(), AppError> {
    if text.contains('\0') {
        return Err(AppError::bad_input(
            "preferences: keys and strings may not contain U+0000 (NUL)",
        ));
    }
    Ok(())
}

/// Validates a client's `preferences` value as a user_metadata patch.
pub fn preferences_patch(value: &Value) -> Result<Map<String, Value>, AppError> {
    let Value::Object(map) = value else {
        return Err(AppError::bad_input("preferences must be a JSON object"));
    };
    for (key, nested) in map {
        check_key(key)?;
        if RESERVED_PREFERENCE_KEYS.contains(&key.as_str()) {
            return Err(AppError::bad_input(format!(
                "preferences: `{key}` cannot be set through preferences"
            )));
        }
        check_nested(nested)?;
    }
    Ok(map.clone())
}

/// Auth0 applies the field-name rule at every depth.
fn check_nested(value: &Value) -> Result<(), AppError> {
    match value {
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            check_key(k)?;
            check_nested(v)
        }),
        Value::Array(items) => items.iter().try_for_each(check_nested),
        Value::String(text) => check_no_nul(text),
        _ => Ok(()),
    }
}

/// Applies `patch` to `target` the way Auth0's PATCH does: top-level keys
/// replace (nested objects whole), `null` removes the key.
pub fn merge(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            target.insert(key.clone(), value.clone());
        }
    }
}

/// Rejects a profile whose metadata would exceed Auth0's limit.
pub fn check_size(
    user_metadata: &Map<String, Value>,
    app_metadata: &Map<String, Value>,
) -> Result<(), AppError> {
    let size = serde_json::to_vec(user_metadata)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
        + serde_json::to_vec(app_metadata)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
    if size > MAX_METADATA_BYTES {
        return Err(AppError::bad_input(format!(
            "the profile's metadata would be {size} bytes; the limit is {MAX_METADATA_BYTES}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn merge_is_top_level_and_null_deletes() {
        let mut target = obj(json!({"a": 1, "nested": {"x": 1, "y": 2}, "gone": true}));
        merge(
            &mut target,
            &obj(json!({"nested": {"x": 5}, "gone": null, "b": "new"})),
        );
        assert_eq!(
            Value::Object(target),
            json!({"a": 1, "nested": {"x": 5}, "b": "new"})
        );
    }

    #[test]
    fn empty_patch_changes_nothing() {
        let mut target = obj(json!({"a": 1}));
        merge(&mut target, &Map::new());
        assert_eq!(Value::Object(target), json!({"a": 1}));
    }

    #[test]
    fn keys_with_dots_or_dollars_are_refused_at_any_depth() {
        assert!(preferences_patch(&json!({"a.b": 1})).is_err());
        assert!(preferences_patch(&json!({"ok": {"$set": 1}})).is_err());
        assert!(preferences_patch(&json!({"ok": [{"x.y": 1}]})).is_err());
        assert!(preferences_patch(&json!({"theme": {"mode": "dark"}})).is_ok());
    }

    #[test]
    fn nul_is_refused_in_keys_and_strings_at_any_depth() {
        assert!(preferences_patch(&json!({"a": "x\u{0}"})).is_err());
        assert!(preferences_patch(&json!({"a\u{0}": 1})).is_err());
        assert!(preferences_patch(&json!({"a": {"b": ["\u{0}"]}})).is_err());
        assert!(preferences_patch(&json!({"a": [{"b\u{0}": true}]})).is_err());
        assert!(preferences_patch(&json!({"a": "line\nbreak\u{1}"})).is_ok());
    }

    #[test]
    fn preferences_must_be_an_object_without_reserved_keys() {
        assert!(preferences_patch(&json!([1, 2])).is_err());
        assert!(preferences_patch(&json!("x")).is_err());
        assert!(preferences_patch(&json!({"roles": ["admin"]})).is_err());
        assert!(preferences_patch(&json!({"displayName": "x"})).is_err());
    }

    #[test]
    fn oversized_metadata_is_refused() {
        let big = obj(json!({"blob": "x".repeat(MAX_METADATA_BYTES)}));
        assert!(check_size(&big, &Map::new()).is_err());
        assert!(check_size(&obj(json!({"a": 1})), &Map::new()).is_ok());
    }
}
