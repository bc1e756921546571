//! Cursor pagination: newest first by `(created_at, _id)`, every item exactly once even while new
//! items arrive, `next_cursor: null` on the last page, forged cursors refused.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::Value;
use voxbridge::domain::call::CallStatus;
use voxbridge::domain::ids::CallId;
use voxbridge::storage::call_logs::CallLogRecord;

use crate::helpers::{TestApp, TestTenant, call_record, expect_error, expect_status};

const BASE_MILLIS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn millis(offset: i64) -> bson::DateTime {
    bson::DateTime::from_millis(BASE_MILLIS + offset)
}

/// 250 creation times: 160 distinct, 10 groups of 5 equal ones, and the newest 40 all equal
/// (so the first page boundary falls inside a group of equal times).
fn creation_times() -> Vec<bson::DateTime> {
    let mut times = Vec::new();
    for i in 0..160 {
        times.push(millis(i * 1_000));
    }
    for group in 0..10 {
        for _ in 0..5 {
            times.push(millis(group * 16_000 + 500));
        }
    }
    for _ in 0..40 {
        times.push(millis(1_000_000_000));
    }
    assert_eq!(times.len(), 250);
    times
}

/// A fixed shuffle, so that insertion order (and so `_id` order) differs from time order.
fn shuffled<T>(mut items: Vec<T>) -> Vec<T> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for i in (1..items.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let j = (state >> 33) as usize % (i + 1);
        items.swap(i, j);
    }
    items
}

async fn insert_calls(
    app: &TestApp,
    tenant: &TestTenant,
    times: &[bson::DateTime],
) -> Vec<CallLogRecord> {
    let mut calls = Vec::new();
    for (index, created_at) in times.iter().enumerate() {
        let status = if index % 3 == 0 {
            CallStatus::InProgress
        } else {
            CallStatus::Completed
        };
        let call = call_record(tenant.object_id(), *created_at, status);
        app.insert_call(&call).await;
        calls.push(call);
    }
    calls
}

/// The API's order: created_at descending, then id descending.
fn api_order(calls: &[CallLogRecord]) -> Vec<String> {
    let mut keys: Vec<(bson::DateTime, CallId)> = calls
        .iter()
        .map(|call| (call.created_at, call.id))
        .collect();
    keys.sort_by(|a, b| b.cmp(a));
    keys.into_iter().map(|(_, id)| id.to_hex()).collect()
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"))
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn paging_lists_every_call_exactly_once_in_order_while_new_calls_arrive() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", "ops@acme.example").await;
    let other = app.create_tenant("Beta", "ops@beta.example").await;
    let originals = insert_calls(&app, &tenant, &shuffled(creation_times())).await;
    // The other tenant's calls share the same times.
    let foreign = insert_calls(&app, &other, &shuffled(creation_times())[..60]).await;
    let foreign: HashSet<String> = foreign.iter().map(|call| call.id.to_hex()).collect();
    let expected = api_order(&originals);

    let mut seen = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    let mut newer = 0;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/calls?limit=37&cursor={cursor}"),
            None => "/api/calls?limit=37".to_owned(),
        };
        let page = expect_status(app.get_as(&path, &tenant.api_key).await, StatusCode::OK).await;
        pages += 1;
        let page_ids = ids(&page);
        assert_eq!(page["count"], page_ids.len(), "count is the page length");
        assert!(!page_ids.is_empty(), "no empty page: {page}");
        assert!(page_ids.len() <= 37);
        for item in page["data"].as_array().unwrap() {
            assert_eq!(item["user_id"], tenant.id.as_str());
        }
        seen.extend(page_ids);

        // New calls arrive between page fetches; they are newer than anything listed so far.
        for _ in 0..3 {
            newer += 1;
            let call = call_record(
                tenant.object_id(),
                millis(2_000_000_000 + newer),
                CallStatus::Initiated,
            );
            app.insert_call(&call).await;
        }

        match page["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(page["count"], 37, "only the last page is short");
                cursor = Some(next.to_owned());
            }
            None => break,
        }
        assert!(pages < 20, "paging does not end");
    }

    assert_eq!(pages, 7, "250 calls in pages of 37");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no call listed twice");
    assert!(
        seen.iter().all(|id| !foreign.contains(id)),
        "another tenant's call listed"
    );
    assert_eq!(
        seen, expected,
        "every original call once, newest first, ties by id"
    );

    // A fresh walk now starts with the calls that arrived meanwhile.
    let first = expect_status(
        app.get_as("/api/calls?limit=5", &tenant.api_key).await,
        StatusCode::OK,
    )
    .await;
    let first_ids = ids(&first);
    assert!(first_ids.iter().all(|id| !expected.contains(id)));
}

#[tokio::test]
async fn a_last_full_page_has_no_next_cursor_and_limits_are_clamped() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", "ops@acme.example").await;
    let originals = insert_calls(&app, &tenant, &shuffled(creation_times())).await;
    let expected = api_order(&originals);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/calls?limit=50&cursor={cursor}"),
            None => "/api/calls?limit=50".to_owned(),
        };
        let page = expect_status(app.get_as(&path, &tenant.api_key).await, StatusCode::OK).await;
        pages += 1;
        assert_eq!(page["count"], 50, "{pages}");
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 5, "exactly 5 full pages, no empty sixth");
    assert_eq!(seen, expected);

    // Without a limit: 50. Above the maximum: 200. Zero: 1.
    for (query, count) in [("", 50), ("?limit=1000", 200), ("?limit=0", 1)] {
        let page = expect_status(
            app.get_as(&format!("/api/calls{query}"), &tenant.api_key)
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(page["count"], count, "{query}");
        assert_eq!(ids(&page), expected[..count], "{query}");
        assert!(page["next_cursor"].is_string());
    }

    // Filters and cursors combine (the `$or` of the phone filter with the cursor's).
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!(
                "/api/calls?limit=30&status=in-progress&phone_number=%2B14155550100&cursor={cursor}"
            ),
            None => "/api/calls?limit=30&status=in-progress&phone_number=%2B14155550100".to_owned(),
        };
        let page = expect_status(app.get_as(&path, &tenant.api_key).await, StatusCode::OK).await;
        walked.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let in_progress: Vec<CallLogRecord> = originals
        .iter()
        .filter(|call| call.call_status == CallStatus::InProgress)
        .cloned()
        .collect();
    assert_eq!(walked, api_order(&in_progress));
}

#[tokio::test]
async fn forged_cursors_are_refused() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("Acme", "ops@acme.example").await;
    let admin = app.admin_token();
    let forged = [
        "garbage!!",
        "bm90LWEtY3Vyc29y",                       // "not-a-cursor"
        "MTIubm90aGV4",                           // "12.nothex"
        "eHl6LjY0YjAwMDAwMDAwMDAwMDAwMDAwMDAwMQ", // "xyz.64b000000000000000000001"
    ];
    for cursor in forged {
        for (path, token) in [
            ("/api/calls", tenant.api_key.as_str()),
            ("/api/calls/active", tenant.api_key.as_str()),
            ("/api/calls/history", tenant.api_key.as_str()),
            ("/api/assistants", tenant.api_key.as_str()),
            ("/api/phone-numbers", tenant.api_key.as_str()),
            ("/api/admin/users", admin.as_str()),
            ("/api/admin/calls", admin.as_str()),
        ] {
            let body = expect_error(
                app.get_as(&format!("{path}?cursor={cursor}"), token).await,
                StatusCode::BAD_REQUEST,
                "invalid_cursor",
            )
            .await;
            assert!(!body.to_string().contains(cursor), "{body}");
        }
    }
}
