//! Text AI for tenants: which provider, key, base URL and model a request uses (the tenant's
//! own, else the platform's), the request itself with its outcome recorded for
//! `GET /api/ai/status`, and the rate-limited probe behind `?check=true`.
//!
//! A base URL the tenant gave (its Chat Completions server) is reached only through the
//! SSRF-safe client, after the same URL check as tools and webhooks; the operator's URLs are
//! trusted. A tenant's OpenAI key never goes to any base URL but the operator's OpenAI one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bson::DateTime;
use url::Url;

use super::{CallService, CredentialProblem};
use crate::domain::credential::Credential;
use crate::domain::ids::TenantId;
use crate::domain::secret::SecretString;
use crate::domain::text_ai::{ChatMessage, ChatRole, TextProvider, TextReply};
use crate::providers::text::{self, Endpoint, RetryPolicy, TextError, TextErrorCode, TextRequest};
use crate::storage::StorageError;
use crate::storage::users::{ProviderCallRecord, UserRecord};

/// How many text requests each tenant has under way on this instance, so that one tenant
/// cannot hold an unbounded number of slow provider requests open.
#[derive(Debug, Clone, Default)]
pub(crate) struct TenantGate {
    running: Arc<Mutex<HashMap<TenantId, usize>>>,
}

/// One request's place in the gate, given back when dropped.
#[derive(Debug)]
pub(crate) struct GatePass {
    gate: TenantGate,
    tenant: TenantId,
}

impl TenantGate {
    fn lock(&self) -> MutexGuard<'_, HashMap<TenantId, usize>> {
        // A panic while counting leaves the counts usable.
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for one more of `tenant`'s requests, if it has fewer than `limit` under way.
    pub(crate) fn enter(&self, tenant: TenantId, limit: usize) -> Option<GatePass> {
        let mut running = self.lock();
        let count = running.entry(tenant).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(GatePass {
            gate: self.clone(),
            tenant,
        })
    }

    /// Requests `tenant` has under way.
    #[cfg(test)]
    fn running(&self, tenant: TenantId) -> usize {
        self.lock().get(&tenant).copied().unwrap_or(0)
    }
}

impl Drop for GatePass {
    fn drop(&mut self) {
        let mut running = self.gate.lock();
        if let Some(count) = running.get_mut(&self.tenant) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.tenant);
            }
        }
    }
}

/// Whose key a provider uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeySource {
    Tenant,
    Platform,
}

impl KeySource {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            KeySource::Tenant => "tenant",
            KeySource::Platform => "platform",
        }
    }
}

/// A provider ready to be asked.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedProvider {
    pub endpoint: Endpoint,
    pub model: String,
    pub key_source: KeySource,
    /// The base URL is the tenant's: checked and reached through the SSRF-safe client.
    pub tenant_url: bool,
}

/// Why a provider cannot be used for a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// Neither the tenant nor the platform configured it; the message says what is missing.
    NotConfigured(String),
    /// The tenant's key does not decrypt with the configured master keys.
    Unreadable,
}

/// What asked a provider, as recorded for the status endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Conversation,
    Analysis,
    Check,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Conversation => "conversation",
            Purpose::Analysis => "analysis",
            Purpose::Check => "check",
        }
    }
}

/// The outcome of a probe, per provider.
#[derive(Debug, Clone)]
pub(crate) struct CheckResult {
    pub provider: TextProvider,
    pub outcome: Result<Duration, String>,
}

impl CallService {
    /// The retry policy of `text_ai.*`.
    pub(crate) fn text_retry_policy(&self) -> RetryPolicy {
        let settings = &self.shared.settings.text_ai;
        RetryPolicy {
            max_attempts: settings.max_attempts,
            attempt_timeout: Duration::from_millis(settings.timeout_ms),
            max_wait: Duration::from_millis(settings.max_retry_wait_ms),
        }
    }

    /// The provider `provider` (default: `text_ai.default_provider`) for `user`, with `model`
    /// or the configured one.
    pub(crate) fn resolve_text_provider(
        &self,
        user: &UserRecord,
        provider: Option<TextProvider>,
        model: Option<&str>,
    ) -> Result<ResolvedProvider, Unavailable> {
        let settings = &self.shared.settings.text_ai;
        let provider = provider.unwrap_or(settings.default_provider);
        let pick_model = |configured: &str| {
            model
                .map(str::to_owned)
                .unwrap_or_else(|| configured.to_owned())
        };
        let (key, key_source, base_url, model, tenant_url) = match provider {
            TextProvider::Anthropic => {
                let (key, source) = self.key_for(
                    user,
                    Credential::AnthropicApiKey,
                    settings.anthropic_api_key.as_ref(),
                )?;
                (
                    key,
                    source,
                    settings.anthropic_base_url.clone(),
                    pick_model(&settings.anthropic_model),
                    false,
                )
            }
            TextProvider::OpenaiResponses => {
                let (key, source) = self.key_for(
                    user,
                    Credential::OpenAiApiKey,
                    settings.openai_api_key.as_ref(),
                )?;
                (
                    key,
                    source,
                    settings.openai_base_url.clone(),
                    pick_model(&settings.openai_model),
                    false,
                )
            }
            TextProvider::ChatCompletions => match &user.text_ai.chat_completions_base_url {
                Some(base) => {
                    let base = Url::parse(base).map_err(|_| {
                        Unavailable::NotConfigured(
                            "the stored chat_completions_base_url is not a URL".to_owned(),
                        )
                    })?;
                    let key = self
                        .tenant_key(user, Credential::ChatCompletionsApiKey)?
                        .ok_or_else(|| {
                            Unavailable::NotConfigured(
                                "chat_completions_api_key is not set (servers that ignore \
                                 keys take any value)"
                                    .to_owned(),
                            )
                        })?;
                    let model = model
                        .map(str::to_owned)
                        .or_else(|| user.text_ai.chat_completions_model.clone())
                        .ok_or_else(|| {
                            Unavailable::NotConfigured(
                                "no model: set chat_completions_model or name one".to_owned(),
                            )
                        })?;
                    (key, KeySource::Tenant, base, model, true)
                }
                None => {
                    let (Some(base), Some(key)) = (
                        &settings.chat_completions_base_url,
                        &settings.chat_completions_api_key,
                    ) else {
                        return Err(Unavailable::NotConfigured(
                            "set chat_completions_base_url and chat_completions_api_key".to_owned(),
                        ));
                    };
                    (
                        key.clone(),
                        KeySource::Platform,
                        base.clone(),
                        pick_model(&settings.chat_completions_model),
                        false,
                    )
                }
            },
        };
        Ok(ResolvedProvider {
            endpoint: Endpoint {
                provider,
                base_url,
                api_key: key,
            },
            model,
            key_source,
            tenant_url,
        })
    }

    /// The tenant's key `credential` in clear, or `None` when it has none.
    fn tenant_key(
        &self,
        user: &UserRecord,
        credential: Credential,
    ) -> Result<Option<SecretString>, Unavailable> {
        match super::decrypt_credential(&self.shared.keyring, user, credential) {
            Ok(key) => Ok(Some(key)),
            Err(CredentialProblem::Missing) => Ok(None),
            Err(CredentialProblem::Unreadable) => Err(Unavailable::Unreadable),
        }
    }

    /// The tenant's key, else the platform's.
    fn key_for(
        &self,
        user: &UserRecord,
        credential: Credential,
        platform: Option<&SecretString>,
    ) -> Result<(SecretString, KeySource), Unavailable> {
        if let Some(key) = self.tenant_key(user, credential)? {
            return Ok((key, KeySource::Tenant));
        }
        platform
            .map(|key| (key.clone(), KeySource::Platform))
            .ok_or_else(|| {
                Unavailable::NotConfigured(format!(
                    "store {} (PUT /api/me/credentials), or have the operator configure a \
                     platform key",
                    credential.name()
                ))
            })
    }

    /// Asks `resolved` and records the outcome on the tenant for the status endpoint.
    pub(crate) async fn complete_text(
        &self,
        user: &UserRecord,
        resolved: &ResolvedProvider,
        request: &TextRequest,
        purpose: Purpose,
    ) -> Result<TextReply, TextError> {
        let started = Instant::now();
        let outcome = self.send_text(resolved, request).await;
        let record = ProviderCallRecord {
            ok: outcome.is_ok(),
            at: DateTime::now(),
            latency_ms: started.elapsed().as_millis() as u64,
            model: resolved.model.clone(),
            purpose: purpose.as_str().to_owned(),
            error_code: outcome
                .as_ref()
                .err()
                .map(|error| error.code.as_str().to_owned()),
            error: outcome.as_ref().err().map(|error| error.message.clone()),
        };
        if let Err(err) = self
            .shared
            .storage
            .users()
            .record_text_ai_call(user.id, resolved.endpoint.provider, &record)
            .await
        {
            tracing::warn!(error = %err, "could not record the text provider's outcome");
        }
        match &outcome {
            Ok(reply) => tracing::info!(
                provider = resolved.endpoint.provider.as_str(),
                model = %resolved.model,
                purpose = purpose.as_str(),
                latency_ms = record.latency_ms,
                input_tokens = reply.usage.input_tokens,
                output_tokens = reply.usage.output_tokens,
                "text provider answered"
            ),
            Err(error) => tracing::warn!(
                provider = resolved.endpoint.provider.as_str(),
                model = %resolved.model,
                purpose = purpose.as_str(),
                code = error.code.as_str(),
                status = error.status,
                attempts = error.attempts,
                error = %error.message,
                "text provider failed"
            ),
        }
        outcome
    }

    async fn send_text(
        &self,
        resolved: &ResolvedProvider,
        request: &TextRequest,
    ) -> Result<TextReply, TextError> {
        let request = TextRequest {
            model: resolved.model.clone(),
            ..request.clone()
        };
        let policy = self.text_retry_policy();
        if resolved.tenant_url {
            let outbound = &self.shared.outbound;
            if let Err(refusal) = outbound.allow.check_url(&resolved.endpoint.base_url) {
                return Err(TextError {
                    code: TextErrorCode::RefusedAddress,
                    message: refusal.to_string(),
                    status: None,
                    retry_after: None,
                    attempts: 0,
                });
            }
            text::complete(&outbound.client, &resolved.endpoint, &request, policy).await
        } else {
            text::complete(&self.text_http, &resolved.endpoint, &request, policy).await
        }
    }

    /// Probes every provider the tenant can use with a one-word request, if its probe turn
    /// has come (`text_ai.check_interval_secs`, across instances); `Ok(None)` when it has not.
    pub(crate) async fn check_text_providers(
        &self,
        user: &UserRecord,
    ) -> Result<Option<Vec<CheckResult>>, StorageError> {
        let interval = Duration::from_secs(self.shared.settings.text_ai.check_interval_secs);
        let now = DateTime::now();
        let not_before =
            DateTime::from_millis(now.timestamp_millis() - interval.as_millis() as i64);
        if !self
            .shared
            .storage
            .users()
            .claim_text_ai_check(user.id, now, not_before)
            .await?
        {
            return Ok(None);
        }
        let probe = TextRequest {
            model: String::new(),
            system: None,
            messages: vec![ChatMessage {
                role: ChatRole::User,
                content: "Reply with the word OK.".to_owned(),
            }],
            max_tokens: 16,
            json_schema: None,
        };
        let mut results = Vec::new();
        for provider in TextProvider::ALL {
            let Ok(resolved) = self.resolve_text_provider(user, Some(provider), None) else {
                continue;
            };
            let started = Instant::now();
            let outcome = self
                .complete_text(user, &resolved, &probe, Purpose::Check)
                .await
                .map(|_| started.elapsed())
                .map_err(|error| error.to_string());
            results.push(CheckResult { provider, outcome });
        }
        Ok(Some(results))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_counts_each_tenant_apart_and_frees_places_when_requests_end() {
        let gate = TenantGate::default();
        let (one, two) = (TenantId::new(), TenantId::new());
        let first = gate.enter(one, 2).unwrap();
        let second = gate.enter(one, 2).unwrap();
        assert!(gate.enter(one, 2).is_none(), "the third waits for nobody");
        assert!(
            gate.enter(two, 2).is_some(),
            "another tenant is not affected"
        );
        drop(first);
        assert_eq!(gate.running(one), 1);
        let third = gate.enter(one, 2).unwrap();
        drop((second, third));
        assert_eq!(gate.running(one), 0);
        assert!(gate.lock().is_empty(), "idle tenants leave no entry");
    }
}
