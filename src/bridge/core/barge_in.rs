//! Barge-in and live control: when the caller talks over the assistant (or the tenant asks),
//! stop playback, cancel generation and tell the AI what was heard (where the backend does not
//! do these itself); and FreJun's `clear` and `interrupt` on command.

use std::time::Instant;

use super::{AiPhase, BridgeCore, Effects};
use crate::bridge::teler_media::{CLEAR_MESSAGE, interrupt_message};
use crate::domain::control::ControlOutcome;

impl BridgeCore {
    // ----- Barge-in and live control ---------------------------------------------------------

    /// The caller spoke over the assistant (or the tenant asked us to stop it): stop playback,
    /// cancel generation, tell the AI what was heard. Does nothing when nothing is playing or
    /// being generated (the caller simply took their turn).
    pub(crate) fn barge_in(&mut self, now: Instant, fx: &mut Effects) -> ControlOutcome {
        if !self.playback.has_unplayed(now) && self.active_response.is_none() {
            return ControlOutcome::nothing();
        }
        self.barge_ins += 1;
        self.record_dirty = true;
        self.stop_assistant(now, fx)
    }

    /// Stops the assistant mid-answer, as a barge-in does (without counting one): playback
    /// cleared, generation cancelled, what was not heard truncated.
    pub(super) fn stop_assistant(&mut self, now: Instant, fx: &mut Effects) -> ControlOutcome {
        let mut outcome = ControlOutcome::nothing();
        let unplayed = self.playback.has_unplayed(now);
        if !unplayed && self.active_response.is_none() {
            return outcome;
        }
        // 1. What the caller perceives: stop playback first.
        if unplayed {
            fx.to_teler.push(CLEAR_MESSAGE.to_owned());
            outcome.sent_to_frejun = Some("clear".into());
        }
        let unfinished = self.playback.unfinished(now, self.config.playout_latency);
        self.playback.clear();
        if let Some(resampler) = self.outbound.as_mut() {
            resampler.reset();
        }
        // 2. Stop generation, and 3. drop whatever of it is still in flight.
        if let Some(response_id) = self.active_response.take() {
            if !self.config.interrupt_response
                && !self.capabilities.own_barge_in
                && self.protocol.cancel_response(&response_id, &mut fx.to_ai)
            {
                outcome.response_cancelled = true;
            }
            self.discarded.insert(response_id);
            for key in self.active_items.drain(..) {
                self.interrupted_items.insert(key.item_id);
            }
        }
        // 4. Truncate what was sent but not (fully) heard; skip items with no audio sent.
        for (key, heard_ms) in unfinished {
            self.protocol
                .truncate(&key.item_id, key.content_index, heard_ms, &mut fx.to_ai);
            if outcome.truncated_item_id.is_none() {
                outcome.truncated_item_id = Some(key.item_id.clone());
                outcome.truncated_at_ms = Some(heard_ms);
            }
            self.mark_interrupted(&key.item_id);
        }
        outcome
    }

    /// Context for the AI from the tenant's software. Before the socket is open it waits and
    /// follows the session's opening.
    pub(crate) fn add_context(&mut self, text: String, fx: &mut Effects) -> ControlOutcome {
        if self.phase == AiPhase::Connecting {
            self.protocol.add_context(text, &mut self.pending_context);
        } else {
            self.protocol.add_context(text, &mut fx.to_ai);
        }
        ControlOutcome {
            context_added: true,
            ..ControlOutcome::nothing()
        }
    }

    /// FreJun's `clear`: drop everything queued, and our unsent audio with it.
    pub(crate) fn clear_playback(&mut self, fx: &mut Effects) -> ControlOutcome {
        fx.to_teler.push(CLEAR_MESSAGE.to_owned());
        self.playback.clear();
        ControlOutcome::sent_to_frejun("clear")
    }

    /// FreJun's `interrupt` for one chunk we sent.
    pub(crate) fn interrupt_chunk(
        &mut self,
        chunk_id: u64,
        fx: &mut Effects,
    ) -> Result<ControlOutcome, u64> {
        if chunk_id == 0 || chunk_id >= self.playback.next_chunk_id() {
            return Err(self.playback.next_chunk_id());
        }
        fx.to_teler.push(interrupt_message(chunk_id));
        Ok(ControlOutcome::sent_to_frejun("interrupt"))
    }
}
