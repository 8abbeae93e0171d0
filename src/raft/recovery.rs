//! Keeping a node that may have lost acknowledged entries out of elections until a leader has
//! caught it up.
//!
//! Raft's safety argument assumes a node keeps what it acknowledged. A node whose data
//! directory is new (first start, or wiped), or that lost data it may have acknowledged (its log
//! ends before its acknowledged watermark, or its vote or watermark file is gone), breaks that
//! assumption: if it voted, a candidate missing committed entries could win with its vote. Such
//! a node starts *recovering*, and says so in a durable mark (`storage::recovering`) so that a
//! restart does not forget it:
//! - it does not campaign (openraft's elections are switched off until it votes),
//! - it grants a vote only for the seat its own log gives to its own incarnation, and when it
//!   lost data only to a candidate holding the last entry it knew committed,
//! - it accepts replication only from a leader it has announced itself to (`/raft/join`), which
//!   therefore knows to reset its progress for this node instead of tripping over a log that
//!   went backwards (openraft's `allow_next_revert`), and never from a term below one it knows
//!   it reached.
//!
//! It becomes a voter again once its log reaches the watermark and the membership it holds
//! gives its id's seat to its own incarnation (and, when it lost data, once it holds an entry
//! its leader committed in its own term). Acknowledging replicated entries while recovering is
//! safe: an entry it acknowledges is one it has durably now.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use openraft::type_config::async_runtime::WatchReceiver;
use uuid::Uuid;

use super::{LogId, Membership, NodeId, Raft, Vote};
use crate::storage::{EntryId, Origin, RecoveringMark, Unproven};

/// The leader a recovering node has announced itself to: replication from it is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permit {
    /// The leader's term.
    pub term: u64,
    /// The leader's id.
    pub leader: NodeId,
}

/// Why a Raft request was refused by a recovering node.
#[derive(Debug, thiserror::Error)]
#[error("node {id} is recovering ({reason}) and has not announced itself to leader {leader} of term {term} yet")]
pub struct Refused {
    /// This node.
    pub id: NodeId,
    /// Why it is recovering.
    pub reason: String,
    /// The requesting leader.
    pub leader: NodeId,
    /// Its term.
    pub term: u64,
}

/// Whether this node may vote, and whom it accepts replication from while it may not.
pub struct Recovery {
    id: NodeId,
    incarnation: Uuid,
    /// What this directory has not shown yet: new (nothing of an earlier holder of its id is in
    /// it), or lost something it had acknowledged. Empty for a node that started intact.
    unproven: Unproven,
    /// The vote file is gone: the node may have voted in a term and lost the record of it.
    vote_lost: bool,
    /// The log must reach this index before the node votes (for a node that lost data, the
    /// commit index of the leader that admitted it).
    watermark: AtomicU64,
    /// The persisted commit id, when the log now ends before it (a lost tail, not a new
    /// directory): the last entry this node is known to have held.
    lost_above: Option<EntryId>,
    /// The highest term this node knows it reached (its log's last entry, its watermarks): a
    /// leader of a lower term is stale, whatever a lost vote file no longer says.
    term_floor: AtomicU64,
    reason: String,
    voting: AtomicBool,
    permit: Mutex<Option<Permit>>,
    /// Wakes the rejoin loop when a leader it has no permit from knocks.
    knock: tokio::sync::Notify,
    /// The durable mark of `unproven`, removed once the node votes.
    mark: Option<RecoveringMark>,
}

impl Recovery {
    /// Decides at start whether the node must recover: `acknowledged` is the durable watermark
    /// of what it had acknowledged (the higher of the log's acknowledged watermark and the
    /// persisted commit id), `last_log_index` where the log ends now.
    pub fn new(
        id: NodeId,
        incarnation: Uuid,
        origin: Origin,
        acknowledged: Option<EntryId>,
        last_log_index: Option<u64>,
    ) -> Self {
        let watermark = acknowledged.map_or(0, |c| c.index);
        let end = last_log_index.unwrap_or(0);
        let fresh = origin == Origin::Fresh;
        let lost_tail = !fresh && end < watermark;
        let reason = if fresh {
            "its data directory is new".to_string()
        } else if lost_tail {
            format!("its log ends at {end}, before entry {watermark} that it had acknowledged")
        } else {
            String::new()
        };
        if lost_tail {
            tracing::warn!(
                node = id,
                log_end = end,
                acknowledged = watermark,
                "this node lost entries it had acknowledged; it will not vote until a leader has caught it up"
            );
        }
        Self {
            id,
            incarnation,
            unproven: Unproven {
                new_directory: fresh,
                lost_data: lost_tail,
            },
            vote_lost: false,
            watermark: AtomicU64::new(watermark),
            lost_above: acknowledged.filter(|_| lost_tail),
            term_floor: AtomicU64::new(acknowledged.map_or(0, |a| a.term)),
            reason,
            voting: AtomicBool::new(false),
            permit: Mutex::new(None),
            knock: tokio::sync::Notify::new(),
            mark: None,
        }
    }

    /// Marks a node whose log holds entries but whose vote file is gone: it may have voted in a
    /// term and lost the record of it, so it could vote twice in that term. It grants no vote
    /// until a leader has caught it up.
    pub fn vote_missing(self) -> Self {
        tracing::warn!(
            node = self.id,
            "the vote file is missing; this node will not vote until a leader has caught it up"
        );
        let mut r = self.lost("its vote file is missing although its log holds entries");
        r.vote_lost = true;
        r
    }

    /// Marks a node that lost data it may have acknowledged, found by what is missing from its
    /// directory (`why` says what): how far it had acknowledged is unknown, so it recovers like
    /// a node that lost entries, up to its leader's commit index.
    pub fn data_missing(self, why: &str) -> Self {
        tracing::warn!(
            node = self.id,
            why,
            "this node lost data it may have acknowledged; it will not vote until a leader has caught it up"
        );
        self.lost(why)
    }

    /// Raises the term floor to `term` (the term of the log's last entry, or of its last
    /// purged one).
    pub fn reached_term(self, term: u64) -> Self {
        self.term_floor.fetch_max(term, Ordering::AcqRel);
        self
    }

    /// Marks a directory that never joined a cluster (it knows no cluster id and holds no
    /// entry): nothing in it was ever counted on, and it is as new as an empty directory, also
    /// when the start that made its identity file was killed before it saved its mark.
    pub fn never_admitted(mut self) -> Self {
        if self.unproven.is_empty() {
            self.reason = "it has not joined a cluster yet".into();
        }
        self.unproven.new_directory = true;
        self
    }

    fn lost(mut self, why: &str) -> Self {
        if self.unproven.is_empty() {
            self.reason = why.to_string();
        }
        self.unproven.lost_data = true;
        self
    }

    /// Carries over what an earlier start had not shown yet (its recovering mark): a wiped
    /// directory is new only at its first start, and a node that lost data may look whole once
    /// restarted (its vote file rewritten, a watermark recreated) before a leader caught it up.
    pub fn unfinished(mut self, earlier: Unproven) -> Self {
        if earlier.is_empty() {
            return self;
        }
        if self.reason.is_empty() {
            self.reason = if earlier.lost_data {
                "it had lost data and no leader had caught it up when it last stopped".into()
            } else {
                "its data directory was new and no leader had caught it up when it last stopped"
                    .into()
            };
        }
        self.unproven = self.unproven.union(earlier);
        self
    }

    /// What this directory has not shown yet (to be saved as its recovering mark before the
    /// node takes part in Raft).
    pub fn unproven(&self) -> Unproven {
        self.unproven
    }

    /// The durable mark to remove once the node votes.
    pub fn with_mark(mut self, mark: RecoveringMark) -> Self {
        self.mark = Some(mark);
        self
    }

    /// This node's incarnation.
    pub fn incarnation(&self) -> Uuid {
        self.incarnation
    }

    /// True once the node may vote and campaign.
    pub fn is_voting(&self) -> bool {
        self.voting.load(Ordering::Acquire)
    }

    /// True when the node started without proof that it holds what its seat needs (a new data
    /// directory, a loss, or a mark left by an earlier start): it must announce itself to a
    /// leader.
    pub fn needs_rejoin(&self) -> bool {
        !self.unproven.is_empty()
    }

    /// Why the node is recovering (empty when it started intact).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Whether this node may grant its vote to a candidate whose log ends at `candidate_last`,
    /// `membership` being the newest membership in this node's own log.
    ///
    /// A voting node leaves that to openraft. A node that does not vote yet grants only for a
    /// seat its own log gives to its own incarnation (as a voter or a learner): otherwise the
    /// candidate would count its grant as the vote of another holder of its id, whose
    /// acknowledgements it never had. For such a seat, a node that lost nothing leaves it to
    /// openraft too, whether it started intact or with a new directory: a node stopped after
    /// the leader promoted it but before the promotion reached its log is one, and refusing
    /// would leave a cluster with one other node down without any leader (Raft has a server
    /// answer votes whatever its own configuration says).
    ///
    /// A node that lost its log's tail still knows the last entry it had acknowledged (the
    /// higher of its persisted commit id and `log/acked`, every committed entry it acknowledged
    /// at or below it); a candidate whose log is at least as up to date as that entry
    /// would also have won its vote before the loss, so granting it asks nothing of the entries
    /// that are gone. Without this, two followers that lost tails keep a third node that lost
    /// nothing from ever being elected. A node that lost its vote file grants nothing: it may
    /// have voted in this very term.
    pub fn may_grant(&self, candidate_last: Option<&LogId>, membership: &Membership) -> bool {
        if self.is_voting() {
            return true;
        }
        if !self.seat_is_ours(membership) {
            return false;
        }
        if !self.unproven.lost_data {
            return true;
        }
        let (false, Some(held), Some(c)) = (self.vote_lost, self.lost_above, candidate_last) else {
            return false;
        };
        (c.leader_id.term, c.index) >= (held.term, held.index)
    }

    /// Whether `membership` gives this node's id to this incarnation (as a voter or a learner).
    /// A membership from before incarnations names no incarnation: it is trusted only by a
    /// directory that was never new, the directory that held the seat then.
    fn seat_is_ours(&self, membership: &Membership) -> bool {
        match membership.get_node(&self.id).map(|n| n.incarnation) {
            Some(Some(inc)) => inc == self.incarnation,
            Some(None) => !self.unproven.new_directory,
            None => false,
        }
    }

    /// Whether replication from the leader of `vote` may be accepted now.
    pub fn admit(&self, vote: &Vote) -> Result<(), Refused> {
        if self.is_voting() {
            return Ok(());
        }
        let asking = Permit {
            term: vote.leader_id.term,
            leader: vote.leader_id.voted_for,
        };
        let permit = *self.permit.lock().unwrap_or_else(|e| e.into_inner());
        if permit == Some(asking) && !self.is_stale(asking.term) {
            return Ok(());
        }
        self.knock.notify_one();
        Err(Refused {
            id: self.id,
            reason: self.reason_now(),
            leader: asking.leader,
            term: asking.term,
        })
    }

    /// Why this node does not vote yet, for a refusal's message.
    pub fn reason_now(&self) -> String {
        if self.reason.is_empty() {
            "its membership seat is not its own yet".into()
        } else {
            self.reason.clone()
        }
    }

    /// Records that `permit`'s leader knows this node is recovering; `leader_commit` is that
    /// leader's commit index when it admitted the node. A node that lost data catches up at
    /// least that far before it votes, also past what it had acknowledged and can no longer
    /// name (a lost vote or watermark file).
    ///
    /// The watermark becomes that commit index rather than what the node's own files say it
    /// acknowledged: entries it acknowledged that never committed need not come back, and
    /// `may_vote` also asks for an entry committed in the leader's own term, which covers
    /// everything committed in earlier terms (a new leader's commit index may lag them). A
    /// leader of a term below the node's term floor is stale: its permit is refused (`false`).
    pub fn grant(&self, permit: Permit, leader_commit: Option<u64>) -> bool {
        if self.is_stale(permit.term) {
            return false;
        }
        // The watermark and the permit change together: `may_vote` never pairs one leader's
        // commit index with another leader's permit.
        let mut held = self.permit.lock().unwrap_or_else(|e| e.into_inner());
        if self.unproven.lost_data {
            if let Some(c) = leader_commit {
                self.watermark.store(c, Ordering::Release);
            }
        }
        *held = Some(permit);
        true
    }

    /// True when a leader of `term` is older than a term this node knows it reached.
    fn is_stale(&self, term: u64) -> bool {
        term < self.term_floor.load(Ordering::Acquire)
    }

    /// Resolves when a leader this node has no permit from asked to replicate.
    pub async fn knocked(&self) {
        self.knock.notified().await
    }

    /// Whether `m` shows this node caught up and holding its own seat. A node that lost data
    /// must also have been caught up by the leader it announced itself to: it follows that
    /// leader in that leader's term and holds an entry that leader committed in it (so
    /// everything committed in earlier terms), and its log reaches the commit index that leader
    /// had when it admitted the node (so everything committed before in its own term).
    ///
    /// `durable` is how far the log is on disk. The metrics count entries handed to the log,
    /// not flushed: a node that stopped recovering (and removed its mark) on entries a power
    /// loss then took would look whole at its next start, without them.
    fn may_vote(&self, m: &openraft::RaftMetrics<super::TypeConfig>, durable: u64) -> bool {
        let membership = m.membership_config.membership();
        let is_voter = membership.voter_ids().any(|v| v == self.id);
        // Both under the lock `grant` changes them under: one leader's pair, never a mix.
        let (permit, watermark) = {
            let held = self.permit.lock().unwrap_or_else(|e| e.into_inner());
            (*held, self.watermark.load(Ordering::Acquire))
        };
        let committed = m.local_committed.as_ref().map_or(0, |c| c.index);
        let caught_up = m.last_log_index.unwrap_or(0) >= watermark
            && (!self.needs_rejoin() || durable >= watermark.max(committed));
        let followed = !self.unproven.lost_data
            || permit.is_some_and(|p| {
                m.current_leader == Some(p.leader)
                    && m.current_term == p.term
                    && m.local_committed.as_ref().map(|c| c.leader_id.term) == Some(p.term)
            });
        is_voter && self.seat_is_ours(membership) && caught_up && followed
    }

    /// Watches the node's metrics and lets it vote (and campaign) from the moment it may; ends
    /// then, or when the core stops. Elections must be off in the Raft config it was started
    /// with. The node runs it among its background tasks.
    pub async fn watch(
        self: std::sync::Arc<Self>,
        raft: Raft,
        durable: impl Fn() -> u64 + Send + 'static,
    ) {
        let mut rx = raft.metrics();
        loop {
            let ready = {
                let m = rx.borrow_watched();
                self.may_vote(&m, durable())
            };
            if ready {
                self.voting.store(true, Ordering::Release);
                raft.runtime_config().elect(true);
                if self.needs_rejoin() {
                    tracing::info!(
                        node = self.id,
                        incarnation = %self.incarnation,
                        "caught up and holding its own seat: this node votes again"
                    );
                }
                self.knock.notify_one();
                self.clear_mark().await;
                return;
            }
            // A flush does not always change the metrics: look again a little later too.
            let changed = tokio::time::timeout(Duration::from_millis(100), rx.changed()).await;
            if matches!(changed, Ok(Err(_))) {
                return;
            }
        }
    }
}

impl Recovery {
    /// Removes the recovering mark once the node votes. A failure only means the next start
    /// recovers again (and, holding its seat, votes again as soon as it has caught up).
    async fn clear_mark(self: &std::sync::Arc<Self>) {
        if self.mark.is_none() {
            return;
        }
        let me = self.clone();
        let cleared =
            tokio::task::spawn_blocking(move || me.mark.as_ref().map(|m| m.clear())).await;
        if let Ok(Some(Err(e))) = cleared {
            tracing::warn!(node = self.id, error = %e, "could not remove the recovering mark; the next start recovers again");
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
