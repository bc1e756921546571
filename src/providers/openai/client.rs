//! Opening the Realtime WebSocket, and reading how OpenAI closed it.
//!
//! The handshake is GA-only: `Authorization: Bearer <key>` and nothing OpenAI-specific (the
//! `OpenAI-Beta` header makes the server close the socket). The whole connect, DNS to HTTP
//! upgrade, is bounded by one timeout, because a caller is waiting on the line. Errors carry a
//! stable [`ConnectError::code`] for the call log; the API key never appears in them.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use url::Url;

use crate::domain::secret::{REDACTED, SecretString};

/// An open Realtime socket.
pub type RealtimeSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Largest message (and frame) accepted from the server. OpenAI's appends are capped at 15 MiB
/// and its own events are far smaller; the cap keeps a runaway peer from exhausting memory.
pub(crate) const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Longest message kept from an HTTP error body, in characters: enough for OpenAI's messages,
/// short enough for a log line.
pub(crate) const MAX_ERROR_MESSAGE_CHARS: usize = 200;

/// Opens Realtime sockets. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RealtimeClient {
    url: Url,
    connect_timeout: Duration,
}

impl RealtimeClient {
    /// `url` is the endpoint, normally `wss://api.openai.com/v1/realtime` (`ws://` for tests and fakes).
    pub(crate) fn new(url: Url, connect_timeout: Duration) -> Self {
        Self {
            url,
            connect_timeout,
        }
    }

    /// `url` with `model=<model>` set in the query (replacing any existing model param). Other
    /// query parameters are kept.
    pub(crate) fn url_for(&self, model: &str) -> Url {
        let mut url = self.url.clone();
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(name, _)| name != "model")
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .append_pair("model", model);
        url
    }

    /// Opens the socket: `GET <url>?model=<model>`, header `Authorization: Bearer <key>` and
    /// nothing OpenAI-specific (never `OpenAI-Beta`). TCP_NODELAY on, since every event is a
    /// small latency-sensitive frame. The whole connect (DNS, TCP, TLS, HTTP upgrade) is bounded
    /// by the connect timeout. `ws://` and `wss://` both work (rustls, webpki roots).
    pub(crate) async fn connect(
        &self,
        api_key: &SecretString,
        model: &str,
    ) -> Result<RealtimeSocket, ConnectError> {
        let request = self.request(api_key, model)?;
        let handshake =
            tokio_tungstenite::connect_async_with_config(request, Some(socket_config()), true);
        match tokio::time::timeout(self.connect_timeout, handshake).await {
            Err(_elapsed) => Err(ConnectError::Timeout),
            Ok(Ok((socket, _response))) => Ok(socket),
            Ok(Err(err)) => Err(ConnectError::from_handshake(err, api_key)),
        }
    }

    /// Like [`Self::connect`], over a TCP connection the caller opened to an address it
    /// checked (a tenant's own endpoint: the address rules are the caller's): TLS for `wss`,
    /// then the upgrade, within the connect timeout.
    pub async fn connect_over(
        &self,
        stream: TcpStream,
        api_key: &SecretString,
        model: &str,
    ) -> Result<RealtimeSocket, ConnectError> {
        let request = self.request(api_key, model)?;
        let _ = stream.set_nodelay(true);
        let handshake = tokio_tungstenite::client_async_tls_with_config(
            request,
            stream,
            Some(socket_config()),
            None,
        );
        match tokio::time::timeout(self.connect_timeout, handshake).await {
            Err(_elapsed) => Err(ConnectError::Timeout),
            Ok(Ok((socket, _response))) => Ok(socket),
            Ok(Err(err)) => Err(ConnectError::from_handshake(err, api_key)),
        }
    }

    /// The upgrade request: the URL with the model, and the key as a bearer token.
    fn request(
        &self,
        api_key: &SecretString,
        model: &str,
    ) -> Result<tungstenite::handshake::client::Request, ConnectError> {
        let mut request = self
            .url_for(model)
            .as_str()
            .into_client_request()
            .map_err(|err| ConnectError::from_handshake(err, api_key))?;
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", api_key.expose()))
            .map_err(|_| ConnectError::InvalidKey)?;
        authorization.set_sensitive(true);
        request.headers_mut().insert(AUTHORIZATION, authorization);
        Ok(request)
    }
}

/// Limits of every Realtime socket.
fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(crate::providers::realtime::SOCKET_READ_BUFFER_BYTES)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// Why the socket could not be opened. Display never includes the API key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConnectError {
    #[error("connecting to OpenAI Realtime timed out")]
    Timeout,
    /// An HTTP status instead of 101 (401, 403, 429, 5xx…). `message` is OpenAI's
    /// `error.message` from the JSON body, if any, cut to [`MAX_ERROR_MESSAGE_CHARS`].
    #[error("OpenAI Realtime refused the connection with HTTP {status}{}", fmt_message(.message))]
    Rejected {
        status: u16,
        message: Option<String>,
    },
    /// The key contains characters an HTTP header cannot carry, so it was not sent at all.
    #[error("the OpenAI API key is not a valid HTTP header value")]
    InvalidKey,
    /// DNS, TCP, TLS or WebSocket protocol failure.
    #[error("cannot reach OpenAI Realtime: {0}")]
    Network(String),
}

fn fmt_message(message: &Option<String>) -> String {
    match message {
        Some(message) => format!(": {message}"),
        None => String::new(),
    }
}

impl ConnectError {
    /// A stable snake_case code for the call log's `error.code`.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            ConnectError::Timeout => "openai_connect_timeout",
            ConnectError::Rejected { status: 401, .. } | ConnectError::InvalidKey => {
                "openai_key_rejected"
            }
            ConnectError::Rejected { status: 403, .. } => "openai_forbidden",
            ConnectError::Rejected { status: 429, .. } => "openai_rate_limited",
            ConnectError::Rejected { .. } => "openai_handshake_rejected",
            ConnectError::Network(_) => "openai_unreachable",
        }
    }

    /// Maps a tungstenite failure, scrubbing the key from any text just in case a peer or a
    /// library echoes it.
    fn from_handshake(err: tungstenite::Error, api_key: &SecretString) -> Self {
        match err {
            tungstenite::Error::Http(response) => ConnectError::Rejected {
                status: response.status().as_u16(),
                message: response
                    .body()
                    .as_deref()
                    .and_then(error_message)
                    .map(|message| scrub(&message, api_key)),
            },
            other => ConnectError::Network(scrub(&other.to_string(), api_key)),
        }
    }
}

/// OpenAI's `error.message` from an HTTP error body, cut to [`MAX_ERROR_MESSAGE_CHARS`].
/// tungstenite hands over only the body bytes that arrived with the headers, so a body may be
/// cut short; then there is no message.
fn error_message(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Option<ErrorObject>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorObject {
        message: Option<String>,
    }
    let message = serde_json::from_slice::<Body>(body).ok()?.error?.message?;
    let message = message.trim();
    if message.is_empty() {
        return None;
    }
    Some(match message.char_indices().nth(MAX_ERROR_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_owned(),
    })
}

fn scrub(text: &str, api_key: &SecretString) -> String {
    let key = api_key.expose();
    if key.is_empty() {
        text.to_owned()
    } else {
        text.replace(key, REDACTED)
    }
}

impl From<ConnectError> for crate::providers::realtime::ConnectFailure {
    fn from(err: ConnectError) -> Self {
        Self {
            code: err.code(),
            message: err.to_string(),
        }
    }
}

/// How OpenAI closed the socket, from the close frame's code and reason (OpenAI puts
/// `<type>.<code>` in the reason, e.g. `invalid_request_error.invalid_api_key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseKind {
    /// 1000.
    Normal,
    /// 3000, or a reason naming `invalid_api_key`. Never retry.
    AuthRejected,
    /// 4000 / `beta_api_shape_disabled`: a bug in what we sent. Never retry.
    BetaShapeRejected,
    /// The session reached its maximum duration (1001 "maximum duration …", or
    /// `session_expired`). A new socket is a new session.
    SessionExpired,
    /// 1001 otherwise, 1012 (restart), 1013 (try again later). Retryable.
    ServerGoingAway,
    /// 1005/1006/1011/1015 and anything else. Retryable.
    Abnormal,
}

/// Classifies a close. The reason is checked first, since it is more specific than the code;
/// pass code 1005 and an empty reason when the socket ended without a close frame.
pub fn classify_close(code: u16, reason: &str) -> CloseKind {
    let reason = reason.to_ascii_lowercase();
    if reason.contains("invalid_api_key") {
        return CloseKind::AuthRejected;
    }
    if reason.contains("beta_api_shape_disabled") {
        return CloseKind::BetaShapeRejected;
    }
    if reason.contains("session_expired") || (code == 1001 && reason.contains("maximum duration")) {
        return CloseKind::SessionExpired;
    }
    match code {
        1000 => CloseKind::Normal,
        3000 => CloseKind::AuthRejected,
        4000 => CloseKind::BetaShapeRejected,
        1001 | 1012 | 1013 => CloseKind::ServerGoingAway,
        _ => CloseKind::Abnormal,
    }
}

impl CloseKind {
    /// A stable snake_case code for the call log's `error.code`.
    pub(crate) fn error_code(self) -> &'static str {
        match self {
            CloseKind::Normal => "openai_closed",
            CloseKind::AuthRejected => "openai_key_rejected",
            CloseKind::BetaShapeRejected => "openai_beta_shape_rejected",
            CloseKind::SessionExpired => "openai_session_expired",
            CloseKind::ServerGoingAway => "openai_going_away",
            CloseKind::Abnormal => "openai_connection_lost",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use futures_util::{SinkExt, StreamExt};
    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
    use tokio_tungstenite::tungstenite::http::{self, HeaderMap};

    use super::*;

    const KEY: &str = "sk-proj-test-4f9c2a7e1b";
    const TIMEOUT: Duration = Duration::from_millis(200);
    /// Guards every test against hanging; far above anything the tests wait for.
    const TEST_GUARD: Duration = Duration::from_secs(10);

    fn key() -> SecretString {
        SecretString::new(KEY)
    }

    fn client(addr: SocketAddr, path: &str) -> RealtimeClient {
        let url = Url::parse(&format!("ws://{addr}{path}")).unwrap();
        RealtimeClient::new(url, TIMEOUT)
    }

    async fn connect(client: &RealtimeClient, model: &str) -> Result<RealtimeSocket, ConnectError> {
        tokio::time::timeout(TEST_GUARD, client.connect(&key(), model))
            .await
            .expect("connect must end on its own")
    }

    fn assert_key_hidden(err: &ConnectError) {
        assert!(!err.to_string().contains(KEY), "{err}");
        assert!(!format!("{err:?}").contains(KEY), "{err:?}");
    }

    /// A server that accepts the upgrade, or answers it with `refusal`, and reports the request
    /// it saw (and, after an upgrade, the frame the client sent).
    #[allow(clippy::result_large_err)] // The callback's signature is tungstenite's.
    async fn upgrade_server(
        refusal: Option<ErrorResponse>,
    ) -> (
        SocketAddr,
        tokio::task::JoinHandle<(String, HeaderMap, Option<String>)>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut seen = None;
            let callback = |request: &Request, response: Response| {
                seen = Some((request.uri().to_string(), request.headers().clone()));
                match refusal {
                    Some(refusal) => Err(refusal),
                    None => Ok(response),
                }
            };
            let echoed = match tokio_tungstenite::accept_hdr_async(stream, callback).await {
                Ok(mut socket) => {
                    socket
                        .send(Message::text("{\"type\":\"session.created\"}"))
                        .await
                        .unwrap();
                    match socket.next().await {
                        Some(Ok(Message::Text(text))) => Some(text.to_string()),
                        other => panic!("expected a text frame, got {other:?}"),
                    }
                }
                Err(_) => None,
            };
            let (uri, headers) = seen.expect("the server saw the request");
            (uri, headers, echoed)
        });
        (addr, server)
    }

    fn refusal(status: u16, body: &str) -> ErrorResponse {
        http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Some(body.to_owned()))
            .unwrap()
    }

    #[tokio::test]
    async fn connects_with_bearer_auth_and_no_beta_header() {
        let (addr, server) = upgrade_server(None).await;
        let client = client(addr, "/v1/realtime");
        let mut socket = connect(&client, "gpt-realtime").await.unwrap();

        // The socket works both ways.
        let first = socket.next().await.unwrap().unwrap();
        assert_eq!(
            first.into_text().unwrap().as_str(),
            "{\"type\":\"session.created\"}"
        );
        socket.send(Message::text("ping")).await.unwrap();

        let (uri, headers, echoed) = server.await.unwrap();
        assert_eq!(uri, "/v1/realtime?model=gpt-realtime");
        assert_eq!(
            headers.get("authorization").unwrap(),
            &format!("Bearer {KEY}")
        );
        assert_eq!(headers.get_all("authorization").iter().count(), 1);
        assert!(headers.get("openai-beta").is_none(), "{headers:?}");
        assert!(
            headers
                .keys()
                .all(|name| !name.as_str().starts_with("openai")),
            "{headers:?}"
        );
        assert_eq!(echoed.as_deref(), Some("ping"));
    }

    #[tokio::test]
    async fn http_401_is_a_rejected_key_with_openais_message() {
        // OpenAI's messages may quote the key; ours must not.
        let body = format!(
            r#"{{"error":{{"message":"Incorrect API key provided: {KEY}.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}}}"#
        );
        let (addr, server) = upgrade_server(Some(refusal(401, &body))).await;
        let err = connect(&client(addr, "/v1/realtime"), "gpt-realtime")
            .await
            .unwrap_err();
        assert_eq!(
            err,
            ConnectError::Rejected {
                status: 401,
                message: Some("Incorrect API key provided: [redacted].".to_owned()),
            }
        );
        assert_eq!(err.code(), "openai_key_rejected");
        assert_key_hidden(&err);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn http_403_is_forbidden() {
        let body = r#"{"error":{"message":"You do not have access to gpt-realtime-2.","type":"invalid_request_error","code":"model_not_found"}}"#;
        let (addr, server) = upgrade_server(Some(refusal(403, body))).await;
        let err = connect(&client(addr, "/v1/realtime"), "gpt-realtime-2")
            .await
            .unwrap_err();
        assert_eq!(
            err,
            ConnectError::Rejected {
                status: 403,
                message: Some("You do not have access to gpt-realtime-2.".to_owned()),
            }
        );
        assert_eq!(err.code(), "openai_forbidden");
        assert_eq!(
            err.to_string(),
            "OpenAI Realtime refused the connection with HTTP 403: You do not have access to gpt-realtime-2."
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn other_statuses_keep_their_code_and_need_no_json() {
        let (addr, server) = upgrade_server(Some(refusal(429, "{}"))).await;
        let err = connect(&client(addr, "/"), "m").await.unwrap_err();
        assert_eq!(
            err,
            ConnectError::Rejected {
                status: 429,
                message: None
            }
        );
        assert_eq!(err.code(), "openai_rate_limited");
        server.await.unwrap();

        let (addr, server) = upgrade_server(Some(refusal(502, "<html>Bad gateway</html>"))).await;
        let err = connect(&client(addr, "/"), "m").await.unwrap_err();
        assert_eq!(
            err,
            ConnectError::Rejected {
                status: 502,
                message: None
            }
        );
        assert_eq!(err.code(), "openai_handshake_rejected");
        assert_eq!(
            err.to_string(),
            "OpenAI Realtime refused the connection with HTTP 502"
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn long_messages_are_cut() {
        let long = "x".repeat(1_000);
        let body = format!(r#"{{"error":{{"message":"{long}"}}}}"#);
        let (addr, server) = upgrade_server(Some(refusal(500, &body))).await;
        let err = connect(&client(addr, "/"), "m").await.unwrap_err();
        let ConnectError::Rejected {
            message: Some(message),
            ..
        } = &err
        else {
            panic!("expected a rejection with a message, got {err:?}");
        };
        assert_eq!(message.chars().count(), MAX_ERROR_MESSAGE_CHARS + 1);
        assert!(message.ends_with('…'));
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        // The kernel completes the TCP handshake from the backlog; nobody ever reads the request.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = client(listener.local_addr().unwrap(), "/v1/realtime");
        let err = connect(&client, "gpt-realtime").await.unwrap_err();
        assert_eq!(err, ConnectError::Timeout);
        assert_eq!(err.code(), "openai_connect_timeout");
        assert_key_hidden(&err);
        drop(listener);
    }

    #[tokio::test]
    async fn nothing_listening_is_a_network_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = connect(&client(addr, "/v1/realtime"), "gpt-realtime")
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectError::Network(_)), "{err:?}");
        assert_eq!(err.code(), "openai_unreachable");
        assert_key_hidden(&err);
    }

    #[tokio::test]
    async fn wss_goes_through_tls() {
        // A plain TCP server that hangs up: the TLS handshake fails cleanly, which shows that the
        // wss:// path builds its rustls configuration (crypto provider, webpki roots).
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            drop(stream);
        });
        let client = RealtimeClient::new(
            Url::parse(&format!("wss://{addr}/v1/realtime")).unwrap(),
            Duration::from_secs(5),
        );
        let err = connect(&client, "gpt-realtime").await.unwrap_err();
        assert!(matches!(err, ConnectError::Network(_)), "{err:?}");
        assert_key_hidden(&err);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_key_that_cannot_be_a_header_is_never_sent() {
        let client = RealtimeClient::new(Url::parse("ws://127.0.0.1:9/").unwrap(), TIMEOUT);
        let bad_key = SecretString::new("sk-line\nbreak");
        let err = client.connect(&bad_key, "m").await.unwrap_err();
        assert_eq!(err, ConnectError::InvalidKey);
        assert_eq!(err.code(), "openai_key_rejected");
        assert!(!err.to_string().contains("sk-line"));
    }

    #[test]
    fn url_for_sets_the_model_and_keeps_other_parameters() {
        let client = RealtimeClient::new(
            Url::parse("wss://api.openai.com/v1/realtime").unwrap(),
            TIMEOUT,
        );
        assert_eq!(
            client.url_for("gpt-realtime").as_str(),
            "wss://api.openai.com/v1/realtime?model=gpt-realtime"
        );
        let client = RealtimeClient::new(
            Url::parse("ws://localhost:8080/v1/realtime?model=old&region=eu&model=older").unwrap(),
            TIMEOUT,
        );
        assert_eq!(
            client.url_for("gpt-realtime-mini").as_str(),
            "ws://localhost:8080/v1/realtime?region=eu&model=gpt-realtime-mini"
        );
        assert_eq!(
            client.url_for("a b&c").query(),
            Some("region=eu&model=a+b%26c")
        );
    }

    #[test]
    fn close_codes_and_reasons_are_classified() {
        let cases: &[(u16, &str, CloseKind)] = &[
            (1000, "", CloseKind::Normal),
            (1000, "bye", CloseKind::Normal),
            (
                3000,
                "invalid_request_error.invalid_api_key",
                CloseKind::AuthRejected,
            ),
            (3000, "", CloseKind::AuthRejected),
            (
                1008,
                "invalid_request_error.invalid_api_key",
                CloseKind::AuthRejected,
            ),
            (
                4000,
                "invalid_request_error.beta_api_shape_disabled",
                CloseKind::BetaShapeRejected,
            ),
            (4000, "", CloseKind::BetaShapeRejected),
            (
                1008,
                "invalid_request_error.beta_api_shape_disabled",
                CloseKind::BetaShapeRejected,
            ),
            (
                1001,
                "Your session hit the maximum duration of 60 minutes.",
                CloseKind::SessionExpired,
            ),
            (
                1000,
                "invalid_request_error.session_expired",
                CloseKind::SessionExpired,
            ),
            (1001, "", CloseKind::ServerGoingAway),
            (1001, "server shutting down", CloseKind::ServerGoingAway),
            (1012, "", CloseKind::ServerGoingAway),
            (1013, "", CloseKind::ServerGoingAway),
            (1005, "", CloseKind::Abnormal),
            (1006, "", CloseKind::Abnormal),
            (1011, "internal error", CloseKind::Abnormal),
            (1015, "", CloseKind::Abnormal),
            (4999, "something new", CloseKind::Abnormal),
            (1011, "maximum duration", CloseKind::Abnormal),
        ];
        for &(code, reason, expected) in cases {
            assert_eq!(classify_close(code, reason), expected, "{code} {reason:?}");
        }
    }

    #[test]
    fn close_kinds_have_stable_codes() {
        let codes = [
            (CloseKind::Normal, "openai_closed"),
            (CloseKind::AuthRejected, "openai_key_rejected"),
            (CloseKind::BetaShapeRejected, "openai_beta_shape_rejected"),
            (CloseKind::SessionExpired, "openai_session_expired"),
            (CloseKind::ServerGoingAway, "openai_going_away"),
            (CloseKind::Abnormal, "openai_connection_lost"),
        ];
        for (kind, code) in codes {
            assert_eq!(kind.error_code(), code);
        }
    }
}
