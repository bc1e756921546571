//! Recorded speech for the demo and `voxbridge call`: a caller asking for a table and the
//! assistant's greetings and answer, so the simulated calls carry a real voice instead of tones.
//!
//! The samples are synthesised by `scripts/make-demo-voices.sh` (espeak-ng, then 8 kHz mono
//! 16-bit WAV, silence trimmed; about 250 KB together), committed under `src/sim/voices/` and
//! embedded in the binary, so the demo needs no files at run time.

use std::sync::Arc;

use super::wav::{WavAudio, WavError, parse_wav};
use crate::audio::resample::resample_all;

/// "Hi, I would like to book a table for two tonight." (about 3.2 s).
pub(crate) const CALLER_TEXT: &str = "Hi, I would like to book a table for two tonight.";
/// The assistant's greeting (about 4.3 s).
pub(crate) const GREETING_TEXT: &str =
    "Hello, thanks for calling Acme Bistro. How can I help you today?";
/// The assistant's greeting on an outbound call (about 4.2 s).
pub(crate) const OUTBOUND_GREETING_TEXT: &str =
    "Hi, this is Acme Bistro, returning your call. How can I help?";
/// The assistant's answer (about 4.3 s).
pub(crate) const ANSWER_TEXT: &str =
    "Of course. A table for two at eight tonight is booked. See you then!";

const CALLER_WAV: &[u8] = include_bytes!("voices/caller.wav");
const GREETING_WAV: &[u8] = include_bytes!("voices/assistant-greeting.wav");
const OUTBOUND_GREETING_WAV: &[u8] = include_bytes!("voices/assistant-outbound-greeting.wav");
const ANSWER_WAV: &[u8] = include_bytes!("voices/assistant-answer.wav");

/// The caller's line as recorded (8 kHz mono).
pub(crate) fn caller() -> Result<WavAudio, WavError> {
    parse_wav(CALLER_WAV)
}

/// The assistant's greeting as recorded (8 kHz mono).
pub(crate) fn greeting() -> Result<WavAudio, WavError> {
    parse_wav(GREETING_WAV)
}

/// The assistant's outbound greeting as recorded (8 kHz mono).
pub(crate) fn outbound_greeting() -> Result<WavAudio, WavError> {
    parse_wav(OUTBOUND_GREETING_WAV)
}

/// The assistant's answer as recorded (8 kHz mono).
pub(crate) fn answer() -> Result<WavAudio, WavError> {
    parse_wav(ANSWER_WAV)
}

/// A recorded line with its words, at the caller's rate (8 kHz) and the model's (24 kHz).
#[derive(Debug, Clone)]
pub struct Voice {
    pub text: &'static str,
    pub samples_8k: Vec<i16>,
    /// Shared, because the fake OpenAI's scripted turns hold it.
    pub samples_24k: Arc<Vec<i16>>,
}

impl Voice {
    pub(crate) fn caller() -> Result<Voice, VoiceError> {
        Voice::new(CALLER_TEXT, caller())
    }

    pub(crate) fn greeting() -> Result<Voice, VoiceError> {
        Voice::new(GREETING_TEXT, greeting())
    }

    pub(crate) fn outbound_greeting() -> Result<Voice, VoiceError> {
        Voice::new(OUTBOUND_GREETING_TEXT, outbound_greeting())
    }

    pub(crate) fn answer() -> Result<Voice, VoiceError> {
        Voice::new(ANSWER_TEXT, answer())
    }

    #[cfg(test)]
    /// How long the line lasts, in milliseconds.
    pub(crate) fn duration_ms(&self) -> u64 {
        self.samples_8k.len() as u64 / 8
    }

    fn new(text: &'static str, audio: Result<WavAudio, WavError>) -> Result<Voice, VoiceError> {
        let audio = audio?;
        let samples_24k = at_rate(&audio, 24_000).map_err(VoiceError::Resample)?;
        let samples_8k = resample_all(&audio.samples, audio.sample_rate, 8_000)
            .map_err(|error| VoiceError::Resample(error.to_string()))?;
        Ok(Voice {
            text,
            samples_8k,
            samples_24k,
        })
    }
}

/// An embedded recording that cannot be used (only possible if the committed files were
/// replaced by broken ones).
#[derive(Debug, thiserror::Error)]
pub(crate) enum VoiceError {
    #[error("an embedded voice sample is not a usable WAV: {0}")]
    Wav(#[from] WavError),
    #[error("an embedded voice sample cannot be converted: {0}")]
    Resample(String),
}

/// A recording at `rate_hz` (the fake OpenAI's scripted turns want 24 kHz).
pub(crate) fn at_rate(audio: &WavAudio, rate_hz: u32) -> Result<Arc<Vec<i16>>, String> {
    resample_all(&audio.samples, audio.sample_rate, rate_hz)
        .map(Arc::new)
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::tone::rms_dbfs;

    #[test]
    fn the_embedded_voices_are_8k_mono_speech() {
        for (name, voice) in [
            ("caller", caller()),
            ("greeting", greeting()),
            ("outbound greeting", outbound_greeting()),
            ("answer", answer()),
        ] {
            let voice = voice.unwrap_or_else(|error| panic!("{name}: {error}"));
            assert_eq!(voice.sample_rate, 8_000, "{name}");
            assert_eq!(voice.channels, 1, "{name}");
            let seconds = voice.samples.len() as f64 / 8_000.0;
            assert!((2.0..6.0).contains(&seconds), "{name}: {seconds} s");
            // Speech, not silence: clearly above the noise floor on average.
            let level = rms_dbfs(&voice.samples);
            assert!(level > -35.0, "{name}: {level} dBFS");
        }
    }

    #[test]
    fn every_voice_has_both_rates_and_its_words() {
        for voice in [
            Voice::caller(),
            Voice::greeting(),
            Voice::outbound_greeting(),
            Voice::answer(),
        ] {
            let voice = voice.unwrap();
            assert!(!voice.text.is_empty());
            assert_eq!(voice.samples_24k.len(), voice.samples_8k.len() * 3);
            assert!(voice.duration_ms() > 2_000, "{}", voice.text);
        }
    }

    #[test]
    fn voices_convert_to_the_model_rate() {
        let greeting = greeting().unwrap();
        let converted = at_rate(&greeting, 24_000).unwrap();
        assert_eq!(converted.len(), greeting.samples.len() * 3);
    }
}
