//! Golden digests for the shapes `golden.rs` does not reach: topic names of every length around
//! the inline limit of the compact image (21, 22, 23 bytes), long ones up to Kafka's 249, names
//! equal in a long prefix and differing in a byte that sorts differently as ASCII, inserted in a
//! scrambled order (so names below every other one arrive late); and partitions with
//! removingReplicas and addingReplicas that later change their ISR and leader. The digests were
//! taken with the image of `String` keys and whole `PartitionRecord`s (main at 0bd5a60): the
//! compact image must give the same snapshot and `/get_metadata` bytes.

use super::golden::{encoded_with_digests, Seq};
use super::*;

/// Valid topic names: every length 1..=40 and some long ones, over alphabets that start with
/// each class of allowed byte, plus names that share a 20-24-byte prefix.
fn names() -> Vec<String> {
    const ALPHABETS: [&str; 5] = ["ab", "Z_", "-9", "._x", "q.A-0"];
    let mut out = Vec::new();
    for (i, alphabet) in ALPHABETS.iter().enumerate() {
        for len in (1..=40).chain([47, 63, 64, 65, 128, 200, 248, 249]) {
            let name: String = alphabet.chars().cycle().skip(i).take(len).collect();
            if name != "." && name != ".." {
                out.push(name);
            }
        }
    }
    for prefix in 20..=24 {
        for last in ["-", ".", "0", "9", "A", "Z", "_", "a", "z", "zz", "_-"] {
            out.push(format!("{}{last}", "p".repeat(prefix)));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The image of a fixed log: eight brokers, the topics of [`names`] in a scrambled order, some
/// partitions with reassignment lists, then ISR changes and re-elections on them.
fn shapes_image() -> (Harness, usize) {
    let mut h = Harness::default();
    let mut s = Seq(0x2545_f491_4f6c_dd1d);
    let mut next = 0u128;
    let mut run = |h: &mut Harness, req: WriteRequest| {
        let Ok(mut record) = h.image.prepare(req) else {
            return;
        };
        next += 1;
        match &mut record {
            Record::Topic(t) => t.topic_uuid = Uuid::from_u128(next),
            Record::RegisterBroker(b) => b.internal_uuid = Uuid::from_u128(1_000_000 + next),
            _ => {}
        }
        let offset = h.log.len() as u64 + 1;
        let cmd = MetadataCommand {
            timestamp_ms: 1000 + offset,
            record,
        };
        h.image
            .apply_entry(offset, 2, &cmd)
            .expect("a prepared record applies");
        h.log.push((offset, cmd));
    };
    for b in 0..8 {
        run(&mut h, reg(b));
    }
    let mut names = names();
    // Fisher-Yates with the fixed sequence.
    for i in (1..names.len()).rev() {
        let j = s.next(i as u64 + 1) as usize;
        names.swap(i, j);
    }
    let mut uuids = Vec::new();
    for name in &names {
        run(&mut h, topic(name));
        if let Some(t) = h.image.topic_record(name) {
            uuids.push(t.topic_uuid);
        }
    }
    let mut parts = Vec::new();
    for (k, t) in uuids.iter().enumerate().filter(|(k, _)| k % 3 == 0) {
        for pid in 0..(1 + s.next(3) as i32) {
            let n = 2 + s.next(4) as usize;
            let mut replicas: Vec<i32> = Vec::new();
            while replicas.len() < n {
                let b = s.next(8) as i32;
                if !replicas.contains(&b) {
                    replicas.push(b);
                }
            }
            let isr: Vec<i32> = replicas
                .iter()
                .copied()
                .take(1 + s.next(n as u64) as usize)
                .collect();
            let (removing, adding) = match (k + pid as usize) % 4 {
                0 => (vec![], vec![]),
                1 => (vec![replicas[n - 1]], vec![]),
                2 => (vec![], vec![replicas[n - 1]]),
                _ => (vec![replicas[0]], vec![replicas[n - 1]]),
            };
            run(
                &mut h,
                WriteRequest::CreatePartition {
                    partition_id: pid,
                    topic_uuid: *t,
                    replicas: replicas.clone(),
                    isr,
                    removing_replicas: removing,
                    adding_replicas: adding,
                    leader: LeaderRef::Id(replicas[0]),
                },
            );
            parts.push((*t, pid, replicas));
        }
    }
    for _ in 0..600 {
        let (t, pid, replicas) = &parts[s.next(parts.len() as u64) as usize];
        let req = if s.next(2) == 0 {
            let Some(p) = h.image.partition(t, *pid) else {
                continue;
            };
            let isr: Vec<i32> = replicas
                .iter()
                .copied()
                .filter(|b| *b == p.leader || s.next(2) == 0)
                .collect();
            WriteRequest::AlterPartition {
                broker_id: p.leader,
                topic_uuid: *t,
                partition_id: *pid,
                partition_epoch: p.partition_epoch,
                isr,
            }
        } else {
            WriteRequest::Reelect {
                topic_uuid: *t,
                partition_id: *pid,
                leaving: (s.next(2) == 0).then(|| replicas[s.next(replicas.len() as u64) as usize]),
                avoid: vec![],
            }
        };
        run(&mut h, req);
    }
    let reassigning = h
        .image
        .all_partitions()
        .filter(|p| !p.removing_replicas.is_empty() || !p.adding_replicas.is_empty())
        .count();
    (h, reassigning)
}

#[test]
fn long_names_and_reassigning_partitions_encode_as_the_string_keyed_image_did() {
    let (h, reassigning) = shapes_image();
    let image = h.image;
    let counts = (
        image.all_topics().count(),
        image.all_topics().filter(|(n, _)| n.len() > 22).count(),
        image.all_partitions().count(),
        reassigning,
        image.partition_changes().len(),
    );
    let (payload, payload_digest, view_digest) = encoded_with_digests(&image);
    let got = (counts, payload_digest, view_digest);
    assert_eq!(
        got,
        (
            (294, 165, 200, 151, 395),
            (78834, 422180818),
            (119075, 1588342080)
        ),
        "the image's bytes changed: the snapshot format and the JSON view must stay as they were"
    );
    assert_eq!(Image::decode(&payload).expect("decodes"), image);
}

/// The image of the first `n` entries of `log`, folded afresh.
fn prefix(log: &[(u64, MetadataCommand)], n: usize) -> Image {
    let mut image = Image::new();
    for (offset, cmd) in &log[..n] {
        image.apply_entry(*offset, 2, cmd).expect("the log applies");
    }
    image
}

/// What the leader's speculative image, a snapshot and `/get_metadata` rely on: a copy of the
/// image taken at any entry keeps exactly the image of the log up to there while the original
/// (and other copies, some dropped early so that the original changes in place again) goes on
/// applying. Checked through the bytes a snapshot of each copy would hold.
#[test]
fn a_copy_taken_at_any_entry_encodes_as_the_log_up_to_there() {
    let (h, _) = shapes_image();
    let log = &h.log;
    let mut image = Image::new();
    let mut copies: Vec<(usize, Image)> = Vec::new();
    for (k, (offset, cmd)) in log.iter().enumerate() {
        if k % 23 == 0 {
            copies.push((k, image.clone()));
        }
        if k % 69 == 0 {
            // Let go of a copy taken a while ago: its runs are the original's alone now.
            if let Some(at) = copies.iter().position(|(n, _)| *n + 46 <= k) {
                let (n, copy) = copies.swap_remove(at);
                assert_eq!(copy.encode(), prefix(log, n).encode(), "copy at {n}");
            }
        }
        image.apply_entry(*offset, 2, cmd).expect("the log applies");
    }
    assert_eq!(image, h.image);
    assert!(copies.len() > 20, "{} copies", copies.len());
    for (n, copy) in &copies {
        assert_eq!(copy.encode(), prefix(log, *n).encode(), "copy at {n}");
        assert_eq!(copy, &prefix(log, *n));
    }
}
