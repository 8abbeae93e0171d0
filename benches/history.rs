//! The cost of a time-travel rebuild at a million records (issue 20): the image as of an
//! offset, from the newest kept snapshot at or below it and the log after it.
//!
//! Run: `cargo bench --bench history` (release). The setup writes a log of `RECORDS` topic
//! records (a large image is mostly topics) in 64 MiB segments and one snapshot, `GAP` entries
//! below the end (the snapshot interval at a million entities, entities / 16), then measures:
//! - `from_snapshot`: decode that snapshot and fold the `GAP` entries after it (the worst case:
//!   any offset is at most one snapshot interval above a kept snapshot);
//! - `from_snapshot_and_json`: the same plus `/get_metadata`'s JSON (what the endpoint does);
//! - `snapshot_only`: the offset of the snapshot itself (decode only);
//! - `whole_log`: fold all `RECORDS` entries from the empty image (a log never compacted).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use openraft::entry::RaftEntry;
use openraft::EntryPayload;
use uuid::Uuid;

use yakt::metadata::record::TopicRecord;
use yakt::metadata::{Image, MetadataCommand, Record};
use yakt::raft::codec::entry_to_stored;
use yakt::raft::history::offline::DataDirHistory;
use yakt::raft::history::{answer_json, rebuild_at};
use yakt::raft::{log_id, Entry};
use yakt::storage::{CommittedFile, EntryId, LogOptions, SegmentLog, SnapshotStore};

const RECORDS: u64 = 1_000_000;
const GAP: u64 = 62_500;
const TERM: u64 = 1;

fn command(i: u64) -> MetadataCommand {
    MetadataCommand {
        timestamp_ms: 1_764_000_000_000 + i,
        record: Record::Topic(TopicRecord {
            name: format!("topic-{i:08}"),
            topic_uuid: Uuid::from_u128(u128::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
        }),
    }
}

/// Writes the data directory: the log, the snapshot at `RECORDS - GAP`, the committed file.
fn setup(dir: &std::path::Path) {
    let (log, _) = SegmentLog::open(&dir.join("log"), LogOptions::default()).expect("open log");
    let store = SnapshotStore::open(&dir.join("snapshots")).expect("snapshots");
    let snapshot_at = RECORDS - GAP;
    let mut image = Image::new();
    let mut batch = Vec::with_capacity(4096);
    for i in 1..=RECORDS {
        let cmd = command(i);
        if i <= snapshot_at {
            image.apply_entry(i, TERM, &cmd).expect("fold");
        }
        batch.push(
            entry_to_stored(&Entry::new(log_id(TERM, i), EntryPayload::Normal(cmd)))
                .expect("encode"),
        );
        if batch.len() == 4096 || i == RECORDS {
            log.append(&batch).expect("append");
            batch.clear();
        }
        if i == snapshot_at {
            store
                .write(snapshot_at, TERM, b"", &image.encode())
                .expect("snapshot");
        }
    }
    log.sync().expect("sync");
    let (committed, _) = CommittedFile::open(dir).expect("committed");
    committed.save(EntryId {
        index: RECORDS,
        term: TERM,
    });
    committed.flush().expect("flush");
}

fn rebuild(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    setup(dir.path());
    let source = DataDirHistory::new(dir.path());
    let mut g = c.benchmark_group("rebuild_1m");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(10));
    g.bench_function("from_snapshot", |b| {
        b.iter(|| rebuild_at(&source, RECORDS).expect("rebuild"))
    });
    g.bench_function("from_snapshot_and_json", |b| {
        b.iter(|| {
            let image = rebuild_at(&source, RECORDS).expect("rebuild");
            answer_json(&image).expect("json").len()
        })
    });
    g.bench_function("snapshot_only", |b| {
        b.iter(|| rebuild_at(&source, RECORDS - GAP).expect("rebuild"))
    });
    g.finish();
    drop(source);
    // The whole log from the empty image: remove the snapshot so nothing shortens the fold.
    for e in std::fs::read_dir(dir.path().join("snapshots")).expect("dir") {
        std::fs::remove_file(e.expect("entry").path()).expect("remove");
    }
    let source = DataDirHistory::new(dir.path());
    let mut g = c.benchmark_group("rebuild_1m");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(15));
    g.bench_function("whole_log", |b| {
        b.iter(|| rebuild_at(&source, RECORDS).expect("rebuild"))
    });
    g.finish();
}

criterion_group!(benches, rebuild);
criterion_main!(benches);
