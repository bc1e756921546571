//! Protocol-faithful stand-ins for the services we cannot reach from tests, the demo and the load
//! generator. Each one speaks the wire format documented in `docs/` (and records what it was
//! sent), so the code under test runs its real clients against it.
//!
//! Layout:
//! - [`fake_teler`]: a fake FreJun Teler REST API, plus helpers that play FreJun's side of the
//!   flow fetch and the lifecycle webhooks.
//! - [`fake_openai`]: a fake OpenAI Realtime server (GA WebSocket protocol) with server-VAD
//!   emulation, scripted/echo modes, injected failures and GA shape checks of client events.
//! - [`fake_elevenlabs`]: a fake ElevenLabs Conversational AI (Agents) API: the signed-URL
//!   endpoint and the conversation WebSocket, with echo/scripted agents, pings, a scripted
//!   barge-in, client tool calls, injected failures and shape checks of client messages.
//! - [`fake_tool_server`]: a fake tenant HTTP tool endpoint that checks signatures and shapes.
//! - [`fake_webhook_receiver`]: a fake tenant webhook receiver that verifies signatures (any of
//!   several secrets), checks event shapes and answers from a per-path script of replies.
//! - [`fake_text_ai`]: fakes of the text-LLM HTTP APIs (Anthropic Messages, OpenAI Responses and
//!   Chat Completions) that check requests against the real shapes and answer from a script or
//!   automatically (structured output built from the requested JSON schema).
//! - `session_registry`: the session records of the realtime fakes (OpenAI, ElevenLabs):
//!   registered, counted live, copied out, waited on.
//! - `loopback_server`: the HTTP server under the fakes of tenants' endpoints (127.0.0.1,
//!   one handler for everything, stopped on drop).
//! - [`caller`]: a simulated FreJun caller, the client side of the media-stream WebSocket (for
//!   the integration tests, `voxbridge call`, the demo and the load generator).
//! - [`wav`]: reading and writing WAV files for the audio those callers play and record.
//! - [`voices`]: recorded speech (a caller, the assistant) embedded for the demo.
//! - [`frejun_requests`]: FreJun's HTTP requests to voxbridge (the flow fetch, the webhooks).
//! - [`frejun_payloads`]: the bodies FreJun posts to voxbridge (the lifecycle webhooks) and the
//!   fake FreJun account's ids they carry.
//! - [`api_client`] and [`provision`]: voxbridge's own API as an admin or a tenant uses it, to
//!   set up the accounts the demo and the load generator call through.
//! - [`phone_call`]: one call placed as FreJun places it (webhooks, flow, stream, call log),
//!   for `voxbridge call` and the demo.

pub(crate) mod api_client;
pub mod caller;
pub mod fake_elevenlabs;
pub mod fake_openai;
pub mod fake_teler;
pub mod fake_text_ai;
pub mod fake_tool_server;
pub mod fake_webhook_receiver;
pub mod frejun_payloads;
pub(crate) mod frejun_requests;
pub(crate) mod loopback_server;
pub(crate) mod phone_call;
pub(crate) mod provision;
pub(crate) mod session_registry;
pub(crate) mod voices;
pub mod wav;
