//! A log record's wire JSON, serialized straight from the decoded [`Record`].
//!
//! [`LogRecord`](super::LogRecord) holds a record's fields as a `serde_json::Value`; building
//! that value (a map of owned keys and values) and then printing it costs more than everything
//! else a stream does per record. [`WireRecord`] borrows the record instead and prints the same
//! bytes: `offset`, `epoch`, `timestamp`, `name`, `fields`. Both write the fields with the
//! record's own `Serialize` ([`RecordFields`]), whose fields are declared in the sorted order a
//! `serde_json::Value` object prints (serde_json without `preserve_order` keeps a `BTreeMap`).
//! The unit tests below hold the two paths to the same bytes for every record type.

use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;

use super::record::{Record, RecordFields};

/// A committed record as the stream and the log show it, borrowing the record: serializes to the
/// same JSON as the [`LogRecord`](super::LogRecord) built from it, without building it.
#[derive(Clone, Copy, Debug)]
pub struct WireRecord<'a> {
    /// The entry's Raft index.
    pub offset: u64,
    /// The Raft term the entry was written in.
    pub epoch: u64,
    /// The leader's timestamp, ms since the Unix epoch.
    pub timestamp: u64,
    /// The record.
    pub record: &'a Record,
}

impl Serialize for WireRecord<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("LogRecord", 5)?;
        st.serialize_field("offset", &self.offset)?;
        st.serialize_field("epoch", &self.epoch)?;
        st.serialize_field("timestamp", &self.timestamp)?;
        st.serialize_field("name", self.record.name())?;
        st.serialize_field("fields", &RecordFields(self.record))?;
        st.end()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::metadata::record::tests::sample_records;
    use crate::metadata::record::{
        BrokerRegistrationChangeBrokerRecord, BrokerStatus, PartitionChangeRecord, PartitionRecord,
        ProducerIdsRecord, RegisterBrokerRecord, SecurityProtocol, TopicRecord,
    };
    use crate::metadata::{LogRecord, MetadataCommand};
    use proptest::prelude::*;
    use uuid::Uuid;

    /// The bytes the stream wrote before `WireRecord`: the `LogRecord` with a `Value` inside.
    fn old_path(offset: u64, epoch: u64, timestamp_ms: u64, record: &Record) -> String {
        let cmd = MetadataCommand {
            timestamp_ms,
            record: record.clone(),
        };
        serde_json::to_string(&LogRecord::new(offset, epoch, &cmd)).unwrap()
    }

    fn new_path(offset: u64, epoch: u64, timestamp: u64, record: &Record) -> String {
        serde_json::to_string(&WireRecord {
            offset,
            epoch,
            timestamp,
            record,
        })
        .unwrap()
    }

    /// Every record type, each optional field both set and unset.
    fn all_shapes() -> Vec<Record> {
        let mut out = sample_records();
        for r in sample_records() {
            match r {
                Record::RegisterBroker(mut b) => {
                    b.rack_id = None;
                    b.security_protocol = SecurityProtocol::Plaintext;
                    b.broker_id = -1;
                    out.push(Record::RegisterBroker(b));
                }
                Record::BrokerChange(mut c) => {
                    c.broker_host = Some("h\"ost\\ \u{e9}\u{1}".into());
                    c.broker_port = None;
                    c.security_protocol = Some(SecurityProtocol::Ssl);
                    c.broker_status = None;
                    out.push(Record::BrokerChange(c.clone()));
                    c.broker_host = None;
                    out.push(Record::BrokerChange(c));
                }
                Record::Partition(mut p) => {
                    p.removing_replicas = vec![3, i32::MIN];
                    p.adding_replicas = vec![];
                    p.isr = vec![];
                    out.push(Record::Partition(p));
                }
                Record::ProducerIds(mut p) => {
                    p.producer_id = i64::MIN;
                    p.broker_epoch = u64::MAX;
                    out.push(Record::ProducerIds(p));
                }
                Record::PartitionChange(mut c) => {
                    c.isr = vec![];
                    c.leader = i32::MAX;
                    out.push(Record::PartitionChange(c));
                }
                Record::Topic(_) => {}
            }
        }
        out
    }

    #[test]
    fn wire_record_prints_the_same_bytes_as_the_log_record_for_every_type() {
        let shapes = all_shapes();
        let names: std::collections::BTreeSet<_> = shapes.iter().map(Record::name).collect();
        assert_eq!(names.len(), 6, "every record type is covered");
        for (i, r) in shapes.iter().enumerate() {
            let (o, e, t) = (u64::MAX - i as u64, i as u64, 1_764_000_000_123);
            assert_eq!(new_path(o, e, t, r), old_path(o, e, t, r), "record {r:?}");
        }
    }

    fn uuid() -> impl Strategy<Value = Uuid> {
        any::<u128>().prop_map(Uuid::from_u128)
    }

    fn status() -> impl Strategy<Value = BrokerStatus> {
        proptest::sample::select(BrokerStatus::ALL.to_vec())
    }

    fn protocol() -> impl Strategy<Value = SecurityProtocol> {
        proptest::sample::select(SecurityProtocol::ALL.to_vec())
    }

    fn ids() -> impl Strategy<Value = Vec<i32>> {
        proptest::collection::vec(any::<i32>(), 0..4)
    }

    /// Any record, every field drawn from its whole range.
    pub(crate) fn record() -> impl Strategy<Value = Record> {
        prop_oneof![
            (
                any::<i32>(),
                any::<String>(),
                any::<u16>(),
                protocol(),
                status(),
                proptest::option::of(any::<String>()),
                uuid(),
                any::<u64>()
            )
                .prop_map(|(id, host, port, proto, st, rack, u, epoch)| {
                    Record::RegisterBroker(RegisterBrokerRecord {
                        broker_id: id,
                        broker_host: host,
                        broker_port: port,
                        security_protocol: proto,
                        broker_status: st,
                        rack_id: rack,
                        internal_uuid: u,
                        epoch,
                    })
                }),
            (any::<String>(), uuid()).prop_map(|(name, u)| Record::Topic(TopicRecord {
                name,
                topic_uuid: u
            })),
            (
                any::<i32>(),
                uuid(),
                ids(),
                ids(),
                ids(),
                ids(),
                any::<i32>(),
                any::<u64>()
            )
                .prop_map(|(id, u, rep, isr, rem, add, leader, epoch)| {
                    Record::Partition(PartitionRecord {
                        partition_id: id,
                        topic_uuid: u,
                        replicas: rep,
                        isr,
                        removing_replicas: rem,
                        adding_replicas: add,
                        leader,
                        leader_epoch: epoch / 2,
                        partition_epoch: epoch,
                    })
                }),
            (
                any::<i32>(),
                uuid(),
                ids(),
                any::<i32>(),
                any::<u64>(),
                any::<u64>()
            )
                .prop_map(|(id, u, isr, leader, le, pe)| {
                    Record::PartitionChange(PartitionChangeRecord {
                        partition_id: id,
                        topic_uuid: u,
                        isr,
                        leader,
                        leader_epoch: le,
                        partition_epoch: pe,
                    })
                }),
            (any::<i32>(), any::<u64>(), any::<i64>()).prop_map(|(b, e, p)| {
                Record::ProducerIds(ProducerIdsRecord {
                    broker_id: b,
                    broker_epoch: e,
                    producer_id: p,
                })
            }),
            (
                any::<i32>(),
                proptest::option::of(any::<String>()),
                proptest::option::of(any::<u16>()),
                proptest::option::of(protocol()),
                proptest::option::of(status()),
                any::<u64>()
            )
                .prop_map(|(id, host, port, proto, st, epoch)| {
                    Record::BrokerChange(BrokerRegistrationChangeBrokerRecord {
                        broker_id: id,
                        broker_host: host,
                        broker_port: port,
                        security_protocol: proto,
                        broker_status: st,
                        epoch,
                    })
                }),
        ]
    }

    proptest! {
        #[test]
        fn wire_record_matches_the_log_record_byte_for_byte(
            r in record(),
            offset in any::<u64>(),
            epoch in any::<u64>(),
            ts in any::<u64>(),
        ) {
            prop_assert_eq!(new_path(offset, epoch, ts, &r), old_path(offset, epoch, ts, &r));
        }
    }
}
