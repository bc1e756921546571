//! Barge-in against ElevenLabs. Every `audio` event carries an increasing `event_id`; when the
//! caller interrupts, the server sends `interruption` with an id, and audio of the interrupted
//! turn already in flight may still arrive after it. Such audio (an id at or below the
//! interruption's) must not be played: FreJun's buffer was just cleared, and replaying it is
//! the "agent keeps talking after I interrupted" bug of FreJun's own sample.

/// Remembers the last interruption and judges each `audio` event against it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StaleAudioFilter {
    last_interruption: Option<u64>,
}

impl StaleAudioFilter {
    /// The caller interrupted at `event_id`. An older (smaller) id never lowers the mark.
    pub fn interrupted(&mut self, event_id: u64) {
        self.last_interruption = Some(
            self.last_interruption
                .map_or(event_id, |last| last.max(event_id)),
        );
    }

    /// Whether the `audio` event `event_id` is to be played: it belongs to a turn after the
    /// last interruption.
    pub fn plays(&self, event_id: u64) -> bool {
        self.last_interruption.is_none_or(|last| event_id > last)
    }

    /// The last interruption's id, if any.
    pub fn last_interruption(&self) -> Option<u64> {
        self.last_interruption
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_at_or_below_the_interruption_is_dropped_and_later_audio_plays() {
        let mut filter = StaleAudioFilter::default();
        assert!(filter.plays(1));
        filter.interrupted(7);
        assert!(!filter.plays(5));
        assert!(!filter.plays(7), "the interrupted event itself is stale");
        assert!(filter.plays(8));
        // A late, older interruption does not bring stale audio back.
        filter.interrupted(3);
        assert!(!filter.plays(6));
        assert_eq!(filter.last_interruption(), Some(7));
        filter.interrupted(12);
        assert!(!filter.plays(10));
        assert!(filter.plays(13));
    }
}
