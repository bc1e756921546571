//! Credentials of callers: tenant API keys (generated, shown once, stored as hashes) and the
//! comparison of bearer tokens without leaking their contents through timing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

use crate::domain::secret::SecretString;

/// Every tenant API key starts with this, so leaked keys are recognisable by secret scanners.
pub(crate) const API_KEY_PREFIX: &str = "vxb_";
/// Characters after [`API_KEY_PREFIX`] that are kept visible (the key's public "prefix").
const VISIBLE_CHARS: usize = 8;

/// A freshly generated API key: the whole secret (shown to the client once) and what is stored.
#[derive(Debug)]
pub(crate) struct NewApiKey {
    pub secret: SecretString,
    /// Visible start of the key, e.g. `vxb_3f9a1c2e`.
    pub prefix: String,
    pub hash: String,
}

/// `vxb_` + 8 hex characters (visible prefix) + `_` + 43 characters of base64url (32 random
/// bytes). Only the prefix and the SHA-256 of the whole key are stored.
pub(crate) fn generate_api_key() -> NewApiKey {
    let mut visible = [0u8; VISIBLE_CHARS / 2];
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut visible);
    rand::rng().fill_bytes(&mut secret);
    let prefix = format!("{API_KEY_PREFIX}{}", hex(&visible));
    let key = format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(secret));
    NewApiKey {
        hash: hash_api_key(&key),
        secret: SecretString::new(key),
        prefix,
    }
}

/// Hex SHA-256 of a presented key: the lookup value in `api_keys.key_hash`. A 256-bit random
/// secret needs no slow hash: it cannot be guessed, only stolen.
pub fn hash_api_key(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

/// Compares a presented token with the expected one. Both are hashed first, so the comparison
/// time does not depend on how much of the secret matched.
pub(crate) fn token_matches(presented: &str, expected: &SecretString) -> bool {
    Sha256::digest(presented.as_bytes()) == Sha256::digest(expected.expose().as_bytes())
}

/// A random URL-safe secret of 32 bytes (e.g. a tenant's FreJun URL secret).
pub(crate) fn random_url_secret() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    SecretString::new(URL_SAFE_NO_PAD.encode(bytes))
}

/// Hex SHA-256 of a tenant's FreJun URL secret: the lookup value in
/// `users.secrets.frejun_url_secret_hash`. Like API keys, a 256-bit random secret needs no slow
/// hash.
pub(crate) fn hash_url_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_a_visible_prefix_and_a_matching_hash() {
        let key = generate_api_key();
        let secret = key.secret.expose();
        assert!(secret.starts_with(&key.prefix), "{}", key.prefix);
        assert_eq!(key.prefix.len(), API_KEY_PREFIX.len() + VISIBLE_CHARS);
        assert_eq!(secret.len(), key.prefix.len() + 1 + 43);
        assert_eq!(key.hash, hash_api_key(secret));
        assert_eq!(key.hash.len(), 64);
        assert!(
            !format!("{key:?}").contains(secret),
            "Debug redacts the secret"
        );
        assert_ne!(generate_api_key().hash, key.hash);
    }

    #[test]
    fn tokens_match_only_exactly() {
        let expected = SecretString::new("a-very-long-admin-token-0123456789");
        assert!(token_matches(
            "a-very-long-admin-token-0123456789",
            &expected
        ));
        assert!(!token_matches(
            "a-very-long-admin-token-012345678",
            &expected
        ));
        assert!(!token_matches("", &expected));
    }
}
