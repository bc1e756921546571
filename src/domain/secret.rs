//! Secret values (tokens, keys, connection strings with passwords) that must never reach a log,
//! an error message or an API response by accident.
//!
//! The value is only reachable through an explicit `expose()` call, which makes every place that
//! needs the plain text easy to find in review.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest provider key (OpenAI, FreJun) accepted; real ones are far shorter.
pub(crate) const PROVIDER_KEY_MAX_CHARS: usize = 512;

/// What every secret prints as, in `Debug`, `Display` and serialized form.
pub(crate) const REDACTED: &str = "[redacted]";

/// The last four characters of a secret: all that a read of a stored secret ever shows.
pub fn last4(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

/// A secret string. `Debug`, `Display` and `Serialize` print `[redacted]`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The plain value. Call it only where the secret is used, never to log or return it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for SecretString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// The 32-byte AES-256 master key that encrypts tenants' provider credentials at rest.
///
/// Parsed from base64 (standard alphabet, with padding) so that a key of the wrong length is
/// refused at startup, not at the first encryption.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey([u8; MasterKey::LEN]);

/// Why a master key was refused. The message never contains the key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum MasterKeyError {
    #[error("must be base64 (standard alphabet)")]
    NotBase64,
    #[error("must decode to exactly 32 bytes, got {0}")]
    WrongLength(usize),
}

impl MasterKey {
    pub const LEN: usize = 32;

    pub(crate) fn from_base64(encoded: &str) -> Result<Self, MasterKeyError> {
        let bytes = BASE64
            .decode(encoded.trim())
            .map_err(|_| MasterKeyError::NotBase64)?;
        let key: [u8; Self::LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| MasterKeyError::WrongLength(bytes.len()))?;
        Ok(Self(key))
    }

    pub fn from_bytes(bytes: [u8; Self::LEN]) -> Self {
        Self(bytes)
    }

    /// The raw key, for the cipher only.
    pub(crate) fn expose(&self) -> &[u8; Self::LEN] {
        &self.0
    }

    pub fn to_base64(&self) -> SecretString {
        SecretString::new(BASE64.encode(self.0))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for MasterKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for MasterKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let encoded = String::deserialize(deserializer)?;
        MasterKey::from_base64(&encoded).map_err(serde::de::Error::custom)
    }
}

/// `text` with the value of every `key=` URL parameter replaced by `[redacted]`. Our FreJun
/// URLs carry the tenant's URL secret as `key`, and services echo URLs back in their errors;
/// any text from outside that may be logged or stored goes through this first.
pub fn redact_url_keys(text: &str) -> String {
    const NAME: &str = "key=";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = rest.find(NAME) {
        let start = found + NAME.len();
        // A parameter name starts the text or follows `?`, `&` or a non-name character, so
        // `monkey=` is left alone.
        let boundary = found == 0
            || !rest[..found]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        if boundary {
            let end = rest
                .find(|c: char| c == '&' || c == '#' || c == '"' || c == '\'' || c.is_whitespace())
                .unwrap_or(rest.len());
            if end > 0 {
                out.push_str(REDACTED_URL_KEY);
            }
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

/// What [`redact_url_keys`] writes in place of a key.
const REDACTED_URL_KEY: &str = "[redacted]";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_four_characters_are_shown() {
        assert_eq!(last4("whsec_abcdef"), "cdef");
        assert_eq!(last4("ab"), "ab");
        assert_eq!(
            last4("ünïcødé"),
            "icødé"
                .replace('i', "ï")
                .chars()
                .skip(1)
                .collect::<String>()
        );
    }

    #[test]
    fn url_keys_are_redacted_wherever_they_appear() {
        let text = "flow_url https://vb.example/api/frejun/flow?key=s3cr3t&call=abc is invalid; \
                    key=other monkey=fine \"key=quoted\"";
        let redacted = redact_url_keys(text);
        assert!(!redacted.contains("s3cr3t") && !redacted.contains("other"));
        assert!(!redacted.contains("quoted"));
        assert!(redacted.contains("?key=[redacted]&call=abc"), "{redacted}");
        assert!(redacted.contains("monkey=fine"), "{redacted}");
        assert_eq!(redact_url_keys("no secrets here"), "no secrets here");
        assert_eq!(redact_url_keys("key="), "key=");
    }

    #[test]
    fn secrets_never_print_their_value() {
        let secret = SecretString::new("hunter2");
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(format!("{secret}"), REDACTED);
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"[redacted]\"");
        assert_eq!(secret.expose(), "hunter2");

        let key = MasterKey::from_bytes([7; 32]);
        assert_eq!(format!("{key:?}"), REDACTED);
        assert!(
            !serde_json::to_string(&key)
                .unwrap()
                .contains(&BASE64.encode([7u8; 32]))
        );
    }

    #[test]
    fn master_key_must_be_base64_of_32_bytes() {
        let good = BASE64.encode([1u8; 32]);
        assert_eq!(MasterKey::from_base64(&good).unwrap().expose(), &[1u8; 32]);
        assert_eq!(
            MasterKey::from_base64(&BASE64.encode([1u8; 16])),
            Err(MasterKeyError::WrongLength(16))
        );
        assert_eq!(
            MasterKey::from_base64("not base64!"),
            Err(MasterKeyError::NotBase64)
        );
    }
}
