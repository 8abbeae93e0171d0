//! The leader's write path: validate a request against the image, decide its server-set fields,
//! and propose it, so that every record in the log is one that applies cleanly.
//!
//! Concurrent requests must see each other: two racing `create_topic` calls for one name must
//! give one record, not two. The proposer keeps a *speculative image*: the applied image plus
//! every record it has proposed and not yet seen applied. Validation and submission to Raft
//! happen under one short lock, so records reach the log in the order they were validated, and
//! the speculative image equals what the real image will be once they apply.
//!
//! When the speculative image is in doubt (a new term, any write whose outcome is not a clean
//! apply: a commit timeout included, or a plan its caller dropped while a record was being
//! submitted), it is dropped and rebuilt from the applied image, but only
//! once *everything* in the leader's log has applied, so that no earlier proposal of the term
//! (a timed-out write still in the log) is missing from it. Until then writes get a 503 that
//! says nothing was proposed; a retry of a timed-out write is validated against an image that
//! holds it once it committed (409), and is never a second record. A record the image still
//! refuses at apply is answered with that refusal, never `200`.
//!
//! Both images are persistent maps, so a fresh copy of the applied image shares all its nodes;
//! but each then copies the paths it changes, and after enough writes the two share nothing: a
//! leader would hold its image twice. So whenever the applied image has caught up with every
//! record proposed (counted, see [`Speculative::share_applied`]), the speculative image is
//! replaced by a copy of it, which is the same content and shares its memory again.

use std::time::{Duration, Instant};

use openraft::impls::ProgressResponder;
use openraft::type_config::async_runtime::WatchReceiver;
use tokio::sync::Mutex;

use super::state_machine::MetaState;
use super::support::now_ms;
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
    /// When the last rebuild of the image gave up, and why: writes that were already queued on
    /// the lock then share that answer instead of each waiting out the catch-up again.
    rebuild_failed: Option<(Instant, String)>,
    /// [`ImageAt::records_applied`](super::state_machine::ImageAt::records_applied) when `image`
    /// was last copied from the applied image.
    synced_at_records: u64,
    /// Records proposed (submitted to Raft) since then.
    proposed_since_sync: u64,
}

impl Speculative {
    /// Replaces the speculative image with a copy of the applied one when the applied image
    /// holds every record proposed since the last copy: then the two are the same metadata, and
    /// the copy shares the applied image's memory instead of holding a diverged twin.
    ///
    /// Within one term (checked before this is called) every record entry applied after the
    /// last copy is one this proposer submitted, in the order it submitted them: the copy was
    /// taken only once everything in the leader's log had applied, and no other node appends in
    /// this term. So "applied since" equal to "proposed since" means all of them applied. A
    /// record refused at apply counts too; the applied image without it is then the truth, and
    /// the refusal drops the image anyway.
    fn share_applied(&mut self, state: &MetaState) {
        if self.image.is_none() || self.proposed_since_sync == 0 {
            return;
        }
        let at = state.read();
        if caught_up(
            at.records_applied,
            self.synced_at_records,
            self.proposed_since_sync,
        ) {
            self.image = Some(at.image.clone());
            self.synced_at_records = at.records_applied;
            self.proposed_since_sync = 0;
        }
    }
}

/// Whether the applied image holds every record proposed since the speculative image was copied
/// from it: `applied_now` record entries applied, `synced_at` when it was copied, `proposed`
/// since. (Never more applied than proposed within a term; see [`Speculative::share_applied`].)
fn caught_up(applied_now: u64, synced_at: u64, proposed: u64) -> bool {
    applied_now == synced_at + proposed
}

/// Whether a write that started waiting for the lock at `arrived` shares a rebuild failure at
/// `failed_at` instead of waiting for its own. Each write then waits for at most one catch-up:
/// on a leader cut off from its quorum, a queue of writes would otherwise wait
/// [`CATCH_UP_TIMEOUT`] each, one after another, and the last in line for the sum of them.
fn shares_failed_rebuild(failed_at: Option<Instant>, arrived: Instant) -> bool {
    failed_at.is_some_and(|at| at >= arrived)
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
                rebuild_failed: None,
                synced_at_records: 0,
                proposed_since_sync: 0,
            }),
        }
    }
}

/// The leader this node sees, with the address the membership records for it.
pub(crate) fn current_leader(raft: &Raft) -> Option<(NodeId, String)> {
    let m = raft.metrics();
    let m = m.borrow_watched();
    let id = m.current_leader?;
    let addr = m.membership_config.membership().get_node(&id)?.addr.clone();
    Some((id, addr))
}

/// A `NotLeader` error naming the leader when this node knows it.
pub(crate) fn not_leader(raft: &Raft) -> ProposeError {
    ProposeError::NotLeader {
        leader: current_leader(raft),
    }
}

/// How long a node that already names itself leader waits for its vote to be flushed.
const OWN_VOTE_WAIT: Duration = Duration::from_secs(2);

/// Waits until this node may propose as leader. Just after an election the metrics may already
/// name this node leader while its vote of the new term is still being flushed, and openraft's
/// `as_leader` answers "not leader" until it is: a write then would be told to go to this very
/// node. In that window it waits (up to [`OWN_VOTE_WAIT`]) instead.
async fn own_leadership(raft: &Raft) -> Result<(), ProposeError> {
    let me = raft.metrics().borrow_watched().id;
    let deadline = tokio::time::Instant::now() + OWN_VOTE_WAIT;
    let mut metrics = raft.metrics();
    loop {
        if raft.as_leader().is_ok() {
            return Ok(());
        }
        let names_me = metrics.borrow_watched().current_leader == Some(me);
        if !names_me {
            return Err(not_leader(raft));
        }
        match tokio::time::timeout_at(deadline, metrics.changed()).await {
            Ok(Ok(())) => {}
            _ => return Err(not_leader(raft)),
        }
    }
}

impl Proposer {
    /// Validates and proposes one write; returns once it is committed and applied here.
    pub async fn propose(
        &self,
        raft: &Raft,
        state: &MetaState,
        req: WriteRequest,
    ) -> Result<Committed, ProposeError> {
        let mut req = Some(req);
        let mut out = self
            .propose_plan(raft, state, |_| req.take().map(Ok))
            .await?;
        out.pop().unwrap_or_else(|| {
            Err(ProposeError::Unavailable {
                message: "internal: the write was not proposed".into(),
                maybe_committed: false,
            })
        })
    }

    /// Proposes the writes `next` makes, one after another under one hold of the lock, so that
    /// they reach the log consecutively with no other write between them (the liveness
    /// controller's "same step": a broker's fence and the leadership moves it causes).
    ///
    /// `next` is called with the speculative image, each time after the previous record folded
    /// into it, until it answers `None`; so each write is decided on the image the ones before
    /// it leave. An `Err` from `next` (or a request the image refuses) ends the plan there and
    /// is the last result. Returns once every proposed record has committed (or failed), one
    /// result per record, in order; `Err` only when nothing at all could be proposed.
    pub async fn propose_plan(
        &self,
        raft: &Raft,
        state: &MetaState,
        mut next: impl FnMut(&Image) -> Option<Result<WriteRequest, MetadataError>>,
    ) -> Result<Vec<Result<Committed, ProposeError>>, ProposeError> {
        let arrived = Instant::now();
        let mut spec = self.spec.lock().await;
        own_leadership(raft).await?;
        let leader = raft.as_leader().map_err(|_| not_leader(raft))?;
        let term = leader.term();
        let committed_leader = leader.to_committed_leader_id();
        drop(leader);

        if spec.term != term || spec.image.is_none() {
            spec.image = None;
            if let Some((at, why)) = &spec.rebuild_failed {
                if spec.term == term && shares_failed_rebuild(Some(*at), arrived) {
                    return Err(ProposeError::Unavailable {
                        message: why.clone(),
                        maybe_committed: false,
                    });
                }
            }
            spec.term = term;
            match applied_image_after_own_log(raft, state, term).await {
                Ok((image, records_applied)) => {
                    spec.image = Some(image);
                    spec.synced_at_records = records_applied;
                    spec.proposed_since_sync = 0;
                    spec.rebuild_failed = None;
                }
                Err(e) => {
                    spec.rebuild_failed = Some((Instant::now(), e.to_string()));
                    return Err(e);
                }
            }
        } else {
            spec.share_applied(state);
        }
        let mut pending = Vec::new();
        let mut refused = None;
        loop {
            let last_ts = spec.last_timestamp_ms;
            let Some(image) = spec.image.as_mut() else {
                break;
            };
            let req = match next(image) {
                None => break,
                Some(Err(e)) => {
                    refused = Some(e);
                    break;
                }
                Some(Ok(req)) => req,
            };
            let record = match image.prepare(req) {
                Ok(r) => r,
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            };
            let timestamp_ms = now_ms().max(last_ts).max(state.last_timestamp_ms());
            let cmd = MetadataCommand {
                timestamp_ms,
                record: record.clone(),
            };
            if let Err(e) = image.apply(0, &cmd) {
                spec.image = None;
                pending.push(Err(ProposeError::Unavailable {
                    message: format!("internal: a validated record did not fold: {e}"),
                    maybe_committed: false,
                }));
                break;
            }
            spec.last_timestamp_ms = timestamp_ms;

            // Only the final result: a responder that also reports the commit's log id would
            // log a WARN line per write when that receiver is dropped unread (it was, and the
            // leader wrote one log line per committed write).
            let (responder, result_rx) = ProgressResponder::complete_only();
            // The image holds the record from here on, but the record is proposed only once the
            // send below returns. That send can yield (a full channel, or the task's cooperative
            // budget spent, as in a long plan), and a caller that stops waiting then (an HTTP
            // handler whose client went away) drops this future there. So the image is out of
            // `spec` across the send: dropped here, it leaves none, and the next write rebuilds
            // it once the log has applied.
            let folded = spec.image.take();
            if let Err(e) = raft
                .write(cmd)
                .with_leader(committed_leader)
                .responder(responder)
                .await
            {
                pending.push(Err(ProposeError::Unavailable {
                    message: format!("raft stopped: {e}"),
                    maybe_committed: false,
                }));
                break;
            }
            spec.image = folded;
            spec.proposed_since_sync += 1;
            pending.push(Ok((record, timestamp_ms, result_rx)));
        }
        drop(spec);

        if pending.is_empty() {
            if let Some(e) = refused {
                return Err(ProposeError::Rejected(e));
            }
        }
        let mut results = Vec::with_capacity(pending.len() + 1);
        let mut keep_image = true;
        // One deadline for the whole plan, not one per record: on a leader without a quorum a
        // plan of a thousand records would otherwise wait a thousand timeouts in a row, holding
        // its caller (and the liveness lane) all that while.
        let deadline = tokio::time::Instant::now() + COMMIT_TIMEOUT;
        for p in pending {
            let (record, timestamp_ms, result_rx) = match p {
                Ok(p) => p,
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
            };
            let outcome = tokio::time::timeout_at(deadline, result_rx)
                .await
                .map(|r| r.map_err(|_| ()));
            let resolved = resolve(outcome, record, timestamp_ms);
            keep_image &= resolved.keep_image;
            results.push(resolved.result);
        }
        if !keep_image {
            // The next write rebuilds the image, after everything proposed so far has applied.
            self.spec.lock().await.image = None;
        }
        if let Some(e) = refused {
            results.push(Err(ProposeError::Rejected(e)));
        }
        Ok(results)
    }
}

/// What a write's outcome means for its client, and whether the speculative image still equals
/// the applied image plus the records proposed and not yet applied.
struct Resolution {
    result: Result<Committed, ProposeError>,
    keep_image: bool,
}

/// What waiting for a write's result returned: the elapsed deadline, a dropped responder, or
/// openraft's answer.
type Outcome = Result<
    Result<Result<openraft::raft::ClientWriteResponse<super::TypeConfig>, ClientWriteError>, ()>,
    tokio::time::error::Elapsed,
>;

type ClientWriteError = openraft::errors::ClientWriteError<super::TypeConfig>;

/// Turns a write's outcome into its answer. Pure, so the rules are unit-tested.
fn resolve(outcome: Outcome, record: Record, timestamp_ms: u64) -> Resolution {
    let fail = |message: &str| Resolution {
        result: Err(ProposeError::Unavailable {
            message: message.into(),
            maybe_committed: true,
        }),
        keep_image: false,
    };
    match outcome {
        // The entry stays in the log and commits if this leader keeps leading, or is discarded
        // by the next one. Validating later writes against an image that already holds it would
        // answer "exists" for what may never exist: drop the image; the rebuild waits for it.
        Err(_) => fail("no commit within the deadline (no quorum?); the write may still commit"),
        Ok(Err(())) => fail("the write was dropped before it committed"),
        // Leadership was lost after the entry was appended: the entry may already be on a
        // majority and be committed by the next leader, so this is *not* a definite failure
        // (and must not be forwarded again, which could answer 409 for a committed write).
        Ok(Ok(Err(ClientWriteError::ForwardToLeader(_)))) => {
            fail("leadership changed before the write committed; the write may still commit")
        }
        Ok(Ok(Err(other))) => fail(&format!("write not committed: {other}")),
        // Committed, but the image refused it: it changed nothing, and the client hears why.
        Ok(Ok(Ok(resp))) => match resp.data.refused {
            Some(refusal) => Resolution {
                result: Err(ProposeError::Rejected(refusal)),
                keep_image: false,
            },
            None => Resolution {
                result: Ok(Committed {
                    offset: resp.log_id.index,
                    record,
                    timestamp_ms,
                }),
                keep_image: true,
            },
        },
    }
}

/// The image a new speculative image starts from: the applied image, once every entry in this
/// leader's log (its blank entry and everything it has proposed in this term, timed-out writes
/// included) has applied; with the count of record entries applied then. Writes are submitted under the proposer's lock and this asks the Raft
/// core through the same queue, so the last log index it answers covers every earlier proposal.
async fn applied_image_after_own_log(
    raft: &Raft,
    state: &MetaState,
    term: u64,
) -> Result<(Image, u64), ProposeError> {
    own_log_applied(raft, state, term).await?;
    let at = state.read();
    Ok((at.image.clone(), at.records_applied))
}

/// Waits (at most [`CATCH_UP_TIMEOUT`]) until every entry in this leader's log of `term` has
/// applied: its blank entry and everything proposed in this term, timed-out writes included, or
/// inherited from an earlier leader. An answer read from the applied image after it cannot be
/// contradicted later by an entry already in the log. 503 otherwise.
pub(crate) async fn own_log_applied(
    raft: &Raft,
    state: &MetaState,
    term: u64,
) -> Result<(), ProposeError> {
    let last = raft
        .with_raft_state(|st| st.log_ids.last().map(|l| l.index))
        .await
        .map_err(|e| ProposeError::Unavailable {
            message: format!("raft stopped: {e}"),
            maybe_committed: false,
        })?
        .unwrap_or(0);
    wait_applied(state, term, last, CATCH_UP_TIMEOUT, || {
        "the leader has not yet applied its own log (no quorum?); retry shortly".into()
    })
    .await
}

/// Waits (at most `timeout`) until the state machine has applied an entry of `term` or later
/// at or after `index`; otherwise a 503 (nothing proposed) saying `why`.
pub(crate) async fn wait_applied(
    state: &MetaState,
    term: u64,
    index: u64,
    timeout: Duration,
    why: impl FnOnce() -> String,
) -> Result<(), ProposeError> {
    let mut rx = state.subscribe_applied();
    let reached = tokio::time::timeout(
        timeout,
        rx.wait_for(|a| a.term >= term && a.offset >= index),
    )
    .await;
    match reached {
        Ok(Ok(_)) => Ok(()),
        _ => Err(ProposeError::Unavailable {
            message: why(),
            maybe_committed: false,
        }),
    }
}

#[cfg(test)]
mod tests;
