//! TCP connections to a WebSocket endpoint a tenant controls (its OpenAI-compatible realtime
//! server): the URL checked like an HTTP tool's, the name resolved here and only the addresses
//! the [`AllowList`] permits connected to, so DNS rebinding cannot reach the internal network.
//! TLS and the upgrade are the caller's (over the stream this returns).

use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;
use url::{Host, Url};

use super::address_policy::{AllowList, Refusal};

/// Why no connection was made.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("cannot reach {host}: {message}")]
    Unreachable { host: String, message: String },
}

/// Connects to the host of `url` (`wss`, or `ws` to an allow-listed host), to the first
/// permitted address that answers.
pub async fn connect_checked(allow: &AllowList, url: &Url) -> Result<TcpStream, SocketError> {
    allow.check_websocket_url(url)?;
    let port = url.port_or_known_default().ok_or(Refusal::NoHost)?;
    let (name, candidates): (String, Vec<SocketAddr>) = match url.host().ok_or(Refusal::NoHost)? {
        // Literals were checked with the URL.
        Host::Ipv4(address) => (
            address.to_string(),
            vec![(IpAddr::V4(address), port).into()],
        ),
        Host::Ipv6(address) => (
            address.to_string(),
            vec![(IpAddr::V6(address), port).into()],
        ),
        Host::Domain(name) => {
            let resolved = tokio::net::lookup_host((name, port)).await.map_err(|err| {
                SocketError::Unreachable {
                    host: name.to_owned(),
                    message: err.to_string(),
                }
            })?;
            let permitted: Vec<SocketAddr> = resolved
                .filter(|address| allow.permits(Some(name), address.ip()))
                .collect();
            if permitted.is_empty() {
                return Err(Refusal::NoPublicAddress(name.to_owned()).into());
            }
            (name.to_owned(), permitted)
        }
    };
    let mut last = String::from("no address");
    for address in candidates {
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(err) => last = err.to_string(),
        }
    }
    Err(SocketError::Unreachable {
        host: name,
        message: last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn internal_addresses_are_refused_unless_allow_listed() {
        let strict = AllowList::default();
        for url in [
            "wss://127.0.0.1/v1/realtime",
            "wss://[::1]/v1/realtime",
            "wss://10.0.0.8/v1/realtime",
            "ws://example.com/v1/realtime",
            "https://example.com/v1/realtime",
            "wss://localhost:9/v1/realtime",
        ] {
            let err = connect_checked(&strict, &Url::parse(url).unwrap())
                .await
                .expect_err(url);
            assert!(matches!(err, SocketError::Refused(_)), "{url}: {err}");
        }
    }

    #[tokio::test]
    async fn an_allow_listed_host_is_connected_to() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let allow = AllowList::parse("127.0.0.0/8").unwrap();
        let url = Url::parse(&format!("ws://127.0.0.1:{port}/v1/realtime")).unwrap();
        let stream = connect_checked(&allow, &url).await.unwrap();
        assert_eq!(stream.peer_addr().unwrap().port(), port);
    }
}
