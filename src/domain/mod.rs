//! Domain types shared by every layer. This module depends on nothing else in the crate.
//!
//! Layout:
//! - [`secret`]: wrappers for secret values whose `Debug`, `Display` and `Serialize` never show
//!   the value.

pub mod secret;
