//! `voxbridge demo` as a newcomer runs it: the real binary, nothing configured but a MongoDB,
//! must tell the whole story (flow, stream, greeting, barge-in, transcript, call log with cost
//! and latency, an order looked up with an HTTP tool, a call the assistant ends, and a call to
//! an ElevenLabs agent that the caller talks over) and leave WAV files that hold the
//! conversations.

use std::process::Command;

use voxbridge::audio::tone::rms_dbfs;
use voxbridge::sim::wav::read_wav;

use crate::helpers::mongodb_uri;

#[test]
fn the_demo_tells_its_four_calls_and_writes_their_audio() {
    let state_dir = tempfile::tempdir().unwrap();
    let out_dir = state_dir.path().join("out");
    let output = Command::new(env!("CARGO_BIN_EXE_voxbridge"))
        .args(["demo", "--out-dir"])
        .arg(&out_dir)
        .env("VOXBRIDGE__MONGODB__URI", mongodb_uri())
        .env("VOXBRIDGE__DEV__STATE_DIR", state_dir.path())
        .env_remove("VOXBRIDGE__ENVIRONMENT")
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    for expected in [
        "voxbridge answers \"stream\"",
        "media stream open",
        "assistant audio starts arriving",
        "barge-in: voxbridge sends FreJun `clear`",
        "voxbridge truncated the interrupted answer",
        "[interrupted]",
        "user: Hi, I would like to book a table for two tonight.",
        "POST /api/frejun/initiate-call",
        "cost: $",
        "first response",
        "hang-up at FreJun: not needed",
        "recording: GET /api/calls/",
        "order system: POST /orders/lookup signed by voxbridge (signature valid)",
        "tool: lookup_order {\"order_id\":\"A-1001\"} →",
        "\"status\":\"shipped\"",
        "tool: hang_up",
        "end reason: assistant_ended_call",
        "hang-up at FreJun: hung_up (reason ASSISTANT_ENDED_CALL",
        "POST /api/webhook-endpoints",
        "webhook the CRM received: call.ended evt_",
        "(signature valid), status completed, end reason assistant_ended_call",
        "PUT /api/me/credentials → an Anthropic key for post-call analysis",
        "summary: The caller asked where order A-1001 is",
        "extracted data: {\"order_id\":\"A-1001\",\"order_status\":\"shipped\",\"needs_follow_up\":false}",
        "extracted data: {\"request\":\"booking\",\"party_size\":2,\"time\":\"20:00\"}",
        "webhook the CRM received: call.analyzed evt_",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert_eq!(
        stdout.matches("end reason: caller_hung_up").count(),
        3,
        "the first two calls and the ElevenLabs one end with the caller's hang-up:\n{stdout}"
    );
    assert_eq!(
        stdout
            .matches("analysis (anthropic claude-sonnet-4-5, ")
            .count(),
        4,
        "each call is analysed:\n{stdout}"
    );
    assert_elevenlabs_call(&stdout, &out_dir);
    assert!(
        !stderr.contains("ERROR") && !stderr.contains("WARN"),
        "the demo runs clean:\n{stderr}"
    );

    for direction in ["inbound", "outbound", "order"] {
        let heard = read_wav(&out_dir.join(format!("{direction}-caller-heard.wav"))).unwrap();
        assert_eq!(heard.sample_rate, 8_000);
        // The greeting (cut short inbound) and the answer: several seconds of speech.
        let seconds = heard.samples.len() as f64 / 8_000.0;
        assert!(seconds > 5.0, "{direction}: heard {seconds} s");
        assert!(
            rms_dbfs(&heard.samples) > -40.0,
            "{direction}: heard silence"
        );

        let said = read_wav(&out_dir.join(format!("{direction}-caller-said.wav"))).unwrap();
        assert!(rms_dbfs(&said.samples) > -45.0, "{direction}: said nothing");

        let at_openai = read_wav(&out_dir.join(format!("{direction}-openai-heard.wav"))).unwrap();
        assert_eq!(
            at_openai.sample_rate, 24_000,
            "pcm24k reaches OpenAI at 24 kHz"
        );
        // Everything the caller sent arrived, resampled: same length in time within 0.2 s (0.5 s
        // on the order call, which voxbridge ends while the caller is still sending silence).
        let sent_s = said.samples.len() as f64 / 8_000.0;
        let arrived_s = at_openai.samples.len() as f64 / 24_000.0;
        let tolerance = if direction == "order" { 0.5 } else { 0.2 };
        assert!(
            (sent_s - arrived_s).abs() < tolerance,
            "{direction}: sent {sent_s} s, OpenAI got {arrived_s} s"
        );
    }
}

/// The fourth call, to a private ElevenLabs agent (the fake): reached through a URL signed with
/// the tenant's key, greeted by the caller's number, talked over, its stale audio dropped, its
/// pings answered, both sides transcribed; and the agent received the caller's audio as FreJun
/// sent it, not resampled.
fn assert_elevenlabs_call(stdout: &str, out_dir: &std::path::Path) {
    let call = stdout
        .split("== Call 4: an ElevenLabs agent answers")
        .nth(1)
        .and_then(|rest| rest.split("\n== ").next())
        .unwrap_or_else(|| panic!("no ElevenLabs call in:\n{stdout}"));
    for expected in [
        "tenant: PUT /api/me/credentials → an ElevenLabs key",
        "with backend elevenlabs_convai (agent agent_demo_acme_bistro, private)",
        "get-signed-url for agent_demo_acme_bistro with the tenant's xi-api-key → HTTP 200",
        "(through a signed URL), pcm_8000 in / pcm_8000 out",
        "caller_number=+14155550100",
        "overrides applied: agent.prompt.prompt, dropped: none",
        "barge-in: voxbridge sends FreJun `clear`",
        "1 clear, 0 protocol problems",
        "then still sent 2 audio events of the interrupted answer",
        "none of the interrupted answer's late audio reached the caller",
        ", none missed",
        "  0 protocol problems seen by the agent",
        "OpenAI (fake): no session",
        "status: completed",
        "end reason: caller_hung_up",
        "assistant: Hello +14155550100, this is Acme Bistro. How can I help?",
        "user: Are you open on Sundays?",
        "assistant: On Sundays we open at ten [interrupted]",
        "user: Sorry, can I bring my dog?",
        "assistant: Dogs are welcome on our terrace.",
        "1 barge-ins",
        "(signature valid), status completed, end reason caller_hung_up, 5 transcript turns",
        "extracted data: {\"topics\":[\"opening_hours\",\"dogs\"],\"caller_interrupted\":true}",
    ] {
        assert!(call.contains(expected), "missing {expected:?} in:\n{call}");
    }
    // "pings: N sent by the agent, N answered with a pong by voxbridge": every ping answered,
    // a few of them over the call's ten seconds.
    let pings: Vec<u32> = call
        .split("pings: ")
        .nth(1)
        .map(|line| {
            line.split_whitespace()
                .filter_map(|word| word.trim_end_matches(',').parse().ok())
                .take(2)
                .collect()
        })
        .unwrap_or_default();
    assert!(
        pings.len() == 2 && pings[0] == pings[1] && pings[0] >= 3,
        "pings sent and answered: {pings:?} in:\n{call}"
    );

    let said = read_wav(&out_dir.join("elevenlabs-caller-said.wav")).unwrap();
    let at_agent = read_wav(&out_dir.join("elevenlabs-agent-heard.wav")).unwrap();
    assert_eq!(at_agent.sample_rate, 8_000, "pcm_8000 reaches the agent");
    // Not resampled: the agent got the caller's samples unchanged (all of them, but perhaps
    // some silence from before its conversation opened).
    assert!(
        said.samples.ends_with(&at_agent.samples)
            && said.samples.len() - at_agent.samples.len() < 4_000,
        "the agent got {} of the caller's {} samples, changed",
        at_agent.samples.len(),
        said.samples.len()
    );
    assert!(
        rms_dbfs(&at_agent.samples) > -45.0,
        "the agent heard nothing"
    );
    let heard = read_wav(&out_dir.join("elevenlabs-caller-heard.wav")).unwrap();
    // What arrived: the first message (1.5 s), the interrupted answer up to the interruption
    // (3.8 s, most of it dropped from FreJun's queue by the clear) and the next answer (2 s).
    let seconds = heard.samples.len() as f64 / 8_000.0;
    assert!((6.5..8.0).contains(&seconds), "heard {seconds} s");
}
