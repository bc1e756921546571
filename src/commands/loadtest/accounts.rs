//! The accounts a load test calls through, made through the public API like a real tenant's:
//! one tenant allowed every call at once, and one assistant plus one number per call.
//!
//! Each call gets its own assistant so that the fake can tell the sessions apart: the
//! assistant's instructions are [`instructions_for`] the call's index, and they come back in the
//! session the bridge opens (OpenAI's `session.instructions`, ElevenLabs' prompt override
//! `agent.prompt.prompt`). With `--backend elevenlabs` every assistant names the fake's one
//! public agent. Provisioning runs a bounded number of requests at a time so a thousand calls
//! set up in seconds without flooding the server.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::backend::{self, Backend};
use crate::sim::api_client::{ApiClient, ApiError};
use crate::sim::provision::{
    AssistantSpec, ProvisionedTenant, TenantSpec, create_tenant, fictional_number, unique_email,
};

/// Attempts at registering a number before giving up (another tenant may hold a random one).
const NUMBER_ATTEMPTS: usize = 3;

/// The audio settings every call's assistant gets (`codec` stays `pcm24k` for ElevenLabs).
#[derive(Debug, Clone)]
pub(crate) struct AssistantAudio {
    /// `pcm24k` or `pcmu`.
    pub codec: String,
    pub inbound_rate_hz: u32,
    pub inbound_chunk_ms: u32,
    pub outbound_chunk_ms: u32,
}

/// The instructions of call `index`'s assistant, which identify its OpenAI session.
pub(crate) fn instructions_for(index: usize) -> String {
    format!("loadtest call {index}")
}

/// What call `index` dials.
#[derive(Debug, Clone)]
pub(crate) struct CallAccount {
    pub index: usize,
    /// The number assigned to the call's own assistant (E.164).
    pub number: String,
}

/// The provisioned tenant and one account per call, in call order.
pub(crate) struct Accounts {
    pub tenant: ProvisionedTenant,
    pub calls: Vec<CallAccount>,
}

/// Creates the tenant and `calls` assistants (on `backend`) with their numbers, `concurrency`
/// requests at a time; `on_progress` is told how many calls are ready after each one.
pub(crate) async fn provision(
    admin: &ApiClient,
    label: &str,
    calls: usize,
    backend: Backend,
    audio: &AssistantAudio,
    concurrency: usize,
    on_progress: impl Fn(usize),
) -> Result<Accounts, ApiError> {
    let tenant = create_tenant(
        admin,
        &TenantSpec {
            name: format!("Load test {label}"),
            email: unique_email("loadtest"),
            max_concurrent_calls: u32::try_from(calls).unwrap_or(u32::MAX),
            // The fake OpenAI accepts any key of 8+ characters; a public ElevenLabs agent needs
            // no key at all.
            openai_api_key: format!("sk-loadtest-{label}"),
            frejun_api_key: format!("frejun-loadtest-{label}"),
        },
    )
    .await?;

    let numbers = distinct_numbers(calls);
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for (index, number) in numbers.into_iter().enumerate() {
        let tenant = tenant.clone();
        let permits = Arc::clone(&permits);
        let audio = audio.clone();
        tasks.spawn(async move {
            // The semaphore is never closed, so acquiring only waits.
            let _permit = permits.acquire_owned().await;
            set_up_call(&tenant, index, number, backend, &audio).await
        });
    }
    let mut accounts = Vec::with_capacity(calls);
    while let Some(joined) = tasks.join_next().await {
        let account = joined.map_err(|error| ApiError::BadAnswer {
            method: "-".into(),
            path: "-".into(),
            reason: format!("a provisioning task failed: {error}"),
        })??;
        accounts.push(account);
        on_progress(accounts.len());
    }
    accounts.sort_by_key(|account| account.index);
    Ok(Accounts {
        tenant,
        calls: accounts,
    })
}

/// Call `index`'s assistant and number.
async fn set_up_call(
    tenant: &ProvisionedTenant,
    index: usize,
    mut number: String,
    backend: Backend,
    audio: &AssistantAudio,
) -> Result<CallAccount, ApiError> {
    let spec = AssistantSpec {
        name: format!("Load test call {index}"),
        instructions: instructions_for(index),
        // No greeting: the echo starts with the caller's first chunk.
        greeting: None,
        codec: audio.codec.clone(),
        inbound_rate_hz: audio.inbound_rate_hz,
        inbound_chunk_ms: audio.inbound_chunk_ms,
        outbound_chunk_ms: audio.outbound_chunk_ms,
        // Neither echo has user turns to transcribe (and an ElevenLabs agent transcribes
        // itself).
        transcription_model: None,
        // The load generator measures the bridge; analysis is a separate worker.
        analysis: None,
    };
    let assistant_id = match backend {
        Backend::OpenAi => tenant.create_assistant(&spec).await?,
        Backend::ElevenLabs => create_elevenlabs_assistant(tenant, &spec).await?,
    };
    let mut attempt = 1;
    loop {
        match tenant.add_number(&number, &assistant_id).await {
            Ok(_) => return Ok(CallAccount { index, number }),
            Err(ApiError::Status { status: 409, .. }) if attempt < NUMBER_ATTEMPTS => {
                attempt += 1;
                number = fictional_number();
            }
            Err(error) => return Err(error),
        }
    }
}

/// The `POST /api/assistants` body of `spec` on the fake ElevenLabs' public agent.
fn elevenlabs_assistant_body(spec: &AssistantSpec) -> Value {
    let mut body = spec.to_json();
    body["backend"] = json!({
        "type": "elevenlabs_convai",
        "agent_id": backend::AGENT_ID,
        "private": false,
    });
    body
}

/// Creates `spec` as an assistant on the fake ElevenLabs' agent; returns its id.
async fn create_elevenlabs_assistant(
    tenant: &ProvisionedTenant,
    spec: &AssistantSpec,
) -> Result<String, ApiError> {
    let created = tenant
        .api
        .post_data("api/assistants", &elevenlabs_assistant_body(spec))
        .await?;
    created
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ApiError::BadAnswer {
            method: "POST".into(),
            path: "api/assistants".into(),
            reason: "no string `id` in the answer".into(),
        })
}

/// `count` random fictional numbers, no two alike.
fn distinct_numbers(count: usize) -> Vec<String> {
    let mut seen = HashSet::with_capacity(count);
    let mut numbers = Vec::with_capacity(count);
    while numbers.len() < count {
        let number = fictional_number();
        if seen.insert(number.clone()) {
            numbers.push(number);
        }
    }
    numbers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_call_has_its_own_instructions_and_number() {
        assert_eq!(instructions_for(7), "loadtest call 7");
        assert_ne!(instructions_for(1), instructions_for(10));
        let numbers = distinct_numbers(500);
        let unique: HashSet<_> = numbers.iter().collect();
        assert_eq!(unique.len(), 500);
    }

    #[test]
    fn elevenlabs_assistants_name_the_fakes_public_agent() {
        let spec = AssistantSpec {
            name: "Load test call 1".into(),
            instructions: instructions_for(1),
            greeting: None,
            codec: "pcm24k".into(),
            inbound_rate_hz: 16_000,
            inbound_chunk_ms: 100,
            outbound_chunk_ms: 100,
            transcription_model: None,
            analysis: None,
        };
        let body = elevenlabs_assistant_body(&spec);
        assert_eq!(body["backend"]["type"], "elevenlabs_convai");
        assert_eq!(body["backend"]["agent_id"], backend::AGENT_ID);
        assert_eq!(body["backend"]["private"], false);
        assert_eq!(body["instructions"], "loadtest call 1");
        assert_eq!(body["audio"]["codec"], "pcm24k");
        assert_eq!(body["transcription"], Value::Null);
    }
}
