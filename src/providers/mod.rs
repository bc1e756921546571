//! Clients of the outside services we call.
//!
//! Layout:
//! - [`openai`]: the OpenAI Realtime API (GA): typed events, `session.update`, the socket.
//! - [`text`]: text models (Anthropic Messages, OpenAI Responses, OpenAI-compatible Chat
//!   Completions) behind one `complete` call with retries.
//! - [`elevenlabs`]: ElevenLabs Conversational AI: its events, audio formats, the stale-audio
//!   filter of its barge-in, and the connect (public agent, or signed URL for a private one).
//! - [`teler`]: the FreJun Teler REST API (start an outbound call, hang a call up).

pub mod elevenlabs;
pub mod openai;
pub(crate) mod teler;
pub mod text;
