//! The demo's account of what happened: steps as they happen, then for each call a timeline
//! (what the caller heard and when, the barge-in), what the model (or the ElevenLabs agent) was
//! sent and did, and the call log voxbridge wrote, with cost and latency.

use std::fmt::Write as _;
use std::time::Instant;

use crate::sim::caller::ReceivedEvent;
use crate::sim::fake_openai::ResponseStatus;

use super::calls::{PlayedCall, playback_end};
use super::elevenlabs;

/// Prints numbered steps with the time since the demo began.
pub(crate) struct Narrator {
    began: Instant,
}

impl Narrator {
    pub(crate) fn new() -> Self {
        Narrator {
            began: Instant::now(),
        }
    }

    pub(crate) fn heading(&self, text: &str) {
        println!("\n== {text}");
    }

    pub(crate) fn step(&self, text: &str) {
        println!("[{:6.2} s] {text}", self.began.elapsed().as_secs_f64());
    }
}

/// The timeline of one call, relative to the media stream opening.
pub(crate) fn timeline(call: &PlayedCall) -> Vec<String> {
    let at = |instant: Instant| {
        instant
            .saturating_duration_since(call.opened_at)
            .as_secs_f64()
    };
    let mut lines: Vec<(f64, String)> = call
        .marks
        .iter()
        .map(|(instant, what)| (at(*instant), what.clone()))
        .collect();
    let events = &call.summary.received.events;
    let mut last_audio: Option<Instant> = None;
    for event in events {
        match event {
            ReceivedEvent::Audio { at: arrived, .. } => {
                // A new burst of assistant audio: the first chunk, or one after a pause.
                let new_turn = last_audio
                    .is_none_or(|last| arrived.saturating_duration_since(last).as_millis() > 800);
                if new_turn {
                    lines.push((at(*arrived), "assistant audio starts arriving".into()));
                }
                last_audio = Some(*arrived);
            }
            ReceivedEvent::Clear { at: cleared } => lines.push((
                at(*cleared),
                "barge-in: voxbridge sends FreJun `clear` (queued assistant audio dropped)".into(),
            )),
            ReceivedEvent::Interrupt {
                at: interrupted,
                chunk_id,
            } => lines.push((
                at(*interrupted),
                format!("voxbridge sends FreJun `interrupt` (chunk {chunk_id:?})"),
            )),
            ReceivedEvent::Other { .. } => {}
        }
    }
    if let Some(end) = playback_end(events) {
        lines.push((
            at(end),
            "the caller has heard the last assistant audio".into(),
        ));
    }
    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    lines
        .into_iter()
        .map(|(seconds, what)| format!("  +{seconds:5.2} s  {what}"))
        .collect()
}

/// What the caller heard and what the model did, in a few lines.
pub(crate) fn heard(call: &PlayedCall) -> Vec<String> {
    let received = &call.summary.received;
    let mut lines = vec![format!(
        "  heard: {:.1} s of assistant audio in {} chunks (8 kHz), {} clear, {} protocol problems",
        received.audio_samples as f64 / 8_000.0,
        received.audio_chunks,
        received.clears,
        received.violations.len()
    )];
    for violation in &received.violations {
        lines.push(format!("    problem: {violation}"));
    }
    if let Some(session) = &call.session {
        let mut line = format!(
            "  OpenAI (fake) received {:.1} s of caller audio at {} Hz; responses:",
            session.appended_ms as f64 / 1_000.0,
            session.input_rate_hz
        );
        for response in &session.responses {
            let status = match response.status {
                ResponseStatus::Completed => "completed",
                ResponseStatus::Cancelled => "cancelled",
                ResponseStatus::InProgress => "in progress",
            };
            let _ = write!(line, " {status} ({} ms sent);", response.audio_ms_sent);
        }
        lines.push(line);
        for truncate in &session.truncates {
            lines.push(format!(
                "  voxbridge truncated the interrupted answer at {} ms: what the caller had heard",
                truncate["audio_end_ms"]
            ));
        }
    }
    lines.extend(elevenlabs::describe(call));
    lines
}
