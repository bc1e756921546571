//! Post-call analysis, on every instance:
//! - **queued** when the relay hands over a call's `call.ended` (so after
//!   `webhooks.ended_settle_ms`, with the bridge's last transcript writes in), if the call's
//!   assistant has analysis enabled and the call reached it (busy, unanswered and refused
//!   calls are not analysed); the relay empties the outbox only after, so a crash in
//!   between queues it on the next round (queuing is idempotent);
//! - **run** by a worker that claims due jobs with a lease (`analysis.lease_secs`): a lost
//!   instance's job is taken over when its lease runs out, and only the run holding the lease
//!   may store a result, so a job finishes exactly once;
//! - **stored** with its `call.analyzed` event in one update. A provider's passing failure
//!   (429, 5xx, timeout) puts the job back for `analysis.retry_delay_secs`, up to
//!   `analysis.max_runs` runs; anything else is `failed` with the reason, never a default.
//! - **re-run** on `POST /api/calls/{id}/analyze`.

use std::collections::HashMap;
use std::time::Duration;

use bson::DateTime;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::CallService;
use super::call_view::AnalysisView;
use super::text_ai::{Purpose, Unavailable};
use crate::domain::analysis::{
    AnalysisError, AnalysisSpec, AnalysisStatus, CallAnalysis, answer_schema, read_answer,
    system_prompt, user_prompt, user_turns,
};
use crate::domain::call::status::{MEDIA_STARTED, bridge_reported};
use crate::domain::ids::{CallId, TenantId};
use crate::domain::pricing::text_cost_usd;
use crate::domain::text_ai::{ChatMessage, ChatRole, Finish};
use crate::domain::time::after;
use crate::domain::webhook::{EventType, OutboxEvent, new_event_id};
use crate::providers::text::{JsonOutput, TextRequest};
use crate::storage::StorageError;
use crate::storage::call_logs::CallLogRecord;

/// The name of the structured output (OpenAI wants one).
const OUTPUT_NAME: &str = "call_analysis";

/// What a run decided.
#[derive(Debug)]
enum RunOutcome {
    /// `done`, `failed` or `skipped`: stored with its event.
    Finished(Box<CallAnalysis>),
    /// A passing failure: tried again later.
    Postponed(AnalysisError),
}

/// Why `POST /api/calls/{id}/analyze` cannot queue an analysis.
#[derive(Debug)]
pub(crate) enum ReanalyzeRefusal {
    NotFound,
    /// The call has not ended yet: its transcript is not final.
    CallLive,
    /// The call's assistant (gone, or never set) has no analysis enabled.
    NotEnabled,
    Storage(StorageError),
}

impl From<StorageError> for ReanalyzeRefusal {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::NotFound => ReanalyzeRefusal::NotFound,
            other => ReanalyzeRefusal::Storage(other),
        }
    }
}

fn error(code: &str, message: impl Into<String>) -> AnalysisError {
    AnalysisError {
        code: code.to_owned(),
        message: message.into(),
    }
}

impl CallService {
    /// The analysis settings of the call's assistant, when it has analysis enabled.
    async fn analysis_spec(
        &self,
        call: &CallLogRecord,
    ) -> Result<Option<AnalysisSpec>, StorageError> {
        let Some(assistant_id) = call.assistant_id else {
            return Ok(None);
        };
        match self
            .shared
            .storage
            .assistants()
            .get(call.user_id, assistant_id)
            .await
        {
            Ok(assistant) => Ok(assistant.spec.analysis.filter(|spec| spec.enabled)),
            Err(StorageError::NotFound) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Queues the ended call's analysis if its assistant wants one (the relay's part).
    pub(crate) async fn queue_analysis_if_enabled(
        &self,
        call: &CallLogRecord,
        now: DateTime,
    ) -> Result<(), StorageError> {
        // A call that never reached the assistant (busy, no answer, refused at the flow) has
        // nothing to analyse: it gets no analysis, and no `call.analyzed`.
        let reached_assistant =
            !call.transcript.is_empty() || bridge_reported(&call.status_history, MEDIA_STARTED);
        if call.analysis.is_some()
            || !reached_assistant
            || self.analysis_spec(call).await?.is_none()
        {
            return Ok(());
        }
        if self
            .shared
            .storage
            .call_logs()
            .queue_analysis(call.user_id, call.id, now)
            .await?
        {
            tracing::debug!(call_id = %call.id, "post-call analysis queued");
        }
        Ok(())
    }

    /// Queues the call's analysis again, replacing a finished one (a pending one is left to
    /// finish). Answers the call as it now is.
    pub(crate) async fn reanalyze(
        &self,
        tenant: TenantId,
        id: CallId,
    ) -> Result<CallLogRecord, ReanalyzeRefusal> {
        let calls = self.shared.storage.call_logs();
        let call = calls.get(tenant, id).await?;
        if !call.call_status.is_terminal() {
            return Err(ReanalyzeRefusal::CallLive);
        }
        if self.analysis_spec(&call).await?.is_none() {
            return Err(ReanalyzeRefusal::NotEnabled);
        }
        Ok(calls.requeue_analysis(tenant, id, DateTime::now()).await?)
    }

    /// Runs due analyses, at most `analysis.max_concurrent` at once, until `shutdown`; then
    /// stops the running ones and hands their jobs back at once (rather than when their lease
    /// runs out).
    pub(crate) async fn run_analysis_worker(self, shutdown: CancellationToken) {
        let settings = self.shared.settings.analysis.clone();
        let mut interval = tokio::time::interval(Duration::from_millis(settings.poll_interval_ms));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut running = JoinSet::new();
        let mut leases: HashMap<tokio::task::Id, (TenantId, CallId, String)> = HashMap::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = interval.tick() => {}
                Some(finished) = running.join_next_with_id(), if !running.is_empty() => {
                    match finished {
                        Ok((id, ())) => { leases.remove(&id); }
                        Err(join_error) => {
                            // A panic: the lease runs out and another run takes the job.
                            tracing::error!(error = %join_error, "an analysis run panicked");
                            leases.remove(&join_error.id());
                        }
                    }
                    continue;
                }
            }
            while running.len() < settings.max_concurrent {
                let now = DateTime::now();
                let lease_id = uuid::Uuid::new_v4().simple().to_string();
                let lease_until = after(now, Duration::from_secs(settings.lease_secs));
                let claimed = self
                    .shared
                    .storage
                    .call_logs()
                    .claim_analysis(now, lease_until, &lease_id)
                    .await;
                let call = match claimed {
                    Ok(Some(call)) => call,
                    Ok(None) => break,
                    Err(err) => {
                        tracing::warn!(error = %err, "could not claim an analysis; retrying next tick");
                        break;
                    }
                };
                let key = (call.user_id, call.id, lease_id.clone());
                let span = tracing::info_span!(
                    parent: None,
                    "analysis",
                    call_id = %call.id,
                    tenant_id = %call.user_id,
                );
                let service = self.clone();
                let task = running.spawn(
                    async move {
                        if let Err(err) = service.analyze_claimed(call, &lease_id).await {
                            tracing::warn!(error = %err, "analysis run failed on storage; the job is run again when its lease runs out");
                        }
                    }
                    .instrument(span),
                );
                leases.insert(task.id(), key);
            }
        }
        running.abort_all();
        while let Some(finished) = running.join_next_with_id().await {
            let id = match finished {
                Ok((id, ())) => {
                    leases.remove(&id);
                    continue;
                }
                Err(join_error) => join_error.id(),
            };
            if let Some((tenant, call, lease_id)) = leases.remove(&id) {
                let released = self
                    .shared
                    .storage
                    .call_logs()
                    .release_analysis(tenant, call, &lease_id)
                    .await;
                if let Err(err) = released {
                    tracing::warn!(call_id = %call, error = %err, "could not hand an analysis back; it is run again when its lease runs out");
                }
            }
        }
    }

    /// Runs the claimed job of `call` and stores what it decided, if `lease_id` still holds it.
    pub(crate) async fn analyze_claimed(
        &self,
        call: CallLogRecord,
        lease_id: &str,
    ) -> Result<(), StorageError> {
        let Some(job) = call.analysis.clone() else {
            return Ok(());
        };
        let calls = self.shared.storage.call_logs();
        match self.run_analysis(&call, &job).await? {
            RunOutcome::Finished(analysis) => {
                let event = OutboxEvent {
                    id: new_event_id(),
                    kind: EventType::CallAnalyzed,
                    at: DateTime::now(),
                    data: serde_json::json!({ "analysis": AnalysisView::from(analysis.as_ref()) }),
                };
                if calls
                    .finish_analysis(call.user_id, call.id, lease_id, &analysis, &event)
                    .await?
                {
                    tracing::info!(
                        status = analysis.status.as_str(),
                        success = analysis.success,
                        error = analysis.error.as_ref().map(|error| error.code.as_str()),
                        "post-call analysis stored"
                    );
                } else {
                    tracing::warn!(
                        "another run took this analysis over; this run's result is dropped"
                    );
                }
            }
            RunOutcome::Postponed(reason) => {
                let due = after(
                    DateTime::now(),
                    Duration::from_secs(self.shared.settings.analysis.retry_delay_secs),
                );
                tracing::info!(code = %reason.code, "post-call analysis postponed");
                calls
                    .postpone_analysis(call.user_id, call.id, lease_id, due, &reason)
                    .await?;
            }
        }
        Ok(())
    }

    /// Decides one run: skipped, failed, postponed, or done with the findings.
    async fn run_analysis(
        &self,
        call: &CallLogRecord,
        job: &CallAnalysis,
    ) -> Result<RunOutcome, StorageError> {
        let settings = &self.shared.settings.analysis;
        let finished = |status: AnalysisStatus, reason: Option<AnalysisError>| {
            let mut analysis = job.clone();
            analysis.status = status;
            analysis.finished_at = Some(DateTime::now());
            analysis.error = reason;
            analysis
        };
        let Some(spec) = self.analysis_spec(call).await? else {
            return Ok(RunOutcome::Finished(Box::new(finished(
                AnalysisStatus::Skipped,
                Some(error(
                    "not_enabled",
                    "the call's assistant has no analysis enabled",
                )),
            ))));
        };
        if job.attempts > settings.max_runs {
            return Ok(RunOutcome::Finished(Box::new(finished(
                AnalysisStatus::Failed,
                Some(error(
                    "too_many_runs",
                    format!(
                        "started {} times without finishing (analysis.max_runs is {})",
                        job.attempts - 1,
                        settings.max_runs
                    ),
                )),
            ))));
        }
        let spoken = user_turns(&call.transcript);
        if spoken < spec.min_user_turns as usize {
            return Ok(RunOutcome::Finished(Box::new(finished(
                AnalysisStatus::Skipped,
                Some(error(
                    "too_few_user_turns",
                    format!(
                        "the caller spoke {spoken} time(s); the assistant's min_user_turns is {}",
                        spec.min_user_turns
                    ),
                )),
            ))));
        }
        let user = self.shared.storage.users().get(call.user_id).await?;
        let resolved = match self.resolve_text_provider(&user, spec.provider, spec.model.as_deref())
        {
            Ok(resolved) => resolved,
            Err(Unavailable::NotConfigured(what)) => {
                return Ok(RunOutcome::Finished(Box::new(finished(
                    AnalysisStatus::Failed,
                    Some(error("provider_not_configured", what)),
                ))));
            }
            Err(Unavailable::Unreadable) => {
                return Ok(RunOutcome::Finished(Box::new(finished(
                    AnalysisStatus::Failed,
                    Some(error(
                        "credentials_unreadable",
                        "the provider key does not decrypt with the configured master keys",
                    )),
                ))));
            }
        };
        let request = TextRequest {
            model: resolved.model.clone(),
            system: Some(system_prompt(&spec)),
            messages: vec![ChatMessage {
                role: ChatRole::User,
                content: user_prompt(&call.transcript, settings.max_transcript_chars),
            }],
            max_tokens: settings.max_output_tokens,
            json_schema: Some(JsonOutput {
                name: OUTPUT_NAME.to_owned(),
                schema: answer_schema(&spec),
            }),
        };
        let outcome = self
            .complete_text(&user, &resolved, &request, Purpose::Analysis)
            .await;
        let mut analysis = finished(AnalysisStatus::Failed, None);
        analysis.provider = Some(resolved.endpoint.provider);
        analysis.model = Some(resolved.model.clone());
        let reply = match outcome {
            Ok(reply) => reply,
            Err(failure) if failure.code.is_transient() && job.attempts < settings.max_runs => {
                return Ok(RunOutcome::Postponed(error(
                    failure.code.as_str(),
                    failure.message,
                )));
            }
            Err(failure) => {
                analysis.error = Some(error(failure.code.as_str(), failure.message));
                return Ok(RunOutcome::Finished(Box::new(analysis)));
            }
        };
        if !reply.model.is_empty() {
            analysis.model = Some(reply.model.clone());
        }
        analysis.usage = Some(reply.usage);
        analysis.cost_usd = text_cost_usd(
            &resolved.model,
            reply.usage.input_tokens,
            reply.usage.output_tokens,
        );
        let problem = match reply.finish {
            Finish::Refused => Some(error(
                "refused",
                format!("the model refused: {}", reply.text),
            )),
            Finish::Truncated => Some(error(
                "truncated",
                format!(
                    "the answer was cut at the token cap ({}; analysis.max_output_tokens is {})",
                    reply.stop_reason, settings.max_output_tokens
                ),
            )),
            Finish::Complete => None,
        };
        if let Some(problem) = problem {
            analysis.error = Some(problem);
            return Ok(RunOutcome::Finished(Box::new(analysis)));
        }
        match read_answer(&spec, &reply.text) {
            Ok(findings) => {
                analysis.status = AnalysisStatus::Done;
                analysis.summary = Some(findings.summary);
                analysis.data = findings.data;
                analysis.success = Some(findings.success);
                analysis.success_reason = Some(findings.success_reason);
                analysis.sentiment = Some(findings.sentiment);
            }
            Err(problem) => {
                analysis.error = Some(error(problem.code(), problem.message()));
            }
        }
        Ok(RunOutcome::Finished(Box::new(analysis)))
    }
}
