//! Clients of the outside services we call.
//!
//! Layout:
//! - [`openai`]: the OpenAI Realtime API (GA): typed events, `session.update`, the socket.
//! - [`teler`]: the FreJun Teler REST API (start an outbound call, hang a call up).

pub mod openai;
pub(crate) mod teler;
