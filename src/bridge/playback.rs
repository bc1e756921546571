//! The caller's side of the assistant's speech: outbound audio gathered into FreJun chunks,
//! and a clock of what the caller has heard.
//!
//! Chunk sizes: FreJun recommends chunks of at least 500 ms towards Teler (smaller ones can
//! play choppily), while the first audio of an answer should reach the caller as early as
//! possible. So each item's first chunk goes out at the assistant's `outbound_chunk_ms`, and each
//! later chunk is twice the previous one, up to `playback_chunk_ms` (100, 200, 400, 500, 500, …
//! with the defaults): first audio stays fast, and while one chunk plays the next, larger one is
//! being gathered.
//!
//! FreJun queues every chunk we send and plays them in order, and never says what it played
//! (docs/protocols.md §1.4, §1.6). So we keep the estimate ourselves: each chunk extends a playback
//! queue that ends at `queue_end`; an item starts playing when the queue reaches it. At a
//! barge-in, the item playing now was heard for `now - its start - playout latency`, clamped to
//! what was sent; items still queued behind it were not heard at all.

use std::time::{Duration, Instant};

use super::teler_media::write_audio_message;
use crate::audio::{pcm, scratch};
use crate::settings::AudioMessageShape;

/// The rate of everything sent to FreJun (every reference bridge sends 8 kHz).
pub(crate) const OUTBOUND_RATE: u32 = 8_000;
const SAMPLES_PER_MS: u64 = OUTBOUND_RATE as u64 / 1_000;

/// Which output of OpenAI a piece of audio belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ItemKey {
    pub response_id: String,
    pub item_id: String,
    pub content_index: u32,
}

/// One assistant item's audio as sent to the caller.
#[derive(Debug, Clone)]
pub(crate) struct PlayedItem {
    pub key: ItemKey,
    /// Samples sent to FreJun.
    pub sent_samples: u64,
    /// When the caller starts hearing it (estimated), once its first chunk is sent.
    pub starts_at: Option<Instant>,
}

impl PlayedItem {
    pub(crate) fn sent_ms(&self) -> u64 {
        self.sent_samples / SAMPLES_PER_MS
    }

    /// Milliseconds of this item the caller has heard at `now`, clamped to what was sent.
    pub(crate) fn heard_ms(&self, now: Instant, playout_latency: Duration) -> u64 {
        let Some(starts_at) = self.starts_at else {
            return 0;
        };
        let elapsed = now
            .saturating_duration_since(starts_at)
            .saturating_sub(playout_latency);
        (elapsed.as_millis() as u64).min(self.sent_ms())
    }
}

/// A chunk ready for FreJun.
#[derive(Debug)]
pub(crate) struct OutboundChunk {
    // The id and length travel in `message`; the fields are what the tests read.
    #[cfg_attr(not(test), allow(dead_code))]
    pub chunk_id: u64,
    pub message: String,
    #[cfg_attr(not(test), allow(dead_code))]
    pub samples: usize,
}

#[derive(Debug)]
pub(crate) struct Playback {
    /// The first chunk of an item.
    first_chunk_samples: usize,
    /// What later chunks grow to.
    max_chunk_samples: usize,
    /// The size of the chunk being gathered now.
    chunk_samples: usize,
    shape: AudioMessageShape,
    /// Audio of `pending_item` not yet sent (less than one chunk).
    pending: Vec<i16>,
    pending_item: Option<ItemKey>,
    next_chunk_id: u64,
    /// Items sent since the last clear, oldest first.
    items: Vec<PlayedItem>,
    /// When FreJun will have played everything sent so far (estimated).
    queue_end: Option<Instant>,
    total_sent_samples: u64,
}

impl Playback {
    /// Keep only the most recent items: older ones have long finished playing.
    const MAX_ITEMS: usize = 16;

    /// Chunks start at `first_chunk_ms` for each item and double up to `playback_chunk_ms`
    /// (never below the first), written in `shape`.
    pub(crate) fn new(
        first_chunk_ms: u32,
        playback_chunk_ms: u32,
        shape: AudioMessageShape,
    ) -> Self {
        let samples = |ms: u32| (u64::from(ms.max(20)) * SAMPLES_PER_MS) as usize;
        let first_chunk_samples = samples(first_chunk_ms);
        let max_chunk_samples = samples(playback_chunk_ms).max(first_chunk_samples);
        Self {
            first_chunk_samples,
            max_chunk_samples,
            chunk_samples: first_chunk_samples,
            shape,
            // Grown to the chunks really sent (exactly: see `push`) rather than sized for the
            // largest, which a call that sends 100 ms chunks would hold and never touch.
            pending: Vec::new(),
            pending_item: None,
            next_chunk_id: 1,
            items: Vec::new(),
            queue_end: None,
            total_sent_samples: 0,
        }
    }

    /// Adds 8 kHz `samples` of `item`; returns the chunks that are now complete. Audio of a new
    /// item first flushes what is left of the previous one, so a chunk never spans two items.
    pub(crate) fn push(
        &mut self,
        item: &ItemKey,
        mut samples: &[i16],
        now: Instant,
    ) -> Vec<OutboundChunk> {
        let mut chunks = Vec::new();
        if self.pending_item.as_ref() != Some(item) {
            chunks.extend(self.flush(now));
            self.pending_item = Some(item.clone());
            self.chunk_samples = self.first_chunk_samples;
        }
        while !samples.is_empty() {
            // Room for exactly the chunk being gathered: doubling would leave a 500 ms chunk's
            // buffer at 800 ms (12.8 KB a call instead of 8).
            if self.pending.capacity() < self.chunk_samples {
                self.pending
                    .reserve_exact(self.chunk_samples - self.pending.len());
            }
            let room = self.chunk_samples - self.pending.len();
            let (take, rest) = samples.split_at(room.min(samples.len()));
            self.pending.extend_from_slice(take);
            samples = rest;
            if self.pending.len() == self.chunk_samples {
                chunks.push(self.send_pending(now));
                self.chunk_samples = (self.chunk_samples * 2).min(self.max_chunk_samples);
            }
        }
        chunks
    }

    /// Sends what is pending even if it is shorter than a chunk (end of an item or response).
    pub(crate) fn flush(&mut self, now: Instant) -> Option<OutboundChunk> {
        if self.pending.is_empty() {
            return None;
        }
        Some(self.send_pending(now))
    }

    fn send_pending(&mut self, now: Instant) -> OutboundChunk {
        let key = self
            .pending_item
            .clone()
            .expect("pending audio always has an item");
        let samples = self.pending.len();
        let mut bytes = scratch::chunk_bytes();
        pcm::encode_s16le(&self.pending, &mut bytes);
        self.pending.clear();
        let chunk_id = self.next_chunk_id;
        self.next_chunk_id += 1;
        let mut message = String::new();
        write_audio_message(self.shape, &bytes, chunk_id, &mut message);

        let starts_at = self.queue_end.filter(|end| *end > now).unwrap_or(now);
        let duration = Duration::from_micros(samples as u64 * 1_000_000 / u64::from(OUTBOUND_RATE));
        self.queue_end = Some(starts_at + duration);
        match self.items.last_mut() {
            Some(last) if last.key == key => last.sent_samples += samples as u64,
            _ => {
                if self.items.len() == Self::MAX_ITEMS {
                    self.items.remove(0);
                }
                self.items.push(PlayedItem {
                    key,
                    sent_samples: samples as u64,
                    starts_at: Some(starts_at),
                });
            }
        }
        self.total_sent_samples += samples as u64;
        OutboundChunk {
            chunk_id,
            message,
            samples,
        }
    }

    /// When FreJun will have played everything sent so far (estimated; without the playout
    /// latency); `None` before any audio.
    pub(crate) fn played_out_at(&self) -> Option<Instant> {
        self.queue_end
    }

    /// Audio sent or pending that the caller has not heard yet.
    pub(crate) fn has_unplayed(&self, now: Instant) -> bool {
        !self.pending.is_empty() || self.queue_end.is_some_and(|end| end > now)
    }

    /// Items the caller was hearing or about to hear at `now`, with how much was heard: what a
    /// barge-in truncates. Fully played items are left alone.
    pub(crate) fn unfinished(
        &self,
        now: Instant,
        playout_latency: Duration,
    ) -> Vec<(ItemKey, u64)> {
        self.items
            .iter()
            .filter(|item| item.heard_ms(now, playout_latency) < item.sent_ms())
            .map(|item| (item.key.clone(), item.heard_ms(now, playout_latency)))
            .collect()
    }

    /// Forgets unsent audio and the playback queue (FreJun was told to clear its queue).
    pub(crate) fn clear(&mut self) {
        self.pending.clear();
        self.pending_item = None;
        self.chunk_samples = self.first_chunk_samples;
        self.items.clear();
        self.queue_end = None;
    }

    /// The id the next chunk will get (ids are never reused, even across clears).
    pub(crate) fn next_chunk_id(&self) -> u64 {
        self.next_chunk_id
    }

    pub(crate) fn sent_ms(&self) -> u64 {
        self.total_sent_samples / SAMPLES_PER_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(item: &str) -> ItemKey {
        ItemKey {
            response_id: "resp_1".into(),
            item_id: item.into(),
            content_index: 0,
        }
    }

    #[test]
    fn audio_is_cut_into_chunks_with_increasing_ids_and_flushed_at_the_end() {
        let mut playback = Playback::new(100, 100, AudioMessageShape::Flat);
        let now = Instant::now();
        let chunks = playback.push(&key("a"), &[1; 1_000], now);
        assert_eq!(chunks.len(), 1, "800 samples make one 100 ms chunk");
        assert_eq!(chunks[0].samples, 800);
        let flushed = playback.flush(now).unwrap();
        assert_eq!(flushed.samples, 200);
        assert_eq!(flushed.chunk_id, chunks[0].chunk_id + 1);
        assert!(playback.flush(now).is_none());
        let value: serde_json::Value = serde_json::from_str(&flushed.message).unwrap();
        assert_eq!(value["type"], "audio");
        assert_eq!(value["chunk_id"], 2);
        assert_eq!(
            value["audio_b64"].as_str().unwrap().len(),
            536,
            "base64 of 400 bytes"
        );
        assert_eq!(playback.sent_ms(), 125);
    }

    #[test]
    fn a_new_item_flushes_the_previous_one_first() {
        let mut playback = Playback::new(100, 100, AudioMessageShape::Flat);
        let now = Instant::now();
        assert!(playback.push(&key("a"), &[1; 300], now).is_empty());
        let chunks = playback.push(&key("b"), &[2; 100], now);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].samples, 300);
    }

    #[test]
    fn heard_time_follows_the_queue_and_is_clamped_to_what_was_sent() {
        let mut playback = Playback::new(100, 100, AudioMessageShape::Flat);
        let start = Instant::now();
        // Two seconds of item a, then one of item b, all sent at once.
        playback.push(&key("a"), &[1; 16_000], start);
        playback.flush(start);
        playback.push(&key("b"), &[1; 8_000], start);
        playback.flush(start);
        let at = start + Duration::from_millis(500);
        assert!(playback.has_unplayed(at));
        let unfinished = playback.unfinished(at, Duration::ZERO);
        assert_eq!(unfinished, vec![(key("a"), 500), (key("b"), 0)]);
        // With 200 ms of playout latency the caller has heard less.
        assert_eq!(
            playback.unfinished(at, Duration::from_millis(200))[0].1,
            300
        );
        let later = start + Duration::from_millis(2_500);
        assert_eq!(
            playback.unfinished(later, Duration::ZERO),
            vec![(key("b"), 500)]
        );
        let done = start + Duration::from_secs(10);
        assert!(!playback.has_unplayed(done));
        assert!(playback.unfinished(done, Duration::ZERO).is_empty());
    }

    #[test]
    fn clear_drops_pending_audio_but_keeps_chunk_ids_increasing() {
        let mut playback = Playback::new(100, 100, AudioMessageShape::Flat);
        let now = Instant::now();
        playback.push(&key("a"), &[1; 900], now);
        playback.clear();
        assert!(!playback.has_unplayed(now));
        assert!(playback.flush(now).is_none());
        let next = playback.push(&key("b"), &[1; 800], now);
        assert_eq!(next[0].chunk_id, 2);
    }

    #[test]
    fn chunks_start_small_and_double_up_to_the_playback_size_for_each_item() {
        let mut playback = Playback::new(100, 500, AudioMessageShape::Flat);
        let now = Instant::now();
        let sizes = |chunks: Vec<OutboundChunk>| -> Vec<usize> {
            chunks.iter().map(|chunk| chunk.samples / 8).collect()
        };
        // 2.5 s of one item: 100, 200, 400, 500, 500, 500 ms, then 300 ms left pending.
        let chunks = playback.push(&key("a"), &[7; 20_000], now);
        assert_eq!(sizes(chunks), [100, 200, 400, 500, 500, 500]);
        // A new item starts small again (after flushing the old one's rest).
        let chunks = playback.push(&key("b"), &[7; 800], now);
        assert_eq!(sizes(chunks), [300, 100]);
        playback.clear();
        let chunks = playback.push(&key("c"), &[7; 800], now);
        assert_eq!(sizes(chunks), [100], "and after a clear");
    }

    #[test]
    fn the_pending_chunk_holds_no_more_room_than_the_largest_chunk() {
        let mut playback = Playback::new(100, 500, AudioMessageShape::Flat);
        let now = Instant::now();
        // Fed the way deltas arrive (100 ms at a time), through 100, 200, 400 and 500 ms chunks.
        for _ in 0..30 {
            playback.push(&key("a"), &[7; 800], now);
            assert!(playback.pending.capacity() <= 4_000, "500 ms at 8 kHz");
        }
        assert_eq!(playback.pending.capacity(), 4_000);
    }

    #[test]
    fn the_nested_shape_wraps_audio_and_chunk_id_in_data() {
        let mut playback = Playback::new(20, 20, AudioMessageShape::Nested);
        let chunks = playback.push(&key("a"), &[0; 160], Instant::now());
        let message: serde_json::Value = serde_json::from_str(&chunks[0].message).unwrap();
        assert_eq!(message["type"], "audio");
        assert_eq!(message["data"]["chunk_id"], 1);
        assert!(message["data"]["audio_b64"].as_str().unwrap().len() > 100);
        assert!(message.get("audio_b64").is_none());
    }
}
