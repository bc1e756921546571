//! Applies the ordered migration files in `migrations/` and records each applied version.
//!
//! A migration file is JSON: a description and a list of operations, each idempotent on its own:
//! - `ensure_collection`: create the collection with its JSON-schema validator, or update the
//!   validator (`collMod`) when the collection exists;
//! - `ensure_indexes`: `createIndexes` with explicit names (same spec again is a no-op, a changed
//!   spec under the same name fails loudly);
//! - `drop_index`: drop an index by name; one already gone is not an error (a second instance
//!   applying the same migration finds it gone);
//! - `run_command`: any other database command, for data fixes (write it to be re-runnable).
//!
//! Files are compiled into the binary (so a deployed binary carries its schema) and applied in
//! version order. Applied versions live in `schema_migrations` with the file's SHA-256, so a
//! re-run is a no-op and an edited, already-applied file is refused instead of silently skipped.
//! Two instances starting at once may both apply a migration; the operations are idempotent and
//! the second record insert is a harmless duplicate.

use std::collections::HashMap;

use bson::{Bson, Document, doc};
use chrono::Utc;
use futures_util::TryStreamExt as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::collections::SCHEMA_MIGRATIONS;
use super::error::server_error_code;
use super::{Storage, StorageError};

/// A migration compiled into the binary.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    /// File name in `migrations/`, e.g. `0001_core_collections.json`.
    pub file: &'static str,
    pub source: &'static str,
}

/// Every migration, in the order it applies. A test checks this list against the directory.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        file: "0001_core_collections.json",
        source: include_str!("../../migrations/0001_core_collections.json"),
    },
    Migration {
        version: 2,
        file: "0002_frejun_control_plane.json",
        source: include_str!("../../migrations/0002_frejun_control_plane.json"),
    },
    Migration {
        version: 3,
        file: "0003_url_secret_rotation.json",
        source: include_str!("../../migrations/0003_url_secret_rotation.json"),
    },
    Migration {
        version: 4,
        file: "0004_frejun_call_id_per_tenant.json",
        source: include_str!("../../migrations/0004_frejun_call_id_per_tenant.json"),
    },
    Migration {
        version: 5,
        file: "0005_webhook_endpoints.json",
        source: include_str!("../../migrations/0005_webhook_endpoints.json"),
    },
    Migration {
        version: 6,
        file: "0006_webhook_deliveries.json",
        source: include_str!("../../migrations/0006_webhook_deliveries.json"),
    },
    Migration {
        version: 7,
        file: "0007_call_analysis.json",
        source: include_str!("../../migrations/0007_call_analysis.json"),
    },
    Migration {
        version: 8,
        file: "0008_cluster.json",
        source: include_str!("../../migrations/0008_cluster.json"),
    },
];

/// MongoDB's "collection already exists" error code.
const NAMESPACE_EXISTS: i32 = 48;

/// MongoDB's `IndexNotFound`: `dropIndexes` of a name that is not there.
const INDEX_NOT_FOUND: i32 = 27;

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("migration {file} is not a valid migration file: {message}")]
    Invalid { file: String, message: String },
    #[error(
        "migration {file} was applied with different contents (checksum {applied}, now {current}); add a new migration instead of editing an applied one"
    )]
    Edited {
        file: String,
        applied: String,
        current: String,
    },
    #[error("migration {file} failed at operation {index}")]
    Operation {
        file: String,
        index: usize,
        #[source]
        source: StorageError,
    },
    #[error("cannot read or record applied migrations")]
    Storage(#[from] StorageError),
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Files applied by this run, in order.
    pub applied: Vec<String>,
    /// Files that were already applied before this run.
    pub already_applied: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MigrationFile {
    #[allow(dead_code)] // Documentation for readers of the file; not used at runtime.
    description: String,
    operations: Vec<Operation>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Operation {
    EnsureCollection {
        collection: String,
        validator: Option<serde_json::Value>,
    },
    EnsureIndexes {
        collection: String,
        indexes: Vec<serde_json::Value>,
    },
    DropIndex {
        collection: String,
        name: String,
    },
    RunCommand {
        command: serde_json::Value,
    },
}

/// Applies every migration in [`MIGRATIONS`] that the database has not recorded yet.
pub async fn run(storage: &Storage) -> Result<MigrationReport, MigrationError> {
    run_list(storage, MIGRATIONS).await
}

/// Applies `migrations` (normally [`MIGRATIONS`]); separate so tests can feed a changed list.
pub async fn run_list(
    storage: &Storage,
    migrations: &[Migration],
) -> Result<MigrationReport, MigrationError> {
    let records = storage.collection::<Document>(SCHEMA_MIGRATIONS);
    let applied: HashMap<i64, String> = records
        .find(doc! {})
        .await
        .map_err(StorageError::from)?
        .try_collect::<Vec<_>>()
        .await
        .map_err(StorageError::from)?
        .into_iter()
        .filter_map(|record| {
            let version = record.get("_id").and_then(Bson::as_i64)?;
            let checksum = record.get_str("checksum").ok()?.to_owned();
            Some((version, checksum))
        })
        .collect();

    let mut report = MigrationReport::default();
    for migration in migrations {
        let checksum = checksum(migration.source);
        if let Some(recorded) = applied.get(&i64::from(migration.version)) {
            if *recorded != checksum {
                return Err(MigrationError::Edited {
                    file: migration.file.to_owned(),
                    applied: recorded.clone(),
                    current: checksum,
                });
            }
            report.already_applied.push(migration.file.to_owned());
            continue;
        }

        apply(storage, migration).await?;
        let record = doc! {
            "_id": i64::from(migration.version),
            "file": migration.file,
            "checksum": &checksum,
            "applied_at": bson::DateTime::from_chrono(Utc::now()),
        };
        match records.insert_one(record).await.map_err(StorageError::from) {
            // Another instance applied and recorded it at the same moment.
            Ok(_) | Err(StorageError::Conflict) => {}
            Err(err) => return Err(err.into()),
        }
        tracing::info!(file = migration.file, "applied migration");
        report.applied.push(migration.file.to_owned());
    }
    Ok(report)
}

/// Parses a migration file; used by [`run`] and by tests that check every file parses.
fn parse(migration: &Migration) -> Result<MigrationFile, MigrationError> {
    serde_json::from_str(migration.source).map_err(|err| MigrationError::Invalid {
        file: migration.file.to_owned(),
        message: err.to_string(),
    })
}

async fn apply(storage: &Storage, migration: &Migration) -> Result<(), MigrationError> {
    let file = parse(migration)?;
    let database = storage.database();
    for (index, operation) in file.operations.into_iter().enumerate() {
        let invalid = |message: String| MigrationError::Invalid {
            file: migration.file.to_owned(),
            message: format!("operation {index}: {message}"),
        };
        let failed = |source: StorageError| MigrationError::Operation {
            file: migration.file.to_owned(),
            index,
            source,
        };
        match operation {
            Operation::EnsureCollection {
                collection,
                validator,
            } => {
                let validator = validator.map(to_document).transpose().map_err(invalid)?;
                let mut create = doc! { "create": &collection };
                if let Some(validator) = &validator {
                    create.insert("validator", validator.clone());
                    create.insert("validationLevel", "strict");
                    create.insert("validationAction", "error");
                }
                match database.run_command(create).await {
                    Ok(_) => {}
                    Err(err) if server_error_code(&err) == Some(NAMESPACE_EXISTS) => {
                        let mut modify = doc! { "collMod": &collection };
                        if let Some(validator) = validator {
                            modify.insert("validator", validator);
                            modify.insert("validationLevel", "strict");
                            modify.insert("validationAction", "error");
                        }
                        database
                            .run_command(modify)
                            .await
                            .map_err(|err| failed(err.into()))?;
                    }
                    Err(err) => return Err(failed(err.into())),
                }
            }
            Operation::EnsureIndexes {
                collection,
                indexes,
            } => {
                let indexes = indexes
                    .into_iter()
                    .map(|index| to_document(index).map(Bson::Document))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(invalid)?;
                if let Some(unnamed) = indexes.iter().find(|index| {
                    index
                        .as_document()
                        .is_none_or(|index| index.get_str("name").is_err())
                }) {
                    return Err(invalid(format!("every index needs a name: {unnamed}")));
                }
                database
                    .run_command(doc! { "createIndexes": &collection, "indexes": indexes })
                    .await
                    .map_err(|err| failed(err.into()))?;
            }
            Operation::DropIndex { collection, name } => {
                match database
                    .run_command(doc! { "dropIndexes": &collection, "index": &name })
                    .await
                {
                    Ok(_) => {}
                    Err(err) if server_error_code(&err) == Some(INDEX_NOT_FOUND) => {}
                    Err(err) => return Err(failed(err.into())),
                }
            }
            Operation::RunCommand { command } => {
                let command = to_document(command).map_err(invalid)?;
                database
                    .run_command(command)
                    .await
                    .map_err(|err| failed(err.into()))?;
            }
        }
    }
    Ok(())
}

/// JSON (MongoDB extended JSON allowed) to a BSON document.
fn to_document(value: serde_json::Value) -> Result<Document, String> {
    match Bson::try_from(value) {
        Ok(Bson::Document(document)) => Ok(document),
        Ok(other) => Err(format!("expected an object, got {other}")),
        Err(err) => Err(err.to_string()),
    }
}

fn checksum(source: &str) -> String {
    Sha256::digest(source.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_the_directory_is_registered_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".json"))
            .collect();
        files.sort();
        let registered: Vec<&str> = MIGRATIONS.iter().map(|m| m.file).collect();
        assert_eq!(
            files, registered,
            "register each migrations/*.json in MIGRATIONS"
        );
        for (position, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(
                migration.version as usize,
                position + 1,
                "versions are 1, 2, 3, …"
            );
            let prefix = format!("{:04}_", migration.version);
            assert!(
                migration.file.starts_with(&prefix),
                "{} starts with {prefix}",
                migration.file
            );
        }
    }

    #[test]
    fn every_migration_parses_and_converts_to_bson() {
        for migration in MIGRATIONS {
            let file = parse(migration).unwrap();
            assert!(
                !file.operations.is_empty(),
                "{} has operations",
                migration.file
            );
            for operation in file.operations {
                let json = match operation {
                    Operation::EnsureCollection { validator, .. } => validator,
                    Operation::EnsureIndexes { indexes, .. } => {
                        Some(serde_json::Value::Array(indexes))
                    }
                    Operation::DropIndex { .. } => None,
                    Operation::RunCommand { command } => Some(command),
                };
                if let Some(json) = json {
                    Bson::try_from(json).unwrap();
                }
            }
        }
    }
}
