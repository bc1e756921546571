//! Requests to URLs tenants control (their HTTP tools, their webhooks): where they may go, and how
//! they are signed. The groundwork the tool and webhook features build on.
//!
//! Layout:
//! - [`address_policy`]: which addresses may be reached (public ones, plus the operator's
//!   `outbound.allow` list of host names and CIDR ranges), and the URL check before a request.
//! - [`client`]: the HTTP client that enforces the policy at connect time (its own resolver), and
//!   follows no redirect and uses no proxy.
//! - [`signing`]: Standard Webhooks signatures under per-tenant `whsec_` secrets.

pub mod address_policy;
pub mod client;
pub mod signing;
