//! Membership: how a node announces itself to the leader (joining, rejoining after a wipe,
//! recovering lost entries), and how the leader admits it or an operator adds and removes
//! members.
//!
//! A node that does not vote yet (see [`crate::raft::recovery`]) posts `/raft/join` to the
//! leader with its id, address and incarnation. The leader answers at once with its term and the
//! cluster id, having reset its replication progress for that id (its log may have gone
//! backwards), and in the background makes the membership give that id's seat to this
//! incarnation: a new node is added as a learner and promoted once caught up; a voter's id with
//! a new incarnation first loses its seat (a joint change, so that the old incarnation cannot
//! form a quorum any more) and then rises the same way. The node then accepts replication from that
//! leader, catches up, and votes once its own incarnation holds the seat.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::type_config::async_runtime::WatchReceiver;
use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Node, NodeId};
use crate::raft::proposer::ProposeError;
use crate::raft::recovery::Permit;
use crate::raft::Member;

/// What a node tells the leader when it announces itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinRequest {
    /// Its id (`-i`).
    pub id: NodeId,
    /// The address peers reach it at.
    pub addr: String,
    /// Its data directory's incarnation.
    pub incarnation: Uuid,
    /// The cluster it belongs to, when it knows one.
    #[serde(default)]
    pub cluster_id: Option<Uuid>,
}

/// The leader's answer to a [`JoinRequest`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinAnswer {
    /// The leader that admitted the node: replication from it is to be accepted.
    pub leader_id: NodeId,
    /// Its term.
    pub term: u64,
    /// The cluster's id.
    pub cluster_id: Uuid,
    /// The leader's commit index when it admitted the node: a node that lost data catches up
    /// at least this far before it votes (absent from a leader that predates it).
    #[serde(default)]
    pub commit_index: Option<u64>,
}

/// Why a membership request failed.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// Not the leader, no quorum, or the change did not commit in time.
    #[error(transparent)]
    Raft(#[from] ProposeError),
    /// The node belongs to another cluster.
    #[error("{0}")]
    OtherCluster(String),
    /// The request cannot be carried out as asked.
    #[error("{0}")]
    Invalid(String),
    /// No member has that id.
    #[error("{0}")]
    NotFound(String),
}

/// What the leader has to change for a node it admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Admission {
    /// Unknown id: add as a learner, promote once caught up.
    New,
    /// A learner (or a learner's new incarnation): record it, promote once caught up.
    Promote,
    /// A voter's id with a new incarnation: hand the seat over.
    NewIncarnation,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> ProposeError {
    ProposeError::Unavailable {
        message: format!("{what}: {e}"),
        maybe_committed: true,
    }
}

impl Node {
    /// The cluster id; a leader of a cluster from before cluster ids makes one now.
    fn ensure_cluster_id(&self) -> Result<Uuid, MembershipError> {
        if let Some(id) = self.identity.cluster_id() {
            return Ok(id);
        }
        let id = Uuid::new_v4();
        self.identity
            .set_cluster_id(id)
            .map_err(|e| MembershipError::Invalid(format!("cannot record a cluster id: {e}")))?;
        tracing::info!(cluster_id = %id, "this cluster had no id; made one");
        Ok(id)
    }

    /// Leader side of `/raft/join`: answers at once; the membership change runs behind.
    pub async fn admit(self: &Arc<Self>, req: JoinRequest) -> Result<JoinAnswer, MembershipError> {
        if !self.raft.is_leader() {
            return Err(self.not_leader().into());
        }
        let cluster_id = self.ensure_cluster_id()?;
        if let Some(theirs) = req.cluster_id.filter(|t| *t != cluster_id) {
            return Err(MembershipError::OtherCluster(format!(
                "node {} belongs to cluster {theirs}, this is cluster {cluster_id}",
                req.id
            )));
        }
        if req.id == self.id {
            return Err(MembershipError::Invalid(format!(
                "node {} is this leader's own id",
                req.id
            )));
        }
        let m = self.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        let known = membership.get_node(&req.id).cloned();
        let is_voter = membership.voter_ids().any(|v| v == req.id);
        let member = Member::new(req.addr.clone(), req.incarnation);
        let admission = match (&known, is_voter) {
            (Some(n), true) if *n == member => None,
            (Some(_), true) => Some(Admission::NewIncarnation),
            (Some(_), false) => Some(Admission::Promote),
            (None, _) => Some(Admission::New),
        };
        if known.is_some() {
            // Its log may have gone backwards (wiped, or cut below what it acknowledged):
            // restart the search for where it matches instead of asserting that it cannot.
            let _ = self.raft.trigger().allow_next_revert(&req.id, true).await;
        }
        if let Some(kind) = admission {
            tracing::info!(node = req.id, incarnation = %req.incarnation, addr = %req.addr, ?kind, "admitting a node");
            self.spawn_admission(req.id, member, kind);
        }
        Ok(JoinAnswer {
            leader_id: self.id,
            term: m.current_term,
            cluster_id,
            commit_index: m.local_committed.map(|c| c.index),
        })
    }

    /// Runs one admission in the background (at most one per id at a time).
    fn spawn_admission(self: &Arc<Self>, id: NodeId, member: Member, kind: Admission) {
        if !self
            .admitting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id)
        {
            return;
        }
        let node = self.clone();
        self.tasks.spawn(async move {
            let res = node.carry_out(id, member, kind).await;
            node.admitting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            match res {
                Ok(()) => tracing::info!(node = id, "node holds its voting seat"),
                Err(e) => {
                    tracing::warn!(node = id, error = %e, "admitting a node failed; it will ask again")
                }
            }
        });
    }

    async fn carry_out(
        &self,
        id: NodeId,
        member: Member,
        kind: Admission,
    ) -> Result<(), ProposeError> {
        let _one_at_a_time = self.membership_change.lock().await;
        // Queued behind another change (a removal, say): act only on the membership as it is
        // now, so that a node removed meanwhile is not added back.
        let still_known = self
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .get_node(&id)
            .is_some();
        if kind != Admission::New && !still_known {
            tracing::info!(node = id, "not admitting a node that was removed meanwhile");
            return Ok(());
        }
        if kind == Admission::NewIncarnation {
            // The old incarnation may still run (replaced while it was only cut off). Handing
            // its seat over with one SetNodes is no joint change: {leader, new} would be a
            // quorum of the new configuration while {old, another voter} still is one of the
            // old, and a split between them loses acknowledged writes. Take the seat away first
            // (joint consensus: a majority that does not count it must hold that), then let the
            // new incarnation rise as a learner does. Only while every other voter keeps up, so
            // that the joint configuration does not stall the cluster waiting for one that is
            // down; the node asks again.
            self.others_keep_up(id)?;
            self.change_membership(
                ChangeMembers::RemoveVoters(BTreeSet::from([id])),
                true,
                "taking the seat from the old incarnation",
            )
            .await?;
        }
        if kind != Admission::New {
            self.change_membership(
                ChangeMembers::SetNodes(BTreeMap::from([(id, member.clone())])),
                true,
                "recording the node's incarnation",
            )
            .await?;
        }
        let added = self
            .raft
            .add_learner(id, member, false)
            .await
            .map_err(|e| unavailable("adding the node as a learner", e))?;
        self.wait_holds(id, added.log_id.index).await?;
        self.change_membership(
            ChangeMembers::AddVoterIds(BTreeSet::from([id])),
            false,
            "making the node a voter",
        )
        .await?;
        Ok(())
    }

    /// Waits until node `id` has acknowledged the log up to `index`, the entry that made it a
    /// learner. openraft's own "caught up" (`add_learner` blocking) means within
    /// `replication_lag_threshold` (5,000) entries, which a new node with an empty log meets at
    /// once; promoted then, it counts as a voter in the leader's log while its own holds no
    /// membership naming it, and it cannot vouch for its seat if the leader then needs its vote.
    /// Promoted only from here, its durable log always names it as its own incarnation.
    async fn wait_holds(&self, id: NodeId, index: u64) -> Result<(), ProposeError> {
        let timeout = Duration::from_secs(30);
        self.raft
            .wait(Some(timeout))
            .metrics(
                // No longer the leader: stop waiting; the promotion below then fails and says so.
                |m| {
                    m.replication.as_ref().is_none_or(|r| {
                        r.get(&id)
                            .and_then(|l| l.as_ref())
                            .is_some_and(|l| l.index >= index)
                    })
                },
                "the learner holds the entry that added it",
            )
            .await
            .map_err(|e| ProposeError::Unavailable {
                message: format!("node {id} has not caught up with its learner entry {index}: {e}"),
                maybe_committed: false,
            })?;
        Ok(())
    }

    /// One membership change, waited for; `what` names it in the 503 when it fails.
    async fn change_membership(
        &self,
        change: ChangeMembers<NodeId, Member>,
        retain: bool,
        what: &str,
    ) -> Result<(), ProposeError> {
        self.raft
            .change_membership(change, retain)
            .await
            .map_err(|e| unavailable(what, e))?;
        Ok(())
    }

    /// Refuses to start a change that needs every other voter unless each has acknowledged the
    /// leader's commit index and answered a heartbeat lately: a joint configuration waiting for
    /// a voter that is down would stop every write until it returns.
    fn others_keep_up(&self, id: NodeId) -> Result<(), ProposeError> {
        let m = self.raft.metrics().borrow_watched().clone();
        let committed = m.local_committed.as_ref().map_or(0, |c| c.index);
        let matching = m.replication.clone().unwrap_or_default();
        let acked = m.heartbeat.clone().unwrap_or_default();
        let lately = Duration::from_millis(3 * self.raft.config().heartbeat_interval);
        let silent = |v: &NodeId| {
            acked
                .get(v)
                .and_then(|t| t.as_ref())
                .is_none_or(|t| openraft::Instant::elapsed(&**t) > lately)
        };
        let behind: Vec<NodeId> = m
            .membership_config
            .membership()
            .voter_ids()
            .filter(|v| *v != id && *v != self.id)
            .filter(|v| {
                silent(v)
                    || matching
                        .get(v)
                        .and_then(|l| l.as_ref())
                        .map_or(0, |l| l.index)
                        < committed
            })
            .collect();
        if behind.is_empty() {
            return Ok(());
        }
        Err(ProposeError::Unavailable {
            message: format!(
                "handing node {id}'s seat to a new incarnation needs every other voter, and {behind:?} lag behind the commit index {committed} or have not answered lately"
            ),
            maybe_committed: false,
        })
    }

    /// Node side: announces this node to the leader until it votes. A node that started
    /// intact announces itself when a leader it has not announced itself to knocks, and now and
    /// then while it waits for a seat that no leader would knock about (see
    /// [`Node::awaits_seat`]).
    pub(super) async fn join_loop(self: Arc<Self>, seeds: Vec<(NodeId, String)>) {
        let mut due = self.recovery.needs_rejoin() || self.never_joined();
        let mut delay = Duration::from_millis(100);
        loop {
            if !due {
                // Re-announce now and then while recovering or waiting for a seat (an admission
                // can fail behind the leader's answer); otherwise only when a leader knocks.
                let knocked = tokio::select! {
                    _ = self.recovery.knocked() => true,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {
                        self.recovery.needs_rejoin() || self.awaits_seat()
                    }
                };
                due = knocked;
            }
            if self.recovery.is_voting() {
                return;
            }
            if !due {
                continue;
            }
            match self.announce(&seeds).await {
                Ok(answer) => {
                    tracing::info!(
                        node = self.id,
                        leader = answer.leader_id,
                        term = answer.term,
                        "announced to the leader; catching up"
                    );
                    delay = Duration::from_millis(100);
                    due = false;
                }
                Err(e) => {
                    tracing::debug!(node = self.id, error = %e, "announcing to the leader failed");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// True when this node has never been part of a cluster: its log holds no membership. A
    /// first start cut before any leader heard of it (the directory is no longer new at the
    /// next start) is such a node: it must announce itself, nobody knows to knock.
    pub fn never_joined(&self) -> bool {
        let m = self.raft.metrics().borrow_watched().clone();
        let none = m.membership_config.membership().nodes().next().is_none();
        none
    }

    /// True when this node does not vote but should come to: it never joined, or the
    /// membership lists its id (a learner whose promotion failed behind the leader's answer, or
    /// a seat still held by another incarnation) while the leader it announced itself to keeps
    /// replicating without knocking. A node the membership left out (removed) waits to be
    /// invited.
    fn awaits_seat(&self) -> bool {
        if self.recovery.is_voting() {
            return false;
        }
        let m = self.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        membership.nodes().next().is_none() || membership.get_node(&self.id).is_some()
    }

    /// Every address worth asking for the leader: the known leader, the members, the seeds.
    fn join_targets(&self, seeds: &[(NodeId, String)]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(l) = self.leader().filter(|l| l.id != self.id) {
            out.push(l.addr);
        }
        let m = self.raft.metrics().borrow_watched().clone();
        for (id, n) in m.membership_config.membership().nodes() {
            if *id != self.id {
                out.push(n.addr.clone());
            }
        }
        out.extend(seeds.iter().map(|(_, a)| a.clone()));
        let mut seen = BTreeSet::new();
        out.retain(|a| seen.insert(a.clone()));
        out
    }

    async fn announce(&self, seeds: &[(NodeId, String)]) -> Result<JoinAnswer, String> {
        let mut last = "no seed or member address to ask".to_string();
        for target in self.join_targets(seeds) {
            match self.try_join(&target).await {
                Ok(answer) => return Ok(answer),
                Err(e) => last = format!("{target}: {e}"),
            }
        }
        Err(last)
    }

    async fn try_join(&self, seed: &str) -> Result<JoinAnswer, String> {
        let req = JoinRequest {
            id: self.id,
            addr: self.addr.clone(),
            incarnation: self.identity.incarnation(),
            cluster_id: self.identity.cluster_id(),
        };
        let mut target = seed.to_string();
        for _ in 0..4 {
            let mut call = self
                .http
                .post(self.url(&target, "/raft/join"))
                .timeout(Duration::from_secs(5))
                .json(&req);
            if let Some(t) = &self.token {
                call = call.bearer_auth(t);
            }
            let resp = call.send().await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            if status.is_success() {
                let answer: JoinAnswer =
                    serde_json::from_value(body).map_err(|e| format!("join answer: {e}"))?;
                self.identity
                    .set_cluster_id(answer.cluster_id)
                    .map_err(|e| format!("{target} answered for another cluster: {e}"))?;
                let permit = Permit {
                    term: answer.term,
                    leader: answer.leader_id,
                };
                if !self.recovery.grant(permit, answer.commit_index) {
                    return Err(format!(
                        "{target} answered as the leader of term {}, older than a term this node reached: a stale leader",
                        answer.term
                    ));
                }
                return Ok(answer);
            }
            match body.get("leader_addr").and_then(|a| a.as_str()) {
                Some(addr) if status == reqwest::StatusCode::MISDIRECTED_REQUEST => {
                    target = addr.to_string()
                }
                _ => return Err(format!("{status}: {body}")),
            }
        }
        Err("too many redirects".into())
    }

    /// Operator side (`POST /cluster/members`): asks the node at `addr` who it is, then adds it
    /// as a learner and, once caught up, as a voter. Returns when it votes.
    pub async fn add_member(
        self: &Arc<Self>,
        id: NodeId,
        addr: String,
    ) -> Result<(), MembershipError> {
        if !self.raft.is_leader() {
            return Err(self.not_leader().into());
        }
        let cluster_id = self.ensure_cluster_id()?;
        let mut call = self
            .http
            .get(self.url(&addr, "/cluster"))
            .timeout(Duration::from_secs(5));
        if let Some(t) = &self.token {
            call = call.bearer_auth(t);
        }
        let view: serde_json::Value = call
            .send()
            .await
            .map_err(|e| {
                MembershipError::Raft(ProposeError::Unavailable {
                    message: format!("cannot reach a yakt node at {addr}: {e}"),
                    maybe_committed: false,
                })
            })?
            .json()
            .await
            .map_err(|e| {
                MembershipError::Invalid(format!("{addr} did not answer /cluster: {e}"))
            })?;
        if view["node_id"].as_u64() != Some(id) {
            return Err(MembershipError::Invalid(format!(
                "the node at {addr} is node {}, not {id}",
                view["node_id"]
            )));
        }
        let incarnation: Uuid = view["incarnation"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                MembershipError::Invalid(format!("{addr} did not say its incarnation"))
            })?;
        if let Some(theirs) = view["cluster_id"]
            .as_str()
            .and_then(|s| s.parse::<Uuid>().ok())
        {
            if theirs != cluster_id {
                return Err(MembershipError::OtherCluster(format!(
                    "the node at {addr} belongs to cluster {theirs}, this is cluster {cluster_id}"
                )));
            }
        }
        let answer = self
            .admit(JoinRequest {
                id,
                addr,
                incarnation,
                cluster_id: Some(cluster_id),
            })
            .await?;
        let _ = answer;
        let mut rx = self.raft.metrics();
        let seated = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                {
                    let m = rx.borrow_watched();
                    let ms = m.membership_config.membership();
                    if ms.voter_ids().any(|v| v == id)
                        && ms.get_node(&id).and_then(|n| n.incarnation) == Some(incarnation)
                    {
                        return true;
                    }
                }
                if rx.changed().await.is_err() {
                    return false;
                }
            }
        })
        .await;
        match seated {
            Ok(true) => Ok(()),
            _ => Err(ProposeError::Unavailable {
                message: format!("node {id} was not a voter within 60 s; the change goes on"),
                maybe_committed: true,
            }
            .into()),
        }
    }

    /// Operator side (`DELETE /cluster/members/{id}`): removes a voter or learner.
    pub async fn remove_member(&self, id: NodeId) -> Result<(), MembershipError> {
        if !self.raft.is_leader() {
            return Err(self.not_leader().into());
        }
        let m = self.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        if membership.get_node(&id).is_none() {
            return Err(MembershipError::NotFound(format!("no member has id {id}")));
        }
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let _one_at_a_time = self.membership_change.lock().await;
        if voters.contains(&id) {
            if voters.len() == 1 {
                return Err(MembershipError::Invalid(format!(
                    "node {id} is the only voter; a cluster cannot remove its last voter"
                )));
            }
            self.change_membership(
                ChangeMembers::RemoveVoters(BTreeSet::from([id])),
                true,
                "removing the voter",
            )
            .await?;
        }
        self.change_membership(
            ChangeMembers::RemoveNodes(BTreeSet::from([id])),
            false,
            "removing the node",
        )
        .await?;
        tracing::info!(node = id, "member removed");
        Ok(())
    }
}
