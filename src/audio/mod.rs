//! Audio conversions between FreJun's media stream (8 or 16 kHz s16le) and OpenAI Realtime
//! (24 kHz s16le, or G.711 μ-law at 8 kHz).
//!
//! - [`pcm`]: s16le bytes ⇄ samples, base64, durations.
//! - [`mulaw`]: G.711 μ-law for the `pcmu` codec path.
//! - [`resample`]: streaming sample-rate conversion (8/16 kHz ⇄ 24 kHz, WAV rates).
//! - [`tone`]: synthetic tones, tone level and phase measurement (tests, fakes, demo).
//!
//! Everything here is synchronous and allocation-aware: callers own the buffers.

pub mod mulaw;
pub mod pcm;
pub mod resample;
pub mod tone;
