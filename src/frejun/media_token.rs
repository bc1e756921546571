//! The token in a stream flow's `ws_url`: proof that the media stream FreJun opens is the one
//! we answered a flow for.
//!
//! FreJun authenticates nothing it sends, so the flow answer carries an unguessable, expiring
//! token bound to the call and the assistant: `v1.<expires unix seconds>.<mac>`, where `mac` is
//! base64url(HMAC-SHA256(url signing key, "voxbridge-media-v1\n{call_id}\n{assistant_id}\n
//! {expires}")). The media endpoint recomputes it from the URL's `call_id` and path's assistant
//! id before doing any work, so a token cannot be replayed for another call or assistant, and
//! stops working at its expiry. The key is `security.url_signing_key`; rotating it invalidates
//! tokens in flight (at most `frejun.media_token_ttl_secs` of them matter).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::domain::secret::SecretString;

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "v1";
const DOMAIN: &str = "voxbridge-media-v1";
/// Length of a base64url SHA-256 MAC without padding.
const MAC_CHARS: usize = 43;

/// Why a presented token is refused. The media endpoint answers all of them the same way (the
/// caller learns nothing); the variants exist for our logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MediaTokenError {
    #[error("the media token is malformed")]
    Malformed,
    #[error("the media token has expired")]
    Expired,
    #[error("the media token does not match this call and assistant")]
    Invalid,
}

/// Signs and verifies media tokens with the URL signing key.
#[derive(Clone)]
pub struct MediaTokens {
    key: SecretString,
}

impl std::fmt::Debug for MediaTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MediaTokens([redacted])")
    }
}

impl MediaTokens {
    pub fn new(key: SecretString) -> Self {
        Self { key }
    }

    /// A token for `call_id` and `assistant_id` valid for `ttl` from `now`.
    pub fn sign(
        &self,
        call_id: &str,
        assistant_id: &str,
        now: SystemTime,
        ttl: Duration,
    ) -> String {
        let expires = unix_seconds(now).saturating_add(ttl.as_secs());
        let mac = self
            .mac(call_id, assistant_id, expires)
            .finalize()
            .into_bytes();
        format!("{VERSION}.{expires}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// Checks that `token` was signed by us for exactly this call and assistant and has not
    /// expired at `now`. The MAC comparison is constant-time.
    pub fn verify(
        &self,
        token: &str,
        call_id: &str,
        assistant_id: &str,
        now: SystemTime,
    ) -> Result<(), MediaTokenError> {
        let mut parts = token.splitn(3, '.');
        let (Some(VERSION), Some(expires), Some(mac)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(MediaTokenError::Malformed);
        };
        let expires = parse_expiry(expires).ok_or(MediaTokenError::Malformed)?;
        if mac.len() != MAC_CHARS {
            return Err(MediaTokenError::Malformed);
        }
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| MediaTokenError::Malformed)?;
        // Check the signature before the expiry, so an expired forgery reads as a forgery.
        self.mac(call_id, assistant_id, expires)
            .verify_slice(&mac)
            .map_err(|_| MediaTokenError::Invalid)?;
        if unix_seconds(now) >= expires {
            return Err(MediaTokenError::Expired);
        }
        Ok(())
    }

    fn mac(&self, call_id: &str, assistant_id: &str, expires: u64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(self.key.expose().as_bytes())
            .expect("HMAC accepts keys of any length");
        // Newline-separated: neither id can contain a newline (they come from URLs and ObjectIds),
        // so two different (call, assistant) pairs never produce the same message.
        mac.update(format!("{DOMAIN}\n{call_id}\n{assistant_id}\n{expires}").as_bytes());
        mac
    }
}

/// The expiry as [`MediaTokens::sign`] writes it: decimal digits, no sign, no leading zero. Any
/// other spelling of the same number (`+5`, `05`) is refused, so that a token has exactly one
/// form that verifies.
fn parse_expiry(text: &str) -> Option<u64> {
    let canonical =
        text.bytes().all(|byte| byte.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALL: &str = "6650f0c2a1b2c3d4e5f60718";
    const ASSISTANT: &str = "6650f0c2a1b2c3d4e5f60719";
    const TTL: Duration = Duration::from_secs(300);

    fn tokens() -> MediaTokens {
        MediaTokens::new(SecretString::new("a-url-signing-key-of-enough-length-0123"))
    }

    #[test]
    fn a_fresh_token_verifies_for_its_call_and_assistant() {
        let now = SystemTime::now();
        let token = tokens().sign(CALL, ASSISTANT, now, TTL);
        assert!(token.starts_with("v1."));
        assert_eq!(tokens().verify(&token, CALL, ASSISTANT, now), Ok(()));
        let almost = now + TTL - Duration::from_secs(1);
        assert_eq!(tokens().verify(&token, CALL, ASSISTANT, almost), Ok(()));
    }

    #[test]
    fn a_token_expires_after_its_lifetime() {
        let now = SystemTime::now();
        let token = tokens().sign(CALL, ASSISTANT, now, TTL);
        assert_eq!(
            tokens().verify(&token, CALL, ASSISTANT, now + TTL),
            Err(MediaTokenError::Expired)
        );
    }

    #[test]
    fn a_token_is_bound_to_its_call_and_assistant() {
        let now = SystemTime::now();
        let token = tokens().sign(CALL, ASSISTANT, now, TTL);
        assert_eq!(
            tokens().verify(&token, "another-call", ASSISTANT, now),
            Err(MediaTokenError::Invalid)
        );
        assert_eq!(
            tokens().verify(&token, CALL, "another-assistant", now),
            Err(MediaTokenError::Invalid)
        );
        // Swapping the two ids does not verify either.
        assert_eq!(
            tokens().verify(&token, ASSISTANT, CALL, now),
            Err(MediaTokenError::Invalid)
        );
    }

    #[test]
    fn a_token_signed_with_another_key_or_a_moved_expiry_is_refused() {
        let now = SystemTime::now();
        let other = MediaTokens::new(SecretString::new("another-signing-key-of-enough-length-99"));
        let forged = other.sign(CALL, ASSISTANT, now, TTL);
        assert_eq!(
            tokens().verify(&forged, CALL, ASSISTANT, now),
            Err(MediaTokenError::Invalid)
        );

        let token = tokens().sign(CALL, ASSISTANT, now, TTL);
        let mut parts: Vec<&str> = token.split('.').collect();
        let later = (unix_seconds(now) + 10_000).to_string();
        parts[1] = &later;
        assert_eq!(
            tokens().verify(&parts.join("."), CALL, ASSISTANT, now),
            Err(MediaTokenError::Invalid)
        );
    }

    #[test]
    fn malformed_tokens_are_refused_without_panicking() {
        let now = SystemTime::now();
        for token in [
            "",
            "v1",
            "v1.",
            "v1.123",
            "v2.123.abc",
            "v1.notanumber.AAAA",
            "v1.123.short",
            "v1.123.!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
            "v1.99999999999999999999999.AAAA",
        ] {
            assert_eq!(
                tokens().verify(token, CALL, ASSISTANT, now),
                Err(MediaTokenError::Malformed),
                "{token:?}"
            );
        }
    }
}
