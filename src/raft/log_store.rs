//! openraft's log store over the segment log and the vote file.
//!
//! Appends are written before `append` returns (so they can be read back at once) and reported
//! to openraft as flushed only from the segment log's flusher thread, after the fsync that covers
//! them: one fsync for every append made while the previous one ran (group commit).

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};

use super::codec::{decode_vote, encode_vote, entry_to_stored, stored_to_entry};
use super::log_tail::LogTail;
use super::support::io_err;
use super::{log_id, Entry, LogId, TypeConfig, Vote};
use crate::storage::{CommittedFile, EntryId, SegmentLog, SnapshotStore, StorageError, VoteFile};

/// Most payload bytes one replication read hands openraft ([`LogStore::limited_get_log_entries`]);
/// replication sends what one read returns.
const MAX_READ_BYTES: usize = 4 * 1024 * 1024;

/// The log store handed to openraft; cheap to clone (the reader is a clone).
#[derive(Clone)]
pub struct LogStore {
    log: Arc<SegmentLog>,
    vote: Arc<VoteFile>,
    committed: Arc<CommittedFile>,
    /// When set, purges stop at the oldest kept snapshot (see [`purge_bound`]).
    snapshots: Option<Arc<SnapshotStore>>,
    /// The newest entries, decoded: what replication and apply read back right after an
    /// append (see `raft::log_tail`). Shared by every clone.
    tail: Arc<Mutex<LogTail>>,
}

impl LogStore {
    /// Wraps an open segment log, vote file and committed file.
    pub fn new(log: Arc<SegmentLog>, vote: Arc<VoteFile>, committed: Arc<CommittedFile>) -> Self {
        Self {
            log,
            vote,
            committed,
            snapshots: None,
            tail: Arc::default(),
        }
    }

    /// Bounds every purge by the oldest snapshot file `snapshots` keeps, so a newest snapshot
    /// that fails verification at start can fall back to an older one the log still reaches.
    pub fn with_snapshots(mut self, snapshots: Arc<SnapshotStore>) -> Self {
        self.snapshots = Some(snapshots);
        self
    }
}

/// How far to really purge when openraft asks for `requested`: never past the oldest kept
/// snapshot (`oldest_kept`, offset and term), so every kept snapshot has the log after it. The
/// bound is dropped when the log does not reach `requested` (a snapshot installed from the
/// leader beyond the local log): keeping the old entries would leave a hole before the next
/// append, and the older snapshot could not be a fallback anyway.
///
/// openraft tolerates a store that keeps more than asked: it never reads below what it asked to
/// purge, and `get_log_state` reports the purge point that is persisted (this one).
pub fn purge_bound(
    requested: EntryId,
    oldest_kept: Option<EntryId>,
    last_index: Option<u64>,
) -> EntryId {
    match oldest_kept {
        Some(o) if o.index < requested.index && last_index >= Some(requested.index) => o,
        _ => requested,
    }
}

async fn blocking<T, F>(f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StorageError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io::Error::other(format!("storage task failed: {e}")))?
        .map_err(io_err)
}

fn to_log_id(id: EntryId) -> LogId {
    log_id(id.term, id.index)
}

impl LogStore {
    /// Entries in `[start, end)`, or only the first ones up to about `max_bytes` of payload.
    fn read(
        &self,
        start: u64,
        end: u64,
        max_bytes: Option<usize>,
    ) -> Result<Vec<Entry>, io::Error> {
        if start >= end {
            return Ok(Vec::new());
        }
        if let Ok(tail) = self.tail.lock() {
            let log_last = self.log.last_entry_id().map(|e| e.index);
            if let Some(entries) = tail.read(start, end, max_bytes, log_last) {
                return Ok(entries);
            }
        }
        // openraft may ask for a range that starts in what it has purged and takes what the log
        // still holds of it (its storage suite checks this): start after the purge point.
        let mut from = start;
        let stored = loop {
            match self.log.read_range(from, end, max_bytes) {
                Err(StorageError::Purged { last_purged, .. }) => from = last_purged + 1,
                other => break other.map_err(io_err)?,
            }
        };
        stored
            .iter()
            .map(|s| stored_to_entry(s).map_err(io::Error::from))
            .collect()
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    /// Every entry of the range the log holds: openraft applies committed entries through this
    /// and takes what it returns as the whole range, so it must not stop early (a cap here made
    /// a restart with more than 4 MiB of unapplied log skip the rest of it).
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => u64::MAX,
        };
        self.read(start, end, None)
    }

    /// The first entries of `[start, end)`, up to `MAX_READ_BYTES` of payload (at least one):
    /// what replication sends in one request.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, io::Error> {
        self.read(start, end, Some(MAX_READ_BYTES))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        match self.vote.load().map_err(io_err)? {
            Some(bytes) => Ok(Some(decode_vote(&bytes)?)),
            None => Ok(None),
        }
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged_log_id = self.log.last_purged().map(to_log_id);
        let last_log_id = self
            .log
            .last_entry_id()
            .map(to_log_id)
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    /// Recorded behind Raft (see `storage::committed`): what is durable may lag a little.
    /// A follower may learn that an entry is committed before its own copy is fsynced; the
    /// watermark is clamped to what this log has made durable, so that a power loss never
    /// leaves a watermark above the log (which would keep the node out of elections although
    /// it lost nothing it had acknowledged).
    ///
    /// The clamped watermark is the log's own entry at the durable index, and only when it is of
    /// the committed entry's term: then the leader of that term wrote both, so it lies in the
    /// committed prefix. Of another term it may be a deposed leader's entry that a snapshot
    /// installed from the leader covers but that is not purged yet (openraft's commit index
    /// already counts the snapshot); nothing is recorded then, and `yakt-dump`, which trusts a
    /// log that agrees with the watermark, is not shown that entry as committed.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        let Some(c) = committed else {
            return Ok(());
        };
        let durable = self.log.durable_index().unwrap_or(0);
        let id = if c.index <= durable {
            EntryId {
                index: c.index,
                term: c.leader_id.term,
            }
        } else {
            match self.log.read_range(durable, durable + 1, None) {
                Ok(e) if e.len() == 1 && e[0].term == c.leader_id.term => EntryId {
                    index: e[0].index,
                    term: e[0].term,
                },
                _ => return Ok(()),
            }
        };
        self.committed.save(id);
        Ok(())
    }

    /// The persisted commit index, but never past the end of the log: a log that lost its
    /// tail (the node then recovers, see `raft::recovery`) is replayed as far as it goes, and
    /// the id is the log's own entry at that index.
    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        let Some(c) = self.committed.latest() else {
            return Ok(None);
        };
        let last = self.log.last_entry_id().map(|e| e.index);
        let index = match last {
            Some(l) => c.index.min(l),
            None => return Ok(None),
        };
        if self.log.first_index().is_none_or(|f| index < f) {
            return Ok(None);
        }
        let entry = self
            .log
            .read_range(index, index + 1, None)
            .map_err(io_err)?;
        Ok(entry.first().map(|e| log_id(e.term, e.index)))
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let bytes = encode_vote(vote)?;
        let file = self.vote.clone();
        blocking(move || file.save(&bytes)).await
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let stored = entries
            .iter()
            .map(entry_to_stored)
            .collect::<Result<Vec<_>, _>>()?;
        let Some(last) = stored.last().map(|e| e.index) else {
            callback.io_completed(Ok(()));
            return Ok(());
        };
        // A write into the page cache: no fsync here. The flusher thread reports durability.
        let appended = self.log.append(&stored);
        if let Ok(mut tail) = self.tail.lock() {
            match appended {
                Ok(()) => tail.appended(
                    entries
                        .into_iter()
                        .zip(stored.iter().map(|s| s.payload.len())),
                ),
                // What the log holds now is unknown: it answers alone until the next append.
                Err(_) => tail.clear(),
            }
        }
        appended.map_err(io_err)?;
        self.log.on_durable(
            last,
            Box::new(move |res| callback.io_completed(res.map_err(io_err))),
        );
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let log = self.log.clone();
        let after = last_log_id.map(|l| l.index);
        if let Ok(mut tail) = self.tail.lock() {
            tail.truncate_after(after);
        }
        blocking(move || log.truncate_after(after)).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let log = self.log.clone();
        let requested = EntryId {
            index: log_id.index,
            term: log_id.leader_id.term,
        };
        let snapshots = self.snapshots.clone();
        if let Ok(mut tail) = self.tail.lock() {
            // At most what is asked; the log may keep more (`purge_bound`), which then is read
            // from the log.
            tail.purge_upto(requested.index);
        }
        let id = blocking(move || {
            let oldest = match &snapshots {
                Some(s) => s.oldest_kept()?.map(|i| EntryId {
                    index: i.offset,
                    term: i.term,
                }),
                None => None,
            };
            let id = purge_bound(requested, oldest, log.last_entry_id().map(|e| e.index));
            log.purge_upto(id).map(|()| id)
        })
        .await?;
        tracing::info!(
            upto = id.index,
            term = id.term,
            requested = requested.index,
            "log purged"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use openraft::entry::RaftEntry;
    use openraft::EntryPayload;

    use super::*;
    use crate::metadata::{MetadataCommand, Record, TopicRecord};
    use crate::raft::codec::entry_to_stored;
    use crate::storage::LogOptions;

    #[tokio::test]
    async fn a_full_read_returns_every_entry_and_a_limited_one_stops_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = SegmentLog::open(&dir.path().join("log"), LogOptions::default()).unwrap();
        let vote = VoteFile::open(dir.path()).unwrap();
        let (committed, _) = CommittedFile::open(dir.path()).unwrap();
        let mut store = LogStore::new(Arc::new(log), Arc::new(vote), Arc::new(committed));
        // 600 entries of ~10 KiB: more than MAX_READ_BYTES in all.
        let stored: Vec<_> = (1..=600u64)
            .map(|i| {
                let cmd = MetadataCommand {
                    timestamp_ms: i,
                    record: Record::Topic(TopicRecord {
                        name: format!("{i:010}").repeat(1000),
                        topic_uuid: uuid::Uuid::from_u128(i as u128),
                    }),
                };
                entry_to_stored(&Entry::new(log_id(1, i), EntryPayload::Normal(cmd))).unwrap()
            })
            .collect();
        store.log.append(&stored).unwrap();
        let all = store.try_get_log_entries(1..=600).await.unwrap();
        assert_eq!(all.len(), 600);
        assert_eq!(all.last().map(|e| e.log_id.index), Some(600));
        let limited = store.limited_get_log_entries(1, 601).await.unwrap();
        assert!(
            !limited.is_empty() && limited.len() < 600,
            "{}",
            limited.len()
        );
        assert_eq!(store.try_get_log_entries(5..5).await.unwrap().len(), 0);
    }

    /// What the decoded tail answers through a cloned reader (as replication and apply read)
    /// is what the segment log holds, across a truncation followed by a conflicting append of
    /// a newer term at the same index, and a purge.
    #[tokio::test]
    async fn a_cloned_reader_sees_what_the_log_holds_across_truncation_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = SegmentLog::open(&dir.path().join("log"), LogOptions::default()).unwrap();
        let vote = VoteFile::open(dir.path()).unwrap();
        let (committed, _) = CommittedFile::open(dir.path()).unwrap();
        let mut store = LogStore::new(Arc::new(log), Arc::new(vote), Arc::new(committed));
        let mut reader = store.get_log_reader().await;
        let blanks = |term, range: std::ops::RangeInclusive<u64>| -> Vec<Entry> {
            range
                .map(|i| Entry::new(log_id(term, i), EntryPayload::Blank))
                .collect()
        };
        let ids = |v: Vec<Entry>| -> Vec<(u64, u64)> {
            v.iter()
                .map(|e| (e.log_id.leader_id.term, e.log_id.index))
                .collect()
        };
        let from_log = |store: &LogStore, start, end| -> Vec<(u64, u64)> {
            store
                .log
                .read_range(start, end, None)
                .unwrap()
                .iter()
                .map(|s| (s.term, s.index))
                .collect()
        };

        store
            .append(blanks(1, 1..=6), IOFlushed::noop())
            .await
            .unwrap();
        assert_eq!(
            ids(reader.try_get_log_entries(4..=6).await.unwrap()),
            vec![(1, 4), (1, 5), (1, 6)]
        );

        store.truncate_after(Some(log_id(1, 4))).await.unwrap();
        assert_eq!(
            ids(reader.try_get_log_entries(5..=6).await.unwrap()),
            vec![]
        );
        store
            .append(blanks(2, 5..=5), IOFlushed::noop())
            .await
            .unwrap();
        let read = ids(reader.try_get_log_entries(3..=6).await.unwrap());
        assert_eq!(read, vec![(1, 3), (1, 4), (2, 5)], "the new term's entry");
        assert_eq!(read, from_log(&store, 3, 7));

        store.purge(log_id(1, 3)).await.unwrap();
        let read = ids(reader.try_get_log_entries(2..=5).await.unwrap());
        assert_eq!(read, vec![(1, 4), (2, 5)], "only what the log still holds");
        assert_eq!(read, from_log(&store, 4, 6));
        assert_eq!(
            ids(reader.limited_get_log_entries(4, 100).await.unwrap()),
            vec![(1, 4), (2, 5)],
            "a range beyond the last entry answers what there is"
        );
    }

    #[test]
    fn purge_stops_at_the_oldest_kept_snapshot() {
        let id = |index| EntryId { index, term: 2 };
        // Two snapshots kept (100 and 200); openraft asks to purge to 150: keep from 101.
        assert_eq!(purge_bound(id(150), Some(id(100)), Some(300)), id(100));
        // Asked for less than the bound: as asked.
        assert_eq!(purge_bound(id(50), Some(id(100)), Some(300)), id(50));
        // No snapshot (the store is not told of any): as asked.
        assert_eq!(purge_bound(id(150), None, Some(300)), id(150));
        // The log does not reach the purge point (a snapshot installed beyond it): as asked.
        assert_eq!(purge_bound(id(500), Some(id(100)), Some(300)), id(500));
        assert_eq!(purge_bound(id(500), Some(id(100)), None), id(500));
    }

    #[tokio::test]
    async fn a_bounded_purge_keeps_the_log_after_the_oldest_snapshot_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = SegmentLog::open(&dir.path().join("log"), LogOptions::default()).unwrap();
        let vote = VoteFile::open(dir.path()).unwrap();
        let snaps = Arc::new(SnapshotStore::open(&dir.path().join("snapshots")).unwrap());
        snaps.write(100, 1, b"m", b"a").unwrap();
        snaps.write(200, 1, b"m", b"b").unwrap();
        let (committed, _) = CommittedFile::open(dir.path()).unwrap();
        let mut store = LogStore::new(Arc::new(log), Arc::new(vote), Arc::new(committed))
            .with_snapshots(snaps.clone());
        let stored: Vec<_> = (1..=300u64)
            .map(|i| entry_to_stored(&Entry::new(log_id(1, i), EntryPayload::Blank)).unwrap())
            .collect();
        store.log.append(&stored).unwrap();
        store.purge(log_id(1, 190)).await.unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 100)));
        assert_eq!(state.last_log_id, Some(log_id(1, 300)));
        assert_eq!(store.log.first_index(), Some(101));
        // openraft reads from above what it asked to purge: those entries are all there.
        assert_eq!(
            store.try_get_log_entries(191..=300).await.unwrap().len(),
            110
        );
    }

    #[tokio::test]
    async fn a_watermark_clamped_to_the_log_never_names_an_entry_of_an_older_term() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = SegmentLog::open(&dir.path().join("log"), LogOptions::default()).unwrap();
        let vote = VoteFile::open(dir.path()).unwrap();
        let (committed, _) = CommittedFile::open(dir.path()).unwrap();
        let committed = Arc::new(committed);
        let mut store = LogStore::new(Arc::new(log), Arc::new(vote), committed.clone());
        // 1..=5 committed in term 2; 6..=7 a deposed leader's tail of term 3, durable. The
        // leader's snapshot at 8 (term 4) is installed and openraft's commit index is 8, while
        // the log below it is not purged yet.
        crate::raft::committed::tests::append(&store.log, 1, 5, 2);
        crate::raft::committed::tests::append(&store.log, 6, 7, 3);
        assert_eq!(store.log.sync().unwrap(), Some(7));
        store.save_committed(Some(log_id(4, 8))).await.unwrap();
        assert_eq!(
            committed.latest(),
            None,
            "the deposed entry at 7 must not be recorded as committed"
        );
        // The usual case: the durable entry is of the committed entry's term.
        crate::raft::committed::tests::append(&store.log, 8, 9, 4);
        assert_eq!(store.log.sync().unwrap(), Some(9));
        store.save_committed(Some(log_id(4, 12))).await.unwrap();
        assert_eq!(committed.latest(), Some(EntryId { index: 9, term: 4 }));
        store.save_committed(Some(log_id(4, 9))).await.unwrap();
        assert_eq!(committed.latest(), Some(EntryId { index: 9, term: 4 }));
    }
}
