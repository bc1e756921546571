//! A live call's progress batches as the keeper writes them (`CallLogs::record_progress`):
//! one write for new turns and the running totals together, and a batch written twice (a retry
//! of a write MongoDB applied but did not acknowledge) changing nothing more. Several calls'
//! batches in one command (`CallLogs::record_progress_of_calls`), and the instance's progress
//! writer that gathers them, each call learning its own outcome.

use std::sync::Arc;
use std::time::Duration;

use bson::DateTime;
use futures_util::future::join_all;
use voxbridge::bridge::progress_writer::ProgressWriter;
use voxbridge::domain::call::record::{CallMetrics, CallProgress, TranscriptRole, TranscriptTurn};
use voxbridge::domain::ids::{CallId, TenantId};
use voxbridge::storage::StorageError;

use crate::helpers::TestApp;

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
    let (user_id, ids) = app.tenant_with_live_calls(1).await;
    let call_id = ids[0];
    let calls = app.storage.call_logs();
    // Each batch is sent twice, as a retry after an unacknowledged write would.
    let write_twice = async |progress: &CallProgress| {
        for _ in 0..2 {
            calls
                .record_progress(user_id, call_id, progress, DateTime::now())
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
    let stored = app.call_log(&call_id.to_hex()).await;
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
        .record_progress(user_id, call_id, &counters, DateTime::now())
        .await
        .unwrap();

    let stored = app.call_log(&call_id.to_hex()).await;
    let texts: Vec<&str> = stored.transcript.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(texts, ["hello", "hi there", "again"]);
    assert!(stored.transcript[1].interrupted);
    assert!(!stored.transcript[0].interrupted && !stored.transcript[2].interrupted);
    assert_eq!(stored.metrics.unwrap().audio_in_ms, 3_000);

    // Another tenant's id finds nothing.
    let err = calls
        .record_progress(TenantId::new(), call_id, &counters, DateTime::now())
        .await
        .unwrap_err();
    assert!(
        matches!(err, voxbridge::storage::StorageError::NotFound),
        "{err:?}"
    );
}

fn turns_and_counters(text: &str, audio_in_ms: u64) -> CallProgress {
    CallProgress {
        new_turns: vec![turn(TranscriptRole::User, text)],
        first_turn_index: 0,
        metrics: Some(metrics(audio_in_ms)),
        ..CallProgress::default()
    }
}

#[tokio::test]
async fn several_calls_batches_go_in_one_command_and_a_repeat_says_so() {
    let app = TestApp::spawn().await;
    let (user_id, ids) = app.tenant_with_live_calls(3).await;
    let calls = app.storage.call_logs();
    let first = turns_and_counters("one", 100);
    let second = turns_and_counters("two", 200);
    let counters_only = CallProgress {
        metrics: Some(metrics(300)),
        ..CallProgress::default()
    };
    let batches = [
        (user_id, ids[0], &first),
        (user_id, ids[1], &second),
        (user_id, ids[2], &counters_only),
    ];

    let all_found = calls
        .record_progress_of_calls(&batches, DateTime::now())
        .await
        .unwrap();
    assert!(all_found);
    for (id, text, audio_in_ms) in [(ids[0], "one", 100), (ids[1], "two", 200)] {
        let stored = app.call_log(&id.to_hex()).await;
        let texts: Vec<&str> = stored.transcript.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, [text]);
        assert_eq!(stored.metrics.unwrap().audio_in_ms, audio_in_ms);
    }
    assert_eq!(
        app.call_log(&ids[2].to_hex())
            .await
            .metrics
            .unwrap()
            .audio_in_ms,
        300
    );

    // The same batches again (a retry after an unacknowledged write): the turns' filters miss,
    // which the answer reports, and nothing is added.
    let all_found = calls
        .record_progress_of_calls(&batches, DateTime::now())
        .await
        .unwrap();
    assert!(!all_found, "turns already written must be reported");
    assert_eq!(app.call_log(&ids[0].to_hex()).await.transcript.len(), 1);

    // Another tenant's id finds nothing and changes nothing.
    let foreign = CallProgress {
        metrics: Some(metrics(9_999)),
        ..CallProgress::default()
    };
    let all_found = calls
        .record_progress_of_calls(&[(TenantId::new(), ids[2], &foreign)], DateTime::now())
        .await
        .unwrap();
    assert!(!all_found);
    let stored = app.call_log(&ids[2].to_hex()).await;
    assert_eq!(stored.metrics.unwrap().audio_in_ms, 300);

    // A batch that needs two updates (a new turn and a flag on an earlier one) is not sent.
    let flagged = CallProgress {
        new_turns: vec![turn(TranscriptRole::Assistant, "late")],
        first_turn_index: 1,
        interrupted_turns: vec![0],
        ..CallProgress::default()
    };
    let all_found = calls
        .record_progress_of_calls(&[(user_id, ids[1], &flagged)], DateTime::now())
        .await
        .unwrap();
    assert!(!all_found);
    let stored = app.call_log(&ids[1].to_hex()).await;
    assert_eq!(stored.transcript.len(), 1);
    assert!(!stored.transcript[0].interrupted);
}

#[tokio::test]
async fn the_progress_writer_tells_each_call_its_own_outcome() {
    let app = TestApp::spawn().await;
    let (user_id, ids) = app.tenant_with_live_calls(4).await;
    let writer = ProgressWriter::new(app.storage.clone(), Duration::from_millis(100));
    let missing = CallId::new();
    let batch = |index: usize| Arc::new(turns_and_counters(&format!("turn {index}"), 10));

    // Written together (all within one window), one of them for a call log that is not there.
    let mut targets = ids.clone();
    targets.push(missing);
    let outcomes = join_all(
        targets
            .iter()
            .enumerate()
            .map(|(index, &id)| writer.write(user_id, id, batch(index))),
    )
    .await;
    for outcome in &outcomes[..4] {
        assert!(outcome.is_ok(), "{outcome:?}");
    }
    assert!(
        matches!(outcomes[4], Err(StorageError::NotFound)),
        "{:?}",
        outcomes[4]
    );
    for (index, id) in ids.iter().enumerate() {
        let stored = app.call_log(&id.to_hex()).await;
        let texts: Vec<&str> = stored.transcript.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, [format!("turn {index}")]);
    }

    // A retry of the same batches succeeds and adds nothing.
    let outcomes = join_all(
        ids.iter()
            .enumerate()
            .map(|(index, &id)| writer.write(user_id, id, batch(index))),
    )
    .await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(app.call_log(&ids[0].to_hex()).await.transcript.len(), 1);

    // A batch that needs two updates (a new turn and a flag on an earlier one) is written
    // alone; so is every batch of a writer without a window.
    let flagged = CallProgress {
        new_turns: vec![turn(TranscriptRole::Assistant, "reply")],
        first_turn_index: 1,
        interrupted_turns: vec![0],
        ..CallProgress::default()
    };
    writer
        .write(user_id, ids[0], Arc::new(flagged))
        .await
        .unwrap();
    let alone = ProgressWriter::new(app.storage.clone(), Duration::ZERO);
    alone
        .write(user_id, ids[1], Arc::new(turns_and_counters("ignored", 20)))
        .await
        .unwrap();
    let stored = app.call_log(&ids[0].to_hex()).await;
    assert_eq!(stored.transcript.len(), 2);
    assert!(stored.transcript[0].interrupted);
    let stored = app.call_log(&ids[1].to_hex()).await;
    assert_eq!(stored.transcript.len(), 1, "turn 0 was there already");
    assert_eq!(stored.metrics.unwrap().audio_in_ms, 20);
}
