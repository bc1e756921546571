//! One model response: its rendered audio, how much of it went out, and the JSON of the events
//! that describe it (`response.created` … `response.done`), including deterministic usage. A
//! response has at most one assistant message item (audio or text), possibly followed by
//! function calls; an out-of-band one has `conversation_id: null` and echoes its `metadata`.
//!
//! Token accounting (plausible and deterministic; OpenAI does not publish exact rates):
//! - input audio tokens: 1 per 100 ms of user audio committed so far, plus 1 per 50 ms of
//!   assistant audio sent in earlier responses (the conversation is input to every response);
//! - input text tokens: ⌈chars / 4⌉ of the instructions in force and of earlier transcripts and
//!   text items, plus 4 per conversation item;
//! - cached tokens: the previous response's input tokens rounded down to a multiple of 64 when
//!   they were at least 1024 (OpenAI caches prompt prefixes of 1024+ tokens in 64-token steps),
//!   never more than this response's input, counted as text first;
//! - output audio tokens: 1 per 50 ms sent; output text tokens: ⌈chars / 4⌉ of the transcript
//!   sent plus ⌈chars / 4⌉ of the function-call arguments.

use std::time::Instant;

use serde_json::{Value, json};

use super::audio_format::{AudioFormat, PCM_RATE_HZ, resample};
use super::behaviour::{ScriptAudio, ScriptedTurn};
use super::record::ResponseStatus;
use crate::audio::tone;

/// What a response will say, decided when it starts.
#[derive(Debug)]
pub(crate) struct ResponsePlan {
    /// The whole audio in `format` (empty for streaming and text-only responses).
    pub audio: Vec<u8>,
    /// The output format of this response.
    pub format: AudioFormat,
    /// The transcript (for a streaming response it is made when the response ends).
    pub transcript: String,
    /// `output_modalities: ["text"]`: the transcript goes out as `response.output_text.*`.
    pub text_only: bool,
    /// [`Mode::EchoStream`](super::Mode::EchoStream): audio is pushed by appends.
    pub streaming: bool,
    /// Whether the response has an assistant message item (`false` only for a function-call
    /// response without a preamble).
    pub message: bool,
    /// The [`Behaviour::function_calls`](super::Behaviour::function_calls) entry whose calls
    /// follow the message.
    pub function_call: Option<usize>,
    /// `response.conversation: "none"`.
    pub out_of_band: bool,
    /// `response.metadata` (`Null` when absent).
    pub metadata: Value,
}

impl ResponsePlan {
    /// A spoken (or written) message with nothing else, in the default conversation.
    pub(crate) fn message(
        audio: Vec<u8>,
        format: AudioFormat,
        transcript: String,
        text_only: bool,
        streaming: bool,
    ) -> ResponsePlan {
        ResponsePlan {
            audio: if text_only { Vec::new() } else { audio },
            format,
            transcript,
            text_only,
            streaming: streaming && !text_only,
            message: true,
            function_call: None,
            out_of_band: false,
            metadata: Value::Null,
        }
    }
}

/// The conversation so far, as far as usage needs it.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct History {
    /// User audio committed.
    pub user_audio_ms: u64,
    /// Assistant audio sent (after truncation).
    pub assistant_audio_ms: u64,
    /// Characters of transcripts and text items in the conversation.
    pub text_chars: u64,
    /// Items in the conversation.
    pub items: u64,
    /// Input tokens of the previous response (the cacheable prefix).
    pub last_input_tokens: u64,
}

/// Token counts of one response.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Input text tokens.
    pub input_text: u64,
    /// Input audio tokens.
    pub input_audio: u64,
    /// Cached text tokens (part of `input_text`).
    pub cached_text: u64,
    /// Cached audio tokens (part of `input_audio`).
    pub cached_audio: u64,
    /// Output text tokens.
    pub output_text: u64,
    /// Output audio tokens.
    pub output_audio: u64,
}

impl Usage {
    /// The input side, fixed when the response starts.
    pub(crate) fn input(history: &History, instructions_chars: u64) -> Usage {
        let input_text = (instructions_chars + history.text_chars).div_ceil(4) + 4 * history.items;
        let input_audio = history.user_audio_ms / 100 + history.assistant_audio_ms / 50;
        let cached = if history.last_input_tokens >= 1_024 {
            (history.last_input_tokens / 64 * 64).min(input_text + input_audio)
        } else {
            0
        };
        let cached_text = cached.min(input_text);
        Usage {
            input_text,
            input_audio,
            cached_text,
            cached_audio: cached - cached_text,
            output_text: 0,
            output_audio: 0,
        }
    }

    /// Total input tokens.
    pub(crate) fn input_tokens(&self) -> u64 {
        self.input_text + self.input_audio
    }

    /// `response.usage`.
    pub(crate) fn to_json(self) -> Value {
        let input = self.input_tokens();
        let output = self.output_text + self.output_audio;
        json!({
            "total_tokens": input + output,
            "input_tokens": input,
            "output_tokens": output,
            "input_token_details": {
                "text_tokens": self.input_text,
                "audio_tokens": self.input_audio,
                "image_tokens": 0,
                "cached_tokens": self.cached_text + self.cached_audio,
                "cached_tokens_details": {
                    "text_tokens": self.cached_text,
                    "audio_tokens": self.cached_audio,
                    "image_tokens": 0
                }
            },
            "output_token_details": {
                "text_tokens": self.output_text,
                "audio_tokens": self.output_audio
            }
        })
    }
}

/// The response being streamed.
#[derive(Debug)]
pub(crate) struct ActiveResponse {
    /// `resp_…`.
    pub id: String,
    /// The assistant item.
    pub item_id: String,
    /// Index in `SessionRecord::responses`.
    pub record_index: usize,
    /// Index of the assistant message item in the conversation (`None` for out-of-band
    /// responses and responses without a message).
    pub item_index: Option<usize>,
    /// Output format.
    pub format: AudioFormat,
    /// Rendered audio (not kept for streaming responses).
    pub audio: Vec<u8>,
    /// Bytes of audio sent.
    pub sent_bytes: u64,
    /// Full transcript.
    pub transcript: String,
    /// Bytes of the transcript already sent in deltas.
    pub transcript_sent: usize,
    /// Words per transcript delta, so the transcript spreads over the audio deltas.
    pub words_per_delta: usize,
    /// See [`ResponsePlan::text_only`].
    pub text_only: bool,
    /// See [`ResponsePlan::streaming`].
    pub streaming: bool,
    /// When `response.created` went out (the pacing origin).
    pub started: Instant,
    /// Input usage, fixed at the start.
    pub usage: Usage,
    /// The fake caller may talk over this response ([`Mode::BargeIn`](super::Mode::BargeIn)).
    pub barge_in_eligible: bool,
    /// The fake caller already talked over it.
    pub barge_in_fired: bool,
    /// See [`ResponsePlan::message`].
    pub message: bool,
    /// See [`ResponsePlan::function_call`].
    pub function_call: Option<usize>,
    /// See [`ResponsePlan::out_of_band`].
    pub out_of_band: bool,
    /// See [`ResponsePlan::metadata`].
    pub metadata: Value,
}

impl ActiveResponse {
    /// Audio sent, in samples of the output format.
    pub(crate) fn sent_samples(&self) -> u64 {
        self.sent_bytes / self.format.bytes_per_sample() as u64
    }

    /// Audio sent, in milliseconds (rounded down).
    pub(crate) fn sent_ms(&self) -> u64 {
        self.sent_samples() * 1_000 / u64::from(self.format.rate_hz())
    }

    /// Audio sent, in fractional milliseconds (for pacing).
    pub(crate) fn sent_ms_exact(&self) -> f64 {
        self.sent_samples() as f64 * 1_000.0 / f64::from(self.format.rate_hz())
    }

    /// Whether rendered audio remains to be sent.
    pub(crate) fn audio_remaining(&self) -> bool {
        !self.streaming && (self.sent_bytes as usize) < self.audio.len()
    }

    /// The next piece of transcript to send with an audio delta (`all`: everything left).
    pub(crate) fn next_transcript_piece(&mut self, all: bool) -> Option<String> {
        let rest = self.transcript.get(self.transcript_sent..)?;
        if rest.is_empty() {
            return None;
        }
        let mut end = rest.len();
        if !all {
            // Count words; the whitespace after the last one belongs to this piece, so the
            // pieces concatenate back to the transcript exactly.
            let mut words = 0;
            let mut in_word = false;
            let mut enough = false;
            for (index, character) in rest.char_indices() {
                let space = character.is_whitespace();
                if enough && !space {
                    end = index;
                    break;
                }
                if in_word && space {
                    words += 1;
                    enough = words >= self.words_per_delta;
                }
                in_word = !space;
            }
        }
        let piece = rest[..end].to_owned();
        self.transcript_sent += end;
        Some(piece)
    }

    /// The transcript sent so far.
    pub(crate) fn transcript_so_far(&self) -> &str {
        self.transcript.get(..self.transcript_sent).unwrap_or("")
    }

    /// `response.created`'s (or `response.done`'s) response object.
    pub(crate) fn to_json(
        &self,
        status: ResponseStatus,
        reason: Option<&str>,
        output: Vec<Value>,
        usage: Option<Value>,
        voice: &Value,
    ) -> Value {
        let status_details = match (status, reason) {
            (ResponseStatus::Cancelled, Some(reason)) => {
                json!({"type": "cancelled", "reason": reason})
            }
            _ => Value::Null,
        };
        json!({
            "object": "realtime.response",
            "id": self.id,
            "status": status.as_str(),
            "status_details": status_details,
            "output": output,
            "conversation_id": if self.out_of_band { Value::Null } else { json!("conv_default") },
            "output_modalities": [if self.text_only { "text" } else { "audio" }],
            "max_output_tokens": "inf",
            "audio": {"output": {"format": self.format.to_json(), "voice": voice}},
            "usage": usage.unwrap_or(Value::Null),
            "metadata": self.metadata
        })
    }

    /// The assistant item (`content` empty while it is being added).
    pub(crate) fn item_json(&self, status: &str, with_content: bool) -> Value {
        let content = if !with_content {
            json!([])
        } else if self.text_only {
            json!([{"type": "output_text", "text": self.transcript_so_far()}])
        } else {
            json!([{"type": "output_audio", "transcript": self.transcript_so_far()}])
        };
        json!({
            "id": self.item_id,
            "object": "realtime.item",
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": content
        })
    }
}

/// Words in `text`.
pub(crate) fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

/// The audio of a scripted turn, in `format`.
pub(crate) fn render_turn(turn: &ScriptedTurn, format: AudioFormat) -> Vec<u8> {
    let rate = format.rate_hz();
    let samples = match &turn.audio {
        ScriptAudio::Tone {
            freq_hz,
            ms,
            amplitude,
        } => tone::sine(
            *freq_hz,
            rate,
            (u64::from(*ms) * u64::from(rate) / 1_000) as usize,
            *amplitude,
        ),
        ScriptAudio::Samples24k(samples) => {
            let mut converted = Vec::new();
            resample(samples, PCM_RATE_HZ, rate, &mut converted);
            converted
        }
    };
    let mut bytes = Vec::new();
    format.encode(&samples, &mut bytes);
    bytes
}

/// `samples` at `rate_hz`, in `format`.
pub(crate) fn render_samples(samples: &[i16], rate_hz: u32, format: AudioFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    if rate_hz == format.rate_hz() {
        format.encode(samples, &mut bytes);
    } else {
        let mut converted = Vec::new();
        resample(samples, rate_hz, format.rate_hz(), &mut converted);
        format.encode(&converted, &mut bytes);
    }
    bytes
}

/// The text of a `response.output_audio.delta`, written by hand: it is the hottest event
/// (every ids is ASCII without quotes and base64 needs no escaping).
pub(crate) fn audio_delta_text(
    event_id: &str,
    response_id: &str,
    item_id: &str,
    delta: &str,
) -> String {
    let mut text = String::with_capacity(delta.len() + 190);
    text.push_str("{\"type\":\"response.output_audio.delta\",\"event_id\":\"");
    text.push_str(event_id);
    text.push_str("\",\"response_id\":\"");
    text.push_str(response_id);
    text.push_str("\",\"item_id\":\"");
    text.push_str(item_id);
    text.push_str("\",\"output_index\":0,\"content_index\":0,\"delta\":\"");
    text.push_str(delta);
    text.push_str("\"}");
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn response(transcript: &str, words_per_delta: usize) -> ActiveResponse {
        ActiveResponse {
            id: "resp_1".into(),
            item_id: "item_1".into(),
            record_index: 0,
            item_index: Some(0),
            format: AudioFormat::Pcmu,
            audio: vec![0xFF; 8_000],
            sent_bytes: 4_000,
            transcript: transcript.into(),
            transcript_sent: 0,
            words_per_delta,
            text_only: false,
            streaming: false,
            started: Instant::now(),
            usage: Usage::default(),
            barge_in_eligible: false,
            barge_in_fired: false,
            message: true,
            function_call: None,
            out_of_band: false,
            metadata: Value::Null,
        }
    }

    #[test]
    fn transcripts_go_out_a_few_words_at_a_time_and_rejoin_exactly() {
        let mut active = response("Hello there,  how are you today?", 2);
        let mut pieces = Vec::new();
        while let Some(piece) = active.next_transcript_piece(false) {
            pieces.push(piece);
        }
        assert_eq!(pieces, ["Hello there,  ", "how are ", "you today?"]);
        assert_eq!(pieces.concat(), active.transcript);
        assert_eq!(active.transcript_so_far(), active.transcript);
        let mut rest = response("one two three", 1);
        assert_eq!(rest.next_transcript_piece(false).as_deref(), Some("one "));
        assert_eq!(
            rest.next_transcript_piece(true).as_deref(),
            Some("two three")
        );
        assert_eq!(rest.next_transcript_piece(true), None);
    }

    #[test]
    fn sent_audio_is_measured_in_the_output_format() {
        let active = response("", 1);
        assert_eq!(active.sent_ms(), 500);
        assert!(active.audio_remaining());
    }

    #[test]
    fn usage_is_deterministic_and_caches_long_prefixes() {
        let history = History {
            user_audio_ms: 10_000,
            assistant_audio_ms: 5_000,
            text_chars: 400,
            items: 4,
            last_input_tokens: 1_100,
        };
        let mut usage = Usage::input(&history, 400);
        assert_eq!(usage.input_text, 200 + 16);
        assert_eq!(usage.input_audio, 100 + 100);
        // 1088 cacheable tokens, capped at this response's 416 input tokens.
        assert_eq!(usage.cached_text + usage.cached_audio, 416);
        usage.output_audio = 40;
        usage.output_text = 5;
        let json = usage.to_json();
        assert_eq!(json["total_tokens"], 416 + 45);
        assert_eq!(json["output_token_details"]["audio_tokens"], 40);
        assert_eq!(Usage::input(&History::default(), 0).input_tokens(), 0);
    }

    #[test]
    fn rendered_turns_have_the_scripted_length_in_each_format() {
        let turn = ScriptedTurn::tone("hi", 440.0, 250);
        assert_eq!(render_turn(&turn, AudioFormat::Pcm24k).len(), 6_000 * 2);
        assert_eq!(render_turn(&turn, AudioFormat::Pcmu).len(), 2_000);
        let recorded = ScriptedTurn::samples("hi", std::sync::Arc::new(vec![0; 2_400]));
        assert_eq!(render_turn(&recorded, AudioFormat::Pcma).len(), 800);
        assert_eq!(
            render_samples(&[0; 800], 8_000, AudioFormat::Pcm24k).len(),
            4_800
        );
    }

    #[test]
    fn the_hand_written_delta_is_valid_json() {
        let text = audio_delta_text("event_1", "resp_1", "item_1", "AAAA");
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["type"], "response.output_audio.delta");
        assert_eq!(parsed["delta"], "AAAA");
        assert_eq!(parsed["content_index"], 0);
    }
}
