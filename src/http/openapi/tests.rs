//! The drift guard. The document is generated from `#[utoipa::path]` attributes, which the
//! compiler does not check against the route table in [`crate::http::app`]; these tests do,
//! by running the real app in-process (no database: requests without valid credentials are
//! refused before any query, and the few that reach the database fail fast).

use std::collections::{BTreeMap, BTreeSet};

use actix_web::http::Method;
use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE};
use actix_web::test::{self, TestRequest};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::domain::assistant::{AssistantSpec, AudioConfig, TurnDetection};
use crate::domain::call::CallStatus;
use crate::domain::tenant::{Limits, TENANT_NAME_MAX_CHARS};
use crate::http::AppState;
use crate::settings::Settings;
use crate::storage::Storage;

/// Stands in for every `{param}` of a path: a well-formed id that names nothing.
const PLACEHOLDER_ID: &str = "000000000000000000000000";

/// Every method a route could be registered with.
const METHODS: [Method; 8] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::HEAD,
    Method::OPTIONS,
    Method::TRACE,
];

/// Every route the app serves, as a readable index. The tests check it against both the
/// document and the routes actix actually registered, so it cannot go stale silently.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/api/frejun/health"),
    ("GET", "/api/openapi.json"),
    ("GET", "/metrics"),
    ("POST", "/api/admin/users"),
    ("GET", "/api/admin/users"),
    ("GET", "/api/admin/users/{user_id}"),
    ("PATCH", "/api/admin/users/{user_id}"),
    ("POST", "/api/admin/users/{user_id}/suspend"),
    ("POST", "/api/admin/users/{user_id}/reactivate"),
    ("POST", "/api/admin/users/{user_id}/api-keys"),
    ("GET", "/api/admin/users/{user_id}/api-keys"),
    ("DELETE", "/api/admin/users/{user_id}/api-keys/{key_id}"),
    ("GET", "/api/admin/calls"),
    ("GET", "/api/me"),
    ("PUT", "/api/me/credentials"),
    ("POST", "/api/me/frejun-url-secret/rotate"),
    ("POST", "/api/assistants"),
    ("GET", "/api/assistants"),
    ("GET", "/api/assistants/{assistant_id}"),
    ("PATCH", "/api/assistants/{assistant_id}"),
    ("DELETE", "/api/assistants/{assistant_id}"),
    ("POST", "/api/phone-numbers"),
    ("GET", "/api/phone-numbers"),
    ("GET", "/api/phone-numbers/{number_id}"),
    ("PATCH", "/api/phone-numbers/{number_id}"),
    ("DELETE", "/api/phone-numbers/{number_id}"),
    ("POST", "/api/phone-numbers/{number_id}/assign"),
    ("POST", "/api/phone-numbers/{number_id}/unassign"),
    ("GET", "/api/calls"),
    ("GET", "/api/calls/active"),
    ("GET", "/api/calls/history"),
    ("GET", "/api/calls/stats"),
    ("GET", "/api/calls/{call_id}"),
    ("GET", "/api/calls/{call_id}/status"),
    ("POST", "/api/calls/{call_id}/hangup"),
    ("POST", "/api/calls/{call_id}/interrupt"),
    ("POST", "/api/calls/{call_id}/clear"),
    ("POST", "/api/calls/{call_id}/context"),
    ("GET", "/api/websocket/streams"),
    ("POST", "/api/websocket/interrupt/{connection_id}"),
    ("POST", "/api/websocket/clear/{connection_id}"),
    ("GET", "/api/frejun/media-stream/{assistant_id}"),
    ("POST", "/api/frejun/flow"),
    ("POST", "/api/frejun/webhook"),
    ("POST", "/api/frejun/initiate-call"),
    ("POST", "/api/calls/initiate"),
    ("GET", "/api/calls/{call_id}/recording"),
    ("POST", "/api/calls/{call_id}/transfer"),
    ("POST", "/api/calls/{call_id}/analyze"),
    ("POST", "/api/ai/conversation"),
    ("GET", "/api/ai/status"),
    ("GET", "/api/me/secrets"),
    ("PUT", "/api/me/secrets/{name}"),
    ("DELETE", "/api/me/secrets/{name}"),
    ("POST", "/api/me/tool-signing-secret/rotate"),
    ("POST", "/api/assistants/{assistant_id}/tools/{name}/test"),
    ("POST", "/api/webhook-endpoints"),
    ("GET", "/api/webhook-endpoints"),
    ("GET", "/api/webhook-endpoints/{endpoint_id}"),
    ("PATCH", "/api/webhook-endpoints/{endpoint_id}"),
    ("DELETE", "/api/webhook-endpoints/{endpoint_id}"),
    ("POST", "/api/webhook-endpoints/{endpoint_id}/rotate-secret"),
    ("POST", "/api/webhook-endpoints/{endpoint_id}/test"),
    ("GET", "/api/webhook-events"),
    ("GET", "/api/webhook-events/{event_id}"),
    ("POST", "/api/webhook-events/{event_id}/redeliver"),
];

/// The endpoints FreJun calls, authenticated by the `key` query parameter.
const FREJUN_CALLBACKS: [&str; 2] = ["/api/frejun/flow", "/api/frejun/webhook"];

/// FreJun's media WebSocket, authenticated by the signed token in its URL.
const MEDIA_STREAM: &str = "/api/frejun/media-stream/{assistant_id}";

/// Tags of the operations that take no credentials.
const PUBLIC_TAGS: [&str; 2] = ["health", "openapi"];

type Route = (String, String);

fn document() -> Value {
    serde_json::to_value(ApiDoc::openapi()).expect("the document serializes")
}

/// Every (METHOD, path) the document describes.
fn documented_routes(doc: &Value) -> BTreeSet<Route> {
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            if METHODS
                .iter()
                .any(|known| known.as_str().eq_ignore_ascii_case(method))
            {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

fn operations(doc: &Value) -> Vec<(Route, &Value)> {
    documented_routes(doc)
        .into_iter()
        .map(|(method, path)| {
            let operation = &doc["paths"][&path][method.to_lowercase()];
            ((method, path), operation)
        })
        .collect()
}

fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').expect("a closed {param}") + start;
        out.push_str(&rest[..start]);
        out.push_str(PLACEHOLDER_ID);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn path_params(path: &str) -> BTreeSet<String> {
    path.split('{')
        .skip(1)
        .map(|piece| {
            piece
                .split('}')
                .next()
                .expect("a closed {param}")
                .to_owned()
        })
        .collect()
}

async fn state() -> AppState {
    let mut settings = Settings::for_tests(
        "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=100",
        "drift",
    );
    // Nothing listens there: the requests that reach the database fail fast.
    settings.mongodb.server_selection_timeout_ms = 100;
    settings.mongodb.ping_timeout_ms = 100;
    // `/metrics` is served only with a token.
    settings.metrics.token = Some(crate::domain::secret::SecretString::new(
        "drift-metrics-token-0123456789abcdef0123",
    ));
    let uri = settings.mongodb.uri.clone().expect("a test URI");
    let storage = Storage::connect(&uri, &settings.mongodb)
        .await
        .expect("connecting is lazy");
    AppState::new(settings, storage, CancellationToken::new())
}

/// What the app answered to one request.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// The route pattern actix matched, if any.
    pattern: Option<String>,
    content_type: Option<String>,
    body: Value,
}

impl Answer {
    fn error(&self) -> (&str, &str) {
        (
            self.body["error"]["code"].as_str().unwrap_or_default(),
            self.body["error"]["message"].as_str().unwrap_or_default(),
        )
    }

    /// Whether some route of the app took the request with its method.
    fn is_served(&self) -> bool {
        self.status != 405
            && !(self.status == 404 && self.error() == ("not_found", "no such route"))
    }
}

/// Sends each `(method, uri, bearer token)` to one in-process instance of the real app.
async fn send_all(requests: Vec<(Method, String, Option<&str>)>) -> Vec<Answer> {
    let app = test::init_service(crate::http::app(state().await)).await;
    let app = &app;
    futures_util::future::join_all(requests.into_iter().map(|(method, uri, token)| async move {
        let mut request = TestRequest::default().method(method).uri(&uri);
        if let Some(token) = token {
            request = request.insert_header((AUTHORIZATION, format!("Bearer {token}")));
        }
        let response = test::call_service(app, request.to_request()).await;
        let pattern = response.request().match_pattern();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let status = response.status().as_u16();
        let body = serde_json::from_slice(&test::read_body(response).await).unwrap_or(Value::Null);
        Answer {
            status,
            pattern,
            content_type,
            body,
        }
    }))
    .await
}

/// The path pattern of every resource registered in the app, read from actix's own route
/// table (`ResourceMap`). actix offers no public way to list it, so this reads its `Debug`
/// form; the assertions make any change in that form fail the test rather than pass it.
async fn registered_patterns() -> BTreeSet<String> {
    let app = test::init_service(crate::http::app(state().await)).await;
    let response = test::call_service(&app, TestRequest::get().uri("/health").to_request()).await;
    let table = format!("{:?}", response.request().resource_map());
    assert!(
        !table.contains("Multi("),
        "a resource has several patterns; teach registered_patterns to read them"
    );
    assert_eq!(
        table.matches("is_prefix: true").count(),
        1,
        "the app registers a scope (only the root should be a prefix); teach \
         registered_patterns to join scope prefixes"
    );
    let patterns: BTreeSet<String> = table
        .split("patterns: Single(\"")
        .skip(1)
        .map(|rest| {
            rest.split("\")")
                .next()
                .expect("a closed pattern")
                .to_owned()
        })
        .filter(|pattern| !pattern.is_empty())
        .collect();
    assert!(
        patterns.contains("/health") && patterns.contains("/api/calls/{call_id}"),
        "cannot read the route table from actix's ResourceMap: {patterns:?}"
    );
    patterns
}

fn table_routes() -> BTreeSet<Route> {
    let routes: BTreeSet<Route> = ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    assert_eq!(routes.len(), ROUTES.len(), "ROUTES lists a route twice");
    routes
}

fn describe(routes: &BTreeSet<Route>) -> String {
    routes
        .iter()
        .map(|(method, path)| format!("\n  {method} {path}"))
        .collect()
}

/// (1) Every documented operation exists in the app with that method, on that very route
/// (not on an earlier `{param}` route that shadows it).
#[actix_web::test]
async fn every_documented_operation_is_served() {
    let documented: Vec<Route> = documented_routes(&document()).into_iter().collect();
    let answers = send_all(
        documented
            .iter()
            .map(|(method, path)| (method.parse().expect("a method"), concrete(path), None))
            .collect(),
    )
    .await;
    for ((method, path), answer) in documented.iter().zip(&answers) {
        assert!(
            answer.is_served(),
            "{method} {path} is documented but the app does not serve it: {answer:?}"
        );
        assert_eq!(
            answer.pattern.as_deref(),
            Some(path.as_str()),
            "{method} {path} is documented but the request was routed to another pattern"
        );
    }
}

/// (2) The document describes exactly the routes the app registers: the paths actix holds,
/// each with exactly the methods it answers (every other method answers 405), and the same
/// as the ROUTES index.
#[actix_web::test]
async fn the_app_serves_exactly_the_documented_routes() {
    let documented = documented_routes(&document());
    let patterns: Vec<String> = registered_patterns().await.into_iter().collect();
    let probes: Vec<(String, Method)> = patterns
        .iter()
        .flat_map(|path| {
            METHODS
                .iter()
                .map(move |method| (path.clone(), method.clone()))
        })
        .collect();
    let answers = send_all(
        probes
            .iter()
            .map(|(path, method)| (method.clone(), concrete(path), None))
            .collect(),
    )
    .await;
    let mut served = BTreeSet::new();
    for ((path, method), answer) in probes.iter().zip(&answers) {
        if answer.is_served() {
            assert_eq!(
                answer.pattern.as_deref(),
                Some(path.as_str()),
                "{method} {path}"
            );
            served.insert((method.to_string(), path.clone()));
        }
    }

    assert!(
        served == documented,
        "the document and the app disagree.\nserved, not documented:{}\ndocumented, not served:{}",
        describe(&served.difference(&documented).cloned().collect()),
        describe(&documented.difference(&served).cloned().collect()),
    );
    let table = table_routes();
    assert!(
        table == served,
        "ROUTES is out of date.\nserved, not in ROUTES:{}\nin ROUTES, not served:{}",
        describe(&served.difference(&table).cloned().collect()),
        describe(&table.difference(&served).cloned().collect()),
    );
}

/// (3) Every operation has a 2xx answer, a tag, a unique operation id, its path parameters,
/// and (except health and this document) a security requirement naming a defined scheme.
#[test]
fn every_operation_is_complete() {
    let doc = document();
    let schemes: BTreeSet<&String> = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes")
        .keys()
        .collect();
    let mut operation_ids = BTreeSet::new();
    for ((method, path), operation) in operations(&doc) {
        let at = format!("{method} {path}");
        let responses = operation["responses"].as_object().expect("responses");
        // A WebSocket endpoint succeeds with 101 Switching Protocols, and the recording with a
        // 302 to it.
        assert!(
            responses
                .keys()
                .any(|status| status.starts_with('2') || status == "101" || status == "302"),
            "{at} documents no 2xx answer"
        );
        for (status, response) in responses {
            assert!(
                response.get("$ref").is_some()
                    || response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                "{at}: answer {status} has no description"
            );
        }
        let tags = operation["tags"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        assert!(!tags.is_empty(), "{at} has no tag");
        let id = operation["operationId"].as_str().expect("an operation id");
        assert!(
            operation_ids.insert(id.to_owned()),
            "{at}: operation id {id} is used twice"
        );

        let documented_params: BTreeSet<String> = operation["parameters"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|param| param["in"] == "path")
            .map(|param| param["name"].as_str().expect("a name").to_owned())
            .collect();
        assert_eq!(
            documented_params,
            path_params(&path),
            "{at}: path parameters"
        );

        let public = tags
            .iter()
            .any(|tag| PUBLIC_TAGS.contains(&tag.as_str().unwrap_or_default()));
        let security = operation["security"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if public {
            assert!(
                security.is_empty(),
                "{at} is public but names a security scheme"
            );
        } else {
            assert!(!security.is_empty(), "{at} has no security requirement");
            for requirement in security {
                for scheme in requirement.as_object().expect("a requirement").keys() {
                    assert!(schemes.contains(scheme), "{at}: unknown scheme {scheme}");
                }
            }
            // FreJun's own endpoints carry the tenant's URL secret instead of a bearer key.
            let expected = if path.starts_with("/api/admin/") {
                "admin_token"
            } else if FREJUN_CALLBACKS.contains(&path.as_str()) {
                "frejun_key"
            } else if path == MEDIA_STREAM {
                "media_token"
            } else if path == "/metrics" {
                "metrics_token"
            } else {
                "api_key"
            };
            assert!(
                security
                    .iter()
                    .all(|requirement| requirement.get(expected).is_some()),
                "{at} should require {expected}"
            );
        }
    }
}

/// The documented security matches the extractor each handler really uses: with a wrong
/// token, admin routes answer "invalid admin token" and tenant routes look the key up
/// (answering something else); public routes do not ask for credentials at all.
///
/// actix runs a handler's extractors together and answers the first failure, so on a tenant
/// route whose key lookup is still waiting for the database, a missing or malformed body
/// is reported first (e.g. 415).
#[actix_web::test]
async fn documented_security_matches_the_handlers() {
    let doc = document();
    let operations = operations(&doc);
    let answers = send_all(
        operations
            .iter()
            .map(|((method, path), _)| {
                (
                    method.parse().expect("a method"),
                    concrete(path),
                    Some("not-a-real-token"),
                )
            })
            .collect(),
    )
    .await;
    for (((method, path), operation), answer) in operations.iter().zip(&answers) {
        let schemes: BTreeSet<&str> = operation["security"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .flat_map(|requirement| requirement.as_object().expect("a requirement").keys())
            .map(String::as_str)
            .collect();
        let refused_as_admin = answer.status == 401 && answer.error().1 == "invalid admin token";
        let at = format!("{method} {path}: {answer:?}");
        match schemes.iter().copied().collect::<Vec<_>>().as_slice() {
            ["admin_token"] => assert!(refused_as_admin, "{at}"),
            // No `key` in the URL: refused before anything else.
            ["frejun_key"] => assert!(
                answer.status == 401 && answer.error().0 == "invalid_frejun_key",
                "{at}"
            ),
            // No token: refused before anything is read.
            ["media_token"] => assert!(
                answer.status == 401 && answer.error().0 == "invalid_media_token",
                "{at}"
            ),
            // Only the metrics token opens it, not the admin token or a tenant key.
            ["metrics_token"] => assert!(
                answer.status == 401 && answer.error().1 == "invalid metrics token",
                "{at}"
            ),
            ["api_key"] => {
                let body_error = operation.get("requestBody").is_some()
                    && matches!(answer.status, 400 | 413 | 415 | 422);
                assert!(!refused_as_admin, "{at}");
                assert!(
                    matches!(answer.status, 401 | 403 | 503) || body_error,
                    "{at}"
                );
            }
            [] => assert!(answer.status != 401 && answer.status != 403, "{at}"),
            other => panic!("{at}: unexpected schemes {other:?}"),
        }
    }
}

/// (4) The document is served, as JSON, and is the generated one.
#[actix_web::test]
async fn the_document_is_served() {
    let answers = send_all(vec![(Method::GET, "/api/openapi.json".to_owned(), None)]).await;
    let answer = &answers[0];
    assert_eq!(answer.status, 200);
    assert!(
        answer
            .content_type
            .as_deref()
            .is_some_and(|ct| ct.starts_with("application/json")),
        "{answer:?}"
    );
    let served = &answer.body;
    assert!(
        served["openapi"]
            .as_str()
            .is_some_and(|version| version.starts_with("3."))
    );
    assert_eq!(served["info"]["title"], "voxbridge");
    assert_eq!(served["info"]["version"], env!("CARGO_PKG_VERSION"));
    for schema in ["AssistantSpec", "CallDetail", "ErrorEnvelope"] {
        assert!(
            served["components"]["schemas"].get(schema).is_some(),
            "no {schema} schema"
        );
    }
    for scheme in ["admin_token", "api_key"] {
        let scheme = &served["components"]["securitySchemes"][scheme];
        assert_eq!(
            (&scheme["type"], &scheme["scheme"]),
            (&"http".into(), &"bearer".into())
        );
    }
    assert_eq!(*served, document());
}

/// Every `$ref` names a component that exists.
#[test]
fn every_reference_resolves() {
    fn walk<'a>(value: &'a Value, refs: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    refs.push(target);
                }
                map.values().for_each(|child| walk(child, refs));
            }
            Value::Array(items) => items.iter().for_each(|child| walk(child, refs)),
            _ => {}
        }
    }
    let doc = document();
    let mut refs = Vec::new();
    walk(&doc, &mut refs);
    assert!(!refs.is_empty());
    for target in refs {
        let pointer = target.strip_prefix('#').expect("a local reference");
        assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
    }
}

/// Envelopes refer to their data's schema instead of holding a copy of it.
#[test]
fn envelopes_refer_to_their_data() {
    let doc = document();
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let mut seen = 0;
    for (name, schema) in schemas {
        let (data, argument) = if let Some(argument) = name.strip_prefix("ListEnvelope_") {
            (&schema["properties"]["data"]["items"], argument)
        } else if let Some(argument) = name.strip_prefix("Envelope_") {
            (&schema["properties"]["data"], argument)
        } else {
            continue;
        };
        seen += 1;
        assert_eq!(
            data["$ref"].as_str(),
            Some(format!("#/components/schemas/{argument}").as_str()),
            "{name}"
        );
    }
    assert!(seen > 10, "envelope schemas are not named as expected");
}

/// The bounds written as `#[schema(...)]` literals are the ones the code enforces.
#[test]
fn documented_bounds_match_the_rules() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let checks: &[(&[&str], &str, &str, f64)] = &[
        (
            &["Limits", "CreateUserRequest", "UpdateUserRequest"],
            "max_concurrent_calls",
            "minimum",
            Limits::MIN_CONCURRENT_CALLS.into(),
        ),
        (
            &["Limits", "CreateUserRequest", "UpdateUserRequest"],
            "max_concurrent_calls",
            "maximum",
            Limits::MAX_CONCURRENT_CALLS.into(),
        ),
        (
            &[
                "Limits",
                "CreateUserRequest",
                "UpdateUserRequest",
                "AssistantSpec",
                "NewAssistant",
                "AssistantPatch",
            ],
            "max_call_seconds",
            "minimum",
            Limits::MIN_CALL_SECONDS.into(),
        ),
        (
            &[
                "Limits",
                "CreateUserRequest",
                "UpdateUserRequest",
                "AssistantSpec",
                "NewAssistant",
                "AssistantPatch",
            ],
            "max_call_seconds",
            "maximum",
            Limits::MAX_CALL_SECONDS.into(),
        ),
        (
            &["CreateUserRequest", "UpdateUserRequest"],
            "name",
            "maxLength",
            TENANT_NAME_MAX_CHARS as f64,
        ),
        (
            &["CreateApiKeyRequest"],
            "name",
            "maxLength",
            crate::domain::tenant::API_KEY_NAME_MAX_CHARS as f64,
        ),
        (
            &["PutCredentialsRequest"],
            "openai_api_key",
            "maxLength",
            crate::domain::secret::PROVIDER_KEY_MAX_CHARS as f64,
        ),
        (
            &["PutCredentialsRequest"],
            "frejun_api_key",
            "maxLength",
            crate::domain::secret::PROVIDER_KEY_MAX_CHARS as f64,
        ),
        (
            &["AssistantSpec", "NewAssistant", "AssistantPatch"],
            "name",
            "maxLength",
            AssistantSpec::NAME_MAX_CHARS as f64,
        ),
        (
            &["AssistantSpec", "NewAssistant", "AssistantPatch"],
            "instructions",
            "maxLength",
            AssistantSpec::INSTRUCTIONS_MAX_CHARS as f64,
        ),
        (
            &["AssistantSpec", "NewAssistant", "AssistantPatch"],
            "greeting",
            "maxLength",
            AssistantSpec::GREETING_MAX_CHARS as f64,
        ),
        (
            &[
                "AssistantSpec",
                "NewAssistant",
                "AssistantPatch",
                "Transcription",
            ],
            "model",
            "maxLength",
            AssistantSpec::MODEL_MAX_CHARS as f64,
        ),
        (
            &[
                "AssistantSpec",
                "NewAssistant",
                "AssistantPatch",
                "Transcription",
            ],
            "language",
            "minLength",
            AssistantSpec::LANGUAGE_MIN_CHARS as f64,
        ),
        (
            &[
                "AssistantSpec",
                "NewAssistant",
                "AssistantPatch",
                "Transcription",
            ],
            "language",
            "maxLength",
            AssistantSpec::LANGUAGE_MAX_CHARS as f64,
        ),
        (
            &["TurnDetection"],
            "prefix_padding_ms",
            "maximum",
            TurnDetection::MAX_PREFIX_PADDING_MS.into(),
        ),
        (
            &["TurnDetection"],
            "silence_duration_ms",
            "maximum",
            TurnDetection::MAX_SILENCE_DURATION_MS.into(),
        ),
        (
            &["AudioConfig"],
            "inbound_chunk_ms",
            "minimum",
            AudioConfig::MIN_CHUNK_MS.into(),
        ),
        (
            &["AudioConfig"],
            "inbound_chunk_ms",
            "maximum",
            AudioConfig::MAX_CHUNK_MS.into(),
        ),
        (
            &["AudioConfig"],
            "inbound_chunk_ms",
            "multipleOf",
            AudioConfig::CHUNK_MS_STEP.into(),
        ),
        (
            &["AudioConfig"],
            "outbound_chunk_ms",
            "minimum",
            AudioConfig::MIN_CHUNK_MS.into(),
        ),
        (
            &["AudioConfig"],
            "outbound_chunk_ms",
            "maximum",
            AudioConfig::MAX_CHUNK_MS.into(),
        ),
        (
            &["AudioConfig"],
            "outbound_chunk_ms",
            "multipleOf",
            AudioConfig::CHUNK_MS_STEP.into(),
        ),
    ];
    for (names, property, keyword, expected) in checks {
        for name in *names {
            let documented = schemas[name]["properties"][property][keyword].as_f64();
            assert_eq!(documented, Some(*expected), "{name}.{property}.{keyword}");
        }
    }
}

/// Enum schemas list the serialized names, in order.
#[test]
fn call_status_names_match() {
    let doc = document();
    let documented: Vec<&str> = doc["components"]["schemas"]["CallStatus"]["enum"]
        .as_array()
        .expect("an enum")
        .iter()
        .map(|value| value.as_str().expect("a name"))
        .collect();
    let actual: Vec<&str> = CallStatus::ALL
        .iter()
        .map(|status| status.as_str())
        .collect();
    assert_eq!(documented, actual);
}

/// Nullable and optional fields of the patch body say what the code accepts: `null` clears
/// the five clearable fields and is refused for the others.
#[test]
fn assistant_patch_nullability() {
    let doc = document();
    let properties = doc["components"]["schemas"]["AssistantPatch"]["properties"]
        .as_object()
        .expect("properties");
    let accepts_null = |schema: &Value| {
        schema["type"]
            .as_array()
            .is_some_and(|types| types.contains(&"null".into()))
            || schema["oneOf"]
                .as_array()
                .is_some_and(|items| items.iter().any(|item| item["type"] == "null"))
    };
    let nullable: BTreeMap<&str, bool> = properties
        .iter()
        .map(|(name, schema)| (name.as_str(), accepts_null(schema)))
        .collect();
    let clearable = [
        "greeting",
        "language",
        "transcription",
        "max_call_seconds",
        "tool_filler",
        "analysis",
    ];
    for (name, is_nullable) in nullable {
        assert_eq!(
            is_nullable,
            clearable.contains(&name),
            "AssistantPatch.{name}"
        );
    }
    assert!(
        doc["components"]["schemas"]["AssistantPatch"]
            .get("required")
            .is_none()
    );
}
