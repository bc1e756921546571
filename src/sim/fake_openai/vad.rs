//! Server VAD emulation: an energy detector on 20 ms frames of the appended audio, driven only by
//! the audio itself (the input-buffer timeline), never by the wall clock, so tests are exact.
//!
//! Threshold mapping (OpenAI does not publish one): a frame is speech when its RMS level is
//! above `-70 + 60 × threshold` dBFS, so the default `threshold` 0.5 means -40 dBFS, 0.0 means
//! -70 dBFS (anything but digital silence) and 1.0 means -10 dBFS (only very loud audio).
//!
//! Timeline: `speech_started.audio_start_ms` is the start of the first speech frame minus
//! `prefix_padding_ms`, clamped to the end of the previous turn (and to 0);
//! `speech_stopped.audio_end_ms` is the end of the frame that completed `silence_duration_ms` of
//! silence, so it includes the trailing silence as OpenAI's does.

use serde_json::Value;

/// Frame length of the detector.
pub(crate) const FRAME_MS: u64 = 20;

/// Defaults of `server_vad`, also used for `semantic_vad`.
pub(crate) const DEFAULT_THRESHOLD: f64 = 0.5;
/// See [`DEFAULT_THRESHOLD`].
pub(crate) const DEFAULT_PREFIX_PADDING_MS: u64 = 300;
/// See [`DEFAULT_THRESHOLD`].
pub(crate) const DEFAULT_SILENCE_DURATION_MS: u64 = 500;

/// The speech threshold in dBFS (RMS) for an OpenAI `threshold` (clamped to 0..=1).
pub fn threshold_dbfs(threshold: f64) -> f64 {
    -70.0 + 60.0 * threshold.clamp(0.0, 1.0)
}

/// The parts of `audio.input.turn_detection` the fake acts on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TurnDetection {
    /// OpenAI's 0..1 threshold.
    pub threshold: f64,
    /// Audio kept before the onset.
    pub prefix_padding_ms: u64,
    /// Silence that ends a turn.
    pub silence_duration_ms: u64,
    /// Respond when a turn ends.
    pub create_response: bool,
    /// Cancel the running response when speech starts.
    pub interrupt_response: bool,
}

impl TurnDetection {
    /// Reads an effective `turn_detection` value; `None` when it is null or absent (the client
    /// then commits and asks for responses itself). `semantic_vad` gets the `server_vad`
    /// defaults. Absent flags count as `true`, OpenAI's observed default.
    pub(crate) fn from_json(value: Option<&Value>) -> Option<TurnDetection> {
        let value = value.filter(|value| value.is_object())?;
        let semantic = value.get("type").and_then(Value::as_str) == Some("semantic_vad");
        let number = |key: &str| value.get(key).and_then(Value::as_f64);
        let millis = |key: &str, default: u64| {
            if semantic {
                default
            } else {
                value.get(key).and_then(Value::as_u64).unwrap_or(default)
            }
        };
        let flag = |key: &str| value.get(key).and_then(Value::as_bool).unwrap_or(true);
        Some(TurnDetection {
            threshold: if semantic {
                DEFAULT_THRESHOLD
            } else {
                number("threshold").unwrap_or(DEFAULT_THRESHOLD)
            },
            prefix_padding_ms: millis("prefix_padding_ms", DEFAULT_PREFIX_PADDING_MS),
            silence_duration_ms: millis("silence_duration_ms", DEFAULT_SILENCE_DURATION_MS),
            create_response: flag("create_response"),
            interrupt_response: flag("interrupt_response"),
        })
    }
}

/// What the detector saw in a chunk of audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VadEvent {
    /// Speech began; `audio_start_ms` includes the prefix padding.
    SpeechStarted {
        /// On the input-buffer timeline.
        audio_start_ms: u64,
    },
    /// Enough silence followed speech.
    SpeechStopped {
        /// On the input-buffer timeline, including the trailing silence.
        audio_end_ms: u64,
    },
}

/// The detector's state for one session.
#[derive(Debug, Clone)]
pub(crate) struct Vad {
    config: TurnDetection,
    /// Mean square level above which a frame is speech.
    threshold_power: f64,
    frame_samples: u32,
    /// Sum of squares and sample count of the frame being filled.
    partial_energy: u64,
    partial_samples: u32,
    /// Timeline position of the end of the last complete frame.
    position_ms: u64,
    speaking: bool,
    silence_ms: u64,
    /// End of the previous turn: the next turn's padding does not reach back before it.
    floor_ms: u64,
}

impl Vad {
    /// A detector for audio at `rate_hz` whose first frame starts at `position_ms` on the
    /// input-buffer timeline.
    pub(crate) fn new(config: TurnDetection, rate_hz: u32, position_ms: u64) -> Vad {
        let amplitude = 32_768.0 * 10f64.powf(threshold_dbfs(config.threshold) / 20.0);
        Vad {
            config,
            threshold_power: amplitude * amplitude,
            frame_samples: (rate_hz as u64 * FRAME_MS / 1_000).max(1) as u32,
            partial_energy: 0,
            partial_samples: 0,
            position_ms,
            speaking: false,
            silence_ms: 0,
            floor_ms: position_ms,
        }
    }

    /// The configuration it runs with.
    pub(crate) fn config(&self) -> TurnDetection {
        self.config
    }

    /// Whether a turn is in progress.
    pub(crate) fn speaking(&self) -> bool {
        self.speaking
    }

    /// Feeds appended audio; pushes what it detected to `events`, in order.
    pub(crate) fn push(&mut self, samples: &[i16], events: &mut Vec<VadEvent>) {
        for &sample in samples {
            let value = i64::from(sample);
            self.partial_energy += (value * value) as u64;
            self.partial_samples += 1;
            if self.partial_samples == self.frame_samples {
                let power = self.partial_energy as f64 / f64::from(self.partial_samples);
                self.partial_energy = 0;
                self.partial_samples = 0;
                self.end_frame(power > self.threshold_power, events);
            }
        }
    }

    fn end_frame(&mut self, speech: bool, events: &mut Vec<VadEvent>) {
        let frame_start = self.position_ms;
        self.position_ms += FRAME_MS;
        if speech {
            self.silence_ms = 0;
            if !self.speaking {
                self.speaking = true;
                let padded = frame_start.saturating_sub(self.config.prefix_padding_ms);
                events.push(VadEvent::SpeechStarted {
                    audio_start_ms: padded.max(self.floor_ms),
                });
            }
        } else if self.speaking {
            self.silence_ms += FRAME_MS;
            if self.silence_ms >= self.config.silence_duration_ms {
                self.speaking = false;
                self.silence_ms = 0;
                self.floor_ms = self.position_ms;
                events.push(VadEvent::SpeechStopped {
                    audio_end_ms: self.position_ms,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::tone;
    use serde_json::json;

    fn server_vad() -> TurnDetection {
        TurnDetection::from_json(Some(&json!({
            "type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
            "silence_duration_ms": 500, "create_response": true, "interrupt_response": false
        })))
        .unwrap()
    }

    #[test]
    fn the_threshold_maps_linearly_to_dbfs() {
        assert_eq!(threshold_dbfs(0.5), -40.0);
        assert_eq!(threshold_dbfs(0.0), -70.0);
        assert_eq!(threshold_dbfs(2.0), -10.0);
    }

    #[test]
    fn turn_detection_reads_fields_and_defaults() {
        let config = server_vad();
        assert!(config.create_response && !config.interrupt_response);
        assert_eq!(TurnDetection::from_json(Some(&Value::Null)), None);
        assert_eq!(TurnDetection::from_json(None), None);
        let semantic =
            TurnDetection::from_json(Some(&json!({"type": "semantic_vad", "eagerness": "high"})))
                .unwrap();
        assert_eq!(semantic.silence_duration_ms, DEFAULT_SILENCE_DURATION_MS);
        assert!(semantic.create_response && semantic.interrupt_response);
    }

    #[test]
    fn a_tone_between_silences_is_one_turn_on_the_input_timeline() {
        let rate = 24_000;
        let mut vad = Vad::new(server_vad(), rate, 0);
        let mut events = Vec::new();
        let silence = vec![0i16; rate as usize / 2];
        let speech = tone::sine(1_000.0, rate, rate as usize, 8_000.0);
        // Uneven chunks: frames must be assembled across pushes.
        for chunk in silence.chunks(333) {
            vad.push(chunk, &mut events);
        }
        assert!(events.is_empty());
        for chunk in speech.chunks(700) {
            vad.push(chunk, &mut events);
        }
        assert_eq!(
            events,
            [VadEvent::SpeechStarted {
                audio_start_ms: 200
            }]
        );
        assert!(vad.speaking());
        for chunk in vec![0i16; rate as usize * 7 / 10].chunks(480) {
            vad.push(chunk, &mut events);
        }
        assert_eq!(
            events[1],
            VadEvent::SpeechStopped {
                audio_end_ms: 2_000
            }
        );
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn quiet_audio_below_the_threshold_is_not_speech() {
        let mut vad = Vad::new(server_vad(), 8_000, 0);
        let mut events = Vec::new();
        // -50 dBFS RMS: below the default -40 dBFS threshold.
        let quiet = tone::sine(500.0, 8_000, 8_000, 32_768.0 * 10f64.powf(-47.0 / 20.0));
        vad.push(&quiet, &mut events);
        assert!(events.is_empty());
    }

    #[test]
    fn padding_never_reaches_back_into_the_previous_turn() {
        let rate = 8_000;
        let mut config = server_vad();
        config.silence_duration_ms = 100;
        let mut vad = Vad::new(config, rate, 1_000);
        let mut events = Vec::new();
        let burst = tone::sine(1_000.0, rate, 800, 8_000.0);
        vad.push(&burst, &mut events);
        vad.push(&[0; 800], &mut events);
        vad.push(&burst, &mut events);
        assert_eq!(
            events,
            [
                VadEvent::SpeechStarted {
                    audio_start_ms: 1_000
                },
                VadEvent::SpeechStopped {
                    audio_end_ms: 1_200
                },
                VadEvent::SpeechStarted {
                    audio_start_ms: 1_200
                },
            ]
        );
    }
}
