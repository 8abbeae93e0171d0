//! The image's copy, encode and apply costs on a 100,000-entity image (issue 18, "no stalls").
//!
//! Run: `cargo bench --bench image` (release). The image holds 90,000 topics and 10,000
//! partitions (a large image is mostly topics), built by folding records as a node does. Measured:
//! - `clone`: a copy of the image: what a snapshot or a full read takes under the lock;
//! - `encode`: the snapshot payload of it (done off the lock, on a copy);
//! - `apply_100/unshared`: folding 100 more records (topics and partitions) into an image no
//!   copy shares: apply with no snapshot or reader holding a copy;
//! - `apply_100/shared`: the same into a fresh copy of the image: each record copies the tree
//!   nodes on its path (the image and the copy share them), apply while a copy is alive.
//!
//! Only the public API is used, so the same file measures any representation of the image.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use uuid::Uuid;

use yakt::metadata::record::{
    BrokerStatus, PartitionRecord, RegisterBrokerRecord, SecurityProtocol, TopicRecord,
};
use yakt::metadata::{Image, MetadataCommand, Record};

const TOPICS: u64 = 90_000;
const PARTITIONS: u64 = 10_000;
const TERM: u64 = 1;

fn topic_uuid(i: u64) -> Uuid {
    Uuid::from_u128(u128::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
}

fn topic(i: u64) -> Record {
    Record::Topic(TopicRecord {
        name: format!("topic-{:08}", i.wrapping_mul(7_919) % 10_000_000),
        topic_uuid: topic_uuid(i),
    })
}

/// Partition `id` of topic `t`, on broker 1.
fn partition(t: u64, id: i32) -> Record {
    Record::Partition(PartitionRecord {
        partition_id: id,
        topic_uuid: topic_uuid(t),
        replicas: vec![1],
        isr: vec![1],
        removing_replicas: vec![],
        adding_replicas: vec![],
        leader: 1,
        leader_epoch: 0,
        partition_epoch: 0,
    })
}

fn fold(image: &mut Image, record: Record) {
    let offset = image.last_offset + 1;
    let cmd = MetadataCommand {
        timestamp_ms: 1_764_000_000_000 + offset,
        record,
    };
    image
        .apply_entry(offset, TERM, &cmd)
        .expect("the bench's records fit");
}

fn base() -> Image {
    let mut image = Image::new();
    fold(
        &mut image,
        Record::RegisterBroker(RegisterBrokerRecord {
            broker_host: "kafka-1".into(),
            broker_id: 1,
            broker_port: 9092,
            broker_status: BrokerStatus::Alive,
            epoch: 0,
            internal_uuid: Uuid::from_u128(1),
            rack_id: None,
            security_protocol: SecurityProtocol::Plaintext,
        }),
    );
    for i in 1..=TOPICS {
        fold(&mut image, topic(i));
    }
    for p in 0..PARTITIONS {
        fold(&mut image, partition(1 + p % TOPICS, (p / TOPICS) as i32));
    }
    image
}

/// 100 more records: 90 new topics, 10 partitions of existing ones (new partition ids).
fn next_100(image: &mut Image) {
    for i in 0..90 {
        fold(image, topic(TOPICS + 1 + i));
    }
    for i in 0..10 {
        fold(image, partition(1 + i * 8_999, 1_000));
    }
}

fn bench(c: &mut Criterion) {
    let image = base();
    assert_eq!(image.entity_count(), 1 + TOPICS + PARTITIONS);
    let payload = image.encode();
    c.bench_function("clone", |b| b.iter(|| black_box(image.clone())));
    c.bench_function("encode", |b| b.iter(|| black_box(image.encode())));
    let mut g = c.benchmark_group("apply_100");
    // A decoded image shares nothing with any other.
    g.bench_function("unshared", |b| {
        b.iter_batched(
            || Image::decode(&payload).expect("decodes"),
            |mut img| {
                next_100(&mut img);
                img
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("shared", |b| {
        b.iter_batched(
            || image.clone(),
            |mut img| {
                next_100(&mut img);
                img
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
