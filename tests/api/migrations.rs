//! Migrations create the validators and indexes, re-run as a no-op, refuse edited files, and the
//! indexes enforce uniqueness.

use bson::{Bson, Document, doc, oid::ObjectId};
use voxbridge::storage::collections::{CALL_LOGS, PHONE_NUMBERS, SCHEMA_MIGRATIONS};
use voxbridge::storage::migrations::{self, MIGRATIONS, Migration, MigrationError};
use voxbridge::storage::{Storage, StorageError};

use crate::helpers::TestDatabase;

const DATA_COLLECTIONS: &[&str] = &[
    "users",
    "api_keys",
    "assistants",
    "phone_numbers",
    "call_logs",
];

async fn collection_options(storage: &Storage) -> Vec<Document> {
    storage
        .database()
        .run_command(doc! { "listCollections": 1 })
        .await
        .unwrap()
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()
        .iter()
        .map(|entry| entry.as_document().unwrap().clone())
        .collect()
}

/// The server's own index documents: `{v, key, name, unique?, partialFilterExpression?}`.
async fn indexes(storage: &Storage, collection: &str) -> Vec<Document> {
    storage
        .database()
        .run_command(doc! { "listIndexes": collection })
        .await
        .unwrap()
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()
        .iter()
        .map(|entry| entry.as_document().unwrap().clone())
        .collect()
}

fn phone_number(number: &str) -> Document {
    let now = bson::DateTime::now();
    doc! {
        "phone_number": number,
        "provider": "frejun",
        "user_id": ObjectId::new(),
        "assigned_assistant_id": Bson::Null,
        "status": "active",
        "created_at": now,
        "updated_at": now,
        "schema_version": 1,
    }
}

fn call_log(tenant: ObjectId, frejun_call_id: Option<&str>) -> Document {
    let now = bson::DateTime::now();
    let mut log = doc! {
        "user_id": tenant,
        "call_type": "inbound",
        "call_status": "initiated",
        "platform": "frejun",
        "status_history": [{ "status": "initiated", "at": now, "source": "flow" }],
        "created_at": now,
        "updated_at": now,
        "schema_version": 1,
    };
    if let Some(id) = frejun_call_id {
        log.insert("frejun_call_id", id);
    }
    log
}

#[tokio::test]
async fn migrations_create_validated_collections_and_indexes() {
    let db = TestDatabase::new().await;
    let report = migrations::run(&db.storage).await.unwrap();
    let all: Vec<String> = MIGRATIONS.iter().map(|m| m.file.to_owned()).collect();
    assert_eq!(report.applied, all);

    let options = collection_options(&db.storage).await;
    for name in DATA_COLLECTIONS {
        let entry = options
            .iter()
            .find(|entry| entry.get_str("name") == Ok(*name))
            .unwrap_or_else(|| panic!("collection {name} exists"));
        let options = entry.get_document("options").unwrap();
        assert!(
            options
                .get_document("validator")
                .unwrap()
                .contains_key("$jsonSchema"),
            "{name} has a JSON-schema validator"
        );
        assert_eq!(options.get_str("validationLevel"), Ok("strict"), "{name}");
        assert_eq!(options.get_str("validationAction"), Ok("error"), "{name}");
    }

    let phone_indexes = indexes(&db.storage, PHONE_NUMBERS).await;
    let unique_number = phone_indexes
        .iter()
        .find(|index| index.get_document("key").unwrap() == &doc! { "phone_number": 1 })
        .expect("an index on phone_number");
    assert_eq!(unique_number.get_bool("unique"), Ok(true));

    let call_indexes = indexes(&db.storage, CALL_LOGS).await;
    let frejun_id = call_indexes
        .iter()
        .find(|index| {
            index.get_document("key").unwrap() == &doc! { "user_id": 1, "frejun_call_id": 1 }
        })
        .expect("an index on (user_id, frejun_call_id)");
    assert_eq!(frejun_id.get_bool("unique"), Ok(true));
    assert!(
        frejun_id.contains_key("partialFilterExpression"),
        "unique only when present"
    );
    assert!(
        !call_indexes
            .iter()
            .any(|index| index.get_document("key").unwrap() == &doc! { "frejun_call_id": 1 }),
        "no platform-wide FreJun call id index: {call_indexes:?}"
    );
    let key_lists: Vec<Document> = call_indexes
        .iter()
        .map(|index| index.get_document("key").unwrap().clone())
        .collect();
    assert!(key_lists.contains(&doc! { "user_id": 1, "created_at": -1, "_id": -1 }));
    assert!(key_lists.contains(&doc! { "call_status": 1, "created_at": -1 }));

    // Every index that serves tenants' queries starts with user_id.
    for name in ["api_keys", "assistants", "phone_numbers", "call_logs"] {
        for index in indexes(&db.storage, name).await {
            let index_name = index.get_str("name").unwrap().to_owned();
            if index_name.contains("_user_") {
                let first = index
                    .get_document("key")
                    .unwrap()
                    .keys()
                    .next()
                    .unwrap()
                    .clone();
                assert_eq!(first, "user_id", "{name}.{index_name}");
            }
        }
    }
}

#[tokio::test]
async fn a_second_run_is_a_no_op() {
    let db = TestDatabase::new().await;
    migrations::run(&db.storage).await.unwrap();
    let options_before = collection_options(&db.storage).await;
    let indexes_before = indexes(&db.storage, CALL_LOGS).await;

    let report = migrations::run(&db.storage).await.unwrap();
    assert!(report.applied.is_empty(), "{report:?}");
    assert_eq!(report.already_applied.len(), MIGRATIONS.len());
    assert_eq!(collection_options(&db.storage).await, options_before);
    assert_eq!(indexes(&db.storage, CALL_LOGS).await, indexes_before);
    let recorded = db
        .storage
        .collection::<Document>(SCHEMA_MIGRATIONS)
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(recorded as usize, MIGRATIONS.len());
}

#[tokio::test]
async fn two_instances_migrating_at_once_both_succeed() {
    let db = TestDatabase::new().await;
    let (first, second) = tokio::join!(migrations::run(&db.storage), migrations::run(&db.storage));
    first.unwrap();
    second.unwrap();
    let recorded = db
        .storage
        .collection::<Document>(SCHEMA_MIGRATIONS)
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(recorded as usize, MIGRATIONS.len());
}

#[tokio::test]
async fn an_applied_migration_that_was_edited_is_refused() {
    let db = TestDatabase::new().await;
    migrations::run(&db.storage).await.unwrap();
    let edited = Migration {
        source: r#"{"description":"changed","operations":[{"op":"ensure_collection","collection":"users"}]}"#,
        ..MIGRATIONS[0]
    };
    let err = migrations::run_list(&db.storage, &[edited])
        .await
        .unwrap_err();
    assert!(matches!(err, MigrationError::Edited { .. }), "{err}");
}

#[tokio::test]
async fn a_duplicate_phone_number_is_rejected_by_the_index() {
    let db = TestDatabase::new().await;
    migrations::run(&db.storage).await.unwrap();
    let numbers = db.storage.collection::<Document>(PHONE_NUMBERS);
    numbers
        .insert_one(phone_number("+14155550100"))
        .await
        .unwrap();
    numbers
        .insert_one(phone_number("+14155550101"))
        .await
        .unwrap();

    // Another tenant claiming the same number.
    let err = StorageError::from(
        numbers
            .insert_one(phone_number("+14155550100"))
            .await
            .unwrap_err(),
    );
    assert!(matches!(err, StorageError::Conflict), "{err:?}");
}

#[tokio::test]
async fn the_validator_rejects_documents_outside_the_schema() {
    let db = TestDatabase::new().await;
    migrations::run(&db.storage).await.unwrap();
    let numbers = db.storage.collection::<Document>(PHONE_NUMBERS);
    let err = numbers
        .insert_one(phone_number("0415 555 0100"))
        .await
        .unwrap_err();
    assert_eq!(
        voxbridge::storage::error::server_error_code(&err),
        Some(121),
        "DocumentValidationFailure"
    );

    let mut bad_status = call_log(ObjectId::new(), None);
    bad_status.insert("call_status", "exploded");
    let err = db
        .storage
        .collection::<Document>(CALL_LOGS)
        .insert_one(bad_status)
        .await
        .unwrap_err();
    assert_eq!(
        voxbridge::storage::error::server_error_code(&err),
        Some(121)
    );
}

#[tokio::test]
async fn frejun_call_ids_are_unique_per_tenant_and_only_when_present() {
    let db = TestDatabase::new().await;
    migrations::run(&db.storage).await.unwrap();
    let logs = db.storage.collection::<Document>(CALL_LOGS);
    let (acme, beta) = (ObjectId::new(), ObjectId::new());
    // Outbound calls are logged before FreJun has given them an id.
    logs.insert_one(call_log(acme, None)).await.unwrap();
    logs.insert_one(call_log(acme, None)).await.unwrap();
    logs.insert_one(call_log(acme, Some("frejun-1")))
        .await
        .unwrap();
    let err = StorageError::from(
        logs.insert_one(call_log(acme, Some("frejun-1")))
            .await
            .unwrap_err(),
    );
    assert!(matches!(err, StorageError::Conflict), "{err:?}");
    // Another tenant's call with the same FreJun id is its own: nobody can squat on an id.
    logs.insert_one(call_log(beta, Some("frejun-1")))
        .await
        .unwrap();
}

#[tokio::test]
async fn upgrading_moves_frejun_call_id_uniqueness_to_per_tenant() {
    let db = TestDatabase::new().await;
    migrations::run_list(&db.storage, &MIGRATIONS[..3])
        .await
        .unwrap();
    let logs = db.storage.collection::<Document>(CALL_LOGS);
    let (acme, beta) = (ObjectId::new(), ObjectId::new());
    logs.insert_one(call_log(acme, Some("fj-1"))).await.unwrap();
    let before = StorageError::from(
        logs.insert_one(call_log(beta, Some("fj-1")))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(before, StorageError::Conflict),
        "platform-wide before: {before:?}"
    );

    migrations::run(&db.storage).await.unwrap();
    logs.insert_one(call_log(beta, Some("fj-1"))).await.unwrap();
    let err = StorageError::from(
        logs.insert_one(call_log(acme, Some("fj-1")))
            .await
            .unwrap_err(),
    );
    assert!(matches!(err, StorageError::Conflict), "{err:?}");
    // A second instance applying the same migration (it had not seen the first's record)
    // finds the old index gone: no error.
    db.storage
        .collection::<Document>(SCHEMA_MIGRATIONS)
        .delete_one(doc! { "_id": 4_i64 })
        .await
        .unwrap();
    let report = migrations::run_list(&db.storage, &MIGRATIONS[3..4])
        .await
        .unwrap();
    assert_eq!(report.applied.len(), 1, "{report:?}");
}

/// The plan MongoDB picks for `filter` on `collection`, as text.
async fn plan(storage: &Storage, collection: &str, filter: Document) -> String {
    let explained = storage
        .database()
        .run_command(doc! { "explain": { "find": collection, "filter": filter }, "verbosity": "queryPlanner" })
        .await
        .expect("explain");
    explained
        .get_document("queryPlanner")
        .expect("a plan")
        .to_string()
}

#[tokio::test]
async fn frejun_lookups_use_their_indexes() {
    let database = TestDatabase::migrated().await;
    let storage = &database.storage;
    let by_hash = voxbridge::storage::users::url_secret_hash_filter("abc");
    let plan_text = plan(storage, "users", by_hash).await;
    assert!(
        plan_text.contains("users_frejun_url_secret_hash_unique"),
        "{plan_text}"
    );
    assert!(!plan_text.contains("COLLSCAN"), "{plan_text}");

    let by_frejun_id = voxbridge::storage::call_logs::frejun_call_id_filter(
        voxbridge::domain::ids::TenantId::new(),
        "cs_1",
    );
    let plan_text = plan(storage, CALL_LOGS, by_frejun_id).await;
    assert!(
        plan_text.contains("call_logs_user_frejun_call_id_unique"),
        "{plan_text}"
    );
}
