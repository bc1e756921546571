//! voxbridge: a multi-tenant voice-AI platform service. Phone calls arrive through FreJun
//! (Teler); their audio is bridged to the OpenAI Realtime API with each tenant's own key, and
//! every call is recorded in MongoDB.
//!
//! # Layout
//!
//! Below everything else:
//! - [`domain`]: types and rules shared by every layer: typed ids, secrets, phone numbers,
//!   tenants, assistants, the call's vocabulary and its status merge, pricing.
//! - [`audio`]: resampling, μ-law, s16le/base64 and tone helpers.
//!
//! Building blocks:
//! - [`auth`]: tenant API keys (generate, hash) and constant-time token comparison.
//! - [`crypto`]: AES-256-GCM encryption of tenants' secrets under versioned master keys.
//! - [`frejun`]: FreJun's flow and webhook payloads (parsed tolerantly) and media-URL tokens.
//! - [`providers`]: clients of the services we call (Teler REST, OpenAI Realtime).
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
//! - [`calls`]: the call control plane: flow answers, outbound calls, webhooks, the reaper.
//! - [`bridge`]: the media bridge: one session per live call between FreJun and OpenAI.
//! - [`http`]: the actix-web application: routes, envelope, error codes, views, middleware.
//! - [`startup`]: binds the listener and runs the server until the shutdown token fires.
//!
//! Tools:
//! - [`sim`]: protocol-faithful fakes of FreJun/Teler and OpenAI Realtime, and a simulated
//!   FreJun caller, for tests, the demo and the load generator.
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
