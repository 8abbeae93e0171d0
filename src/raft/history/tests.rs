//! Unit tests of the rebuild: against the fold of the whole prefix, across snapshots and a
//! purge, online and offline alike, and the sharing of concurrent rebuilds.

use std::path::Path;
use std::sync::Arc;

use openraft::entry::RaftEntry;
use openraft::EntryPayload;
use uuid::Uuid;

use super::offline::DataDirHistory;
use super::online::{History, LiveSource, Point};
use super::{oldest_offset, rebuild_at, HistoryError};
use crate::metadata::record::{
    BrokerRegistrationChangeBrokerRecord, BrokerStatus, RegisterBrokerRecord, SecurityProtocol,
    TopicRecord,
};
use crate::metadata::{Image, MetadataCommand, Record};
use crate::raft::codec::entry_to_stored;
use crate::raft::state_machine::{Applied, MetaState};
use crate::raft::{log_id, Entry};
use crate::storage::{CommittedFile, EntryId, LogOptions, SegmentLog, SnapshotStore, StoredEntry};

const TERM: u64 = 3;

/// The record at offset `i` (`None`: a Raft blank entry): brokers registered, changed and
/// closed, and topics, so every offset's image differs from the one before.
fn record_at(i: u64) -> Option<Record> {
    let id = i as i32;
    match i % 5 {
        0 => None,
        1 => Some(Record::RegisterBroker(RegisterBrokerRecord {
            broker_id: id,
            broker_host: format!("host-{i}"),
            broker_port: 9092,
            security_protocol: SecurityProtocol::Plaintext,
            broker_status: BrokerStatus::Alive,
            rack_id: None,
            internal_uuid: Uuid::from_u128(u128::from(i) << 64 | 1),
            epoch: 0,
        })),
        2 => Some(Record::BrokerChange(BrokerRegistrationChangeBrokerRecord {
            broker_id: id - 1,
            broker_host: Some(format!("moved-{i}")),
            broker_port: None,
            security_protocol: None,
            broker_status: Some(BrokerStatus::Fenced),
            epoch: 1,
        })),
        3 => Some(Record::BrokerChange(BrokerRegistrationChangeBrokerRecord {
            broker_id: id - 2,
            broker_host: None,
            broker_port: None,
            security_protocol: None,
            broker_status: Some(BrokerStatus::Closed),
            epoch: 2,
        })),
        _ => Some(Record::Topic(TopicRecord {
            name: format!("topic-{i}"),
            topic_uuid: Uuid::from_u128(u128::from(i) << 64 | 2),
        })),
    }
}

fn stored(i: u64) -> StoredEntry {
    let payload = match record_at(i) {
        Some(record) => EntryPayload::Normal(MetadataCommand {
            timestamp_ms: 1_000 + i,
            record,
        }),
        None => EntryPayload::Blank,
    };
    entry_to_stored(&Entry::new(log_id(TERM, i), payload)).expect("encode")
}

/// The fold of offsets 1..=n, as the state machine folds them.
fn folded(n: u64) -> Image {
    let mut image = Image::new();
    for i in 1..=n {
        if let Some(record) = record_at(i) {
            let cmd = MetadataCommand {
                timestamp_ms: 1_000 + i,
                record,
            };
            let _ = image.apply_entry(i, TERM, &cmd);
        }
    }
    image
}

/// A data directory with offsets 1..=n in small segments, snapshots at `snaps`, the log purged
/// up to `purge` and committed up to `n`.
fn data_dir(
    dir: &Path,
    n: u64,
    snaps: &[u64],
    purge: Option<u64>,
) -> (Arc<SegmentLog>, Arc<SnapshotStore>) {
    let (log, _) = SegmentLog::open(
        &dir.join("log"),
        LogOptions {
            segment_bytes: 4096,
        },
    )
    .expect("open log");
    let entries: Vec<_> = (1..=n).map(stored).collect();
    log.append(&entries).expect("append");
    log.sync().expect("sync");
    let store = SnapshotStore::open_keeping(&dir.join("snapshots"), 10).expect("snapshots");
    for &s in snaps {
        store
            .write(s, TERM, b"meta", &folded(s).encode())
            .expect("write snapshot");
    }
    if let Some(p) = purge {
        log.purge_upto(EntryId {
            index: p,
            term: TERM,
        })
        .expect("purge");
    }
    let (committed, _) = CommittedFile::open(dir).expect("committed");
    committed.save(EntryId {
        index: n,
        term: TERM,
    });
    committed.flush().expect("flush committed");
    (Arc::new(log), Arc::new(store))
}

fn live(log: &Arc<SegmentLog>, store: &Arc<SnapshotStore>, applied: u64) -> LiveSource {
    let state = Arc::new(MetaState::at(Applied {
        offset: applied,
        term: TERM,
    }));
    LiveSource::new(log.clone(), store.clone(), state)
}

/// At every offset of `range`, the online and the offline rebuild both equal the fold of the
/// log's prefix.
fn both_fold_their_prefix(
    online: &LiveSource,
    offline: &DataDirHistory,
    range: std::ops::RangeInclusive<u64>,
) {
    for n in range {
        let want = folded(n);
        assert_eq!(
            rebuild_at(online, n).expect("online"),
            want,
            "online at {n}"
        );
        assert_eq!(
            rebuild_at(offline, n).expect("offline"),
            want,
            "offline at {n}"
        );
    }
}

#[test]
fn every_offset_rebuilds_to_the_fold_of_its_prefix_online_and_offline() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, store) = data_dir(d.path(), 120, &[], None);
    assert!(log.segments().len() > 2, "the test needs several segments");
    let online = live(&log, &store, 120);
    let offline = DataDirHistory::new(d.path());
    both_fold_their_prefix(&online, &offline, 0..=120);
    // Offset 10 is a Raft blank entry: the image's position is the record before it.
    let at_blank = rebuild_at(&online, 10).expect("blank");
    assert_eq!((at_blank.last_offset, at_blank.last_epoch), (9, TERM));
}

#[test]
fn below_the_oldest_usable_snapshot_is_compacted_and_past_the_end_out_of_range() {
    let d = tempfile::tempdir().expect("tempdir");
    // Snapshot 30 is below the purge point (40): only 50 and 80 can start a rebuild.
    let (log, store) = data_dir(d.path(), 100, &[30, 50, 80], Some(40));
    let online = live(&log, &store, 95);
    let offline = DataDirHistory::new(d.path());
    assert_eq!(oldest_offset(&online).expect("oldest"), Some(50));
    assert_eq!(oldest_offset(&offline).expect("oldest"), Some(50));
    both_fold_their_prefix(&online, &offline, 50..=95);
    for n in [0, 30, 41, 49] {
        match rebuild_at(&online, n) {
            Err(HistoryError::Compacted { oldest: 50, .. }) => {}
            other => panic!("at {n}: {other:?}"),
        }
    }
    // Online the end is the applied offset, offline the committed one.
    match rebuild_at(&online, 96) {
        Err(HistoryError::OutOfRange { end: 95, .. }) => {}
        other => panic!("online past applied: {other:?}"),
    }
    assert_eq!(rebuild_at(&offline, 100).expect("offline end"), folded(100));
    match rebuild_at(&offline, 101) {
        Err(HistoryError::OutOfRange { end: 100, .. }) => {}
        other => panic!("offline past committed: {other:?}"),
    }
}

#[test]
fn an_entry_beyond_the_applied_offset_is_never_read() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, store) = data_dir(d.path(), 40, &[], None);
    let online = live(&log, &store, 20);
    // Even asked directly, the source stops at the applied offset.
    let chunk = super::HistorySource::entries(&online, 15, 40).expect("entries");
    assert_eq!(chunk.last().map(|e| e.index), Some(20));
}

#[test]
fn offline_reads_a_directory_whose_newest_segment_is_being_appended() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _store) = data_dir(d.path(), 30, &[], None);
    // Half a frame written after the last entry, as an append in progress leaves it.
    let newest = log.segments().last().expect("segment").path.clone();
    let write_pos = log.segments().last().expect("segment").bytes;
    let mut frame = Vec::new();
    crate::storage::frame::encode_frame(31, TERM, 1_031, &stored(31).payload, &mut frame)
        .expect("frame");
    let mut bytes = std::fs::read(&newest).expect("read");
    let room = bytes.len() - write_pos as usize;
    assert!(room > 0, "the newest segment has no room left");
    let half = &frame[..(frame.len() / 2).min(room)];
    bytes[write_pos as usize..write_pos as usize + half.len()].copy_from_slice(half);
    std::fs::write(&newest, &bytes).expect("write");
    let offline = DataDirHistory::new(d.path());
    assert_eq!(rebuild_at(&offline, 30).expect("offline"), folded(30));
}

#[tokio::test]
async fn concurrent_requests_for_one_offset_share_one_rebuild() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, store) = data_dir(d.path(), 60, &[20], None);
    let history = History::new(live(&log, &store, 60));
    let (a, b) = tokio::join!(
        history.image_at(Point::Offset(44)),
        history.image_at(Point::Offset(44))
    );
    let (a, b) = (a.expect("a"), b.expect("b"));
    assert!(Arc::ptr_eq(&a, &b), "the two requests rebuilt separately");
    assert_eq!(a.offset, 44);
    assert_eq!(
        history.in_flight(),
        0,
        "a finished rebuild leaves the registry"
    );
    let c = history.image_at(Point::Offset(44)).await.expect("c");
    assert!(!Arc::ptr_eq(&a, &c), "a later request rebuilds afresh");
    assert_eq!(a.body, c.body);
    // The time 1_044 ms stamps offset 44: at or before it is 44, one ms earlier 43.
    let at = history.image_at(Point::Time(1_044)).await.expect("at");
    assert_eq!(at.offset, 44);
    let before = history.image_at(Point::Time(1_043)).await.expect("before");
    assert_eq!(before.offset, 43);
}

/// Offsets 1..=20 committed, then 21..=40 a deposed leader's tail that was never committed
/// (other records), snapshots at 10 (this node's) and 60 (installed from the leader), and the
/// committed watermark at `watermark` (still 20, or already moved to the snapshot's 60): the
/// directory a node leaves between writing the leader's snapshot and purging its log below it
/// (a crash there, or `yakt-dump` reading it live).
fn dir_with_an_uncommitted_tail_below_an_installed_snapshot(
    dir: &Path,
    watermark: u64,
) -> (Arc<SegmentLog>, Arc<SnapshotStore>) {
    let (log, _) = SegmentLog::open(
        &dir.join("log"),
        LogOptions {
            segment_bytes: 4096,
        },
    )
    .expect("open log");
    let mut entries: Vec<_> = (1..=20).map(stored).collect();
    for i in 21..=40 {
        let cmd = MetadataCommand {
            timestamp_ms: 1_000 + i,
            record: Record::Topic(TopicRecord {
                name: format!("never-committed-{i}"),
                topic_uuid: Uuid::from_u128(u128::from(i) << 64 | 9),
            }),
        };
        entries.push(
            entry_to_stored(&Entry::new(log_id(TERM, i), EntryPayload::Normal(cmd)))
                .expect("encode"),
        );
    }
    log.append(&entries).expect("append");
    log.sync().expect("sync");
    let store = SnapshotStore::open_keeping(&dir.join("snapshots"), 10).expect("snapshots");
    for s in [10, 60] {
        store
            .write(s, TERM, b"meta", &folded(s).encode())
            .expect("write snapshot");
    }
    let (committed, _) = CommittedFile::open(dir).expect("committed");
    committed.save(EntryId {
        index: watermark,
        term: TERM,
    });
    committed.flush().expect("flush committed");
    (Arc::new(log), Arc::new(store))
}

#[test]
fn offline_never_folds_an_uncommitted_tail_below_a_snapshot_the_watermark_already_reached() {
    let d = tempfile::tempdir().expect("tempdir");
    let _files = dir_with_an_uncommitted_tail_below_an_installed_snapshot(d.path(), 60);
    let offline = DataDirHistory::new(d.path());
    assert_eq!(rebuild_at(&offline, 60).expect("snapshot"), folded(60));
    for n in [15, 20, 30, 40, 59] {
        match rebuild_at(&offline, n) {
            Err(HistoryError::Compacted { oldest: 60, .. }) => {}
            Ok(image) => panic!(
                "offline at {n} folded the log below a snapshot it does not agree with \
                 (entries 21..=40 were never committed): {image:?}"
            ),
            Err(e) => panic!("offline at {n}: {e}"),
        }
    }
}

#[test]
fn offline_never_folds_an_uncommitted_tail_below_a_snapshot_above_the_watermark() {
    let d = tempfile::tempdir().expect("tempdir");
    let _files = dir_with_an_uncommitted_tail_below_an_installed_snapshot(d.path(), 20);
    let offline = DataDirHistory::new(d.path());
    assert_eq!(rebuild_at(&offline, 20).expect("committed"), folded(20));
    assert_eq!(rebuild_at(&offline, 60).expect("snapshot"), folded(60));
    for n in [21, 30, 40] {
        match rebuild_at(&offline, n) {
            Ok(image) => panic!(
                "offline at {n} answered an image folding entries above the committed \
                 watermark, never committed: {image:?}"
            ),
            Err(e) => assert!(
                !matches!(
                    e,
                    HistoryError::Storage(_) | HistoryError::Undecodable { .. }
                ),
                "at {n}: {e}"
            ),
        }
    }
}

#[test]
fn online_never_folds_an_uncommitted_tail_below_a_snapshot_just_installed() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, store) = dir_with_an_uncommitted_tail_below_an_installed_snapshot(d.path(), 20);
    let state = Arc::new(MetaState::at(Applied {
        offset: 20,
        term: TERM,
    }));
    let online = LiveSource::new(log.clone(), store.clone(), state.clone());
    assert_eq!(rebuild_at(&online, 20).expect("committed"), folded(20));
    // The leader's snapshot 60 is installed; openraft has not purged the log below it yet.
    state.install_at(Applied {
        offset: 60,
        term: TERM,
    });
    assert_eq!(rebuild_at(&online, 60).expect("snapshot"), folded(60));
    for n in [20, 30, 40] {
        match rebuild_at(&online, n) {
            Err(HistoryError::Compacted { oldest: 60, .. }) => {}
            other => panic!("online at {n}: {other:?}"),
        }
    }
}

/// A partition's leader moving (a fence's `PartitionChangeRecord`s) folds in time travel like
/// any record: across a snapshot taken between the partition's creation and the changes, online
/// and offline, every offset rebuilds to the fold of its prefix.
#[test]
fn partition_changes_rebuild_across_a_snapshot() {
    use crate::metadata::{LeaderRef, WriteRequest};
    let mut img = Image::new();
    let mut cmds = Vec::new();
    let mut run = |img: &mut Image, req| {
        let record = img.prepare(req).expect("prepares");
        let offset = img.last_offset + 1;
        let cmd = MetadataCommand {
            timestamp_ms: 1_000 + offset,
            record,
        };
        img.apply_entry(offset, TERM, &cmd).expect("applies");
        cmds.push(cmd);
    };
    for b in 1..=3 {
        run(
            &mut img,
            WriteRequest::RegisterBroker {
                broker_id: b,
                broker_host: format!("h{b}"),
                broker_port: 9092,
                security_protocol: SecurityProtocol::Plaintext,
                broker_status: BrokerStatus::Fenced,
                rack_id: None,
            },
        );
        run(
            &mut img,
            WriteRequest::ChangeBroker {
                broker_id: b,
                broker_host: None,
                broker_port: None,
                security_protocol: None,
                broker_status: Some(BrokerStatus::Unfenced),
            },
        );
    }
    run(&mut img, WriteRequest::CreateTopic { name: "t".into() });
    let t = img.topic_record("t").expect("topic").topic_uuid;
    run(
        &mut img,
        WriteRequest::CreatePartition {
            partition_id: 0,
            topic_uuid: t,
            replicas: vec![1, 2, 3],
            isr: vec![1, 2, 3],
            removing_replicas: vec![],
            adding_replicas: vec![],
            leader: LeaderRef::Id(1),
        },
    );
    let snap_at = img.last_offset;
    for leaving in [1, 2] {
        run(
            &mut img,
            WriteRequest::Reelect {
                topic_uuid: t,
                partition_id: 0,
                leaving: Some(leaving),
                avoid: vec![],
            },
        );
    }
    let n = cmds.len() as u64;
    let fold = |k: u64| {
        let mut image = Image::new();
        for (i, c) in cmds.iter().take(k as usize).enumerate() {
            let _ = image.apply_entry(i as u64 + 1, TERM, c);
        }
        image
    };

    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = SegmentLog::open(&d.path().join("log"), LogOptions::default()).expect("log");
    let entries: Vec<StoredEntry> = cmds
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let e = Entry::new(log_id(TERM, i as u64 + 1), EntryPayload::Normal(c.clone()));
            entry_to_stored(&e).expect("encode")
        })
        .collect();
    log.append(&entries).expect("append");
    log.sync().expect("sync");
    let store = SnapshotStore::open_keeping(&d.path().join("snapshots"), 10).expect("snapshots");
    store
        .write(snap_at, TERM, b"meta", &fold(snap_at).encode())
        .expect("snapshot");
    log.purge_upto(EntryId {
        index: snap_at,
        term: TERM,
    })
    .expect("purge");
    let (committed, _) = CommittedFile::open(d.path()).expect("committed");
    committed.save(EntryId {
        index: n,
        term: TERM,
    });
    committed.flush().expect("flush");
    let (log, store) = (Arc::new(log), Arc::new(store));
    let online = live(&log, &store, n);
    let offline = DataDirHistory::new(d.path());
    for k in snap_at..=n {
        assert_eq!(
            rebuild_at(&online, k).expect("online"),
            fold(k),
            "online at {k}"
        );
        assert_eq!(
            rebuild_at(&offline, k).expect("offline"),
            fold(k),
            "offline at {k}"
        );
    }
    let end = rebuild_at(&offline, n).expect("end");
    let p = end.partition(&t, 0).expect("partition");
    assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (3, 2, 2));
    assert_eq!(end.partition_changes().len(), 2);
}
