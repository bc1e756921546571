//! Audio conversions between FreJun's media stream (8 or 16 kHz s16le) and OpenAI Realtime
//! (24 kHz s16le, or G.711 μ-law at 8 kHz).
//!
//! - [`pcm`]: s16le bytes ⇄ samples, base64, durations.
//! - [`mulaw`]: G.711 μ-law for the `pcmu` codec path.
//! - [`tone`]: synthetic tones and tone-level measurement (tests, fakes, demo).
//!
//! Everything here is synchronous and allocation-aware: callers own the buffers.

pub mod mulaw;
pub mod pcm;
pub mod tone;
