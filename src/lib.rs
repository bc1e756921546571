//! voxbridge: a multi-tenant voice-AI platform service. Phone calls arrive through FreJun
//! (Teler); their audio is bridged to the OpenAI Realtime API with each tenant's own key, and
//! every call is recorded in MongoDB.
//!
//! # Layout
//!
//! - [`auth`]: tenant API keys (generate, hash) and constant-time token comparison.
//! - [`domain`]: types shared by every layer (secrets, …); depends on nothing in the crate.
//! - [`crypto`]: AES-256-GCM encryption of tenants' credentials under a versioned master key.
//! - [`settings`]: typed configuration from defaults, an optional TOML file and the environment.
//! - [`storage`]: MongoDB client, collections, error mapping and the migration runner.
//! - [`frejun`]: FreJun's flow and webhook payloads (parsed tolerantly) and media-URL tokens.
//! - [`providers`]: clients of the services we call (Teler REST, OpenAI Realtime).
//! - [`calls`]: the call control plane: flow answers, outbound calls, webhooks, the reaper.
//! - [`audio`]: resampling, μ-law, s16le/base64 and tone helpers.
//! - [`bridge`]: the media bridge: one session per live call between FreJun and OpenAI.
//! - [`sim`]: protocol-faithful fakes of FreJun/Teler and OpenAI Realtime, and a simulated
//!   FreJun caller, for tests, the demo and the load generator.
//! - [`http`]: the actix-web application: routes, envelope, errors, middleware.
//! - [`startup`]: binds the listener and runs the server until the shutdown token fires.
//! - [`telemetry`]: the `tracing` subscriber.
//! - [`local_mongodb`]: a real local `mongod` for development, tests and the demo.
//! - [`commands`]: the `voxbridge` subcommands (`serve`, `migrate`, `local-mongodb`).
//!
//! Dependency rule: `http` → (`calls`, `bridge`, `storage`, `domain`); `calls` → (`frejun`,
//! `providers`, `storage`, `domain`); `bridge` → (`audio`, `frejun`, `providers`, `storage`,
//! `domain`); `storage`, `providers`, `frejun` → `domain`; `domain` → nothing; `sim`
//! is used by tests, the demo and the load generator only.
//! See ARCHITECTURE.md.

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
pub mod providers;
pub mod settings;
pub mod shared;
pub mod sim;
pub mod startup;
pub mod storage;
pub mod telemetry;
