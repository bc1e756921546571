//! Domain types and rules shared by every layer. This module depends on nothing else in the
//! crate (and not on the MongoDB driver: `bson` values only).
//!
//! Layout:
//! - [`ids`]: typed ids (tenant, API key, assistant, phone number, call, webhook endpoint,
//!   webhook delivery, unmatched FreJun event, live-control command), so they cannot be
//!   swapped.
//! - [`secret`]: wrappers for secret values whose `Debug`, `Display` and `Serialize` never show
//!   the value.
//! - [`validation`]: [`validation::ValidationError`], the field-named error every request rule
//!   reports.
//! - [`phone`]: E.164 phone numbers, normalised from the ways people write them.
//! - [`email`]: tenant email addresses, trimmed and lowercased.
//! - [`tenant`]: tenant status, per-tenant limits and the tenant name rule.
//! - [`credential`]: the provider keys a tenant can store, and which one a call's voice AI
//!   needs.
//! - [`call`]: call status (with its forward-only rank), call direction and end reasons; the
//!   status merge ([`call::status`]) and the rest of a call's record ([`call::record`]).
//! - [`assistant`]: the assistant configuration, its create and update request bodies, and
//!   every rule they must satisfy.
//! - [`model_retirement`]: OpenAI models with an announced shutdown, their replacements, and
//!   the warning or refusal an assistant naming one gets.
//! - [`pricing`]: the estimated cost of a call's OpenAI usage.
//! - [`text_ai`]: text-model providers, conversation messages, the provider-neutral reply and
//!   the rules of the AI conversation request.
//! - [`analysis`]: post-call analysis: an assistant's settings, the question and answer schema,
//!   how an answer is judged and what the call log keeps.
//! - [`cluster`]: an instance's name and the owner a live call's log records.
//! - [`control`]: live control of a call: the requests and what they did.
//! - [`webhook`]: tenants' webhook endpoints, the event types and the body of every delivery.
//! - [`error_chain`]: an error and its sources on one line, for logs and one-line errors.
//! - [`time`]: arithmetic on BSON dates.
//! - [`text`]: text cut to a byte limit on a character boundary.

pub mod analysis;
pub mod assistant;
pub mod call;
pub mod cluster;
pub mod control;
pub(crate) mod credential;
pub(crate) mod email;
pub(crate) mod error_chain;
pub mod ids;
pub mod model_retirement;
pub(crate) mod phone;
pub(crate) mod pricing;
pub mod secret;
pub(crate) mod tenant;
pub(crate) mod text;
pub mod text_ai;
pub(crate) mod time;
pub(crate) mod validation;
pub mod webhook;
