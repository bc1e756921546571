//! Integration tests against the real application and a real MongoDB.
//!
//! Run them with the README's test command (`scripts/test.sh`), which starts a throwaway
//! MongoDB replica set and sets `MONGODB_URI`; or set `MONGODB_URI` yourself.

mod analysis;
mod architecture;
mod assistants;
mod bridge;
mod call_command;
mod call_progress;
mod calls;
mod cluster;
mod credentials;
mod demo_command;
mod errors;
mod frejun_bounds;
mod frejun_flow;
mod frejun_outbound;
mod frejun_webhook;
mod health;
mod helpers;
mod input_rules;
mod isolation;
mod lease_renewal;
mod loadtest_command;
mod logs;
mod metrics;
mod migrations;
mod model_retirement;
mod outage;
mod pagination;
mod phone_numbers;
mod rate_limits;
mod slow_bodies;
mod startup_notices;
mod tenants;
mod text_ai;
mod tools_api;
mod url_secret_rotation;
mod validation;
mod webhook_endpoints;
mod webhook_events;
mod webhook_reliability;
