//! A media token opens one stream, on one instance: the claim is made in MongoDB, so a second
//! upgrade of the same `ws_url` is refused wherever it lands; and a request that is not an
//! upgrade does no admission work at all.

use std::time::Duration;

use voxbridge::sim::caller::{CallerConfig, CallerError, SimulatedCaller};
use voxbridge::sim::fake_openai::{Behaviour, Mode};

use super::{bridge_app, call_id_of, configure_assistant, stream_flow};
use crate::helpers::TestApp;

#[tokio::test]
async fn a_stream_url_opens_once_across_instances() {
    let (app, _fake) = bridge_app(Behaviour::with_mode(Mode::Echo)).await;
    let other = TestApp::spawn_with_storage(app.settings.clone(), app.storage.clone()).await;
    let tenant = app.calling_tenant("Twice", "+14155550440", 5).await;
    configure_assistant(&app, &tenant, "pcm24k", "8k", None).await;
    let flow = stream_flow(&app, &tenant, "fj-twice").await;
    let config = CallerConfig::from_flow(&flow, "fj-twice").unwrap();
    let mut first = SimulatedCaller::connect(config.clone(), Duration::from_secs(5))
        .await
        .expect("the first upgrade is bridged");
    first.send_start().await.unwrap();

    // The same URL on the other instance (same path and token, the other port).
    let mut elsewhere = config.clone();
    let port = url::Url::parse(&other.address).unwrap().port().unwrap();
    elsewhere.ws_url.set_port(Some(port)).unwrap();
    for config in [elsewhere, config] {
        match SimulatedCaller::connect(config, Duration::from_secs(5)).await {
            Err(CallerError::Rejected { status, body }) => {
                assert_eq!(status, 409, "{body}");
                assert!(body.contains("call_not_live"), "{body}");
            }
            Err(other) => panic!("refused the wrong way: {other}"),
            Ok(_) => panic!("a second stream was bridged"),
        }
    }
    first.hang_up().await.unwrap();
}

#[tokio::test]
async fn a_plain_get_of_the_stream_url_claims_nothing() {
    let (app, _fake) = bridge_app(Behaviour::with_mode(Mode::Echo)).await;
    let tenant = app.calling_tenant("Plain", "+14155550441", 5).await;
    configure_assistant(&app, &tenant, "pcm24k", "8k", None).await;
    let flow = stream_flow(&app, &tenant, "fj-plain").await;
    let call_id = call_id_of(&flow);
    let held_before = app.held_slots(&tenant).await;
    let url = url::Url::parse(flow["ws_url"].as_str().unwrap()).unwrap();
    let plain = format!("{}?{}", url.path(), url.query().unwrap());
    let response = app.get(&plain).await;
    assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_a_websocket");
    let call = app.call_log(&call_id).await;
    assert_eq!(call.media_stream_claimed_at, None, "not claimed");
    let held_after = app.held_slots(&tenant).await;
    assert_eq!(
        held_before[0].expires_at, held_after[0].expires_at,
        "the lease was not extended"
    );
    // The real stream still opens.
    let config = CallerConfig::from_flow(&flow, "fj-plain").unwrap();
    let caller = SimulatedCaller::connect(config, Duration::from_secs(5))
        .await
        .expect("the stream opens");
    caller.hang_up().await.unwrap();
}
