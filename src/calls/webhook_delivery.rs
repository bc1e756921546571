//! Tenants' webhook events on their way out, on every instance:
//! - the **relay** moves events from call logs' outboxes (written in the same update as the
//!   change that caused them) into one delivery per endpoint that wants them, then empties the
//!   outbox. Handing `call.ended` over also queues the call's post-call analysis
//!   ([`super::analysis`]) when its assistant wants one. A crash in between writes the same deliveries again (they are keyed by event and
//!   endpoint), so an event is never lost and never doubled. `call.ended` waits
//!   `webhooks.ended_settle_ms` after the call ended, so that the bridge's last writes
//!   (transcript, usage, metrics) are in the record it carries.
//! - the **delivery worker** claims due deliveries with a lease (any instance may, and a dead
//!   instance's claims expire), makes one attempt ([`crate::outbound::delivery`]) and records
//!   it: delivered; retried on the `webhooks.retry_schedule_secs` schedule (with jitter, and
//!   no sooner than the endpoint's `Retry-After`); given up after the schedule, on a final
//!   answer, or on 410, which also disables the endpoint.

use std::time::Duration;

use bson::DateTime;
use rand::Rng as _;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::CallService;
use super::call_view::{CallDetail, CallSummary};
use crate::domain::ids::WebhookDeliveryId;
use crate::domain::time::after;
use crate::domain::webhook::{EventBody, EventType, OutboxEvent};
use crate::outbound::delivery::{self, Attempt, Delivery, Verdict};
use crate::storage::StorageError;
use crate::storage::call_logs::CallLogRecord;
use crate::storage::webhook_deliveries::{AttemptRecord, DeliveryStatus, WebhookDeliveryRecord};
use crate::telemetry::metrics;

/// Call logs the relay reads per round.
const RELAY_BATCH: i64 = 50;
/// Deliveries one round attempts at most, so the relay runs between them.
const DELIVERIES_PER_ROUND: usize = 50;

/// The body an event is delivered with. Every event carries the call (`data.call`); `call.ended`
/// carries it whole, exactly as `GET /api/calls/{id}` shows it.
fn event_body(call: &CallLogRecord, event: &OutboxEvent) -> EventBody {
    let call_view = match event.kind {
        EventType::CallEnded => serde_json::to_value(CallDetail::from(call)),
        _ => serde_json::to_value(CallSummary::from(call)),
    }
    .expect("views serialize");
    let mut data = match &event.data {
        Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    data.insert("call".to_owned(), call_view);
    EventBody {
        id: event.id.clone(),
        kind: event.kind,
        timestamp: event
            .at
            .to_chrono()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        data: Value::Object(data),
    }
}

impl CallService {
    /// Relays and delivers until `shutdown`, every `webhooks.poll_interval_ms`.
    pub(crate) async fn run_webhook_worker(self, shutdown: CancellationToken) {
        let poll = Duration::from_millis(self.shared.settings.webhooks.poll_interval_ms);
        let mut interval = tokio::time::interval(poll);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = interval.tick() => {}
            }
            if let Err(err) = self.relay_outbox(DateTime::now()).await {
                tracing::warn!(error = %err, "webhook relay failed; retrying next tick");
            }
            for _ in 0..DELIVERIES_PER_ROUND {
                if shutdown.is_cancelled() {
                    return;
                }
                match self.deliver_due(DateTime::now()).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(err) => {
                        tracing::warn!(error = %err, "webhook delivery failed; retrying next tick");
                        break;
                    }
                }
            }
        }
    }

    /// One round of the relay; answers how many events it handed over.
    pub(crate) async fn relay_outbox(&self, now: DateTime) -> Result<usize, StorageError> {
        let storage = &self.shared.storage;
        let settle = Duration::from_millis(self.shared.settings.webhooks.ended_settle_ms);
        let mut handed = 0;
        for call in storage.call_logs().with_outbox(RELAY_BATCH).await? {
            let endpoints = storage.webhook_endpoints().enabled(call.user_id).await?;
            let mut done = Vec::new();
            for event in &call.outbox {
                if event.kind == EventType::CallEnded {
                    if after(event.at, settle) > now {
                        continue;
                    }
                    // The outbox's other consumer: queued before the event leaves it.
                    self.queue_analysis_if_enabled(&call, now).await?;
                }
                let body =
                    serde_json::to_string(&event_body(&call, event)).expect("an event serializes");
                for endpoint in endpoints.iter().filter(|e| e.spec.wants(event.kind)) {
                    let delivery = WebhookDeliveryRecord {
                        id: WebhookDeliveryId::new(),
                        key: format!("{}:{}", event.id, endpoint.id),
                        event_id: event.id.clone(),
                        event_type: event.kind,
                        user_id: call.user_id,
                        endpoint_id: endpoint.id,
                        call_id: Some(call.id),
                        body: body.clone(),
                        status: DeliveryStatus::Pending,
                        next_attempt_at: now,
                        lease_until: None,
                        attempts: Vec::new(),
                        expires_at: None,
                        created_at: now,
                    };
                    storage.webhook_deliveries().insert_once(&delivery).await?;
                }
                done.push(event.id.clone());
            }
            if !done.is_empty() {
                handed += done.len();
                storage
                    .call_logs()
                    .pull_outbox(call.user_id, call.id, &done)
                    .await?;
            }
        }
        Ok(handed)
    }

    /// Claims one due delivery and attempts it; answers whether there was one.
    pub(crate) async fn deliver_due(&self, now: DateTime) -> Result<bool, StorageError> {
        let settings = &self.shared.settings.webhooks;
        let timeout = Duration::from_millis(settings.attempt_timeout_ms);
        let storage = &self.shared.storage;
        let deliveries = storage.webhook_deliveries();
        // The lease outlives the attempt, so no other instance takes the delivery meanwhile.
        let lease_until = after(now, timeout + Duration::from_secs(30));
        let Some(claimed) = deliveries.claim_due(now, lease_until).await? else {
            return Ok(false);
        };
        let retention = Duration::from_secs(settings.retention_days * 86_400);
        // Gives the delivery up without an attempt, saying why.
        let give_up = |error: &'static str| {
            let attempt = AttemptRecord {
                at: now,
                status: None,
                latency_ms: 0,
                error: Some(error.to_owned()),
                response: String::new(),
            };
            let deliveries = deliveries.clone();
            async move {
                deliveries
                    .record_attempt(
                        claimed.id,
                        &attempt,
                        DeliveryStatus::Failed,
                        None,
                        Some(after(now, retention)),
                    )
                    .await
                    .map(|()| true)
            }
        };
        let endpoint = match storage
            .webhook_endpoints()
            .get(claimed.user_id, claimed.endpoint_id)
            .await
        {
            Ok(endpoint) if endpoint.spec.enabled => endpoint,
            Ok(_) | Err(StorageError::NotFound) => {
                return give_up("the endpoint was disabled or deleted").await;
            }
            Err(err) => return Err(err),
        };
        let Some(signer) = self.endpoint_signer(&endpoint) else {
            return give_up(
                "the endpoint's secret does not decrypt with the configured master keys",
            )
            .await;
        };
        let outbound = &self.shared.outbound;
        let attempt = delivery::attempt(Delivery {
            client: &outbound.client,
            allow: &outbound.allow,
            url: &endpoint.spec.url,
            signer: &signer,
            event_id: &claimed.event_id,
            body: claimed.body.as_bytes(),
            timeout,
        })
        .await;
        metrics::webhook_delivery(match attempt.verdict {
            Verdict::Delivered => "delivered",
            Verdict::Retry { .. } => "retry",
            Verdict::Gone => "gone",
            Verdict::Rejected => "rejected",
        });
        let record = attempt_record(&attempt, now);
        self.track_failures(&endpoint, attempt.verdict == Verdict::Delivered)
            .await?;
        let number = claimed.attempts.len() + 1;
        let finished = Some(after(DateTime::now(), retention));
        match attempt.verdict {
            Verdict::Delivered => {
                deliveries
                    .record_attempt(
                        claimed.id,
                        &record,
                        DeliveryStatus::Delivered,
                        None,
                        finished,
                    )
                    .await?;
            }
            Verdict::Retry { after: at_least } => match self.retry_delay(number) {
                Some(delay) => {
                    let delay = at_least.map_or(delay, |at_least| delay.max(at_least));
                    let next = after(DateTime::now(), delay);
                    deliveries
                        .record_attempt(
                            claimed.id,
                            &record,
                            DeliveryStatus::Pending,
                            Some(next),
                            None,
                        )
                        .await?;
                }
                None => {
                    deliveries
                        .record_attempt(claimed.id, &record, DeliveryStatus::Failed, None, finished)
                        .await?;
                }
            },
            Verdict::Gone => {
                deliveries
                    .record_attempt(claimed.id, &record, DeliveryStatus::Failed, None, finished)
                    .await?;
                storage
                    .webhook_endpoints()
                    .disable(
                        endpoint.user_id,
                        endpoint.id,
                        "the endpoint answered 410 Gone",
                        DateTime::now(),
                    )
                    .await?;
                tracing::info!(endpoint_id = %endpoint.id, "webhook endpoint disabled: it answered 410");
            }
            Verdict::Rejected => {
                deliveries
                    .record_attempt(claimed.id, &record, DeliveryStatus::Failed, None, finished)
                    .await?;
            }
        }
        Ok(true)
    }

    /// Notes whether the endpoint took the event; one that has failed every attempt for
    /// `webhooks.disable_after_failing_secs` is disabled, saying why.
    async fn track_failures(
        &self,
        endpoint: &crate::storage::webhook_endpoints::WebhookEndpointRecord,
        delivered: bool,
    ) -> Result<(), StorageError> {
        let endpoints = self.shared.storage.webhook_endpoints();
        let now = DateTime::now();
        let Some(current) = endpoints
            .record_outcome(endpoint.user_id, endpoint.id, delivered, now)
            .await?
        else {
            return Ok(());
        };
        let limit = Duration::from_secs(self.shared.settings.webhooks.disable_after_failing_secs);
        if let Some(since) = current.failing_since {
            if current.spec.enabled && after(since, limit) <= now {
                endpoints
                    .disable(
                        endpoint.user_id,
                        endpoint.id,
                        &format!(
                            "every delivery failed for {} s (since {})",
                            limit.as_secs(),
                            since.to_chrono().to_rfc3339()
                        ),
                        now,
                    )
                    .await?;
                tracing::info!(endpoint_id = %endpoint.id, "webhook endpoint disabled: it kept failing");
            }
        }
        Ok(())
    }

    /// The wait before attempt `number + 1`, jittered by up to a tenth either way; `None` once
    /// the schedule is exhausted.
    fn retry_delay(&self, number: usize) -> Option<Duration> {
        let schedule = self.shared.settings.webhooks.retry_schedule();
        let base = *schedule.get(number - 1)?;
        let jitter = rand::rng().random_range(0.9..=1.1);
        Some(base.mul_f64(jitter))
    }
}

fn attempt_record(attempt: &Attempt, at: DateTime) -> AttemptRecord {
    AttemptRecord {
        at,
        status: attempt.status.map(i32::from),
        latency_ms: attempt.latency.as_millis() as i64,
        error: attempt.error.clone(),
        response: attempt.response.clone(),
    }
}
