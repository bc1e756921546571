//! Names of the collections of the data model (see ARCHITECTURE.md and `migrations/`). Code
//! refers to these constants so that a rename is one change.

pub(crate) const USERS: &str = "users";
pub(crate) const API_KEYS: &str = "api_keys";
pub(crate) const ASSISTANTS: &str = "assistants";
pub const PHONE_NUMBERS: &str = "phone_numbers";
pub const CALL_LOGS: &str = "call_logs";
/// Per-tenant concurrency slots: one document per tenant listing its admitted calls.
pub(crate) const CALL_SLOTS: &str = "call_slots";
/// FreJun webhooks that matched no call, kept 30 days for diagnosis.
pub(crate) const FREJUN_EVENTS: &str = "frejun_events";
/// Tenants' webhook endpoints.
pub(crate) const WEBHOOK_ENDPOINTS: &str = "webhook_endpoints";
/// Deliveries of events to tenants' webhook endpoints, with their attempts.
pub(crate) const WEBHOOK_DELIVERIES: &str = "webhook_deliveries";
/// Live-control requests addressed to the instance bridging a call (`storage::call_commands`).
pub(crate) const CALL_COMMANDS: &str = "call_commands";
/// Applied migration versions, written by the migration runner.
pub const SCHEMA_MIGRATIONS: &str = "schema_migrations";
