//! Live-control requests that cross instances: a request answered by an instance that does not
//! bridge the call is written here, addressed to the call's owner; the owner reads it from its
//! one change stream, runs it through the same path local control takes, and writes the
//! outcome, which the requester reads from its own change stream.
//!
//! A command runs at most once: the owner claims it (`pending` → `running`) with one
//! conditional update, so a change event seen twice (a resumed stream, the re-read of pending
//! commands after a restart of the stream) does nothing the second time, and a requester that
//! gave up first (`pending` → `expired`) leaves nothing for the owner to run late. Documents
//! expire by TTL (`expires_at`).

use std::time::Duration;

use bson::{DateTime, Document, doc};
use futures_util::TryStreamExt as _;
use mongodb::Collection;
use mongodb::change_stream::ChangeStream;
use mongodb::change_stream::event::{ChangeStreamEvent, ResumeToken};
use mongodb::options::{FullDocumentType, ReturnDocument};
use serde::{Deserialize, Serialize};

use super::collections::CALL_COMMANDS;
use super::error::to_bson;
use super::{Storage, StorageError};
use crate::domain::cluster::InstanceId;
use crate::domain::control::{ControlOutcome, ControlRequest};
use crate::domain::ids::{CallId, CommandId, TenantId};
use crate::domain::time::after;

/// How long a command document is kept, whatever became of it (for diagnosis).
const RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// Most pending commands re-read at once after the change stream restarts.
const PENDING_BATCH: i64 = 500;

/// Where a command is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CommandStatus {
    /// Written; the owner has not taken it yet.
    Pending,
    /// Taken by the owner.
    Running,
    /// Run; `outcome` says what it did.
    Done,
    /// The owner no longer bridges the call.
    NotLive,
    /// The requester stopped waiting before the owner took it; it never runs.
    Expired,
}

impl CommandStatus {
    #[cfg(test)]
    const ALL: [Self; 5] = [
        Self::Pending,
        Self::Running,
        Self::Done,
        Self::NotLive,
        Self::Expired,
    ];
    /// The statuses that answer the requester.
    const FINAL: [Self; 3] = [Self::Done, Self::NotLive, Self::Expired];

    /// Whether the requester has its answer.
    pub(crate) fn is_final(self) -> bool {
        Self::FINAL.contains(&self)
    }

    /// The stored name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Done => "done",
            Self::NotLive => "not_live",
            Self::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CallCommandRecord {
    #[serde(rename = "_id")]
    pub id: CommandId,
    pub user_id: TenantId,
    pub call_id: CallId,
    /// The instance bridging the call, which runs the command.
    pub owner: InstanceId,
    /// The instance that wrote it and waits for its outcome.
    pub issued_by: InstanceId,
    pub request: ControlRequest,
    pub status: CommandStatus,
    #[serde(default)]
    pub outcome: Option<ControlOutcome>,
    pub created_at: DateTime,
    /// The owner may take it until then; after, it is left to expire.
    pub run_by: DateTime,
    #[serde(default)]
    pub finished_at: Option<DateTime>,
    /// The TTL index removes the document then.
    pub expires_at: DateTime,
}

impl CallCommandRecord {
    /// A new pending command for `owner`, which may take it until `run_by`.
    pub(crate) fn new(
        user_id: TenantId,
        call_id: CallId,
        owner: InstanceId,
        issued_by: InstanceId,
        request: ControlRequest,
        now: DateTime,
        run_by: DateTime,
    ) -> Self {
        Self {
            id: CommandId::new(),
            user_id,
            call_id,
            owner,
            issued_by,
            request,
            status: CommandStatus::Pending,
            outcome: None,
            created_at: now,
            run_by,
            finished_at: None,
            expires_at: after(now, RETENTION),
        }
    }
}

/// One change an instance's stream reports: a command addressed to it, or the answer to one it
/// issued.
pub(crate) type CommandChange = ChangeStreamEvent<CallCommandRecord>;

#[derive(Clone, Debug)]
pub(crate) struct CallCommands {
    collection: Collection<CallCommandRecord>,
}

impl Storage {
    pub(crate) fn call_commands(&self) -> CallCommands {
        CallCommands {
            collection: self.collection(CALL_COMMANDS),
        }
    }
}

impl CallCommands {
    pub(crate) async fn insert(&self, command: &CallCommandRecord) -> Result<(), StorageError> {
        self.collection.insert_one(command).await?;
        Ok(())
    }

    pub(crate) async fn get(&self, id: CommandId) -> Result<CallCommandRecord, StorageError> {
        self.collection
            .find_one(doc! { "_id": id })
            .await?
            .ok_or(StorageError::NotFound)
    }

    /// Takes a pending command addressed to `owner` whose time to run has not passed. Answers
    /// it if this call took it (only one ever does).
    pub(crate) async fn claim(
        &self,
        id: CommandId,
        owner: &InstanceId,
        now: DateTime,
    ) -> Result<Option<CallCommandRecord>, StorageError> {
        Ok(self
            .collection
            .find_one_and_update(
                doc! {
                    "_id": id,
                    "owner": owner.as_str(),
                    "status": CommandStatus::Pending.as_str(),
                    "run_by": { "$gt": now },
                },
                doc! { "$set": { "status": CommandStatus::Running.as_str() } },
            )
            .return_document(ReturnDocument::After)
            .await?)
    }

    /// Records what a running command did (`outcome`), or that the call was not live here.
    pub(crate) async fn finish(
        &self,
        id: CommandId,
        outcome: Option<&ControlOutcome>,
        now: DateTime,
    ) -> Result<(), StorageError> {
        let set = match outcome {
            Some(outcome) => doc! {
                "status": CommandStatus::Done.as_str(),
                "outcome": to_bson(outcome)?,
                "finished_at": now,
            },
            None => doc! { "status": CommandStatus::NotLive.as_str(), "finished_at": now },
        };
        self.collection
            .update_one(
                doc! { "_id": id, "status": CommandStatus::Running.as_str() },
                doc! { "$set": set },
            )
            .await?;
        Ok(())
    }

    /// Withdraws a command its owner has not taken. Answers whether it was withdrawn (if not,
    /// the owner took it first).
    pub(crate) async fn expire(&self, id: CommandId, now: DateTime) -> Result<bool, StorageError> {
        let result = self
            .collection
            .update_one(
                doc! { "_id": id, "status": CommandStatus::Pending.as_str() },
                doc! { "$set": { "status": CommandStatus::Expired.as_str(), "finished_at": now } },
            )
            .await?;
        Ok(result.modified_count == 1)
    }

    /// Pending commands addressed to `owner` that may still run, oldest first: what a change
    /// stream that (re)started may have missed.
    pub(crate) async fn pending_for(
        &self,
        owner: &InstanceId,
        now: DateTime,
    ) -> Result<Vec<CallCommandRecord>, StorageError> {
        Ok(self
            .collection
            .find(doc! {
                "owner": owner.as_str(),
                "status": CommandStatus::Pending.as_str(),
                "run_by": { "$gt": now },
            })
            .sort(doc! { "created_at": 1 })
            .limit(PENDING_BATCH)
            .await?
            .try_collect()
            .await?)
    }

    /// The one change stream of `instance`: commands inserted for it to run, and final answers
    /// to the commands it issued. `resume_after` continues after a hiccup; `None` starts now.
    pub(crate) async fn watch(
        &self,
        instance: &InstanceId,
        resume_after: Option<ResumeToken>,
    ) -> Result<ChangeStream<CommandChange>, StorageError> {
        Ok(self
            .collection
            .watch()
            .pipeline([watch_filter(instance)])
            .full_document(FullDocumentType::UpdateLookup)
            .resume_after(resume_after)
            .await?)
    }
}

/// The `$match` of an instance's stream (see [`CallCommands::watch`]).
fn watch_filter(instance: &InstanceId) -> Document {
    let finals: Vec<&str> = CommandStatus::FINAL.map(CommandStatus::as_str).to_vec();
    doc! { "$match": { "$or": [
        { "operationType": "insert", "fullDocument.owner": instance.as_str() },
        {
            "operationType": "update",
            "fullDocument.issued_by": instance.as_str(),
            "fullDocument.status": { "$in": finals },
        },
    ] } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_document_round_trips_with_its_request() {
        let now = DateTime::from_millis(1_000);
        let command = CallCommandRecord::new(
            TenantId::new(),
            CallId::new(),
            InstanceId::parse("a").unwrap(),
            InstanceId::parse("b").unwrap(),
            ControlRequest::InterruptChunk { chunk_id: 3 },
            now,
            DateTime::from_millis(4_000),
        );
        let document = bson::to_document(&command).unwrap();
        assert_eq!(
            document.get_document("request").unwrap().get_str("kind"),
            Ok("interrupt_chunk")
        );
        assert_eq!(document.get_str("status"), Ok("pending"));
        assert_eq!(
            bson::from_document::<CallCommandRecord>(document).unwrap(),
            command
        );
    }

    #[test]
    fn stored_status_names_are_the_serialized_ones() {
        for status in CommandStatus::ALL {
            assert_eq!(
                bson::to_bson(&status).unwrap().as_str(),
                Some(status.as_str())
            );
        }
    }
}
