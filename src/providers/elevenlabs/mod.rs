//! ElevenLabs Conversational AI (Agents) over its WebSocket, the second realtime voice AI
//! voxbridge speaks (docs/protocols.md §5): typed events both ways,
//! the agent's audio formats, the stale-audio filter that barge-in needs, and the connection
//! (a public agent by id, a private one through a signed URL fetched with the tenant's
//! `xi-api-key`).
//!
//! Everything here is pure or a single connect; the session loop that uses it belongs to the
//! bridge, which drives it through the backend interface (`providers::realtime`).
//!
//! Layout:
//! - [`mod@format`]: the agent's audio formats and the ones that spare FreJun's audio resampling.
//! - [`events`]: server events parsed from text frames, client messages built as text frames.
//! - [`interruption`]: which `audio` events still play after an `interruption`.
//! - [`protocol`]: ElevenLabs as a backend of the bridge: its events in the bridge's terms,
//!   its agent turns named as responses, and the bridge's requests as its messages.
//! - [`client`]: the signed URL and the WebSocket connect, with stable error codes.

pub mod client;
pub mod events;
pub mod format;
pub mod interruption;
pub mod protocol;

pub use client::{ConnectError, ConvaiClient, ConvaiSocket};
pub use events::{ClientMessage, Initiation, ServerEvent};
pub use format::AudioFormat;
pub use interruption::StaleAudioFilter;
pub use protocol::ConvaiProtocol;

#[cfg(test)]
mod tests;
