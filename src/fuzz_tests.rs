//! Property tests of every parser that reads outside input: fuzzing on stable Rust with
//! `proptest`.
//!
//! # What is fuzzed
//!
//! - FreJun's media-stream messages: [`TelerMessage::parse`], and our outbound writer
//!   [`teler_media::write_audio_message`] through it.
//! - FreJun's flow bodies ([`FlowRequest::parse`]) and status webhooks ([`WebhookEvent::parse`]).
//! - OpenAI Realtime server events ([`ServerEvent::parse`], both its one-pass path for `type`
//!   first and its two-pass path for `type` anywhere).
//! - Teler REST answers: error bodies with their status and `Retry-After`
//!   ([`teler::error_from_response`]) and the answer to an initiate ([`teler::parse_initiated`]).
//! - The media token ([`MediaTokens::sign`] / [`MediaTokens::verify`]).
//!
//! Inputs mix fully random bytes and strings with structure-aware generators: JSON objects
//! built from the keys and type names these parsers know, with values of random JSON types
//! (huge and out-of-range numbers, deep nesting, unicode, `\u` escapes and surrogates, raw
//! control characters, base64 garbage, long strings), and random edits of those texts (cuts,
//! insertions, duplicated slices, flipped bytes) so that near-valid input reaches the paths
//! behind the JSON syntax check.
//!
//! # Properties
//!
//! - No input panics (a panic fails the case; so does integer overflow, in debug builds and in
//!   the release campaign below, which turns overflow checks on).
//! - Bounded memory: what a parse keeps from input of n bytes is never longer than n (the
//!   parsed strings added up, and decoded audio). Flow and webhook fields are also capped at
//!   [`MAX_FIELD_BYTES`] each; a form-encoded flow body that is not UTF-8 may keep up to 3n,
//!   because each invalid byte decodes to U+FFFD. Texts taken from Teler REST answers are cut to
//!   [`teler::MAX_MESSAGE_CHARS`] whatever the input, and parse errors never echo more than a
//!   fixed amount of the input.
//! - Round trips: sign → verify of media tokens (and no edited token verifies); our outbound
//!   audio message → parse → the same PCM; model values written as FreJun, OpenAI or Teler
//!   would send them → parse → the same values (ids, numbers, sample rates, timestamps in every
//!   accepted format, durations, usage, `Retry-After`). OpenAI events parse the same whether
//!   `type` comes first (one pass) or last (two passes).
//!
//! # Case counts
//!
//! Each property runs [`CI_CASES`] cases (256) by default, which keeps this whole module to a
//! few seconds in a debug build, as part of `cargo test`. The `PROPTEST_CASES` environment
//! variable overrides it for every property (proptest applies it on top of the configuration
//! given here). A campaign of a million cases per property, in release mode with overflow
//! checks on:
//!
//! ```text
//! CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true PROPTEST_CASES=1000000 \
//!     cargo test --release --lib fuzz_tests
//! ```
//!
//! `PROPTEST_RNG_SEED=<n>` makes a run repeatable; by default every run draws new cases.
//!
//! Generators never filter (proptest aborts a run after 65,536 rejected values). Failures are
//! not persisted to files: proptest prints the shrunk minimal input, which belongs in a plain
//! `#[test]` at the end of this file (see the regressions there).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config;
use serde_json::{Map, Value, json};

use crate::audio::pcm;
use crate::bridge::teler_media::{self, TelerMessage, TelerMessageError};
use crate::domain::secret::SecretString;
use crate::frejun::flow::{FlowRequest, MAX_CALL_ID_BYTES, MAX_FIELD_BYTES};
use crate::frejun::media_token::{MediaTokenError, MediaTokens};
use crate::frejun::webhook::WebhookEvent;
use crate::providers::openai::events::{EventParseError, ResponseStatus, ServerEvent};
use crate::providers::teler::{self, MAX_MESSAGE_CHARS, TelerError};

/// Cases per property unless `PROPTEST_CASES` says otherwise.
const CI_CASES: u32 = 256;

/// Longest error text a parser may produce, in bytes, whatever the input: error texts are
/// logged per frame, so they must not echo a frame's payload.
const MAX_ERROR_BYTES: usize = 1_024;

/// The configuration of every property: [`CI_CASES`] cases, no regression files.
fn config() -> Config {
    Config {
        cases: CI_CASES,
        failure_persistence: None,
        ..Config::default()
    }
}

// ----- Generators --------------------------------------------------------------------------

/// The keys the parsers look up, at any level; random keys are mixed in too.
const KEYS: &[&str] = &[
    // FreJun media stream.
    "type",
    "data",
    "audio_b64",
    "call_id",
    "stream_id",
    "account_id",
    "encoding",
    "sample_rate",
    "channels",
    "message_id",
    "chunk_id",
    // Flow and webhooks.
    "callId",
    "id",
    "accountId",
    "from_number",
    "from",
    "fromNumber",
    "to_number",
    "to",
    "toNumber",
    "direction",
    "event",
    "status",
    "duration",
    "recording_url",
    "recordingUrl",
    "hangup_time",
    "end_time",
    "answer_time",
    "start_time",
    "timestamp",
    "time",
    "streamId",
    // OpenAI server events.
    "session",
    "error",
    "code",
    "message",
    "param",
    "event_id",
    "audio_start_ms",
    "audio_end_ms",
    "item_id",
    "response",
    "response_id",
    "content_index",
    "delta",
    "transcript",
    "usage",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "seconds",
    "status_details",
    "reason",
    "input_token_details",
    "output_token_details",
    "text_tokens",
    "audio_tokens",
    "cached_tokens",
    // Teler REST answers.
    "success",
    "detail",
    "errors",
    "loc",
    "msg",
];

/// FreJun media-stream message types.
const TELER_TYPES: &[&str] = &[
    "audio",
    "start",
    "stop",
    "clear",
    "interrupt",
    "dtmf",
    "media",
];

/// OpenAI server event types: every one the parser decodes (both spellings), and some it
/// ignores.
const OPENAI_TYPES: &[&str] = &[
    "session.created",
    "session.updated",
    "error",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "response.created",
    "response.output_audio.delta",
    "response.audio.delta",
    "response.output_audio.done",
    "response.audio.done",
    "response.output_audio_transcript.done",
    "response.audio_transcript.done",
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.failed",
    "response.done",
    "conversation.item.truncated",
    "rate_limits.updated",
    "response.output_text.delta",
];

/// Webhook event names and flat statuses, in the spellings the parser normalises.
const WEBHOOK_NAMES: &[&str] = &[
    "call.initiated",
    "call.ringing",
    "call.answered",
    "call.completed",
    "stream.initiated",
    "stream.completed",
    "Call.Answered",
    " call.completed ",
    "recording.completed",
    "initiated",
    "queued",
    "ringing",
    "in-progress",
    "in_progress",
    "In Progress",
    "answered",
    "completed",
    "busy",
    "failed",
    "no-answer",
    "NO_ANSWER",
    "canceled",
    "cancelled",
    "on-hold",
    "outbound",
];

/// String contents that steer parsers into their special cases.
const WORDS: &[&str] = &[
    "",
    " ",
    "\t\r\n",
    "8000",
    "8_000",
    "16_000",
    "8k",
    "16K",
    "4294967k",
    "4294968k",
    "99999999999k",
    "_k",
    "-8k",
    "+8k",
    "k",
    "4294967295",
    "4294967296",
    "NaN",
    "inf",
    "-inf",
    "1e400",
    "-0",
    "0.0000001",
    "12.5",
    " 7.25 ",
    "1761127200",
    "1761127200250",
    "253402300799999",
    "253402300800000",
    "2025-10-22T10:00:00Z",
    "2025-10-22t10:00:00z",
    "2025-10-22T15:30:00+05:30",
    "2025-10-22 15:30:00+0530",
    "2025-10-22 10:00:00.250",
    "9999-12-31T23:59:59.999Z",
    "0000-01-01T00:00:00Z",
    "10000-01-01 00:00:00",
    "+10000-01-01T00:00:00Z",
    "-0001-01-01 00:00:00",
    "262143-12-31 23:59:59",
    "from_number_not_provisioned",
    "response_cancel_not_active",
    "tokens",
    "duration",
    "body",
    "inbound",
    "outbound",
    "audio/l16",
    "audio/pcmu",
    "AAE=",
    "A\\/E=",
    "====",
    "v1",
    "<html>Bad Gateway</html>",
];

/// Any string of chars, control characters, surrogate-adjacent and non-BMP chars included.
fn any_text(max: usize) -> BoxedStrategy<String> {
    prop::collection::vec(any::<char>(), 0..max)
        .prop_map(String::from_iter)
        .boxed()
}

/// String contents: random, word-like, special words, dates, base64 garbage, long runs.
fn text_content() -> BoxedStrategy<String> {
    prop_oneof![
        3 => any_text(40),
        2 => "[a-zA-Z0-9_.+-]{0,40}",
        3 => select(WORDS).prop_map(str::to_owned),
        1 => select(WEBHOOK_NAMES).prop_map(str::to_owned),
        1 => select(OPENAI_TYPES).prop_map(str::to_owned),
        2 => date_text(),
        2 => "[A-Za-z0-9+/=_-]{0,300}",
        1 => (any::<char>(), 0..5_000usize).prop_map(|(c, n)| c.to_string().repeat(n)),
        1 => "[ \\t\\r\\n\\x00-\\x1f\\u{85}\\u{2028}\\u{feff}]{0,20}",
    ]
    .boxed()
}

/// Date-time-like text: every accepted format, with out-of-range fields and odd separators.
fn date_text() -> BoxedStrategy<String> {
    (
        (
            prop_oneof![0..=10_000i32, -1_000..=300_000i32],
            0..=13u32,
            0..=32u32,
            select(&["T", "t", " ", "_", ""][..]),
        ),
        (0..=25u32, 0..=61u32, 0..=61u32),
        prop_oneof![Just(String::new()), "\\.[0-9]{0,12}"],
        select(&["", "Z", "z", "+05:30", "+0530", "-23:59", "+24:00", " UTC"][..]),
    )
        .prop_map(|((year, month, day, sep), (hour, minute, second), fraction, zone)| {
            format!(
                "{year:04}-{month:02}-{day:02}{sep}{hour:02}:{minute:02}:{second:02}{fraction}{zone}"
            )
        })
        .boxed()
}

/// A JSON string literal (quotes included) for `content`, written one of several ways.
fn string_literal() -> BoxedStrategy<String> {
    (text_content(), 0..6u8)
        .prop_map(|(content, style)| match style {
            // Minimal escapes, as most senders write.
            0..=2 => serde_json::to_string(&content).expect("a string serializes"),
            // Every char escaped, non-BMP chars as surrogate pairs (the parser must copy).
            3 => {
                let mut out = String::from("\"");
                for unit in content.encode_utf16() {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
                out.push('"');
                out
            }
            // `/` escaped as `\/`, which JSON allows.
            4 => serde_json::to_string(&content)
                .expect("a string serializes")
                .replace('/', "\\/"),
            // Raw: quotes, backslashes and control characters unescaped (mostly invalid).
            _ => format!("\"{content}\""),
        })
        .boxed()
}

/// Any finite f64, without filtering (a filter's rejects abort a long run).
fn finite_f64() -> BoxedStrategy<f64> {
    use prop::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    (POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO).boxed()
}

/// A JSON number literal: ordinary, huge, tiny, out of range, or oddly written.
fn number_literal() -> BoxedStrategy<String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<u32>().prop_map(|n| n.to_string()),
        finite_f64().prop_map(|f| f.to_string()),
        finite_f64().prop_map(|f| format!("{f:e}")),
        "-?[1-9][0-9]{19,400}",
        "-?[0-9]\\.[0-9]{1,20}[eE][+-]?[0-9]{1,6}",
        select(
            &[
                "-0",
                "0.0",
                "1e400",
                "-1e400",
                "1E-400",
                "4294967296",
                "0e0"
            ][..]
        )
        .prop_map(str::to_owned),
    ]
    .boxed()
}

/// A key: one the parsers know, or any string.
fn key_literal() -> BoxedStrategy<String> {
    prop_oneof![
        4 => select(KEYS).prop_map(|key| format!("\"{key}\"")),
        1 => string_literal(),
    ]
    .boxed()
}

/// A JSON text of random types, nested up to a few levels, objects keyed mostly by
/// [`KEYS`].
fn json_text() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        1 => select(&["null", "true", "false"][..]).prop_map(str::to_owned),
        2 => number_literal(),
        4 => string_literal(),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6)
                .prop_map(|items| format!("[{}]", items.join(","))),
            prop::collection::vec((key_literal(), inner), 0..6).prop_map(|entries| {
                let entries: Vec<String> = entries
                    .into_iter()
                    .map(|(key, value)| format!("{key}:{value}"))
                    .collect();
                format!("{{{}}}", entries.join(","))
            }),
        ]
    })
    .boxed()
}

/// An object with the tag `tag` set to one of `kinds` (or to a random JSON value), somewhere
/// among random entries, and random whitespace around it.
fn envelope(tag: &'static str, kinds: &'static [&'static str]) -> BoxedStrategy<String> {
    let tag_value = prop_oneof![
        6 => select(kinds).prop_map(|kind| format!("\"{kind}\"")),
        1 => json_text(),
    ];
    (
        prop::option::weighted(0.9, tag_value),
        prop::collection::vec((key_literal(), json_text()), 0..8),
        any::<prop::sample::Index>(),
        select(&["", " ", "\n", "\t \r\n"][..]),
    )
        .prop_map(move |(tag_value, mut entries, at, space)| {
            if let Some(value) = tag_value {
                let at = at.index(entries.len() + 1);
                entries.insert(at, (format!("\"{tag}\""), value));
            }
            let entries: Vec<String> = entries
                .into_iter()
                .map(|(key, value)| format!("{key}{space}:{space}{value}"))
                .collect();
            format!("{space}{{{}}}{space}", entries.join(","))
        })
        .boxed()
}

/// Deeply nested JSON, closed or not, inside an envelope of type `kind`.
fn deep_nesting(kind: &'static str) -> BoxedStrategy<String> {
    (1..5_000usize, 0..4u8, any::<bool>())
        .prop_map(move |(depth, shape, closed)| {
            let (open, close) = match shape {
                0 => ("[".repeat(depth), "]".repeat(depth)),
                1 => ("{\"data\":".repeat(depth), "}".repeat(depth)),
                2 => ("{\"a\":[".repeat(depth), "]}".repeat(depth)),
                _ => ("[{\"response\":".repeat(depth), "}]".repeat(depth)),
            };
            let close = if closed { close } else { String::new() };
            format!("{{\"type\":\"{kind}\",\"event\":\"{kind}\",\"data\":{open}1{close}}}")
        })
        .boxed()
}

/// One random edit of a text.
#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, char),
    Remove(usize, usize),
    Truncate(usize),
    Duplicate(usize, usize),
    Replace(usize, char),
}

/// Chars worth inserting: JSON syntax, digits, signs, base64, or anything.
fn edit_char() -> BoxedStrategy<char> {
    prop_oneof![
        select(
            &[
                '"', '{', '}', '[', ']', ',', ':', '\\', '0', '1', '9', '+', '-', '.', 'e', 'E',
                ' ', 'n', 'u', '=', '/', '_', 'A', 'z', '\u{0}', '\u{85}', '\u{ffff}',
            ][..]
        ),
        any::<char>(),
    ]
    .boxed()
}

fn edit() -> BoxedStrategy<Edit> {
    prop_oneof![
        3 => (any::<usize>(), edit_char()).prop_map(|(at, c)| Edit::Insert(at, c)),
        2 => (any::<usize>(), 1..8usize).prop_map(|(at, n)| Edit::Remove(at, n)),
        1 => any::<usize>().prop_map(Edit::Truncate),
        1 => (any::<usize>(), 1..32usize).prop_map(|(at, n)| Edit::Duplicate(at, n)),
        2 => (any::<usize>(), edit_char()).prop_map(|(at, c)| Edit::Replace(at, c)),
    ]
    .boxed()
}

/// `text` with `edits` applied, char by char (the result stays valid UTF-8).
fn apply_edits(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for edit in edits {
        let len = chars.len();
        let at = |position: usize| position % (len + 1);
        match *edit {
            Edit::Insert(position, c) => chars.insert(at(position), c),
            Edit::Remove(position, n) => {
                let start = at(position);
                chars.drain(start..(start + n).min(len));
            }
            Edit::Truncate(position) => chars.truncate(at(position)),
            Edit::Duplicate(position, n) => {
                let start = at(position);
                let copy: Vec<char> = chars[start..(start + n).min(len)].to_vec();
                chars.splice(start..start, copy);
            }
            Edit::Replace(position, c) => {
                if len > 0 {
                    chars[position % len] = c;
                }
            }
        }
    }
    chars.into_iter().collect()
}

/// `base`, edited a few times (or not at all).
fn edited(base: BoxedStrategy<String>) -> BoxedStrategy<String> {
    (base, prop::collection::vec(edit(), 0..4))
        .prop_map(|(text, edits)| apply_edits(&text, &edits))
        .boxed()
}

/// Text input for a parser whose messages are tagged `tag` with one of `kinds`.
fn text_input(tag: &'static str, kinds: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        2 => any_text(300),
        1 => json_text(),
        6 => edited(envelope(tag, kinds)),
        1 => deep_nesting(kinds[0]),
    ]
    .boxed()
}

/// Byte input: random bytes, or text input with some bytes flipped (often invalid UTF-8).
fn byte_input(tag: &'static str, kinds: &'static [&'static str]) -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..512),
        6 => text_input(tag, kinds).prop_map(String::into_bytes),
        2 => (
            text_input(tag, kinds),
            prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        )
            .prop_map(|(text, flips)| {
                let mut bytes = text.into_bytes();
                if !bytes.is_empty() {
                    let len = bytes.len();
                    for (at, byte) in flips {
                        bytes[at % len] = byte;
                    }
                }
                bytes
            }),
    ]
    .boxed()
}

/// A form-encoded body: known or random keys, encoded or raw values (stray `%`, raw UTF-8).
fn form_body() -> BoxedStrategy<Vec<u8>> {
    let key = prop_oneof![select(KEYS).prop_map(str::to_owned), "[^&= ]{0,12}"];
    let value = prop_oneof![
        text_content().prop_map(|text| {
            url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>()
        }),
        "[^&= \\t\\r\\n]{0,40}",
        "(%[0-9A-Fa-f]{0,2}|\\+|[a-z0-9]){0,20}",
    ];
    (
        prop::collection::vec((key, value), 0..8),
        prop::collection::vec(any::<u8>(), 0..3),
    )
        .prop_map(|(pairs, raw)| {
            let mut body = pairs
                .into_iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect::<Vec<_>>()
                .join("&")
                .into_bytes();
            // Raw bytes ≥ 0x80 are not control characters, so the body still looks like a form.
            body.extend(raw.into_iter().map(|byte| byte | 0x80));
            body
        })
        .boxed()
}

// ----- Size accounting ---------------------------------------------------------------------

fn opt_len(text: &Option<String>) -> usize {
    text.as_ref().map_or(0, String::len)
}

/// The bytes of every string and key in a JSON value.
fn value_text_len(value: &Value) -> usize {
    match value {
        Value::String(text) => text.len(),
        Value::Array(items) => items.iter().map(value_text_len).sum(),
        Value::Object(map) => map
            .iter()
            .map(|(key, value)| key.len() + value_text_len(value))
            .sum(),
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
    }
}

/// The bytes of every string an OpenAI event keeps.
fn server_event_text_len(event: &ServerEvent) -> usize {
    let api_error = |error: &crate::providers::openai::events::ApiError| {
        error.kind.len()
            + opt_len(&error.code)
            + error.message.len()
            + opt_len(&error.param)
            + opt_len(&error.event_id)
    };
    match event {
        ServerEvent::SessionCreated { session } | ServerEvent::SessionUpdated { session } => {
            value_text_len(session)
        }
        ServerEvent::Error { error } => api_error(error),
        ServerEvent::SpeechStarted { item_id, .. } | ServerEvent::SpeechStopped { item_id, .. } => {
            opt_len(item_id)
        }
        ServerEvent::ResponseCreated {
            response_id,
            purpose,
        } => response_id.len() + opt_len(purpose),
        ServerEvent::AudioDelta {
            response_id,
            item_id,
            delta,
            ..
        } => response_id.len() + item_id.len() + delta.len(),
        ServerEvent::AudioDone {
            response_id,
            item_id,
        } => response_id.len() + item_id.len(),
        ServerEvent::AudioTranscriptDone {
            response_id,
            item_id,
            transcript,
        } => response_id.len() + item_id.len() + transcript.len(),
        ServerEvent::InputTranscriptCompleted {
            item_id,
            transcript,
            ..
        } => item_id.len() + transcript.len(),
        ServerEvent::InputTranscriptFailed { item_id, error } => {
            item_id.len() + error.as_ref().map_or(0, api_error)
        }
        ServerEvent::ResponseDone { response } => {
            let status = match &response.status {
                ResponseStatus::Other(status) => status.len(),
                _ => 0,
            };
            let error = response
                .error
                .as_ref()
                .map_or(0, |error| error.kind.len() + opt_len(&error.code));
            response.id.len() + status + opt_len(&response.status_reason) + error
        }
        ServerEvent::ItemTruncated { item_id, .. } => item_id.len(),
        ServerEvent::Other { kind } => kind.len(),
    }
}

/// The bytes of every string a flow request keeps.
fn flow_text_len(request: &FlowRequest) -> usize {
    opt_len(&request.call_id)
        + opt_len(&request.account_id)
        + opt_len(&request.from_number)
        + opt_len(&request.to_number)
        + opt_len(&request.direction)
}

/// Every message and detail of a Teler error.
fn teler_texts(err: &TelerError) -> Vec<&str> {
    match err {
        TelerError::Unauthorized { message, .. }
        | TelerError::NumberNotProvisioned { message }
        | TelerError::RateLimited { message, .. }
        | TelerError::NotFound { message }
        | TelerError::Unavailable { message, .. }
        | TelerError::InvalidResponse { message, .. } => vec![message.as_str()],
        TelerError::Conflict { code, message } => {
            let mut texts = vec![message.as_str()];
            texts.extend(code.as_deref());
            texts
        }
        TelerError::Validation {
            message, details, ..
        } => {
            let mut texts = vec![message.as_str()];
            texts.extend(details.iter().map(String::as_str));
            texts
        }
        TelerError::Timeout => Vec::new(),
    }
}

/// A text taken from a Teler answer: at most [`MAX_MESSAGE_CHARS`] chars, on one line.
fn is_clipped(text: &str) -> bool {
    text.chars().count() <= MAX_MESSAGE_CHARS && !text.chars().any(char::is_control)
}

// ----- FreJun media-stream messages --------------------------------------------------------

/// The checks every parse of a FreJun frame must pass.
fn check_teler_message(text: &str) -> Result<(), TestCaseError> {
    match TelerMessage::parse(text) {
        Ok(TelerMessage::Audio { audio_b64 }) => {
            prop_assert!(audio_b64.len() <= text.len());
            let mut decoded = Vec::new();
            if pcm::decode_base64(&audio_b64, &mut decoded).is_ok() {
                prop_assert!(decoded.len() <= text.len());
            }
        }
        Ok(TelerMessage::Start(start)) => {
            let kept = opt_len(&start.call_id)
                + opt_len(&start.stream_id)
                + opt_len(&start.account_id)
                + opt_len(&start.encoding);
            prop_assert!(kept <= text.len(), "kept {kept} bytes of {}", text.len());
        }
        Ok(TelerMessage::Other { kind }) => {
            prop_assert!(kind.chars().count() <= 64 && kind.len() <= text.len());
        }
        Err(err) => {
            let message = err.to_string();
            prop_assert!(
                message.len() <= MAX_ERROR_BYTES,
                "a {}-byte error for {} bytes of input",
                message.len(),
                text.len()
            );
        }
    }
    Ok(())
}

/// How a `start` message may write a sample rate, and the rate it means.
fn sample_rate_value() -> BoxedStrategy<(Value, Option<u32>)> {
    prop_oneof![
        any::<u32>().prop_map(|rate| (json!(rate), Some(rate))),
        any::<u32>().prop_map(|rate| (json!(rate.to_string()), Some(rate))),
        // FreJun's docs print "8_000".
        (1..=4_294u32).prop_map(|k| (json!(format!("{k}_000")), Some(k * 1_000))),
        // "8k", and kilohertz that do not fit a u32 in hertz.
        any::<u32>().prop_map(|k| (json!(format!("{k}k")), k.checked_mul(1_000))),
        (u64::from(u32::MAX) + 1..=u64::MAX).prop_map(|rate| (json!(rate), None)),
        (i64::MIN..0).prop_map(|rate| (json!(rate), None)),
        // Fractional: the whole part leaves room for the thousandths in an f64.
        (any::<i32>(), 1..1_000u32).prop_map(|(whole, thousandths)| {
            let rate = f64::from(whole) + f64::from(thousandths) / 1_000.0;
            (json!(rate), None)
        }),
    ]
    .boxed()
}

/// An id FreJun may send as a string or a number, and the text it means.
fn id_value() -> BoxedStrategy<(Value, String)> {
    prop_oneof![
        any_text(40).prop_map(|id| (json!(id), id)),
        any::<i64>().prop_map(|id| (json!(id), id.to_string())),
        any::<u64>().prop_map(|id| (json!(id), id.to_string())),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn teler_message_never_panics_and_keeps_at_most_its_input(
        text in text_input("type", TELER_TYPES)
    ) {
        check_teler_message(&text)?;
    }

    #[test]
    fn teler_audio_we_write_parses_back_to_the_same_pcm(
        pcm_bytes in prop::collection::vec(any::<u8>(), 0..4_000),
        chunk_id in any::<u64>(),
        nested in any::<bool>(),
    ) {
        let mut out = String::from("stale");
        let shape = if nested {
            crate::settings::AudioMessageShape::Nested
        } else {
            crate::settings::AudioMessageShape::Flat
        };
        teler_media::write_audio_message(shape, &pcm_bytes, chunk_id, &mut out);
        let Ok(TelerMessage::Audio { audio_b64 }) = TelerMessage::parse(&out) else {
            return Err(TestCaseError::fail(format!("not an audio message: {out}")));
        };
        // Base64 has no JSON escapes, so the payload is borrowed from the frame.
        prop_assert!(matches!(audio_b64, std::borrow::Cow::Borrowed(_)));
        let mut decoded = Vec::new();
        pcm::decode_base64(&audio_b64, &mut decoded).expect("our own base64 decodes");
        prop_assert_eq!(decoded, pcm_bytes);

        let interrupt = teler_media::interrupt_message(chunk_id);
        prop_assert_eq!(
            TelerMessage::parse(&interrupt),
            Ok(TelerMessage::Other { kind: "interrupt".to_owned() })
        );
    }

    #[test]
    fn teler_start_reads_ids_and_rates_however_they_are_written(
        call_id in prop::option::of(id_value()),
        stream_id in prop::option::of(id_value()),
        sample_rate in prop::option::of(sample_rate_value()),
        channels in prop::option::of(sample_rate_value()),
        encoding in prop::option::of(any_text(20)),
        extra in prop::collection::vec((select(KEYS), json_text()), 0..3),
        nested_audio in any::<bool>(),
    ) {
        let mut data = Map::new();
        if let Some((value, _)) = &sample_rate {
            data.insert("sample_rate".into(), value.clone());
        }
        if let Some((value, _)) = &channels {
            data.insert("channels".into(), value.clone());
        }
        if let Some(encoding) = &encoding {
            data.insert("encoding".into(), json!(encoding));
        }
        let mut message = Map::new();
        // Extra keys the parser does not read; known keys get their real values below.
        for (key, value) in extra {
            if let Ok(value) = serde_json::from_str::<Value>(&value) {
                message.insert(format!("x_{key}"), value);
            }
        }
        message.insert("type".into(), json!("start"));
        message.insert("data".into(), Value::Object(data));
        for (key, id) in [("call_id", &call_id), ("stream_id", &stream_id)] {
            if let Some((value, _)) = id {
                message.insert(key.into(), value.clone());
            }
        }
        if nested_audio {
            message.insert("audio_b64".into(), json!("AAE="));
        }
        let text = Value::Object(message).to_string();
        let Ok(TelerMessage::Start(start)) = TelerMessage::parse(&text) else {
            return Err(TestCaseError::fail(format!("not a start: {text}")));
        };
        prop_assert_eq!(start.call_id, call_id.map(|(_, id)| id));
        prop_assert_eq!(start.stream_id, stream_id.map(|(_, id)| id));
        prop_assert_eq!(start.account_id, None);
        prop_assert_eq!(start.encoding, encoding);
        prop_assert_eq!(start.sample_rate, sample_rate.and_then(|(_, rate)| rate));
        prop_assert_eq!(start.channels, channels.and_then(|(_, rate)| rate));
    }
}

// ----- FreJun flow bodies ------------------------------------------------------------------

/// The aliases of each flow field, in [`FlowRequest`]'s order.
const FLOW_ALIASES: [&[&str]; 5] = [
    &["call_id", "callId", "id"],
    &["account_id", "accountId"],
    &["from_number", "from", "fromNumber"],
    &["to_number", "to", "toNumber"],
    &["direction"],
];

/// A value a flow field may carry: short ids, blanks, padded text, or text over the caps.
fn flow_field_value() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[ ]{0,2}[+a-zA-Z0-9_.-]{0,40}[ ]{0,2}",
        2 => any_text(60),
        1 => (190..2_100usize, any::<char>()).prop_map(|(n, c)| c.to_string().repeat(n)),
    ]
    .boxed()
}

/// What the parser should keep from a field value (see `FlowRequest::parse`).
fn flow_expected(value: &str, cap: usize) -> Option<String> {
    let trimmed = value.trim();
    (!trimmed.is_empty() && trimmed.len() <= MAX_FIELD_BYTES && trimmed.len() <= cap)
        .then(|| trimmed.to_owned())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn flow_body_never_panics_and_keeps_within_the_caps(
        body in prop_oneof![
            3 => byte_input("call_id", &["cs_01"]),
            1 => form_body(),
        ]
    ) {
        if let Ok(request) = FlowRequest::parse(&body) {
            for text in [
                &request.call_id,
                &request.account_id,
                &request.from_number,
                &request.to_number,
                &request.direction,
            ]
            .into_iter()
            .flatten()
            {
                prop_assert!(!text.is_empty() && text.len() <= MAX_FIELD_BYTES);
                prop_assert_eq!(text.trim(), text.as_str());
            }
            prop_assert!(opt_len(&request.call_id) <= MAX_CALL_ID_BYTES);
            // Form bodies are decoded lossily: a raw invalid byte becomes U+FFFD (3 bytes), so
            // only valid UTF-8 is kept within its own length.
            let kept = flow_text_len(&request);
            if std::str::from_utf8(&body).is_ok() {
                prop_assert!(kept <= body.len(), "kept {kept} of {} bytes", body.len());
            } else {
                prop_assert!(kept <= 3 * body.len());
            }
        }
    }

    #[test]
    fn flow_fields_round_trip_through_json_and_form_bodies(
        fields in prop::collection::vec(
            prop::option::of((flow_field_value(), any::<prop::sample::Index>())),
            5,
        ),
        numeric_call_id in prop::option::of(any::<u64>()),
        as_form in any::<bool>(),
    ) {
        let mut object = Map::new();
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        let mut expected: Vec<Option<String>> = Vec::new();
        for (index, field) in fields.iter().enumerate() {
            let aliases = FLOW_ALIASES[index];
            let cap = if index == 0 { MAX_CALL_ID_BYTES } else { usize::MAX };
            match (index, numeric_call_id, field) {
                (0, Some(number), _) if !as_form => {
                    object.insert("call_id".into(), json!(number));
                    expected.push(Some(number.to_string()));
                }
                (_, _, Some((value, alias))) => {
                    let key = aliases[alias.index(aliases.len())];
                    object.insert(key.into(), json!(value));
                    form.append_pair(key, value);
                    expected.push(flow_expected(value, cap));
                }
                (_, _, None) => expected.push(None),
            }
        }
        let body = if as_form {
            form.finish()
        } else {
            Value::Object(object).to_string()
        };
        let parsed = FlowRequest::parse(body.as_bytes());
        let Ok(request) = parsed else {
            return Err(TestCaseError::fail(format!("{parsed:?} for {body}")));
        };
        let got = [
            request.call_id,
            request.account_id,
            request.from_number,
            request.to_number,
            request.direction,
        ];
        prop_assert_eq!(&got[..], &expected[..], "body {}", body);
    }
}

// ----- FreJun webhooks ---------------------------------------------------------------------

/// The last millisecond the webhook parser accepts as a time: 9999-12-31T23:59:59.999Z.
const MAX_EPOCH_MILLIS: i64 = 253_402_300_799_999;

/// A moment written in one of the formats webhooks use, and the millisecond it names.
fn webhook_time() -> BoxedStrategy<(Value, i64)> {
    (0..=MAX_EPOCH_MILLIS, 0..7u8, -1_439..=1_439i32)
        .prop_map(|(millis, style, offset_minutes)| {
            let moment = chrono::DateTime::from_timestamp_millis(millis).expect("in range");
            let offset = chrono::FixedOffset::east_opt(offset_minutes * 60).expect("in range");
            let local = moment.with_timezone(&offset);
            let seconds = millis / 1_000;
            match style {
                0 => (
                    json!(moment.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                    millis,
                ),
                1 => (json!(local.to_rfc3339()), millis),
                2 => (
                    json!(local.format("%Y-%m-%d %H:%M:%S%.3f%z").to_string()),
                    millis,
                ),
                3 => (
                    json!(moment.format("%Y-%m-%d %H:%M:%S%.3f").to_string()),
                    millis,
                ),
                4 => (json!(seconds), seconds * 1_000),
                5 => (json!(format!(" {seconds} ")), seconds * 1_000),
                // Milliseconds are recognised above 10^12 only.
                _ if millis > 1_000_000_000_000 => (json!(millis), millis),
                _ => (json!(seconds.to_string()), seconds * 1_000),
            }
        })
        .boxed()
}

/// A duration as a number or numeric string, and the seconds it names (None if negative).
fn webhook_duration() -> BoxedStrategy<(Value, Option<f64>)> {
    prop_oneof![
        (0..100_000u32).prop_map(|secs| (json!(secs), Some(f64::from(secs)))),
        (0..100_000u32).prop_map(|quarters| {
            let secs = f64::from(quarters) / 4.0;
            (json!(format!(" {secs} ")), Some(secs))
        }),
        (1..100_000i64).prop_map(|secs| (json!(-secs), None)),
        select(&["NaN", "inf", "-1", "12s", ""][..]).prop_map(|text| (json!(text), None)),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn webhook_body_never_panics_and_keeps_at_most_its_input(
        body in byte_input("event", WEBHOOK_NAMES)
    ) {
        if let Ok(event) = WebhookEvent::parse(&body) {
            let kept = event.name.len()
                + opt_len(&event.frejun_call_id)
                + opt_len(&event.recording_url)
                + opt_len(&event.from)
                + opt_len(&event.to)
                + opt_len(&event.stream_id);
            prop_assert!(kept <= body.len(), "kept {kept} of {} bytes", body.len());
            prop_assert!(event.name.len() <= MAX_FIELD_BYTES + "status:".len());
            prop_assert!(opt_len(&event.frejun_call_id) <= MAX_CALL_ID_BYTES);
            for field in [&event.recording_url, &event.from, &event.to, &event.stream_id] {
                prop_assert!(opt_len(field) <= MAX_FIELD_BYTES);
            }
            if let Some(secs) = event.duration_secs {
                prop_assert!(secs.is_finite() && secs >= 0.0);
            }
            if let Some(at) = event.occurred_at {
                prop_assert!(
                    (0..=MAX_EPOCH_MILLIS).contains(&at.timestamp_millis()),
                    "occurred_at {} ms", at.timestamp_millis()
                );
            }
            let _ = (event.implied_status(), event.proves_answered());
        }
    }

    #[test]
    fn webhook_fields_round_trip_in_either_shape(
        call_id in "[a-zA-Z0-9_-]{1,40}",
        from in "\\+[0-9]{6,15}",
        stream_id in "[a-zA-Z0-9_-]{1,40}",
        recording_url in "https://[a-z]{1,20}/[a-z0-9]{1,20}\\.mp3",
        name in select(WEBHOOK_NAMES),
        time in webhook_time(),
        time_key in select(&["hangup_time", "end_time", "answer_time", "start_time", "timestamp", "time"][..]),
        duration in webhook_duration(),
        in_data in any::<bool>(),
        camel_case in any::<bool>(),
    ) {
        let (call_key, stream_key, url_key, from_key) = if camel_case {
            ("callId", "streamId", "recordingUrl", "fromNumber")
        } else {
            ("call_id", "stream_id", "recording_url", "from")
        };
        let fields = json!({
            call_key: call_id, stream_key: stream_id, url_key: recording_url, from_key: from,
            time_key: time.0, "duration": duration.0,
        });
        let body = if in_data {
            json!({"event": name, "data": fields})
        } else {
            let mut flat = fields.as_object().expect("an object").clone();
            flat.insert("status".into(), json!(name));
            Value::Object(flat)
        };
        let event = WebhookEvent::parse(body.to_string().as_bytes()).expect("an object");
        // Names are kept canonical when known (lowercase event, the status's own spelling)
        // and cut to 64 characters otherwise.
        let short: String = name.trim().chars().take(64).collect();
        let expected_name = match (in_data, event.implied_status()) {
            (true, Some(_)) => name.trim().to_ascii_lowercase(),
            (true, None) => short,
            (false, Some(status)) => format!("status:{status}"),
            (false, None) => format!("status:{short}"),
        };
        prop_assert_eq!(event.name, expected_name);
        prop_assert_eq!(event.frejun_call_id, Some(call_id));
        prop_assert_eq!(event.from, Some(from));
        prop_assert_eq!(event.stream_id, Some(stream_id));
        prop_assert_eq!(event.recording_url, Some(recording_url));
        prop_assert_eq!(event.occurred_at, Some(bson::DateTime::from_millis(time.1)), "{}", body);
        // Durations over a week are dropped as garbage.
        prop_assert_eq!(event.duration_secs, duration.1.filter(|secs| *secs <= 604_800.0));
    }
}

// ----- OpenAI server events ----------------------------------------------------------------

/// The checks every parse of an OpenAI frame must pass.
fn check_server_event(text: &str) -> Result<(), TestCaseError> {
    match ServerEvent::parse(text) {
        Ok(event) => {
            let kept = server_event_text_len(&event);
            prop_assert!(kept <= text.len(), "kept {kept} of {} bytes", text.len());
            if let ServerEvent::AudioDelta { delta, .. } = &event {
                let mut decoded = Vec::new();
                if pcm::decode_base64(delta, &mut decoded).is_ok() {
                    prop_assert!(decoded.len() <= text.len());
                }
            }
        }
        Err(EventParseError::BadShape { kind, message }) => {
            prop_assert!(kind.len() <= text.len());
            prop_assert!(message.len() <= MAX_ERROR_BYTES);
        }
        Err(EventParseError::NotJson(message)) => {
            prop_assert!(message.len() <= MAX_ERROR_BYTES);
        }
        Err(EventParseError::MissingType) => {}
    }
    Ok(())
}

/// The error kind of a parse, for comparing the one-pass and two-pass paths.
fn outcome(result: &Result<ServerEvent, EventParseError>) -> String {
    match result {
        Ok(event) => format!("{event:?}"),
        Err(EventParseError::NotJson(_)) => "not json".to_owned(),
        Err(EventParseError::MissingType) => "missing type".to_owned(),
        Err(EventParseError::BadShape { kind, .. }) => format!("bad shape of {kind}"),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn openai_event_never_panics_and_keeps_at_most_its_input(
        text in text_input("type", OPENAI_TYPES)
    ) {
        check_server_event(&text)?;
    }

    #[test]
    fn openai_event_reads_the_same_with_type_first_or_last(
        kind in prop_oneof![
            6 => select(OPENAI_TYPES).prop_map(|kind| format!("\"{kind}\"")),
            1 => json_text(),
        ],
        entries in prop::collection::btree_map(
            select(KEYS).prop_map(|key| if key == "type" { "x_type" } else { key }),
            json_text(),
            0..6,
        ),
    ) {
        let entries: Vec<String> = entries
            .iter()
            .map(|(key, value)| format!("\"{key}\":{value}"))
            .collect();
        let rest = entries.iter().map(|entry| format!(",{entry}")).collect::<String>();
        let first = format!("{{\"type\":{kind}{rest}}}");
        let last = if entries.is_empty() {
            first.clone()
        } else {
            format!("{{{},\"type\":{kind}}}", entries.join(","))
        };
        check_server_event(&first)?;
        check_server_event(&last)?;
        let (one_pass, two_passes) = (ServerEvent::parse(&first), ServerEvent::parse(&last));
        if serde_json::from_str::<serde::de::IgnoredAny>(&first).is_ok() {
            prop_assert_eq!(outcome(&one_pass), outcome(&two_passes), "{} vs {}", first, last);
        } else {
            // Invalid JSON is refused either way, but the one-pass path stops at a `type` that
            // is not a string (missing type) before it reaches the syntax error (not JSON).
            prop_assert!(one_pass.is_err() && two_passes.is_err(), "{} vs {}", first, last);
        }
    }

    #[test]
    fn openai_audio_delta_round_trips(
        legacy in any::<bool>(),
        response_id in prop::option::of(any_text(30)),
        item_id in prop::option::of(any_text(30)),
        content_index in prop::option::of(any::<u32>()),
        audio in prop::collection::vec(any::<u8>(), 0..2_000),
        unknown in prop::collection::vec(("x_[a-z]{1,8}", json_text()), 0..3),
    ) {
        let mut delta = String::new();
        pcm::encode_base64(&audio, &mut delta);
        let kind = if legacy { "response.audio.delta" } else { "response.output_audio.delta" };
        let mut event = Map::new();
        event.insert("response_id".into(), json!(response_id));
        event.insert("item_id".into(), json!(item_id));
        event.insert("content_index".into(), json!(content_index));
        event.insert("delta".into(), json!(delta));
        for (key, value) in unknown {
            if let Ok(value) = serde_json::from_str::<Value>(&value) {
                event.insert(key, value);
            }
        }
        let text = format!(
            "{{\"type\":\"{kind}\",{}",
            &Value::Object(event).to_string()[1..]
        );
        prop_assert_eq!(
            ServerEvent::parse(&text),
            Ok(ServerEvent::AudioDelta {
                response_id: response_id.unwrap_or_default(),
                item_id: item_id.unwrap_or_default(),
                content_index: content_index.unwrap_or_default(),
                delta,
            })
        );
    }

    #[test]
    fn openai_response_done_usage_round_trips(
        tokens in prop::array::uniform8(prop::option::of(any::<u64>())),
        id in any_text(30),
        status in select(&["completed", "cancelled", "failed", "incomplete", "in_progress"][..]),
        reason in prop::option::of(any_text(30)),
    ) {
        let [input, output, total, input_text, input_audio, cached, output_text, output_audio] =
            tokens;
        let text = json!({
            "type": "response.done",
            "response": {
                "id": id, "status": status,
                "status_details": {"type": status, "reason": reason},
                "usage": {
                    "input_tokens": input, "output_tokens": output, "total_tokens": total,
                    "input_token_details": {
                        "text_tokens": input_text, "audio_tokens": input_audio,
                        "cached_tokens": cached,
                    },
                    "output_token_details": {
                        "text_tokens": output_text, "audio_tokens": output_audio,
                    },
                },
            },
        })
        .to_string();
        let Ok(ServerEvent::ResponseDone { response }) = ServerEvent::parse(&text) else {
            return Err(TestCaseError::fail(format!("not response.done: {text}")));
        };
        prop_assert_eq!(response.id, id);
        let expected_status = match status {
            "completed" => ResponseStatus::Completed,
            "cancelled" => ResponseStatus::Cancelled,
            "failed" => ResponseStatus::Failed,
            "incomplete" => ResponseStatus::Incomplete,
            other => ResponseStatus::Other(other.to_owned()),
        };
        prop_assert_eq!(response.status, expected_status);
        prop_assert_eq!(response.status_reason, reason);
        let usage = response.usage.expect("usage was sent");
        let got = [
            usage.input_tokens,
            usage.output_tokens,
            usage.total_tokens,
            usage.input_text_tokens,
            usage.input_audio_tokens,
            usage.input_cached_tokens,
            usage.output_text_tokens,
            usage.output_audio_tokens,
        ];
        prop_assert_eq!(got, tokens.map(Option::unwrap_or_default));
    }
}

// ----- Teler REST answers ------------------------------------------------------------------

/// A Teler error body: FreJun's envelope, FastAPI's `detail`, a nested `error`, or anything.
fn teler_error_body() -> BoxedStrategy<Vec<u8>> {
    let text = || {
        prop_oneof![
            3 => json_text(),
            2 => string_literal(),
            1 => (any::<char>(), 250..2_000usize)
                .prop_map(|(c, n)| serde_json::to_string(&c.to_string().repeat(n)).expect("serializes")),
        ]
    };
    let detail_item = prop_oneof![
        (
            prop::collection::vec(
                prop_oneof![string_literal(), number_literal(), json_text()],
                0..5
            ),
            text(),
            select(&["msg", "message"][..]),
        )
            .prop_map(|(loc, msg, msg_key)| format!(
                "{{\"loc\":[{}],\"{msg_key}\":{msg},\"type\":\"value_error\"}}",
                loc.join(",")
            )),
        text(),
    ];
    let list = prop::collection::vec(detail_item, 0..40)
        .prop_map(|items| format!("[{}]", items.join(",")));
    let structured = (
        prop::option::of(text()),
        prop::option::of(prop_oneof![
            select(&["\"from_number_not_provisioned\"", "\"call_not_live\""][..])
                .prop_map(str::to_owned),
            text(),
        ]),
        prop::option::of(prop_oneof![list.clone(), text()]),
        prop::option::of(prop_oneof![list, text()]),
        prop::option::of(text()),
        any::<bool>(),
    )
        .prop_map(|(message, code, errors, detail, error, nest)| {
            let mut entries = vec!["\"success\":false".to_owned()];
            let mut inner = Vec::new();
            let target = if nest { &mut inner } else { &mut entries };
            if let Some(message) = message {
                target.push(format!("\"message\":{message}"));
            }
            if let Some(code) = code {
                target.push(format!("\"code\":{code}"));
            }
            if let Some(errors) = errors {
                entries.push(format!("\"errors\":{errors}"));
            }
            if let Some(detail) = detail {
                entries.push(format!("\"detail\":{detail}"));
            }
            if nest {
                entries.push(format!("\"error\":{{{}}}", inner.join(",")));
            } else if let Some(error) = error {
                entries.push(format!("\"error\":{error}"));
            }
            format!("{{{}}}", entries.join(","))
        });
    prop_oneof![
        2 => byte_input("message", &["Invalid API key"]),
        3 => edited(structured.boxed()).prop_map(String::into_bytes),
    ]
    .boxed()
}

/// An HTTP status: the ones with a meaning, and any other.
fn http_status() -> BoxedStrategy<u16> {
    prop_oneof![
        select(
            &[
                400u16, 401, 403, 404, 409, 410, 422, 429, 500, 502, 503, 302
            ][..]
        ),
        any::<u16>(),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn teler_error_answers_never_panic_and_stay_small(
        status in http_status(),
        retry_after in prop::option::of(prop_oneof![
            any_text(30),
            "[ ]{0,2}[0-9]{1,25}[ ]{0,2}",
        ]),
        body in teler_error_body(),
    ) {
        let err = teler::error_from_response(status, retry_after.as_deref(), &body);
        for text in teler_texts(&err) {
            prop_assert!(is_clipped(text), "{text:?}");
        }
        if let TelerError::Validation { details, .. } = &err {
            prop_assert!(details.len() <= 20);
        }
        if let TelerError::RateLimited { retry_after: Some(delay), .. } = &err {
            let header = retry_after.as_deref().unwrap_or_default().trim();
            prop_assert_eq!(Some(delay.as_secs()), header.parse::<u64>().ok());
        }
        // 21 clipped texts of at most 300 chars of at most 4 bytes, and the fixed wording.
        prop_assert!(err.to_string().len() <= 21 * (MAX_MESSAGE_CHARS * 4 + 2) + 200);
    }

    #[test]
    fn teler_error_fields_round_trip(
        status in 400..600u16,
        message in "[a-zA-Z0-9][a-zA-Z0-9 .,'-]{0,200}[a-zA-Z0-9.]",
        code in "[a-z_]{1,40}",
        retry_secs in any::<u64>(),
        nested in any::<bool>(),
    ) {
        let fields = json!({"message": message, "code": code});
        let body = if nested {
            json!({"success": false, "error": fields})
        } else {
            let mut body = fields;
            body["success"] = json!(false);
            body
        }
        .to_string();
        let retry_after = format!(" {retry_secs} ");
        let err = teler::error_from_response(status, Some(&retry_after), body.as_bytes());
        let texts = teler_texts(&err);
        prop_assert_eq!(texts.first().copied(), Some(message.as_str()), "{:?}", err);
        match err {
            TelerError::NumberNotProvisioned { .. } => {
                prop_assert_eq!(code.as_str(), "from_number_not_provisioned");
            }
            TelerError::Conflict { code: got, .. } => prop_assert_eq!(got, Some(code)),
            TelerError::RateLimited { retry_after, .. } => {
                prop_assert_eq!(retry_after, Some(Duration::from_secs(retry_secs)));
            }
            _ => {}
        }
    }

    #[test]
    fn teler_initiate_answers_never_panic_and_keep_usable_ids(
        body in prop_oneof![
            2 => byte_input("id", &["cs_01"]),
            2 => (prop::option::of(json_text()), json_text(), prop::option::of(json_text()))
                .prop_map(|(id, data, message)| {
                    let mut entries = vec![format!("\"data\":{data}")];
                    entries.extend(id.map(|id| format!("\"id\":{id}")));
                    entries.extend(message.map(|message| format!("\"message\":{message}")));
                    format!("{{{}}}", entries.join(",")).into_bytes()
                }),
        ]
    ) {
        if let Ok(call) = teler::parse_initiated(&body) {
            prop_assert!(!call.id.trim().is_empty());
            prop_assert!(call.id.chars().count() <= 256 && call.id.len() <= body.len());
            prop_assert!(!call.id.chars().any(char::is_control));
            if let Some(text) = &call.message {
                prop_assert!(is_clipped(text), "{text:?}");
            }
        }
    }

    #[test]
    fn teler_initiate_ids_round_trip(
        id in prop_oneof![
            "[a-zA-Z0-9_-]{1,256}".prop_map(|id| json!(id)),
            any::<u64>().prop_map(|id| json!(id)),
        ],
        in_data in any::<bool>(),
        message in prop::option::of("[a-zA-Z]{1,20}( [a-zA-Z]{1,10}){0,3}"),
    ) {
        let record = json!({"id": id});
        let body = if in_data {
            json!({"success": true, "message": message, "data": record})
        } else {
            json!({"id": id, "message": message})
        };
        let call = teler::parse_initiated(body.to_string().as_bytes()).expect("a usable answer");
        let expected = match &id {
            Value::String(id) => id.clone(),
            other => other.to_string(),
        };
        prop_assert_eq!(call.id, expected);
        prop_assert_eq!(call.message, message);
    }
}

// ----- Media tokens ------------------------------------------------------------------------

/// A time at `seconds` after the epoch (or before it, for negative values).
fn at(seconds: i64) -> SystemTime {
    if seconds >= 0 {
        UNIX_EPOCH + Duration::from_secs(seconds.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
    }
}

/// An id as the media endpoint may see one: an ObjectId, a FreJun id, or anything.
fn token_id() -> BoxedStrategy<String> {
    prop_oneof!["[0-9a-f]{24}", "cs_[0-9A-Z]{26}", any_text(40),].boxed()
}

/// The same, for the ids we sign: ours never contain a newline (they are ObjectIds and FreJun
/// ids), which is what keeps two (call, assistant) pairs from signing the same message.
fn signed_id() -> BoxedStrategy<String> {
    token_id().prop_map(|id| id.replace('\n', "")).boxed()
}

/// A token-shaped string: `v1.<digits>.<43 base64url chars>`, with variations.
fn token_shaped() -> BoxedStrategy<String> {
    (
        select(&["v1", "v2", "V1", ""][..]),
        prop_oneof!["[0-9]{0,22}", "[+-]?0*[0-9]{1,20}", any_text(5)],
        prop_oneof!["[A-Za-z0-9_-]{43}", "[A-Za-z0-9_=+/-]{40,46}", any_text(50)],
    )
        .prop_map(|(version, expires, mac)| format!("{version}.{expires}.{mac}"))
        .boxed()
}

/// One edit of a token, biased to the characters a token is made of.
fn token_edit() -> BoxedStrategy<Edit> {
    let token_char = prop_oneof![
        select(
            &[
                '0', '1', '9', '+', '-', '.', '_', '=', 'A', 'a', 'Q', 'w', ' ', 'v'
            ][..]
        ),
        any::<char>(),
    ];
    prop_oneof![
        (any::<usize>(), token_char.clone()).prop_map(|(at, c)| Edit::Insert(at, c)),
        (any::<usize>(), 1..3usize).prop_map(|(at, n)| Edit::Remove(at, n)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), 1..4usize).prop_map(|(at, n)| Edit::Duplicate(at, n)),
        (any::<usize>(), token_char).prop_map(|(at, c)| Edit::Replace(at, c)),
    ]
    .boxed()
}

/// Whether two keys are the same HMAC key: HMAC pads a key shorter than SHA-256's 64-byte block
/// with zero bytes, so keys that differ only by trailing NULs sign alike.
fn same_hmac_key(a: &str, b: &str) -> bool {
    let block = 64;
    a == b
        || (a.len() <= block
            && b.len() <= block
            && a.trim_end_matches('\0') == b.trim_end_matches('\0'))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn media_token_round_trips(
        key in any_text(64),
        call in signed_id(),
        assistant in signed_id(),
        now_secs in prop_oneof![0..4_000_000_000i64, -1_000_000i64..0, Just(i64::MAX / 2)],
        ttl_secs in prop_oneof![0..100_000u64, Just(u64::MAX)],
        ttl_nanos in 0..1_000_000_000u32,
    ) {
        let tokens = MediaTokens::new(SecretString::new(key));
        let now = at(now_secs);
        let ttl = Duration::new(ttl_secs, ttl_nanos);
        let token = tokens.sign(&call, &assistant, now, ttl);
        let now_unix = u64::try_from(now_secs).unwrap_or(0);
        let expires = now_unix.saturating_add(ttl_secs);
        prop_assert_eq!(&token[..3], "v1.");
        let verified = tokens.verify(&token, &call, &assistant, now);
        if now_unix < expires {
            prop_assert_eq!(verified, Ok(()));
        } else {
            prop_assert_eq!(verified, Err(MediaTokenError::Expired));
        }
        // Still valid one second before the expiry, expired at it.
        if let Some(Ok(last)) = expires.checked_sub(1).map(i64::try_from) {
            if last >= now_secs && last <= i64::MAX / 2 {
                prop_assert_eq!(tokens.verify(&token, &call, &assistant, at(last)), Ok(()));
                prop_assert_eq!(
                    tokens.verify(&token, &call, &assistant, at(last + 1)),
                    Err(MediaTokenError::Expired)
                );
            }
        }
    }

    #[test]
    fn media_token_is_bound_to_its_key_call_and_assistant(
        key in any_text(64),
        other_key in any_text(64),
        call in signed_id(),
        assistant in signed_id(),
        other_call in token_id(),
        other_assistant in token_id(),
        now_secs in 0..4_000_000_000i64,
    ) {
        let tokens = MediaTokens::new(SecretString::new(key.clone()));
        let now = at(now_secs);
        let token = tokens.sign(&call, &assistant, now, Duration::from_secs(300));
        if (other_call.as_str(), other_assistant.as_str()) != (call.as_str(), assistant.as_str()) {
            prop_assert_eq!(
                tokens.verify(&token, &other_call, &other_assistant, now),
                Err(MediaTokenError::Invalid)
            );
        }
        if !same_hmac_key(&other_key, &key) {
            let others = MediaTokens::new(SecretString::new(other_key));
            prop_assert_eq!(
                others.verify(&token, &call, &assistant, now),
                Err(MediaTokenError::Invalid)
            );
        }
    }

    #[test]
    fn an_edited_media_token_never_verifies(
        key in any_text(64),
        call in signed_id(),
        assistant in signed_id(),
        now_secs in 0..4_000_000_000i64,
        edits in prop::collection::vec(token_edit(), 1..4),
    ) {
        let tokens = MediaTokens::new(SecretString::new(key));
        let now = at(now_secs);
        let token = tokens.sign(&call, &assistant, now, Duration::from_secs(300));
        let edited = apply_edits(&token, &edits);
        if edited != token {
            let verified = tokens.verify(&edited, &call, &assistant, now);
            prop_assert!(verified.is_err(), "{edited:?} (from {token:?}) verified");
        }
    }

    #[test]
    fn media_token_verify_never_accepts_a_made_up_token(
        key in any_text(64),
        token in prop_oneof![any_text(80), token_shaped()],
        call in token_id(),
        assistant in token_id(),
        now_secs in prop_oneof![0..4_000_000_000i64, -1_000i64..0],
    ) {
        let tokens = MediaTokens::new(SecretString::new(key));
        let verified = tokens.verify(&token, &call, &assistant, at(now_secs));
        prop_assert!(verified.is_err(), "{token:?} verified");
    }
}

// ----- The harness itself ------------------------------------------------------------------

#[test]
fn the_case_count_is_the_ci_default_or_proptest_cases() {
    let expected = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(CI_CASES);
    let ran = std::cell::Cell::new(0u32);
    // The same macro and configuration as the properties above.
    proptest!(config(), |(_byte in any::<u8>())| {
        ran.set(ran.get() + 1);
    });
    assert_eq!(ran.get(), expected);
}

#[test]
fn edits_keep_text_valid_and_reach_every_position() {
    let text = "aé€😀";
    assert_eq!(apply_edits(text, &[Edit::Insert(0, 'x')]), "xaé€😀");
    assert_eq!(apply_edits(text, &[Edit::Insert(4, 'x')]), "aé€😀x");
    assert_eq!(apply_edits(text, &[Edit::Remove(1, 2)]), "a😀");
    assert_eq!(apply_edits(text, &[Edit::Truncate(2)]), "aé");
    assert_eq!(apply_edits(text, &[Edit::Duplicate(1, 2)]), "aé€é€😀");
    assert_eq!(apply_edits(text, &[Edit::Replace(3, 'z')]), "aé€z");
    assert_eq!(
        apply_edits("", &[Edit::Replace(3, 'z'), Edit::Remove(9, 9)]),
        ""
    );
    let mac = URL_SAFE_NO_PAD.encode([0u8; 32]);
    assert_eq!(mac.len(), 43, "token_shaped writes MACs of this length");
}

// ----- Regressions: the minimal inputs of what the properties found ------------------------

#[test]
fn regression_teler_rate_in_kilohertz_overflowing_u32_is_none() {
    // Overflowed `k * 1_000`: a panic in debug builds, a wrapped rate (704 Hz) in release.
    let text = r#"{"type":"start","data":{"sample_rate":"4294968k","channels":"4294967k"}}"#;
    let Ok(TelerMessage::Start(start)) = TelerMessage::parse(text) else {
        panic!("not a start");
    };
    assert_eq!(start.sample_rate, None);
    assert_eq!(start.channels, Some(4_294_967_000));
}

#[test]
fn regression_teler_audio_is_borrowed_from_the_frame() {
    // serde copied `Option<Cow<str>>` fields although they were marked `borrow`.
    for text in [
        r#"{"type":"audio","data":{"audio_b64":"AAE="}}"#,
        r#"{"type":"audio","audio_b64":"AAE="}"#,
    ] {
        let Ok(TelerMessage::Audio { audio_b64 }) = TelerMessage::parse(text) else {
            panic!("not audio: {text}");
        };
        assert!(
            matches!(audio_b64, std::borrow::Cow::Borrowed("AAE=")),
            "{text}"
        );
    }
}

#[test]
fn regression_teler_error_does_not_echo_the_frame() {
    // serde quotes the offending value: a 1 MB payload in the wrong place was a 1 MB log line.
    let text = format!(r#"{{"type":"audio","data":"{}"}}"#, "A".repeat(1 << 20));
    let Err(TelerMessageError::NotJson(message)) = TelerMessage::parse(&text) else {
        panic!("accepted");
    };
    assert!(
        message.chars().count() <= 201,
        "{} chars",
        message.chars().count()
    );
    assert_eq!(
        TelerMessage::parse(r#"{"data":{}}"#),
        Err(TelerMessageError::MissingType)
    );
}

#[test]
fn regression_media_token_expiry_has_one_spelling() {
    // `u64::from_str` takes a leading `+` and zeros: an edited token verified.
    let tokens = MediaTokens::new(SecretString::new("k"));
    let now = at(99_999_700);
    let token = tokens.sign("call", "assistant", now, Duration::from_secs(300));
    assert_eq!(token.get(..13), Some("v1.100000000."));
    for edited in [
        token.replacen("v1.", "v1.+", 1),
        token.replacen("v1.", "v1.0", 1),
        token.replacen("v1.", "v1.00", 1),
    ] {
        assert_eq!(
            tokens.verify(&edited, "call", "assistant", now),
            Err(MediaTokenError::Malformed),
            "{edited}"
        );
    }
    assert_eq!(tokens.verify(&token, "call", "assistant", now), Ok(()));
}

#[test]
fn regression_webhook_textual_times_outside_the_epoch_range_are_none() {
    // Only epoch numbers were range-checked: "0000-01-01T00:00:00Z" gave year 0.
    let time = |text: &str| {
        let body = json!({"event": "call.completed", "data": {"hangup_time": text}});
        WebhookEvent::parse(body.to_string().as_bytes())
            .expect("an object")
            .occurred_at
    };
    for text in [
        "0000-01-01T00:00:00Z",
        "1969-12-31T23:59:59.999Z",
        "1900-01-01 00:00:00",
        "10000-01-01 00:00:00",
    ] {
        assert_eq!(time(text), None, "{text}");
    }
    assert_eq!(
        time("1970-01-01T00:00:00Z"),
        Some(bson::DateTime::from_millis(0))
    );
    assert_eq!(
        time("9999-12-31T23:59:59.999Z"),
        Some(bson::DateTime::from_millis(MAX_EPOCH_MILLIS))
    );
}

#[test]
fn regression_openai_out_of_range_number_is_not_json_wherever_type_is() {
    // The two-pass path called serde_json's number-out-of-range syntax error a bad shape.
    for text in [
        r#"{"type":"session.created","session":[1e400]}"#,
        r#"{"session":[1e400],"type":"session.created"}"#,
    ] {
        assert!(
            matches!(ServerEvent::parse(text), Err(EventParseError::NotJson(_))),
            "{text}"
        );
    }
}
