//! Opening a node's data directory: the lock, identity, log, vote, snapshots and the state
//! machine, and what they say about whether this node may vote (see [`Recovery`]). Nothing here
//! talks to other nodes; [`super::Node::start`] wires what it returns into openraft.

use std::sync::Arc;

use super::{NodeError, NodeOptions};
use crate::raft::log_agreement::{settle_below_snapshot, settle_past_set_aside, Agreement};
use crate::raft::recovery::Recovery;
use crate::raft::state_machine::StateMachine;
use crate::storage::{
    CommittedFile, DirLock, EntryId, Identity, LogOptions, Origin, RecoveringMark, SegmentLog,
    SnapshotStore, StorageError, VoteFile,
};

/// Everything opened from a data directory, ready for openraft.
pub(super) struct Opened {
    pub dir_lock: DirLock,
    pub identity: Arc<Identity>,
    pub committed: CommittedFile,
    pub log: Arc<SegmentLog>,
    pub recovery: Arc<Recovery>,
    pub vote: Arc<VoteFile>,
    pub snapshots: Arc<SnapshotStore>,
    pub sm: StateMachine,
}

/// Opens (creating it if new) the data directory `opts` names.
pub(super) fn open_storage(opts: &NodeOptions) -> Result<Opened, NodeError> {
    let dir = opts.data_dir.clone();
    let storage_err = |source| NodeError::Storage {
        dir: dir.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(|e| {
        storage_err(StorageError::Io {
            op: "create directory",
            path: dir.clone(),
            source: e,
        })
    })?;
    let dir_lock = DirLock::acquire(&dir).map_err(storage_err)?;
    let has_state = ["log", "vote", "snapshots"]
        .iter()
        .any(|name| dir.join(name).exists());
    let (identity, origin) = Identity::open(&dir, has_state).map_err(storage_err)?;
    let identity = Arc::new(identity);
    // Before the log opens (it makes a missing watermark file anew).
    let acked_file_existed = dir
        .join("log")
        .join(crate::storage::log::ACKED_FILE_NAME)
        .exists();
    let (committed, persisted_commit) = CommittedFile::open(&dir).map_err(storage_err)?;
    let opened_at = std::time::Instant::now();
    let (log, report) = SegmentLog::open(
        &dir.join("log"),
        LogOptions {
            segment_bytes: opts.segment_bytes,
        },
    )
    .map_err(storage_err)?;
    if report.truncated_bytes > 0 {
        tracing::warn!(
            bytes = report.truncated_bytes,
            "recovery truncated a torn tail of the log"
        );
    }
    let log = Arc::new(log);
    let log_ms = opened_at.elapsed().as_millis() as u64;
    // An entry of a term above 0 was written after a vote of that term was saved (openraft
    // saves the vote before it appends a leader's entries); only the entry that initializes a
    // cluster (term 0) can precede the first vote.
    let voted_before = [log.last_entry_id(), log.last_purged()]
        .into_iter()
        .flatten()
        .any(|e| e.term > 0);
    let vote_missing = voted_before && !dir.join(crate::storage::vote::VOTE_FILE_NAME).exists();
    // Before the recovery watermark is compared with the log's end: settling may cut the log.
    let snapshots = Arc::new(
        SnapshotStore::open_keeping(&dir.join("snapshots"), opts.keep_snapshots)
            .map_err(storage_err)?,
    );
    let purged = log.last_purged().map(|p| p.index);
    let mut sm = StateMachine::open(snapshots.clone(), purged).map_err(NodeError::Snapshot)?;
    let state = sm.shared();
    if let Some(point) = state.snapshot() {
        let snapshot = EntryId {
            index: point.offset,
            term: point.term,
        };
        if let Agreement::Purged { found_term } =
            settle_below_snapshot(&log, snapshot).map_err(storage_err)?
        {
            tracing::warn!(
                snapshot_offset = snapshot.index,
                snapshot_term = snapshot.term,
                found_term = ?found_term,
                "the log below the newest snapshot was not the committed one (a crash while installing it); purged through the snapshot"
            );
        }
    }
    if let Some(set_aside) = sm.set_aside() {
        let loaded = state.snapshot().map(|p| EntryId {
            index: p.offset,
            term: p.term,
        });
        if let Agreement::Truncated { found_term, after } =
            settle_past_set_aside(&log, loaded, set_aside).map_err(storage_err)?
        {
            tracing::warn!(
                set_aside_offset = set_aside.index,
                set_aside_term = set_aside.term,
                found_term = ?found_term,
                kept_through = ?after,
                "the log did not agree with the newest snapshot, which failed verification; cut back to the loaded one (the node recovers from the leader)"
            );
        }
    }
    sm.quarantine_set_aside().map_err(NodeError::Snapshot)?;
    let recovery = Recovery::new(
        opts.id,
        identity.incarnation(),
        origin,
        [persisted_commit, log.acked_at_open()]
            .into_iter()
            .flatten()
            .max_by_key(|id| (id.index, id.term)),
        log.last_entry_id()
            .map(|e| e.index)
            .or(log.last_purged().map(|p| p.index)),
    );
    let reached = [log.last_entry_id(), log.last_purged()]
        .into_iter()
        .flatten()
        .map(|e| e.term)
        .max()
        .unwrap_or(0);
    let recovery = recovery.reached_term(reached);
    let recovery = if vote_missing {
        recovery.vote_missing()
    } else {
        recovery
    };
    // A directory with an identity file was made by a yakt that writes `log/acked` before it
    // acknowledges anything (an older one has no identity file: `Origin::Upgraded`).
    let recovery = if origin != Origin::Existing {
        recovery
    } else if !has_state && identity.cluster_id().is_some() {
        // It was part of a cluster (it knows the id) and its Raft state is all gone.
        recovery
            .data_missing("its log, vote and snapshots are gone although it belongs to a cluster")
    } else if identity.cluster_id().is_none()
        && log.last_entry_id().is_none()
        && log.last_purged().is_none()
        && state.snapshot().is_none()
    {
        // Never admitted by a leader (a join records the cluster id before it is answered).
        recovery.never_admitted()
    } else if voted_before && !acked_file_existed {
        recovery.data_missing(
            "its acknowledged-watermark file (log/acked) is missing although its log holds entries",
        )
    } else {
        recovery
    };
    // What the node has not shown yet is durable before it takes part in Raft, so that a
    // restart before a leader caught it up does not make it look whole.
    let mark = RecoveringMark::open(&dir).map_err(storage_err)?;
    let recovery = recovery.unfinished(mark.load().map_err(storage_err)?);
    mark.save(recovery.unproven()).map_err(storage_err)?;
    let recovery = Arc::new(recovery.with_mark(mark));
    let vote = Arc::new(VoteFile::open(&dir).map_err(storage_err)?);
    tracing::info!(
        node = opts.id,
        incarnation = %identity.incarnation(),
        cluster_id = ?identity.cluster_id(),
        entries = report.entries,
        segments = report.segments,
        log_ms,
        snapshot_offset = state.applied().offset,
        snapshot_ms = opened_at.elapsed().as_millis() as u64 - log_ms,
        "storage opened"
    );
    Ok(Opened {
        dir_lock,
        identity,
        committed,
        log,
        recovery,
        vote,
        snapshots,
        sm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review 2 (session 11): the recovering mark is saved at the end of `open_storage`, but
    /// the identity file that ends `Origin::Fresh` is written at its start
    /// (`Identity::open`, identity.rs:99). A wiped node SIGKILLed between the two (a first
    /// start: identity, committed file, log, snapshots, state machine are opened in between)
    /// starts next with an identity (`Existing`), no cluster id, an empty log and no mark: it
    /// has nothing to prove, and a membership from before incarnations then gives it the old
    /// node's seat (`seat_is_ours`: `Some(None) => !new_directory`), with watermark 0. It
    /// grants votes as the old node and, once the legacy membership entry reaches its log,
    /// votes and campaigns with the old node's seat and a log that holds none of what the old
    /// node acknowledged: the bug `a_wiped_directory_restarted_does_not_take_a_seat_recorded_before_incarnations`
    /// fixed, one crash point earlier. A directory whose identity names no cluster was never
    /// admitted by a leader (`try_join` records the cluster id before the permit) and holds
    /// no entries: it is as new as a directory without an identity.
    #[test]
    fn a_wiped_node_killed_before_its_mark_was_saved_is_still_new() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The first start after the wipe got as far as writing its identity, then was killed.
        let (identity, origin) = crate::storage::Identity::open(dir.path(), false).expect("open");
        assert_eq!(origin, Origin::Fresh);
        drop(identity);
        let opts = NodeOptions::new(3, "127.0.0.1:9", dir.path().to_path_buf());
        let opened = open_storage(&opts).expect("second start");
        let legacy = crate::raft::recovery::tests::legacy_membership();
        assert!(
            opened.recovery.needs_rejoin(),
            "the directory has not shown anything yet"
        );
        assert!(
            !opened
                .recovery
                .may_grant(Some(&crate::raft::log_id(1, 5)), &legacy),
            "a wiped directory never held the seat recorded before incarnations"
        );
    }

    /// Node `id` on `dir` after a first start that recorded `cluster` as its cluster id and
    /// stopped before any Raft state, started again (not bootstrapped yet).
    async fn restarted_knowing_only(
        dir: &std::path::Path,
        id: crate::raft::NodeId,
        cluster: uuid::Uuid,
    ) -> std::sync::Arc<crate::raft::Node> {
        let opts = NodeOptions::new(id, "127.0.0.1:9", dir.to_path_buf());
        let node = crate::raft::Node::start(opts.clone())
            .await
            .expect("first start");
        node.identity.set_cluster_id(cluster).expect("cluster id");
        node.shutdown().await.expect("stops");
        drop(node);
        crate::raft::Node::start(opts).await.expect("second start")
    }

    /// Review 2 (session 11): a founder SIGKILLed between recording its new cluster id and
    /// initializing its membership holds an id and no Raft state, exactly like a node killed
    /// after its join was answered (the next test), and the two cannot be told apart on disk.
    /// Re-founding would be unsafe for the joined node, and recording the id after the
    /// membership instead leaves a founder that looks like a directory from before cluster ids
    /// (which adopts the first leader's id: the third review). So it is refused, and the
    /// refusal says what to do in both cases: -e to join, or wipe a directory that never served.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_first_bootstrap_killed_after_recording_its_cluster_id_says_how_to_start_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The first step `bootstrap` makes durable, then the kill before `initialize`.
        let node = restarted_knowing_only(dir.path(), 1, uuid::Uuid::new_v4()).await;
        let res = node.bootstrap(Vec::new()).await;
        node.shutdown().await.expect("stops");
        let message = res.expect_err("refused").to_string();
        assert!(
            message.contains("-e") && message.contains("wipe the directory"),
            "{message}"
        );
    }

    /// Review 3 (session 11): `try_join` records the cluster id the leader answered with
    /// before the leader's admission (a learner seat for this incarnation) has sent it a single
    /// entry. A node killed then and restarted without `-e` (a restart "ignores -e", so an
    /// operator may drop it) holds an identity naming cluster C, an empty log and no loss: since
    /// bc7e0d4 `Node::bootstrap` refuses only a directory that lost data, so it founds a NEW
    /// one-node cluster under C's id, elects itself and acknowledges writes. C's leader, whose
    /// membership lists it, then replicates to it with C's id in the header: accepted, and the
    /// writes it acknowledged are truncated away.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_killed_after_its_join_was_answered_founds_no_cluster_under_that_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        // What `try_join` makes durable when the leader answers, then the kill.
        let cluster = uuid::Uuid::new_v4();
        let node = restarted_knowing_only(dir.path(), 3, cluster).await;
        let res = node.bootstrap(Vec::new()).await;
        let founded = node.raft.is_initialized().await.expect("raft answers");
        node.shutdown().await.expect("stops");
        assert!(
            res.is_err() && !founded,
            "node 3 was admitted to cluster {cluster} (the leader answered its join); without -e it must not found a one-node cluster under that id: bootstrap {:?}, initialized {founded}",
            res
        );
    }

    /// Review 4 (session 11), what held: the README's first start line run again on the same
    /// data. A founder that led, stopped, and restarts without `-e` is initialized, so the new
    /// refusal (an id without a membership) does not apply; and when its first start was
    /// killed before the watch task removed its recovering mark (simulated by saving the mark
    /// again), it still needs the log's durable index past its commit index, which a log
    /// opened from disk has from the start (`durable` is the last index at open): it leads
    /// again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_founder_restarted_without_e_and_with_its_mark_left_leads_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = crate::raft::node::testing::one_node_leader(dir.path()).await;
        node.shutdown().await.expect("stops");
        drop(node);
        let mark = RecoveringMark::open(dir.path()).expect("mark");
        mark.save(crate::storage::Unproven {
            new_directory: true,
            lost_data: false,
        })
        .expect("mark saved");
        drop(mark);
        let opts = NodeOptions::new(1, "127.0.0.1:9", dir.path().to_path_buf());
        let node = crate::raft::Node::start(opts).await.expect("second start");
        assert!(node.recovery.needs_rejoin(), "the mark was carried over");
        node.bootstrap(Vec::new())
            .await
            .expect("an initialized founder starts");
        let led = node
            .raft
            .wait(Some(std::time::Duration::from_secs(20)))
            .state(openraft::ServerState::Leader, "the founder leads again")
            .await;
        node.shutdown().await.expect("stops");
        led.expect("leads again");
    }
}
