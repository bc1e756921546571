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
//! - [`http`]: the actix-web application: routes, envelope, errors, middleware.
//! - [`startup`]: binds the listener and runs the server until the shutdown token fires.
//! - [`telemetry`]: the `tracing` subscriber.
//! - [`local_mongodb`]: a real local `mongod` for development, tests and the demo.
//! - [`commands`]: the `voxbridge` subcommands (`serve`, `migrate`, `local-mongodb`).
//!
//! Dependency rule: `http` → (`storage`, `domain`); `storage` → `domain`; `domain` → nothing.
//! See ARCHITECTURE.md.

#![forbid(unsafe_code)]

pub mod auth;
pub mod commands;
pub mod crypto;
pub mod domain;
pub mod http;
pub mod local_mongodb;
pub mod settings;
pub mod startup;
pub mod storage;
pub mod telemetry;
