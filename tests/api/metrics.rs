//! `GET /metrics`: off without `metrics.token`, 401 in the envelope without the right bearer
//! token, the Prometheus text format with it; after a bridged call its end, latencies and the
//! live-calls gauge show, and no label names a tenant, a call or a raw path.
//!
//! The recorder is one per process and the tests run in parallel: counters are compared with
//! their value before the call (they only grow). The live-calls gauge is sampled from the
//! scraped app's own registry, so it is exact for that app.

use std::time::Duration;

use reqwest::StatusCode;
use voxbridge::domain::secret::SecretString;
use voxbridge::sim::fake_openai::{Behaviour, Mode};

use crate::bridge::{
    bridge_app_with, configure_assistant, ended_call, place_call, tone_then_hear_echo,
};
use crate::helpers::{TestApp, expect_error, expect_status, flow_body};

const TOKEN: &str = "metrics-test-token-0123456789abcdef0123";

async fn scrape(app: &TestApp) -> String {
    let response = app.get_as("/metrics", TOKEN).await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

/// The value of the series written exactly `series` (name and labels), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// The sum of every series whose line starts with `prefix`.
fn sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Every label value of every series.
fn label_values(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let start = line.find('{')?;
            let end = line.rfind('}')?;
            Some(line[start + 1..end].to_owned())
        })
        .flat_map(|labels| {
            labels
                .split("\",")
                .filter_map(|pair| Some(pair.split_once("=\"")?.1.trim_end_matches('"').to_owned()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether `value` holds 24 hex digits in a row (an ObjectId: a tenant, call or assistant id).
fn holds_object_id(value: &str) -> bool {
    value
        .as_bytes()
        .windows(24)
        .any(|window| window.iter().all(u8::is_ascii_hexdigit))
}

fn with_token(settings: &mut voxbridge::settings::Settings) {
    settings.metrics.token = Some(SecretString::new(TOKEN));
}

#[tokio::test]
async fn metrics_are_off_without_a_token() {
    let app = TestApp::spawn().await;
    expect_error(
        app.get("/metrics").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        app.get_as("/metrics", TOKEN).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn metrics_refuse_a_missing_or_wrong_token() {
    let app = TestApp::spawn_with(with_token).await;
    expect_error(
        app.get("/metrics").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    expect_error(
        app.get_as("/metrics", "not-the-metrics-token-0123456789abcdef")
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    // The admin token is not the metrics token.
    expect_error(
        app.get_as("/metrics", &app.admin_token()).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let text = scrape(&app).await;
    assert!(text.contains("# TYPE voxbridge_draining gauge"), "{text}");
    assert_eq!(value(&text, "voxbridge_draining"), Some(0.0), "{text}");
}

#[tokio::test]
async fn metrics_count_unknown_routes_under_one_label() {
    let app = TestApp::spawn_with(with_token).await;
    let unmatched =
        "voxbridge_http_requests_total{method=\"GET\",route=\"(unmatched)\",status=\"404\"}";
    let before = value(&scrape(&app).await, unmatched).unwrap_or(0.0);
    for path in ["/no/such/route-4f2a9c", "/another/unknown/path-77e1"] {
        expect_error(app.get(path).await, StatusCode::NOT_FOUND, "not_found").await;
    }
    let text = scrape(&app).await;
    let after = value(&text, unmatched).unwrap_or(0.0);
    assert!(after >= before + 2.0, "{before} → {after}\n{text}");
    assert!(!text.contains("route-4f2a9c") && !text.contains("path-77e1"));
    // Matched routes are counted by their template.
    assert!(
        value(
            &text,
            "voxbridge_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"200\"}"
        )
        .is_some_and(|count| count >= 1.0),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_show_a_bridged_call() {
    let (app, fake) = bridge_app_with(Behaviour::with_mode(Mode::Echo), with_token).await;
    let tenant = app.calling_tenant("Metered", "+14155550901", 5).await;
    configure_assistant(&app, &tenant, "pcm24k", "8k", None).await;
    let ended = "voxbridge_calls_ended_total{reason=\"caller_hung_up\"}";
    let frames = "voxbridge_bridge_frame_latency_seconds_count";
    let first_responses = "voxbridge_first_response_seconds_count";
    let live = "voxbridge_live_calls{backend=\"openai_realtime\"";
    let before = scrape(&app).await;
    assert_eq!(sum(&before, live), 0.0, "{before}");

    let (call_id, mut caller) = place_call(&app, &tenant, "fj-metered-1").await;
    assert!(
        tone_then_hear_echo(&mut caller, 8_000, 7_600).await,
        "the echo came back"
    );
    let during = scrape(&app).await;
    assert_eq!(sum(&during, live), 1.0, "one live call: {during}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    caller.hang_up().await.unwrap();
    ended_call(&app, &call_id, Duration::from_secs(10)).await;

    // The session leaves the registry just after its final write is handed over.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let after = loop {
        let text = scrape(&app).await;
        if sum(&text, live) == 0.0 || tokio::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        sum(&after, live),
        0.0,
        "the live gauge is back to 0: {after}"
    );
    assert!(
        after.contains("voxbridge_live_calls{backend=\"openai_realtime\",codec=\""),
        "the pair is still shown, at 0: {after}"
    );
    let grew = |series: &str| {
        value(&after, series).unwrap_or(0.0) >= value(&before, series).unwrap_or(0.0) + 1.0
    };
    assert!(grew(ended), "calls ended by caller_hung_up: {after}");
    assert!(grew(first_responses), "first-response latency: {after}");
    assert!(
        value(&after, frames).unwrap_or(0.0) > 0.0,
        "frame latency: {after}"
    );
    assert!(
        after.contains("voxbridge_bridge_frame_latency_seconds_bucket{le=\"0.001\"}"),
        "explicit buckets: {after}"
    );
    assert!(
        after.contains("voxbridge_mongodb_command_duration_seconds_bucket{command=\"insert\""),
        "MongoDB commands are timed: {after}"
    );

    // No label names the tenant, the call, the assistant or FreJun's call.
    let tenant_id = tenant.tenant.id.clone();
    for label in label_values(&after) {
        assert!(!holds_object_id(&label), "{label} in {after}");
        for id in [&call_id, &tenant_id, &tenant.assistant_id] {
            assert!(!label.contains(id.as_str()), "{label} names {id}");
        }
        assert!(!label.contains("fj-metered-1"), "{label}");
    }
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn metrics_count_refused_flows_and_media_streams() {
    let app = TestApp::spawn_with(with_token).await;
    let tenant = app.calling_tenant("Refused", "+14155550902", 5).await;
    let flow_refusal =
        "voxbridge_admission_refusals_total{stage=\"flow\",reason=\"unknown_number\"}";
    let ended = "voxbridge_calls_ended_total{reason=\"unknown_number\"}";
    let token_refusal =
        "voxbridge_admission_refusals_total{stage=\"media_stream\",reason=\"token\"}";
    let before = scrape(&app).await;

    // A number nobody owns: FreJun is told to hang up, and the call is logged as refused.
    let body = flow_body("fj-refused-1", "+14155550100", "+14155559999");
    let flow = expect_status(
        app.post_flow(Some(&tenant.key), None, &body).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(flow["action"], "hangup", "{flow}");
    // A media stream without its token.
    let path = format!("/api/frejun/media-stream/{}", tenant.assistant_id);
    assert_eq!(app.get(&path).await.status(), StatusCode::UNAUTHORIZED);

    let after = scrape(&app).await;
    for series in [flow_refusal, ended, token_refusal] {
        let (was, is) = (
            value(&before, series).unwrap_or(0.0),
            value(&after, series).unwrap_or(0.0),
        );
        assert!(is >= was + 1.0, "{series}: {was} → {is}\n{after}");
    }
}
