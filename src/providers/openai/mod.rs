//! The OpenAI Realtime API client, GA protocol only (docs/protocols.md §2).
//!
//! Layout:
//! - [`events`]: the wire events, typed: what we send ([`ClientEvent`], with a fast path for
//!   audio appends) and what we receive ([`ServerEvent`], parsed tolerantly).
//! - [`session`]: the `session.update` payload built from a stored assistant.
//! - [`protocol`]: OpenAI as a backend of the bridge: its events in the bridge's terms and
//!   the bridge's requests as its events.
//! - [`client`]: opening the socket (auth, timeout, error codes) and classifying its close.
//!
//! This module only speaks the protocol; the call bridge decides what to do with each event.

pub(crate) mod client;
pub(crate) mod events;
pub mod protocol;
pub mod session;

pub use client::{CloseKind, ConnectError, RealtimeClient, RealtimeSocket, classify_close};
pub use events::{ClientEvent, EventParseError, ServerEvent, write_append_event};
pub use protocol::OpenAiProtocol;
pub use session::SessionConfig;
