//! The fake against our own Teler client: happy paths, every injected failure, key checks,
//! body validation, hangups, recorded requests, and FreJun's webhooks and flow fetch played
//! against a stand-in receiver.

use super::validation::is_e164;
use super::*;
use crate::domain::secret::SecretString;
use crate::providers::teler::{InitiateCall, TelerClient, TelerError};
use crate::sim::frejun_payloads::{FAKE_ACCOUNT_ID, FAKE_CALL_APP_ID, events};

const KEY: &str = "teler-key-1";

fn key(value: &str) -> SecretString {
    SecretString::new(value)
}

fn client(fake: &FakeTeler, timeout: Duration) -> TelerClient {
    TelerClient::new(fake.base_url(), timeout)
}

fn new_call() -> InitiateCall {
    InitiateCall {
        from_number: "+918000000001".into(),
        to_number: "+14155550123".into(),
        flow_url: "https://voxbridge.example/teler/flow?t=abc".into(),
        status_callback_url: "https://voxbridge.example/teler/webhook?t=abc".into(),
        record: false,
    }
}

#[test]
fn ids_look_like_frejuns() {
    let id = ulid();
    assert_eq!(id.len(), 26);
    assert!(
        id.chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    );
    assert_ne!(ulid(), ulid());
    assert!(is_e164("+1234567") && is_e164("+123456789012345"));
    assert!(!is_e164("+123456") && !is_e164("+1234567890123456") && !is_e164("12345678"));
    assert_eq!(percent_decode("a%2Fb%20c%zz%4"), "a/b c%zz%4");
}

#[tokio::test]
async fn initiate_happy_path() {
    let fake = FakeTeler::start().await.unwrap();
    let client = client(&fake, Duration::from_secs(5));

    let call = client.initiate_call(&key(KEY), &new_call()).await.unwrap();

    assert!(
        call.id.starts_with("cs_") && call.id.len() == 29,
        "{call:?}"
    );
    assert_eq!(call.message.as_deref(), Some("Call initiated successfully"));
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/api/v1/voice/calls/initiate");
    assert_eq!(request.header("x-api-key"), Some(KEY));
    assert_eq!(request.header("X-Api-Key"), Some(KEY));
    assert_eq!(request.header("authorization"), None);
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("accept"), Some("application/json"));
    assert_eq!(
        request.header("user-agent"),
        Some(concat!("voxbridge/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(
        request.body,
        json!({
            "from_number": "+918000000001",
            "to_number": "+14155550123",
            "flow_url": "https://voxbridge.example/teler/flow?t=abc",
            "status_callback_url": "https://voxbridge.example/teler/webhook?t=abc",
            "record": false,
        })
    );
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].id, call.id);
    assert_eq!(calls[0].api_key, KEY);
    assert_eq!(calls[0].flow_url, new_call().flow_url);
    assert!(!calls[0].record && !calls[0].hung_up);
}

#[tokio::test]
async fn each_failure_maps_to_its_error() {
    let fake = FakeTeler::start().await.unwrap();
    let client = client(&fake, Duration::from_secs(5));
    type Check = fn(&TelerError) -> bool;
    let cases: Vec<(Failure, Check)> = vec![
        (
            Failure::InvalidKey401,
            |err| matches!(err, TelerError::Unauthorized { status: 401, message } if message == "Invalid API Key."),
        ),
        (Failure::InvalidKey403, |err| {
            matches!(err, TelerError::Unauthorized { status: 403, .. })
        }),
        (
            Failure::NumberNotProvisioned,
            |err| matches!(err, TelerError::NumberNotProvisioned { message } if message.contains("not provisioned")),
        ),
        (Failure::ValidationErrors, |err| {
            matches!(err, TelerError::Validation { status: 422, message, details }
                if message == "Validation Error"
                    && details.len() == 1
                    && details[0].starts_with("to_number: String should match pattern"))
        }),
        (Failure::ValidationDetail, |err| {
            matches!(err, TelerError::Validation { status: 422, details, .. }
                if details.len() == 1 && details[0].starts_with("to_number: "))
        }),
        (
            Failure::RateLimited {
                retry_after_secs: 3,
            },
            |err| matches!(err, TelerError::RateLimited { retry_after: Some(delay), .. } if *delay == Duration::from_secs(3)),
        ),
        (Failure::ServerError(500), |err| {
            matches!(
                err,
                TelerError::Unavailable {
                    status: Some(500),
                    ..
                }
            )
        }),
        (Failure::ServerError(502), |err| {
            matches!(
                err,
                TelerError::Unavailable {
                    status: Some(502),
                    ..
                }
            )
        }),
        (Failure::ServerError(503), |err| {
            matches!(
                err,
                TelerError::Unavailable {
                    status: Some(503),
                    ..
                }
            )
        }),
        (Failure::MalformedSuccess, |err| {
            matches!(err, TelerError::InvalidResponse { status: 202, .. })
        }),
    ];
    for (failure, check) in cases {
        fake.fail_with(failure.clone());
        // Twice: the failure persists until cleared.
        for _ in 0..2 {
            let err = client
                .initiate_call(&key(KEY), &new_call())
                .await
                .unwrap_err();
            assert!(check(&err), "{failure:?} gave {err:?}");
            assert!(!format!("{err} {err:?}").contains(KEY));
        }
    }
    assert!(fake.calls().is_empty());

    fake.clear_failure();
    client.initiate_call(&key(KEY), &new_call()).await.unwrap();
    assert_eq!(fake.calls().len(), 1);
    // Every request was recorded, the failed ones too.
    assert_eq!(fake.requests().len(), 21);
}

#[tokio::test]
async fn only_accepted_keys_get_through() {
    let fake = FakeTeler::start().await.unwrap();
    let client = client(&fake, Duration::from_secs(5));
    fake.accept_only_keys(&["good"]);

    let err = client
        .initiate_call(&key("bad"), &new_call())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TelerError::Unauthorized { status: 403, message } if message == "Invalid API Key."),
        "{err:?}"
    );
    client
        .initiate_call(&key("good"), &new_call())
        .await
        .unwrap();

    fake.accept_any_key();
    let err = client
        .initiate_call(&key(""), &new_call())
        .await
        .unwrap_err();
    assert!(matches!(err, TelerError::Unauthorized { status: 403, .. }));

    // A missing header is refused even when a failure is injected.
    fake.fail_with(Failure::ServerError(500));
    let response = reqwest::Client::new()
        .post(fake.base_url().join("voice/calls/initiate").unwrap())
        .json(&new_call())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);

    // A key that cannot be a header value is refused without a request.
    let before = fake.requests().len();
    let err = client
        .initiate_call(&key("bad\nkey"), &new_call())
        .await
        .unwrap_err();
    assert!(matches!(err, TelerError::Unauthorized { .. }));
    assert_eq!(fake.requests().len(), before);
}

#[tokio::test]
async fn the_fake_validates_initiate_bodies() {
    let fake = FakeTeler::start().await.unwrap();
    let client = client(&fake, Duration::from_secs(5));
    let bad = InitiateCall {
        to_number: "14155550123".into(),
        flow_url: "ftp://voxbridge.example/flow".into(),
        status_callback_url: "not a url".into(),
        ..new_call()
    };

    let err = client.initiate_call(&key(KEY), &bad).await.unwrap_err();
    match err {
        TelerError::Validation {
            status: 422,
            message,
            details,
        } => {
            assert_eq!(message, "Validation Error");
            assert_eq!(
                details,
                [
                    r"to_number: String should match pattern '^\+\d{7,15}$'",
                    "flow_url: URL scheme should be 'http' or 'https'",
                    "status_callback_url: Input should be a valid URL, relative URL without a base",
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(fake.calls().is_empty());

    let raw = reqwest::Client::new();
    let url = fake.base_url().join("voice/calls/initiate").unwrap();
    let response = raw
        .post(url.clone())
        .header("x-api-key", KEY)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 422);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["errors"][0]["type"], "json_invalid");
    assert_eq!(fake.requests().last().unwrap().body, Value::Null);

    let response = raw
        .post(url)
        .header("x-api-key", KEY)
        .json(&json!({"from_number": "+918000000001", "record": "yes"}))
        .send()
        .await
        .unwrap();
    let answer: Value = response.json().await.unwrap();
    let kinds: Vec<&str> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["missing", "missing", "missing", "bool_parsing"]);
}

#[tokio::test]
async fn the_legacy_path_behaves_the_same() {
    let fake = FakeTeler::start().await.unwrap();
    let response = reqwest::Client::new()
        .post(fake.base_url().join("calls/initiate").unwrap())
        .header("x-api-key", KEY)
        .json(&json!({
            "from_number": "+918000000001",
            "to_number": "+14155550123",
            "flow_url": "http://localhost:8080/flow",
            "status_callback_url": "http://localhost:8080/webhook",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let answer: Value = response.json().await.unwrap();
    let id = answer["data"]["id"].as_str().unwrap();
    assert_eq!(answer["data"]["record"], true);
    let calls = fake.calls();
    assert_eq!(calls[0].id, id);
    assert!(calls[0].record, "record defaults to true");
    assert_eq!(fake.requests()[0].path, "/api/v1/calls/initiate");
}

#[tokio::test]
async fn stall_past_the_timeout_is_a_timeout() {
    let fake = FakeTeler::start().await.unwrap();
    fake.fail_with(Failure::Stall(Duration::from_secs(3)));
    let impatient = client(&fake, Duration::from_millis(200));
    let started = std::time::Instant::now();
    let err = impatient
        .initiate_call(&key(KEY), &new_call())
        .await
        .unwrap_err();
    assert!(matches!(err, TelerError::Timeout), "{err:?}");
    assert_eq!(err.status(), None);
    assert!(started.elapsed() < Duration::from_secs(2));

    // A short stall only delays a normal answer.
    fake.fail_with(Failure::Stall(Duration::from_millis(50)));
    client(&fake, Duration::from_secs(5))
        .initiate_call(&key(KEY), &new_call())
        .await
        .unwrap();
    assert_eq!(fake.calls().len(), 1);
}

#[tokio::test]
async fn refused_connection_is_unavailable() {
    let port = {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        listener.local_addr().unwrap().port()
    };
    let base = Url::parse(&format!("http://127.0.0.1:{port}/api/v1")).unwrap();
    let client = TelerClient::new(base, Duration::from_secs(5));
    let err = client
        .initiate_call(&key(KEY), &new_call())
        .await
        .unwrap_err();
    match &err {
        TelerError::Unavailable {
            status: None,
            message,
        } => assert!(message.starts_with("cannot connect to Teler"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(!format!("{err:?}").contains(KEY));

    // The same after an explicit stop.
    let fake = FakeTeler::start().await.unwrap();
    let client = client_for(&fake);
    fake.stop().await;
    let err = client
        .initiate_call(&key(KEY), &new_call())
        .await
        .unwrap_err();
    assert!(
        matches!(err, TelerError::Unavailable { status: None, .. }),
        "{err:?}"
    );
}

fn client_for(fake: &FakeTeler) -> TelerClient {
    client(fake, Duration::from_secs(5))
}

#[tokio::test]
async fn hangup_happy_then_not_live_and_not_found() {
    let fake = FakeTeler::start().await.unwrap();
    let client = client_for(&fake);
    let call = client.initiate_call(&key(KEY), &new_call()).await.unwrap();

    client
        .hangup(&key(KEY), &call.id, None, "key-1")
        .await
        .unwrap();
    assert!(fake.calls()[0].hung_up);
    let request = fake.requests().pop().unwrap();
    assert_eq!(
        request.path,
        format!("/api/v1/voice/calls/{}/hangup", call.id)
    );
    assert_eq!(request.body, json!({}));
    assert_eq!(request.header("x-api-key"), Some(KEY));
    assert_eq!(request.header("idempotency-key"), Some("key-1"));
    // The same request again (a retry after a lost answer) gets the same answer.
    client
        .hangup(&key(KEY), &call.id, None, "key-1")
        .await
        .unwrap();

    let err = client
        .hangup(&key(KEY), &call.id, Some("NORMAL_CLEARING"), "key-2")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TelerError::Conflict { code: Some(code), .. } if code == "call_not_live"),
        "{err:?}"
    );
    let request = fake.requests().pop().unwrap();
    assert_eq!(request.body, json!({"reason": "NORMAL_CLEARING"}));
    assert_eq!(request.header("idempotency-key"), Some("key-2"));

    let err = client
        .hangup(&key(KEY), "cs_UNKNOWN", None, "key-3")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TelerError::NotFound { message } if message == "Call not found"),
        "{err:?}"
    );

    // Another account's key cannot see the call.
    let second = client.initiate_call(&key(KEY), &new_call()).await.unwrap();
    let err = client
        .hangup(&key("other-tenant"), &second.id, None, "key-4")
        .await
        .unwrap_err();
    assert!(matches!(err, TelerError::NotFound { .. }), "{err:?}");
    assert!(!fake.calls()[1].hung_up);

    // Injected failures apply to hangups too.
    fake.fail_with(Failure::ServerError(503));
    let err = client
        .hangup(&key(KEY), &second.id, None, "key-5")
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        TelerError::Unavailable {
            status: Some(503),
            ..
        }
    ));
}

#[tokio::test]
async fn call_ids_are_one_path_segment() {
    let fake = FakeTeler::start().await.unwrap();
    let client = client_for(&fake);
    let err = client
        .hangup(&key(KEY), "a/b c?d", None, "key-1")
        .await
        .unwrap_err();
    assert!(matches!(err, TelerError::NotFound { .. }));
    assert_eq!(
        fake.requests()[0].path,
        "/api/v1/voice/calls/a%2Fb%20c%3Fd/hangup"
    );

    // Ids the URL would swallow are refused without a request.
    for id in ["", ".", ".."] {
        let err = client
            .hangup(&key(KEY), id, None, "key-1")
            .await
            .unwrap_err();
        assert!(matches!(err, TelerError::NotFound { .. }));
    }
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn unknown_paths_wrong_methods_and_big_bodies_are_recorded() {
    let fake = FakeTeler::start().await.unwrap();
    let raw = reqwest::Client::new();
    let base = fake.base_url();

    let status = |response: reqwest::Response| response.status().as_u16();
    let get = raw.get(base.join("voice/calls/initiate").unwrap());
    assert_eq!(status(get.send().await.unwrap()), 405);
    let unknown = raw.post(base.join("voice/apps").unwrap());
    assert_eq!(status(unknown.send().await.unwrap()), 404);
    let big = raw
        .post(base.join("voice/calls/initiate").unwrap())
        .header("x-api-key", KEY)
        .body(vec![b' '; BODY_LIMIT + 1]);
    assert_eq!(status(big.send().await.unwrap()), 413);

    let paths: Vec<(String, String)> = fake
        .requests()
        .into_iter()
        .map(|request| (request.method, request.path))
        .collect();
    assert_eq!(
        paths,
        [
            ("GET".to_owned(), "/api/v1/voice/calls/initiate".to_owned()),
            ("POST".to_owned(), "/api/v1/voice/apps".to_owned()),
            ("POST".to_owned(), "/api/v1/voice/calls/initiate".to_owned()),
        ]
    );
}

/// A stand-in for our own webhook and flow endpoints: records what it receives.
struct Receiver {
    address: SocketAddr,
    received: Arc<Mutex<Vec<(String, Value)>>>,
    handle: ServerHandle,
}

impl Receiver {
    async fn start() -> Receiver {
        async fn receive(
            request: HttpRequest,
            body: web::Json<Value>,
            received: web::Data<Mutex<Vec<(String, Value)>>>,
        ) -> HttpResponse {
            received
                .lock()
                .unwrap()
                .push((request.path().to_owned(), body.into_inner()));
            if request.path() == "/flow" {
                HttpResponse::Ok().json(json!({
                    "action": "stream",
                    "ws_url": "wss://voxbridge.example/teler/ws",
                    "chunk_size": 500,
                    "sample_rate": "8k",
                    "record": true,
                }))
            } else {
                HttpResponse::Ok().body("received")
            }
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let address = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let data = web::Data::from(Arc::clone(&received));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/webhook", web::post().to(receive))
                .route("/flow", web::post().to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver {
            address,
            received,
            handle,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

#[tokio::test]
async fn plays_frejun_webhooks_and_flow_fetch() {
    let fake = FakeTeler::start().await.unwrap();
    let receiver = Receiver::start().await;

    let event = events::call_completed(
        "cs_1",
        "+918000000001",
        "+14155550123",
        42,
        "2026-01-01T00:00:42Z",
    );
    let status = fake
        .send_webhook(&receiver.url("/webhook"), &event)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (status, flow) = fake
        .fetch_flow(
            &receiver.url("/flow"),
            "cs_1",
            "+918000000001",
            "+14155550123",
            "outbound",
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(flow["action"], "stream");
    // A path the receiver does not serve.
    let status = fake
        .send_webhook(&receiver.url("/nowhere"), &event)
        .await
        .unwrap();
    assert_eq!(status, 404);

    let received = receiver.received.lock().unwrap().clone();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].0, "/webhook");
    assert_eq!(
        received[0].1,
        json!({
            "event": "call.completed",
            "account_id": FAKE_ACCOUNT_ID,
            "call_app_id": FAKE_CALL_APP_ID,
            "data": {
                "call_id": "cs_1",
                "from": "+918000000001",
                "to": "+14155550123",
                "duration": 42,
                "hangup_time": "2026-01-01T00:00:42Z",
            }
        })
    );
    assert_eq!(
        received[1],
        (
            "/flow".to_owned(),
            json!({
                "call_id": "cs_1",
                "account_id": FAKE_ACCOUNT_ID,
                "from_number": "+918000000001",
                "to_number": "+14155550123",
                "direction": "outbound",
            })
        )
    );
    receiver.handle.stop(false).await;
}

#[tokio::test]
async fn hangups_need_a_reason_in_frejuns_pattern_and_an_idempotency_key() {
    let fake = FakeTeler::start().await.unwrap();
    let client = client_for(&fake);
    let call = fake.receive_call(KEY, "+14155550100", "+14155550199");
    assert_eq!(call.direction, "inbound");

    let err = client
        .hangup(&key(KEY), &call.id, Some("max duration"), "key-1")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TelerError::Validation { details, .. } if details.iter().any(|d| d.contains("reason"))),
        "{err:?}"
    );
    let raw = reqwest::Client::new()
        .post(format!("{}voice/calls/{}/hangup", fake.base_url(), call.id))
        .header("x-api-key", KEY)
        .json(&json!({"reason": "MAX_DURATION"}))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 422, "no Idempotency-Key");
    assert!(!fake.calls()[0].hung_up);

    client
        .hangup(
            &key(KEY),
            &call.id,
            Some("MAX_DURATION"),
            "voxbridge-hangup-1",
        )
        .await
        .unwrap();
    let ended = &fake.calls()[0];
    assert!(ended.hung_up);
    assert_eq!(ended.hangup_reason.as_deref(), Some("MAX_DURATION"));
    assert_eq!(ended.hangup_key.as_deref(), Some("voxbridge-hangup-1"));
}

#[tokio::test]
async fn a_failure_for_the_next_requests_only_then_recovers() {
    let fake = FakeTeler::start().await.unwrap();
    let client = client_for(&fake);
    let call = fake.receive_call(KEY, "+14155550100", "+14155550199");
    fake.fail_next(2, Failure::ServerError(502));
    for _ in 0..2 {
        let err = client
            .hangup(&key(KEY), &call.id, None, "k")
            .await
            .unwrap_err();
        assert!(matches!(err, TelerError::Unavailable { .. }), "{err:?}");
    }
    client.hangup(&key(KEY), &call.id, None, "k").await.unwrap();
}

#[tokio::test]
async fn in_call_operations_follow_frejuns_rules() {
    use crate::providers::teler::operations::TransferTarget;
    let fake = FakeTeler::start().await.unwrap();
    let client = client_for(&fake);
    let call = fake.receive_call(KEY, "+14155550100", "+14155550199");

    client
        .send_dtmf(&key(KEY), &call.id, "12#*A", "k-1")
        .await
        .unwrap();
    let err = client
        .send_dtmf(&key(KEY), &call.id, "12x", "k-2")
        .await
        .unwrap_err();
    assert!(
        matches!(err, TelerError::Validation { status: 422, .. }),
        "{err:?}"
    );
    let playback = client
        .play(&key(KEY), &call.id, "https://media.example/hold.wav", "k-3")
        .await
        .unwrap();
    assert!(playback.is_some_and(|id| id.starts_with("pb_")));
    let err = client
        .play(&key(KEY), &call.id, "http://media.example/hold.wav", "k-4")
        .await
        .unwrap_err();
    assert!(
        matches!(err, TelerError::Validation { status: 422, .. }),
        "{err:?}"
    );

    // A SIP target without `sip:` and a bad number are FreJun's 400 `invalid_target`.
    for target in [
        TransferTarget::Sip("desk@pbx.example.com".into()),
        TransferTarget::Pstn("12345".into()),
    ] {
        let err = client
            .transfer(&key(KEY), &call.id, &target, "k-5")
            .await
            .unwrap_err();
        assert!(
            matches!(err, TelerError::Validation { status: 400, .. }),
            "{err:?}"
        );
    }
    let started = client
        .transfer(
            &key(KEY),
            &call.id,
            &TransferTarget::Sip("sip:desk@pbx.example.com:5060".into()),
            "k-6",
        )
        .await
        .unwrap();
    assert!(started.operation_id.is_some_and(|id| id.starts_with("op_")));
    assert_eq!(started.status.as_deref(), Some("initiated"));
    let at_frejun = &fake.calls()[0];
    assert_eq!(
        at_frejun.operations,
        [
            "dtmf:12#*A",
            "play:https://media.example/hold.wav",
            "transfer:sip:desk@pbx.example.com:5060"
        ]
    );
    // The caller left: the call is no longer live here.
    let err = client
        .send_dtmf(&key(KEY), &call.id, "1", "k-7")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TelerError::Conflict { code: Some(code), .. } if code == "call_not_live"),
        "{err:?}"
    );

    // The raw API: warm transfers are 400, an unknown kind 422, unknown keys 422, no
    // idempotency key 422.
    let other = fake.receive_call(KEY, "+14155550100", "+14155550198");
    let raw = reqwest::Client::new();
    let post = |body: serde_json::Value, with_key: bool| {
        let mut request = raw
            .post(format!(
                "{}voice/calls/{}/transfer",
                fake.base_url(),
                other.id
            ))
            .header("x-api-key", KEY)
            .json(&body);
        if with_key {
            request = request.header("idempotency-key", "raw-1");
        }
        request.send()
    };
    let status = |response: reqwest::Response| response.status().as_u16();
    let pstn = json!({"kind": "pstn", "number": "+14155550123"});
    assert_eq!(
        status(
            post(json!({"target": pstn, "mode": "warm"}), true)
                .await
                .unwrap()
        ),
        400
    );
    assert_eq!(
        status(
            post(json!({"target": {"kind": "number"}}), true)
                .await
                .unwrap()
        ),
        422
    );
    assert_eq!(
        status(
            post(json!({"target": pstn, "extra": 1}), true)
                .await
                .unwrap()
        ),
        422
    );
    assert_eq!(
        status(post(json!({"target": pstn}), false).await.unwrap()),
        422
    );
    assert!(!fake.calls()[1].hung_up, "nothing refused changed the call");
}
