//! Tenants' webhook endpoints: creating one (with its signing secret, shown once), rotating
//! the secret with an overlap, the secrets that sign its deliveries now, and a `ping` sent on
//! request to show the tenant what its endpoint answers.
//!
//! Events about calls are not delivered yet: the outbox written with each call-log change and
//! the delivery workers that retry come next (see the webhooks issue); `ping` goes through the
//! same attempt ([`crate::outbound::delivery`]) those workers will use.

use std::time::Duration;

use bson::DateTime;

use super::CallService;
use crate::crypto::webhook_endpoint_context;
use crate::domain::ids::WebhookEndpointId;
use crate::domain::secret::last4;
use crate::domain::time::after;
use crate::domain::validation::ValidationError;
use crate::domain::webhook::{EndpointSpec, EventBody, EventType, new_event_id};
use crate::outbound::delivery::{self, Attempt, Delivery};
use crate::outbound::signing::{Signer, SigningSecret};
use crate::storage::StorageError;
use crate::storage::users::{StoredCredential, UserRecord};
use crate::storage::webhook_endpoints::{self, WebhookEndpointRecord};

/// Why an endpoint could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EndpointError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl CallService {
    /// The URL must be one the operator's policy lets us reach (https, or an allow-listed
    /// host), checked when saved as well as at every attempt.
    fn check_endpoint_url(&self, spec: &EndpointSpec) -> Result<(), ValidationError> {
        let url = url::Url::parse(&spec.url)
            .map_err(|_| ValidationError::new("url", "must be an absolute https URL"))?;
        self.shared
            .outbound
            .allow
            .check_url(&url)
            .map_err(|refusal| ValidationError::new("url", refusal.to_string()))
    }

    fn stored_endpoint_secret(
        &self,
        tenant: &UserRecord,
        id: WebhookEndpointId,
        secret: &SigningSecret,
        now: DateTime,
    ) -> StoredCredential {
        let encrypted = self
            .shared
            .keyring
            .encrypt(secret.expose(), &webhook_endpoint_context(tenant.id, id));
        StoredCredential::new(encrypted, last4(secret.expose()), now)
    }

    /// Creates the endpoint; answers it and its signing secret (to show once).
    pub(crate) async fn create_endpoint(
        &self,
        tenant: &UserRecord,
        spec: EndpointSpec,
    ) -> Result<(WebhookEndpointRecord, SigningSecret), EndpointError> {
        self.check_endpoint_url(&spec)?;
        let id = WebhookEndpointId::new();
        let secret = SigningSecret::generate();
        let now = DateTime::now();
        let record = WebhookEndpointRecord {
            id,
            user_id: tenant.id,
            spec,
            secret: self.stored_endpoint_secret(tenant, id, &secret, now),
            previous_secret: None,
            previous_secret_expires_at: None,
            disabled_reason: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
            schema_version: webhook_endpoints::SCHEMA_VERSION,
        };
        self.shared
            .storage
            .webhook_endpoints()
            .insert(&record)
            .await?;
        Ok((record, secret))
    }

    /// Replaces the endpoint's configuration (already merged and validated).
    pub(crate) async fn update_endpoint(
        &self,
        tenant: &UserRecord,
        id: WebhookEndpointId,
        spec: &EndpointSpec,
    ) -> Result<WebhookEndpointRecord, EndpointError> {
        self.check_endpoint_url(spec)?;
        Ok(self
            .shared
            .storage
            .webhook_endpoints()
            .replace_spec(tenant.id, id, spec, DateTime::now())
            .await?)
    }

    /// A new signing secret; the old one keeps signing for `webhooks.secret_overlap_secs`.
    /// Answers the new secret (to show once) and when the old one stops.
    pub(crate) async fn rotate_endpoint_secret(
        &self,
        tenant: &UserRecord,
        id: WebhookEndpointId,
    ) -> Result<(SigningSecret, DateTime), StorageError> {
        let endpoints = self.shared.storage.webhook_endpoints();
        let endpoint = endpoints.get(tenant.id, id).await?;
        let secret = SigningSecret::generate();
        let now = DateTime::now();
        let overlap = Duration::from_secs(self.shared.settings.webhooks.secret_overlap_secs);
        let previous_until = after(now, overlap);
        let fresh = self.stored_endpoint_secret(tenant, id, &secret, now);
        endpoints
            .rotate_secret(&endpoint, &fresh, previous_until, now)
            .await?;
        Ok((secret, previous_until))
    }

    /// The secrets that sign deliveries to `endpoint` now: its own, and the previous one while
    /// its overlap lasts. `None` when the stored secret does not decrypt (wrong master key).
    pub(crate) fn endpoint_signer(&self, endpoint: &WebhookEndpointRecord) -> Option<Signer> {
        let context = webhook_endpoint_context(endpoint.user_id, endpoint.id);
        self.signer(
            |encrypted| self.shared.keyring.decrypt(encrypted, &context),
            &endpoint.secret,
            endpoint.previous_secret.as_ref(),
            endpoint.previous_secret_expires_at,
        )
    }

    /// Sends `endpoint` a `ping` event now (whether or not it is enabled) and answers the event
    /// and the attempt.
    pub(crate) async fn ping_endpoint(
        &self,
        endpoint: &WebhookEndpointRecord,
    ) -> Result<(EventBody, Attempt), StorageError> {
        let signer = self.endpoint_signer(endpoint).ok_or_else(|| {
            StorageError::Unavailable(format!(
                "webhook endpoint {}: its secret does not decrypt with the configured master keys",
                endpoint.id
            ))
        })?;
        let event = EventBody {
            id: new_event_id(),
            kind: EventType::Ping,
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            data: serde_json::json!({
                "endpoint_id": endpoint.id.to_string(),
                "message": "a test event from voxbridge",
            }),
        };
        let body = serde_json::to_vec(&event).expect("an event serializes");
        let outbound = &self.shared.outbound;
        let attempt = delivery::attempt(Delivery {
            client: &outbound.client,
            allow: &outbound.allow,
            url: &endpoint.spec.url,
            signer: &signer,
            event_id: &event.id,
            body: &body,
            timeout: Duration::from_millis(self.shared.settings.webhooks.attempt_timeout_ms),
        })
        .await;
        Ok((event, attempt))
    }
}
