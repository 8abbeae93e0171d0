//! The state machine's snapshot builds against apply and installs.
use std::time::Duration;

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use uuid::Uuid;

use super::*;
use crate::metadata::record::TopicRecord;
use crate::metadata::{MetadataCommand, Record};
use crate::raft::{log_id, Entry};

fn topic(offset: u64) -> MetadataCommand {
    MetadataCommand {
        timestamp_ms: offset,
        record: Record::Topic(TopicRecord {
            name: format!("t{offset}"),
            topic_uuid: Uuid::from_u128(u128::from(offset)),
        }),
    }
}

async fn apply(sm: &mut StateMachine, offsets: std::ops::RangeInclusive<u64>) {
    let entries: Vec<Result<EntryResponder<TypeConfig>, io::Error>> = offsets
        .map(|i| {
            Ok((
                Entry::new(log_id(1, i), EntryPayload::Normal(topic(i))),
                None,
            ))
        })
        .collect();
    sm.apply(futures::stream::iter(entries))
        .await
        .expect("applies");
}

/// The snapshot a builder writes is the image at the offset the builder was made at, though
/// apply went on meanwhile, and building it never takes the image's lock: here the test
/// holds the write lock (as apply does) for the whole build. Encoding under the lock again
/// would wait forever (the deadline fails the test); encoding the shared image instead of a
/// copy would write the entries applied after the builder was made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Holding the image's lock across the build is the point: the build must not need it.
#[allow(clippy::await_holding_lock)]
async fn a_snapshot_is_built_from_its_own_copy_while_apply_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SnapshotStore::open(dir.path()).expect("snapshot store"));
    let mut sm = StateMachine::open(store.clone(), None).expect("opens");
    apply(&mut sm, 1..=3).await;
    let mut builder = sm.get_snapshot_builder().await;
    // Apply goes on while the builder exists, changing the maps the copy shares.
    apply(&mut sm, 4..=6).await;
    let shared = sm.shared();
    let snapshot = {
        let live = shared.write();
        assert_eq!(live.image.all_topics().count(), 6, "apply went on");
        // On a task of its own: if it blocked on the lock, this deadline still runs out.
        let build = tokio::spawn(async move { builder.build_snapshot().await });
        let built = tokio::time::timeout(Duration::from_secs(60), build)
            .await
            .expect("building a snapshot waited for the image's lock")
            .expect("the build task ran")
            .expect("builds");
        drop(live);
        built
    };
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 3)));
    let written = Image::decode(snapshot.snapshot.get_ref()).expect("decodes");
    let expected: Vec<(u64, MetadataCommand)> = (1..=3).map(|i| (i, topic(i))).collect();
    let mut at_3 = Image::fold(expected.iter().map(|(o, c)| (*o, c)));
    at_3.last_epoch = 1;
    assert_eq!(written, at_3, "the snapshot is the image as of offset 3");
    let file = store.latest().expect("lists").expect("a snapshot file");
    assert_eq!(file.offset, 3);
    assert_eq!(
        Image::decode(&store.read(&file).expect("reads").payload).expect("decodes"),
        at_3
    );
    // And the live image still has everything applied.
    let now = shared.read();
    assert_eq!(now.image.all_topics().count(), 6);
    assert_eq!(now.applied.offset, 6);
}

/// openraft's state-machine worker spawns `build_snapshot` and goes on with its next
/// command, which may install a newer snapshot from the leader while the build still
/// encodes. The build that finishes last must not make the node report (in `/status`, the
/// snapshot metric, and the snapshot trigger's base) its older snapshot as the newest one.
#[tokio::test]
async fn a_build_finishing_after_a_newer_install_does_not_move_the_snapshot_point_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SnapshotStore::open(dir.path()).expect("snapshot store"));
    let mut sm = StateMachine::open(store.clone(), None).expect("opens");
    apply(&mut sm, 1..=3).await;
    let mut slow_build = sm.get_snapshot_builder().await;

    // The leader's snapshot at 6, built by another node.
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other_store = Arc::new(SnapshotStore::open(other_dir.path()).expect("store"));
    let mut other = StateMachine::open(other_store, None).expect("opens");
    apply(&mut other, 1..=6).await;
    let leaders = other
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("builds");

    sm.install_snapshot(
        &leaders.meta,
        std::io::Cursor::new(leaders.snapshot.into_inner()),
    )
    .await
    .expect("installs");
    assert_eq!(sm.shared().snapshot().map(|p| p.offset), Some(6));

    let built = slow_build.build_snapshot().await.expect("builds");
    assert_eq!(built.meta.last_log_id, Some(log_id(1, 3)));
    assert_eq!(
        sm.shared().snapshot().map(|p| p.offset),
        Some(6),
        "the installed snapshot is still the newest this node holds"
    );
    assert_eq!(store.latest().expect("lists").map(|i| i.offset), Some(6));
    let files: Vec<u64> = store
        .list()
        .expect("lists")
        .iter()
        .map(|i| i.offset)
        .collect();
    assert_eq!(
        files,
        vec![6],
        "the late build wrote no file the purged log cannot back"
    );
}

/// The leader's proposer shares the applied image again when `records_applied` equals the count
/// at its last copy plus the records it proposed since (`proposer::Speculative::share_applied`).
/// Raft appends entries the proposer never submits (a new term's blank entry, membership
/// changes while nodes join); counting them would let that equality hold while a proposed
/// record is still in flight, and the speculative image would lose it. A record refused at
/// apply is still a proposed record that applied, and counts.
#[tokio::test]
async fn records_applied_counts_record_entries_only_refused_ones_included() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SnapshotStore::open(dir.path()).expect("snapshot store"));
    let mut sm = StateMachine::open(store, None).expect("opens");
    let membership = openraft::Membership::new_with_defaults(
        vec![std::collections::BTreeSet::from([1, 2])],
        [1, 2, 3],
    );
    let mut duplicate = topic(3);
    duplicate.timestamp_ms = 5;
    let entries: Vec<Result<EntryResponder<TypeConfig>, io::Error>> = vec![
        Ok((Entry::new(log_id(1, 1), EntryPayload::Blank), None)),
        Ok((
            Entry::new(log_id(1, 2), EntryPayload::Membership(membership)),
            None,
        )),
        Ok((
            Entry::new(log_id(1, 3), EntryPayload::Normal(topic(3))),
            None,
        )),
        Ok((Entry::new(log_id(1, 4), EntryPayload::Blank), None)),
        Ok((
            Entry::new(log_id(1, 5), EntryPayload::Normal(duplicate)),
            None,
        )),
    ];
    sm.apply(futures::stream::iter(entries))
        .await
        .expect("applies");
    let at = sm.shared().read().clone();
    assert_eq!(at.applied.offset, 5);
    assert_eq!(
        at.image.all_topics().count(),
        1,
        "the first record applied, the duplicate was refused"
    );
    assert!(at.image.topic_record("t3").is_some());
    assert_eq!(
        at.records_applied, 2,
        "two record entries (the second refused as a duplicate); the blank and membership \
         entries are Raft's own"
    );
}
