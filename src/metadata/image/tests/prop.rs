//! The property test: random requests prepared and applied never disagree, and re-folding the
//! log gives the same image.

use super::*;

#[derive(Clone, Debug)]
pub(super) enum Op {
    Reg(i32, u8, u16),
    Topic(u8),
    Part(u8, i32, Vec<i32>, usize, bool),
    Prod(i32, Option<i64>),
    Change(i32, Option<u16>, Option<u8>),
    Delete(i32),
    Reelect(u8, i32, Option<i32>, Vec<i32>),
    Alter(u8, i32, i32, Vec<i32>),
}

fn op() -> impl Strategy<Value = Op> {
    let b = 0i32..5;
    prop_oneof![
        (b.clone(), 0u8..5, 0u16..3).prop_map(|(b, s, p)| Op::Reg(b, s, p)),
        (0u8..4).prop_map(Op::Topic),
        (
            0u8..5,
            0i32..3,
            proptest::collection::vec(0i32..5, 0..4),
            0usize..4,
            any::<bool>()
        )
            .prop_map(|(t, p, r, l, u)| Op::Part(t, p, r, l, u)),
        (b.clone(), proptest::option::of(0i64..8)).prop_map(|(b, p)| Op::Prod(b, p)),
        (
            b.clone(),
            proptest::option::of(1u16..4),
            proptest::option::of(0u8..5)
        )
            .prop_map(|(b, p, s)| Op::Change(b, p, s)),
        b.clone().prop_map(Op::Delete),
        (
            0u8..5,
            0i32..3,
            proptest::option::of(b.clone()),
            proptest::collection::vec(b.clone(), 0..2)
        )
            .prop_map(|(t, p, l, a)| Op::Reelect(t, p, l, a)),
        (
            0u8..5,
            0i32..3,
            b.clone(),
            proptest::collection::vec(b, 1..4)
        )
            .prop_map(|(t, p, l, isr)| Op::Alter(t, p, l, isr)),
    ]
}

pub(super) fn to_request(image: &Image, op: Op) -> WriteRequest {
    let topic_uuid = |t: u8| {
        image
            .topic_record(&format!("t{t}"))
            .map(|t| t.topic_uuid)
            .unwrap_or(Uuid::from_u128(u128::from(t) + 1))
    };
    match op {
        Op::Reg(b, s, p) => WriteRequest::RegisterBroker {
            broker_id: b,
            broker_host: format!("h{b}"),
            broker_port: 9000 + p,
            security_protocol: SecurityProtocol::ALL[usize::from(p) % 4],
            broker_status: BrokerStatus::ALL[usize::from(s)],
            rack_id: (p == 1).then(|| "r".to_string()),
        },
        Op::Topic(t) => topic(&format!("t{t}")),
        Op::Part(t, pid, replicas, l, by_uuid) => {
            let leader_id = replicas.get(l).copied().unwrap_or(0);
            let leader = match image.broker_record(leader_id) {
                Some(b) if by_uuid => LeaderRef::InternalUuid(b.internal_uuid),
                _ => LeaderRef::Id(leader_id),
            };
            let isr = replicas.iter().copied().take(l).collect();
            WriteRequest::CreatePartition {
                partition_id: pid,
                topic_uuid: topic_uuid(t),
                replicas,
                isr,
                removing_replicas: vec![],
                adding_replicas: vec![],
                leader,
            }
        }
        Op::Prod(b, p) => prod(b, p),
        Op::Change(b, p, s) => WriteRequest::ChangeBroker {
            broker_id: b,
            broker_host: None,
            broker_port: p,
            security_protocol: None,
            broker_status: s.map(|s| BrokerStatus::ALL[usize::from(s)]),
        },
        Op::Delete(b) => del(b),
        Op::Reelect(t, pid, leaving, avoid) => WriteRequest::Reelect {
            topic_uuid: topic_uuid(t),
            partition_id: pid,
            leaving,
            avoid,
        },
        Op::Alter(t, pid, broker, isr) => WriteRequest::AlterPartition {
            broker_id: broker,
            topic_uuid: topic_uuid(t),
            partition_id: pid,
            partition_epoch: image
                .partition(&topic_uuid(t), pid)
                .map_or(0, |p| p.partition_epoch),
            isr,
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn prepared_records_always_apply_and_refold_identically(ops in proptest::collection::vec(op(), 0..60)) {
        let mut h = Harness::default();
        let mut allocated = std::collections::BTreeSet::new();
        for op in ops {
            let req = to_request(&h.image, op);
            let before = h.image.clone();
            match h.image.prepare(req) {
                Err(_) => prop_assert_eq!(&h.image, &before),
                Ok(record) => {
                    if let Record::ProducerIds(p) = &record {
                        prop_assert!(allocated.insert(p.producer_id), "producer id {} reused", p.producer_id);
                    }
                    let offset = h.log.len() as u64 + 1;
                    let cmd = MetadataCommand { timestamp_ms: offset, record };
                    let applied = h.image.apply(offset, &cmd);
                    prop_assert!(applied.is_ok(), "prepared record refused: {:?}", applied);
                    h.log.push((offset, cmd));
                }
            }
        }
        prop_assert_eq!(Image::decode(&h.image.encode()).unwrap(), h.image.clone());
        let mut viewed = Image::from_metadata_json(&h.image.metadata_json(), h.image.last_offset, h.image.last_epoch).unwrap();
        viewed.last_timestamp_ms = h.image.last_timestamp_ms;
        viewed.registrations = h.image.registrations.clone();
        prop_assert_eq!(viewed, h.image.clone());
        let refold = Image::fold(h.log.iter().map(|(o, c)| (*o, c)));
        prop_assert_eq!(&refold, &h.image);
        prop_assert_eq!(Image::fold(h.log.iter().map(|(o, c)| (*o, c))), refold);
        for b in h.image.all_brokers() {
            prop_assert_eq!(h.image.broker(b.broker_id).unwrap()["brokerId"].as_i64(), Some(i64::from(b.broker_id)));
        }
    }

    #[test]
    fn image_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Image::decode(&bytes);
    }
}
