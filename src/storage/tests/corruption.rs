//! Damage at open: what is a torn tail (cut) and what is corruption (refused, named).

use super::*;

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
