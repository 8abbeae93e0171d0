//! The image's rules end to end: requests prepared and applied, refusals and their kinds,
//! overtaken records refused at apply, the views, and a proptest that every prepared record
//! applies and that refolding, the snapshot encoding and the JSON rebuild give the same image.

use proptest::prelude::*;
use serde_json::json;
use uuid::Uuid;

use super::Image;
use crate::metadata::record::{BrokerStatus, PartitionRecord, ProducerIdsRecord, SecurityProtocol};
use crate::metadata::request::LeaderRef;
use crate::metadata::{ErrorKind, MetadataCommand, MetadataError, Record, WriteRequest};

/// An image plus the log that built it, applying each prepared record at the next offset.
#[derive(Default)]
struct Harness {
    image: Image,
    log: Vec<(u64, MetadataCommand)>,
}

impl Harness {
    fn run(&mut self, req: WriteRequest) -> Result<Record, MetadataError> {
        let record = self.image.prepare(req)?;
        let offset = self.log.len() as u64 + 1;
        let cmd = MetadataCommand {
            timestamp_ms: 1000 + offset,
            record: record.clone(),
        };
        self.image
            .apply(offset, &cmd)
            .expect("a prepared record must apply");
        self.log.push((offset, cmd));
        Ok(record)
    }
    fn kind(&mut self, req: WriteRequest) -> ErrorKind {
        self.run(req).expect_err("expected a refusal").kind
    }
}

fn reg(id: i32) -> WriteRequest {
    WriteRequest::RegisterBroker {
        broker_id: id,
        broker_host: format!("kafka-{id}"),
        broker_port: 9092,
        security_protocol: SecurityProtocol::Plaintext,
        broker_status: BrokerStatus::Alive,
        rack_id: None,
    }
}
fn topic(name: &str) -> WriteRequest {
    WriteRequest::CreateTopic { name: name.into() }
}
fn part(t: Uuid, pid: i32, replicas: &[i32], leader: LeaderRef) -> WriteRequest {
    WriteRequest::CreatePartition {
        partition_id: pid,
        topic_uuid: t,
        replicas: replicas.to_vec(),
        isr: replicas.to_vec(),
        removing_replicas: vec![],
        adding_replicas: vec![],
        leader,
    }
}
fn prod(b: i32, p: Option<i64>) -> WriteRequest {
    WriteRequest::RegisterProducer {
        broker_id: b,
        producer_id: p,
    }
}
fn change_port(b: i32, port: u16) -> WriteRequest {
    WriteRequest::ChangeBroker {
        broker_id: b,
        broker_host: None,
        broker_port: Some(port),
        security_protocol: None,
        broker_status: None,
    }
}
fn del(b: i32) -> WriteRequest {
    WriteRequest::DeleteBroker { broker_id: b }
}
fn topic_uuid(r: Record) -> Uuid {
    match r {
        Record::Topic(t) => t.topic_uuid,
        other => panic!("not a topic: {other:?}"),
    }
}

#[test]
fn broker_registration_conflict_and_closed_reregistration() {
    let mut h = Harness::default();
    let Record::RegisterBroker(first) = h.run(reg(1)).unwrap() else {
        panic!()
    };
    assert_eq!(first.epoch, 0);
    assert_eq!(first.internal_uuid.get_version_num(), 4);
    assert_eq!(h.kind(reg(1)), ErrorKind::Conflict);
    let Record::BrokerChange(c) = h.run(change_port(1, 9093)).unwrap() else {
        panic!()
    };
    assert_eq!(c.epoch, 1);
    assert_eq!(h.image.broker_record(1).unwrap().broker_port, 9093);
    let Record::BrokerChange(d) = h.run(del(1)).unwrap() else {
        panic!()
    };
    assert_eq!((d.broker_status, d.epoch), (Some(BrokerStatus::Closed), 2));
    assert_eq!(h.kind(del(1)), ErrorKind::Conflict);
    assert_eq!(h.kind(change_port(1, 1)), ErrorKind::Conflict);
    assert_eq!(h.image.brokers_not_closed(), json!([]));
    assert_eq!(h.image.broker(1).unwrap()["brokerStatus"], "CLOSED");
    let Record::RegisterBroker(again) = h.run(reg(1)).unwrap() else {
        panic!()
    };
    assert_eq!(again.epoch, 3);
    assert_ne!(again.internal_uuid, first.internal_uuid);
    assert_eq!(h.image.brokers_not_closed().as_array().unwrap().len(), 1);
    assert_eq!(h.image.broker_changes().len(), 2);
    assert_eq!(
        h.image.metadata_json()["BrokerRegistrationChangeBrokerRecord"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn unknown_brokers_are_not_found() {
    let mut h = Harness::default();
    assert_eq!(h.kind(del(7)), ErrorKind::NotFound);
    assert_eq!(h.kind(change_port(7, 1)), ErrorKind::NotFound);
    assert_eq!(h.kind(prod(7, None)), ErrorKind::NotFound);
    assert_eq!(h.image.broker(7).unwrap_err().kind, ErrorKind::NotFound);
    assert!(h.log.is_empty());
}

#[test]
fn topics_and_partitions() {
    let mut h = Harness::default();
    for b in 1..=3 {
        h.run(reg(b)).unwrap();
    }
    let t = topic_uuid(h.run(topic("orders")).unwrap());
    assert_eq!(h.kind(topic("orders")), ErrorKind::Conflict);
    let Record::Partition(p) = h.run(part(t, 0, &[1, 2], LeaderRef::Id(2))).unwrap() else {
        panic!()
    };
    assert_eq!((p.partition_epoch, p.leader), (0, 2));
    assert_eq!(
        h.kind(part(t, 0, &[1, 2], LeaderRef::Id(1))),
        ErrorKind::Conflict
    );
    assert_eq!(
        h.kind(part(Uuid::from_u128(9), 0, &[1], LeaderRef::Id(1))),
        ErrorKind::NotFound
    );
    assert_eq!(
        h.kind(part(t, 1, &[1, 9], LeaderRef::Id(1))),
        ErrorKind::NotFound
    );
    assert_eq!(
        h.kind(part(t, 1, &[1, 1], LeaderRef::Id(1))),
        ErrorKind::BadRequest
    );
    assert_eq!(
        h.kind(part(t, 1, &[1, 2], LeaderRef::Id(3))),
        ErrorKind::BadRequest
    );
    // Leader by internalUUID is normalized to the id.
    let u3 = h.image.broker_record(3).unwrap().internal_uuid;
    let Record::Partition(p) = h
        .run(part(t, 1, &[2, 3], LeaderRef::InternalUuid(u3)))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(p.leader, 3);
    assert_eq!(
        h.kind(part(t, 2, &[1, 2], LeaderRef::InternalUuid(u3))),
        ErrorKind::BadRequest
    );
    assert_eq!(
        h.kind(part(
            t,
            2,
            &[1, 2],
            LeaderRef::InternalUuid(Uuid::from_u128(5))
        )),
        ErrorKind::NotFound
    );
    // A CLOSED broker cannot be a replica.
    h.run(del(3)).unwrap();
    let e = h.run(part(t, 2, &[1, 3], LeaderRef::Id(1))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(e.message.contains("CLOSED"), "{}", e.message);
    // Views.
    let v = h.image.topic("orders").unwrap();
    assert_eq!(v["topicUUID"], t.to_string());
    assert_eq!(v["partitions"].as_array().unwrap().len(), 2);
    assert_eq!(v["partitions"][1]["leader"], 3);
    assert_eq!(h.image.topic("nope").unwrap_err().kind, ErrorKind::NotFound);
    let t2 = topic_uuid(h.run(topic("other")).unwrap());
    h.run(part(t2, 0, &[1], LeaderRef::Id(1))).unwrap();
    assert_eq!(h.image.partitions(None).as_array().unwrap().len(), 3);
    assert_eq!(h.image.partitions(Some(t2)).as_array().unwrap().len(), 1);
    assert_eq!(h.image.partitions(Some(Uuid::from_u128(1))), json!([]));
    let m = h.image.metadata_json();
    assert_eq!(m["TopicRecord"].as_array().unwrap().len(), 2);
    assert_eq!(m["PartitionRecord"].as_array().unwrap().len(), 3);
    assert_eq!(m["RegisterBrokerRecord"].as_array().unwrap().len(), 3);
}

#[test]
fn producer_ids_are_allocated_and_never_reused() {
    let mut h = Harness::default();
    h.run(reg(1)).unwrap();
    h.run(reg(2)).unwrap();
    let pid = |r: Record| match r {
        Record::ProducerIds(p) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!(pid(h.run(prod(1, None)).unwrap()).producer_id, 0);
    assert_eq!(pid(h.run(prod(1, None)).unwrap()).producer_id, 1);
    assert_eq!(pid(h.run(prod(2, Some(10))).unwrap()).producer_id, 10);
    assert_eq!(h.kind(prod(1, Some(10))), ErrorKind::Conflict);
    assert_eq!(h.kind(prod(2, Some(0))), ErrorKind::Conflict);
    assert_eq!(pid(h.run(prod(2, None)).unwrap()).producer_id, 11);
    // A free id below the next one may still be claimed explicitly.
    assert_eq!(pid(h.run(prod(2, Some(5))).unwrap()).producer_id, 5);
    assert_eq!(pid(h.run(prod(2, None)).unwrap()).producer_id, 12);
    h.run(change_port(1, 1)).unwrap();
    assert_eq!(pid(h.run(prod(1, None)).unwrap()).broker_epoch, 1);
    h.run(del(2)).unwrap();
    assert_eq!(h.kind(prod(2, None)), ErrorKind::Conflict);
    // The top of the range: after i64::MAX nothing is left to allocate.
    h.run(prod(1, Some(i64::MAX))).unwrap();
    assert_eq!(h.kind(prod(1, None)), ErrorKind::Conflict);
    assert_eq!(h.image.producer_ids().as_array().unwrap().len(), 8);
    assert_eq!(Image::decode(&h.image.encode()).unwrap(), h.image);
}

#[test]
fn broker_change_needs_a_field() {
    let mut h = Harness::default();
    h.run(reg(1)).unwrap();
    let empty = WriteRequest::ChangeBroker {
        broker_id: 1,
        broker_host: None,
        broker_port: None,
        security_protocol: None,
        broker_status: None,
    };
    assert_eq!(h.kind(empty), ErrorKind::BadRequest);
    let all = WriteRequest::ChangeBroker {
        broker_id: 1,
        broker_host: Some("new".into()),
        broker_port: Some(1),
        security_protocol: Some(SecurityProtocol::Ssl),
        broker_status: Some(BrokerStatus::Fenced),
    };
    h.run(all).unwrap();
    let b = h.image.broker(1).unwrap();
    assert_eq!(
        (
            &b["brokerHost"],
            &b["brokerPort"],
            &b["securityProtocol"],
            &b["brokerStatus"],
            &b["epoch"]
        ),
        (
            &json!("new"),
            &json!(1),
            &json!("SSL"),
            &json!("FENCED"),
            &json!(1)
        )
    );
}

#[test]
fn apply_refuses_overtaken_records_without_touching_the_image() {
    let mut h = Harness::default();
    h.run(reg(1)).unwrap();
    // Two producer allocations prepared on the same image: the second is overtaken.
    let a = h.image.prepare(prod(1, None)).unwrap();
    let b = h.image.prepare(prod(1, None)).unwrap();
    assert_eq!(a, b);
    let mut img = h.image.clone();
    let cmd = |r: Record| MetadataCommand {
        timestamp_ms: 5,
        record: r,
    };
    img.apply(10, &cmd(a)).unwrap();
    let before = img.clone();
    let e = img.apply(11, &cmd(b)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert_eq!(img.last_offset, 11);
    img.last_offset = before.last_offset;
    assert_eq!(img, before);
    // A stale broker epoch, a change with a skipped epoch, a duplicate registration.
    let stale = img.prepare(prod(1, None)).unwrap();
    let change = img.prepare(change_port(1, 2)).unwrap();
    img.apply(12, &cmd(change.clone())).unwrap();
    assert_eq!(
        img.apply(13, &cmd(stale)).unwrap_err().kind,
        ErrorKind::Conflict
    );
    assert_eq!(
        img.apply(14, &cmd(change)).unwrap_err().kind,
        ErrorKind::Conflict
    );
    let dup = Image::new().prepare(reg(1)).unwrap();
    assert_eq!(
        img.apply(15, &cmd(dup)).unwrap_err().kind,
        ErrorKind::Conflict
    );
    // Partition for a topic that does not exist.
    let mut orphan = Harness::default();
    orphan.run(reg(1)).unwrap();
    let t = topic_uuid(orphan.run(topic("t")).unwrap());
    let p = orphan
        .image
        .prepare(part(t, 0, &[1], LeaderRef::Id(1)))
        .unwrap();
    assert_eq!(
        img.apply(16, &cmd(p)).unwrap_err().kind,
        ErrorKind::NotFound
    );
    img.apply_entry(17, 4, &cmd(Image::new().prepare(topic("x")).unwrap()))
        .unwrap();
    assert_eq!((img.last_offset, img.last_epoch), (17, 4));
    assert_eq!(img.last_timestamp_ms(), 1001);
}

#[test]
fn decode_refuses_garbage_and_inconsistent_images() {
    assert!(Image::decode(&[]).is_err());
    assert!(Image::decode(b"\x93\x01\x02").is_err());
    assert_eq!(Image::decode(&Image::new().encode()).unwrap(), Image::new());
    let mut h = Harness::default();
    h.run(topic("t")).unwrap();
    // A partition of a topic the snapshot does not list.
    let mut orphan = h.image.clone();
    orphan.partitions.insert(
        (Uuid::from_u128(7), 0),
        super::StoredPartition::new(&PartitionRecord {
            partition_id: 0,
            topic_uuid: Uuid::from_u128(7),
            replicas: vec![1],
            isr: vec![1],
            removing_replicas: vec![],
            adding_replicas: vec![],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
        }),
    );
    assert!(Image::decode(&orphan.encode())
        .unwrap_err()
        .reason
        .contains("unknown topicUUID"));
    // A registered producer id at or above the next free one.
    let mut reused = h.image.clone();
    reused.producers.insert(
        3,
        ProducerIdsRecord {
            broker_id: 1,
            broker_epoch: 0,
            producer_id: 3,
        },
    );
    assert!(Image::decode(&reused.encode())
        .unwrap_err()
        .reason
        .contains("next free id"));
}

fn status(b: i32, s: BrokerStatus) -> WriteRequest {
    WriteRequest::ChangeBroker {
        broker_id: b,
        broker_host: None,
        broker_port: None,
        security_protocol: None,
        broker_status: Some(s),
    }
}
fn reg_fenced(id: i32) -> WriteRequest {
    match reg(id) {
        WriteRequest::RegisterBroker {
            broker_id,
            broker_host,
            broker_port,
            security_protocol,
            rack_id,
            ..
        } => WriteRequest::RegisterBroker {
            broker_id,
            broker_host,
            broker_port,
            security_protocol,
            broker_status: BrokerStatus::Fenced,
            rack_id,
        },
        other => other,
    }
}
fn reelect(t: Uuid, leaving: i32) -> WriteRequest {
    WriteRequest::Reelect {
        topic_uuid: t,
        partition_id: 0,
        leaving: Some(leaving),
        avoid: vec![],
    }
}

#[test]
fn registrations_keep_the_broker_epoch_and_watched_brokers_lead_only_once_unfenced() {
    let mut h = Harness::default();
    h.run(reg(1)).unwrap();
    h.run(reg_fenced(2)).unwrap();
    let r2 = h.image.registration(2).unwrap();
    assert_eq!((r2.broker_epoch, r2.watched), (2, true));
    assert!(!h.image.registration(1).unwrap().watched);
    // A change keeps the broker epoch; only a new registration moves it.
    h.run(change_port(2, 9999)).unwrap();
    assert_eq!(h.image.registration(2).unwrap().broker_epoch, 2);
    let t = topic_uuid(h.run(topic("t")).unwrap());
    assert_eq!(
        h.kind(part(t, 0, &[2, 1], LeaderRef::Id(2))),
        ErrorKind::Conflict,
        "a watched FENCED broker leads nothing"
    );
    // An unwatched broker that is FENCED still may, as before.
    h.run(status(1, BrokerStatus::Fenced)).unwrap();
    h.run(part(t, 0, &[1, 2], LeaderRef::Id(1))).unwrap();
    h.run(status(2, BrokerStatus::Unfenced)).unwrap();
    h.run(part(t, 1, &[2, 1], LeaderRef::Id(2))).unwrap();
    h.run(del(2)).unwrap();
    h.run(reg(2)).unwrap();
    assert_eq!(h.image.registration(2).unwrap().broker_epoch, 10);
}

#[test]
fn partition_changes_fold_with_their_epochs_and_stale_ones_are_refused() {
    let mut h = Harness::default();
    for b in 1..=3 {
        h.run(reg(b)).unwrap();
    }
    let t = topic_uuid(h.run(topic("t")).unwrap());
    h.run(part(t, 0, &[1, 2, 3], LeaderRef::Id(1))).unwrap();
    h.run(status(2, BrokerStatus::Fenced)).unwrap();
    // Broker 1 leaves: 2 is fenced, so 3 leads; leaderEpoch and partitionEpoch + 1.
    let Record::PartitionChange(c) = h.run(reelect(t, 1)).unwrap() else {
        panic!()
    };
    assert_eq!((c.leader, c.isr.clone()), (3, vec![2, 3]));
    assert_eq!((c.leader_epoch, c.partition_epoch), (1, 1));
    let p = h.image.partition(&t, 0).unwrap();
    assert_eq!((p.leader, p.isr.clone()), (3, vec![2, 3]));
    assert_eq!((p.leader_epoch, p.partition_epoch), (1, 1));
    assert_eq!(h.image.partition_changes().iter().collect::<Vec<_>>(), [&c]);
    assert_eq!(
        h.image.metadata_json()["PartitionChangeRecord"][0]["leader"],
        3
    );
    // Nothing left to change for broker 1.
    assert_eq!(h.kind(reelect(t, 1)), ErrorKind::Conflict);
    // The same record again is stale; so is an alter_partition with the old epoch.
    let again = MetadataCommand {
        timestamp_ms: 1,
        record: Record::PartitionChange(c),
    };
    assert_eq!(
        h.image.clone().apply(99, &again).unwrap_err().kind,
        ErrorKind::StalePartitionEpoch
    );
    let alter = |broker, epoch, isr: &[i32]| WriteRequest::AlterPartition {
        broker_id: broker,
        topic_uuid: t,
        partition_id: 0,
        partition_epoch: epoch,
        isr: isr.to_vec(),
    };
    assert_eq!(h.kind(alter(3, 0, &[3])), ErrorKind::StalePartitionEpoch);
    assert_eq!(h.kind(alter(1, 1, &[3])), ErrorKind::NotLeaderForPartition);
    assert_eq!(
        h.kind(alter(3, 1, &[3, 2])),
        ErrorKind::BadRequest,
        "2 is fenced"
    );
    assert_eq!(
        h.kind(alter(3, 1, &[3, 4])),
        ErrorKind::BadRequest,
        "4 is no replica"
    );
    let Record::PartitionChange(a) = h.run(alter(3, 1, &[3, 1])).unwrap() else {
        panic!()
    };
    assert_eq!((a.leader, a.leader_epoch, a.partition_epoch), (3, 1, 2));
    // The last ISR member stays when it leaves; the partition has no leader then.
    h.run(alter(3, 2, &[3])).unwrap();
    let Record::PartitionChange(last) = h.run(reelect(t, 3)).unwrap() else {
        panic!()
    };
    assert_eq!((last.leader, last.isr), (-1, vec![3]));
    assert_eq!(h.image.partitions_led_by(3), 0);
    assert_eq!(h.image.leaderless_with(3), [(t, 0)]);
    // A refold of the log is the same image.
    assert_eq!(Image::fold(h.log.iter().map(|(o, c)| (*o, c))), h.image);
}

mod golden;
mod golden_shapes;
mod prop;
