//! The leader's write path: validate a request against the image, decide its server-set fields,
//! and propose it, so that every record in the log is one that applies cleanly.
//!
//! Concurrent requests must see each other: two racing `create_topic` calls for one name must
//! give one record, not two. The proposer keeps a *speculative image*: the applied image plus
//! every record it has proposed and not yet seen applied. Validation and submission to Raft
//! happen under one short lock, so records reach the log in the order they were validated, and
//! the speculative image equals what the real image will be once they apply. Any failure drops
//! the speculative image; the next write rebuilds it from the applied image once everything of
//! the current term's start has applied.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::impls::ProgressResponder;
use openraft::type_config::async_runtime::WatchReceiver;
use tokio::sync::Mutex;

use super::state_machine::MetaState;
use super::{NodeId, Raft};
use crate::metadata::{Image, MetadataCommand, MetadataError, Record, WriteRequest};

/// How long a write may wait for its commit before the client is told the outcome is unknown.
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a new leader waits for its first entry to apply before refusing writes.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(3);

/// A committed write.
#[derive(Clone, Debug)]
pub struct Committed {
    /// The record's offset.
    pub offset: u64,
    /// The record as committed, server-set fields included.
    pub record: Record,
    /// The leader's timestamp on it.
    pub timestamp_ms: u64,
}

/// Why a write was not committed.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// The request is invalid against the image (400/404/409); nothing was proposed.
    #[error(transparent)]
    Rejected(#[from] MetadataError),
    /// This node is not the leader; `leader` names it when known.
    #[error("this node is not the leader")]
    NotLeader { leader: Option<(NodeId, String)> },
    /// No commit within the deadline, no leader, or shutting down. When `maybe_committed` the
    /// record may still commit; a retry must check first.
    #[error("{message}")]
    Unavailable {
        message: String,
        maybe_committed: bool,
    },
}

struct Speculative {
    term: u64,
    image: Option<Image>,
    last_timestamp_ms: u64,
}

/// Serializes validation and submission of writes on the leader.
pub struct Proposer {
    spec: Mutex<Speculative>,
}

impl Default for Proposer {
    fn default() -> Self {
        Self {
            spec: Mutex::new(Speculative {
                term: 0,
                image: None,
                last_timestamp_ms: 0,
            }),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn not_leader(raft: &Raft) -> ProposeError {
    let m = raft.metrics().borrow_watched().clone();
    let leader = m.current_leader.and_then(|id| {
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| (id, n.addr.clone()))
    });
    ProposeError::NotLeader { leader }
}

impl Proposer {
    /// Validates and proposes one write; returns once it is committed and applied here.
    pub async fn propose(
        &self,
        raft: &Raft,
        state: &MetaState,
        req: WriteRequest,
    ) -> Result<Committed, ProposeError> {
        let mut spec = self.spec.lock().await;
        let leader = raft.as_leader().map_err(|_| not_leader(raft))?;
        let term = leader.term();
        let committed_leader = leader.to_committed_leader_id();
        drop(leader);

        if spec.term != term || spec.image.is_none() {
            spec.image = None;
            wait_applied_in_term(state, term).await?;
            spec.image = Some(state.read().image.clone());
            spec.term = term;
        }
        let last_ts = spec.last_timestamp_ms;
        let image = spec
            .image
            .as_mut()
            .ok_or_else(|| ProposeError::Unavailable {
                message: "leader state is being rebuilt".into(),
                maybe_committed: false,
            })?;
        let record = image.prepare(req)?;
        let timestamp_ms = now_ms().max(last_ts).max(state.last_timestamp_ms());
        let cmd = MetadataCommand {
            timestamp_ms,
            record: record.clone(),
        };
        if let Err(e) = image.apply(0, &cmd) {
            spec.image = None;
            return Err(ProposeError::Unavailable {
                message: format!("internal: a validated record did not fold: {e}"),
                maybe_committed: false,
            });
        }
        spec.last_timestamp_ms = timestamp_ms;

        let (responder, _log_id_rx, result_rx) = ProgressResponder::new();
        if let Err(e) = raft
            .write(cmd)
            .with_leader(committed_leader)
            .responder(responder)
            .await
        {
            spec.image = None;
            return Err(ProposeError::Unavailable {
                message: format!("raft stopped: {e}"),
                maybe_committed: false,
            });
        }
        drop(spec);

        let outcome = tokio::time::timeout(COMMIT_TIMEOUT, result_rx).await;
        let fail = |message: String, maybe_committed: bool| ProposeError::Unavailable {
            message,
            maybe_committed,
        };
        let result = match outcome {
            Err(_) => Err(fail(
                "no commit within the deadline (no quorum?); the write may still commit".into(),
                true,
            )),
            Ok(Err(_)) => Err(fail(
                "the write was dropped before it committed".into(),
                true,
            )),
            // Leadership was lost after the entry was appended: the entry may already be on a
            // majority and be committed by the next leader, so this is *not* a definite failure
            // (and must not be forwarded again, which could answer 409 for a committed write).
            Ok(Ok(Err(e))) => Err(match e {
                openraft::errors::ClientWriteError::ForwardToLeader(_) => fail(
                    "leadership changed before the write committed; the write may still commit"
                        .into(),
                    true,
                ),
                other => fail(format!("write not committed: {other}"), true),
            }),
            Ok(Ok(Ok(resp))) => Ok(Committed {
                offset: resp.log_id.index,
                record,
                timestamp_ms,
            }),
        };
        if result.is_err() {
            self.spec.lock().await.image = None;
        }
        result
    }
}

/// Waits until the state machine has applied an entry of `term` (the new leader's blank entry):
/// from then on the image holds everything committed before this leader's first write.
async fn wait_applied_in_term(state: &MetaState, term: u64) -> Result<(), ProposeError> {
    let mut rx = state.subscribe_applied();
    let reached = tokio::time::timeout(CATCH_UP_TIMEOUT, rx.wait_for(|a| a.term >= term))
        .await
        .map(|r| r.is_ok());
    match reached {
        Ok(true) => Ok(()),
        _ => Err(ProposeError::Unavailable {
            message: "the new leader has not yet applied its log; retry shortly".into(),
            maybe_committed: false,
        }),
    }
}
