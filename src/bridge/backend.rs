//! The voice AI of one call: from the assistant's `backend`, the protocol the core drives and
//! the future that opens its socket (OpenAI Realtime with the tenant's key; an ElevenLabs agent
//! by id, or through a signed URL fetched with the tenant's ElevenLabs key for a private one).

use std::future::Future;
use std::pin::Pin;

use serde_json::{Value, json};

use super::Bridge;
use super::admission::Admitted;
use crate::domain::assistant::backend::BackendKind;
use crate::outbound::socket::{SocketError, connect_checked};
use crate::providers::elevenlabs::client::AgentRef;
use crate::providers::elevenlabs::{ConvaiProtocol, Initiation};
use crate::providers::openai::{OpenAiProtocol, RealtimeClient, RealtimeSocket, SessionConfig};
use crate::providers::realtime::{ConnectFailure, RealtimeProtocol};

/// Opening the AI's socket.
pub(super) type Connecting =
    Pin<Box<dyn Future<Output = Result<RealtimeSocket, ConnectFailure>> + Send>>;

/// The call's voice AI, not yet connected.
pub(super) struct VoiceAi {
    pub protocol: Box<dyn RealtimeProtocol>,
    pub connecting: Connecting,
    /// The model, for pricing (`elevenlabs_convai` for an agent: not priced by tokens).
    pub model: String,
}

impl Bridge {
    /// The voice AI of `admitted`'s assistant; `session` is OpenAI's configuration (tools
    /// authorised), `model` OpenAI's model.
    pub(super) fn voice_ai(
        &self,
        admitted: &Admitted,
        session: SessionConfig,
        model: String,
    ) -> VoiceAi {
        let spec = &admitted.assistant.spec;
        let key = admitted.ai_key.clone();
        match spec.backend.kind {
            BackendKind::OpenaiRealtime => {
                let openai = self.openai.clone();
                let socket_model = model.clone();
                VoiceAi {
                    protocol: Box::new(OpenAiProtocol::new(session)),
                    connecting: Box::pin(async move {
                        let key = key.ok_or_else(|| ConnectFailure {
                            code: "openai_key_unusable",
                            message: "the tenant's OpenAI API key is missing".into(),
                        })?;
                        Ok(openai.connect(&key, &socket_model).await?)
                    }),
                    model,
                }
            }
            BackendKind::OpenaiCompatibleRealtime => {
                let endpoint = admitted.user.realtime_base_url.clone();
                let allow = std::sync::Arc::clone(&self.shared.outbound.allow);
                let timeout = self.shared.settings.openai.connect_timeout();
                let socket_model = model.clone();
                VoiceAi {
                    protocol: Box::new(OpenAiProtocol::new(session)),
                    connecting: Box::pin(async move {
                        let (key, url) = key
                            .zip(endpoint.and_then(|text| url::Url::parse(&text).ok()))
                            .ok_or_else(|| ConnectFailure {
                                code: "realtime_endpoint_missing",
                                message: "the tenant has no realtime_base_url and \
                                          realtime_api_key"
                                    .into(),
                            })?;
                        // The tenant's own address: checked at every connect, not only when
                        // it was saved, since the name may resolve elsewhere now.
                        let stream = tokio::time::timeout(timeout, connect_checked(&allow, &url))
                            .await
                            .map_err(|_| ConnectFailure {
                                code: "realtime_endpoint_timeout",
                                message: "connecting to the tenant's realtime endpoint timed out"
                                    .into(),
                            })?
                            .map_err(endpoint_failure)?;
                        let client = RealtimeClient::new(url, timeout);
                        Ok(client.connect_over(stream, &key, &socket_model).await?)
                    }),
                    model,
                }
            }
            BackendKind::ElevenlabsConvai => {
                let client = self.elevenlabs.clone();
                let http = self.elevenlabs_http.clone();
                let agent_id = spec.backend.agent_id.clone().unwrap_or_default();
                let private = spec.backend.private;
                VoiceAi {
                    protocol: Box::new(ConvaiProtocol::new(
                        initiation(admitted),
                        spec.audio.inbound_rate.hz(),
                    )),
                    connecting: Box::pin(async move {
                        let agent = AgentRef {
                            agent_id: &agent_id,
                            private,
                        };
                        Ok(client.connect(&http, agent, key.as_ref()).await?)
                    }),
                    model: BackendKind::ElevenlabsConvai.as_str().to_owned(),
                }
            }
        }
    }
}

/// Our code for a tenant endpoint we would not or could not connect to.
fn endpoint_failure(error: SocketError) -> ConnectFailure {
    let code = match error {
        SocketError::Refused(_) => "realtime_endpoint_refused",
        SocketError::Unreachable { .. } => "realtime_endpoint_unreachable",
    };
    ConnectFailure {
        code,
        message: error.to_string(),
    }
}

/// What an ElevenLabs conversation starts with: the assistant's greeting, instructions,
/// language and voice as overrides (applied only where the agent allows them), the tenant's
/// dynamic variables, and the call's own (`caller_number`, `called_number`, `call_id`,
/// `direction`), which also let ElevenLabs' records be matched to ours.
fn initiation(admitted: &Admitted) -> Initiation {
    let spec = &admitted.assistant.spec;
    let call = &admitted.call;
    let mut dynamic_variables = spec.backend.dynamic_variables.clone();
    let text = |value: &Option<String>| json!(value.clone().unwrap_or_default());
    dynamic_variables.insert("caller_number".into(), text(&call.from_number));
    dynamic_variables.insert("called_number".into(), text(&call.to_number));
    dynamic_variables.insert("call_id".into(), Value::String(call.id.to_string()));
    dynamic_variables.insert(
        "direction".into(),
        Value::String(call.call_type.as_str().to_owned()),
    );
    Initiation {
        first_message: spec.greeting.clone(),
        prompt: Some(spec.instructions.clone()).filter(|prompt| !prompt.trim().is_empty()),
        language: spec.language.clone(),
        voice_id: spec.backend.voice_id.clone(),
        dynamic_variables,
    }
}
