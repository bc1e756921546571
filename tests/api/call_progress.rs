//! A live call's progress batches as the keeper writes them (`CallLogs::record_progress`):
//! one write for new turns and the running totals together, and a batch written twice (a retry
//! of a write MongoDB applied but did not acknowledge) changing nothing more.

use bson::DateTime;
use voxbridge::domain::call::CallStatus;
use voxbridge::domain::call::record::{CallMetrics, CallProgress, TranscriptRole, TranscriptTurn};
use voxbridge::domain::ids::TenantId;

use crate::helpers::{TestApp, call_record};

fn turn(role: TranscriptRole, text: &str) -> TranscriptTurn {
    TranscriptTurn {
        role,
        text: text.to_owned(),
        at: DateTime::now(),
        item_id: Some(format!("item-{text}")),
        interrupted: false,
        tool: None,
    }
}

fn metrics(audio_in_ms: u64) -> CallMetrics {
    CallMetrics {
        audio_in_ms,
        ..CallMetrics::default()
    }
}

#[tokio::test]
async fn progress_batches_are_written_once_however_often_they_are_sent() {
    let app = TestApp::spawn().await;
    let user_id: TenantId = app
        .create_tenant("Progress", "progress@example.com")
        .await
        .id
        .parse()
        .unwrap();
    let call = call_record(user_id, DateTime::now(), CallStatus::InProgress);
    app.insert_call(&call).await;
    let calls = app.storage.call_logs();
    // Each batch is sent twice, as a retry after an unacknowledged write would.
    let write_twice = async |progress: &CallProgress| {
        for _ in 0..2 {
            calls
                .record_progress(user_id, call.id, progress, DateTime::now())
                .await
                .unwrap();
        }
    };

    let first = CallProgress {
        new_turns: vec![
            turn(TranscriptRole::User, "hello"),
            turn(TranscriptRole::Assistant, "hi there"),
        ],
        first_turn_index: 0,
        metrics: Some(metrics(1_000)),
        ..CallProgress::default()
    };
    write_twice(&first).await;
    let stored = app.call_log(&call.id.to_hex()).await;
    assert_eq!(stored.transcript.len(), 2, "the retry added no turn");
    assert_eq!(stored.metrics.as_ref().unwrap().audio_in_ms, 1_000);

    // New turns with a flag on an earlier one (two updates), then the counters alone.
    let second = CallProgress {
        new_turns: vec![turn(TranscriptRole::User, "again")],
        first_turn_index: 2,
        interrupted_turns: vec![1],
        metrics: Some(metrics(2_000)),
        ..CallProgress::default()
    };
    write_twice(&second).await;
    let counters = CallProgress {
        first_turn_index: 3,
        metrics: Some(metrics(3_000)),
        ..CallProgress::default()
    };
    calls
        .record_progress(user_id, call.id, &counters, DateTime::now())
        .await
        .unwrap();

    let stored = app.call_log(&call.id.to_hex()).await;
    let texts: Vec<&str> = stored.transcript.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(texts, ["hello", "hi there", "again"]);
    assert!(stored.transcript[1].interrupted);
    assert!(!stored.transcript[0].interrupted && !stored.transcript[2].interrupted);
    assert_eq!(stored.metrics.unwrap().audio_in_ms, 3_000);

    // Another tenant's id finds nothing.
    let err = calls
        .record_progress(TenantId::new(), call.id, &counters, DateTime::now())
        .await
        .unwrap_err();
    assert!(
        matches!(err, voxbridge::storage::StorageError::NotFound),
        "{err:?}"
    );
}
