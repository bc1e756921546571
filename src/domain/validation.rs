//! The error every request-value rule reports, and the small checks the domain types share.
//!
//! A [`ValidationError`] names the offending value by its JSON path as the client sent it
//! (`"audio.inbound_chunk_ms"`, `"phone_number"`), so the HTTP layer can return it unchanged: the
//! message is written for the client and never contains the rejected value itself, which may be
//! long, binary or personal.

use std::ops::RangeInclusive;

/// A request value that breaks a rule. `field` is the JSON path of the offending value as the
/// client sent it, e.g. "audio.inbound_chunk_ms" or "phone_number".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Requires `value` to have between `min` and `max` characters (Unicode scalar values, which is
/// also how MongoDB's `$jsonSchema` `minLength`/`maxLength` count).
pub(super) fn check_chars(
    field: &str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<(), ValidationError> {
    let len = value.chars().count();
    if len < min || len > max {
        let message = if min == 0 {
            format!("must be at most {max} characters")
        } else if len == 0 {
            "must not be empty".to_owned()
        } else {
            format!("must be between {min} and {max} characters")
        };
        return Err(ValidationError::new(field, message));
    }
    Ok(())
}

/// Requires a display name (a tenant's, an assistant's, an API key's) to be `min..=max`
/// characters with no control characters and no bidirectional overrides or isolates: names are
/// shown in dashboards and logs, where such characters can hide or reorder what an admin reads.
pub(crate) fn check_name(
    field: &str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<(), ValidationError> {
    check_chars(field, value, min, max)?;
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    };
    if value.chars().any(hidden) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters or bidirectional overrides",
        ));
    }
    Ok(())
}

/// Requires `value` to be `min..=max` characters, each accepted by `allowed`. `what` completes
/// the client's sentence "must be 1 to 100 characters of …", e.g. "ASCII letters and digits".
pub(super) fn check_token(
    field: &str,
    value: &str,
    min: usize,
    max: usize,
    allowed: fn(char) -> bool,
    what: &str,
) -> Result<(), ValidationError> {
    let len = value.chars().count();
    if len < min || len > max || !value.chars().all(allowed) {
        return Err(ValidationError::new(
            field,
            format!("must be {min} to {max} characters of {what}"),
        ));
    }
    Ok(())
}

/// Requires `value` to lie within `range`.
pub(super) fn check_range(
    field: &str,
    value: u32,
    range: RangeInclusive<u32>,
) -> Result<(), ValidationError> {
    if !range.contains(&value) {
        return Err(ValidationError::new(
            field,
            format!("must be between {} and {}", range.start(), range.end()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_control_and_bidi_characters() {
        assert!(check_name("name", "Acme Support ✓", 1, 50).is_ok());
        for bad in [
            "Acme\u{202E}gnp.exe",
            "Acme\u{2066}x",
            "line\nbreak",
            "bell\u{7}",
            "mark\u{200F}",
        ] {
            let err = check_name("name", bad, 1, 50).unwrap_err();
            assert!(err.message.contains("bidirectional"), "{bad:?}");
        }
    }

    #[test]
    fn display_names_the_field() {
        let err = ValidationError::new("audio.inbound_chunk_ms", "must be a multiple of 20");
        assert_eq!(
            err.to_string(),
            "audio.inbound_chunk_ms: must be a multiple of 20"
        );
    }

    #[test]
    fn character_lengths_count_characters_not_bytes() {
        // Four characters, eight bytes.
        assert!(check_chars("name", "éééé", 1, 4).is_ok());
        assert!(check_chars("name", "ééééé", 1, 4).is_err());
        assert_eq!(
            check_chars("name", "", 1, 4).unwrap_err().message,
            "must not be empty"
        );
        assert_eq!(
            check_chars("greeting", "abc", 0, 2).unwrap_err().message,
            "must be at most 2 characters"
        );
    }

    #[test]
    fn tokens_check_length_and_alphabet() {
        let digits = |c: char| c.is_ascii_digit();
        assert!(check_token("n", "12", 1, 2, digits, "digits").is_ok());
        assert!(check_token("n", "", 1, 2, digits, "digits").is_err());
        assert!(check_token("n", "123", 1, 2, digits, "digits").is_err());
        let err = check_token("n", "1a", 1, 2, digits, "digits").unwrap_err();
        assert_eq!(err.to_string(), "n: must be 1 to 2 characters of digits");
    }

    #[test]
    fn ranges_are_inclusive() {
        assert!(check_range("x", 1, 1..=5).is_ok());
        assert!(check_range("x", 5, 1..=5).is_ok());
        assert!(check_range("x", 0, 1..=5).is_err());
        assert!(check_range("x", 6, 1..=5).is_err());
    }
}
