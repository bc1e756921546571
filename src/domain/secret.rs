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

#[cfg(test)]
mod tests {
    use super::*;

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
