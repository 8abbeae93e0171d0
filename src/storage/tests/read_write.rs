//! Appending, reading back, reopening, purging the front, and the time index.

use super::*;

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

/// Resident KiB of this process's mappings of `path`, from `/proc/self/smaps`.
fn resident_kib(path: &Path) -> u64 {
    let smaps = fs::read_to_string("/proc/self/smaps").expect("smaps");
    let wanted = path.to_string_lossy();
    let mut inside = false;
    let mut kib = 0;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            inside = line.ends_with(wanted.as_ref());
        } else if inside && first == "Rss:" {
            kib += line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    kib
}

#[test]
fn sealed_segments_leave_the_resident_set_and_still_read_the_same() {
    let d = tempfile::tempdir().expect("tempdir");
    let opts = LogOptions {
        segment_bytes: 256 * 1024,
    };
    let (log, _) = SegmentLog::open(d.path(), opts).expect("open");
    let written = fill(&log, 1, 3_000, 200);
    let segments = log.segments();
    assert!(segments.len() >= 3, "the test needs sealed segments");
    let sealed = &segments[..segments.len() - 1];
    let newest = segments.last().expect("a segment");

    let read_all = |log: &SegmentLog| log.read_range(1, 3_001, None).expect("read");
    assert_eq!(read_all(&log), written);
    let mapped: u64 = sealed.iter().map(|s| resident_kib(&s.path)).sum();
    assert!(
        mapped >= 100,
        "reading maps the sealed segments in ({mapped} KiB; the test's premise)"
    );
    let newest_before = resident_kib(&newest.path);

    log.release_sealed_pages();
    let left: u64 = sealed.iter().map(|s| resident_kib(&s.path)).sum();
    assert_eq!(left, 0, "sealed segments still resident after the release");
    assert_eq!(
        resident_kib(&newest.path),
        newest_before,
        "the segment taking appends is left alone"
    );
    assert_eq!(read_all(&log), written, "the same bytes after the release");
}

/// A truncation can cut back into a sealed segment whose pages were released: it becomes the
/// newest again and takes the appends (written with `pwrite`, read through the same map that
/// dropped its pages), while the release keeps running at every roll and in between. Every
/// entry reads back the same, before and after a reopen. (Releasing with an advice that drops
/// the file's data, such as `MADV_REMOVE`, instead of only the mapping's pages fails this.)
#[test]
fn a_released_segment_truncated_back_into_takes_appends_and_reads_them() {
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(d.path());
    let mut es = fill(&log, 1, 200, 100);
    let segments = log.segments();
    assert!(segments.len() >= 4, "the test needs sealed segments");
    log.release_sealed_pages();
    let cut = segments[1].base_index + 2;
    log.truncate_after(Some(cut)).expect("truncate");
    es.truncate(cut as usize);
    assert_eq!(
        log.segments().len(),
        2,
        "the second segment, released while sealed, is the newest again"
    );
    assert_eq!(log.read_range(0, u64::MAX, None).expect("read"), es);

    let more: Vec<StoredEntry> = (cut + 1..=cut + 80)
        .map(|i| entry(i, 99, 9_000 + i, 100))
        .collect();
    for chunk in more.chunks(5) {
        log.append(chunk).expect("append");
        log.release_sealed_pages();
        let last = chunk.last().expect("a chunk").index;
        assert_eq!(
            log.read_range(1, last + 1, None).expect("read"),
            [&es[..], &more[..(last - cut) as usize]].concat(),
            "everything up to {last}, read right after its append and a release"
        );
    }
    es.extend(more);
    log.sync().expect("sync");
    drop(log);
    let (log, rep) = open(d.path());
    assert_eq!(rep.truncated_bytes, 0);
    assert_eq!(log.read_range(0, u64::MAX, None).expect("read"), es);
}
