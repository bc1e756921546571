//! `voxbridge call`, the real binary, against a test server whose OpenAI is the fake in echo
//! mode: the caller's tone comes back, and the WAV the command writes must hold it. Also the
//! ways a call fails (unknown number, wrong key, unreachable server, a server that does not dial
//! through the command's fake Teler), each a non-zero exit with one clear line.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use reqwest::StatusCode;
use voxbridge::audio::tone::{level_dbfs, rms_dbfs};
use voxbridge::domain::call::{CallStatus, CallType, EndReason};
use voxbridge::sim::fake_openai::{Behaviour, Failure, FakeOpenAi, Mode};
use voxbridge::sim::fake_teler::FakeTeler;
use voxbridge::sim::wav::read_wav;

use crate::bridge::bridge_app;
use crate::helpers::{CallingTenant, TestApp, expect_status};

/// Short enough for a quick test, long enough for the fake's VAD (500 ms of silence ends a
/// turn) and its echo at 4× real time to come back while the caller still listens.
const SHORT_CALL: [&str; 8] = [
    "--tone",
    "1000",
    "--tone-ms",
    "1000",
    "--speak-after-ms",
    "200",
    "--listen-ms",
    "2500",
];

/// `inbound` to the tenant's number with its API key, writing what was heard to `out`, for a
/// short tone call.
fn short_inbound_call(flow_url: &str, tenant: &CallingTenant, out: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "inbound",
        "--flow-url",
        flow_url,
        "--to",
        &tenant.number,
        "--api-key",
        &tenant.tenant.api_key,
        "--out",
        out.to_str().expect("a UTF-8 temporary path"),
    ]
    .map(str::to_owned)
    .into();
    args.extend(SHORT_CALL.map(str::to_owned));
    args
}

/// Runs `voxbridge call ARGS` in `dir` (so no `.env` of the developer's is read), killing it if
/// it runs for over a minute.
async fn voxbridge_call(args: &[impl AsRef<OsStr>], dir: &Path) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_voxbridge"));
    command
        .arg("call")
        .args(args)
        .current_dir(dir)
        .env_remove("VOXBRIDGE_API_KEY")
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("voxbridge call finished within a minute")
        .expect("voxbridge call ran")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The tenant's incoming-call URL, as `GET /api/me` shows it.
async fn incoming_call_url(app: &TestApp, tenant: &CallingTenant) -> String {
    let me = expect_status(
        app.get_as("/api/me", &tenant.tenant.api_key).await,
        StatusCode::OK,
    )
    .await;
    me["data"]["frejun"]["incoming_call_url"]
        .as_str()
        .expect("incoming_call_url")
        .to_owned()
}

/// The id after the first `voxbridge call id ` in the command's account.
fn voxbridge_call_id(stdout: &str) -> String {
    let (_, after) = stdout
        .split_once("voxbridge call id ")
        .unwrap_or_else(|| panic!("no voxbridge call id in:\n{stdout}"));
    after
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect()
}

/// The WAV at `path` is 8 kHz mono and its loud part is the 1 kHz tone.
fn assert_holds_echoed_tone(path: &Path) {
    let heard = read_wav(path).expect("the heard audio was written as WAV");
    assert_eq!(heard.sample_rate, 8_000);
    assert_eq!(heard.channels, 1);
    // The loud part: 50 ms windows above -30 dBFS (the echo, without any silence around it).
    let window = 400;
    let loud: Vec<usize> = heard
        .samples
        .chunks(window)
        .enumerate()
        .filter(|(_, chunk)| chunk.len() == window && rms_dbfs(chunk) > -30.0)
        .map(|(index, _)| index)
        .collect();
    let (Some(first), Some(last)) = (loud.first(), loud.last()) else {
        panic!("nothing loud in {} samples heard", heard.samples.len());
    };
    // Leave out the edges, where the tone starts and stops.
    let tone = &heard.samples[(first + 1) * window..*last * window];
    assert!(
        tone.len() >= 6_000,
        "at least 0.75 s of echo: {}",
        tone.len()
    );
    let level = level_dbfs(tone, 1_000.0, 8_000);
    assert!(level > -15.0, "1 kHz in the heard WAV: {level:.1} dBFS");
    for other in [500.0, 2_000.0, 3_000.0] {
        let leak = level_dbfs(tone, other, 8_000);
        assert!(
            leak < level - 30.0,
            "{other} Hz: {leak:.1} dBFS vs {level:.1}"
        );
    }
}

#[tokio::test]
async fn an_inbound_call_writes_the_echoed_tone_and_prints_the_call_log() {
    let (app, _fake) = bridge_app(Behaviour::with_mode(Mode::Echo)).await;
    let tenant = app.calling_tenant("CliInbound", "+14155550601", 5).await;
    let flow_url = incoming_call_url(&app, &tenant).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("heard.wav");

    let args = short_inbound_call(&flow_url, &tenant, &out);
    let output = voxbridge_call(&args, dir.path()).await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    // The account: the flow, the webhooks as voxbridge answered them, the call log.
    let call_id = voxbridge_call_id(&stdout);
    for expected in [
        "flow: stream at 16000 Hz in 100 ms chunks",
        "webhook call.initiated: 200 ignored (unknown_call)",
        "webhook call.answered: 200 received (in-progress)",
        "webhook call.completed: 200 received (completed)",
        &format!("call log {call_id}:"),
        "end reason: caller_hung_up",
        "transcript:",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing from:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains(&tenant.key),
        "the URL secret is never printed"
    );
    assert!(stderr.is_empty(), "nothing on stderr: {stderr}");
    assert_holds_echoed_tone(&out);

    let call = app.call_log(&call_id).await;
    assert_eq!(call.call_type, CallType::Inbound);
    assert_eq!(call.call_status, CallStatus::Completed);
    assert_eq!(call.end_reason, Some(EndReason::CallerHungUp));
    let metrics = call.metrics.expect("metrics");
    assert!(
        metrics.audio_in_ms >= 3_500,
        "the whole call was streamed: {metrics:?}"
    );
    assert!(
        call.status_history
            .iter()
            .any(|event| event.event.as_deref() == Some("call.completed")),
        "FreJun's call.completed was applied: {:?}",
        call.status_history
    );
}

#[tokio::test]
async fn an_unknown_number_is_refused_with_the_call_logs_reason() {
    let (app, _fake) = bridge_app(Behaviour::with_mode(Mode::Echo)).await;
    let tenant = app.calling_tenant("CliUnknown", "+14155550602", 5).await;
    let flow_url = incoming_call_url(&app, &tenant).await;
    let dir = tempfile::tempdir().unwrap();

    let output = voxbridge_call(
        &[
            "inbound",
            "--flow-url",
            &flow_url,
            "--to",
            "+14155550699",
            "--api-key",
            &tenant.tenant.api_key,
        ],
        dir.path(),
    )
    .await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(!output.status.success(), "stdout:\n{stdout}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("voxbridge refused the call") && stderr.contains("unknown_number"),
        "{stderr}"
    );
    assert!(stdout.contains("status: failed"), "{stdout}");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "no WAV for a call that never connected"
    );
}

#[tokio::test]
async fn a_wrong_key_and_an_unreachable_server_are_named() {
    let (app, _fake) = bridge_app(Behaviour::with_mode(Mode::Echo)).await;
    let tenant = app.calling_tenant("CliKey", "+14155550603", 5).await;
    let dir = tempfile::tempdir().unwrap();

    let wrong_key = format!("{}/api/frejun/flow?key=not-the-key", app.address);
    let output = voxbridge_call(
        &["inbound", "--flow-url", &wrong_key, "--to", &tenant.number],
        dir.path(),
    )
    .await;
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("HTTP 401 invalid_frejun_key") && !stderr.contains("not-the-key"),
        "{stderr}"
    );

    let port = voxbridge::local_mongodb::free_port().unwrap();
    let nowhere = format!("http://127.0.0.1:{port}/api/frejun/flow?key=SECRET-KEY");
    let output = voxbridge_call(
        &["inbound", "--flow-url", &nowhere, "--to", &tenant.number],
        dir.path(),
    )
    .await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(!output.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("cannot reach the flow URL")
            && stderr.contains(&format!("127.0.0.1:{port}/api/frejun/flow")),
        "{stderr}"
    );
    assert!(
        !stderr.contains("SECRET-KEY") && !stdout.contains("SECRET-KEY"),
        "the key is redacted:\n{stdout}\n{stderr}"
    );
}

#[tokio::test]
async fn a_call_voxbridge_ends_with_an_error_fails_naming_the_reason() {
    let (app, _fake) = bridge_app(Behaviour {
        failure: Some(Failure::RejectKey { status: 401 }),
        ..Behaviour::with_mode(Mode::Echo)
    })
    .await;
    let tenant = app.calling_tenant("CliAiDown", "+14155550606", 5).await;
    let flow_url = incoming_call_url(&app, &tenant).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("heard.wav");

    let args = short_inbound_call(&flow_url, &tenant, &out);
    let output = voxbridge_call(&args, dir.path()).await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(!output.status.success(), "stdout:\n{stdout}");
    assert!(
        stderr.contains("voxbridge ended the call") && stderr.contains("ai_connect_failed"),
        "{stderr}"
    );
    assert!(
        stdout.contains("voxbridge closed the stream")
            && stdout.contains("end reason: ai_connect_failed"),
        "{stdout}"
    );
    let heard = read_wav(&out).expect("the (silent) heard audio was still written");
    assert!(heard.samples.is_empty(), "nothing was heard");
}

/// A test app whose OpenAI is the echo fake and whose FreJun API is at `teler_base`.
async fn outbound_app(teler_base: url::Url) -> (TestApp, FakeOpenAi) {
    let fake = FakeOpenAi::start(Behaviour::with_mode(Mode::Echo))
        .await
        .expect("fake OpenAI starts");
    let realtime = fake.url();
    let app = TestApp::spawn_with(|settings| {
        settings.openai.realtime_url = realtime;
        settings.openai.connect_timeout_ms = 2_000;
        settings.bridge.log_flush_interval_ms = 200;
        settings.frejun.api_base_url = teler_base;
        settings.frejun.api_timeout_secs = 2;
    })
    .await;
    (app, fake)
}

#[tokio::test]
async fn an_outbound_call_is_placed_through_the_commands_fake_teler() {
    let port = voxbridge::local_mongodb::free_port().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let teler_base = url::Url::parse(&format!("http://{listen}/api/v1/")).unwrap();
    let (app, _fake) = outbound_app(teler_base).await;
    let tenant = app.calling_tenant("CliOutbound", "+14155550604", 5).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("outbound.wav");

    let mut args = vec![
        "outbound",
        "--server",
        &app.address,
        "--api-key",
        &tenant.tenant.api_key,
        "--from",
        &tenant.number,
        "--to",
        "+14155550123",
        "--teler-listen",
        &listen,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(SHORT_CALL);
    let output = voxbridge_call(&args, dir.path()).await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for expected in [
        "Teler received the create-call request",
        "webhook call.ringing: 200 received (ringing)",
        "webhook call.answered: 200 received (in-progress)",
        "end reason: caller_hung_up",
        "recording: GET /api/calls/",
        "recording URL: http://127.0.0.1:",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing from:\n{stdout}"
        );
    }
    assert_holds_echoed_tone(&out);

    let call = app.call_log(&voxbridge_call_id(&stdout)).await;
    assert_eq!(call.call_type, CallType::Outbound);
    assert_eq!(call.call_status, CallStatus::Completed);
    assert_eq!(call.to_number.as_deref(), Some("+14155550123"));
}

#[tokio::test]
async fn a_wrong_api_key_and_a_server_dialling_elsewhere_stop_the_outbound_command() {
    // The server dials this fake, not the one the command serves.
    let elsewhere = FakeTeler::start().await.expect("fake Teler starts");
    let (app, _fake) = outbound_app(elsewhere.base_url()).await;
    let tenant = app.calling_tenant("CliElsewhere", "+14155550605", 5).await;
    let port = voxbridge::local_mongodb::free_port().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let outbound = |api_key: &str| {
        [
            "outbound",
            "--server",
            &app.address,
            "--api-key",
            api_key,
            "--from",
            &tenant.number,
            "--to",
            "+14155550123",
            "--teler-listen",
            &listen,
        ]
        .map(str::to_owned)
    };

    let output = voxbridge_call(&outbound("vb_not_a_key"), dir.path()).await;
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("HTTP 401") && stderr.contains("check --api-key"),
        "{stderr}"
    );
    assert!(elsewhere.calls().is_empty(), "nothing was dialled");

    let output = voxbridge_call(&outbound(&tenant.tenant.api_key), dir.path()).await;
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("did not dial through this fake Teler")
            && stderr.contains(&format!("http://{listen}/api/v1/"))
            && stderr.contains("/hangup"),
        "{stderr}"
    );
    assert_eq!(
        elsewhere.calls().len(),
        1,
        "the server dialled its own FreJun"
    );
}
