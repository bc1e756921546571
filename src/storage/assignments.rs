//! Links between phone numbers and assistants, changed in MongoDB transactions so that a number
//! never routes calls to a deleted assistant.
//!
//! Deleting an assistant reads "no number is assigned" and then deletes it; assigning a number
//! reads "the assistant exists" and then writes the number. Run side by side, each read can miss
//! the other's write. So both transactions also *write the assistant document* (assigning bumps
//! its `assignment_version`, deleting removes it): MongoDB then refuses one of two concurrent
//! transactions with a write conflict, and its retry sees the other's outcome (the delete answers
//! "in use", or the assignment "assistant not found").

use bson::{DateTime, doc};
use mongodb::ClientSession;
use mongodb::error::{Error, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT};
use mongodb::options::ReturnDocument;

use super::assistants::AssistantRecord;
use super::collections::{ASSISTANTS, PHONE_NUMBERS};
use super::phone_numbers::PhoneNumberRecord;
use super::{Storage, StorageError};
use crate::domain::ids::AssistantId;
use crate::domain::ids::PhoneNumberId;
use crate::domain::ids::TenantId;

/// Attempts before a transaction that keeps conflicting is reported as an error.
const MAX_ATTEMPTS: usize = 10;

#[derive(Debug)]
pub(crate) enum AssignOutcome {
    Assigned(PhoneNumberRecord),
    NumberNotFound,
    AssistantNotFound,
}

#[derive(Debug)]
pub(crate) enum InsertOutcome {
    Inserted,
    AssistantNotFound,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DeleteOutcome {
    Deleted,
    NotFound,
    /// This many of the tenant's numbers are assigned to it.
    InUse(u64),
}

impl Storage {
    /// Points one of the tenant's numbers at one of the tenant's assistants.
    pub(crate) async fn assign_number(
        &self,
        user_id: TenantId,
        number_id: PhoneNumberId,
        assistant_id: AssistantId,
        now: DateTime,
    ) -> Result<AssignOutcome, StorageError> {
        let numbers = self.collection::<PhoneNumberRecord>(PHONE_NUMBERS);
        self.transaction(async |session| {
            let exists = numbers
                .find_one(doc! { "_id": number_id, "user_id": user_id })
                .session(&mut *session)
                .await?
                .is_some();
            if !exists {
                return Ok(AssignOutcome::NumberNotFound);
            }
            if !self.claim_assistant(session, user_id, assistant_id).await? {
                return Ok(AssignOutcome::AssistantNotFound);
            }
            let number = numbers
                .find_one_and_update(
                    doc! { "_id": number_id, "user_id": user_id },
                    doc! { "$set": { "assigned_assistant_id": assistant_id, "updated_at": now } },
                )
                .return_document(ReturnDocument::After)
                .session(&mut *session)
                .await?;
            Ok(number.map_or(AssignOutcome::NumberNotFound, AssignOutcome::Assigned))
        })
        .await
    }

    /// Adds a number, assigned to `number.assigned_assistant_id` if set (which must be one of
    /// the tenant's assistants). `Conflict` when any tenant holds the number already.
    pub(crate) async fn insert_number(
        &self,
        number: &PhoneNumberRecord,
    ) -> Result<InsertOutcome, StorageError> {
        let numbers = self.collection::<PhoneNumberRecord>(PHONE_NUMBERS);
        self.transaction(async |session| {
            if let Some(assistant_id) = number.assigned_assistant_id {
                if !self
                    .claim_assistant(session, number.user_id, assistant_id)
                    .await?
                {
                    return Ok(InsertOutcome::AssistantNotFound);
                }
            }
            numbers.insert_one(number).session(&mut *session).await?;
            Ok(InsertOutcome::Inserted)
        })
        .await
    }

    /// Deletes one of the tenant's assistants unless a number is assigned to it.
    pub(crate) async fn delete_assistant(
        &self,
        user_id: TenantId,
        assistant_id: AssistantId,
    ) -> Result<DeleteOutcome, StorageError> {
        let numbers = self.collection::<PhoneNumberRecord>(PHONE_NUMBERS);
        let assistants = self.collection::<AssistantRecord>(ASSISTANTS);
        self.transaction(async |session| {
            let assigned = numbers
                .count_documents(doc! { "user_id": user_id, "assigned_assistant_id": assistant_id })
                .session(&mut *session)
                .await?;
            if assigned > 0 {
                return Ok(DeleteOutcome::InUse(assigned));
            }
            let deleted = assistants
                .delete_one(doc! { "_id": assistant_id, "user_id": user_id })
                .session(&mut *session)
                .await?;
            Ok(if deleted.deleted_count == 0 {
                DeleteOutcome::NotFound
            } else {
                DeleteOutcome::Deleted
            })
        })
        .await
    }

    /// Writes the assistant document (the point of conflict with a concurrent delete); false
    /// when the tenant has no such assistant.
    async fn claim_assistant(
        &self,
        session: &mut ClientSession,
        user_id: TenantId,
        assistant_id: AssistantId,
    ) -> Result<bool, Error> {
        let result = self
            .collection::<AssistantRecord>(ASSISTANTS)
            .update_one(
                doc! { "_id": assistant_id, "user_id": user_id },
                doc! { "$inc": { "assignment_version": 1 } },
            )
            .session(session)
            .await?;
        Ok(result.matched_count == 1)
    }

    /// Runs `body` in a transaction and commits, retrying the whole transaction on transient
    /// errors (write conflicts) and the commit on an unknown commit result.
    async fn transaction<T>(
        &self,
        mut body: impl AsyncFnMut(&mut ClientSession) -> Result<T, Error>,
    ) -> Result<T, StorageError> {
        let mut session = self.client.start_session().await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            session.start_transaction().await?;
            let outcome = match body(&mut session).await {
                Ok(outcome) => outcome,
                Err(err) => {
                    let _ = session.abort_transaction().await;
                    if err.contains_label(TRANSIENT_TRANSACTION_ERROR) && attempt < MAX_ATTEMPTS {
                        continue;
                    }
                    return Err(err.into());
                }
            };
            loop {
                match session.commit_transaction().await {
                    Ok(()) => return Ok(outcome),
                    Err(err)
                        if err.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT)
                            && attempt < MAX_ATTEMPTS =>
                    {
                        attempt += 1;
                    }
                    Err(err)
                        if err.contains_label(TRANSIENT_TRANSACTION_ERROR)
                            && attempt < MAX_ATTEMPTS =>
                    {
                        break;
                    }
                    Err(err) => return Err(err.into()),
                }
            }
        }
    }
}
