//! Email addresses of tenants (the login identity behind the unique index on `users.email`).
//!
//! The check is deliberately shallow: it catches typos and garbage, not deliverability. The
//! address is lowercased so that "Ada@Example.com" and "ada@example.com" are one tenant; strictly
//! the local part is case-sensitive, but no provider we will meet treats it so, and a duplicate
//! tenant is worse than that theoretical loss.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::validation::ValidationError;

/// A trimmed, lowercased email address that passed [`Email::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Email(String);

impl Email {
    /// The `users.email` schema's lower bound; the other rules already need five (`a@b.c`).
    pub(crate) const MIN_CHARS: usize = 3;
    /// Longest address (RFC 3696's 64 + 1 + 255), also the `users.email` schema bound.
    pub(crate) const MAX_CHARS: usize = 320;

    /// Trims and lowercases `input`, then requires 3 to 320 characters, exactly one `@`, a
    /// non-empty local part, a domain with a `.` that is neither its first nor its last
    /// character, and no whitespace or control characters. Errors name the field "email".
    pub(crate) fn parse(input: &str) -> Result<Email, ValidationError> {
        const FIELD: &str = "email";
        let fail = |message: &str| ValidationError::new(FIELD, message);

        let email = input.trim().to_lowercase();
        let len = email.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&len) {
            return Err(fail("must be between 3 and 320 characters"));
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(fail("must not contain spaces or control characters"));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(fail("must be an email address such as name@example.com"));
        };
        if domain.contains('@') {
            return Err(fail("must contain exactly one @"));
        }
        if local.is_empty() {
            return Err(fail("must have a name before the @"));
        }
        let dot_inside = domain
            .find('.')
            .is_some_and(|_| !domain.starts_with('.') && !domain.ends_with('.'));
        if !dot_inside {
            return Err(fail("must have a domain such as example.com after the @"));
        }
        Ok(Email(email))
    }

    /// The normalised address.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Email {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let input = String::deserialize(deserializer)?;
        Email::parse(&input).map_err(|err| {
            serde::de::Error::custom(format!("invalid email address: {}", err.message))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises() {
        let cases = [
            ("ada@example.com", "ada@example.com"),
            (
                "  Ada.Lovelace+voice@Example.CO.uk \n",
                "ada.lovelace+voice@example.co.uk",
            ),
            ("a@b.c", "a@b.c"),
            ("x@sub.domain.example", "x@sub.domain.example"),
        ];
        for (input, expected) in cases {
            let email = Email::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(email.as_str(), expected);
            assert_eq!(email.to_string(), expected);
        }
    }

    #[test]
    fn rejects_malformed_addresses() {
        let too_long = format!("{}@example.com", "a".repeat(320));
        let cases = [
            "",
            "   ",
            "a@",
            "ab",
            "plainaddress",
            "@example.com",
            "ada@@example.com",
            "ada@exa@mple.com",
            "ada@localhost",
            "ada@.example",
            "ada@example.",
            "ada lovelace@example.com",
            "ada@exam\tple.com",
            "ada@exam\u{7}ple.com",
            too_long.as_str(),
        ];
        for input in cases {
            let err = Email::parse(input).expect_err(input);
            assert_eq!(err.field, "email");
        }
    }

    #[test]
    fn length_bounds_are_inclusive() {
        // 320 characters: 64 + "@" + 251 + ".com" = 320.
        let longest = format!("{}@{}.com", "a".repeat(64), "b".repeat(251));
        assert_eq!(longest.chars().count(), 320);
        assert!(Email::parse(&longest).is_ok());
        let one_more = format!("{}@{}.com", "a".repeat(65), "b".repeat(251));
        assert!(Email::parse(&one_more).is_err());
    }

    #[test]
    fn serde_round_trips_and_validates() {
        let email: Email = serde_json::from_str("\"Ada@Example.com\"").unwrap();
        assert_eq!(email.as_str(), "ada@example.com");
        assert_eq!(
            serde_json::to_string(&email).unwrap(),
            "\"ada@example.com\""
        );
        let err = serde_json::from_str::<Email>("\"nope\"").unwrap_err();
        assert!(err.to_string().contains("invalid email address"), "{err}");
    }
}
