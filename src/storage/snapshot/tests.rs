//! Snapshot files: the format's round trip and damage, the store's retention and fallback.

use super::*;
use proptest::prelude::*;

#[test]
fn write_latest_read() {
    let d = tempfile::tempdir().expect("tempdir");
    let s = SnapshotStore::open(d.path()).expect("open");
    assert_eq!(s.latest().expect("latest"), None);
    let a = s.write(10, 2, b"meta-a", b"payload-a").expect("write");
    assert_eq!(
        a.path.file_name().map(|n| n.to_string_lossy().into_owned()),
        Some("00000000000000000010-2.snap".into())
    );
    let b = s.write(20, 3, b"meta-b", &[7u8; 1000]).expect("write");
    assert!(a.path.exists(), "the one before the newest is kept");
    assert_eq!(s.oldest_kept().expect("list"), Some(a.clone()));
    let c = s.write(30, 3, b"meta-c", b"c").expect("write");
    assert!(!a.path.exists(), "beyond the newest two: deleted");
    assert_eq!(s.oldest_kept().expect("list"), Some(b.clone()));
    assert_eq!(s.latest().expect("latest"), Some(c));
    // Asking for fewer than two still keeps two.
    let s1 = SnapshotStore::open_keeping(d.path(), 1).expect("open");
    assert_eq!(s1.keep(), MIN_KEEP_SNAPSHOTS);
    let s3 = SnapshotStore::open_keeping(d.path(), 3).expect("open");
    s3.write(40, 3, b"m", b"d").expect("write");
    assert_eq!(s3.list().expect("list").len(), 3);
    let f = s.read(&b).expect("read");
    assert_eq!(
        (f.offset, f.term, f.meta.as_slice(), f.payload.len()),
        (20, 3, &b"meta-b"[..], 1000)
    );
}

#[test]
fn corrupt_is_detected_and_skipped() {
    let d = tempfile::tempdir().expect("tempdir");
    let s = SnapshotStore::open(d.path()).expect("open");
    let good = s.write(10, 2, b"m", b"p").expect("write");
    // A higher, corrupt snapshot (written by hand so the good one is not deleted).
    let bad_path = d.path().join(snapshot_file_name(30, 4));
    let mut bytes = encode_snapshot(30, 4, b"m", b"payload");
    let n = bytes.len();
    bytes[n - 3] ^= 1;
    fs::write(&bad_path, &bytes).expect("write");
    assert!(matches!(
        SnapshotStore::read_file(&bad_path),
        Err(StorageError::Corrupt { offset: 40, .. })
    ));
    assert_eq!(s.latest().expect("latest"), Some(good));
    // A length field larger than the file is rejected before any allocation.
    bytes[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
    fs::write(&bad_path, &bytes).expect("write");
    assert!(matches!(
        SnapshotStore::read_file(&bad_path),
        Err(StorageError::Corrupt { offset: 24, .. })
    ));
}

#[test]
fn a_corrupt_newest_snapshot_falls_back_and_coverage_is_checked() {
    let d = tempfile::tempdir().expect("tempdir");
    let s = SnapshotStore::open(d.path()).expect("open");
    let old = s.write(100, 2, b"m", b"image-100").expect("write");
    let new = s.write(200, 2, b"m", b"image-200").expect("write");
    let decode = |f: &SnapshotFile| {
        std::str::from_utf8(&f.payload)
            .map(str::to_owned)
            .map_err(|e| e.to_string())
    };
    // Both verify: the newest is chosen; it covers a log purged up to 100 or 200.
    let c = s.load_newest_verified(decode).expect("load");
    assert_eq!(
        c.loaded.as_ref().map(|(_, _, t)| t.as_str()),
        Some("image-200")
    );
    assert!(c.skipped.is_empty());
    assert!(c.covers(Some(200)).is_ok() && c.covers(None).is_ok());
    // Four bytes flipped in the newest: the one before is chosen, the newest is reported.
    let mut bytes = fs::read(&new.path).expect("read");
    for b in &mut bytes[SNAPSHOT_HEADER_LEN + 2..SNAPSHOT_HEADER_LEN + 6] {
        *b ^= 0xff;
    }
    fs::write(&new.path, &bytes).expect("write");
    let c = s.load_newest_verified(decode).expect("load");
    assert_eq!(
        c.loaded.as_ref().map(|(i, _, _)| i.clone()),
        Some(old.clone())
    );
    assert_eq!(c.skipped.len(), 1);
    assert_eq!(c.skipped[0].0, new);
    // The log purged up to the older snapshot (the purge bound): covered.
    assert!(c.covers(Some(100)).is_ok());
    // Purged past it: refuse, naming both files.
    let err = c.covers(Some(150)).expect_err("not covered");
    let text = err.to_string();
    assert!(text.contains(&old.path.display().to_string()), "{text}");
    assert!(text.contains(&new.path.display().to_string()), "{text}");
    assert!(text.contains("yakt member remove"), "{text}");
    // A snapshot whose contents do not decode is skipped too.
    let c = s
        .load_newest_verified(|f: &SnapshotFile| {
            if f.offset == 100 {
                Err("bad image".to_string())
            } else {
                Ok(())
            }
        })
        .expect("load");
    assert!(c.loaded.is_none());
    assert_eq!(c.skipped.len(), 2);
    // A purged log with no snapshot at all: refuse. Nothing purged: fine.
    assert!(c.covers(Some(1)).is_err());
    assert!(c.covers(None).is_ok());
    // Setting the bad one aside: no longer listed, the good one is the newest again.
    let moved = s.quarantine(&new).expect("quarantine");
    assert!(moved.exists() && !new.path.exists());
    assert_eq!(s.latest().expect("latest"), Some(old));
}

#[test]
fn open_removes_tmp() {
    let d = tempfile::tempdir().expect("tempdir");
    fs::write(d.path().join("00000000000000000005-1.snap.tmp"), b"x").expect("write");
    let s = SnapshotStore::open(d.path()).expect("open");
    assert!(s.list().expect("list").is_empty());
    assert!(!d.path().join("00000000000000000005-1.snap.tmp").exists());
}

#[test]
fn names() {
    assert_eq!(
        parse_snapshot_file_name("00000000000000000010-2.snap"),
        Some((10, 2))
    );
    assert_eq!(parse_snapshot_file_name("10-2.snap"), None);
    assert_eq!(
        parse_snapshot_file_name("00000000000000000010-2.snap.tmp"),
        None
    );
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = decode_snapshot(&bytes);
    }

    #[test]
    fn any_flip_is_detected(meta in proptest::collection::vec(any::<u8>(), 0..16), payload in proptest::collection::vec(any::<u8>(), 0..64), at in any::<usize>(), x in 1u8..=255) {
        let mut b = encode_snapshot(5, 1, &meta, &payload);
        prop_assert!(decode_snapshot(&b).is_ok());
        let at = at % b.len();
        b[at] ^= x;
        prop_assert!(decode_snapshot(&b).is_err());
    }
}
