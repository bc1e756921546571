//! The provider credentials a tenant can store (its OpenAI, FreJun, Anthropic, Chat
//! Completions, ElevenLabs and realtime-endpoint keys) and which one a call needs.
//!
//! Only the vocabulary and its rules live here: where a credential is kept is storage's
//! business (`storage::users::UserSecrets::credential`), how it is encrypted crypto's
//! (`crypto::TenantSecret::of`).

use super::assistant::backend::{Backend, BackendKind};

/// A provider credential a tenant can store.
// The names mirror the stored fields (`openai_api_key`…), which all end in `_api_key`.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Credential {
    OpenAiApiKey,
    FrejunApiKey,
    AnthropicApiKey,
    ChatCompletionsApiKey,
    ElevenLabsApiKey,
    RealtimeApiKey,
}

impl Credential {
    pub(crate) const ALL: [Credential; 6] = [
        Credential::OpenAiApiKey,
        Credential::FrejunApiKey,
        Credential::AnthropicApiKey,
        Credential::ChatCompletionsApiKey,
        Credential::ElevenLabsApiKey,
        Credential::RealtimeApiKey,
    ];

    /// The credential's name: the field of `PUT /api/me/credentials`, of the stored secrets,
    /// and of its encryption context.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Credential::OpenAiApiKey => "openai_api_key",
            Credential::FrejunApiKey => "frejun_api_key",
            Credential::AnthropicApiKey => "anthropic_api_key",
            Credential::ChatCompletionsApiKey => "chat_completions_api_key",
            Credential::ElevenLabsApiKey => "elevenlabs_api_key",
            Credential::RealtimeApiKey => "realtime_api_key",
        }
    }

    /// The key calls through `backend` need: the tenant's OpenAI key, its ElevenLabs key for
    /// a private agent, none for a public agent.
    pub(crate) fn for_backend(backend: &Backend) -> Option<Credential> {
        match backend.kind {
            BackendKind::OpenaiRealtime => Some(Credential::OpenAiApiKey),
            BackendKind::OpenaiCompatibleRealtime => Some(Credential::RealtimeApiKey),
            BackendKind::ElevenlabsConvai if backend.private => Some(Credential::ElevenLabsApiKey),
            BackendKind::ElevenlabsConvai => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_backend_needs_its_key() {
        let backend = |kind, private| Backend {
            kind,
            private,
            ..Backend::default()
        };
        assert_eq!(
            Credential::for_backend(&backend(BackendKind::OpenaiRealtime, false)),
            Some(Credential::OpenAiApiKey)
        );
        assert_eq!(
            Credential::for_backend(&backend(BackendKind::OpenaiCompatibleRealtime, false)),
            Some(Credential::RealtimeApiKey)
        );
        assert_eq!(
            Credential::for_backend(&backend(BackendKind::ElevenlabsConvai, true)),
            Some(Credential::ElevenLabsApiKey)
        );
        assert_eq!(
            Credential::for_backend(&backend(BackendKind::ElevenlabsConvai, false)),
            None
        );
    }
}
