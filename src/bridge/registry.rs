//! The calls this instance is bridging right now: what `GET /api/websocket/streams` (and the
//! `stream` of `GET /api/calls/active`) shows, and the mailbox live control uses to reach a
//! call's session.
//!
//! Only this instance's calls are here; a request for a call another instance bridges goes
//! there through `bridge::control`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::domain::control::{ControlOutcome, ControlRequest};
use crate::domain::ids::AssistantId;
use crate::domain::ids::CallId;
use crate::domain::ids::TenantId;
use bson::DateTime;
use tokio::sync::{mpsc, oneshot};

/// A control request on its way to a live call's session, with where to answer.
#[derive(Debug)]
pub(crate) struct ControlCommand {
    pub request: ControlRequest,
    pub reply: oneshot::Sender<ControlOutcome>,
}

/// Facts about a live stream, updated by its session.
#[derive(Debug)]
pub(crate) struct StreamFacts {
    pub call_id: CallId,
    pub user_id: TenantId,
    pub assistant_id: AssistantId,
    /// The voice AI's kind (`openai_realtime`, …), for the live-calls metric.
    pub backend: &'static str,
    pub started_at: DateTime,
    /// Filled in from FreJun's `start` message.
    pub stream: Mutex<StreamStartFacts>,
    pub audio_in_ms: AtomicU64,
    pub audio_out_ms: AtomicU64,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct StreamStartFacts {
    pub frejun_call_id: Option<String>,
    pub stream_id: Option<String>,
    pub encoding: Option<String>,
    pub sample_rate: Option<u32>,
    /// The AI side's audio format (`pcm24k`, `pcmu`, `pcm_8000`, …).
    pub ai_codec: String,
}

/// A snapshot of one live call, for the API.
#[derive(Debug, Clone)]
pub(crate) struct LiveCall {
    pub call_id: CallId,
    pub assistant_id: AssistantId,
    pub started_at: DateTime,
    pub stream: StreamStartFacts,
    pub audio_in_ms: u64,
    pub audio_out_ms: u64,
}

struct Entry {
    facts: Arc<StreamFacts>,
    control: mpsc::Sender<ControlCommand>,
}

/// Why a control command did not reach a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ControlError {
    /// Not bridged here (ended, not started, another tenant's, or on another instance).
    NotLive,
    /// The call ended while the command was on its way.
    Ended,
}

#[derive(Clone, Default)]
pub struct LiveCalls {
    calls: Arc<Mutex<HashMap<CallId, Entry>>>,
}

impl std::fmt::Debug for LiveCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCalls")
            .field("live", &self.len())
            .finish()
    }
}

/// Removes its call from the registry when the session ends, however it ends.
pub(crate) struct Registration {
    calls: LiveCalls,
    call_id: CallId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.calls.lock().remove(&self.call_id);
    }
}

impl LiveCalls {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CallId, Entry>> {
        // A panic elsewhere while holding the lock cannot leave the map inconsistent (every
        // update is a single insert or remove), so a poisoned lock is still usable.
        self.calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a live call; `None` if it is already bridged here (a second media stream for
    /// the same call).
    pub(crate) fn register(
        &self,
        facts: Arc<StreamFacts>,
        control: mpsc::Sender<ControlCommand>,
    ) -> Option<Registration> {
        let call_id = facts.call_id;
        let mut calls = self.lock();
        if calls.contains_key(&call_id) {
            return None;
        }
        calls.insert(call_id, Entry { facts, control });
        Some(Registration {
            calls: self.clone(),
            call_id,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One `(backend, AI codec)` pair per live call on this instance, every tenant's: what the
    /// live-calls metric counts.
    pub(crate) fn backends_and_codecs(&self) -> Vec<(&'static str, String)> {
        self.lock()
            .values()
            .map(|entry| {
                let stream = entry
                    .facts
                    .stream
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                (entry.facts.backend, stream.ai_codec.clone())
            })
            .collect()
    }

    /// The tenant's live calls on this instance, oldest first.
    pub(crate) fn list(&self, user_id: TenantId) -> Vec<LiveCall> {
        let mut calls: Vec<LiveCall> = self
            .lock()
            .values()
            .filter(|entry| entry.facts.user_id == user_id)
            .map(|entry| snapshot(&entry.facts))
            .collect();
        calls.sort_by_key(|call| (call.started_at, call.call_id));
        calls
    }

    /// The tenant's live call `call_id`, if bridged here.
    pub(crate) fn get(&self, user_id: TenantId, call_id: CallId) -> Option<LiveCall> {
        self.lock()
            .get(&call_id)
            .filter(|entry| entry.facts.user_id == user_id)
            .map(|entry| snapshot(&entry.facts))
    }

    /// Sends a request to the tenant's live call and waits for what it did.
    pub(crate) async fn control(
        &self,
        user_id: TenantId,
        call_id: CallId,
        request: ControlRequest,
    ) -> Result<ControlOutcome, ControlError> {
        let sender = self
            .lock()
            .get(&call_id)
            .filter(|entry| entry.facts.user_id == user_id)
            .map(|entry| entry.control.clone())
            .ok_or(ControlError::NotLive)?;
        let (reply, outcome) = oneshot::channel();
        sender
            .send(ControlCommand { request, reply })
            .await
            .map_err(|_| ControlError::Ended)?;
        outcome.await.map_err(|_| ControlError::Ended)
    }
}

fn snapshot(facts: &StreamFacts) -> LiveCall {
    LiveCall {
        call_id: facts.call_id,
        assistant_id: facts.assistant_id,
        started_at: facts.started_at,
        stream: facts
            .stream
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone(),
        audio_in_ms: facts.audio_in_ms.load(Ordering::Relaxed),
        audio_out_ms: facts.audio_out_ms.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(user_id: TenantId) -> Arc<StreamFacts> {
        Arc::new(StreamFacts {
            call_id: CallId::new(),
            user_id,
            assistant_id: AssistantId::new(),
            backend: "openai_realtime",
            started_at: DateTime::now(),
            stream: Mutex::default(),
            audio_in_ms: AtomicU64::new(0),
            audio_out_ms: AtomicU64::new(0),
        })
    }

    #[tokio::test]
    async fn calls_are_visible_to_their_tenant_only_and_leave_when_dropped() {
        let live = LiveCalls::default();
        let (alice, bob) = (TenantId::new(), TenantId::new());
        let call = facts(alice);
        let (tx, mut rx) = mpsc::channel(4);
        let registration = live.register(call.clone(), tx.clone()).unwrap();
        assert!(
            live.register(call.clone(), tx).is_none(),
            "one stream per call"
        );
        assert_eq!(live.list(alice).len(), 1);
        assert!(live.list(bob).is_empty());
        assert!(live.get(bob, call.call_id).is_none());

        let answering = tokio::spawn(async move {
            if let Some(ControlCommand {
                request: ControlRequest::Clear,
                reply,
            }) = rx.recv().await
            {
                let _ = reply.send(ControlOutcome::sent_to_frejun("clear"));
            }
        });
        let outcome = live
            .control(alice, call.call_id, ControlRequest::Clear)
            .await
            .unwrap();
        assert_eq!(outcome.sent_to_frejun.as_deref(), Some("clear"));
        answering.await.unwrap();
        assert_eq!(
            live.control(bob, call.call_id, ControlRequest::Clear).await,
            Err(ControlError::NotLive)
        );
        drop(registration);
        assert!(live.is_empty());
    }
}
