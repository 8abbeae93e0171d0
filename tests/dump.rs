//! Runs the `yakt-dump` binary against a log written by the library.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use yakt::storage::{EntryId, LogOptions, SegmentLog, SnapshotStore, StoredEntry, VoteFile};

const TS0: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00.000Z

fn dump(args: &[&str], path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_yakt-dump"))
        .args(args)
        .arg(path)
        .output()
        .expect("run yakt-dump")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A data dir with `log/` (several 4 KiB segments, entries 1..=120), a snapshot and a vote.
fn write_data_dir(root: &Path) -> Vec<PathBuf> {
    let log_dir = root.join("log");
    let (log, _) = SegmentLog::open(
        &log_dir,
        LogOptions {
            segment_bytes: 4096,
        },
    )
    .expect("open");
    let entries: Vec<_> = (1..=120u64)
        .map(|i| StoredEntry {
            index: i,
            term: 1 + i / 60,
            timestamp_ms: if i % 10 == 0 { 0 } else { TS0 + i },
            payload: vec![i as u8; 100],
        })
        .collect();
    log.append(&entries).expect("append");
    log.sync().expect("sync");
    log.purge_upto(EntryId { index: 5, term: 1 })
        .expect("purge");
    let segs: Vec<PathBuf> = log.segments().into_iter().map(|s| s.path).collect();
    assert!(segs.len() >= 3, "need several segments");
    let mut image = yakt::metadata::Image::new();
    image.last_offset = 5;
    image.last_epoch = 1;
    SnapshotStore::open(&root.join("snapshots"))
        .expect("snapshots")
        .write(5, 1, b"meta", &image.encode())
        .expect("snapshot");
    VoteFile::open(root)
        .expect("vote")
        .save(b"vote-bytes")
        .expect("save vote");
    segs
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let dst = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            fs::copy(e.path(), dst).expect("copy");
        }
    }
}

#[test]
fn plain_json_verify_and_ranges() {
    let d = tempfile::tempdir().expect("tempdir");
    let segs = write_data_dir(d.path());

    // Plain dump of one segment file.
    let o = dump(&[], &segs[0]);
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(
        text.contains("index=1 term=1 timestamp=2026-01-01T00:00:00.001Z size=100 crc=ok pos=0"),
        "{text}"
    );
    assert!(
        text.contains("index=10 term=1 timestamp=- size=100 crc=ok"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("segment ") && l.contains("first=1 ")),
        "{text}"
    );

    // --verify on the clean directory.
    let o = dump(&["--verify"], d.path());
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let text = stdout(&o);
    assert_eq!(
        text.lines().filter(|l| l.contains(" crc=ok pos=")).count(),
        120
    );
    let payload_len = {
        let mut image = yakt::metadata::Image::new();
        image.last_offset = 5;
        image.encode().len()
    };
    assert!(
        text.contains("snapshot ")
            && text.contains(&format!(
                "offset=5 term=1 meta_bytes=4 payload_bytes={payload_len}"
            )),
        "{text}"
    );
    assert!(
        text.contains("  image: offset=5 epoch=1 brokers=0 topics=0"),
        "{text}"
    );
    assert!(
        text.contains("last_purged ") && text.contains("index=5 term=1"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("index=5 ") && l.ends_with("(purged)")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("index=6 ") && !l.ends_with("(purged)")),
        "{text}"
    );
    assert!(
        text.contains("vote ") && text.contains("crc=ok bytes=10"),
        "{text}"
    );

    // --from/--to across segments, JSON.
    let o = dump(&["--json", "--from", "20", "--to", "60"], d.path());
    assert!(o.status.success());
    let objs: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let idx: Vec<u64> = objs
        .iter()
        .filter(|v| v["type"] == "entry")
        .filter_map(|v| v["index"].as_u64())
        .collect();
    assert_eq!(idx, (20..=60).collect::<Vec<_>>());
    let e30 = objs
        .iter()
        .find(|v| v["index"] == 30 && v["type"] == "entry")
        .expect("entry 30");
    assert_eq!(e30["timestamp_ms"], 0);
    assert!(e30["timestamp"].is_null());
    assert_eq!(e30["crc_ok"], true);
    assert_eq!(e30["size"], 100);
    let e21 = objs
        .iter()
        .find(|v| v["index"] == 21 && v["type"] == "entry")
        .expect("entry 21");
    assert_eq!(e21["timestamp"], "2026-01-01T00:00:00.021Z");
    for k in ["term", "name", "fields"] {
        assert!(e21.get(k).is_some(), "missing {k}");
    }
    let sums: Vec<_> = objs
        .iter()
        .filter(|v| v["type"] == "segment_summary")
        .collect();
    assert_eq!(sums.len(), segs.len());
    assert_eq!(sums[0]["first_index"], 1);
    assert_eq!(sums.last().expect("summary")["last_index"], 120);
}

#[test]
fn verify_flags_corruption_in_older_segment() {
    let d = tempfile::tempdir().expect("tempdir");
    write_data_dir(d.path());
    let copy = d.path().join("copy");
    copy_dir(&d.path().join("log"), &copy.join("log"));
    let mut segs: Vec<PathBuf> = fs::read_dir(copy.join("log"))
        .expect("read")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segs.sort();
    let victim = &segs[1];
    let frame_pos = 5 * 140u64; // sixth frame: 40-byte header + 100-byte payload each
    let f = fs::OpenOptions::new()
        .write(true)
        .open(victim)
        .expect("open");
    f.write_all_at(&[0xEE], frame_pos + 70).expect("flip");
    drop(f);

    let o = dump(&["--verify"], &copy);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let text = stdout(&o);
    let bad: Vec<&str> = text.lines().filter(|l| l.starts_with("ERROR ")).collect();
    assert_eq!(bad.len(), 1, "{text}");
    assert!(
        bad[0].contains(&victim.display().to_string())
            && bad[0].contains(&format!("at byte {frame_pos} ")),
        "{}",
        bad[0]
    );
    assert!(bad[0].contains("crc=BAD"), "{}", bad[0]);
    // The segment file on its own fails too, and the original is untouched (read-only tool).
    assert_eq!(dump(&["--verify"], victim).status.code(), Some(1));
    assert_eq!(
        dump(&["--verify"], &d.path().join("log")).status.code(),
        Some(0)
    );
    // The library refuses to open the copy, naming the same file and offset.
    match SegmentLog::open(
        &copy.join("log"),
        LogOptions {
            segment_bytes: 4096,
        },
    ) {
        Err(yakt::storage::StorageError::DamagedLog { path, offset, .. }) => {
            assert_eq!((&path, offset), (victim, frame_pos))
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn torn_tail_is_a_warning_not_a_failure() {
    let d = tempfile::tempdir().expect("tempdir");
    write_data_dir(d.path());
    let c = tempfile::tempdir().expect("tempdir");
    let copy = c.path().to_path_buf();
    copy_dir(d.path(), &copy);
    let mut segs: Vec<PathBuf> = fs::read_dir(copy.join("log"))
        .expect("read")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segs.sort();
    let newest = segs.last().expect("segment");
    let bytes = fs::read(newest).expect("read");
    let end = bytes.iter().rposition(|&b| b != 0).expect("data") as u64 + 1;
    // Cut the last frame in half: zero its second half.
    let f = fs::OpenOptions::new()
        .write(true)
        .open(newest)
        .expect("open");
    f.write_all_at(&[0u8; 60], end - 60).expect("cut");
    drop(f);
    let o = dump(&["--verify"], &copy);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let text = stdout(&o);
    assert!(
        text.contains(&format!("WARNING torn tail at byte {}", end - 140)),
        "{text}"
    );
    assert!(!text.contains("ERROR"), "{text}");
    assert!(!text.contains("index=120 "), "{text}");
}

#[test]
fn verify_decodes_the_snapshot_image() {
    let d = tempfile::tempdir().expect("tempdir");
    // A snapshot file whose CRC is right but whose payload is not an image (format 1 bytes: a
    // named map) must fail --verify, naming the file and the reason.
    let store = SnapshotStore::open(&d.path().join("snapshots")).expect("snapshots");
    let info = store.write(7, 2, b"meta", b"\x80").expect("snapshot");
    let o = dump(&["--verify"], &info.path);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let text = stdout(&o);
    assert!(text.contains("crc=ok"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("ERROR ")
            && l.contains(&info.path.display().to_string())
            && l.contains("snapshot image does not decode")),
        "{text}"
    );
}

/// Metadata records through the node's own codec: a partition whose leader moves, as the
/// liveness controller writes it.
fn liveness_records() -> Vec<yakt::metadata::MetadataCommand> {
    use yakt::metadata::{
        BrokerStatus, Image, LeaderRef, MetadataCommand, SecurityProtocol, WriteRequest,
    };
    let mut img = Image::new();
    let mut reqs: Vec<WriteRequest> = (1..=2)
        .map(|b| WriteRequest::RegisterBroker {
            broker_id: b,
            broker_host: format!("kafka-{b}"),
            broker_port: 9092,
            security_protocol: SecurityProtocol::Plaintext,
            broker_status: BrokerStatus::Alive,
            rack_id: None,
        })
        .collect();
    reqs.push(WriteRequest::CreateTopic { name: "t".into() });
    let mut out = Vec::new();
    let mut run = |img: &mut Image, req| {
        let record = img.prepare(req).expect("prepares");
        let cmd = MetadataCommand {
            timestamp_ms: TS0 + img.last_offset + 1,
            record,
        };
        img.apply(img.last_offset + 1, &cmd).expect("applies");
        out.push(cmd);
    };
    for r in reqs {
        run(&mut img, r);
    }
    let t = img.topic_record("t").expect("topic").topic_uuid;
    run(
        &mut img,
        WriteRequest::CreatePartition {
            partition_id: 0,
            topic_uuid: t,
            replicas: vec![1, 2],
            isr: vec![1, 2],
            removing_replicas: vec![],
            adding_replicas: vec![],
            leader: LeaderRef::Id(1),
        },
    );
    run(
        &mut img,
        WriteRequest::Reelect {
            topic_uuid: t,
            partition_id: 0,
            leaving: Some(1),
            avoid: vec![],
        },
    );
    out
}

#[test]
fn partition_change_records_dump_as_text_json_and_in_the_snapshot_image() {
    use openraft::entry::RaftEntry;
    use openraft::EntryPayload;
    let d = tempfile::tempdir().expect("tempdir");
    let (log, _) = SegmentLog::open(&d.path().join("log"), LogOptions::default()).expect("open");
    let cmds = liveness_records();
    let entries: Vec<StoredEntry> = cmds
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let e = yakt::raft::Entry::new(
                yakt::raft::log_id(1, i as u64 + 1),
                EntryPayload::Normal(c.clone()),
            );
            yakt::raft::codec::entry_to_stored(&e).expect("encode")
        })
        .collect();
    log.append(&entries).expect("append");
    log.sync().expect("sync");
    let image =
        yakt::metadata::Image::fold(cmds.iter().enumerate().map(|(i, c)| (i as u64 + 1, c)));
    SnapshotStore::open(&d.path().join("snapshots"))
        .expect("snapshots")
        .write(5, 1, b"meta", &image.encode())
        .expect("snapshot");

    let o = dump(&[], d.path());
    assert!(o.status.success(), "{}", stdout(&o));
    let text = stdout(&o);
    let line = text
        .lines()
        .find(|l| l.starts_with("index=5 "))
        .expect("entry 5");
    assert!(
        line.contains(" PartitionChangeRecord {\"ISR\":[2],\"leader\":2,\"leaderEpoch\":1,\"partitionEpoch\":1,\"partitionId\":0,\"topicUUID\":"),
        "{line}"
    );
    let created = text
        .lines()
        .find(|l| l.starts_with("index=4 "))
        .expect("entry 4");
    assert!(created.contains("\"leaderEpoch\":0"), "{created}");
    assert!(
        text.contains(
            "brokers=2 topics=1 partitions=1 producers=0 broker_changes=0 partition_changes=1"
        ),
        "{text}"
    );

    let o = dump(&["--json"], d.path());
    assert!(o.status.success());
    let objs: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let e5 = objs
        .iter()
        .find(|v| v["type"] == "entry" && v["index"] == 5)
        .expect("entry 5");
    assert_eq!(e5["name"], "PartitionChangeRecord");
    assert_eq!(
        (
            &e5["fields"]["leader"],
            &e5["fields"]["ISR"],
            &e5["fields"]["leaderEpoch"]
        ),
        (
            &serde_json::json!(2),
            &serde_json::json!([2]),
            &serde_json::json!(1)
        )
    );
    let img = objs
        .iter()
        .find(|v| v["type"] == "image")
        .expect("image line");
    assert_eq!(img["partition_changes"], 1);
}

/// The recovering mark of a node that must be caught up before it votes is shown with the data
/// directory (only when present) and as a file of its own.
#[test]
fn the_recovering_mark_is_shown_when_present() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_data_dir(dir.path());
    let plain = stdout(&dump(&[], dir.path()));
    assert!(!plain.contains("recovering"), "{plain}");
    let mark = yakt::storage::RecoveringMark::open(dir.path()).expect("mark");
    mark.save(yakt::storage::Unproven {
        new_directory: false,
        lost_data: true,
    })
    .expect("save");
    let out = stdout(&dump(&[], dir.path()));
    assert!(
        out.contains("recovering") && out.contains("lost_data=true"),
        "{out}"
    );
    let json = stdout(&dump(&["--json"], &dir.path().join("recovering")));
    let v: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON line");
    assert_eq!(v["type"], "recovering");
    assert_eq!(v["value"]["lost_data"], true);
    assert_eq!(v["value"]["new_directory"], false);
}
