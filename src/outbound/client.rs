//! The HTTP client for URLs tenants control (tool endpoints, webhooks): it connects only to
//! addresses the [`AllowList`] permits, checked at connect time by its own resolver, so a name
//! that resolves to a public address when checked and to `127.0.0.1` when connected (DNS
//! rebinding) still cannot reach the internal network. It follows no redirect (the target of a
//! redirect was never checked) and uses no proxy (a proxy would connect for us, unchecked).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::address_policy::{AllowList, Refusal};

/// Resolves names like the system does, then keeps only the addresses the allow-list permits.
#[derive(Debug, Clone)]
struct CheckedResolver {
    allow: Arc<AllowList>,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = Arc::clone(&self.allow);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            // The port is replaced by reqwest with the URL's own.
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let permitted: Vec<SocketAddr> = resolved
                .filter(|address| allow.permits(Some(&host), address.ip()))
                .collect();
            if permitted.is_empty() {
                let refusal = Refusal::NoPublicAddress(host);
                return Err(Box::new(refusal) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

/// A client for tenant-controlled URLs. Check each URL with [`AllowList::check_url`] before
/// sending: address literals never reach the resolver.
pub fn checked_client(allow: Arc<AllowList>, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(CheckedResolver { allow }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .user_agent(concat!("voxbridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a client with a resolver and no TLS customisation builds")
}

/// Reads at most `limit` bytes of the body; answers the text (lossy UTF-8, cut at a character
/// boundary) and whether there was more.
pub async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<(String, bool), reqwest::Error> {
    let mut body: Vec<u8> = Vec::new();
    let mut truncated = false;
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    let mut text = String::from_utf8_lossy(&body).into_owned();
    if truncated {
        // A multi-byte character cut in two decodes as U+FFFD; drop it.
        while text.ends_with('\u{FFFD}') {
            text.pop();
        }
    }
    Ok((text, truncated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{App, HttpResponse, HttpServer, web};
    use url::Url;

    /// A server on 127.0.0.1 answering 200 `ok` at `/` and a redirect at `/away`.
    async fn local_server() -> u16 {
        let server = HttpServer::new(|| {
            App::new()
                .route("/", web::to(|| async { HttpResponse::Ok().body("ok") }))
                .route(
                    "/away",
                    web::to(|| async {
                        HttpResponse::Found()
                            .insert_header(("location", "http://169.254.169.254/"))
                            .finish()
                    }),
                )
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let port = server.addrs()[0].port();
        tokio::spawn(server.run());
        port
    }

    async fn get(allow: &str, url: &str) -> Result<reqwest::Response, String> {
        let allow = Arc::new(AllowList::parse(allow).unwrap());
        let url = Url::parse(url).unwrap();
        allow
            .check_url(&url)
            .map_err(|refusal| refusal.to_string())?;
        checked_client(allow, Duration::from_secs(5))
            .get(url)
            .send()
            .await
            .map_err(|err| crate::domain::error_chain::ErrorChain(&err).to_string())
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_at_connect_time() {
        let port = local_server().await;
        // `localhost` passes the URL check (it is a name); the resolver then refuses every
        // address it resolves to. An address literal is refused by the URL check itself.
        let refused = get("", &format!("https://localhost:{port}/"))
            .await
            .unwrap_err();
        assert!(
            refused.contains("resolves to no public address"),
            "{refused}"
        );
        let literal = get("", &format!("https://127.0.0.1:{port}/"))
            .await
            .unwrap_err();
        assert!(literal.contains("not a public address"), "{literal}");
    }

    #[tokio::test]
    async fn allow_listed_local_hosts_are_reached_and_redirects_are_not_followed() {
        let port = local_server().await;
        let by_range = get("127.0.0.0/8", &format!("http://127.0.0.1:{port}/"))
            .await
            .unwrap();
        assert_eq!(by_range.text().await.unwrap(), "ok");
        let by_name = get("localhost", &format!("http://localhost:{port}/"))
            .await
            .unwrap();
        assert_eq!(by_name.status(), 200);
        let redirect = get("127.0.0.1", &format!("http://127.0.0.1:{port}/away"))
            .await
            .unwrap();
        assert_eq!(redirect.status(), 302, "answered, not followed");
    }
}
