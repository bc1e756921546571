//! Setting up a tenant to call through the public API, as an operator would: an admin creates
//! the tenant, the tenant stores its provider keys, creates assistants and attaches numbers. The
//! demo and the load generator use this against the server they drive, so the accounts they
//! call through are made exactly like real ones.

use serde_json::{Value, json};
use url::Url;

use super::api_client::{ApiClient, ApiError};

/// What a new tenant needs.
#[derive(Debug, Clone)]
pub(crate) struct TenantSpec {
    pub name: String,
    /// Must be unique on the server.
    pub email: String,
    pub max_concurrent_calls: u32,
    /// Stored encrypted; against the fake OpenAI any key of 8+ characters works.
    pub openai_api_key: String,
    pub frejun_api_key: String,
}

/// An assistant's settings, in the API's terms.
#[derive(Debug, Clone)]
pub(crate) struct AssistantSpec {
    pub name: String,
    pub instructions: String,
    /// Spoken first when set.
    pub greeting: Option<String>,
    /// `pcm24k` or `pcmu`.
    pub codec: String,
    /// 8000 or 16000.
    pub inbound_rate_hz: u32,
    pub inbound_chunk_ms: u32,
    pub outbound_chunk_ms: u32,
    /// Caller transcription model (e.g. `gpt-live-transcribe`); `None` leaves it off.
    pub transcription_model: Option<String>,
    /// The assistant's post-call `analysis` object; `None`: none.
    pub analysis: Option<Value>,
}

impl AssistantSpec {
    /// The `POST /api/assistants` body.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "instructions": self.instructions,
            "greeting": self.greeting,
            "transcription": self.transcription_model.as_ref().map(|model| json!({ "model": model })),
            "audio": {
                "codec": self.codec,
                "inbound_rate": if self.inbound_rate_hz == 16_000 { "16k" } else { "8k" },
                "inbound_chunk_ms": self.inbound_chunk_ms,
                "outbound_chunk_ms": self.outbound_chunk_ms,
            },
            "analysis": self.analysis,
        })
    }
}

/// A tenant ready to take calls, and a client acting as it.
#[derive(Clone)]
pub(crate) struct ProvisionedTenant {
    /// The tenant's API key (shown once at creation).
    pub api_key: String,
    /// FreJun's incoming-call URL for this tenant (`…/api/frejun/flow?key=…`).
    pub flow_url: Url,
    /// FreJun's status-callback URL (`…/api/frejun/webhook?key=…`).
    pub webhook_url: Url,
    /// Requests as the tenant.
    pub api: ApiClient,
}

/// Creates the tenant (admin token in `admin`), stores its provider keys and reads its FreJun
/// URLs.
pub(crate) async fn create_tenant(
    admin: &ApiClient,
    spec: &TenantSpec,
) -> Result<ProvisionedTenant, ApiError> {
    let created = admin
        .post_data(
            "api/admin/users",
            &json!({
                "name": spec.name,
                "email": spec.email,
                "max_concurrent_calls": spec.max_concurrent_calls,
            }),
        )
        .await?;
    let api_key = string_field(&created, "api_key", "POST api/admin/users")?;
    let api = admin.with_bearer(api_key.clone());
    api.put(
        "api/me/credentials",
        &json!({
            "openai_api_key": spec.openai_api_key,
            "frejun_api_key": spec.frejun_api_key,
        }),
    )
    .await?;
    let me = api.get_data("api/me").await?;
    let url_at = |field: &str| -> Result<Url, ApiError> {
        let text = me
            .get("frejun")
            .and_then(|frejun| frejun.get(field))
            .and_then(Value::as_str)
            .unwrap_or_default();
        Url::parse(text).map_err(|error| ApiError::BadAnswer {
            method: "GET".into(),
            path: "api/me".into(),
            reason: format!("frejun.{field} is not a URL: {error}"),
        })
    };
    Ok(ProvisionedTenant {
        flow_url: url_at("incoming_call_url")?,
        webhook_url: url_at("status_callback_url")?,
        api_key,
        api,
    })
}

impl ProvisionedTenant {
    /// Creates an assistant; returns its id.
    pub(crate) async fn create_assistant(&self, spec: &AssistantSpec) -> Result<String, ApiError> {
        let created = self
            .api
            .post_data("api/assistants", &spec.to_json())
            .await?;
        string_field(&created, "id", "POST api/assistants")
    }

    /// Registers `number` (E.164) for the tenant, assigned to `assistant_id`; returns the
    /// number's id.
    pub(crate) async fn add_number(
        &self,
        number: &str,
        assistant_id: &str,
    ) -> Result<String, ApiError> {
        let created = self
            .api
            .post_data(
                "api/phone-numbers",
                &json!({ "phone_number": number, "assistant_id": assistant_id }),
            )
            .await?;
        string_field(&created, "id", "POST api/phone-numbers")
    }
}

fn string_field(data: &Value, field: &str, request: &str) -> Result<String, ApiError> {
    data.get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ApiError::BadAnswer {
            method: request.split(' ').next().unwrap_or_default().into(),
            path: request.split(' ').nth(1).unwrap_or_default().into(),
            reason: format!("no string `{field}` in the answer"),
        })
}

/// A random E.164 number in a block no real subscriber has (`+1 555 01xx xxxx`-style fictional
/// numbers are too few for a load test, so `+99` — an unassigned country code — is used).
pub(crate) fn fictional_number() -> String {
    format!("+99{:010}", rand::random::<u32>())
}

/// A unique email for a throwaway tenant.
pub(crate) fn unique_email(label: &str) -> String {
    format!(
        "{label}-{}@voxbridge-sim.example",
        uuid::Uuid::new_v4().simple()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assistant_body_names_the_rate_as_the_api_does() {
        let spec = AssistantSpec {
            name: "a".into(),
            instructions: "i".into(),
            greeting: None,
            codec: "pcmu".into(),
            inbound_rate_hz: 8_000,
            inbound_chunk_ms: 100,
            outbound_chunk_ms: 100,
            transcription_model: None,
            analysis: None,
        };
        let body = spec.to_json();
        assert_eq!(body["audio"]["inbound_rate"], "8k");
        assert_eq!(body["audio"]["codec"], "pcmu");
        assert_eq!(body["greeting"], Value::Null);
        assert_eq!(body["transcription"], Value::Null);
        assert_eq!(body["analysis"], Value::Null);
    }

    #[test]
    fn fictional_numbers_are_e164() {
        let number = fictional_number();
        assert!(number.starts_with("+99"));
        assert_eq!(number.len(), 13);
        assert!(number[1..].chars().all(|c| c.is_ascii_digit()));
    }
}
