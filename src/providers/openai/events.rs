//! The OpenAI Realtime wire events (GA protocol), as typed Rust values.
//!
//! - `outbound`: what we send, [`ClientEvent`]. Serialize only; [`write_append_event`] is a
//!   fast path for the audio append, by far the most frequent event.
//! - `inbound`: what we receive, [`ServerEvent`], reduced to the events and fields the bridge
//!   uses and parsed tolerantly (real servers omit fields and add new ones).
//!
//! Everything is re-exported here, so users write `events::ServerEvent`.

mod inbound;
mod outbound;

pub use inbound::ApiError;
#[cfg(test)]
pub use inbound::ResponseStatus;
pub use inbound::{EventParseError, ServerEvent};
#[cfg(test)]
pub use inbound::{ResponseError, ResponseUsage};
pub use outbound::{ClientEvent, write_append_event};
