//! Behavioural tests of the segment log (round trips, rolling, recovery, group commit).

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn entry(index: u64, term: u64, ts: u64, len: usize) -> StoredEntry {
    StoredEntry {
        index,
        term,
        timestamp_ms: ts,
        payload: (0..len).map(|i| (index as usize * 31 + i) as u8).collect(),
    }
}

fn small() -> LogOptions {
    LogOptions {
        segment_bytes: 4096,
    }
}

fn open(dir: &Path) -> (SegmentLog, RecoveryReport) {
    SegmentLog::open(dir, small()).expect("open")
}

fn fill(log: &SegmentLog, from: u64, to: u64, len: usize) -> Vec<StoredEntry> {
    let es: Vec<_> = (from..=to)
        .map(|i| entry(i, 1 + i / 50, 1_000 + i * 10, len))
        .collect();
    for chunk in es.chunks(7) {
        log.append(chunk).expect("append");
    }
    es
}

#[test]
fn log_is_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<SegmentLog>();
}

#[test]
fn append_read_reopen_round_trip() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, rep) = open(d.path());
    assert_eq!(rep.truncated_bytes, 0);
    assert_eq!(
        (log.first_index(), log.last_entry_id(), log.last_purged()),
        (None, None, None)
    );
    let es = fill(&log, 1, 300, 100);
    assert!(
        log.segments().len() > 5,
        "small segments roll: {}",
        log.segments().len()
    );
    assert_eq!(log.read_range(0, u64::MAX, None).expect("read"), es);
    assert_eq!(
        log.read_range(10, 20, None).expect("read"),
        es[9..19].to_vec()
    );
    assert_eq!(
        log.read_range(299, 1000, None).expect("read"),
        es[298..].to_vec()
    );
    assert!(log.read_range(301, 400, None).expect("read").is_empty());
    // max_bytes: 350 bytes of 100-byte payloads = 3 entries; tiny limit still returns one.
    assert_eq!(log.read_range(5, 100, Some(350)).expect("read").len(), 3);
    assert_eq!(log.read_range(5, 100, Some(1)).expect("read").len(), 1);
    assert_eq!(
        log.last_entry_id(),
        Some(EntryId {
            index: 300,
            term: 7
        })
    );
    log.sync().expect("sync");
    drop(log);
    let (log, rep) = open(d.path());
    assert_eq!(rep.truncated_bytes, 0);
    assert_eq!(rep.entries, 300);
    assert_eq!(log.read_range(0, u64::MAX, None).expect("read"), es);
    assert_eq!(log.first_index(), Some(1));
    assert_eq!(log.durable_index(), Some(300));
    for s in log.segments() {
        let name = s
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        assert_eq!(name, format!("{:020}.log", s.base_index));
        assert_eq!(
            fs::metadata(&s.path).expect("stat").len(),
            4096,
            "preallocated"
        );
    }
}

#[test]
fn append_rejects_gaps_and_accepts_any_first_index() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    log.append(&[entry(0, 0, 0, 3)]).expect("first append at 0");
    assert!(matches!(
        log.append(&[entry(2, 1, 0, 3)]),
        Err(StorageError::Invalid(_))
    ));
    assert!(matches!(
        log.append(&[entry(1, 1, 0, 3), entry(3, 1, 0, 3)]),
        Err(StorageError::Invalid(_))
    ));
    log.append(&[entry(1, 1, 0, 3), entry(2, 1, 0, 3)])
        .expect("contiguous");
    assert_eq!(log.last_entry_id(), Some(EntryId { index: 2, term: 1 }));
}

#[test]
fn oversized_entry_gets_its_own_segment() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    fill(&log, 1, 3, 10);
    let big = entry(4, 1, 5, 10_000);
    log.append(std::slice::from_ref(&big)).expect("append big");
    fill(&log, 5, 6, 10);
    let segs = log.segments();
    assert_eq!(segs.len(), 3);
    assert!(segs[1].capacity >= 10_040 && segs[1].entries == 1);
    drop(log);
    let (log, _) = open(d.path());
    assert_eq!(log.read_range(4, 5, None).expect("read"), vec![big]);
    assert_eq!(log.last_entry_id().map(|e| e.index), Some(6));
}

#[test]
fn truncate_after_then_append_and_reopen() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    let es = fill(&log, 1, 200, 100);
    let before = log.segments().len();
    log.truncate_after(Some(57)).expect("truncate");
    assert!(log.segments().len() < before);
    assert_eq!(log.last_entry_id().map(|e| e.index), Some(57));
    assert_eq!(log.durable_index(), Some(57));
    assert_eq!(
        log.read_range(0, u64::MAX, None).expect("read"),
        es[..57].to_vec()
    );
    let more: Vec<_> = (58..=70).map(|i| entry(i, 9, 5_000 + i, 50)).collect();
    log.append(&more).expect("append after truncate");
    drop(log);
    let (log, rep) = open(d.path());
    assert_eq!(rep.truncated_bytes, 0, "truncation left no garbage");
    let all = log.read_range(0, u64::MAX, None).expect("read");
    assert_eq!(all.len(), 70);
    assert_eq!(&all[57..], &more[..]);
    log.truncate_after(None).expect("truncate all");
    assert_eq!((log.first_index(), log.last_entry_id()), (None, None));
    assert!(log.segments().is_empty());
    log.append(&[entry(500, 9, 0, 1)])
        .expect("empty log without purge accepts any index");
}

#[test]
fn purge_then_reopen_and_purge_beyond_end() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    let es = fill(&log, 1, 200, 100);
    let segs = log.segments().len();
    log.purge_upto(EntryId {
        index: 100,
        term: 2,
    })
    .expect("purge");
    assert!(log.segments().len() < segs);
    assert_eq!(log.first_index(), Some(101));
    assert_eq!(
        log.last_purged(),
        Some(EntryId {
            index: 100,
            term: 2
        })
    );
    assert!(matches!(
        log.read_range(0, 105, None),
        Err(StorageError::Purged {
            start: 0,
            last_purged: 100
        })
    ));
    assert!(matches!(
        log.read_range(100, 105, None),
        Err(StorageError::Purged { start: 100, .. })
    ));
    assert_eq!(
        log.read_range(101, 105, None).expect("read"),
        es[100..104].to_vec()
    );
    drop(log);
    let (log, _) = open(d.path());
    assert_eq!(log.first_index(), Some(101));
    assert_eq!(
        log.last_purged(),
        Some(EntryId {
            index: 100,
            term: 2
        })
    );
    // Purge beyond the end (snapshot install): everything gone, next append at 1001.
    log.purge_upto(EntryId {
        index: 1000,
        term: 8,
    })
    .expect("purge beyond");
    assert_eq!((log.first_index(), log.last_entry_id()), (None, None));
    assert!(log.segments().is_empty());
    assert!(matches!(
        log.append(&[entry(201, 8, 0, 1)]),
        Err(StorageError::Invalid(_))
    ));
    log.append(&[entry(1001, 8, 7, 10), entry(1002, 8, 8, 10)])
        .expect("append after purge");
    assert_eq!(log.segments()[0].base_index, 1001);
    log.sync().expect("sync");
    drop(log);
    let (log, _) = open(d.path());
    assert_eq!(log.first_index(), Some(1001));
    assert_eq!(
        log.last_entry_id(),
        Some(EntryId {
            index: 1002,
            term: 8
        })
    );
    assert_eq!(
        log.last_purged(),
        Some(EntryId {
            index: 1000,
            term: 8
        })
    );
    log.truncate_after(None).expect("truncate all");
    assert_eq!(
        log.last_purged(),
        Some(EntryId {
            index: 1000,
            term: 8
        }),
        "kept"
    );
    assert!(matches!(
        log.append(&[entry(5, 8, 0, 1)]),
        Err(StorageError::Invalid(_))
    ));
    log.append(&[entry(1001, 9, 0, 1)])
        .expect("append at last_purged + 1");
}

#[test]
fn interrupted_purge_is_finished_at_open() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    fill(&log, 1, 200, 100);
    let first_seg = log.segments()[0].path.clone();
    let copy = fs::read(&first_seg).expect("read");
    log.purge_upto(EntryId {
        index: 100,
        term: 2,
    })
    .expect("purge");
    drop(log);
    // Simulate a crash after last_purged was persisted but before the deletion.
    fs::write(&first_seg, copy).expect("restore");
    let (log, rep) = open(d.path());
    assert_eq!(rep.removed_purged_segments, vec![first_seg]);
    assert_eq!(log.first_index(), Some(101));
}

#[test]
fn time_index_matches_brute_force() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    let mut ts = 1_000u64;
    let mut es = Vec::new();
    for i in 1..=400u64 {
        let t = if i % 7 == 0 {
            0
        } else {
            ts += i % 3;
            ts
        };
        es.push(entry(i, 1, t, (i % 90) as usize));
    }
    log.append(&es).expect("append");
    let brute = |target: u64, from: u64| {
        es.iter()
            .find(|e| e.index >= from && e.timestamp_ms != 0 && e.timestamp_ms >= target)
            .map(|e| e.index)
    };
    for target in (0..ts + 5).step_by(3).chain([0, 1, 999, 1000, ts, ts + 1]) {
        assert_eq!(
            log.find_index_by_timestamp(target).expect("find"),
            brute(target, 1),
            "ts {target}"
        );
    }
    log.purge_upto(EntryId {
        index: 150,
        term: 1,
    })
    .expect("purge");
    log.truncate_after(Some(350)).expect("truncate");
    let es2: Vec<_> = es.iter().filter(|e| e.index <= 350).cloned().collect();
    let brute2 = |target: u64| {
        es2.iter()
            .find(|e| e.index > 150 && e.timestamp_ms != 0 && e.timestamp_ms >= target)
            .map(|e| e.index)
    };
    for target in (0..ts + 5).step_by(5) {
        assert_eq!(
            log.find_index_by_timestamp(target).expect("find"),
            brute2(target),
            "ts {target}"
        );
    }
    drop(log);
    let (log, _) = open(d.path());
    for target in (0..ts + 5).step_by(5) {
        assert_eq!(
            log.find_index_by_timestamp(target).expect("find"),
            brute2(target),
            "ts {target} after reopen"
        );
    }
}

/// Newest segment and the offset of a frame inside it.
fn newest(log: &SegmentLog) -> SegmentInfo {
    log.segments().last().cloned().expect("a segment")
}

#[test]
fn flipped_byte_in_older_segment_refuses_to_open() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    fill(&log, 1, 200, 100);
    let seg = log.segments()[1].clone();
    drop(log);
    let offset = 3 * 140; // start of the fourth frame (40-byte header + 100-byte payload)
    let f = fs::OpenOptions::new()
        .write(true)
        .open(&seg.path)
        .expect("open");
    let mut b = [0u8; 1];
    fs::File::open(&seg.path)
        .expect("open")
        .read_exact_at(&mut b, offset + 60)
        .expect("read");
    f.write_all_at(&[b[0] ^ 0x10], offset + 60).expect("flip");
    match SegmentLog::open(d.path(), small()) {
        Err(StorageError::DamagedLog {
            path,
            offset: at,
            reason,
            ..
        }) => {
            assert_eq!(path, seg.path);
            assert_eq!(at, offset);
            assert!(reason.contains("crc"), "{reason}");
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn bad_frame_followed_by_valid_one_in_newest_is_corruption() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    fill(&log, 1, 10, 100);
    let seg = newest(&log);
    drop(log);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(&seg.path)
        .expect("open");
    f.write_all_at(&[0xAA], 140 * 4 + 50).expect("flip");
    match SegmentLog::open(d.path(), small()) {
        Err(StorageError::DamagedLog { path, offset, .. }) => {
            assert_eq!((path, offset), (seg.path, 140 * 4))
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn index_discontinuity_is_corruption() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    fill(&log, 1, 100, 100);
    let segs = log.segments();
    drop(log);
    fs::remove_file(&segs[1].path).expect("remove");
    assert!(matches!(
        SegmentLog::open(d.path(), small()),
        Err(StorageError::DamagedLog { offset: 0, .. })
    ));
}

#[test]
fn torn_first_frame_of_new_segment_and_empty_segment_removed() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    fill(&log, 1, 40, 100);
    let seg = newest(&log);
    drop(log);
    // A crash after rolling: a new empty segment, and one with only a torn frame.
    let next = seg.last_index.expect("last") + 1;
    let p = d.path().join(format!("{next:020}.log"));
    let mut frame = Vec::new();
    // Its one frame crosses the first sector boundary; the second sector was never written.
    frame::encode_frame(next, 1, 5, &[1u8; 700], &mut frame).expect("encode");
    frame.truncate(512);
    frame.resize(4096, 0);
    fs::write(&p, &frame).expect("write");
    let (log, rep) = open(d.path());
    assert_eq!(rep.truncated_bytes, 512);
    assert_eq!(rep.removed_empty_segments, vec![p.clone()]);
    assert!(!p.exists());
    assert_eq!(log.last_entry_id().map(|e| e.index), Some(40));
    log.append(&[entry(41, 1, 0, 100)])
        .expect("append continues");
}

#[test]
fn group_commit_batches_callbacks() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = SegmentLog::open(d.path(), LogOptions::default()).expect("open");
    let log = Arc::new(log);
    let done = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let n = 2000u64;
    for i in 1..=n {
        log.append(&[entry(i, 1, i, 50)]).expect("append");
        let done = Arc::clone(&done);
        let tx = tx.clone();
        log.on_durable(
            i,
            Box::new(move |r| {
                assert!(r.is_ok());
                done.fetch_add(1, Ordering::SeqCst);
                let _ = tx.send(i);
            }),
        );
    }
    for _ in 0..n {
        rx.recv_timeout(Duration::from_secs(20))
            .expect("callback ran");
    }
    assert_eq!(done.load(Ordering::SeqCst), n as usize);
    assert!(log.durable_index() >= Some(n));
    let syncs = log.sync_count();
    assert!(
        syncs >= 1 && syncs < n / 10,
        "{syncs} syncs for {n} callbacks"
    );
}

#[test]
fn concurrent_sync_callers_share_rounds() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = SegmentLog::open(d.path(), LogOptions::default()).expect("open");
    let log = Arc::new(log);
    let writer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for i in 1..=2000u64 {
                log.append(&[entry(i, 1, 0, 64)]).expect("append");
            }
        })
    };
    let syncers: Vec<_> = (0..8)
        .map(|_| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let last_before = log.last_entry_id().map(|e| e.index);
                    let d = log.sync().expect("sync");
                    assert!(d >= last_before, "sync covers what was appended before it");
                }
            })
        })
        .collect();
    writer.join().expect("writer");
    for s in syncers {
        s.join().expect("syncer");
    }
    assert_eq!(log.sync().expect("sync"), Some(2000));
    assert!(
        log.sync_count() <= 401,
        "{} rounds for 400 sync calls",
        log.sync_count()
    );
}

#[test]
fn readers_run_concurrently_with_appends() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    let log = Arc::new(log);
    let w = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || fill(&log, 1, 500, 60))
    };
    let mut next = 1;
    while next <= 500 {
        for e in log.read_range(next, next + 50, None).expect("read") {
            assert_eq!(e.index, next);
            assert_eq!(e, entry(next, 1 + next / 50, 1_000 + next * 10, 60));
            next += 1;
        }
    }
    w.join().expect("writer");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// What a torn write leaves in the last frame of the newest segment (zeros from a sector
    /// boundary inside it, or the file cut short inside it) reopens at the last whole entry;
    /// garbage over the end of a complete last frame is no torn write and refuses to open.
    #[test]
    fn torn_tail_reopens_at_last_whole_entry(n in 1u64..40, sizes in proptest::collection::vec(0usize..300, 40), cut_frac in 0.0f64..1.0, mode in 0u8..3) {
        let d = tempfile::tempdir().expect("tempdir");
        let (log, _) = open(d.path());
        let es: Vec<_> = (1..=n).map(|i| entry(i, 1, i, sizes[(i - 1) as usize])).collect();
        log.append(&es).expect("append");
        let seg = newest(&log);
        let positions: Vec<u64> = {
            let mut p = 0;
            let mut v = Vec::new();
            for e in es.iter().filter(|e| e.index >= seg.base_index) {
                v.push(p);
                p += 40 + e.payload.len() as u64;
            }
            v
        };
        drop(log);
        let last_pos = *positions.last().expect("frame");
        let cut = last_pos + 1 + ((seg.bytes - last_pos - 1) as f64 * cut_frac) as u64;
        let f = fs::OpenOptions::new().write(true).open(&seg.path).expect("open");
        match mode {
            0 => {
                // The sectors from a boundary inside the last frame were never written.
                let boundary = cut.div_ceil(512) * 512;
                prop_assume!(boundary < seg.bytes);
                let before = fs::read(&seg.path).expect("read");
                prop_assume!(before[boundary as usize..seg.bytes as usize].iter().any(|&b| b != 0));
                f.write_all_at(&vec![0; (seg.bytes - boundary) as usize], boundary).expect("zero");
            }
            1 => f.set_len(cut).expect("cut the file"),
            _ => {
                // After the length field: a garbage length that runs past the end of the file
                // reads as a frame cut short (see segments-format.md).
                let cut = cut.max(last_pos + 12);
                f.write_all_at(&vec![0x5A; (seg.bytes - cut) as usize], cut).expect("garbage");
            }
        }
        drop(f);
        if mode == 2 {
            let refused = matches!(
                SegmentLog::open(d.path(), small()),
                Err(StorageError::DamagedLog { offset, .. }) if offset == last_pos
            );
            prop_assert!(refused, "garbage over a complete last frame must refuse");
            return Ok(());
        }
        let (log, rep) = open(d.path());
        let want_last = n - 1;
        prop_assert_eq!(log.last_entry_id().map(|e| e.index).unwrap_or(0), want_last);
        prop_assert!(rep.truncated_bytes > 0);
        prop_assert_eq!(log.read_range(0, u64::MAX, None).expect("read"), es[..want_last as usize].to_vec());
        let again = es[want_last as usize].clone();
        log.append(std::slice::from_ref(&again)).expect("append again");
        drop(log);
        let (log, rep) = open(d.path());
        prop_assert_eq!(rep.truncated_bytes, 0);
        prop_assert_eq!(log.read_range(0, u64::MAX, None).expect("read"), es.clone());
    }

    /// Random operation sequences agree with a simple in-memory model, also across reopen.
    #[test]
    fn model_check(ops in proptest::collection::vec((0u8..4, 0u64..60, 1usize..200), 1..25)) {
        let d = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = open(d.path());
        let mut model: Vec<StoredEntry> = Vec::new();
        let mut purged: Option<u64> = None;
        for (op, k, len) in ops {
            let next = model.last().map(|e| e.index + 1).or(purged.map(|p| p + 1)).unwrap_or(1);
            match op {
                0 => {
                    let es: Vec<_> = (next..next + k % 20 + 1).map(|i| entry(i, 1, i * 2, len)).collect();
                    log.append(&es).expect("append");
                    model.extend(es);
                }
                1 => {
                    let at = next.saturating_sub(k % 10 + 1);
                    log.truncate_after(Some(at)).expect("truncate");
                    model.retain(|e| e.index <= at);
                }
                2 => {
                    let upto = purged.unwrap_or(0).max(next.saturating_sub(1).saturating_sub(k % 30)) + k % 3;
                    log.purge_upto(EntryId { index: upto, term: 1 }).expect("purge");
                    model.retain(|e| e.index > upto);
                    purged = Some(upto);
                }
                _ => {
                    drop(log);
                    log = open(d.path()).0;
                }
            }
            let from = purged.map_or(0, |p| p + 1);
            prop_assert_eq!(log.read_range(from, u64::MAX, None).expect("read"), model.clone());
            if let Some(p) = purged {
                // A read from at or below the purge point is told so, never moved up silently.
                let below = log.read_range(p.saturating_sub(k % 5), u64::MAX, None);
                prop_assert!(
                    matches!(below, Err(StorageError::Purged { last_purged, .. }) if last_purged == p),
                    "{:?}", below
                );
            }
            prop_assert_eq!(log.first_index(), model.first().map(|e| e.index));
            prop_assert_eq!(log.last_purged().map(|p| p.index), purged);
        }
    }
}

#[test]
fn on_durable_waits_for_future_index_and_drop_fails_the_rest() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    let (tx, rx) = mpsc::channel();
    let t1 = tx.clone();
    log.on_durable(5, Box::new(move |r| t1.send((5, r.is_ok())).expect("send")));
    std::thread::sleep(Duration::from_millis(30));
    assert!(rx.try_recv().is_err(), "index 5 not appended yet");
    fill(&log, 1, 5, 10);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).expect("callback"),
        (5, true)
    );
    assert_eq!(log.durable_index(), Some(5));
    let t2 = tx.clone();
    log.on_durable(
        100,
        Box::new(move |r| t2.send((100, r.is_ok())).expect("send")),
    );
    drop(log);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).expect("callback"),
        (100, false)
    );
}

#[test]
fn reads_proceed_while_syncs_run() {
    // Reads make progress while append+sync run back to back (a smoke test: it hangs or crawls
    // if reads queue behind fsync, but it does not time individual reads).
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = SegmentLog::open(d.path(), LogOptions::default()).expect("open");
    let log = Arc::new(log);
    fill(&log, 1, 100, 100);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let syncer = {
        let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut i = 101;
            while !stop.load(Ordering::Relaxed) {
                log.append(&[entry(i, 9, 0, 4096)]).expect("append");
                log.sync().expect("sync");
                i += 1;
            }
        })
    };
    for _ in 0..2000 {
        assert_eq!(log.read_range(1, 11, None).expect("read").len(), 10);
    }
    stop.store(true, Ordering::Relaxed);
    syncer.join().expect("syncer");
}

/// Flips `n` bytes of a file at `at`.
fn flip(path: &Path, at: u64, n: usize) {
    let mut b = vec![0u8; n];
    fs::File::open(path)
        .expect("open")
        .read_exact_at(&mut b, at)
        .expect("read");
    for x in &mut b {
        *x ^= 0x5a;
    }
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open")
        .write_all_at(&b, at)
        .expect("write");
}

#[test]
fn flipped_bytes_in_the_last_frame_refuse_to_open_naming_file_offset_and_index() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    fill(&log, 1, 10, 100);
    let seg = newest(&log);
    drop(log);
    // Three bytes in the middle of the payload of the last frame (index 10, at 9 * 140).
    flip(&seg.path, 9 * 140 + 40 + 50, 3);
    let err = SegmentLog::open(d.path(), small())
        .map(|_| ())
        .expect_err("must refuse");
    match &err {
        StorageError::DamagedLog {
            path,
            offset,
            index,
            ..
        } => assert_eq!((path, *offset, *index), (&seg.path, 9 * 140, Some(10))),
        other => panic!("expected DamagedLog, got {other:?}"),
    }
    let text = err.to_string();
    for needle in [
        seg.path.display().to_string(),
        "at byte 1260".into(),
        "entry index 10".into(),
        "yakt member remove".into(),
        "wipe its data directory".into(),
    ] {
        assert!(text.contains(&needle), "{needle:?} missing from: {text}");
    }
    // Nothing was cut: the bytes are still there for inspection.
    let bytes = fs::read(&seg.path).expect("read");
    assert!(bytes[9 * 140..10 * 140].iter().any(|&b| b != 0));
}

#[test]
fn a_last_frame_zero_from_a_sector_boundary_is_cut_at_open() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    fill(&log, 1, 10, 100);
    // Frames 1..=10 fill 0..1400; entry 11 (300-byte payload) spans 1400..1740, across the
    // sector boundary at 1536.
    log.append(&[entry(11, 1, 5, 300)]).expect("append");
    let seg = newest(&log);
    drop(log);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(&seg.path)
        .expect("open");
    f.write_all_at(&[0u8; 1740 - 1536], 1536).expect("zero");
    drop(f);
    let (log, rep) = open(d.path());
    assert_eq!(rep.truncated.len(), 1);
    assert_eq!(rep.truncated[0].offset, 1400);
    assert_eq!(log.last_entry_id().map(|e| e.index), Some(10));
    // A flipped bit in that never-written last sector is no torn write: refuse.
    log.append(&[entry(11, 1, 5, 300)]).expect("append");
    drop(log);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(&seg.path)
        .expect("open");
    f.write_all_at(&[0u8; 1740 - 1536], 1536).expect("zero");
    f.write_all_at(&[0x08], 1600).expect("flip a bit");
    drop(f);
    assert!(matches!(
        SegmentLog::open(d.path(), small()),
        Err(StorageError::DamagedLog {
            offset: 1400,
            index: Some(11),
            ..
        })
    ));
}

/// Writes the on-disk states a crash inside `truncate_after(Some(keep))` can leave, after the
/// intent is saved: nothing done yet, later segments partly deleted, the tail's zeroing partly
/// written back (a zeroed sector with frames after it that were not zeroed). Each must open as
/// the prefix `..=keep`.
#[test]
fn truncation_interrupted_anywhere_reopens_as_a_prefix() {
    let keep = 45u64;
    for state in 0..4 {
        let d = tempfile::tempdir().expect("tempdir");
        let (log, _) = open(d.path());
        let es = fill(&log, 1, 100, 100);
        log.sync().expect("sync");
        let segs = log.segments();
        drop(log);
        let seg_of_keep = segs
            .iter()
            .find(|s| s.first_index <= Some(keep) && s.last_index >= Some(keep))
            .expect("segment of keep")
            .clone();
        // The intent, as truncate_after saves it first.
        truncation::TruncationIntent::open(d.path())
            .expect("intent")
            .save(Some(keep))
            .expect("save");
        let later: Vec<_> = segs
            .iter()
            .filter(|s| s.base_index > keep)
            .cloned()
            .collect();
        assert!(later.len() >= 2, "the test needs later segments");
        match state {
            0 => {}
            1 => {
                fs::remove_file(&later.last().expect("newest").path).expect("rm");
            }
            2 | 3 => {
                for s in &later {
                    fs::remove_file(&s.path).expect("rm");
                }
                // A zeroed sector in the middle of the cut range, frames intact after it.
                let keep_end = (keep - seg_of_keep.base_index + 1) * 140;
                let hole = keep_end.div_ceil(512) * 512 + if state == 3 { 512 } else { 0 };
                assert!(hole + 512 < seg_of_keep.bytes, "frames after the hole");
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(&seg_of_keep.path)
                    .expect("open");
                f.write_all_at(&[0u8; 512], hole).expect("zero");
            }
            _ => unreachable!(),
        }
        if state == 3 {
            // Without the intent the same bytes are corruption (zeros followed by frames).
            let intent = d.path().join("truncating");
            let saved = fs::read(&intent).expect("intent bytes");
            fs::remove_file(&intent).expect("rm intent");
            assert!(matches!(
                SegmentLog::open(d.path(), small()),
                Err(StorageError::DamagedLog { .. })
            ));
            fs::write(&intent, saved).expect("restore intent");
        }
        let (log, _) = open(d.path());
        assert_eq!(
            log.read_range(0, u64::MAX, None).expect("read"),
            es[..keep as usize].to_vec(),
            "state {state}"
        );
        assert!(!d.path().join("truncating").exists(), "intent cleared");
        log.append(&[entry(keep + 1, 9, 1, 10)])
            .expect("append after");
        drop(log);
        let (log, rep) = open(d.path());
        assert_eq!(rep.truncated_bytes, 0);
        assert_eq!(log.last_entry_id().map(|e| e.index), Some(keep + 1));
    }
}

#[test]
fn truncate_after_leaves_no_intent_and_reopens() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    let es = fill(&log, 1, 100, 100);
    log.truncate_after(Some(33)).expect("truncate");
    assert!(!d.path().join("truncating").exists());
    drop(log);
    let (log, _) = open(d.path());
    assert_eq!(
        log.read_range(0, u64::MAX, None).expect("read"),
        es[..33].to_vec()
    );
}

#[test]
fn rolling_to_a_new_segment_syncs_the_old_one_first() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    // 29 frames of 140 bytes fill 4060 of 4096 bytes; the 30th rolls.
    fill(&log, 1, 29, 100);
    assert_eq!(log.segments().len(), 1);
    let before = log.sync_count();
    assert_eq!(log.durable_index(), None, "nothing synced yet");
    log.append(&[entry(30, 1, 1, 100)]).expect("append");
    assert_eq!(log.segments().len(), 2, "rolled");
    assert_eq!(log.sync_count(), before + 1, "one fdatasync at the roll");
    assert_eq!(
        log.durable_index(),
        Some(29),
        "the old segment is durable, the new entry not yet"
    );
}

#[test]
fn the_first_failed_fdatasync_poisons_the_log() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    fill(&log, 1, 5, 100);
    log.sync().expect("sync");
    fill(&log, 6, 8, 100);
    log.inject_sync_failure();
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    log.on_durable(8, Box::new(move |r| tx.send(r.is_ok()).expect("send")));
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)),
        Ok(false),
        "the failing round's callback errs"
    );
    assert!(log.failed());
    // No later call reports durability, even for indexes synced before the failure, and
    // even though the device would now succeed (the hook fails only once).
    assert!(log.sync().is_err());
    log.on_durable(3, Box::new(move |r| tx2.send(r.is_ok()).expect("send")));
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(false));
    assert!(log.append(&[entry(9, 1, 1, 10)]).is_err(), "append refuses");
    assert!(log.truncate_after(Some(4)).is_err(), "truncate refuses");
    // Reopening (what a restarted process does) recovers from the disk.
    drop(log);
    let (log, _) = open(d.path());
    assert!(!log.failed());
    assert_eq!(log.last_entry_id().map(|e| e.index), Some(8));
}

#[test]
fn a_truncation_that_fails_after_its_intent_poisons_and_recovery_finishes_it() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    let es = fill(&log, 1, 20, 100);
    log.inject_sync_failure();
    assert!(log.truncate_after(Some(12)).is_err());
    assert!(log.failed(), "a failed truncation stops every later write");
    assert!(log.append(&[entry(13, 2, 1, 10)]).is_err());
    assert!(d.path().join("truncating").exists(), "the intent stays");
    drop(log);
    let (log, _) = open(d.path());
    assert_eq!(
        log.read_range(0, u64::MAX, None).expect("read"),
        es[..12].to_vec()
    );
    assert!(!d.path().join("truncating").exists());
}

#[test]
fn the_acknowledged_watermark_follows_syncs_and_truncations() {
    let d = tempfile::tempdir().expect("tempdir");
    {
        let (log, _) = open(d.path());
        assert_eq!(log.acked_at_open(), None);
        fill(&log, 1, 20, 30);
        log.sync().expect("sync");
    }
    let (log, _) = open(d.path());
    assert_eq!(
        log.acked_at_open().map(|a| a.index),
        Some(20),
        "every synced entry counts"
    );
    log.truncate_after(Some(12)).expect("truncate");
    drop(log);
    let (log, _) = open(d.path());
    assert_eq!(
        log.acked_at_open().map(|a| a.index),
        Some(12),
        "a truncation brings the watermark down first"
    );
    drop(log);
    // A log that lost synced entries (a disk that lied) ends before its watermark.
    let seg = d.path().join(segment_file_name(1));
    let len = fs::metadata(&seg).expect("stat").len();
    let f = fs::OpenOptions::new().write(true).open(&seg).expect("open");
    f.write_all_at(&vec![0u8; len as usize], 0).expect("zero");
    drop(f);
    let (log, _) = open(d.path());
    assert_eq!(log.acked_at_open().map(|a| a.index), Some(12));
    assert!(log.last_entry_id().is_none_or(|e| e.index < 12));
}
