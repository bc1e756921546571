//! Audio conversions between FreJun's media stream (8 or 16 kHz s16le) and OpenAI Realtime
//! (24 kHz s16le, or G.711 μ-law at 8 kHz).
//!
//! - [`pcm`]: s16le bytes ⇄ samples, base64, durations.
//! - [`mulaw`]: G.711 μ-law for the `pcmu` codec path.
//! - [`resample`]: streaming sample-rate conversion (8/16 kHz ⇄ 24 kHz, WAV rates).
//! - [`tone`]: synthetic tones, tone level and phase measurement (tests, fakes, demo).
//! - [`scratch`]: the per-thread scratch buffers a frame's conversions borrow.
//!
//! Everything here is synchronous and allocation-aware: callers own the buffers they keep, and
//! borrow from [`scratch`] the ones that only live for a frame.

pub mod mulaw;
pub mod pcm;
pub mod resample;
pub(crate) mod scratch;
pub mod tone;
