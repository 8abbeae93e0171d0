//! Golden digests of the snapshot payload and the `/get_metadata` body of one fixed image: the
//! in-memory representation of the image may change (it did, to persistent maps), its bytes
//! may not. The digests were taken with the `std::collections` image (main at dc437c2).

use super::prop::{to_request, Op};
use super::*;

/// A fixed pseudo-random sequence (xorshift64*), so the image is the same on every run and
/// does not depend on any crate's random number generator.
pub(super) struct Seq(pub(super) u64);

impl Seq {
    pub(super) fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % below
    }
    fn small(&mut self, below: u64) -> i32 {
        self.next(below) as i32
    }
}

/// Enough operations of every kind that each map spans several nodes of a B-tree of 16.
fn ops() -> Vec<Op> {
    let mut s = Seq(0x9e37_79b9_7f4a_7c15);
    (0..12000)
        .map(|_| match s.next(8) {
            0 => Op::Reg(s.small(24), s.next(5) as u8, s.next(3) as u16),
            1 | 2 => Op::Topic(s.next(250) as u8),
            3 | 4 => {
                let replicas = (0..s.next(4)).map(|_| s.small(24)).collect();
                Op::Part(
                    s.next(250) as u8,
                    s.small(6),
                    replicas,
                    s.next(4) as usize,
                    s.next(2) == 0,
                )
            }
            5 => Op::Prod(s.small(24), (s.next(3) == 0).then(|| s.next(400) as i64)),
            6 => Op::Change(
                s.small(24),
                (s.next(2) == 0).then(|| 1 + s.next(3) as u16),
                (s.next(2) == 0).then(|| s.next(5) as u8),
            ),
            _ => match s.next(3) {
                0 => Op::Delete(s.small(24)),
                1 => Op::Reelect(
                    s.next(250) as u8,
                    s.small(6),
                    (s.next(2) == 0).then(|| s.small(24)),
                    (0..s.next(2)).map(|_| s.small(24)).collect(),
                ),
                _ => Op::Alter(
                    s.next(250) as u8,
                    s.small(6),
                    s.small(24),
                    (1..=1 + s.next(3)).map(|_| s.small(24)).collect(),
                ),
            },
        })
        .collect()
}

/// The image those operations build, with the UUIDs the leader would draw at random replaced
/// by fixed ones (topic `k` gets `k`, a registration `1_000_000 + k`).
fn golden_image() -> Image {
    let mut h = Harness::default();
    for (k, op) in ops().into_iter().enumerate() {
        let req = to_request(&h.image, op);
        let Ok(mut record) = h.image.prepare(req) else {
            continue;
        };
        match &mut record {
            Record::Topic(t) => t.topic_uuid = Uuid::from_u128(k as u128 + 1),
            Record::RegisterBroker(b) => b.internal_uuid = Uuid::from_u128(1_000_000 + k as u128),
            _ => {}
        }
        let offset = h.log.len() as u64 + 1;
        let cmd = MetadataCommand {
            timestamp_ms: 1000 + offset,
            record,
        };
        if h.image.apply_entry(offset, 3, &cmd).is_ok() {
            h.log.push((offset, cmd));
        }
    }
    h.image
}

/// Length and CRC of some bytes: enough to tell a changed encoding without storing it.
pub(super) fn digest(bytes: &[u8]) -> (usize, u32) {
    (bytes.len(), crc32fast::hash(bytes))
}

/// The snapshot payload of `image`, with the digests of it and of its `/get_metadata` JSON:
/// what the golden tests pin.
pub(super) fn encoded_with_digests(image: &Image) -> (Vec<u8>, (usize, u32), (usize, u32)) {
    let payload = image.encode();
    let view = serde_json::to_vec(&crate::metadata::MetadataAnswer {
        image,
        offset: image.last_offset,
        epoch: image.last_epoch,
    })
    .expect("the view serializes");
    let (p, v) = (digest(&payload), digest(&view));
    (payload, p, v)
}

#[test]
fn the_snapshot_payload_and_the_metadata_view_are_byte_identical_to_the_std_maps_image() {
    let image = golden_image();
    // Every kind of entity is there, in numbers that make multi-level trees.
    let counts = (
        image.all_brokers().count(),
        image.all_topics().count(),
        image.all_partitions().count(),
        image.all_producers().count(),
        image.broker_changes().len(),
        image.partition_changes().len(),
    );
    let (payload, payload_digest, view_digest) = encoded_with_digests(&image);
    assert_eq!(
        (counts, payload_digest, view_digest),
        (
            (24, 250, 295, 828, 1031, 29),
            (121661, 3290800676),
            (173427, 1613530575)
        ),
        "the image's bytes changed: the snapshot format and the JSON view must stay as they were"
    );
    assert_eq!(Image::decode(&payload).expect("decodes"), image);
}
