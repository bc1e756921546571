//! Encryption at rest of tenants' provider credentials (their OpenAI API key, their FreJun API
//! key, their FreJun URL secret) with AES-256-GCM under a versioned master key.
//!
//! Each stored value is an [`EncryptedSecret`]: the version of the master key that made it, a
//! fresh random 96-bit nonce and the ciphertext with its GCM tag. Keeping the version next to the
//! data is what makes rotation possible: a [`Keyring`] holds the current key (which encrypts)
//! and any previous ones (which only decrypt), and the rotation command re-encrypts every value
//! that is not yet under the current key ([`Keyring::is_current`], [`Keyring::reencrypt`]) before
//! the old key is removed from the configuration.
//!
//! Every value is bound to a caller-chosen *context* (e.g. `b"user:<id>:openai_api_key"`),
//! authenticated as GCM associated data but not stored: a ciphertext copied to another tenant's
//! document or to another field fails to decrypt instead of handing out the wrong credential.
//!
//! Nonces come from the operating system's CSPRNG (`OsRng`, through
//! [`AeadCore::generate_nonce`]), not from a userspace generator, so no generator state can be
//! duplicated. Random 96-bit nonces are safe for far more encryptions per key (about 2^32) than a
//! credential store makes; rotation resets the count anyway.
//!
//! Nothing here prints key material or plaintext: `Debug` shows versions and lengths only, and
//! every decryption failure is the same opaque [`CryptoError::Undecryptable`] (fail closed, and
//! no oracle telling a wrong key from tampered data).

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::{Aead, AeadCore, OsRng, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};

use crate::domain::credential::Credential;
use crate::domain::ids::{TenantId, WebhookEndpointId};
use crate::domain::secret::{MasterKey, SecretString};

/// Length of an AES-GCM nonce in bytes (96 bits, the size GCM is designed for).
pub(crate) const NONCE_LEN: usize = 12;

/// One encrypted value as stored in MongoDB: `{key_version, nonce, ciphertext}`, with `nonce`
/// and `ciphertext` as BSON binary (generic subtype) through `serde_bytes`.
///
/// With the `bson` serializer `key_version` is written as a 64-bit integer (`long`); reading
/// accepts a 32-bit `int` as well.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EncryptedSecret {
    /// Version of the master key this value was encrypted with.
    pub key_version: u32,
    /// The 12-byte GCM nonce. Any other length is refused at decryption as undecryptable.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// The ciphertext followed by the 16-byte GCM tag.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for EncryptedSecret {
    /// Version and lengths only: the bytes are not secret without the key, but they have no
    /// business in logs either.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedSecret")
            .field("key_version", &self.key_version)
            .field("nonce_len", &self.nonce.len())
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// Why a stored secret could not be decrypted. The messages never contain key material,
/// ciphertext or plaintext.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// No key with this version in the keyring (a rotation left it behind, or the data is from
    /// elsewhere).
    #[error("no master key with version {0} is configured")]
    UnknownKeyVersion(u32),
    /// Wrong key, tampered data, or data bound to another context: fail closed.
    #[error("stored secret cannot be decrypted (wrong master key or tampered data)")]
    Undecryptable,
}

/// The master keys: the current one encrypts; it and any previous ones decrypt.
///
/// The ciphers are built once here, so each operation skips the AES key schedule. `Debug`
/// prints the versions only, never key material.
#[derive(Clone)]
pub struct Keyring {
    current_version: u32,
    /// Every usable key by version, the current one included.
    ciphers: BTreeMap<u32, Aes256Gcm>,
}

impl Keyring {
    /// A keyring that encrypts with `current` (as `current_version`) and also decrypts with
    /// `previous`. If `previous` also has `current_version`, `current` wins: the key that
    /// encrypts must be the one that decrypts its own output.
    pub fn new(
        current_version: u32,
        current: MasterKey,
        previous: BTreeMap<u32, MasterKey>,
    ) -> Self {
        let mut ciphers: BTreeMap<u32, Aes256Gcm> = previous
            .iter()
            .map(|(version, key)| (*version, cipher(key)))
            .collect();
        ciphers.insert(current_version, cipher(&current));
        Self {
            current_version,
            ciphers,
        }
    }

    /// The version new values are encrypted under.
    pub(crate) fn current_version(&self) -> u32 {
        self.current_version
    }

    /// Encrypts `plaintext` under the current key with a fresh random nonce.
    ///
    /// `context` is authenticated (AES-GCM associated data) but not stored: callers bind a
    /// ciphertext to its owner and purpose, e.g. `b"user:<id>:openai_api_key"`, so a ciphertext
    /// copied to another tenant or field fails to decrypt.
    pub(crate) fn encrypt(&self, plaintext: &str, context: &[u8]) -> EncryptedSecret {
        let version = self.current_version;
        let cipher = self
            .ciphers
            .get(&version)
            .expect("Keyring::new always inserts the current key");
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = associated_data(version, context);
        // AES-GCM only refuses messages longer than about 64 GiB; a credential held in a `&str`
        // never comes near that, so failing here is a bug, not an input error.
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of a credential-sized message cannot fail");
        EncryptedSecret {
            key_version: version,
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    /// Decrypts `secret` with the key of its version, checking it was made for `context`.
    ///
    /// A missing key version is reported as such (operators need to know a rotation removed a
    /// key too early); every other failure (wrong key, tampered bytes, wrong context, malformed
    /// nonce, plaintext that is not UTF-8) is [`CryptoError::Undecryptable`].
    pub fn decrypt(
        &self,
        secret: &EncryptedSecret,
        context: &[u8],
    ) -> Result<SecretString, CryptoError> {
        let cipher = self
            .ciphers
            .get(&secret.key_version)
            .ok_or(CryptoError::UnknownKeyVersion(secret.key_version))?;
        // Converting to an array first: `Nonce::from_slice` would panic on a bad length, and the
        // stored bytes are untrusted.
        let nonce: [u8; NONCE_LEN] = secret
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::Undecryptable)?;
        let aad = associated_data(secret.key_version, context);
        let plaintext = cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &secret.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Undecryptable)?;
        String::from_utf8(plaintext)
            .map(SecretString::new)
            .map_err(|_| CryptoError::Undecryptable)
    }

    /// Decrypts with whichever key it was made with and encrypts again under the current key
    /// (new nonce). Used by the rotation command.
    pub(crate) fn reencrypt(
        &self,
        secret: &EncryptedSecret,
        context: &[u8],
    ) -> Result<EncryptedSecret, CryptoError> {
        let plaintext = self.decrypt(secret, context)?;
        Ok(self.encrypt(plaintext.expose(), context))
    }

    /// Whether `secret` is already under the current key (rotation skips those).
    pub(crate) fn is_current(&self, secret: &EncryptedSecret) -> bool {
        secret.key_version == self.current_version
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let previous: Vec<u32> = self
            .ciphers
            .keys()
            .copied()
            .filter(|version| *version != self.current_version)
            .collect();
        f.debug_struct("Keyring")
            .field("current_version", &self.current_version)
            .field("previous_versions", &previous)
            .finish()
    }
}

/// Which of a tenant's secrets a ciphertext holds; part of what the ciphertext is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TenantSecret {
    OpenAiApiKey,
    FrejunApiKey,
    /// The tenant's Anthropic key (text AI).
    AnthropicApiKey,
    /// The key of the tenant's OpenAI-compatible Chat Completions server (text AI).
    ChatCompletionsApiKey,
    /// The tenant's ElevenLabs key (private ElevenLabs agents' signed URLs).
    ElevenLabsApiKey,
    /// The key of the tenant's OpenAI-compatible realtime endpoint.
    RealtimeApiKey,
    /// The secret in the FreJun URLs (`key=`); encrypted so `/api/me` can show the URLs.
    FrejunUrlSecret,
    /// The Standard Webhooks secret (`whsec_…`) that signs requests to the tenant's HTTP
    /// tools (and its predecessor during a rotation).
    ToolSigningSecret,
}

impl TenantSecret {
    /// The field's name, as stored and in the encryption context.
    pub fn name(self) -> &'static str {
        match self {
            TenantSecret::OpenAiApiKey => "openai_api_key",
            TenantSecret::FrejunApiKey => "frejun_api_key",
            TenantSecret::AnthropicApiKey => "anthropic_api_key",
            TenantSecret::ChatCompletionsApiKey => "chat_completions_api_key",
            TenantSecret::ElevenLabsApiKey => "elevenlabs_api_key",
            TenantSecret::RealtimeApiKey => "realtime_api_key",
            TenantSecret::FrejunUrlSecret => "frejun_url_secret",
            TenantSecret::ToolSigningSecret => "tool_signing_secret",
        }
    }

    /// The secret a provider credential is encrypted as.
    pub(crate) fn of(credential: Credential) -> Self {
        match credential {
            Credential::OpenAiApiKey => TenantSecret::OpenAiApiKey,
            Credential::FrejunApiKey => TenantSecret::FrejunApiKey,
            Credential::AnthropicApiKey => TenantSecret::AnthropicApiKey,
            Credential::ChatCompletionsApiKey => TenantSecret::ChatCompletionsApiKey,
            Credential::ElevenLabsApiKey => TenantSecret::ElevenLabsApiKey,
            Credential::RealtimeApiKey => TenantSecret::RealtimeApiKey,
        }
    }
}

/// The encryption context of a tenant's secret, `user:<tenant id>:<field>`: the one place this
/// convention is written. A ciphertext copied into another tenant's document, or into another
/// field, does not decrypt.
pub fn tenant_context(tenant: TenantId, secret: TenantSecret) -> Vec<u8> {
    format!("user:{}:{}", tenant.to_hex(), secret.name()).into_bytes()
}

/// The encryption context of a tenant's named secret (the values HTTP tools' headers and MCP
/// servers reference), `user:<tenant id>:secret:<name>`: a value copied under another name or
/// tenant does not decrypt.
pub fn named_secret_context(tenant: TenantId, name: &str) -> Vec<u8> {
    format!("user:{}:secret:{name}", tenant.to_hex()).into_bytes()
}

/// The encryption context of a webhook endpoint's signing secret,
/// `user:<tenant id>:webhook_endpoint:<endpoint id>`.
pub fn webhook_endpoint_context(tenant: TenantId, endpoint: WebhookEndpointId) -> Vec<u8> {
    format!(
        "user:{}:webhook_endpoint:{}",
        tenant.to_hex(),
        endpoint.to_hex()
    )
    .into_bytes()
}

impl Keyring {
    /// Encrypts one of `tenant`'s secrets, bound to the tenant and the field.
    pub(crate) fn encrypt_tenant_secret(
        &self,
        tenant: TenantId,
        secret: TenantSecret,
        plaintext: &str,
    ) -> EncryptedSecret {
        self.encrypt(plaintext, &tenant_context(tenant, secret))
    }

    /// Decrypts one of `tenant`'s secrets; fails if it was made for another tenant or field.
    pub(crate) fn decrypt_tenant_secret(
        &self,
        tenant: TenantId,
        secret: TenantSecret,
        encrypted: &EncryptedSecret,
    ) -> Result<SecretString, CryptoError> {
        self.decrypt(encrypted, &tenant_context(tenant, secret))
    }

    /// Re-encrypts one of `tenant`'s secrets under the current key (master-key rotation).
    pub(crate) fn reencrypt_tenant_secret(
        &self,
        tenant: TenantId,
        secret: TenantSecret,
        encrypted: &EncryptedSecret,
    ) -> Result<EncryptedSecret, CryptoError> {
        self.reencrypt(encrypted, &tenant_context(tenant, secret))
    }
}

fn cipher(key: &MasterKey) -> Aes256Gcm {
    Aes256Gcm::new(key.expose().into())
}

/// The GCM associated data: the key version (big-endian) followed by the caller's context.
///
/// Authenticating the version as well means a stored `key_version` cannot be edited to point
/// at another version, even if an operator configured the same key under two versions. The
/// version has a fixed width, so the framing is unambiguous.
fn associated_data(key_version: u32, context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(4 + context.len());
    aad.extend_from_slice(&key_version.to_be_bytes());
    aad.extend_from_slice(context);
    aad
}

/// Parses `"1:BASE64,2:BASE64"` (whitespace around items allowed, empty string = none) into
/// versions and keys. Errors name the item position and never echo key material.
///
/// Versions must be >= 1 and unique. Base64's standard alphabet has neither `:` nor `,`, so the
/// separators are unambiguous. An empty item (e.g. a trailing comma) is refused rather than
/// skipped: it usually means a key was lost while editing the configuration.
pub(crate) fn parse_previous_keys(text: &str) -> Result<BTreeMap<u32, MasterKey>, String> {
    let mut keys = BTreeMap::new();
    if text.trim().is_empty() {
        return Ok(keys);
    }
    for (index, item) in text.split(',').enumerate() {
        let position = index + 1;
        let item = item.trim();
        if item.is_empty() {
            return Err(format!("item {position} is empty"));
        }
        // Neither part is echoed: a malformed item may well be a bare key.
        let (version, key) = item
            .split_once(':')
            .ok_or_else(|| format!("item {position} must be VERSION:BASE64_KEY"))?;
        let version: u32 = version
            .trim()
            .parse()
            .map_err(|_| format!("item {position}: version must be a positive integer"))?;
        if version == 0 {
            return Err(format!("item {position}: version must be at least 1"));
        }
        let key = MasterKey::from_base64(key).map_err(|e| format!("item {position}: key {e}"))?;
        if keys.insert(version, key).is_some() {
            return Err(format!(
                "item {position}: version {version} appears more than once"
            ));
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;

    use super::*;

    const CONTEXT: &[u8] = b"user:64b000000000000000000001:openai_api_key";
    const PLAINTEXT: &str = "sk-test-0123456789abcdef";

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_bytes([byte; MasterKey::LEN])
    }

    fn keyring(version: u32, byte: u8) -> Keyring {
        Keyring::new(version, key(byte), BTreeMap::new())
    }

    #[test]
    fn round_trip() {
        let ring = keyring(1, 1);
        let secret = ring.encrypt(PLAINTEXT, CONTEXT);
        assert_eq!(secret.key_version, 1);
        assert_eq!(secret.nonce.len(), NONCE_LEN);
        assert_eq!(secret.ciphertext.len(), PLAINTEXT.len() + 16);
        assert_eq!(ring.decrypt(&secret, CONTEXT).unwrap().expose(), PLAINTEXT);

        let empty = ring.encrypt("", CONTEXT);
        assert_eq!(ring.decrypt(&empty, CONTEXT).unwrap().expose(), "");
    }

    #[test]
    fn another_context_fails() {
        let ring = keyring(1, 1);
        let secret = ring.encrypt(PLAINTEXT, CONTEXT);
        for other in [
            &b"user:64b000000000000000000002:openai_api_key"[..],
            b"user:64b000000000000000000001:frejun_api_key",
            b"",
        ] {
            assert_eq!(
                ring.decrypt(&secret, other),
                Err(CryptoError::Undecryptable)
            );
        }
    }

    #[test]
    fn tampering_fails() {
        let ring = keyring(1, 1);
        let secret = ring.encrypt(PLAINTEXT, CONTEXT);
        for index in [0, secret.ciphertext.len() - 1] {
            let mut tampered = secret.clone();
            tampered.ciphertext[index] ^= 0x01;
            assert_eq!(
                ring.decrypt(&tampered, CONTEXT),
                Err(CryptoError::Undecryptable)
            );
        }
        let mut tampered = secret.clone();
        tampered.nonce[0] ^= 0x01;
        assert_eq!(
            ring.decrypt(&tampered, CONTEXT),
            Err(CryptoError::Undecryptable)
        );
        let mut truncated = secret.clone();
        truncated.ciphertext.truncate(10);
        assert_eq!(
            ring.decrypt(&truncated, CONTEXT),
            Err(CryptoError::Undecryptable)
        );
        truncated.ciphertext.clear();
        assert_eq!(
            ring.decrypt(&truncated, CONTEXT),
            Err(CryptoError::Undecryptable)
        );
    }

    #[test]
    fn edited_key_version_fails_even_with_the_same_key() {
        // Same key under versions 1 and 2: the version is authenticated, so relabelling fails.
        let ring = Keyring::new(2, key(1), BTreeMap::from([(1, key(1))]));
        let mut secret = ring.encrypt(PLAINTEXT, CONTEXT);
        secret.key_version = 1;
        assert_eq!(
            ring.decrypt(&secret, CONTEXT),
            Err(CryptoError::Undecryptable)
        );
    }

    #[test]
    fn wrong_key_fails_closed() {
        let secret = keyring(1, 1).encrypt(PLAINTEXT, CONTEXT);
        assert_eq!(
            keyring(1, 2).decrypt(&secret, CONTEXT),
            Err(CryptoError::Undecryptable)
        );
    }

    #[test]
    fn unknown_version() {
        let secret = keyring(3, 1).encrypt(PLAINTEXT, CONTEXT);
        assert_eq!(
            keyring(1, 1).decrypt(&secret, CONTEXT),
            Err(CryptoError::UnknownKeyVersion(3))
        );
        assert_eq!(
            keyring(1, 1).reencrypt(&secret, CONTEXT),
            Err(CryptoError::UnknownKeyVersion(3))
        );
    }

    #[test]
    fn wrong_nonce_length_does_not_panic() {
        let ring = keyring(1, 1);
        let secret = ring.encrypt(PLAINTEXT, CONTEXT);
        for len in [0, 11, 13, 16] {
            let mut bad = secret.clone();
            bad.nonce.resize(len, 0);
            assert_eq!(ring.decrypt(&bad, CONTEXT), Err(CryptoError::Undecryptable));
        }
    }

    #[test]
    fn non_utf8_plaintext_is_undecryptable() {
        let ring = keyring(1, 1);
        let cipher = cipher(&key(1));
        let nonce = [9u8; NONCE_LEN];
        let ciphertext = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &[0xff, 0xfe, 0x00],
                    aad: &associated_data(1, CONTEXT),
                },
            )
            .unwrap();
        let secret = EncryptedSecret {
            key_version: 1,
            nonce: nonce.to_vec(),
            ciphertext,
        };
        assert_eq!(
            ring.decrypt(&secret, CONTEXT),
            Err(CryptoError::Undecryptable)
        );
    }

    #[test]
    fn rotation() {
        let v1 = keyring(1, 1);
        let old = v1.encrypt(PLAINTEXT, CONTEXT);
        assert!(v1.is_current(&old));

        let v2 = Keyring::new(2, key(2), BTreeMap::from([(1, key(1))]));
        assert_eq!(v2.current_version(), 2);
        assert!(!v2.is_current(&old));
        // Old data stays readable during the rotation.
        assert_eq!(v2.decrypt(&old, CONTEXT).unwrap().expose(), PLAINTEXT);

        let new = v2.reencrypt(&old, CONTEXT).unwrap();
        assert_eq!(new.key_version, 2);
        assert!(v2.is_current(&new));
        assert_ne!(new.nonce, old.nonce);

        // After the rotation the old key can be dropped.
        let only_v2 = keyring(2, 2);
        assert_eq!(only_v2.decrypt(&new, CONTEXT).unwrap().expose(), PLAINTEXT);
        assert!(only_v2.is_current(&new));
        assert_eq!(
            only_v2.decrypt(&old, CONTEXT),
            Err(CryptoError::UnknownKeyVersion(1))
        );

        // The context still binds after re-encryption.
        assert_eq!(
            v2.reencrypt(&old, b"user:other:openai_api_key"),
            Err(CryptoError::Undecryptable)
        );
    }

    #[test]
    fn current_key_wins_over_a_previous_key_with_the_same_version() {
        let ring = Keyring::new(2, key(2), BTreeMap::from([(1, key(1)), (2, key(9))]));
        let secret = ring.encrypt(PLAINTEXT, CONTEXT);
        assert_eq!(
            keyring(2, 2).decrypt(&secret, CONTEXT).unwrap().expose(),
            PLAINTEXT
        );
        assert_eq!(
            format!("{ring:?}"),
            "Keyring { current_version: 2, previous_versions: [1] }"
        );
    }

    #[test]
    fn fresh_nonce_every_time() {
        let ring = keyring(1, 1);
        let a = ring.encrypt(PLAINTEXT, CONTEXT);
        let b = ring.encrypt(PLAINTEXT, CONTEXT);
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
        assert_ne!(a, b);
    }

    #[test]
    fn debug_shows_no_key_or_plaintext() {
        let key_bytes = [0xabu8; MasterKey::LEN];
        let ring = Keyring::new(
            2,
            MasterKey::from_bytes(key_bytes),
            BTreeMap::from([(1, key(0xcd))]),
        );
        let secret = ring.encrypt(PLAINTEXT, CONTEXT);

        let ring_debug = format!("{ring:?}");
        assert_eq!(
            ring_debug,
            "Keyring { current_version: 2, previous_versions: [1] }"
        );
        for needle in [
            BASE64.encode(key_bytes),
            BASE64.encode([0xcdu8; MasterKey::LEN]),
            "171".to_string(), // 0xab as a decimal byte, as a derived Debug would print it
            "205".to_string(), // 0xcd
        ] {
            assert!(!ring_debug.contains(&needle), "{ring_debug}");
        }

        let secret_debug = format!("{secret:?}");
        assert_eq!(
            secret_debug,
            format!(
                "EncryptedSecret {{ key_version: 2, nonce_len: 12, ciphertext_len: {} }}",
                PLAINTEXT.len() + 16
            )
        );
        assert!(!secret_debug.contains(PLAINTEXT));

        let error = ring.decrypt(&secret, b"other").unwrap_err();
        assert!(!format!("{error} {error:?}").contains(PLAINTEXT));
    }

    #[test]
    fn stored_as_bson_integer_and_binaries() {
        let secret = keyring(7, 1).encrypt(PLAINTEXT, CONTEXT);
        let document = bson::to_document(&secret).unwrap();
        assert_eq!(document.len(), 3);
        assert_eq!(document.get("key_version"), Some(&bson::Bson::Int64(7)));
        for (field, bytes) in [("nonce", &secret.nonce), ("ciphertext", &secret.ciphertext)] {
            match document.get(field) {
                Some(bson::Bson::Binary(binary)) => {
                    assert_eq!(binary.subtype, bson::spec::BinarySubtype::Generic);
                    assert_eq!(&binary.bytes, bytes);
                }
                other => panic!("{field} is not binary: {other:?}"),
            }
        }
        let back: EncryptedSecret = bson::from_document(document).unwrap();
        assert_eq!(back, secret);

        // A 32-bit `int` (e.g. written by the shell) reads back as well.
        let mut as_int32 = bson::to_document(&secret).unwrap();
        as_int32.insert("key_version", 7i32);
        let back: EncryptedSecret = bson::from_document(as_int32).unwrap();
        assert_eq!(back, secret);
    }

    #[test]
    fn parse_previous_keys_accepts_lists() {
        let one = BASE64.encode([1u8; 32]);
        let two = BASE64.encode([2u8; 32]);
        assert!(parse_previous_keys("").unwrap().is_empty());
        assert!(parse_previous_keys("  \n ").unwrap().is_empty());

        let keys = parse_previous_keys(&format!(" 1:{one} ,\n 2 : {two} ")).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[&1], key(1));
        assert_eq!(keys[&2], key(2));

        let keys = parse_previous_keys(&format!("4294967295:{one}")).unwrap();
        assert_eq!(keys[&u32::MAX], key(1));
    }

    #[test]
    fn parse_previous_keys_refuses_bad_items_without_echoing_keys() {
        let one = BASE64.encode([1u8; 32]);
        let short = BASE64.encode([3u8; 16]);
        let cases = [
            (format!("1:{one},"), "item 2 is empty"),
            (format!(",1:{one}"), "item 1 is empty"),
            (one.clone(), "item 1 must be VERSION:BASE64_KEY"),
            (
                format!("1:{one},x:{one}"),
                "item 2: version must be a positive integer",
            ),
            (
                format!("-1:{one}"),
                "item 1: version must be a positive integer",
            ),
            (
                format!("4294967296:{one}"),
                "item 1: version must be a positive integer",
            ),
            (format!("0:{one}"), "item 1: version must be at least 1"),
            (
                format!("1:{short}"),
                "item 1: key must decode to exactly 32 bytes, got 16",
            ),
            (
                "1:not base64!".to_string(),
                "item 1: key must be base64 (standard alphabet)",
            ),
            (
                format!("2:{one}, 2:{one}"),
                "item 2: version 2 appears more than once",
            ),
        ];
        for (input, expected) in cases {
            let error = parse_previous_keys(&input).unwrap_err();
            assert_eq!(error, expected, "input {input:?}");
            assert!(!error.contains(&one) && !error.contains(&short));
        }
    }

    #[test]
    fn a_credential_is_encrypted_under_its_own_name() {
        // The stored field and the encryption context must keep naming the same thing.
        for credential in Credential::ALL {
            assert_eq!(TenantSecret::of(credential).name(), credential.name());
        }
    }
}
