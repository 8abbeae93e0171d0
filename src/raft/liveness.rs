//! Broker liveness, as a KRaft controller does it: the leader keeps a session per watched broker
//! (in memory only), unfences a broker once its heartbeats show it caught up to its own
//! registration, fences it when its heartbeats stop for the session timeout, and moves partition
//! leadership off fenced and shutting-down brokers in the same step (API.md "Broker liveness").
//!
//! Files: `sessions.rs` (the session table), `plans.rs` (what gets written, as plans over the
//! speculative image). Every write goes through [`Node::propose_plan`], so a fence and the
//! leadership moves it causes reach the log consecutively, each decided on the image the ones
//! before it leave, and each checked again at apply like any record.
//!
//! Which brokers are watched: those that heartbeat to this leader, and those that registered as
//! `FENCED` (the image remembers it), whom a new leader watches from the moment it leads. A
//! broker that never heartbeats and registered otherwise is never touched.

mod plans;
mod sessions;

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use sessions::{Session, Sessions};

use super::proposer::{Committed, ProposeError};
use super::{Node, NodeId};
use crate::metadata::image::election::can_lead;
use crate::metadata::image::Registration;
use crate::metadata::{BrokerStatus, ErrorKind, Image, MetadataError, WriteRequest};

/// A broker's heartbeat (`POST /broker_heartbeat/{id}`), field names as in API.md.
#[derive(utoipa::ToSchema, Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The broker epoch its registration answered.
    #[serde(rename = "brokerEpoch")]
    pub broker_epoch: u64,
    /// The offset of the metadata log the broker has read up to.
    #[serde(rename = "currentMetadataOffset")]
    pub current_metadata_offset: u64,
    /// The broker asks to be (or stay) fenced.
    #[serde(rename = "wantFence", default)]
    pub want_fence: bool,
    /// The broker asks for a controlled shutdown.
    #[serde(rename = "wantShutDown", default)]
    pub want_shut_down: bool,
}

/// The answer to a heartbeat, field names as in API.md.
#[derive(utoipa::ToSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    /// `currentMetadataOffset` ≥ the broker epoch.
    #[serde(rename = "isCaughtUp")]
    pub is_caught_up: bool,
    /// The broker may not lead (INIT, FENCED or CLOSED).
    #[serde(rename = "isFenced")]
    pub is_fenced: bool,
    /// A controlled shutdown is complete: the broker leads nothing and may stop.
    #[serde(rename = "shouldShutDown")]
    pub should_shut_down: bool,
    /// The node that leads the cluster (and answered).
    #[serde(rename = "leaderId")]
    #[schema(value_type = u64)]
    pub leader_id: NodeId,
}

/// Why a heartbeat (or an `/alter_partition`) was not answered.
#[derive(Debug, thiserror::Error)]
pub enum LivenessError {
    /// Unknown broker, CLOSED, stale broker epoch.
    #[error(transparent)]
    Refused(#[from] MetadataError),
    /// Not the leader, no quorum, a write that failed.
    #[error(transparent)]
    Propose(#[from] ProposeError),
}

/// The broker `id` as a heartbeat (or `/alter_partition`) under broker epoch `epoch` may name it:
/// registered (404), not CLOSED (409), and `epoch` its current broker epoch (409
/// `stale_broker_epoch`). Checked against an *applied* image (see [`Registration`]).
pub fn check_broker(img: &Image, id: i32, epoch: u64) -> Result<Registration, MetadataError> {
    let b = img
        .broker_record(id)
        .ok_or_else(|| MetadataError::not_found(format!("no broker {id} is registered")))?;
    if b.broker_status == BrokerStatus::Closed {
        return Err(MetadataError::conflict(format!(
            "broker {id} is CLOSED; register it again first"
        )));
    }
    let reg = img.registration(id).unwrap_or_default();
    if reg.broker_epoch != epoch {
        return Err(MetadataError::new(
            ErrorKind::StaleBrokerEpoch,
            format!(
                "brokerEpoch {epoch} is stale: broker {id}'s current registration is at offset {}",
                reg.broker_epoch
            ),
        ));
    }
    Ok(reg)
}

/// The leader's liveness controller: the sessions and the one lane its writes go through.
pub struct Liveness {
    timeout: Duration,
    sessions: Mutex<Sessions>,
    /// One plan at a time, so two heartbeats (or a heartbeat and the timer) never write the same
    /// fence or unfence twice. A plan's task holds it until the plan has ended, even when the
    /// heartbeat that started it was abandoned (see [`Node::propose_plan`]).
    act: Arc<tokio::sync::Mutex<()>>,
}

/// The term this node leads in, or `NotLeader`.
fn leader_term(node: &Node) -> Result<u64, ProposeError> {
    match node.raft.as_leader() {
        Ok(l) => Ok(l.term()),
        Err(_) => Err(node.not_leader()),
    }
}

impl Liveness {
    /// A controller fencing brokers after `timeout` without a heartbeat.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            sessions: Mutex::new(Sessions::default()),
            act: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The session timeout (`--broker-session-timeout`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The sessions, made to belong to `term` (a new term starts them afresh from the image's
    /// watched brokers). Lock order: the sessions, then the image; nothing takes the sessions
    /// while holding the image.
    fn sessions_in(&self, node: &Node, term: u64) -> std::sync::MutexGuard<'_, Sessions> {
        let mut s = self.sessions();
        if s.term() != Some(term) {
            let watched: Vec<(i32, u64)> = {
                let st = node.state.read();
                st.image
                    .registrations()
                    .filter(|(id, r)| {
                        r.watched
                            && st
                                .image
                                .broker_record(*id)
                                .is_some_and(|b| b.broker_status != BrokerStatus::Closed)
                    })
                    .map(|(id, r)| (id, r.broker_epoch))
                    .collect()
            };
            s.enter_term(term, Instant::now(), watched);
            tracing::info!(
                node = node.id,
                term,
                sessions = s.len(),
                "liveness: sessions started afresh"
            );
        }
        s
    }

    /// Handles one heartbeat on the leader: records it, unfences, fences or shuts the broker
    /// down as it asks and as its session says, and answers once those writes have applied.
    pub async fn heartbeat(
        &self,
        node: &Arc<Node>,
        broker_id: i32,
        hb: Heartbeat,
    ) -> Result<HeartbeatAnswer, LivenessError> {
        let answer = self.beat_act_and_answer(node, broker_id, &hb).await?;
        if !answer.should_shut_down {
            return Ok(answer);
        }
        // The broker will go away on this answer, so nothing decided earlier may contradict it.
        // A plan still running (an unfence whose heartbeat its broker abandoned, say) could yet
        // make the broker lead, and so could a plan's records that are in this leader's log but
        // not yet applied (its commit wait timed out, or an earlier leader appended them). So:
        // wait until no plan holds the lane and this leader's own log has applied, then take the
        // whole heartbeat once more (the broker's epoch is checked again too: it may have
        // registered anew meanwhile). Plans decided from here on see this session shutting down.
        drop(self.act.lock().await);
        super::proposer::own_log_applied(&node.raft, &node.state, leader_term(node)?).await?;
        self.beat_act_and_answer(node, broker_id, &hb).await
    }

    /// One pass of a heartbeat: the broker's epoch checked, its session beaten, its plan (if
    /// any) proposed, and the answer read from the applied image.
    async fn beat_act_and_answer(
        &self,
        node: &Arc<Node>,
        broker_id: i32,
        hb: &Heartbeat,
    ) -> Result<HeartbeatAnswer, LivenessError> {
        let term = leader_term(node)?;
        let reg = check_broker(&node.state.read().image, broker_id, hb.broker_epoch)?;
        let session = self.sessions_in(node, term).beat(
            broker_id,
            reg.broker_epoch,
            Instant::now(),
            hb.want_shut_down,
        );
        let caught_up = hb.current_metadata_offset >= reg.broker_epoch;
        self.act_and_answer(node, broker_id, session, hb, caught_up)
            .await
    }

    /// The writes a heartbeat calls for, proposed under the lane; then its answer from the
    /// applied image.
    async fn act_and_answer(
        &self,
        node: &Arc<Node>,
        broker_id: i32,
        session: Session,
        hb: &Heartbeat,
        caught_up: bool,
    ) -> Result<HeartbeatAnswer, LivenessError> {
        if let Some(make) = self.work_for(node, broker_id, session, hb, caught_up) {
            let incarnation = node
                .state
                .read()
                .image
                .broker_record(broker_id)
                .map(|b| b.internal_uuid)
                .ok_or_else(|| {
                    MetadataError::not_found(format!("no broker {broker_id} is registered"))
                })?;
            let lane = Arc::clone(&self.act).lock_owned().await;
            let avoid = self.sessions().shutting_down();
            let stale = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let plan = plans::for_incarnation(
                broker_id,
                incarnation,
                make(broker_id, avoid),
                Arc::clone(&stale),
            );
            let results = node.propose_plan(plan, lane).await?;
            for r in results {
                r?;
            }
            if stale.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(MetadataError::new(
                    ErrorKind::StaleBrokerEpoch,
                    format!(
                        "brokerEpoch {} is stale: broker {broker_id} registered anew while this \
                         heartbeat waited",
                        hb.broker_epoch
                    ),
                )
                .into());
            }
        }
        let st = node.state.read();
        let fenced = st
            .image
            .broker_record(broker_id)
            .is_none_or(|b| !can_lead(b.broker_status));
        Ok(HeartbeatAnswer {
            is_caught_up: caught_up,
            is_fenced: fenced,
            should_shut_down: session.shutting_down
                && fenced
                && st.image.partitions_led_by(broker_id) == 0,
            leader_id: node.id,
        })
    }

    /// `/alter_partition` on the leader: the broker epoch checked against the applied image,
    /// then the ISR change proposed like any write (its other rules are the image's).
    pub async fn alter_partition(
        &self,
        node: &Node,
        broker_epoch: u64,
        req: WriteRequest,
    ) -> Result<Committed, LivenessError> {
        leader_term(node)?;
        if let WriteRequest::AlterPartition { broker_id, .. } = &req {
            check_broker(&node.state.read().image, *broker_id, broker_epoch)?;
        }
        Ok(node.propose(req).await?)
    }

    /// Which plan a heartbeat calls for, judged on the applied image: none for the usual
    /// heartbeat of a broker in good standing (no lock, no write).
    fn work_for(
        &self,
        node: &Node,
        broker_id: i32,
        session: Session,
        hb: &Heartbeat,
        caught_up: bool,
    ) -> Option<fn(i32, Vec<i32>) -> plans::Plan> {
        // Sessions before the image, never the other way round (see `sessions_in`).
        let avoid = self.sessions().shutting_down();
        let st = node.state.read();
        let img = &st.image;
        let status = img.broker_record(broker_id)?.broker_status;
        let make: fn(i32, Vec<i32>) -> plans::Plan = if session.shutting_down {
            plans::shut_down
        } else if hb.want_fence && can_lead(status) {
            plans::fence
        } else if !hb.want_fence
            && caught_up
            && matches!(status, BrokerStatus::Fenced | BrokerStatus::Init)
        {
            plans::unfence
        } else {
            return None;
        };
        // Only when the plan would write something on the image as it is.
        let mut probe = make(broker_id, avoid);
        probe(img).is_some().then_some(make)
    }

    /// One turn of the session timer: fences every broker whose session expired, if this node
    /// leads; ends every session if it does not.
    pub async fn tick(&self, node: &Arc<Node>) {
        let Ok(term) = leader_term(node) else {
            self.sessions().leave();
            return;
        };
        let expired = self
            .sessions_in(node, term)
            .expired(Instant::now(), self.timeout);
        for broker_id in expired {
            let lane = Arc::clone(&self.act).lock_owned().await;
            // A heartbeat may have come while the lane was busy.
            let still = {
                let s = self.sessions();
                s.term() == Some(term)
                    && s.get(broker_id).is_some_and(|x| {
                        Instant::now().saturating_duration_since(x.last_seen) > self.timeout
                    })
            };
            if !still {
                continue;
            }
            let avoid: Vec<i32> = self
                .sessions()
                .shutting_down()
                .into_iter()
                .filter(|b| *b != broker_id)
                .collect();
            match node
                .propose_plan(plans::fence(broker_id, avoid), lane)
                .await
            {
                Ok(results) if results.iter().all(Result::is_ok) => {
                    if !results.is_empty() {
                        tracing::info!(
                            node = node.id,
                            broker_id,
                            records = results.len(),
                            timeout_ms = self.timeout.as_millis() as u64,
                            "liveness: broker fenced, no heartbeat within the session timeout"
                        );
                    }
                    self.sessions().end(broker_id);
                }
                Ok(results) => {
                    let why = results.into_iter().find_map(Result::err);
                    tracing::warn!(node = node.id, broker_id, error = ?why, "liveness: fencing failed; retrying");
                }
                Err(e) => {
                    tracing::warn!(node = node.id, broker_id, error = %e, "liveness: fencing failed; retrying")
                }
            }
        }
    }
}

/// The session timer: a turn every eighth of the timeout (50–500 ms), for as long as the node
/// lives. Registered in the node's task set, so it stops with the node.
pub async fn run(node: Weak<Node>, timeout: Duration) {
    let every = (timeout / 8).clamp(Duration::from_millis(50), Duration::from_millis(500));
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(node) = node.upgrade() else {
            return;
        };
        node.liveness().tick(&node).await;
    }
}

#[cfg(test)]
mod tests;
