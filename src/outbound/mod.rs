//! Requests to URLs tenants control (their HTTP tools, their webhooks): where they may go, and how
//! they are signed. The groundwork the tool and webhook features build on.
//!
//! Layout:
//! - [`address_policy`]: which addresses may be reached (public ones, plus the operator's
//!   `outbound.allow` list of host names and CIDR ranges), and the URL check before a request.
//! - [`client`]: the HTTP client that enforces the policy at connect time (its own resolver), and
//!   follows no redirect and uses no proxy.
//! - [`socket`]: TCP connections to a tenant's WebSocket endpoint, checked the same way.
//! - [`signing`]: Standard Webhooks signatures under per-tenant `whsec_` secrets.
//! - [`http_tool`]: one call of a tenant's HTTP tool: the signed request and the answer the
//!   model gets.
//! - [`delivery`]: one attempt to deliver an event to a tenant's webhook endpoint, and its
//!   verdict (delivered, retry, gone, rejected).

pub mod address_policy;
pub mod client;
pub mod delivery;
pub mod http_tool;
pub mod signing;
pub mod socket;

use std::sync::Arc;
use std::time::Duration;

/// The client for tenant-controlled URLs and the policy it enforces, built once per process.
#[derive(Debug, Clone)]
pub struct OutboundHttp {
    pub client: reqwest::Client,
    pub allow: Arc<address_policy::AllowList>,
}

impl OutboundHttp {
    /// Longest any single request may take; each request sets its own, shorter timeout.
    const CEILING: Duration = Duration::from_secs(60);

    /// From `outbound.allow` (already validated with the settings).
    pub fn new(allow: &str) -> Self {
        let allow = Arc::new(address_policy::AllowList::parse(allow).unwrap_or_default());
        Self {
            client: client::checked_client(Arc::clone(&allow), Self::CEILING),
            allow,
        }
    }
}
