//! What the simulated caller says: a WAV file (any rate and channel count the WAV reader takes,
//! converted to the stream's rate), a steady tone (handy for checking audio by frequency), or
//! the caller voice embedded in the binary.

use std::fmt;
use std::path::PathBuf;

use crate::audio::resample::{ResampleError, resample_all};
use crate::audio::tone::sine;
use crate::sim::voices;
use crate::sim::wav::{WavError, read_wav};

/// Peak amplitude of a generated tone, in sample units: about -12 dBFS, loud and clear of
/// clipping after resampling.
pub const TONE_AMPLITUDE: f64 = 8_000.0;

/// Where the caller's speech comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioSource {
    /// A WAV file; channels are mixed down and the rate converted.
    Wav(PathBuf),
    /// A sine of `hz` lasting `ms`, at [`TONE_AMPLITUDE`].
    Tone { hz: f64, ms: u32 },
    /// The embedded caller's line ([`voices::CALLER_TEXT`]).
    CallerVoice,
}

impl fmt::Display for AudioSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioSource::Wav(path) => write!(f, "{}", path.display()),
            AudioSource::Tone { hz, ms } => write!(f, "a {hz} Hz tone for {ms} ms"),
            AudioSource::CallerVoice => write!(f, "the caller voice (\"{}\")", voices::CALLER_TEXT),
        }
    }
}

/// Why the caller's audio could not be prepared. Each message includes its cause, which is
/// therefore not also given as `source()`: error chains would print it twice.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("cannot use the WAV file {path}: {cause}")]
    Wav { path: PathBuf, cause: WavError },
    #[error("the embedded caller voice is unreadable: {0}")]
    Voice(WavError),
    #[error("cannot convert the audio to {rate_hz} Hz: {cause}")]
    Resample { rate_hz: u32, cause: ResampleError },
    #[error(
        "the tone {hz} Hz cannot be sent at {rate_hz} Hz: it must be above 0 and below {} Hz",
        rate_hz / 2
    )]
    ToneFrequency { hz: f64, rate_hz: u32 },
    #[error("the WAV file {0} holds no audio")]
    Empty(PathBuf),
}

/// The source's samples, mono, at `rate_hz` (the stream's inbound rate).
pub fn load_audio(source: &AudioSource, rate_hz: u32) -> Result<Vec<i16>, AudioError> {
    let (from_hz, samples) = match source {
        AudioSource::Tone { hz, ms } => {
            if !(hz.is_finite() && *hz > 0.0 && *hz < f64::from(rate_hz) / 2.0) {
                return Err(AudioError::ToneFrequency { hz: *hz, rate_hz });
            }
            let samples = u64::from(*ms) * u64::from(rate_hz) / 1_000;
            let samples = usize::try_from(samples).unwrap_or(usize::MAX);
            return Ok(sine(*hz, rate_hz, samples, TONE_AMPLITUDE));
        }
        AudioSource::Wav(path) => {
            let audio = read_wav(path).map_err(|cause| AudioError::Wav {
                path: path.clone(),
                cause,
            })?;
            if audio.samples.is_empty() {
                return Err(AudioError::Empty(path.clone()));
            }
            (audio.sample_rate, audio.samples)
        }
        AudioSource::CallerVoice => {
            let audio = voices::caller().map_err(AudioError::Voice)?;
            (audio.sample_rate, audio.samples)
        }
    };
    if from_hz == rate_hz {
        return Ok(samples);
    }
    resample_all(&samples, from_hz, rate_hz)
        .map_err(|cause| AudioError::Resample { rate_hz, cause })
}
