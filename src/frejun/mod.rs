//! What FreJun sends us and what we answer: the flow exchange and status webhooks, parsed
//! tolerantly; pure code, no I/O.
//!
//! FreJun's own sources disagree about key names and payload shapes (see
//! docs/frejun-setup.md), so the parsers here accept every variant seen in the
//! wild and never fail on a missing field; the HTTP handlers decide what a missing call id means.
//!
//! - [`flow`]: the request FreJun POSTs to the flow URL and the stream/hangup answer.
//! - [`webhook`]: call and stream lifecycle events from the status webhook.
//! - [`media_token`]: the signed, expiring token in a stream flow's `ws_url`.

pub(crate) mod flow;
pub mod media_token;
pub(crate) mod webhook;
