//! A stopping leader hands leadership to the most caught-up voter, so that a rolling restart
//! does not cost the cluster an election timeout without a leader.
//!
//! Without it, a leader that is told to stop keeps heartbeating until it exits, and the others
//! start an election only after their election timeout has run out: writes wait for the drain
//! plus that timeout. openraft's leader transfer makes the chosen voter campaign at once.

use std::collections::BTreeMap;
use std::time::Duration;

use openraft::type_config::async_runtime::WatchReceiver;

use super::{LogId, NodeId, Raft};

/// How a hand-over went.
#[derive(Debug, PartialEq, Eq)]
pub enum Handoff {
    /// This node did not lead: nothing to hand over.
    NotLeader,
    /// No other voter to hand over to (a one-node cluster).
    NoOtherVoter,
    /// Another node leads now.
    HandedTo(NodeId),
    /// The chosen voter did not take over in time; stopping goes on without it.
    TimedOut { target: NodeId },
    /// The Raft core is gone.
    CoreStopped(String),
}

/// The voter other than `me` whose log matches the leader's furthest (the leader's replication
/// metrics), ties to the lower id; `None` when there is no other voter.
pub fn most_caught_up(
    me: NodeId,
    voters: impl IntoIterator<Item = NodeId>,
    matched: &BTreeMap<NodeId, Option<LogId>>,
) -> Option<NodeId> {
    voters
        .into_iter()
        .filter(|v| *v != me)
        .map(|v| (matched.get(&v).cloned().flatten().map(|l| l.index), v))
        // Highest matched index first; among equals the lowest id (max_by_key keeps the last).
        .max_by_key(|(index, v)| (*index, std::cmp::Reverse(*v)))
        .map(|(_, v)| v)
}

/// When this node leads: asks the most caught-up voter to take over and waits, at most
/// `timeout`, until this node sees another leader.
pub async fn hand_over_leadership(raft: &Raft, me: NodeId, timeout: Duration) -> Handoff {
    let target = {
        let rx = raft.metrics();
        let m = rx.borrow_watched();
        if m.current_leader != Some(me) {
            return Handoff::NotLeader;
        }
        let empty = BTreeMap::new();
        let matched = m.replication.as_ref().unwrap_or(&empty);
        match most_caught_up(me, m.membership_config.membership().voter_ids(), matched) {
            Some(t) => t,
            None => return Handoff::NoOtherVoter,
        }
    };
    if let Err(e) = raft.trigger().transfer_leader(target).await {
        return Handoff::CoreStopped(e.to_string());
    }
    let mut rx = raft.metrics();
    let other_leads = async move {
        loop {
            let leader = rx.borrow_watched().current_leader;
            if let Some(l) = leader.filter(|l| *l != me) {
                return Handoff::HandedTo(l);
            }
            if rx.changed().await.is_err() {
                return Handoff::CoreStopped("the Raft core ended during the hand-over".into());
            }
        }
    };
    tokio::time::timeout(timeout, other_leads)
        .await
        .unwrap_or(Handoff::TimedOut { target })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::log_id;

    #[test]
    fn the_voter_with_the_highest_matched_index_is_chosen_never_self() {
        let matched = BTreeMap::from([
            (1, Some(log_id(2, 90))),
            (2, Some(log_id(2, 80))),
            (3, Some(log_id(2, 85))),
            (4, None),
        ]);
        assert_eq!(most_caught_up(1, [1, 2, 3, 4], &matched), Some(3));
        assert_eq!(most_caught_up(3, [1, 2, 3, 4], &matched), Some(1));
        // A learner (not in the voters) is never chosen, however caught up.
        assert_eq!(most_caught_up(1, [1, 2, 4], &matched), Some(2));
        assert_eq!(most_caught_up(1, [1], &matched), None);
        let tie = BTreeMap::from([(2, Some(log_id(2, 80))), (3, Some(log_id(2, 80)))]);
        assert_eq!(most_caught_up(1, [1, 2, 3], &tie), Some(2));
        // A voter the leader has no replication progress for yet still counts, last.
        assert_eq!(most_caught_up(1, [1, 5], &matched), Some(5));
    }
}
