//! At open, makes the log below the newest snapshot agree with it.
//!
//! Readers (`/stream`, `/fetch`, catch-up, time travel) serve the log up to the applied offset,
//! and at open the applied offset is the newest snapshot's. That is only true to the committed
//! log if the entries the log holds below the snapshot are the committed ones. A snapshot built
//! here from applied entries guarantees it. A snapshot installed from the leader does not: it
//! is written before openraft truncates and purges the log below it, and while the node runs
//! `MetaState::log_floor` hides that window. A crash inside the window leaves, after a restart,
//! a snapshot at offset S beside whatever this node had below S, such as a deposed leader's
//! entries that were never committed, and the in-memory floor is gone.
//!
//! Raft's Log Matching property decides it without any extra state on disk: if the log holds
//! an entry at S of the snapshot's term, every entry before it is the leader's, so committed.
//! Otherwise (another term at S, or no entry at S) nothing the log holds below S can be
//! trusted, and the log is purged through S: the snapshot covers it. (openraft would purge a
//! log that ends before S at start too; doing it here keeps one rule.) `yakt-dump --image`,
//! which reads a directory without changing it, applies the same rule ([`log_agrees`]).
//!
//! The same holds for a newer snapshot that failed verification and was set aside for an older
//! one: its file name still says which entry the cluster committed at its offset. If the log
//! holds a different entry there (or none), the log above the loaded snapshot may be a deposed
//! leader's, and openraft would replay it into the image up to the persisted commit index. The
//! log is then cut back to the loaded snapshot ([`settle_past_set_aside`]); the node, now behind
//! what it acknowledged, recovers from the leader (`raft::recovery`).

use crate::storage::{EntryId, SegmentLog, StorageError};

/// The rule: the log below a snapshot at `snapshot` is the committed one only if the log holds
/// an entry of the snapshot's term at its offset (`term_at_snapshot`).
pub fn log_agrees(term_at_snapshot: Option<u64>, snapshot: EntryId) -> bool {
    term_at_snapshot == Some(snapshot.term)
}

/// What the check did to the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Agreement {
    /// The log agrees with the snapshot, or is already purged through it: left as it is.
    Agrees,
    /// The log held another term (`found_term`), or nothing (`None`), at the snapshot's
    /// offset: purged through it.
    Purged {
        /// The term the log held at the snapshot's offset.
        found_term: Option<u64>,
    },
    /// The log held another term (`found_term`), or nothing, at a set-aside newer snapshot's
    /// offset: every entry after `after` (the loaded snapshot's offset) was removed.
    Truncated {
        /// The term the log held at the set-aside snapshot's offset.
        found_term: Option<u64>,
        /// The last offset kept (`None`: no snapshot was loaded, the whole log went).
        after: Option<u64>,
    },
}

/// The term of the log's entry at `index`; `Ok(None)` when the log holds none there.
fn term_at(log: &SegmentLog, index: u64) -> Result<Option<u64>, StorageError> {
    log.read_range(index, index + 1, Some(0)).map(|entries| {
        entries
            .into_iter()
            .find(|e| e.index == index)
            .map(|e| e.term)
    })
}

/// When the newest snapshot (`set_aside`) failed verification and an older one (`loaded`, or
/// none) was loaded instead: keeps the log above `loaded` only if it agrees with `set_aside`
/// ([`log_agrees`]), else truncates it after `loaded`. Called once at open, before the
/// recovery watermark is compared with the log's end and before Raft starts.
pub fn settle_past_set_aside(
    log: &SegmentLog,
    loaded: Option<EntryId>,
    set_aside: EntryId,
) -> Result<Agreement, StorageError> {
    if loaded.is_some_and(|l| l.index >= set_aside.index) {
        return Ok(Agreement::Agrees);
    }
    let found_term = match term_at(log, set_aside.index) {
        Ok(t) => t,
        // Purged through it: no loaded snapshot below it could have been opened (`covers`).
        Err(StorageError::Purged { .. }) => return Ok(Agreement::Agrees),
        Err(e) => return Err(e),
    };
    if log_agrees(found_term, set_aside) {
        return Ok(Agreement::Agrees);
    }
    let after = loaded.map(|l| l.index);
    log.truncate_after(after)?;
    Ok(Agreement::Truncated { found_term, after })
}

/// Purges the log through `snapshot` unless it agrees with it ([`log_agrees`]). Called once
/// at open, before Raft starts and before anything is served.
pub fn settle_below_snapshot(
    log: &SegmentLog,
    snapshot: EntryId,
) -> Result<Agreement, StorageError> {
    let found_term = match term_at(log, snapshot.index) {
        Ok(t) => t,
        // Already purged through the snapshot's offset: nothing below it is read.
        Err(StorageError::Purged { .. }) => return Ok(Agreement::Agrees),
        Err(e) => return Err(e),
    };
    if log_agrees(found_term, snapshot) {
        return Ok(Agreement::Agrees);
    }
    log.purge_upto(snapshot)?;
    Ok(Agreement::Purged { found_term })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::raft::committed::tests::append;
    use crate::raft::committed::{Batch, CommittedLog};
    use crate::raft::state_machine::{Applied, MetaState};
    use crate::storage::LogOptions;

    /// A log holding `runs` of `(from, to, term)` entries, each a metadata record.
    fn log_with(dir: &std::path::Path, runs: &[(u64, u64, u64)]) -> Arc<SegmentLog> {
        let (log, _) = SegmentLog::open(dir, LogOptions::default()).expect("open");
        for &(from, to, term) in runs {
            append(&log, from, to, term);
        }
        Arc::new(log)
    }

    /// What a reader starting at `from` gets after a restart at the snapshot `(offset, term)`,
    /// as `Err(snapshot offset)` for the image or `Ok(offsets)` for log entries.
    fn read_after_restart(
        log: Arc<SegmentLog>,
        offset: u64,
        term: u64,
        from: u64,
    ) -> Result<Vec<u64>, u64> {
        // A restarted node: applied is the snapshot's offset, and no floor is remembered.
        let state = Arc::new(MetaState::at(Applied { offset, term }));
        match CommittedLog::new(log, state)
            .read(from, u64::MAX, 1 << 20)
            .expect("read")
        {
            Batch::Snapshot(s) => Err(s.offset),
            Batch::Entries(es) => Ok(es.iter().map(|e| e.offset).collect()),
        }
    }

    #[test]
    fn a_deposed_leaders_tail_below_an_installed_snapshot_is_purged_at_open() {
        let d = tempfile::tempdir().expect("tempdir");
        // 1..=5 committed in term 2; 6..=9 a deposed leader's tail of term 3 that the cluster
        // replaced. The leader's snapshot at 8 (term 4) was written, then the node crashed before
        // openraft truncated and purged below it.
        let log = log_with(d.path(), &[(1, 5, 2), (6, 9, 3)]);
        let before = read_after_restart(log.clone(), 8, 4, 6);
        assert_eq!(
            before,
            Ok(vec![6, 7, 8]),
            "without the check a restarted reader is served the deposed tail (the test's premise)"
        );
        let snapshot = EntryId { index: 8, term: 4 };
        assert_eq!(
            settle_below_snapshot(&log, snapshot).expect("settle"),
            Agreement::Purged {
                found_term: Some(3)
            }
        );
        assert_eq!(log.last_purged(), Some(snapshot));
        for from in [1, 6, 8] {
            assert_eq!(
                read_after_restart(log.clone(), 8, 4, from),
                Err(8),
                "from {from}: the image, never the deposed entries"
            );
        }
    }

    #[test]
    fn a_log_that_agrees_with_the_snapshot_keeps_its_entries_for_readers() {
        let d = tempfile::tempdir().expect("tempdir");
        let log = log_with(d.path(), &[(1, 5, 2), (6, 9, 3)]);
        for snapshot in [EntryId { index: 8, term: 3 }, EntryId { index: 4, term: 2 }] {
            assert_eq!(
                settle_below_snapshot(&log, snapshot).expect("settle"),
                Agreement::Agrees
            );
        }
        assert_eq!(log.last_purged(), None);
        assert_eq!(read_after_restart(log, 8, 3, 1), Ok((1..=8).collect()));
    }

    #[test]
    fn a_log_that_ends_before_the_snapshot_is_purged_and_an_already_purged_one_left_alone() {
        let d = tempfile::tempdir().expect("tempdir");
        let log = log_with(d.path(), &[(1, 5, 2)]);
        assert_eq!(read_after_restart(log.clone(), 12, 4, 3), Ok(vec![3, 4, 5]));
        let snapshot = EntryId { index: 12, term: 4 };
        assert_eq!(
            settle_below_snapshot(&log, snapshot).expect("settle"),
            Agreement::Purged { found_term: None }
        );
        assert_eq!(read_after_restart(log.clone(), 12, 4, 3), Err(12));
        assert_eq!(
            settle_below_snapshot(&log, EntryId { index: 9, term: 3 }).expect("settle"),
            Agreement::Agrees,
            "purged through 12 already"
        );
        assert_eq!(log.last_purged(), Some(snapshot));
    }

    #[test]
    fn a_deposed_tail_above_an_older_snapshot_is_cut_when_the_newest_was_set_aside() {
        let d = tempfile::tempdir().expect("tempdir");
        // 1..=5 committed in term 2 (a snapshot built here at 4); 6..=7 a deposed leader's tail
        // of term 3. The leader's snapshot at 8 (term 4) was written, the node crashed before
        // openraft purged below it, and at restart that file fails verification: the node
        // falls back to the snapshot at 4.
        let log = log_with(d.path(), &[(1, 5, 2), (6, 7, 3)]);
        let loaded = EntryId { index: 4, term: 2 };
        let set_aside = EntryId { index: 8, term: 4 };
        assert_eq!(
            settle_below_snapshot(&log, loaded).expect("settle"),
            Agreement::Agrees,
            "the loaded snapshot alone finds nothing wrong (the test's premise)"
        );
        assert_eq!(
            log.last_entry_id(),
            Some(EntryId { index: 7, term: 3 }),
            "so openraft would replay the deposed 6..=7 into the image (the test's premise)"
        );
        assert_eq!(
            settle_past_set_aside(&log, Some(loaded), set_aside).expect("settle"),
            Agreement::Truncated {
                found_term: None,
                after: Some(4)
            }
        );
        assert_eq!(log.last_entry_id(), Some(loaded));
        assert_eq!(read_after_restart(log, 4, 2, 1), Ok(vec![1, 2, 3, 4]));
    }

    #[test]
    fn a_log_that_agrees_with_a_set_aside_snapshot_is_kept_for_replay() {
        let d = tempfile::tempdir().expect("tempdir");
        let log = log_with(d.path(), &[(1, 5, 2), (6, 9, 4)]);
        let loaded = Some(EntryId { index: 4, term: 2 });
        assert_eq!(
            settle_past_set_aside(&log, loaded, EntryId { index: 8, term: 4 }).expect("settle"),
            Agreement::Agrees
        );
        assert_eq!(log.last_entry_id(), Some(EntryId { index: 9, term: 4 }));
        // Another term at the set-aside offset, and no snapshot loaded at all: nothing is kept.
        assert_eq!(
            settle_past_set_aside(&log, None, EntryId { index: 8, term: 5 }).expect("settle"),
            Agreement::Truncated {
                found_term: Some(4),
                after: None
            }
        );
        assert_eq!(log.last_entry_id(), None);
    }
}
