//! Fakes of the text-LLM HTTP APIs voxbridge calls (call analysis, the AI conversation
//! endpoint): Anthropic Messages ([`FakeAnthropic`]) and OpenAI Responses and Chat Completions
//! ([`FakeOpenAiText`]), speaking the wire format of docs/protocols.md §4.
//!
//! Each fake checks every request against the real request shape, so that our clients are
//! tested against the contract rather than against a server that accepts anything: each
//! problem is recorded as a sentence naming the field (`messages[2].role must be "user" or
//! "assistant", got "system"`) and the request is refused 400 with the provider's own error
//! body, whose message lists the problems. Every request is recorded before it is answered,
//! refused ones included ([`TextFake::requests`]), and [`TextFake::violations`] lists
//! every problem seen.
//!
//! Checks run in a real server's order, and the first that fails answers:
//!
//! 1. routing: 404 for a path the API does not have, 405 (with `Allow: POST`) for another
//!    method;
//! 2. size: 413 for a body over [`BODY_LIMIT`] (the proxy in front refuses it before the API
//!    sees who is asking);
//! 3. the key: 401 when it is missing, malformed or rejected ([`TextFake::reject_key`]);
//! 4. the request's shape: 400;
//! 5. the answer: the next scripted one ([`Scripted`], [`TextFake::push`]), or an
//!    automatic one when the script is empty. Only a request that passed every check uses up
//!    a scripted answer.
//!
//! | fake | base URL | route | answer |
//! |---|---|---|---|
//! | [`FakeAnthropic`] | `http://127.0.0.1:<port>` | `POST /v1/messages` | a `message` (§4.3); every response carries `request-id` |
//! | [`FakeOpenAiText`] | `http://127.0.0.1:<port>/v1` | `POST /v1/responses` | a `response` with a `reasoning` then a `message` output item (§4.4) |
//! | [`FakeOpenAiText`] | `http://127.0.0.1:<port>/v1` | `POST /v1/chat/completions` | a `chat.completion` (§4.5); every OpenAI response carries `x-request-id` |
//!
//! The automatic answer is deterministic. When the request asks for a JSON schema its text is
//! a value built from the schema (see [`schema_instance`]); with Chat's `json_object` mode it
//! is `{"reply": "You said: …"}`; otherwise it is `You said: ` and the last user message (its
//! first [`ECHO_CHARS`] characters). Usage counts a token per 4 characters (rounded up, at
//! least 1): the input from every message and system prompt of the request, the output from
//! the answer's text (a truncated answer bills the whole token cap).
//!
//! The fakes do not stream, and only know text content: `stream: true`, images, documents,
//! tool results and the like are refused as problems.

#[cfg(test)]
mod tests;

mod anthropic;
mod openai_text;
mod schema_instance;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value};

use super::loopback_server::LoopbackServer;

/// Largest request body the fakes read: far above any analysis request (a long call's
/// transcript is tens of KB), so a client that sends more has a bug. Larger bodies are
/// recorded without their content and answered 413.
pub const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// How many characters of the last user message the automatic plain-text answer repeats.
pub const ECHO_CHARS: usize = 500;

/// A running fake of the Anthropic Messages API on `127.0.0.1` (random port). Dropping it
/// stops the server.
pub struct FakeAnthropic {
    fake: TextFake,
}

/// A running fake of OpenAI's Responses and Chat Completions APIs on `127.0.0.1` (random
/// port). Dropping it stops the server.
pub struct FakeOpenAiText {
    fake: TextFake,
}

/// One scripted answer: the next valid, authenticated request gets it instead of the
/// automatic answer. Answers are used in the order they were pushed, one per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scripted {
    /// Answer with this HTTP status (200 to 999; anything else answers 500) and the provider's
    /// own error body, its type chosen from the status as in the doc's error table (Anthropic:
    /// 429 `rate_limit_error`, 529 `overloaded_error`, 500 `api_error` …; OpenAI: 429 type
    /// `requests` with code `rate_limit_exceeded`, ≥500 type and code `server_error`, 404 code
    /// `model_not_found` …), with a `retry-after` header (seconds) when given.
    Error {
        /// The HTTP status.
        status: u16,
        /// The `retry-after` header's value, in seconds.
        retry_after_secs: Option<u64>,
    },
    /// Like [`Scripted::Error`] (no `retry-after`), but the error message quotes the request's
    /// key verbatim at its end, as some servers (proxies, self-hosted OpenAI-compatible ones)
    /// do when they refuse it: lets tests check that the key never reaches what the client
    /// shows or logs.
    ErrorQuotingKey {
        /// The HTTP status.
        status: u16,
    },
    /// Answer normally but with exactly this assistant text, even when a JSON schema was asked
    /// for: lets tests send JSON that violates the schema, or text that is not JSON.
    Text(String),
    /// Sleep this long, then give the automatic answer (to make the client time out). The sleep
    /// is real time: the server runs on its own thread, not on a test's paused clock.
    Delay(Duration),
    /// The model refuses, with this text: Anthropic `stop_reason: "refusal"` (the text as the
    /// content, `stop_details` of type `refusal`); Responses a content part `{type: "refusal"}`;
    /// Chat `message.refusal` set and `content` null.
    Refusal(String),
    /// The answer is cut at the token cap, with this partial text: Anthropic `stop_reason:
    /// "max_tokens"`; Responses `status: "incomplete"` with `incomplete_details.reason:
    /// "max_output_tokens"`; Chat `finish_reason: "length"`.
    Truncated(String),
}

/// One request a fake received, whether or not it was accepted.
#[derive(Debug, Clone)]
pub struct TextRequestRecord {
    /// The path without the query string, e.g. `/v1/messages`.
    pub path: String,
    /// Uppercase, e.g. `POST`.
    pub method: String,
    /// Every header, by lowercase name; a header sent several times has its values joined with
    /// `, ` (as HTTP allows). The API key is kept as sent: these are test keys.
    pub headers: BTreeMap<String, String>,
    /// The body parsed as JSON, or the raw text (as a JSON string) when it is not JSON.
    pub body: Value,
    /// What is wrong with the request (its path, method, size, headers or body), one sentence
    /// each, naming the field; empty when the request is well formed. A missing or rejected
    /// key is not a shape problem: see `status`.
    pub problems: Vec<String>,
    /// The status the fake answered (or, for a [`Scripted::Delay`], will answer) with.
    pub status: u16,
    /// When the request arrived (before its body was read).
    pub received_at: Instant,
}

impl TextRequestRecord {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

impl std::ops::Deref for FakeAnthropic {
    type Target = TextFake;

    fn deref(&self) -> &TextFake {
        &self.fake
    }
}

impl std::ops::Deref for FakeOpenAiText {
    type Target = TextFake;

    fn deref(&self) -> &TextFake {
        &self.fake
    }
}

impl FakeAnthropic {
    /// Binds `127.0.0.1:0` and starts serving on the current tokio runtime. The port is known
    /// when this returns, so callers never wait for readiness.
    pub async fn start() -> io::Result<FakeAnthropic> {
        Ok(FakeAnthropic {
            fake: TextFake::start(Provider::Anthropic)?,
        })
    }

    /// `http://127.0.0.1:<port>`: Anthropic's base has no version segment; the client appends
    /// `/v1/messages`.
    pub fn base_url(&self) -> String {
        self.fake.server.base_url()
    }

    /// Stops the server (in-flight requests are dropped) and waits until it has stopped.
    pub async fn stop(self) {
        self.fake.server.stop().await;
    }
}

impl FakeOpenAiText {
    /// Binds `127.0.0.1:0` and starts serving on the current tokio runtime. The port is known
    /// when this returns, so callers never wait for readiness.
    pub async fn start() -> io::Result<FakeOpenAiText> {
        Ok(FakeOpenAiText {
            fake: TextFake::start(Provider::OpenAi)?,
        })
    }

    /// `http://127.0.0.1:<port>/v1`: OpenAI-style bases include the version segment; clients
    /// append `/responses` or `/chat/completions`.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.fake.server.base_url())
    }

    /// Stops the server (in-flight requests are dropped) and waits until it has stopped.
    pub async fn stop(self) {
        self.fake.server.stop().await;
    }
}

/// What both fakes are made of: the server and the state its handler shares with the test,
/// with the controls both have (each fake dereferences to it, so a test can drive either).
pub struct TextFake {
    server: LoopbackServer,
    state: Arc<Mutex<State>>,
}

/// Everything the handler shares with the test.
#[derive(Default)]
struct State {
    script: VecDeque<Scripted>,
    rejected_keys: BTreeSet<String>,
    requests: Vec<TextRequestRecord>,
    /// Requests received so far, for the request ids.
    received: u64,
    /// Requests that got past every check, for the ids of the answers (`msg_fake_<n>`).
    answered: u64,
}

/// Locks the state. A test that panicked while holding the lock must not hide its own failure
/// behind poison errors in every later request, so poisoning is ignored.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TextFake {
    fn start(provider: Provider) -> io::Result<TextFake> {
        let state = Arc::new(Mutex::new(State::default()));
        let data = web::Data::from(Arc::clone(&state));
        let server = match provider {
            Provider::Anthropic => LoopbackServer::start(data, handle_anthropic)?,
            Provider::OpenAi => LoopbackServer::start(data, handle_openai)?,
        };
        Ok(TextFake { server, state })
    }

    /// Queues a scripted answer for the next valid, authenticated request.
    pub fn push(&self, scripted: Scripted) {
        lock(&self.state).script.push_back(scripted);
    }

    /// From now on, requests with this key get 401 (Anthropic's `authentication_error`,
    /// OpenAI's `invalid_api_key`).
    pub fn reject_key(&self, key: &str) {
        lock(&self.state).rejected_keys.insert(key.to_owned());
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<TextRequestRecord> {
        lock(&self.state).requests.clone()
    }

    /// Every problem of every request so far, in order, as `METHOD path: problem`.
    pub fn violations(&self) -> Vec<String> {
        lock(&self.state)
            .requests
            .iter()
            .flat_map(|record| {
                record
                    .problems
                    .iter()
                    .map(|problem| format!("{} {}: {problem}", record.method, record.path))
            })
            .collect()
    }
}

/// Whose API a fake speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    Anthropic,
    OpenAi,
}

/// One API route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    /// Anthropic `POST /v1/messages`.
    Messages,
    /// OpenAI `POST /v1/responses`.
    Responses,
    /// OpenAI `POST /v1/chat/completions`.
    ChatCompletions,
}

impl Provider {
    /// The endpoint at `path`, or `None` (404).
    fn endpoint(self, path: &str) -> Option<Endpoint> {
        match (self, path) {
            (Provider::Anthropic, "/v1/messages") => Some(Endpoint::Messages),
            (Provider::OpenAi, "/v1/responses") => Some(Endpoint::Responses),
            (Provider::OpenAi, "/v1/chat/completions") => Some(Endpoint::ChatCompletions),
            _ => None,
        }
    }

    /// The routes this fake serves, for the problem recorded on a wrong path.
    fn routes(self) -> &'static str {
        match self {
            Provider::Anthropic => "POST /v1/messages",
            Provider::OpenAi => "POST /v1/responses and POST /v1/chat/completions",
        }
    }

    /// The API key the request carries, or `None` when it is missing or malformed.
    fn api_key(self, headers: &BTreeMap<String, String>) -> Option<String> {
        match self {
            Provider::Anthropic => anthropic::api_key(headers),
            Provider::OpenAi => openai_text::api_key(headers),
        }
    }

    /// The status and the provider's body for `failure`; `request_id` is the response's.
    fn error(self, failure: &Failure, request_id: &str) -> (StatusCode, Value) {
        match self {
            Provider::Anthropic => anthropic::error(failure, request_id),
            Provider::OpenAi => openai_text::error(failure),
        }
    }

    /// The header that carries the request id.
    fn request_id_header(self) -> &'static str {
        match self {
            Provider::Anthropic => "request-id",
            Provider::OpenAi => "x-request-id",
        }
    }
}

impl Endpoint {
    /// Records in `problems` what is wrong with a request's headers and JSON object body.
    fn check(self, headers: &BTreeMap<String, String>, body: &Map<String, Value>) -> Problems {
        let mut problems = Problems::default();
        match self {
            Endpoint::Messages => anthropic::check(headers, body, &mut problems),
            Endpoint::Responses => openai_text::check_responses(body, &mut problems),
            Endpoint::ChatCompletions => openai_text::check_chat(body, &mut problems),
        }
        problems
    }

    /// What the answer needs from a request that passed [`Endpoint::check`].
    fn asked(self, body: &Map<String, Value>) -> Asked {
        match self {
            Endpoint::Messages => anthropic::asked(body),
            Endpoint::Responses => openai_text::asked_responses(body),
            Endpoint::ChatCompletions => openai_text::asked_chat(body),
        }
    }

    /// The 200 body for `answer` to `asked`.
    fn answer(self, asked: &Asked, answer: &Answer) -> Value {
        match self {
            Endpoint::Messages => anthropic::answer(asked, answer),
            Endpoint::Responses => openai_text::answer_responses(asked, answer),
            Endpoint::ChatCompletions => openai_text::answer_chat(asked, answer),
        }
    }
}

/// Why a request was not answered normally; the provider's module words it.
#[derive(Debug)]
enum Failure {
    /// The path is not one of the API's.
    NotFound { method: String, path: String },
    /// The path is, but not with this method.
    MethodNotAllowed { method: String, path: String },
    /// The body is over [`BODY_LIMIT`].
    TooLarge,
    /// The key is missing or malformed (`None`), or rejected.
    Unauthorized { key: Option<String> },
    /// The request's shape is wrong.
    Invalid(Vec<Problem>),
    /// A [`Scripted::Error`] or [`Scripted::ErrorQuotingKey`] with this status.
    Scripted {
        status: StatusCode,
        /// The key to quote at the end of the message ([`Scripted::ErrorQuotingKey`]).
        quoted_key: Option<String>,
    },
}

/// One thing wrong with a request.
#[derive(Debug, Clone)]
struct Problem {
    /// The field at fault, as OpenAI's `param` names it (`messages[0].role`); `None` for the
    /// request as a whole (a header, a body that is not JSON).
    param: Option<String>,
    /// OpenAI's error `code` for it (`invalid_type`, `unknown_parameter` …).
    code: &'static str,
    /// What is recorded and returned: a sentence naming the field.
    sentence: String,
}

/// The problems found so far in one request, with the checks that find them. Each check
/// takes the field's path (`messages[0].content`), which names it in the sentence.
#[derive(Debug, Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A problem with field `path`.
    fn add(&mut self, path: &str, code: &'static str, sentence: String) {
        self.0.push(Problem {
            param: Some(path.to_owned()),
            code,
            sentence,
        });
    }

    /// A problem with the request as a whole (a header, the body's encoding).
    fn whole(&mut self, code: &'static str, sentence: String) {
        self.0.push(Problem {
            param: None,
            code,
            sentence,
        });
    }

    fn missing(&mut self, path: &str) {
        self.add(
            path,
            "missing_required_parameter",
            format!("{path} is required"),
        );
    }

    /// `path` holds `value`, which is not what it `must_be` ("a string", "an object" …).
    fn wrong_type(&mut self, path: &str, must_be: &str, value: &Value) {
        self.add(
            path,
            "invalid_type",
            format!("{path} must be {must_be}, got {}", describe(value)),
        );
    }

    fn invalid(&mut self, path: &str, sentence: String) {
        self.add(path, "invalid_value", sentence);
    }

    /// `object[key]`, recording a problem when it is missing (or null: a required field cannot
    /// be null).
    fn required<'v>(
        &mut self,
        object: &'v Map<String, Value>,
        parent: &str,
        key: &str,
    ) -> Option<&'v Value> {
        let value = object.get(key);
        if value.is_none_or(Value::is_null) {
            self.missing(&at(parent, key));
            return None;
        }
        value
    }

    fn string<'v>(&mut self, path: &str, value: &'v Value) -> Option<&'v str> {
        let text = value.as_str();
        if text.is_none() {
            self.wrong_type(path, "a string", value);
        }
        text
    }

    fn non_empty_string<'v>(&mut self, path: &str, value: &'v Value) -> Option<&'v str> {
        let text = self.string(path, value)?;
        if text.is_empty() {
            self.invalid(path, format!("{path} must not be empty"));
            return None;
        }
        Some(text)
    }

    /// A whole number of at least `min`.
    fn integer(&mut self, path: &str, value: &Value, min: i64) -> Option<i64> {
        let Some(number) = value.as_i64().or_else(|| value.as_u64().map(|_| i64::MAX)) else {
            self.wrong_type(path, "an integer", value);
            return None;
        };
        if number < min {
            self.add(
                path,
                "integer_below_min_value",
                format!("{path} must be at least {min}, got {number}"),
            );
            return None;
        }
        Some(number)
    }

    /// A number from `min` to `max`, both included.
    fn number(&mut self, path: &str, value: &Value, min: f64, max: f64) {
        match value.as_f64() {
            None => self.wrong_type(path, "a number", value),
            Some(number) if !(min..=max).contains(&number) => self.invalid(
                path,
                format!("{path} must be from {min} to {max}, got {number}"),
            ),
            Some(_) => {}
        }
    }

    fn boolean(&mut self, path: &str, value: &Value) {
        if !value.is_boolean() {
            self.wrong_type(path, "a boolean", value);
        }
    }

    fn object<'v>(&mut self, path: &str, value: &'v Value) -> Option<&'v Map<String, Value>> {
        let object = value.as_object();
        if object.is_none() {
            self.wrong_type(path, "an object", value);
        }
        object
    }

    fn array<'v>(&mut self, path: &str, value: &'v Value) -> Option<&'v [Value]> {
        let array = value.as_array().map(Vec::as_slice);
        if array.is_none() {
            self.wrong_type(path, "an array", value);
        }
        array
    }

    /// A string among `allowed`.
    fn one_of<'v>(&mut self, path: &str, value: &'v Value, allowed: &[&str]) -> Option<&'v str> {
        let text = value.as_str();
        if text.is_some_and(|text| allowed.contains(&text)) {
            return text;
        }
        let quoted: Vec<String> = allowed.iter().map(|name| format!("\"{name}\"")).collect();
        let choices = match quoted.as_slice() {
            [one] => one.clone(),
            [first, second] => format!("{first} or {second}"),
            _ => format!("one of {}", quoted.join(", ")),
        };
        self.invalid(
            path,
            format!("{path} must be {choices}, got {}", describe(value)),
        );
        None
    }

    /// Records every key of `object` that is not in `known`, as the provider words it.
    fn unknown_fields(
        &mut self,
        provider: Provider,
        parent: &str,
        object: &Map<String, Value>,
        known: &[&str],
    ) {
        for key in object.keys() {
            if known.contains(&key.as_str()) {
                continue;
            }
            let path = at(parent, key);
            let sentence = match provider {
                // Anthropic's own wording (pydantic's), naming the field first.
                Provider::Anthropic => format!("{path}: Extra inputs are not permitted"),
                Provider::OpenAi => format!("Unknown parameter: '{path}'."),
            };
            self.add(&path, "unknown_parameter", sentence);
        }
    }

    /// `stream: true`: a real request, but not one these fakes can answer.
    fn no_streaming(&mut self, body: &Map<String, Value>) {
        if let Some(stream) = optional(body, "stream") {
            self.boolean("stream", stream);
            if stream == &Value::Bool(true) {
                self.invalid(
                    "stream",
                    "stream must be false or absent: this fake does not stream".to_owned(),
                );
            }
        }
    }

    /// The sentences, for the record.
    fn sentences(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|problem| problem.sentence.clone())
            .collect()
    }
}

/// The path of `key` inside `parent` (`messages[0]` + `role` → `messages[0].role`).
fn at(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// `object[key]` unless it is missing or null: an optional field sent as null is the same as
/// one left out, for both providers.
fn optional<'v>(object: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    object.get(key).filter(|value| !value.is_null())
}

/// A value as the sentences show it: scalars as JSON (long strings cut), containers by kind.
fn describe(value: &Value) -> String {
    const SHOWN_CHARS: usize = 40;
    match value {
        Value::Object(_) => "an object".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::String(text) if text.chars().count() > SHOWN_CHARS => {
            let cut: String = text.chars().take(SHOWN_CHARS).collect();
            format!("{}…", Value::String(cut))
        }
        other => other.to_string(),
    }
}

/// The text parts of message content that is a string, or an array of parts whose text is in
/// `text` (Anthropic's text blocks, OpenAI's text parts), joined with newlines.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// What the answer needs from a valid request.
#[derive(Debug, Clone)]
struct Asked {
    /// Echoed in the answer.
    model: String,
    /// Characters of every message and system prompt, for the usage.
    prompt_chars: usize,
    /// The text of the last user message, for the automatic answer.
    last_user_text: String,
    /// The output format asked for.
    format: Format,
    /// The output token cap, if the request set one (what a truncated answer bills).
    cap: Option<u64>,
    /// How many choices to answer (Chat's `n`; 1 elsewhere).
    choices: usize,
}

/// The output format a request asked for.
#[derive(Debug, Clone)]
enum Format {
    Text,
    /// Chat's older JSON mode: any JSON object.
    JsonObject,
    /// Output following this JSON Schema.
    JsonSchema(Value),
}

/// The assistant's turn, which each API words its own way.
#[derive(Debug, Clone)]
enum Reply {
    Text(String),
    Refusal(String),
    Truncated(String),
}

impl Reply {
    fn text(&self) -> &str {
        match self {
            Reply::Text(text) | Reply::Refusal(text) | Reply::Truncated(text) => text,
        }
    }
}

/// One answer: the reply, its usage and its ids.
#[derive(Debug, Clone)]
struct Answer {
    reply: Reply,
    input_tokens: u64,
    output_tokens: u64,
    /// The answer's number on this fake (1, 2 …), for its ids (`msg_fake_1`).
    serial: u64,
    /// Unix seconds, for `created` / `created_at`.
    created: u64,
}

impl Answer {
    fn new(asked: &Asked, reply: Reply, serial: u64) -> Answer {
        let output_tokens = match (&reply, asked.cap) {
            (Reply::Truncated(_), Some(cap)) => cap.max(1),
            _ => tokens(reply.text().chars().count()),
        };
        Answer {
            input_tokens: tokens(asked.prompt_chars),
            output_tokens,
            reply,
            serial,
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs()),
        }
    }
}

/// A token per 4 characters, rounded up, at least 1 (a real API never bills 0).
fn tokens(chars: usize) -> u64 {
    u64::try_from(chars.div_ceil(4)).unwrap_or(u64::MAX).max(1)
}

/// The automatic answer's text for `asked` (see the module docs).
fn automatic_text(asked: &Asked) -> String {
    let said: String = asked.last_user_text.chars().take(ECHO_CHARS).collect();
    let said = format!("You said: {said}");
    match &asked.format {
        Format::Text => said,
        Format::JsonObject => serde_json::json!({ "reply": said }).to_string(),
        Format::JsonSchema(schema) => {
            let conversation = schema_instance::Conversation {
                last_user_text: &asked.last_user_text,
            };
            schema_instance::instance(schema, &conversation).to_string()
        }
    }
}

/// How a request is answered, decided (and recorded) before any waiting.
enum Outcome {
    Failed {
        failure: Failure,
        retry_after_secs: Option<u64>,
    },
    Answered {
        endpoint: Endpoint,
        asked: Asked,
        answer: Answer,
        delay: Option<Duration>,
    },
}

async fn handle_anthropic(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    serve(Provider::Anthropic, request, payload, state).await
}

async fn handle_openai(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    serve(Provider::OpenAi, request, payload, state).await
}

/// The only handler (per provider): reads and checks the request, records it with the answer
/// decided, then answers.
async fn serve(
    provider: Provider,
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    let received_at = Instant::now();
    let (body, too_large) = match payload.to_bytes_limited(BODY_LIMIT).await {
        Ok(Ok(body)) => (body, false),
        // The peer went away mid-body; what arrived is not a request we can judge.
        Ok(Err(_)) => (web::Bytes::new(), false),
        Err(_) => (web::Bytes::new(), true),
    };
    let headers = header_map(&request);
    let method = request.method().as_str().to_owned();
    let path = request.path().to_owned();
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();

    // Everything but the script is decided without the lock.
    let mut problems = Problems::default();
    let checked = match provider.endpoint(&path) {
        None => {
            problems.whole(
                "unknown_url",
                format!(
                    "{method} {path} is not a route of this API (it has {})",
                    provider.routes()
                ),
            );
            Err(Failure::NotFound {
                method: method.clone(),
                path: path.clone(),
            })
        }
        Some(_) if request.method() != Method::POST => {
            problems.whole(
                "method_not_allowed",
                format!("{path} takes POST, not {method}"),
            );
            Err(Failure::MethodNotAllowed {
                method: method.clone(),
                path: path.clone(),
            })
        }
        Some(_) if too_large => {
            problems.whole(
                "request_too_large",
                format!("the body is over {BODY_LIMIT} bytes"),
            );
            Err(Failure::TooLarge)
        }
        Some(endpoint) => {
            let object = check_json(&headers, &body, parsed.as_ref(), &mut problems);
            if let Some(object) = object {
                let found = endpoint.check(&headers, object);
                problems.0.extend(found.0);
            }
            Ok((endpoint, object))
        }
    };
    let key = provider.api_key(&headers);

    // The lock is held while the request is numbered, decided and recorded, so that
    // concurrent requests take scripted answers and ids in the order they are recorded.
    let (request_id, outcome) = {
        let mut state = lock(&state);
        state.received += 1;
        let request_id = format!("req_fake_{}", state.received);
        let outcome = match checked {
            Err(failure) => Outcome::Failed {
                failure,
                retry_after_secs: None,
            },
            Ok(_)
                if key
                    .as_ref()
                    .is_none_or(|key| state.rejected_keys.contains(key)) =>
            {
                Outcome::Failed {
                    failure: Failure::Unauthorized { key },
                    retry_after_secs: None,
                }
            }
            Ok((endpoint, Some(object))) if problems.is_empty() => {
                let scripted = state.script.pop_front();
                state.answered += 1;
                let asked = endpoint.asked(object);
                decide(endpoint, asked, scripted, key.as_deref(), state.answered)
            }
            Ok(_) => Outcome::Failed {
                failure: Failure::Invalid(problems.0.clone()),
                retry_after_secs: None,
            },
        };
        let status = match &outcome {
            Outcome::Failed { failure, .. } => provider.error(failure, &request_id).0,
            Outcome::Answered { .. } => StatusCode::OK,
        };
        state.requests.push(TextRequestRecord {
            path,
            method,
            headers,
            body: parsed
                .unwrap_or_else(|| Value::String(String::from_utf8_lossy(&body).into_owned())),
            problems: problems.sentences(),
            status: status.as_u16(),
            received_at,
        });
        (request_id, outcome)
    };

    respond(provider, outcome, &request_id).await
}

/// The outcome for a valid request with `key`, from the script's next answer (if any).
fn decide(
    endpoint: Endpoint,
    asked: Asked,
    scripted: Option<Scripted>,
    key: Option<&str>,
    serial: u64,
) -> Outcome {
    let (reply, delay) = match scripted {
        Some(Scripted::Error {
            status,
            retry_after_secs,
        }) => {
            return Outcome::Failed {
                failure: Failure::Scripted {
                    status: scripted_status(status),
                    quoted_key: None,
                },
                retry_after_secs,
            };
        }
        Some(Scripted::ErrorQuotingKey { status }) => {
            return Outcome::Failed {
                failure: Failure::Scripted {
                    status: scripted_status(status),
                    quoted_key: key.map(str::to_owned),
                },
                retry_after_secs: None,
            };
        }
        Some(Scripted::Text(text)) => (Reply::Text(text), None),
        Some(Scripted::Refusal(text)) => (Reply::Refusal(text), None),
        Some(Scripted::Truncated(text)) => (Reply::Truncated(text), None),
        Some(Scripted::Delay(delay)) => (Reply::Text(automatic_text(&asked)), Some(delay)),
        None => (Reply::Text(automatic_text(&asked)), None),
    };
    let answer = Answer::new(&asked, reply, serial);
    Outcome::Answered {
        endpoint,
        asked,
        answer,
        delay,
    }
}

/// A scripted status: 200 to 999, anything else 500.
fn scripted_status(status: u16) -> StatusCode {
    StatusCode::from_u16(status)
        .ok()
        .filter(|status| status.as_u16() >= 200)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A scripted error's message, with the key quoted at its end when there is one to quote.
fn quoting(message: &str, quoted_key: Option<&str>) -> String {
    match quoted_key {
        Some(key) => format!("{message} (key sent: {key})"),
        None => message.to_owned(),
    }
}

/// Writes the outcome as the provider's HTTP response, after the scripted delay.
async fn respond(provider: Provider, outcome: Outcome, request_id: &str) -> HttpResponse {
    match outcome {
        Outcome::Failed {
            failure,
            retry_after_secs,
        } => {
            let (status, body) = provider.error(&failure, request_id);
            let mut response = HttpResponse::build(status);
            response.insert_header((provider.request_id_header(), request_id));
            if let Failure::MethodNotAllowed { .. } = failure {
                response.insert_header((header::ALLOW, "POST"));
            }
            if let Some(secs) = retry_after_secs {
                response.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
            response.json(body)
        }
        Outcome::Answered {
            endpoint,
            asked,
            answer,
            delay,
        } => {
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            HttpResponse::Ok()
                .insert_header((provider.request_id_header(), request_id))
                .json(endpoint.answer(&asked, &answer))
        }
    }
}

/// Checks the `content-type` and that the body is a JSON object, which it returns.
fn check_json<'v>(
    headers: &BTreeMap<String, String>,
    body: &[u8],
    parsed: Option<&'v Value>,
    problems: &mut Problems,
) -> Option<&'v Map<String, Value>> {
    match headers.get("content-type") {
        Some(value)
            if value
                .split(';')
                .next()
                .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json")) => {}
        Some(value) => problems.whole(
            "invalid_content_type",
            format!("the content-type header must be application/json, got \"{value}\""),
        ),
        None => problems.whole(
            "invalid_content_type",
            "the content-type header is missing (it must be application/json)".to_owned(),
        ),
    }
    let Some(parsed) = parsed else {
        let reason = match serde_json::from_slice::<Value>(body) {
            Err(error) => error.to_string(),
            Ok(_) => "unreadable".to_owned(),
        };
        problems.whole(
            "invalid_json",
            format!("the body is not valid JSON ({reason})"),
        );
        return None;
    };
    let object = parsed.as_object();
    if object.is_none() {
        problems.whole(
            "invalid_type",
            format!("the body must be a JSON object, got {}", describe(parsed)),
        );
    }
    object
}

/// The request's headers by lowercase name (actix already lowercases them).
fn header_map(request: &HttpRequest) -> BTreeMap<String, String> {
    let mut headers = BTreeMap::<String, String>::new();
    for (name, value) in request.headers() {
        let value = String::from_utf8_lossy(value.as_bytes());
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    headers
}
