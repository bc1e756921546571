//! voxbridge: a multi-tenant voice-AI platform service. Phone calls arrive through FreJun
//! (Teler); their audio is bridged to the voice AI each assistant names: OpenAI Realtime, the
//! tenant's own OpenAI-compatible realtime endpoint, or an ElevenLabs Conversational AI agent,
//! with the tenant's own keys. Every call is recorded in MongoDB, its events are delivered to
//! the tenant's webhooks, and a text model (Anthropic Messages, OpenAI Responses or any Chat
//! Completions server) can analyse it afterwards.
//!
//! # Layout
//!
//! Below everything else:
//! - [`domain`]: types and rules shared by every layer: typed ids, secrets, phone numbers,
//!   tenants and their credentials, assistants, the call's vocabulary and its status merge,
//!   pricing, text AI, post-call analysis, webhook events.
//! - [`audio`]: resampling, μ-law, s16le/base64 and tone helpers.
//!
//! Building blocks:
//! - [`auth`]: tenant API keys (generate, hash) and constant-time token comparison.
//! - [`crypto`]: AES-256-GCM encryption of tenants' secrets under versioned master keys.
//! - [`frejun`]: FreJun's flow and webhook payloads (parsed tolerantly) and media-URL tokens.
//! - [`providers`]: clients of the services we call: Teler REST; the realtime voice AIs
//!   behind one backend interface (OpenAI Realtime, which a tenant's OpenAI-compatible
//!   endpoint also speaks, and ElevenLabs Conversational AI); the text models (Anthropic
//!   Messages, OpenAI Responses, Chat Completions).
//! - [`outbound`]: requests to URLs tenants control: the SSRF-safe client and Standard Webhooks
//!   signatures.
//! - [`settings`]: typed configuration from defaults, an optional TOML file and the environment.
//! - [`telemetry`]: the `tracing` subscriber, the span of one call, and the Prometheus metrics.
//! - [`storage`]: MongoDB: typed collections, repositories that take the tenant's id, the
//!   migration runner.
//! - [`local_mongodb`]: a real local `mongod` for development, tests and the demo.
//! - [`shared`]: settings, storage, keyring and media-token signer, built once per process.
//!
//! The service:
//! - [`calls`]: the call control plane: flow answers, outbound calls, FreJun's webhooks, the
//!   reaper; tenants' tool secrets, webhook deliveries, text AI and post-call analysis.
//! - [`bridge`]: the media bridge: one session per live call between FreJun and the
//!   assistant's voice AI.
//! - [`http`]: the actix-web application: routes, envelope, error codes, views, middleware.
//! - [`startup`]: binds the listener and runs the server until the shutdown token fires.
//!
//! Tools:
//! - [`sim`]: protocol-faithful fakes of the services we cannot reach (FreJun's Teler, OpenAI
//!   Realtime, ElevenLabs Conversational AI, the text AIs, a tenant's tool server and webhook
//!   receiver) and a simulated FreJun caller, for tests, the demo and the load generator.
//! - [`commands`]: the `voxbridge` subcommands: `serve`, `migrate`, `rotate-master-key`,
//!   `upgrade-models`, `local-mongodb`, `call`, `demo` and `loadtest`.
//!
//! Each module may use only the modules ARCHITECTURE.md's dependency rule lists for it;
//! `tests/api/architecture.rs` checks that by reading the sources.

pub mod audio;
pub mod auth;
pub mod bridge;
pub mod calls;
pub mod commands;
pub mod crypto;
pub mod domain;
pub mod frejun;
pub mod http;
pub mod local_mongodb;
pub mod outbound;
pub mod providers;
pub mod settings;
pub mod shared;
pub mod sim;
pub mod startup;
pub mod storage;
pub mod telemetry;

// Property tests (fuzzing on stable) of every parser of outside input; see the module's docs.
#[cfg(test)]
mod fuzz_tests;
