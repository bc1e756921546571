//! The storage layer's error type. Callers see three outcomes (plus "unavailable", which the
//! HTTP layer turns into 503): the document is missing, it conflicts with a unique index, or the
//! backend failed. The driver error is kept as the source for logs, never shown to clients.

use mongodb::error::{ErrorKind, WriteFailure};

/// MongoDB's duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    #[error("document not found")]
    NotFound,
    /// A unique index refused the write.
    #[error("conflicts with an existing document")]
    Conflict,
    /// The database could not be reached in time (no server selectable, network failure, or a
    /// deadline of ours ran out).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error")]
    Backend(#[source] mongodb::error::Error),
}

impl From<mongodb::error::Error> for StorageError {
    fn from(err: mongodb::error::Error) -> Self {
        if is_duplicate_key(&err) {
            return StorageError::Conflict;
        }
        match err.kind.as_ref() {
            ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. } => StorageError::Unavailable(err.to_string()),
            _ => StorageError::Backend(err),
        }
    }
}

/// The server's error code for a command or write error, when it has one.
pub fn server_error_code(err: &mongodb::error::Error) -> Option<i32> {
    match err.kind.as_ref() {
        ErrorKind::Command(command) => Some(command.code),
        ErrorKind::Write(WriteFailure::WriteError(write)) => Some(write.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(concern)) => Some(concern.code),
        ErrorKind::InsertMany(insert) => insert
            .write_errors
            .as_ref()
            .and_then(|errors| errors.first())
            .map(|write| write.code),
        _ => None,
    }
}

/// `value` as BSON for an update. A value of ours that does not encode is a bug, reported like
/// a failed write so that the caller's retry and logging apply.
pub(crate) fn to_bson<T: serde::Serialize>(value: &T) -> Result<bson::Bson, StorageError> {
    bson::to_bson(value).map_err(|err| StorageError::Unavailable(format!("cannot encode: {err}")))
}

fn is_duplicate_key(err: &mongodb::error::Error) -> bool {
    match err.kind.as_ref() {
        ErrorKind::InsertMany(insert) => insert
            .write_errors
            .iter()
            .flatten()
            .any(|write| write.code == DUPLICATE_KEY),
        _ => server_error_code(err) == Some(DUPLICATE_KEY),
    }
}
