//! Refuses a snapshot RPC that no leader could have sent, before it reaches openraft.
//!
//! openraft asserts (a panic of its core) that a snapshot's last log id is not owned by a leader
//! newer than the vote it arrives with: such a pair does not occur in a cluster that follows the
//! protocol, only in a crafted or corrupted request. It is refused here as a bad request instead.
//! Requests that contradict this node's own committed log are left to openraft: that is
//! corruption, and the node stops (see [`super::core_watch`]).

use super::network::SnapshotHeader;

/// Why a snapshot header was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotCheckError {
    /// The snapshot has no last log id: there is nothing to install.
    #[error("the snapshot has no last log id")]
    Empty,
    /// The snapshot's last entry belongs to a later term than the vote of its sender.
    #[error("the snapshot's last log id is of term {snapshot_term}, after its sender's vote term {vote_term}")]
    AfterVote { snapshot_term: u64, vote_term: u64 },
}

/// Checks what can be checked of a snapshot header without this node's state.
pub fn check_snapshot_header(header: &SnapshotHeader) -> Result<(), SnapshotCheckError> {
    let last = header
        .meta
        .last_log_id
        .as_ref()
        .ok_or(SnapshotCheckError::Empty)?;
    let vote_term = header.vote.leader_id.term;
    let snapshot_term = last.leader_id.term;
    if snapshot_term > vote_term {
        return Err(SnapshotCheckError::AfterVote {
            snapshot_term,
            vote_term,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{log_id, SnapshotMeta, Vote};

    fn header(vote_term: u64, last: Option<(u64, u64)>) -> SnapshotHeader {
        SnapshotHeader {
            vote: Vote::new_committed(vote_term, 2),
            meta: SnapshotMeta {
                last_log_id: last.map(|(t, i)| log_id(t, i)),
                last_membership: Default::default(),
            },
        }
    }

    #[test]
    fn a_snapshot_beyond_its_senders_vote_or_without_a_last_log_id_is_refused() {
        assert_eq!(check_snapshot_header(&header(3, Some((3, 50)))), Ok(()));
        assert_eq!(check_snapshot_header(&header(4, Some((3, 50)))), Ok(()));
        assert_eq!(
            check_snapshot_header(&header(3, Some((4, 50)))),
            Err(SnapshotCheckError::AfterVote {
                snapshot_term: 4,
                vote_term: 3
            })
        );
        assert_eq!(
            check_snapshot_header(&header(3, None)),
            Err(SnapshotCheckError::Empty)
        );
    }
}
