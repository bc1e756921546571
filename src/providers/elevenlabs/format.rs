//! The audio formats an ElevenLabs agent speaks and hears. They are the agent's settings (the
//! conversation cannot override them) and are announced in `conversation_initiation_metadata`.

use std::fmt;
use std::str::FromStr;

/// One of ElevenLabs' audio formats: 16-bit signed little-endian mono PCM at a rate, or G.711
/// μ-law at 8 kHz.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    Pcm(u32),
    Ulaw8000,
}

/// The PCM rates ElevenLabs offers.
pub const PCM_RATES: [u32; 6] = [8_000, 16_000, 22_050, 24_000, 44_100, 48_000];

impl AudioFormat {
    /// The sample rate.
    pub fn rate(self) -> u32 {
        match self {
            AudioFormat::Pcm(rate) => rate,
            AudioFormat::Ulaw8000 => 8_000,
        }
    }

    /// Bytes per sample.
    pub fn bytes_per_sample(self) -> usize {
        match self {
            AudioFormat::Pcm(_) => 2,
            AudioFormat::Ulaw8000 => 1,
        }
    }

    /// The formats that need no resampling against FreJun: the agent hears the caller at the
    /// flow's rate and speaks at 8 kHz, the rate every FreJun playback is proven at
    /// (docs/protocols.md §5.5; μ-law is not used with FreJun, which speaks PCM).
    pub fn matching_frejun(inbound_rate: u32) -> (AudioFormat, AudioFormat) {
        let input = if inbound_rate == 16_000 {
            AudioFormat::Pcm(16_000)
        } else {
            AudioFormat::Pcm(8_000)
        };
        (input, AudioFormat::Pcm(8_000))
    }
}

impl fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioFormat::Pcm(rate) => write!(f, "pcm_{rate}"),
            AudioFormat::Ulaw8000 => f.write_str("ulaw_8000"),
        }
    }
}

/// A format name ElevenLabs does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown ElevenLabs audio format {0:?}")]
pub struct UnknownFormat(pub String);

impl FromStr for AudioFormat {
    type Err = UnknownFormat;

    fn from_str(name: &str) -> Result<Self, UnknownFormat> {
        if name == "ulaw_8000" {
            return Ok(AudioFormat::Ulaw8000);
        }
        name.strip_prefix("pcm_")
            .and_then(|rate| rate.parse::<u32>().ok())
            .filter(|rate| PCM_RATES.contains(rate))
            .map(AudioFormat::Pcm)
            .ok_or_else(|| UnknownFormat(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for name in [
            "pcm_8000",
            "pcm_16000",
            "pcm_22050",
            "pcm_24000",
            "pcm_44100",
            "pcm_48000",
            "ulaw_8000",
        ] {
            let format: AudioFormat = name.parse().unwrap();
            assert_eq!(format.to_string(), name);
        }
        for bad in ["pcm_11025", "ulaw_16000", "mp3_44100", "pcm_", ""] {
            assert!(bad.parse::<AudioFormat>().is_err(), "{bad}");
        }
        assert_eq!(AudioFormat::Ulaw8000.rate(), 8_000);
        assert_eq!(AudioFormat::Ulaw8000.bytes_per_sample(), 1);
    }

    #[test]
    fn frejuns_rates_need_no_resampling() {
        assert_eq!(
            AudioFormat::matching_frejun(8_000),
            (AudioFormat::Pcm(8_000), AudioFormat::Pcm(8_000))
        );
        assert_eq!(
            AudioFormat::matching_frejun(16_000),
            (AudioFormat::Pcm(16_000), AudioFormat::Pcm(8_000))
        );
    }
}
