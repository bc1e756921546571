//! Every error code the HTTP API answers with, in one table: the stable string a program matches
//! on, the HTTP status it always comes with, and what it means. `docs/api.md`'s "Error codes"
//! table is checked against [`ErrorCode::ALL`] by a test, so the two cannot drift apart.
//!
//! A code may appear under two statuses (`invalid_body` is 400 when the body cannot be read at
//! all and 422 when it reads but has the wrong shape); each such pair is its own variant, so the
//! status is never chosen at the call site.

use actix_web::http::StatusCode;

/// Declares [`ErrorCode`] from one list of rows, so the enum, [`ErrorCode::ALL`] and each
/// variant's code, status and meaning cannot disagree.
macro_rules! error_codes {
    ($($variant:ident => ($code:literal, $status:literal, $meaning:literal),)+) => {
        /// One row of the error-code table. See the module docs.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)+
        }

        impl ErrorCode {
            /// Every code, in the order `docs/api.md` lists them (by status).
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The row: stable code, status, and when it is answered.
            const fn row(self) -> (&'static str, u16, &'static str) {
                match self {
                    $(ErrorCode::$variant => ($code, $status, $meaning),)+
                }
            }
        }
    };
}

error_codes! {
    InvalidJson => ("invalid_json", 400, "the body is not valid JSON"),
    InvalidQuery => ("invalid_query", 400, "a query-string parameter cannot be parsed (or is unknown)"),
    InvalidPath => ("invalid_path", 400, "a path parameter cannot be parsed"),
    InvalidCursor => ("invalid_cursor", 400, "`cursor` is not one this API returned"),
    UnreadableBody => ("invalid_body", 400, "the body could not be read, or a FreJun flow request is neither JSON nor form-encoded"),
    NotAWebsocket => ("not_a_websocket", 400, "the media-stream URL was requested without a WebSocket upgrade"),
    BadRequest => ("bad_request", 400, "any other malformed request the HTTP framework refused"),
    InvalidFrejunKey => ("invalid_frejun_key", 401, "a FreJun request without the tenant's URL secret `key`, or with another tenant's"),
    Unauthorized => ("unauthorized", 401, "missing or malformed credentials, or a wrong admin or metrics token"),
    InvalidApiKey => ("invalid_api_key", 401, "an unknown tenant API key"),
    ApiKeyRevoked => ("api_key_revoked", 401, "a revoked tenant API key"),
    InvalidMediaToken => ("invalid_media_token", 401, "the media-stream token is missing, forged, expired or for another call"),
    TenantSuspended => ("tenant_suspended", 403, "the tenant is suspended"),
    Forbidden => ("forbidden", 403, "refused by the HTTP framework"),
    NotFound => ("not_found", 404, "no such route, or no such resource (also for another tenant's resource)"),
    NoRecording => ("no_recording", 404, "the call has no recording (FreJun sent none, or the assistant does not record)"),
    MethodNotAllowed => ("method_not_allowed", 405, "the path exists but not with this method"),
    RequestTimeout => ("request_timeout", 408, "the request was not received in time"),
    EmailTaken => ("email_taken", 409, "another tenant has this email"),
    PhoneNumberTaken => ("phone_number_taken", 409, "the number is registered already (by whom is not said)"),
    AssistantInUse => ("assistant_in_use", 409, "the assistant still has phone numbers assigned"),
    Conflict => ("conflict", 409, "any other unique-field conflict"),
    CallNotLive => ("call_not_live", 409, "hang-up or live control of a call that is over or not bridged by any instance, or a second media stream"),
    CallNotPlaced => ("call_not_placed", 409, "hang-up of an outbound call FreJun has not named yet"),
    SigningSecretRequired => ("signing_secret_required", 409, "an assistant with an `http` tool, or a tool test, needs the tenant's tool signing secret: `POST /api/me/tool-signing-secret/rotate` first"),
    TooManySecrets => ("too_many_secrets", 409, "the tenant already stores 50 named secrets"),
    TextAiNotConfigured => ("text_ai_not_configured", 409, "the text provider asked for has no key (the tenant's or the platform's) or no model; the message says what to set"),
    AnalysisNotEnabled => ("analysis_not_enabled", 409, "`POST /api/calls/{id}/analyze` for a call whose assistant has no `analysis` enabled"),
    CallStillLive => ("call_still_live", 409, "`POST /api/calls/{id}/analyze` for a call that has not ended"),
    LengthRequired => ("length_required", 411, "the body needs a Content-Length"),
    PayloadTooLarge => ("payload_too_large", 413, "the body exceeds `server.json_body_limit_bytes` (1 MiB by default)"),
    UriTooLong => ("uri_too_long", 414, "the request line is too long"),
    UnsupportedMediaType => ("unsupported_media_type", 415, "a JSON endpoint got another `Content-Type`"),
    InvalidBody => ("invalid_body", 422, "valid JSON of the wrong shape: unknown field, wrong type, missing field; the message names the field"),
    CallerUrlsNotSupported => ("caller_urls_not_supported", 422, "`POST /api/calls/initiate` got a `flow_url` or `status_callback_url`: voxbridge always uses its own"),
    ValidationFailed => ("validation_failed", 422, "a value breaks a rule; the message starts with the field's path"),
    ToolNotTestable => ("tool_not_testable", 422, "only `http` tools can be run by `POST /api/assistants/{id}/tools/{name}/test`"),
    MissingCredentials => ("missing_credentials", 422, "the call needs a provider key the tenant has not stored"),
    CallRefused => ("call_refused", 422, "the media stream's call can no longer be bridged (tenant, assistant or key gone)"),
    FrejunKeyInvalid => ("frejun_key_invalid", 422, "FreJun refused the tenant's FreJun API key"),
    FromNumberNotProvisioned => ("from_number_not_provisioned", 422, "FreJun says the number is not provisioned on the tenant's account"),
    TelephonyValidationFailed => ("telephony_validation_failed", 422, "FreJun refused the request"),
    ConcurrencyLimit => ("concurrency_limit", 429, "the tenant already has `max_concurrent_calls` live calls"),
    TelephonyRateLimited => ("telephony_rate_limited", 429, "FreJun is rate limiting the tenant"),
    RateLimited => ("rate_limited", 429, "the credential's or the client's rate limit refused the request; wait `Retry-After` seconds (see operations.md, \"Rate limits\")"),
    HeadersTooLarge => ("headers_too_large", 431, "more than `server.max_headers` headers or `server.max_header_bytes` bytes of them"),
    CredentialsUnreadable => ("credentials_unreadable", 500, "a stored secret does not decrypt with the configured master key (fails closed)"),
    InternalError => ("internal_error", 500, "a bug; quote the `x-request-id`"),
    TelephonyUnavailable => ("telephony_unavailable", 502, "FreJun is down or answered something unexpected"),
    TelephonyRejected => ("telephony_rejected", 502, "FreJun refused the request in a way the tenant cannot fix (not found, conflict)"),
    AiProviderAuthFailed => ("ai_provider_auth_failed", 502, "the text provider refused the key (the tenant's, or the platform's): store a valid one"),
    AiProviderRejected => ("ai_provider_rejected", 502, "the text provider refused the request (an unknown model, a base URL voxbridge may not reach…) or answered something unreadable"),
    DatabaseUnavailable => ("database_unavailable", 503, "MongoDB is unreachable; retry later"),
    ShuttingDown => ("shutting_down", 503, "this instance is stopping (from `/ready`)"),
    Draining => ("draining", 503, "this instance is draining after SIGTERM: `/ready` says so, and a FreJun flow or media stream is refused so that another instance takes it (`Retry-After`)"),
    ServiceUnavailable => ("service_unavailable", 503, "refused by the HTTP framework while overloaded"),
    AiProviderUnavailable => ("ai_provider_unavailable", 503, "the text provider kept rate limiting or failing (5xx, no connection) through the retries; `Retry-After` when it said how long"),
    TelephonyTimeout => ("telephony_timeout", 504, "FreJun did not answer in time (the call may still be placed; it is hung up if it connects)"),
    GatewayTimeout => ("gateway_timeout", 504, "an upstream did not answer in time"),
    OwnerNotResponding => ("owner_not_responding", 504, "live control of a call bridged by another instance that did not answer within `cluster.command_timeout_ms`; the request was withdrawn"),
    AiProviderTimeout => ("ai_provider_timeout", 504, "the text provider did not answer within `text_ai.timeout_ms`, through the retries"),
}

use ErrorCode::*;

impl ErrorCode {
    /// The stable snake_case code clients match on.
    pub const fn as_str(self) -> &'static str {
        self.row().0
    }

    /// The HTTP status this code is always answered with.
    pub fn status(self) -> StatusCode {
        StatusCode::from_u16(self.row().1).expect("the table holds valid status codes")
    }

    /// When the code is answered, as `docs/api.md` says.
    pub const fn description(self) -> &'static str {
        self.row().2
    }

    /// The code for an error answer that did not come from our handlers (the framework's own
    /// refusals), so even those carry a code from this table.
    pub(crate) fn for_framework_status(status: u16) -> ErrorCode {
        match status {
            401 => Unauthorized,
            403 => Forbidden,
            404 => NotFound,
            405 => MethodNotAllowed,
            408 => RequestTimeout,
            409 => Conflict,
            411 => LengthRequired,
            413 => PayloadTooLarge,
            414 => UriTooLong,
            415 => UnsupportedMediaType,
            422 => InvalidBody,
            429 => RateLimited,
            431 => HeadersTooLarge,
            503 => ServiceUnavailable,
            504 => GatewayTimeout,
            // 400 and any other client error.
            400..=499 => BadRequest,
            _ => InternalError,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// `(status, code)` pairs of the "Error codes" table in docs/api.md: rows like
    /// ``| 409 | `call_not_live`, `call_not_placed` | … |``.
    fn documented_pairs() -> BTreeSet<(u16, String)> {
        let doc = include_str!("../../docs/api.md");
        let table = doc
            .split("## Error codes")
            .nth(1)
            .expect("docs/api.md has an \"Error codes\" section");
        let mut pairs = BTreeSet::new();
        for line in table.lines().skip_while(|line| !line.starts_with('|')) {
            if !line.starts_with('|') {
                break;
            }
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let Ok(status) = cells[1].parse::<u16>() else {
                continue; // the header and the separator row
            };
            for code in cells[2].split(',') {
                pairs.insert((status, code.trim().trim_matches('`').to_owned()));
            }
        }
        pairs
    }

    #[test]
    fn docs_list_exactly_the_codes_in_the_table() {
        let table: BTreeSet<(u16, String)> = ErrorCode::ALL
            .iter()
            .map(|code| (code.status().as_u16(), code.as_str().to_owned()))
            .collect();
        let documented = documented_pairs();
        let missing: Vec<_> = table.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&table).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "docs/api.md's error table drifted from ErrorCode: not documented {missing:?}, \
             documented but not in the table {unknown:?}"
        );
    }

    #[test]
    fn every_variant_is_listed_once_and_codes_are_snake_case() {
        let unique: BTreeSet<_> = ErrorCode::ALL.iter().map(|c| c.row()).collect();
        assert_eq!(unique.len(), ErrorCode::ALL.len(), "ALL repeats a variant");
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(
                text.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{text} is not snake_case"
            );
            assert!(!code.description().is_empty());
        }
    }

    #[test]
    fn framework_statuses_map_to_codes_with_that_status() {
        for status in [
            400, 401, 403, 404, 405, 408, 409, 411, 413, 414, 415, 418, 422, 429, 431, 503, 504,
        ] {
            let code = ErrorCode::for_framework_status(status);
            if status != 418 {
                assert_eq!(code.status().as_u16(), status, "{status} → {code:?}");
            }
        }
        assert_eq!(ErrorCode::for_framework_status(418), BadRequest);
        assert_eq!(ErrorCode::for_framework_status(500), InternalError);
        assert_eq!(ErrorCode::for_framework_status(502), InternalError);
    }
}
