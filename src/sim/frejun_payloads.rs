//! The bodies FreJun posts to voxbridge, as the simulators build them: the lifecycle webhooks in
//! FreJun's envelope, and the fake FreJun account's ids that they, the flow fetch and the media
//! stream's `start` carry. The simulated caller, the flow fetch (`frejun_requests`) and
//! `phone_call`'s webhooks take them from here, so none of them depends on the fake Teler.

/// The `account_id` the fake puts in flow fetches and webhooks.
pub(crate) const FAKE_ACCOUNT_ID: &str = "acc_01JQ8Z0000FAKEACC0UNT0000";

/// The `call_app_id` the fake puts in webhooks.
pub(crate) const FAKE_CALL_APP_ID: &str = "va_01JQ8Z0000FAKEVAPP0000000";

/// Builders for FreJun's lifecycle webhooks, in the documented envelope
/// `{"event","account_id","call_app_id","data":{...}}`. Note that `data` names the numbers
/// `from` / `to`, unlike the flow fetch.
pub mod events {
    use serde_json::{Value, json};

    use super::{FAKE_ACCOUNT_ID, FAKE_CALL_APP_ID};

    fn envelope(event: &str, data: Value) -> Value {
        json!({
            "event": event,
            "account_id": FAKE_ACCOUNT_ID,
            "call_app_id": FAKE_CALL_APP_ID,
            "data": data,
        })
    }

    /// `call.initiated`: FreJun has started placing the call.
    pub(crate) fn call_initiated(call_id: &str, from: &str, to: &str, start_time: &str) -> Value {
        envelope(
            "call.initiated",
            json!({"call_id": call_id, "from": from, "to": to, "start_time": start_time}),
        )
    }

    /// `call.ringing`: the callee's phone is ringing.
    pub fn call_ringing(call_id: &str, from: &str, to: &str) -> Value {
        envelope(
            "call.ringing",
            json!({"call_id": call_id, "from": from, "to": to}),
        )
    }

    /// `call.answered`: the callee picked up.
    pub fn call_answered(call_id: &str, from: &str, to: &str, answer_time: &str) -> Value {
        envelope(
            "call.answered",
            json!({"call_id": call_id, "from": from, "to": to, "answer_time": answer_time}),
        )
    }

    /// `call.completed`: the call ended (answered or not); `duration` in seconds.
    pub fn call_completed(
        call_id: &str,
        from: &str,
        to: &str,
        duration_secs: u64,
        hangup_time: &str,
    ) -> Value {
        envelope(
            "call.completed",
            json!({
                "call_id": call_id,
                "from": from,
                "to": to,
                "duration": duration_secs,
                "hangup_time": hangup_time,
            }),
        )
    }

    /// `stream.initiated`: FreJun opened the media WebSocket.
    pub(crate) fn stream_initiated(call_id: &str, stream_id: &str, start_time: &str) -> Value {
        envelope(
            "stream.initiated",
            json!({"call_id": call_id, "stream_id": stream_id, "start_time": start_time}),
        )
    }

    /// `stream.completed`: the media WebSocket closed.
    pub(crate) fn stream_completed(call_id: &str, stream_id: &str, end_time: &str) -> Value {
        envelope(
            "stream.completed",
            json!({"call_id": call_id, "stream_id": stream_id, "end_time": end_time}),
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn event_builders_follow_the_documented_envelope() {
        let cases = [
            (
                events::call_initiated("c", "+1", "+2", "t0"),
                "call.initiated",
                json!({"call_id": "c", "from": "+1", "to": "+2", "start_time": "t0"}),
            ),
            (
                events::call_ringing("c", "+1", "+2"),
                "call.ringing",
                json!({"call_id": "c", "from": "+1", "to": "+2"}),
            ),
            (
                events::call_answered("c", "+1", "+2", "t1"),
                "call.answered",
                json!({"call_id": "c", "from": "+1", "to": "+2", "answer_time": "t1"}),
            ),
            (
                events::stream_initiated("c", "s", "t2"),
                "stream.initiated",
                json!({"call_id": "c", "stream_id": "s", "start_time": "t2"}),
            ),
            (
                events::stream_completed("c", "s", "t3"),
                "stream.completed",
                json!({"call_id": "c", "stream_id": "s", "end_time": "t3"}),
            ),
        ];
        for (event, name, data) in cases {
            assert_eq!(event["event"], name);
            assert_eq!(event["account_id"], FAKE_ACCOUNT_ID);
            assert_eq!(event["call_app_id"], FAKE_CALL_APP_ID);
            assert_eq!(event["data"], data);
        }
    }
}
