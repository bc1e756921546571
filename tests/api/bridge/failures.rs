//! Everything that can go wrong on either side of a call: refused tokens, OpenAI refusing the
//! key or going silent, the caller hanging up mid-response or misbehaving, a dead peer. Each
//! ends (or skips) cleanly, with the matching end reason, and nothing else is affected.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use voxbridge::audio::tone::sine;
use voxbridge::domain::call::{CallStatus, EndReason};
use voxbridge::frejun::media_token::MediaTokens;
use voxbridge::sim::caller::{CallerConfig, CallerError, SimulatedCaller};
use voxbridge::sim::fake_openai::{Behaviour, Failure, Mode, Pace, ScriptedTurn};

use super::{
    assert_no_violations, assert_slots_freed, bridge_app, call_id_of, configure_assistant,
    ended_call, place_call, stream_flow,
};
use crate::helpers::expect_status;

async fn refused(url: url::Url) -> u16 {
    let config = CallerConfig::new(url, "fj-x", 8_000, 100);
    match SimulatedCaller::connect(config, Duration::from_secs(5)).await {
        Err(CallerError::Rejected { status, .. }) => status,
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

fn with_query(url: &url::Url, call_id: &str, token: &str) -> url::Url {
    let mut url = url.clone();
    url.query_pairs_mut()
        .clear()
        .append_pair("call_id", call_id)
        .append_pair("token", token);
    url
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_refused_before_any_work() {
    let (app, fake) = bridge_app(Behaviour::default()).await;
    let tenant = app.calling_tenant("Tokens", "+14155550401", 5).await;
    let flow = stream_flow(&app, &tenant, "fj-token-1").await;
    let other_flow = stream_flow(&app, &tenant, "fj-token-2").await;
    let url = url::Url::parse(flow["ws_url"].as_str().unwrap()).unwrap();
    let call_id = call_id_of(&flow);
    let other_call = call_id_of(&other_flow);
    let tokens = MediaTokens::new(app.settings.security.url_signing_key.clone());

    let forged = MediaTokens::new(voxbridge::domain::secret::SecretString::new(
        "another-signing-key-of-enough-length",
    ))
    .sign(
        &call_id,
        &tenant.assistant_id,
        SystemTime::now(),
        Duration::from_secs(60),
    );
    assert_eq!(refused(with_query(&url, &call_id, &forged)).await, 401);
    let expired = tokens.sign(
        &call_id,
        &tenant.assistant_id,
        SystemTime::now() - Duration::from_secs(600),
        Duration::from_secs(60),
    );
    assert_eq!(refused(with_query(&url, &call_id, &expired)).await, 401);
    let for_other_call = tokens.sign(
        &other_call,
        &tenant.assistant_id,
        SystemTime::now(),
        Duration::from_secs(60),
    );
    assert_eq!(
        refused(with_query(&url, &call_id, &for_other_call)).await,
        401
    );
    assert_eq!(refused(with_query(&url, &call_id, "garbage")).await, 401);
    let mut bare = url.clone();
    bare.set_query(None);
    assert_eq!(refused(bare).await, 401);
    assert_eq!(fake.sessions().len(), 0, "no OpenAI session was opened");

    // The genuine URL still works, once.
    let config = CallerConfig::from_flow(&flow, "fj-token-1").unwrap();
    let caller = SimulatedCaller::connect(config.clone(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        refused(config.ws_url.clone()).await,
        409,
        "one stream per call"
    );
    caller.hang_up().await.unwrap();
    let call = ended_call(&app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(call.end_reason, Some(EndReason::CallerHungUp));
    assert_eq!(refused(config.ws_url).await, 409, "the call is over");
}

async fn key_refused(failure: Failure, expected_code: &str) {
    let (app, fake) = bridge_app(Behaviour {
        failure: Some(failure),
        ..Behaviour::default()
    })
    .await;
    let tenant = app.calling_tenant("BadKey", "+14155550402", 5).await;
    let (call_id, caller) = place_call(&app, &tenant, &format!("fj-{expected_code}")).await;
    let summary = caller.wait_closed(Duration::from_secs(10)).await.unwrap();
    let closed = summary
        .received
        .closed
        .expect("voxbridge closed the media stream");
    assert!(closed.by_server);
    assert_eq!(closed.code, 1000, "closed cleanly");
    assert_eq!(closed.reason, "ai_connect_failed");
    assert!(
        summary.received.violations.is_empty(),
        "{:?}",
        summary.received.violations
    );
    let call = ended_call(&app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(call.call_status, CallStatus::Failed);
    assert_eq!(call.end_reason, Some(EndReason::AiConnectFailed));
    assert_eq!(call.error.expect("error recorded").code, expected_code);
    assert_slots_freed(&app, &tenant).await;
    drop(fake);
}

#[tokio::test]
async fn openai_refusing_the_key_at_the_handshake_ends_the_call_as_ai_connect_failed() {
    key_refused(Failure::RejectKey { status: 401 }, "openai_key_rejected").await;
}

#[tokio::test]
async fn openai_closing_with_an_invalid_key_after_opening_is_also_a_connect_failure() {
    key_refused(Failure::InvalidKeyAfterOpen, "openai_key_rejected").await;
}

#[tokio::test]
async fn openai_closing_mid_response_is_an_ai_error() {
    let (app, fake) = bridge_app(Behaviour {
        failure: Some(Failure::CloseMidResponse {
            code: 1011,
            reason: "server_error".into(),
            after_ms: 500,
        }),
        ..Behaviour::with_mode(Mode::Scripted {
            turns: vec![ScriptedTurn::tone("Hello there", 440.0, 3_000)],
        })
    })
    .await;
    let tenant = app.calling_tenant("Dropped", "+14155550403", 5).await;
    configure_assistant(&app, &tenant, "pcm24k", "8k", Some("Hi")).await;
    let (call_id, caller) = place_call(&app, &tenant, "fj-ai-drop").await;
    let summary = caller.wait_closed(Duration::from_secs(10)).await.unwrap();
    assert_eq!(summary.received.closed.unwrap().reason, "ai_error");
    let call = ended_call(&app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(call.call_status, CallStatus::Failed);
    assert_eq!(call.end_reason, Some(EndReason::AiError));
    assert_eq!(call.error.unwrap().code, "openai_connection_lost");
    drop(fake);
}

#[tokio::test]
async fn the_caller_hanging_up_mid_response_closes_the_openai_session() {
    let (app, fake) = bridge_app(Behaviour {
        pace: Pace::Realtime(1.0),
        ..Behaviour::with_mode(Mode::Scripted {
            turns: vec![ScriptedTurn::tone("A long story", 440.0, 10_000)],
        })
    })
    .await;
    let tenant = app.calling_tenant("HangUp", "+14155550404", 5).await;
    configure_assistant(&app, &tenant, "pcm24k", "8k", Some("Hi")).await;
    let (call_id, caller) = place_call(&app, &tenant, "fj-hangup").await;
    assert!(
        caller
            .wait_until(Duration::from_secs(10), |received| received.audio_chunks
                >= 2)
            .await
    );
    let summary = caller.hang_up().await.unwrap();
    assert_no_violations(&fake, &summary.received);
    let call = ended_call(&app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(call.call_status, CallStatus::Completed);
    assert_eq!(call.end_reason, Some(EndReason::CallerHungUp));
    assert!(
        fake.wait_until(Duration::from_secs(5), |sessions| sessions[0]
            .closed
            .is_some())
            .await,
        "the OpenAI socket was closed"
    );
}

#[tokio::test]
async fn malformed_frames_are_skipped_and_the_call_goes_on() {
    let (app, fake) = bridge_app(Behaviour::with_mode(Mode::Echo)).await;
    let tenant = app.calling_tenant("Junk", "+14155550405", 5).await;
    configure_assistant(&app, &tenant, "pcm24k", "8k", None).await;
    let (call_id, mut caller) = place_call(&app, &tenant, "fj-junk").await;
    for junk in [
        "{not json",
        "[1,2,3]",
        r#"{"type":"mystery","data":{}}"#,
        r#"{"no_type":true}"#,
        r#"{"type":"audio","data":{"audio_b64":"***"}}"#,
        r#"{"type":"audio","data":{}}"#,
        // Three bytes: one sample and an odd byte.
        r#"{"type":"audio","data":{"audio_b64":"AQID"}}"#,
        r#"{"type":"start","data":{"sample_rate":8000}}"#,
    ] {
        caller.send_text(junk).await.unwrap();
    }
    caller.send_binary(vec![0, 1, 2, 3]).await.unwrap();
    assert!(
        super::tone_then_hear_echo(&mut caller, 8_000, 7_000).await,
        "the call still works"
    );
    let health = app.get("/health").await;
    assert_eq!(health.status(), StatusCode::OK);
    let summary = caller.hang_up().await.unwrap();
    assert_no_violations(&fake, &summary.received);
    let call = ended_call(&app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(call.end_reason, Some(EndReason::CallerHungUp));
}

#[tokio::test]
async fn an_oversized_message_ends_only_its_own_call() {
    let (app, fake) = bridge_app(Behaviour::with_mode(Mode::Echo)).await;
    let tenant = app.calling_tenant("Huge", "+14155550406", 5).await;
    configure_assistant(&app, &tenant, "pcm24k", "8k", None).await;
    let (big_call, mut big) = place_call(&app, &tenant, "fj-huge").await;
    let (fine_call, mut fine) = place_call(&app, &tenant, "fj-fine").await;
    let huge = format!(
        r#"{{"type":"audio","data":{{"audio_b64":"{}"}}}}"#,
        "A".repeat(app.settings.bridge.max_message_bytes + 1)
    );
    big.send_text(&huge).await.unwrap();
    let summary = big.wait_closed(Duration::from_secs(10)).await.unwrap();
    assert!(
        summary.received.closed.is_some(),
        "the oversized stream was closed"
    );
    let call = ended_call(&app, &big_call, Duration::from_secs(10)).await;
    assert_eq!(call.end_reason, Some(EndReason::TelephonyError));
    assert_eq!(call.error.unwrap().code, "media_stream_protocol_error");

    fine.send_audio(&sine(1_000.0, 8_000, 8_000, 8_000.0), false)
        .await
        .unwrap();
    fine.send_silence(1_000, false).await.unwrap();
    assert!(
        fine.wait_until(Duration::from_secs(10), |received| received.audio_samples
            >= 7_000)
            .await,
        "the other call is unaffected"
    );
    fine.hang_up().await.unwrap();
    let call = ended_call(&app, &fine_call, Duration::from_secs(10)).await;
    assert_eq!(call.end_reason, Some(EndReason::CallerHungUp));
    drop(fake);
}

#[tokio::test]
async fn a_silent_dead_caller_ends_the_call_within_seconds() {
    let (app, fake) = bridge_app(Behaviour::with_mode(Mode::Echo)).await;
    let tenant = app.calling_tenant("Silent", "+14155550407", 5).await;
    let (call_id, mut caller) = place_call(&app, &tenant, "fj-silent").await;
    caller.go_silent();
    let call = ended_call(&app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(call.end_reason, Some(EndReason::TelephonyError));
    assert_eq!(call.error.unwrap().code, "media_stream_silent");
    drop(fake);
}

#[tokio::test]
async fn a_stalled_openai_ends_the_call_as_ai_connect_failed() {
    let (app, fake) = bridge_app(Behaviour {
        failure: Some(Failure::Stall),
        ..Behaviour::default()
    })
    .await;
    let tenant = app.calling_tenant("Stall", "+14155550408", 5).await;
    let (call_id, mut caller) = place_call(&app, &tenant, "fj-stall").await;
    // The caller keeps streaming (so only OpenAI is silent).
    let streaming = tokio::spawn(async move {
        let _ = caller.send_silence(6_000, true).await;
        caller
    });
    let call = ended_call(&app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(call.end_reason, Some(EndReason::AiConnectFailed));
    assert_eq!(call.error.unwrap().code, "openai_silent");
    let _ = streaming.await;
    drop(fake);
}

#[tokio::test]
async fn a_call_ends_at_its_maximum_duration() {
    let (app, fake) = bridge_app(Behaviour::with_mode(Mode::Echo)).await;
    let tenant = app.calling_tenant("Short", "+14155550409", 5).await;
    let path = format!("/api/assistants/{}", tenant.assistant_id);
    expect_status(
        app.patch_as(
            &path,
            &tenant.tenant.api_key,
            &serde_json::json!({"max_call_seconds": 1}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let (call_id, caller) = place_call(&app, &tenant, "fj-short").await;
    let summary = caller.wait_closed(Duration::from_secs(10)).await.unwrap();
    assert_eq!(summary.received.closed.unwrap().reason, "max_duration");
    let call = ended_call(&app, &call_id, Duration::from_secs(10)).await;
    assert_eq!(call.call_status, CallStatus::Completed);
    assert_eq!(call.end_reason, Some(EndReason::MaxDuration));
    drop(fake);
}

/// A warning from deep inside the bridge names its call: every line of a call is written in the
/// call's span (call, tenant, assistant and FreJun call ids).
#[tokio::test]
async fn the_bridge_logs_inside_the_calls_span() {
    crate::logs::capture();
    let (app, _fake) = bridge_app(Behaviour::with_mode(Mode::Echo)).await;
    let tenant = app.calling_tenant("Spans", "+14155550409", 5).await;
    configure_assistant(&app, &tenant, "pcm24k", "8k", None).await;
    let (call_id, mut caller) = place_call(&app, &tenant, "fj-spans").await;
    caller.send_text("{not json").await.unwrap();
    caller.send_silence(200, false).await.unwrap();
    caller.hang_up().await.unwrap();
    ended_call(&app, &call_id, Duration::from_secs(10)).await;

    let ours = |message: &str| -> Vec<serde_json::Value> {
        crate::logs::lines_with_message(message)
            .into_iter()
            .filter(|line| line["span"]["call_id"] == call_id.as_str())
            .collect()
    };
    let warnings = ours("skipping malformed media-stream messages");
    assert_eq!(warnings.len(), 1, "the warning names the call");
    let span = &warnings[0]["span"];
    assert_eq!(span["name"], "call");
    assert_eq!(span["tenant_id"], tenant.tenant.id.as_str());
    assert_eq!(span["assistant_id"], tenant.assistant_id.as_str());
    assert_eq!(span["frejun_call_id"], "fj-spans");
    assert_eq!(ours("media stream ended").len(), 1);
}

/// When voxbridge ends a call it waits for FreJun's answering close frame before it drops the
/// connection (RFC 6455 §7.1.1). Dropping it at once raced the caller's last media frames:
/// they met a closed socket and a caller that flushes before it reads lost the close frame,
/// and with it the end reason, to "broken pipe".
#[tokio::test]
async fn voxbridge_keeps_the_connection_until_the_caller_answers_its_close() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::MaybeTlsStream;
    use tokio_tungstenite::tungstenite::Message;

    let (app, _fake) = bridge_app(Behaviour {
        failure: Some(Failure::RejectKey { status: 401 }),
        ..Behaviour::default()
    })
    .await;
    let tenant = app.calling_tenant("CloseWait", "+14155550409", 5).await;
    let flow = stream_flow(&app, &tenant, "fj-close-wait").await;
    let ws_url = flow["ws_url"].as_str().unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();

    let reason = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => {
                    break frame.map(|frame| frame.reason.to_string());
                }
                Some(Ok(_)) => continue,
                other => panic!("the stream ended without a close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("voxbridge closes the stream");
    assert_eq!(reason.as_deref(), Some("ai_connect_failed"));

    // tungstenite has queued its answer but not sent it: the connection must still be open.
    let MaybeTlsStream::Plain(tcp) = ws.get_ref() else {
        panic!("a plain TCP test connection")
    };
    let mut byte = [0_u8; 1];
    let peeked = tokio::time::timeout(Duration::from_millis(500), tcp.peek(&mut byte)).await;
    assert!(
        peeked.is_err(),
        "voxbridge dropped the connection before the close handshake: {peeked:?}"
    );

    // Our close frame goes out; now voxbridge lets go.
    ws.flush().await.unwrap();
    let MaybeTlsStream::Plain(tcp) = ws.get_ref() else {
        unreachable!()
    };
    let after = tokio::time::timeout(Duration::from_secs(5), tcp.peek(&mut byte))
        .await
        .expect("the connection ends once the handshake is done");
    assert!(
        matches!(after, Ok(0) | Err(_)),
        "nothing but the end follows: {after:?}"
    );
}
