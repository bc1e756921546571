//! Teler's in-call operations besides hang-up: a cold transfer to a PSTN number or a SIP URI,
//! keypad tones (DTMF) and playing a file (docs/protocols.md §1.8). Each is
//! a `POST` with an `Idempotency-Key` that the caller keeps the same across retries, answered 202
//! when FreJun has started it (not when it is done).

use serde::Serialize;
use serde_json::Value;

use super::{TelerClient, TelerError, clip};
use crate::domain::secret::SecretString;

/// Where a transfer sends the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TransferTarget {
    /// A phone number, E.164.
    Pstn(String),
    /// A SIP URI, e.g. `sip:desk@pbx.example.com:5060` (a `transfer_call` destination).
    Sip(String),
}

/// A transfer FreJun started (`op_…`); whether the target answered comes later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TransferStarted {
    /// The operation's id (`op_…`), when FreJun gave one.
    pub operation_id: Option<String>,
    /// FreJun's status of the operation (`initiated`).
    pub status: Option<String>,
}

#[derive(Serialize)]
struct TransferBody<'a> {
    target: TargetBody<'a>,
    /// Only `cold` is supported by FreJun today.
    mode: &'static str,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum TargetBody<'a> {
    Pstn { number: &'a str },
    Sip { uri: &'a str },
}

#[derive(Serialize)]
#[cfg_attr(not(test), allow(dead_code))]
struct DtmfBody<'a> {
    digits: &'a str,
}

#[derive(Serialize)]
#[cfg_attr(not(test), allow(dead_code))]
struct PlayBody<'a> {
    media_url: &'a str,
}

impl TelerClient {
    /// A cold transfer of the whole call: `POST /voice/calls/{id}/transfer`.
    #[tracing::instrument(name = "teler.transfer", skip_all, fields(call_id = frejun_call_id))]
    pub(crate) async fn transfer(
        &self,
        api_key: &SecretString,
        frejun_call_id: &str,
        target: &TransferTarget,
        idempotency_key: &str,
    ) -> Result<TransferStarted, TelerError> {
        let target = match target {
            TransferTarget::Pstn(number) => TargetBody::Pstn { number },
            TransferTarget::Sip(uri) => TargetBody::Sip { uri },
        };
        let body = TransferBody {
            target,
            mode: "cold",
        };
        let answer = self
            .call_operation(api_key, frejun_call_id, "transfer", idempotency_key, &body)
            .await?;
        let record = answer
            .get("data")
            .filter(|data| data.is_object())
            .unwrap_or(&answer);
        let text = |field: &str| record.get(field).and_then(Value::as_str).map(clip);
        Ok(TransferStarted {
            operation_id: text("id"),
            status: text("status"),
        })
    }

    /// Keypad tones on the call (`[0-9*#A-D]`): `POST /voice/calls/{id}/dtmf`, for the
    /// `send_dtmf` tool.
    #[tracing::instrument(name = "teler.dtmf", skip_all, fields(call_id = frejun_call_id))]
    pub(crate) async fn send_dtmf(
        &self,
        api_key: &SecretString,
        frejun_call_id: &str,
        digits: &str,
        idempotency_key: &str,
    ) -> Result<(), TelerError> {
        self.call_operation(
            api_key,
            frejun_call_id,
            "dtmf",
            idempotency_key,
            &DtmfBody { digits },
        )
        .await
        .map(|_| ())
    }

    /// Plays an `https` WAV or MP3 to the caller: `POST /voice/calls/{id}/play`. Answers
    /// FreJun's playback id (`pb_…`) when it gives one. Not used by the tool filler, which the
    /// model speaks in the assistant's own voice (docs/api.md, "Tools"); kept, tested against
    /// the fake, for a stored-clip filler.
    #[cfg_attr(not(test), allow(dead_code))]
    #[tracing::instrument(name = "teler.play", skip_all, fields(call_id = frejun_call_id))]
    pub(crate) async fn play(
        &self,
        api_key: &SecretString,
        frejun_call_id: &str,
        media_url: &str,
        idempotency_key: &str,
    ) -> Result<Option<String>, TelerError> {
        let answer = self
            .call_operation(
                api_key,
                frejun_call_id,
                "play",
                idempotency_key,
                &PlayBody { media_url },
            )
            .await?;
        Ok(answer.get("playback_id").and_then(Value::as_str).map(clip))
    }

    /// `POST /voice/calls/{id}/{operation}`; the 2xx body as JSON (`Null` if it is not).
    async fn call_operation(
        &self,
        api_key: &SecretString,
        frejun_call_id: &str,
        operation: &str,
        idempotency_key: &str,
        body: &impl Serialize,
    ) -> Result<Value, TelerError> {
        if matches!(frejun_call_id, "" | "." | "..") {
            return Err(TelerError::NotFound {
                message: format!("{frejun_call_id:?} is not a call id"),
            });
        }
        let url = self.endpoint(&["voice", "calls", frejun_call_id, operation])?;
        let answer = self
            .post(url, api_key, Some(idempotency_key.to_owned()), body)
            .await
            .map_err(|err| err.redact(api_key.expose()))?;
        Ok(answer
            .body
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(Value::Null))
    }
}
