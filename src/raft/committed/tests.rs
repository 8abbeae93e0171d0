use openraft::entry::RaftEntry;
use openraft::EntryPayload;

use super::*;
use crate::metadata::record::tests::sample_records;
use crate::raft::codec::entry_to_stored;
use crate::raft::state_machine::Applied;
use crate::raft::{log_id, Entry};
use crate::storage::{EntryId, LogOptions};

/// A log of `n` entries from offset 1, each a metadata record, and a state applied up to
/// `applied`.
fn setup(dir: &std::path::Path, n: u64, applied: u64) -> (Arc<SegmentLog>, CommittedLog) {
    let (log, _) = SegmentLog::open(dir, LogOptions::default()).expect("open");
    let record = sample_records().remove(0);
    let stored: Vec<_> = (1..=n)
        .map(|i| {
            let cmd = MetadataCommand {
                timestamp_ms: 1000 + i,
                record: record.clone(),
            };
            entry_to_stored(&Entry::new(log_id(2, i), EntryPayload::Normal(cmd))).expect("encode")
        })
        .collect();
    log.append(&stored).expect("append");
    let log = Arc::new(log);
    let state = Arc::new(MetaState::at(Applied {
        offset: applied,
        term: 2,
    }));
    (log.clone(), CommittedLog::new(log, state))
}

/// Appends entries `from..=to` of term `term` (each a metadata record stamped `1000 + i`).
pub(crate) fn append(log: &SegmentLog, from: u64, to: u64, term: u64) {
    let record = sample_records().remove(0);
    let stored: Vec<_> = (from..=to)
        .map(|i| {
            let cmd = MetadataCommand {
                timestamp_ms: 1000 + i,
                record: record.clone(),
            };
            entry_to_stored(&Entry::new(log_id(term, i), EntryPayload::Normal(cmd)))
                .expect("encode")
        })
        .collect();
    log.append(&stored).expect("append");
}

/// Reads from `from` as a reader would (`max_bytes` per batch) until nothing new: every
/// item as `(offset, term, is_snapshot)`.
fn read_all(committed: &CommittedLog, from: u64, max_bytes: usize) -> Vec<(u64, u64, bool)> {
    let mut next = from;
    let mut out = Vec::new();
    loop {
        match committed.read(next, u64::MAX, max_bytes).expect("read") {
            Batch::Snapshot(s) => {
                out.push((s.offset, s.epoch, true));
                next = s.offset + 1;
            }
            Batch::Entries(es) if es.is_empty() => return out,
            Batch::Entries(es) => {
                for e in es {
                    assert_eq!(
                        e.offset, next,
                        "entries are consecutive from the offset asked"
                    );
                    out.push((e.offset, e.epoch, false));
                    next += 1;
                }
            }
        }
    }
}

fn offsets(batch: Batch) -> Vec<u64> {
    match batch {
        Batch::Entries(es) => es.iter().map(|e| e.offset).collect(),
        Batch::Snapshot(s) => panic!("expected entries, got the image at {}", s.offset),
    }
}

#[test]
fn reads_stop_at_the_applied_offset_and_the_callers_bound() {
    let d = tempfile::tempdir().expect("tempdir");
    let (_, committed) = setup(d.path(), 10, 6);
    let all = committed.read(1, u64::MAX, 1 << 20).expect("read");
    assert_eq!(offsets(all), (1..=6).collect::<Vec<_>>());
    let bounded = committed.read(2, 4, 1 << 20).expect("read");
    assert_eq!(offsets(bounded), vec![2, 3, 4]);
    let beyond = committed.read(7, u64::MAX, 1 << 20).expect("read");
    assert!(
        offsets(beyond).is_empty(),
        "entry 7 is in the log but not applied"
    );
}

#[test]
fn a_purged_offset_is_answered_with_the_image_never_with_later_records() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, committed) = setup(d.path(), 10, 8);
    log.purge_upto(EntryId { index: 4, term: 2 })
        .expect("purge");
    for from in [1, 4] {
        match committed.read(from, u64::MAX, 1 << 20).expect("read") {
            Batch::Snapshot(s) => assert_eq!((s.offset, s.epoch), (8, 2)),
            Batch::Entries(es) => panic!("read from {from} got entries {:?}", es.first()),
        }
    }
    assert_eq!(committed.read_start(), Some(5));
    assert_eq!(
        offsets(committed.read(5, u64::MAX, 1 << 20).expect("read")),
        vec![5, 6, 7, 8]
    );
}

#[test]
fn below_an_installed_snapshots_floor_a_reader_gets_the_image_never_the_deposed_leaders_tail() {
    let d = tempfile::tempdir().expect("tempdir");
    // 1..=5 committed (term 2) and applied; 6..=8 a deposed leader's tail (term 3) that the
    // cluster never committed.
    let (log, committed) = setup(d.path(), 5, 5);
    append(&log, 6, 8, 3);
    // The leader's snapshot at 12 is installed before openraft purges the log below it.
    committed.state.install_at(Applied {
        offset: 12,
        term: 4,
    });
    for from in [0, 1, 5, 6, 8, 12] {
        match committed.read(from, u64::MAX, 1 << 20).expect("read") {
            Batch::Snapshot(s) => assert_eq!((s.offset, s.epoch), (12, 4), "from {from}"),
            Batch::Entries(es) => panic!(
                "read from {from} returned log entries {:?} below the installed snapshot",
                es.iter().map(|e| (e.offset, e.epoch)).collect::<Vec<_>>()
            ),
        }
    }
    assert_eq!(read_all(&committed, 3, 1), vec![(12, 4, true)]);
    assert_eq!(committed.read_start(), Some(13));
    assert!(committed.was_purged());
    assert_eq!(
        committed.offset_at_or_after(0).expect("time index"),
        Some(13),
        "catch-up never starts in the hidden tail"
    );
    // openraft then purges below the snapshot and the leader's entries follow.
    log.purge_upto(EntryId { index: 12, term: 4 })
        .expect("purge");
    append(&log, 13, 15, 4);
    assert_eq!(
        read_all(&committed, 13, 1 << 20),
        Vec::new(),
        "13.. not applied"
    );
    assert_eq!(read_all(&committed, 7, 1 << 20), vec![(12, 4, true)]);
}

#[test]
fn a_batch_limit_below_one_entry_still_moves_one_entry_at_a_time() {
    let d = tempfile::tempdir().expect("tempdir");
    let (_, committed) = setup(d.path(), 10, 7);
    assert_eq!(
        offsets(committed.read(3, u64::MAX, 1).expect("read")),
        vec![3]
    );
    assert_eq!(
        offsets(committed.read(3, u64::MAX, 0).expect("read")),
        vec![3]
    );
    let all = read_all(&committed, 1, 1);
    assert_eq!(
        all,
        (1..=7).map(|o| (o, 2, false)).collect::<Vec<_>>(),
        "each committed entry exactly once, in order, none above applied"
    );
}

#[test]
fn a_log_purged_to_its_end_answers_the_image_below_and_waits_above() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, committed) = setup(d.path(), 10, 10);
    log.purge_upto(EntryId { index: 10, term: 2 })
        .expect("purge");
    assert_eq!(committed.first_offset(), None);
    assert_eq!(read_all(&committed, 0, 1 << 20), vec![(10, 2, true)]);
    assert_eq!(read_all(&committed, 10, 1 << 20), vec![(10, 2, true)]);
    assert_eq!(read_all(&committed, 11, 1 << 20), Vec::new());
    assert_eq!(read_all(&committed, 500, 1 << 20), Vec::new());
}

/// A purge may run between any two reads: whatever point it purges to, a reader that went
/// on from where it was sees every offset exactly once, as a record or inside an image, in
/// increasing order, and never past the applied offset.
#[test]
fn a_purge_between_any_two_reads_neither_skips_nor_repeats() {
    for purge_after in 0..6u64 {
        for purge_to in [1u64, 4, 6, 9, 12] {
            let d = tempfile::tempdir().expect("tempdir");
            let (log, committed) = setup(d.path(), 14, 12);
            let mut next = 1;
            let mut seen: Vec<(u64, bool)> = Vec::new();
            let mut reads = 0;
            loop {
                if reads == purge_after {
                    log.purge_upto(EntryId {
                        index: purge_to,
                        term: 2,
                    })
                    .expect("purge");
                }
                reads += 1;
                match committed.read(next, u64::MAX, 1).expect("read") {
                    Batch::Snapshot(s) => {
                        seen.push((s.offset, true));
                        next = s.offset + 1;
                    }
                    Batch::Entries(es) if es.is_empty() => break,
                    Batch::Entries(es) => {
                        for e in es {
                            assert_eq!(e.offset, next);
                            seen.push((e.offset, false));
                            next += 1;
                        }
                    }
                }
            }
            let covered: Vec<u64> = seen.iter().map(|(o, _)| *o).collect();
            assert!(
                covered.windows(2).all(|w| w[0] < w[1]),
                "purge to {purge_to} after {purge_after} reads: {seen:?}"
            );
            assert_eq!(covered.last(), Some(&12), "{seen:?}");
            // Every record read was still in the log when read: none below a purge point
            // after the first image.
            let records_before_first_image = seen.iter().take_while(|(_, s)| !s).count();
            let expected = if purge_to > purge_after {
                purge_after
            } else {
                12
            };
            assert_eq!(
                records_before_first_image as u64, expected,
                "purge to {purge_to} after {purge_after} reads: {seen:?}"
            );
        }
    }
}

/// Appends entries `from..=to` (term 2) all stamped `ts`.
fn append_stamped(log: &SegmentLog, from: u64, to: u64, ts: u64) {
    let record = sample_records().remove(0);
    let stored: Vec<_> = (from..=to)
        .map(|i| {
            let cmd = MetadataCommand {
                timestamp_ms: ts,
                record: record.clone(),
            };
            entry_to_stored(&Entry::new(log_id(2, i), EntryPayload::Normal(cmd))).expect("encode")
        })
        .collect();
    log.append(&stored).expect("append");
}

/// Catch-up from a millisecond that purged records share with the first record left must
/// not answer a delta that starts after them.
#[test]
fn records_since_a_millisecond_shared_with_purged_records_are_lost_not_shortened() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = SegmentLog::open(d.path(), LogOptions::default()).expect("open");
    let log = Arc::new(log);
    // 1..=3 at 100 ms, 4..=9 at 200 ms, 10..=12 at 300 ms.
    append_stamped(&log, 1, 3, 100);
    append_stamped(&log, 4, 9, 200);
    append_stamped(&log, 10, 12, 300);
    let state = Arc::new(MetaState::at(Applied {
        offset: 12,
        term: 2,
    }));
    let committed = CommittedLog::new(log.clone(), state);
    // Nothing purged: every start is known.
    assert_eq!(
        committed.records_since(200, 12).expect("since"),
        Since::From(Some(4))
    );
    assert_eq!(
        committed.records_since(50, 12).expect("since"),
        Since::From(Some(1))
    );
    // Purged up to 6: 4..=6 were stamped 200 too, the log now starts at 7 (200 ms).
    log.purge_upto(EntryId { index: 6, term: 2 })
        .expect("purge");
    assert_eq!(
        committed.records_since(200, 12).expect("since"),
        Since::Lost,
        "records 4..=6 stamped 200 are gone: a delta from 7 would miss them"
    );
    assert_eq!(
        committed.records_since(150, 12).expect("since"),
        Since::Lost
    );
    // Strictly after the first record left: the log holds everything.
    assert_eq!(
        committed.records_since(201, 12).expect("since"),
        Since::From(Some(10))
    );
    assert_eq!(
        committed.records_since(300, 12).expect("since"),
        Since::From(Some(10))
    );
    assert_eq!(
        committed.records_since(301, 12).expect("since"),
        Since::From(None)
    );
    // Only what is applied proves anything.
    assert_eq!(committed.records_since(250, 6).expect("since"), Since::Lost);
}
