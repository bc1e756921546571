//! Protocol-faithful stand-ins for the services we cannot reach from tests, the demo and the load
//! generator. Each one speaks the wire format documented in `docs/` (and records what it was
//! sent), so the code under test runs its real clients against it.
//!
//! Layout:
//! - [`fake_teler`]: a fake FreJun Teler REST API, plus helpers that play FreJun's side of the
//!   flow fetch and the lifecycle webhooks.

pub mod fake_teler;
