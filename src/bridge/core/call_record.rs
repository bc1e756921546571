//! The call record: transcript turns (and which ones the caller cut short), usage, cost and
//! metrics, handed to the call-log keeper as what changed since its last write.

use bson::DateTime;

use super::BridgeCore;
use crate::domain::call::record::CallProgress;
use crate::domain::call::record::TranscriptRole;
use crate::domain::call::record::{CallMetrics, TranscriptTurn};
use crate::domain::pricing::{TokenCounts, estimate_cost_usd};

impl BridgeCore {
    // ----- The call log ----------------------------------------------------------------------

    pub(super) fn add_turn(
        &mut self,
        role: TranscriptRole,
        text: String,
        item_id: Option<String>,
        interrupted: bool,
    ) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        self.transcript.push(TranscriptTurn {
            role,
            text: text.to_owned(),
            at: DateTime::now(),
            item_id,
            interrupted,
            tool: None,
        });
    }

    pub(super) fn mark_interrupted(&mut self, item_id: &str) {
        self.interrupted_items.insert(item_id.to_owned());
        for (index, turn) in self.transcript.iter_mut().enumerate() {
            if turn.item_id.as_deref() == Some(item_id) && !turn.interrupted {
                turn.interrupted = true;
                if index < self.flushed_turns {
                    self.interrupted_flushed.push(index);
                }
            }
        }
    }

    /// What changed since the last call, for the call-log keeper; `None` when nothing did.
    ///
    /// What a reader of the call log waits for (transcript turns and interruptions, usage,
    /// barge-ins, tool turns, failed responses, the first answer) is always taken. The running
    /// counters alone (audio in and out, frame latency) change with every frame, so they are
    /// taken only when `counters_due` (the runner's longer interval has passed): a crash loses
    /// at most that interval of counters, and no more of the rest than before.
    pub(crate) fn take_progress(&mut self, counters_due: bool) -> Option<CallProgress> {
        let new_turns = self.transcript[self.flushed_turns..].to_vec();
        let audio = (self.audio_in_ms(), self.audio_out_ms());
        let counters_changed = counters_due && audio != self.flushed_audio;
        if new_turns.is_empty()
            && self.interrupted_flushed.is_empty()
            && !self.record_dirty
            && !counters_changed
        {
            return None;
        }
        let progress = CallProgress {
            first_turn_index: self.flushed_turns,
            new_turns,
            interrupted_turns: std::mem::take(&mut self.interrupted_flushed),
            usage: self.usage.clone(),
            cost_usd: self.cost_usd(),
            metrics: Some(self.metrics()),
        };
        self.flushed_turns = self.transcript.len();
        self.flushed_audio = audio;
        self.record_dirty = false;
        Some(progress)
    }

    /// Everything not yet written, for the final write.
    pub(crate) fn final_progress(&mut self) -> CallProgress {
        self.record_dirty = true;
        self.take_progress(true).unwrap_or_default()
    }

    pub(crate) fn metrics(&self) -> CallMetrics {
        CallMetrics {
            first_response_ms: self.first_response_ms,
            barge_ins: self.barge_ins,
            audio_in_ms: self.audio_in_ms(),
            audio_out_ms: self.audio_out_ms(),
            frame_latency_p50_us: self.latency.quantile(0.5),
            frame_latency_p99_us: self.latency.quantile(0.99),
            failed_responses: self.failed_responses,
            last_response_error: self.last_response_error.clone(),
            tool_calls: self.tool_counts().0,
            tool_errors: self.tool_counts().1,
        }
    }

    fn cost_usd(&self) -> Option<f64> {
        let usage = self.usage.as_ref()?;
        Some(estimate_cost_usd(
            &self.config.model,
            TokenCounts {
                input_audio: usage.input_audio_tokens,
                input_text: usage.input_text_tokens,
                input_cached_audio: usage.input_cached_audio_tokens,
                input_cached_text: usage.input_cached_text_tokens,
                output_audio: usage.output_audio_tokens,
                output_text: usage.output_text_tokens,
            },
        ))
    }
}
