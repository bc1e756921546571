//! Runs the model's tool calls off the session loop: each call is a task in the session's
//! [`JoinSet`], so audio, barge-in and heartbeats never wait for a tool, and every task ends with
//! the call's session (aborted when the session drops the set). The core decides which calls
//! run and what their results mean (`core::tools`); this module does the I/O:
//! - `end_call` waits until the assistant's goodbye has been heard (bounded), then ends the call
//!   (the session then hangs up through Teler, as for every call voxbridge ends);
//! - `transfer_call` resolves the destination id the model picked, waits likewise, and asks
//!   Teler for a cold transfer;
//! - `send_dtmf` presses the keys through Teler at once;
//! - `http` makes the signed request to the tenant's endpoint (`outbound::http_tool`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use super::core::{ToolEffect, ToolRequest, ToolResult, error_output};
use crate::calls::CallService;
use crate::calls::transfer::{TransferCall, TransferFailure, destination_target};
use crate::domain::assistant::tools::{Tool, is_valid_dtmf};
use crate::domain::call::CallStatus;
use crate::domain::call::record::ToolOutcome;
use crate::domain::ids::{CallId, TenantId};
use crate::domain::secret::SecretString;
use crate::outbound::http_tool::{self, CallContext, HttpToolCall};
use crate::outbound::signing::Signer;

/// What every tool call of one session needs, fixed when the session starts.
pub(crate) struct ToolContext {
    pub calls: CallService,
    pub tenant_id: TenantId,
    pub call_id: CallId,
    /// The assistant's tools by name.
    pub tools: HashMap<String, Tool>,
    /// The tenant's named secrets the tools reference.
    pub secrets: HashMap<String, SecretString>,
    /// `None` when the tenant has no tool signing secret (HTTP tools then refuse to run).
    pub signer: Option<Signer>,
    /// The tenant's FreJun key, for transfers and keypad tones.
    pub frejun_key: Option<SecretString>,
    /// What the tenant's endpoints are told about the call.
    pub call: CallContext,
    /// Longest wait for the assistant's last words before ending or transferring.
    pub max_speech_wait: Duration,
}

/// The session's running tool calls.
pub(crate) struct ToolRunner {
    context: Arc<ToolContext>,
    tasks: JoinSet<ToolResult>,
    handles: HashMap<String, AbortHandle>,
}

impl ToolRunner {
    pub(crate) fn new(context: ToolContext) -> Self {
        Self {
            context: Arc::new(context),
            tasks: JoinSet::new(),
            handles: HashMap::new(),
        }
    }

    /// Starts `request`; `frejun_call_id` is FreJun's id for the call, when known.
    pub(crate) fn start(&mut self, request: ToolRequest, frejun_call_id: Option<String>) {
        let context = Arc::clone(&self.context);
        let call_id = request.call_id.clone();
        let span = tracing::info_span!("tool", name = %request.name, tool_call_id = %call_id);
        let handle = self.tasks.spawn(tracing::Instrument::instrument(
            async move { run(&context, request, frejun_call_id).await },
            span,
        ));
        self.handles.insert(call_id, handle);
    }

    /// Aborts a running call (its output was already given).
    pub(crate) fn cancel(&mut self, call_id: &str) {
        if let Some(handle) = self.handles.remove(call_id) {
            handle.abort();
        }
    }

    /// Whether any call is running (the session loop polls [`ToolRunner::next`] only then).
    pub(crate) fn is_busy(&self) -> bool {
        !self.tasks.is_empty()
    }

    /// The next finished call; pending while none is running.
    pub(crate) async fn next(&mut self) -> ToolResult {
        loop {
            match self.tasks.join_next().await {
                Some(Ok(result)) => {
                    self.handles.remove(&result.call_id);
                    return result;
                }
                // Aborted (cancelled) tasks, and a panicking tool, which only loses its own
                // result: the core then records it when the call ends.
                Some(Err(err)) => {
                    if err.is_panic() {
                        tracing::error!("a tool call panicked");
                    }
                }
                None => std::future::pending::<()>().await,
            }
        }
    }
}

/// Runs one call to its result.
async fn run(
    context: &ToolContext,
    request: ToolRequest,
    frejun_call_id: Option<String>,
) -> ToolResult {
    let Some(tool) = context.tools.get(&request.name) else {
        return failed(
            &request,
            ToolOutcome::Refused,
            "unknown_tool",
            "this assistant has no such tool",
        );
    };
    let arguments: Value = if request.arguments.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        match serde_json::from_str(&request.arguments) {
            Ok(arguments) => arguments,
            Err(_) => {
                return failed(
                    &request,
                    ToolOutcome::Error,
                    "bad_arguments",
                    "the arguments are not JSON",
                );
            }
        }
    };
    match tool {
        Tool::EndCall(_) => {
            wait_until_heard(context, &request).await;
            ToolResult {
                call_id: request.call_id,
                output: r#"{"ok":true}"#.to_owned(),
                outcome: ToolOutcome::Ok,
                error_code: None,
                http_status: None,
                effect: ToolEffect::EndCall,
            }
        }
        Tool::TransferCall(_) => transfer(context, &request, &arguments, frejun_call_id).await,
        Tool::SendDtmf(_) => dtmf(context, &request, &arguments, frejun_call_id).await,
        Tool::Http(http) => {
            let Some(signer) = &context.signer else {
                return failed(
                    &request,
                    ToolOutcome::Refused,
                    "no_signing_secret",
                    "the tenant has no tool signing secret",
                );
            };
            let outbound = &context.calls.shared.outbound;
            let lookup = |name: &str| context.secrets.get(name).cloned();
            let (_, answer) = http_tool::call(
                http,
                &arguments,
                HttpToolCall {
                    client: &outbound.client,
                    allow: &outbound.allow,
                    signer,
                    secrets: &lookup,
                    tool_call_id: &request.call_id,
                    call: &context.call,
                },
            )
            .await;
            let outcome = match answer.error_code {
                None => ToolOutcome::Ok,
                Some(_) if answer.is_timeout() => ToolOutcome::Timeout,
                Some(_) => ToolOutcome::Error,
            };
            if let Some(code) = answer.error_code {
                tracing::info!(code, status = ?answer.status, "an HTTP tool failed");
            }
            ToolResult {
                call_id: request.call_id,
                output: answer.output,
                outcome,
                error_code: answer.error_code.map(str::to_owned),
                http_status: answer.status,
                effect: ToolEffect::None,
            }
        }
        Tool::Mcp(_) => failed(
            &request,
            ToolOutcome::Refused,
            "not_a_function",
            "MCP tools are run by OpenAI",
        ),
    }
}

/// Waits until the caller has heard what the assistant said before the call, at most
/// `max_speech_wait`.
async fn wait_until_heard(context: &ToolContext, request: &ToolRequest) {
    let latest = Instant::now() + context.max_speech_wait;
    let heard = Instant::from_std(request.speech_heard_at);
    tokio::time::sleep_until(heard.min(latest)).await;
}

async fn transfer(
    context: &ToolContext,
    request: &ToolRequest,
    arguments: &Value,
    frejun_call_id: Option<String>,
) -> ToolResult {
    let destination = arguments
        .get("destination_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(Tool::TransferCall(tool)) = context.tools.get(&request.name) else {
        return failed(
            request,
            ToolOutcome::Refused,
            "unknown_tool",
            "this assistant has no such tool",
        );
    };
    let Some(target) = destination_target(
        std::slice::from_ref(&context.tools[&request.name]),
        destination,
    ) else {
        let known: Vec<&str> = tool.destinations.iter().map(|d| d.id.as_str()).collect();
        return failed(
            request,
            ToolOutcome::Error,
            "unknown_destination",
            &format!("destination_id must be one of: {}", known.join(", ")),
        );
    };
    let (Some(frejun_call_id), Some(frejun_key)) = (frejun_call_id, &context.frejun_key) else {
        return failed(
            request,
            ToolOutcome::Error,
            "transfer_unavailable",
            "the call cannot be transferred now (FreJun has not named it, or no FreJun key is stored)",
        );
    };
    wait_until_heard(context, request).await;
    let call = TransferCall {
        tenant_id: context.tenant_id,
        call_id: context.call_id,
        status: CallStatus::InProgress,
        frejun_call_id: &frejun_call_id,
        frejun_key,
    };
    let idempotency_key = format!("voxbridge-transfer-{}-{}", context.call_id, request.call_id);
    match context
        .calls
        .transfer_live(&call, &target, &idempotency_key, "tool.transfer_call")
        .await
    {
        Ok(_) => transferred(request, destination),
        Err(TransferFailure::Storage(err)) => {
            // FreJun is moving the call; only our record of it failed (the stream's end will
            // still record it).
            tracing::warn!(error = %err, "the transfer started but could not be recorded");
            transferred(request, destination)
        }
        Err(TransferFailure::Teler(err)) => {
            tracing::warn!(error = %err, "FreJun refused the transfer");
            failed(
                request,
                ToolOutcome::Error,
                "transfer_failed",
                "the transfer could not be started; apologise and carry on",
            )
        }
    }
}

fn transferred(request: &ToolRequest, destination: &str) -> ToolResult {
    ToolResult {
        call_id: request.call_id.clone(),
        output: serde_json::json!({"ok": true, "destination_id": destination}).to_string(),
        outcome: ToolOutcome::Ok,
        error_code: None,
        http_status: None,
        effect: ToolEffect::Transferred,
    }
}

async fn dtmf(
    context: &ToolContext,
    request: &ToolRequest,
    arguments: &Value,
    frejun_call_id: Option<String>,
) -> ToolResult {
    let digits = arguments
        .get("digits")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !is_valid_dtmf(digits) {
        return failed(
            request,
            ToolOutcome::Error,
            "bad_digits",
            "digits must be 1 to 32 of 0-9, * and #",
        );
    }
    let (Some(frejun_call_id), Some(frejun_key)) = (frejun_call_id, &context.frejun_key) else {
        return failed(
            request,
            ToolOutcome::Error,
            "dtmf_unavailable",
            "keys cannot be pressed now (FreJun has not named the call, or no FreJun key is stored)",
        );
    };
    let idempotency_key = format!("voxbridge-dtmf-{}-{}", context.call_id, request.call_id);
    match context
        .calls
        .teler
        .send_dtmf(frejun_key, &frejun_call_id, digits, &idempotency_key)
        .await
    {
        Ok(()) => ToolResult {
            call_id: request.call_id.clone(),
            output: serde_json::json!({"ok": true, "digits": digits}).to_string(),
            outcome: ToolOutcome::Ok,
            error_code: None,
            http_status: None,
            effect: ToolEffect::None,
        },
        Err(err) => {
            tracing::warn!(error = %err, "FreJun refused the keypad tones");
            failed(
                request,
                ToolOutcome::Error,
                "dtmf_failed",
                "the keys could not be pressed",
            )
        }
    }
}

fn failed(request: &ToolRequest, outcome: ToolOutcome, code: &str, message: &str) -> ToolResult {
    ToolResult {
        call_id: request.call_id.clone(),
        output: error_output(code, message),
        outcome,
        error_code: Some(code.to_owned()),
        http_status: None,
        effect: ToolEffect::None,
    }
}
