//! Clients of the outside services we call.
//!
//! Layout:
//! - [`realtime`]: the backend interface the bridge drives every speech-to-speech AI through.
//! - [`openai`]: the OpenAI Realtime API (GA): typed events, `session.update`, the socket.
//! - [`text`]: text models (Anthropic Messages, OpenAI Responses, OpenAI-compatible Chat
//!   Completions) behind one `complete` call with retries.
//! - [`elevenlabs`]: ElevenLabs Conversational AI: its events, audio formats, the stale-audio
//!   filter of its barge-in, and the connect (public agent, or signed URL for a private one).
//! - [`teler`]: the FreJun Teler REST API (start an outbound call, hang a call up).

pub mod elevenlabs;
pub mod openai;
pub mod realtime;
pub(crate) mod teler;
pub mod text;
