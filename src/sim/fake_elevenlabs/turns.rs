//! Deciding when the caller finished a turn ([`TurnDetection`]), on the caller's decoded audio.
//! Time is audio time (samples received), so the result does not depend on how fast or in what
//! pieces the client sends.

use crate::audio::tone::rms_dbfs;

use super::behaviour::TurnDetection;

/// One conversation's turn detector.
pub(super) struct TurnDetector {
    detection: TurnDetection,
    /// Samples per 10 ms frame (energy) at the input rate.
    frame: usize,
    /// Samples that do not fill a frame yet.
    partial: Vec<i16>,
    in_speech: bool,
    /// Samples of silence since the last speech frame.
    silence: u64,
    /// Samples needed to end a turn: of silence (energy) or of audio (fixed length).
    needed: u64,
    /// Samples since the last turn ended (fixed length).
    since_turn: u64,
}

impl TurnDetector {
    pub(super) fn new(detection: TurnDetection, rate_hz: u32) -> TurnDetector {
        let ms = match detection {
            TurnDetection::Energy { silence_ms, .. } => silence_ms,
            TurnDetection::AfterAudioMs(ms) => ms,
        };
        TurnDetector {
            detection,
            frame: usize::try_from(rate_hz / 100).unwrap_or(80).max(1),
            partial: Vec::new(),
            in_speech: false,
            silence: 0,
            needed: u64::from(ms) * u64::from(rate_hz) / 1_000,
            since_turn: 0,
        }
    }

    /// Feeds caller samples; returns how many turns ended in them.
    pub(super) fn push(&mut self, samples: &[i16]) -> u32 {
        match self.detection {
            TurnDetection::AfterAudioMs(_) => {
                // A zero length would end a turn per sample; it means "never" instead.
                if self.needed == 0 {
                    return 0;
                }
                self.since_turn += samples.len() as u64;
                let turns = self.since_turn / self.needed;
                self.since_turn %= self.needed;
                u32::try_from(turns).unwrap_or(u32::MAX)
            }
            TurnDetection::Energy { threshold_dbfs, .. } => {
                let mut turns = 0;
                let mut rest = samples;
                while !rest.is_empty() {
                    let take = (self.frame - self.partial.len()).min(rest.len());
                    self.partial.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    if self.partial.len() < self.frame {
                        break;
                    }
                    if rms_dbfs(&self.partial) > threshold_dbfs {
                        self.in_speech = true;
                        self.silence = 0;
                    } else if self.in_speech {
                        self.silence += self.frame as u64;
                        if self.silence >= self.needed {
                            self.in_speech = false;
                            self.silence = 0;
                            turns += 1;
                        }
                    }
                    self.partial.clear();
                }
                turns
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::tone::sine;

    #[test]
    fn energy_turns_end_after_speech_then_enough_silence() {
        let mut detector = TurnDetector::new(
            TurnDetection::Energy {
                threshold_dbfs: -40.0,
                silence_ms: 500,
            },
            8_000,
        );
        assert_eq!(
            detector.push(&vec![0; 8_000]),
            0,
            "silence alone is no turn"
        );
        // Odd piece sizes: frames span pieces.
        let speech = sine(440.0, 8_000, 2_400, 8_000.0);
        for piece in speech.chunks(333) {
            assert_eq!(detector.push(piece), 0);
        }
        assert_eq!(detector.push(&vec![0; 3_920]), 0, "490 ms of silence");
        assert_eq!(detector.push(&[0; 80]), 1, "500 ms of silence");
        assert_eq!(detector.push(&vec![0; 8_000]), 0, "one turn per utterance");
    }

    #[test]
    fn fixed_length_turns_count_audio_of_any_kind() {
        let mut detector = TurnDetector::new(TurnDetection::AfterAudioMs(200), 16_000);
        assert_eq!(detector.push(&vec![0; 3_000]), 0);
        assert_eq!(detector.push(&vec![0; 200]), 1);
        assert_eq!(detector.push(&vec![0; 6_400]), 2);
        let mut never = TurnDetector::new(TurnDetection::AfterAudioMs(0), 16_000);
        assert_eq!(never.push(&vec![0; 16_000]), 0);
    }
}
