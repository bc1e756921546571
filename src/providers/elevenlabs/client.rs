//! Opening a conversation with an ElevenLabs agent: a public agent by its id
//! (`{conversation_url}?agent_id=…`), a private one through a signed URL fetched first with the
//! tenant's `xi-api-key` (`GET {api_base_url}/v1/convai/conversation/get-signed-url`), so the
//! key never travels in a WebSocket URL. The whole connect, signed URL included, is bounded by
//! one timeout (a caller is waiting on the line); errors carry a stable code for the call log
//! and never the key.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use url::Url;

use crate::domain::secret::{REDACTED, SecretString};

/// An open conversation socket.
pub type ConvaiSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Largest message accepted from the server: ElevenLabs' own SDK raises its limit to 16 MiB.
const MAX_MESSAGE_BYTES: usize = 16 << 20;
/// Longest message kept from an error answer, in characters.
const MAX_ERROR_MESSAGE_CHARS: usize = 200;

/// Which agent, and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRef<'a> {
    pub agent_id: &'a str,
    /// A private agent needs a signed URL, fetched with the tenant's key.
    pub private: bool,
}

/// Opens conversations. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ConvaiClient {
    /// `https://api.elevenlabs.io` (or a regional host, or a fake).
    api_base_url: Url,
    /// `wss://api.elevenlabs.io/v1/convai/conversation`.
    conversation_url: Url,
    connect_timeout: Duration,
}

impl ConvaiClient {
    pub fn new(api_base_url: Url, conversation_url: Url, connect_timeout: Duration) -> Self {
        Self {
            api_base_url,
            conversation_url,
            connect_timeout,
        }
    }

    /// The public agent's conversation URL.
    pub fn public_url(&self, agent_id: &str) -> Url {
        let mut url = self.conversation_url.clone();
        url.query_pairs_mut().append_pair("agent_id", agent_id);
        url
    }

    /// Opens a conversation with `agent`; `key` is needed for a private agent (and not sent
    /// for a public one). `http` fetches the signed URL.
    pub async fn connect(
        &self,
        http: &reqwest::Client,
        agent: AgentRef<'_>,
        key: Option<&SecretString>,
    ) -> Result<ConvaiSocket, ConnectError> {
        let opening = async {
            let url = if agent.private {
                let key = key.ok_or(ConnectError::MissingKey)?;
                self.signed_url(http, agent.agent_id, key).await?
            } else {
                self.public_url(agent.agent_id)
            };
            let config = WebSocketConfig::default()
                .read_buffer_size(crate::providers::realtime::SOCKET_READ_BUFFER_BYTES)
                .max_message_size(Some(MAX_MESSAGE_BYTES))
                .max_frame_size(Some(MAX_MESSAGE_BYTES));
            tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true)
                .await
                .map(|(socket, _response)| socket)
                .map_err(|error| ConnectError::from_handshake(error, key))
        };
        tokio::time::timeout(self.connect_timeout, opening)
            .await
            .unwrap_or(Err(ConnectError::Timeout))
    }

    /// A signed URL for the private agent `agent_id`, fetched with `key`.
    pub async fn signed_url(
        &self,
        http: &reqwest::Client,
        agent_id: &str,
        key: &SecretString,
    ) -> Result<Url, ConnectError> {
        let mut endpoint = self.api_base_url.clone();
        endpoint.set_path(&format!(
            "{}/v1/convai/conversation/get-signed-url",
            self.api_base_url.path().trim_end_matches('/')
        ));
        endpoint.query_pairs_mut().append_pair("agent_id", agent_id);
        let response = http
            .get(endpoint)
            .header("xi-api-key", key.expose())
            .send()
            .await
            .map_err(|error| ConnectError::Network(scrub(&error.to_string(), Some(key))))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|error| ConnectError::Network(scrub(&error.to_string(), Some(key))))?;
        if status != 200 {
            let message = error_message(&body).map(|message| scrub(&message, Some(key)));
            return Err(match status {
                401 | 403 => ConnectError::KeyRejected { status, message },
                404 => ConnectError::AgentNotFound,
                _ => ConnectError::Rejected { status, message },
            });
        }
        let signed = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|value| value["signed_url"].as_str().map(str::to_owned))
            .ok_or(ConnectError::BadSignedUrl)?;
        Url::parse(&signed)
            .ok()
            .filter(|url| matches!(url.scheme(), "ws" | "wss"))
            .ok_or(ConnectError::BadSignedUrl)
    }
}

/// Why a conversation could not be opened. Display never includes the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("connecting to ElevenLabs timed out")]
    Timeout,
    #[error("the agent is private and the tenant has no ElevenLabs API key")]
    MissingKey,
    #[error("ElevenLabs refused the API key (HTTP {status}){}", detail(.message))]
    KeyRejected {
        status: u16,
        message: Option<String>,
    },
    #[error("ElevenLabs knows no such agent")]
    AgentNotFound,
    #[error("ElevenLabs refused the connection with HTTP {status}{}", detail(.message))]
    Rejected {
        status: u16,
        message: Option<String>,
    },
    #[error("ElevenLabs answered no usable signed URL")]
    BadSignedUrl,
    #[error("cannot reach ElevenLabs: {0}")]
    Network(String),
}

impl From<ConnectError> for crate::providers::realtime::ConnectFailure {
    fn from(err: ConnectError) -> Self {
        Self {
            code: err.code(),
            message: err.to_string(),
        }
    }
}

fn detail(message: &Option<String>) -> String {
    message
        .as_ref()
        .map(|message| format!(": {message}"))
        .unwrap_or_default()
}

impl ConnectError {
    /// A stable code for the call log's `error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            ConnectError::Timeout => "elevenlabs_connect_timeout",
            ConnectError::MissingKey => "elevenlabs_key_missing",
            ConnectError::KeyRejected { .. } => "elevenlabs_key_rejected",
            ConnectError::AgentNotFound => "elevenlabs_agent_not_found",
            ConnectError::Rejected { .. } => "elevenlabs_handshake_rejected",
            ConnectError::BadSignedUrl => "elevenlabs_bad_signed_url",
            ConnectError::Network(_) => "elevenlabs_unreachable",
        }
    }

    fn from_handshake(error: tungstenite::Error, key: Option<&SecretString>) -> Self {
        match error {
            tungstenite::Error::Http(response) => {
                let status = response.status().as_u16();
                let message = response
                    .body()
                    .as_deref()
                    .and_then(error_message)
                    .map(|message| scrub(&message, key));
                match status {
                    401 | 403 => ConnectError::KeyRejected { status, message },
                    404 => ConnectError::AgentNotFound,
                    _ => ConnectError::Rejected { status, message },
                }
            }
            other => ConnectError::Network(scrub(&other.to_string(), key)),
        }
    }
}

/// ElevenLabs' message from an error body: `detail.message`, `detail` as text, or `message`.
fn error_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let message = value["detail"]["message"]
        .as_str()
        .or_else(|| value["detail"].as_str())
        .or_else(|| value["message"].as_str())?
        .trim();
    if message.is_empty() {
        return None;
    }
    Some(message.chars().take(MAX_ERROR_MESSAGE_CHARS).collect())
}

fn scrub(text: &str, key: Option<&SecretString>) -> String {
    match key.map(SecretString::expose) {
        Some(key) if !key.is_empty() => text.replace(key, REDACTED),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_stable_and_messages_never_hold_the_key() {
        let key = SecretString::new("xi-secret-key-1234");
        assert_eq!(
            scrub("refused xi-secret-key-1234 here", Some(&key)),
            format!("refused {REDACTED} here")
        );
        assert_eq!(
            error_message(
                br#"{"detail":{"status":"invalid_api_key","message":"Invalid API key"}}"#
            ),
            Some("Invalid API key".to_owned())
        );
        assert_eq!(
            error_message(br#"{"detail":"Agent not found"}"#),
            Some("Agent not found".to_owned())
        );
        assert_eq!(error_message(b"<html>"), None);
        assert_eq!(ConnectError::MissingKey.code(), "elevenlabs_key_missing");
        assert_eq!(
            ConnectError::KeyRejected {
                status: 401,
                message: None
            }
            .code(),
            "elevenlabs_key_rejected"
        );
    }

    #[test]
    fn a_public_agent_is_reached_by_its_id() {
        let client = ConvaiClient::new(
            Url::parse("https://api.elevenlabs.io").unwrap(),
            Url::parse("wss://api.elevenlabs.io/v1/convai/conversation").unwrap(),
            Duration::from_secs(10),
        );
        assert_eq!(
            client.public_url("agent_123").as_str(),
            "wss://api.elevenlabs.io/v1/convai/conversation?agent_id=agent_123"
        );
    }
}
