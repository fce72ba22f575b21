//! Parsing of client-supplied text: once a value has passed through here it
//! is trimmed and within its limits.

use crate::error::{AppError, AppResult};

/// Longest song or playlist name, artist or genre.
pub const MAX_NAME_CHARS: usize = 200;

/// Longest display name.
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;

/// Longest favourite genre.
pub const MAX_GENRE_CHARS: usize = 50;

/// Most song ids accepted in one call.
pub const MAX_SONG_IDS: usize = 100;

/// A required, trimmed, bounded text field.
pub fn required_text(field: &str, value: &str, max_chars: usize) -> AppResult<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(AppError::bad_input(format!("{field} must not be empty")));
    }
    bounded(field, trimmed, max_chars)
}

/// An optional text field: `None` or blank means unset.
pub fn optional_text(
    field: &str,
    value: Option<&str>,
    max_chars: usize,
) -> AppResult<Option<String>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => bounded(field, v, max_chars).map(Some),
    }
}

fn bounded(field: &str, value: &str, max_chars: usize) -> AppResult<String> {
    if value.chars().count() > max_chars {
        return Err(AppError::bad_input(format!(
            "{field} must be at most {max_chars} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(AppError::bad_input(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(value.to_owned())
}

/// A list of song ids: not too many, duplicates dropped, order kept.
pub fn song_ids(ids: Vec<i64>) -> AppResult<Vec<i64>> {
    if ids.len() > MAX_SONG_IDS {
        return Err(AppError::bad_input(format!(
            "songIds may hold at most {MAX_SONG_IDS} ids"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    Ok(ids.into_iter().filter(|id| seen.insert(*id)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_text_is_trimmed_and_bounded() {
        assert_eq!(
            required_text("name", "  Hey  ", 10).ok(),
            Some("Hey".to_owned())
        );
        assert!(required_text("name", "   ", 10).is_err());
        assert!(required_text("name", &"x".repeat(11), 10).is_err());
        assert!(required_text("name", "a\u{0}b", 10).is_err());
    }

    #[test]
    fn song_ids_drop_duplicates_and_keep_order() {
        assert_eq!(song_ids(vec![3, 1, 3, 2]).ok(), Some(vec![3, 1, 2]));
        assert!(song_ids((0..=MAX_SONG_IDS as i64).collect()).is_err());
    }
}
