//! Standard Webhooks 1.0 signatures (`webhook-id`, `webhook-timestamp`, `webhook-signature`), so
//! tenants can verify our requests to their tools and webhooks with an off-the-shelf library.
//!
//! Signed content is `{id}.{timestamp}.{raw body}`; the key is the secret without its `whsec_`
//! prefix, base64-decoded; the signature is `v1,` + base64 of HMAC-SHA256. During a rotation a
//! request carries one `v1` entry per secret, and a receiver accepts any match.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;

use crate::domain::secret::SecretString;

/// The prefix of a secret as tenants see it.
const PREFIX: &str = "whsec_";
/// Bytes of a secret we generate (the spec allows 24 to 64).
const GENERATED_BYTES: usize = 32;
/// How far a receiver lets `webhook-timestamp` be from its clock, in seconds (the reference
/// libraries' value).
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// A signing secret: `whsec_` + base64 of 24 to 64 random bytes.
#[derive(Debug, Clone)]
pub struct SigningSecret {
    text: SecretString,
    key: Vec<u8>,
}

/// Why a secret or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("a signing secret is `whsec_` followed by base64 of 24 to 64 bytes")]
    MalformedSecret,
    #[error("the webhook-timestamp is not a number of seconds")]
    MalformedTimestamp,
    #[error("the webhook-timestamp is more than five minutes from now")]
    StaleTimestamp,
    #[error("no v1 signature matches")]
    NoMatch,
}

impl SigningSecret {
    /// A fresh random secret.
    pub fn generate() -> SigningSecret {
        let mut bytes = [0_u8; GENERATED_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        let text = format!("{PREFIX}{}", BASE64.encode(bytes));
        SigningSecret {
            text: SecretString::new(text),
            key: bytes.to_vec(),
        }
    }

    /// Reads a secret in its `whsec_…` form.
    pub fn parse(text: &str) -> Result<SigningSecret, SigningError> {
        let encoded = text
            .strip_prefix(PREFIX)
            .ok_or(SigningError::MalformedSecret)?;
        let key = BASE64
            .decode(encoded)
            .map_err(|_| SigningError::MalformedSecret)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SigningError::MalformedSecret);
        }
        Ok(SigningSecret {
            text: SecretString::new(text),
            key,
        })
    }

    /// The `whsec_…` form, to store (encrypted) and to show the tenant once.
    pub fn expose(&self) -> &str {
        self.text.expose()
    }

    /// `v1,<base64 signature>` of one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", BASE64.encode(self.mac(id, timestamp, body)))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }
}

/// The secrets that sign one tenant's requests (to a tool or a webhook endpoint): the current
/// one and, during a rotation's overlap, the previous one (receivers accept either).
#[derive(Debug, Clone)]
pub struct Signer {
    pub secrets: Vec<SigningSecret>,
}

impl Signer {
    /// `v1,<sig>` for each secret, space-separated.
    pub fn signature_header(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let secrets: Vec<&SigningSecret> = self.secrets.iter().collect();
        signature_header(&secrets, id, timestamp, body)
    }
}

/// The `webhook-signature` header for `secrets` (one entry each, newest first during a
/// rotation).
pub fn signature_header(
    secrets: &[&SigningSecret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|secret| secret.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a receiver does: the timestamp within [`TOLERANCE_SECS`] of `now`, and some `v1` entry
/// of `header` matching (compared in constant time). Used by our fakes and tests, and the
/// reference for tenants.
pub fn verify(
    secret: &SigningSecret,
    id: &str,
    timestamp: &str,
    body: &[u8],
    header: &str,
    now: i64,
) -> Result<(), SigningError> {
    let sent: i64 = timestamp
        .parse()
        .map_err(|_| SigningError::MalformedTimestamp)?;
    if (now - sent).abs() > TOLERANCE_SECS {
        return Err(SigningError::StaleTimestamp);
    }
    let expected = secret.mac(id, sent, body);
    let matches = header.split(' ').any(|entry| {
        entry
            .strip_prefix("v1,")
            .and_then(|signature| BASE64.decode(signature).ok())
            .is_some_and(|signature| {
                let mut mac = Hmac::<Sha256>::new_from_slice(&secret.key)
                    .expect("HMAC takes a key of any length");
                mac.update(id.as_bytes());
                mac.update(b".");
                mac.update(sent.to_string().as_bytes());
                mac.update(b".");
                mac.update(body);
                // `verify_slice` compares lengths, then in constant time.
                signature.len() == expected.len() && mac.verify_slice(&signature).is_ok()
            })
    });
    if matches {
        Ok(())
    } else {
        Err(SigningError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_dm94YnJpZGdlLXRlc3Qtc2lnbmluZy1rZXktMDAwMSE=";
    const SECOND: &str = "whsec_dm94YnJpZGdlLXRlc3Qtc2lnbmluZy1rZXktMDAwMiE=";
    const ID: &str = "msg_2vXbT9kQ4mZ7pL1cR8sN3wY6hJd";
    const TIMESTAMP: i64 = 1_767_225_600;
    const BODY: &[u8] = br#"{"type":"call.ended","timestamp":"2026-01-01T00:00:00Z","data":{"call_id":"call_7f3a9c","end_reason":"caller_hung_up","duration_s":42}}"#;

    #[test]
    fn the_worked_example_and_the_reference_librarys_vector_sign_as_published() {
        let secret = SigningSecret::parse(SECRET).unwrap();
        assert_eq!(
            secret.sign(ID, TIMESTAMP, BODY),
            "v1,Z7Sb6aQxw5D4n3LpxHgacLweeRQejZm9qqlMmawIcA0="
        );
        let reference = SigningSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        assert_eq!(
            reference.sign(
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1_649_367_553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn rotation_sends_both_and_either_verifies() {
        let (first, second) = (
            SigningSecret::parse(SECRET).unwrap(),
            SigningSecret::parse(SECOND).unwrap(),
        );
        let header = signature_header(&[&second, &first], ID, TIMESTAMP, BODY);
        assert_eq!(
            header,
            "v1,oHe1GYJ3ilNeQGrJlqWmGHN5it1QJGyom9FO2z0m7oM= v1,Z7Sb6aQxw5D4n3LpxHgacLweeRQejZm9qqlMmawIcA0="
        );
        let now = TIMESTAMP + 10;
        for secret in [&first, &second] {
            assert_eq!(verify(secret, ID, "1767225600", BODY, &header, now), Ok(()));
        }
    }

    #[test]
    fn wrong_keys_stale_times_and_tampered_bodies_are_refused() {
        let secret = SigningSecret::parse(SECRET).unwrap();
        let now = TIMESTAMP;
        // The most common bug: HMAC keyed with the literal `whsec_…` text.
        let literal_key = "v1,i+h274qnFARutJ/nGB/U+MnMJ1GCYfwvDovzd5y5cf8=";
        assert_eq!(
            verify(&secret, ID, "1767225600", BODY, literal_key, now),
            Err(SigningError::NoMatch)
        );
        let good = secret.sign(ID, TIMESTAMP, BODY);
        assert_eq!(
            verify(&secret, ID, "1767225600", b"{}", &good, now),
            Err(SigningError::NoMatch)
        );
        assert_eq!(
            verify(
                &secret,
                ID,
                "1767225600",
                BODY,
                &good,
                now + TOLERANCE_SECS + 1
            ),
            Err(SigningError::StaleTimestamp)
        );
        assert_eq!(
            verify(&secret, ID, "soon", BODY, &good, now),
            Err(SigningError::MalformedTimestamp)
        );
        // A truncated signature is not a prefix match.
        let short = &good[..good.len() - 8];
        assert_eq!(
            verify(&secret, ID, "1767225600", BODY, short, now),
            Err(SigningError::NoMatch)
        );
    }

    #[test]
    fn secrets_are_whsec_base64_of_24_to_64_bytes() {
        let generated = SigningSecret::generate();
        assert!(generated.expose().starts_with("whsec_"));
        assert!(SigningSecret::parse(generated.expose()).is_ok());
        assert!(SigningSecret::parse("dm94YnJpZGdl").is_err(), "no prefix");
        assert!(SigningSecret::parse("whsec_c2hvcnQ=").is_err(), "too short");
        assert!(SigningSecret::parse("whsec_***").is_err(), "not base64");
        assert!(
            !format!("{generated:?}").contains(generated.expose()),
            "Debug hides it"
        );
    }
}
