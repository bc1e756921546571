//! `voxbridge demo`: the first thing to run. On loopback only, with no accounts: a voxbridge
//! server in this process over the development MongoDB (its own `voxbridge_demo` database), the
//! fake OpenAI Realtime server speaking recorded voices and the fake FreJun Teler API. It creates
//! a tenant, assistants and numbers through the admin and tenant APIs, places an inbound and an
//! outbound call as FreJun would, then a third call in which the assistant looks up an order
//! through an HTTP tool and ends the call itself, and a fourth answered by an ElevenLabs agent
//! (the fake ElevenLabs) whose answer the caller talks over; each call is then analysed
//! (summary, verdict, extracted data) by a fake Anthropic model. It tells step by step what
//! happened, and writes what each side heard to WAV files.
//!
//! The ElevenLabs call always runs: it adds about ten seconds to a tour of four calls, and it
//! is the only place the demo shows the second voice AI.
//!
//! Layout:
//! - `stack`: starting and stopping the server, MongoDB and the fakes.
//! - `calls`: the calls, played as FreJun plays them.
//! - `elevenlabs`: the ElevenLabs agent, its assistant and what the fake saw of its call.
//! - `narrate`: the printed account.

mod calls;
mod elevenlabs;
mod narrate;
mod stack;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::settings::Settings;
use crate::sim::phone_call::describe_call_log;
use crate::sim::provision::{self, AssistantSpec, TenantSpec};
use crate::sim::voices;
use crate::sim::wav::write_wav;

use calls::PlayedCall;
use narrate::Narrator;
use stack::DemoStack;

/// The demo tenant's number (fictional: the `+99` country code is unassigned).
const DEMO_NUMBER: &str = "+990000000100";
/// The number of the tenant's order line, answered by the assistant with tools.
const ORDER_NUMBER: &str = "+990000000101";

/// Runs the demo; WAV files go to `out_dir` (created if needed).
pub async fn run(settings: Settings, out_dir: PathBuf) -> anyhow::Result<()> {
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let out_dir = out_dir.canonicalize().unwrap_or(out_dir);
    let narrator = Narrator::new();
    println!(
        "voxbridge demo: a voxbridge server, a fake OpenAI Realtime, a fake ElevenLabs and a \
         fake FreJun, all on 127.0.0.1; nothing leaves this machine."
    );
    narrator.heading("Setting up");
    let stack = DemoStack::start(settings).await?;
    narrator.step(&format!(
        "MongoDB: {} (database `{}`, emptied first)",
        stack.mongodb_note,
        stack::DEMO_DATABASE
    ));
    narrator.step(&format!("voxbridge is serving at {}", stack.base_url));
    narrator.step(&format!(
        "fake OpenAI Realtime at {}, fake ElevenLabs at {}, fake FreJun Teler API at {}",
        stack.fake_openai.url(),
        stack.fake_elevenlabs.base_url(),
        stack.fake_teler.base_url()
    ));
    let outcome = demo(&stack, &narrator, &out_dir).await;
    narrator.heading("Shutting down");
    stack.stop().await;
    narrator.step("server stopped after writing every call log; fakes stopped");
    outcome
}

async fn demo(stack: &DemoStack, narrator: &Narrator, out_dir: &Path) -> anyhow::Result<()> {
    let tenant = provision::create_tenant(
        &stack.admin,
        &TenantSpec {
            name: "Acme Bistro (demo)".into(),
            email: "demo@acme-bistro.example".into(),
            max_concurrent_calls: 5,
            openai_api_key: "sk-demo-not-a-real-key".into(),
            frejun_api_key: calls::DEMO_FREJUN_KEY.into(),
        },
    )
    .await
    .context("creating the demo tenant")?;
    narrator.step(&format!(
        "admin: POST /api/admin/users → tenant \"Acme Bistro (demo)\", API key {}…",
        tenant.api_key.get(..12).unwrap_or_default()
    ));
    narrator.step("tenant: PUT /api/me/credentials → OpenAI and FreJun keys stored encrypted");
    let assistant_id = tenant
        .create_assistant(&AssistantSpec {
            name: "Front desk".into(),
            instructions: "You take table bookings for Acme Bistro. Be brief and friendly.".into(),
            greeting: Some(voices::GREETING_TEXT.into()),
            codec: "pcm24k".into(),
            inbound_rate_hz: 8_000,
            inbound_chunk_ms: 100,
            outbound_chunk_ms: 100,
            transcription_model: Some("gpt-live-transcribe".into()),
            analysis: Some(serde_json::json!({
                "enabled": true,
                "min_user_turns": 0,
                "success_criteria": "A table was booked, or the caller was told why not.",
                "structured_data_schema": {
                    "type": "object",
                    "properties": {
                        "request": {"type": "string", "enum": ["booking", "question", "other"]},
                        "party_size": {"type": ["integer", "null"]},
                        "time": {"type": ["string", "null"]}
                    },
                    "required": ["request", "party_size", "time"],
                    "additionalProperties": false
                }
            })),
        })
        .await
        .context("creating the demo assistant")?;
    tenant
        .add_number(DEMO_NUMBER, &assistant_id)
        .await
        .context("adding the demo number")?;
    narrator.step(&format!(
        "tenant: POST /api/assistants → \"Front desk\" (pcm24k to OpenAI, 8 kHz from FreJun, \
         post-call analysis with a booking schema); POST /api/phone-numbers → {DEMO_NUMBER} \
         answers with it"
    ));
    tenant
        .api
        .put(
            "api/me/credentials",
            &serde_json::json!({"anthropic_api_key": "sk-ant-demo-not-a-real-key"}),
        )
        .await
        .context("storing the Anthropic key")?;
    narrator.step(&format!(
        "tenant: PUT /api/me/credentials → an Anthropic key for post-call analysis (the fake \
         Anthropic API at {})",
        stack.fake_anthropic.base_url()
    ));

    subscribe_to_events(stack, &tenant, narrator).await?;

    narrator.heading("Call 1: inbound, the caller talks over the greeting");
    let inbound = calls::inbound(stack, &tenant, DEMO_NUMBER, narrator).await?;
    report(&inbound, out_dir)?;
    print_ended_event(stack, &inbound).await;
    print_analysis(stack, &tenant, &inbound).await;

    narrator.heading("Call 2: outbound, placed through the API");
    let outbound = calls::outbound(stack, &tenant, &assistant_id, DEMO_NUMBER, narrator).await?;
    report(&outbound, out_dir)?;
    print_ended_event(stack, &outbound).await;
    print_analysis(stack, &tenant, &outbound).await;

    narrator.heading("Call 3: the assistant looks up an order with an HTTP tool, then hangs up");
    set_up_order_line(stack, &tenant, narrator).await?;
    let order = calls::order_lookup(stack, &tenant, ORDER_NUMBER, narrator).await?;
    report(&order, out_dir)?;
    print_ended_event(stack, &order).await;
    print_analysis(stack, &tenant, &order).await;

    narrator.heading("Call 4: an ElevenLabs agent answers, and the caller talks over it");
    elevenlabs::set_up(stack, &tenant, narrator).await?;
    let agent = elevenlabs::call(stack, &tenant, narrator).await?;
    report(&agent, out_dir)?;
    print_ended_event(stack, &agent).await;
    print_analysis(stack, &tenant, &agent).await;

    println!(
        "\nTry the API yourself while a server runs: README.md, \"API\"; \
         `voxbridge call` places calls like these against any voxbridge."
    );
    Ok(())
}

/// Registers the tenant's webhook receiver (its CRM) for every event.
async fn subscribe_to_events(
    stack: &DemoStack,
    tenant: &provision::ProvisionedTenant,
    narrator: &Narrator,
) -> anyhow::Result<()> {
    let created = tenant
        .api
        .post_data(
            "api/webhook-endpoints",
            &serde_json::json!({"url": stack.webhooks.url("/voxbridge-events"), "description": "CRM"}),
        )
        .await
        .context("registering the webhook endpoint")?;
    let secret = created["signing_secret"].as_str().unwrap_or_default();
    stack
        .webhooks
        .set_secret_text(secret)
        .map_err(|error| anyhow::anyhow!("the endpoint's secret is refused: {error}"))?;
    narrator.step(
        "tenant: POST /api/webhook-endpoints → its CRM receives signed events about every call \
         (the whsec_ secret is shown once)",
    );
    Ok(())
}

/// Prints the `call.ended` event the tenant's receiver got for `call`.
async fn print_ended_event(stack: &DemoStack, call: &PlayedCall) {
    let id = call.voxbridge_call_id.as_str();
    let is_ended = |webhook: &crate::sim::fake_webhook_receiver::ReceivedWebhook| {
        webhook.body["type"] == "call.ended" && webhook.body["data"]["call"]["id"] == id
    };
    let arrived = stack
        .webhooks
        .wait_for(std::time::Duration::from_secs(10), |received| {
            received.iter().any(is_ended)
        })
        .await;
    let Some(event) = arrived
        .then(|| stack.webhooks.received().into_iter().find(|w| is_ended(w)))
        .flatten()
    else {
        println!("  webhook: no call.ended reached the receiver within 10 s");
        return;
    };
    let data = &event.body["data"]["call"];
    let others: Vec<String> = stack
        .webhooks
        .received()
        .iter()
        .filter(|webhook| webhook.body["data"]["call"]["id"] == id && !is_ended(webhook))
        .map(|webhook| webhook.body["type"].as_str().unwrap_or("?").to_owned())
        .collect();
    println!(
        "  webhook the CRM received: call.ended {} (signature {}), status {}, end reason {}, \
         {} transcript turns, cost {}; before it: {}",
        event.id.as_deref().unwrap_or("-"),
        if event.signature_valid {
            "valid"
        } else {
            "INVALID"
        },
        data["call_status"].as_str().unwrap_or("-"),
        data["end_reason"].as_str().unwrap_or("-"),
        data["transcript"].as_array().map_or(0, Vec::len),
        data["cost_usd"],
        others.join(", "),
    );
}

/// Prints the post-call analysis stored on `call`'s log, and the `call.analyzed` event the
/// tenant's receiver got for it.
async fn print_analysis(
    stack: &DemoStack,
    tenant: &provision::ProvisionedTenant,
    call: &PlayedCall,
) {
    let id = call.voxbridge_call_id.as_str();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let analysis = loop {
        let read = tenant.api.get_data(&format!("api/calls/{id}")).await;
        let analysis = read
            .map(|call| call["analysis"].clone())
            .unwrap_or_default();
        let finished = analysis["status"]
            .as_str()
            .is_some_and(|status| status != "pending");
        if finished || tokio::time::Instant::now() > deadline {
            break analysis;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    if analysis["status"] != "done" {
        println!(
            "  analysis: not done within 20 s ({})",
            if analysis.is_null() {
                "not queued".to_owned()
            } else {
                analysis.to_string()
            }
        );
        return;
    }
    println!(
        "  analysis ({} {}, {} tokens in, {} out, cost ${}): {}, {}",
        analysis["provider"].as_str().unwrap_or("-"),
        analysis["model"].as_str().unwrap_or("-"),
        analysis["usage"]["input_tokens"],
        analysis["usage"]["output_tokens"],
        analysis["cost_usd"],
        if analysis["success"] == true {
            "success"
        } else {
            "not a success"
        },
        analysis["sentiment"].as_str().unwrap_or("-"),
    );
    println!(
        "    summary: {}",
        analysis["summary"].as_str().unwrap_or("-")
    );
    println!("    extracted data: {}", analysis["data"]);
    let is_analyzed = |webhook: &crate::sim::fake_webhook_receiver::ReceivedWebhook| {
        webhook.body["type"] == "call.analyzed" && webhook.body["data"]["call"]["id"] == id
    };
    let arrived = stack
        .webhooks
        .wait_for(std::time::Duration::from_secs(10), |received| {
            received.iter().any(is_analyzed)
        })
        .await;
    match arrived
        .then(|| {
            stack
                .webhooks
                .received()
                .into_iter()
                .find(|w| is_analyzed(w))
        })
        .flatten()
    {
        Some(event) => println!(
            "  webhook the CRM received: call.analyzed {} (signature {})",
            event.id.as_deref().unwrap_or("-"),
            if event.signature_valid {
                "valid"
            } else {
                "INVALID"
            },
        ),
        None => println!("  webhook: no call.analyzed reached the receiver within 10 s"),
    }
}

/// Gives the tenant an order line: the signing secret its order system verifies, the order
/// system's token as a named secret, and an assistant with an `http` lookup tool and `end_call`
/// answering [`ORDER_NUMBER`].
async fn set_up_order_line(
    stack: &DemoStack,
    tenant: &provision::ProvisionedTenant,
    narrator: &Narrator,
) -> anyhow::Result<()> {
    let rotated = tenant
        .api
        .post_data("api/me/tool-signing-secret/rotate", &serde_json::json!({}))
        .await
        .context("making the tool signing secret")?;
    let secret = rotated["signing_secret"].as_str().unwrap_or_default();
    stack
        .fake_tools
        .set_secret_text(secret)
        .map_err(|error| anyhow::anyhow!("the signing secret is refused: {error}"))?;
    narrator.step(
        "tenant: POST /api/me/tool-signing-secret/rotate → a whsec_ secret, shown once, given to \
         the order system so it can verify voxbridge's requests",
    );
    tenant
        .api
        .put(
            "api/me/secrets/orders_token",
            &serde_json::json!({"value": "demo-orders-token-1234"}),
        )
        .await
        .context("storing the order system's token")?;
    narrator.step("tenant: PUT /api/me/secrets/orders_token → stored encrypted, never shown again");
    let assistant = tenant
        .api
        .post_data(
            "api/assistants",
            &serde_json::json!({
                "name": "Order line",
                "instructions": "You answer questions about Acme Bistro delivery orders. Look                                  orders up with lookup_order; when the caller is done, say                                  goodbye and call hang_up.",
                "greeting": voices::GREETING_TEXT,
                "audio": {"codec": "pcm24k", "inbound_rate": "8k", "inbound_chunk_ms": 100, "outbound_chunk_ms": 100},
                "transcription": {"model": "gpt-live-transcribe"},
                "analysis": {
                    "enabled": true,
                    "min_user_turns": 0,
                    "success_criteria": "The caller learned the status of their order.",
                    "structured_data_schema": {
                        "type": "object",
                        "properties": {
                            "order_id": {"type": ["string", "null"]},
                            "order_status": {"type": ["string", "null"]},
                            "needs_follow_up": {"type": "boolean"}
                        },
                        "required": ["order_id", "order_status", "needs_follow_up"],
                        "additionalProperties": false
                    }
                },
                "tools": [
                    {"type": "http", "name": "lookup_order",
                     "description": "Looks up a delivery order by its id, such as A-1001.",
                     "url": stack.fake_tools.url("/orders/lookup"),
                     "headers": {"Authorization": "Bearer {{secret.orders_token}}"},
                     "parameters": {"type": "object",
                                    "properties": {"order_id": {"type": "string"}},
                                    "required": ["order_id"]}},
                    {"type": "end_call", "name": "hang_up",
                     "description": "Ends the call once the caller has said goodbye."}
                ]
            }),
        )
        .await
        .context("creating the order-line assistant")?;
    let assistant_id = assistant["id"].as_str().unwrap_or_default().to_owned();
    tenant
        .add_number(ORDER_NUMBER, &assistant_id)
        .await
        .context("adding the order line's number")?;
    narrator.step(&format!(
        "tenant: POST /api/assistants → \"Order line\" with tools lookup_order (http, signed) \
         and hang_up (end_call); {ORDER_NUMBER} answers with it"
    ));
    Ok(())
}

/// Prints one call's account and writes its WAV files.
fn report(call: &PlayedCall, out_dir: &Path) -> anyhow::Result<()> {
    println!(
        "\n  call {} (FreJun id {}), timeline from the stream opening:",
        call.voxbridge_call_id, call.frejun_call_id
    );
    for line in narrate::timeline(call)
        .into_iter()
        .chain(narrate::heard(call))
    {
        println!("{line}");
    }
    println!("  call log {}:", call.voxbridge_call_id);
    for line in describe_call_log(&call.call_log) {
        println!("    {line}");
    }
    let direction = call.label;
    let mut files = vec![
        (
            format!("{direction}-caller-heard.wav"),
            8_000,
            call.summary.received.audio.clone(),
            "what the caller heard (voxbridge → FreJun)",
        ),
        (
            format!("{direction}-caller-said.wav"),
            8_000,
            call.sent.clone(),
            "what the caller said (FreJun → voxbridge)",
        ),
    ];
    if let Some(session) = &call.session {
        files.push((
            format!("{direction}-openai-heard.wav"),
            session.input_rate_hz,
            session.input_audio_24k.clone(),
            "what OpenAI received (resampled by voxbridge)",
        ));
    }
    if let Some(session) = &call.agent_session {
        files.push((
            format!("{direction}-agent-heard.wav"),
            session.input_format.rate_hz(),
            session.audio_in.clone(),
            "what the ElevenLabs agent received (8 kHz as FreJun sent it, not resampled)",
        ));
    }
    println!("  WAV files:");
    for (name, rate, samples, what) in files {
        let path = out_dir.join(name);
        write_wav(&path, rate, &samples)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("    {}  {what}", path.display());
    }
    Ok(())
}
