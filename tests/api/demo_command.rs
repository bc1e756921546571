//! `voxbridge demo` as a newcomer runs it: the real binary, nothing configured but a MongoDB,
//! must tell the whole story (flow, stream, greeting, barge-in, transcript, call log with cost
//! and latency, an order looked up with an HTTP tool and a call the assistant ends) and leave
//! WAV files that hold the conversations.

use std::process::Command;

use voxbridge::audio::tone::rms_dbfs;
use voxbridge::sim::wav::read_wav;

use crate::helpers::mongodb_uri;

#[test]
fn the_demo_tells_its_three_calls_and_writes_their_audio() {
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
        2,
        "the first two calls end with the caller's hang-up:\n{stdout}"
    );
    assert_eq!(
        stdout
            .matches("analysis (anthropic claude-sonnet-4-5, ")
            .count(),
        3,
        "each call is analysed:\n{stdout}"
    );
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
