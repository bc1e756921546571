//! What the caller heard on a call, summed up from the caller's tally ([`Received`]) for
//! people: how much audio, in how many chunks, how often voxbridge cleared or interrupted
//! playback, protocol problems, and how the stream ended.

use std::fmt;

use crate::audio::pcm;
use crate::sim::caller::{CloseInfo, Received, ReceivedEvent};

/// The rate voxbridge sends to FreJun (the caller's received audio is at this rate).
const RECEIVED_RATE_HZ: u32 = 8_000;

/// A summary of what the caller received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heard {
    /// Audio received, in milliseconds.
    pub audio_ms: u64,
    /// `audio` messages received.
    pub chunks: u64,
    /// `clear` messages (voxbridge dropping queued playback: a barge-in or a tenant's request).
    pub clears: u32,
    /// `interrupt` messages.
    pub interrupts: u64,
    /// Things a real FreJun could choke on, as the caller judged them.
    pub violations: Vec<String>,
    /// Violations beyond the caller's cap, only counted.
    pub violations_dropped: u64,
    /// How the stream ended; `None` if it was not seen to close.
    pub closed: Option<CloseInfo>,
}

impl Heard {
    pub(crate) fn from_received(received: &Received) -> Heard {
        Heard {
            audio_ms: pcm::samples_to_ms(received.audio_samples, RECEIVED_RATE_HZ),
            chunks: received.audio_chunks,
            clears: received.clears,
            interrupts: received
                .events
                .iter()
                .filter(|event| matches!(event, ReceivedEvent::Interrupt { .. }))
                .count() as u64,
            violations: received.violations.clone(),
            violations_dropped: received.notes_dropped,
            closed: received.closed.clone(),
        }
    }

    #[cfg(test)]
    /// voxbridge closed the stream before the caller hung up.
    pub(crate) fn closed_by_server(&self) -> bool {
        self.closed.as_ref().is_some_and(|closed| closed.by_server)
    }
}

fn plural(count: u64, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

impl fmt::Display for Heard {
    /// `3.2 s of audio in 16 chunks, 1 clear, 0 interrupts; voxbridge closed the stream (1000
    /// ai_error)` and any protocol violations.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.1} s of audio in {}, {}, {}",
            self.audio_ms as f64 / 1_000.0,
            plural(self.chunks, "chunk", "chunks"),
            plural(u64::from(self.clears), "clear", "clears"),
            plural(self.interrupts, "interrupt", "interrupts"),
        )?;
        match &self.closed {
            Some(closed) if closed.by_server => {
                write!(f, "; voxbridge closed the stream ({}", closed.code)?;
                if !closed.reason.is_empty() {
                    write!(f, " {}", closed.reason)?;
                }
                write!(f, ")")?;
            }
            Some(closed) => write!(f, "; the stream closed after our hang-up ({})", closed.code)?,
            None => write!(f, "; the stream was not seen to close")?,
        }
        let total = self.violations.len() as u64 + self.violations_dropped;
        if total > 0 {
            write!(
                f,
                "; {}: {}",
                plural(total, "protocol violation", "protocol violations"),
                self.violations.join("; ")
            )?;
        }
        Ok(())
    }
}
