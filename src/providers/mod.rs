//! Clients of the outside services we call.
//!
//! Layout:
//! - [`teler`]: the FreJun Teler REST API (start an outbound call, hang a call up).

pub mod teler;
