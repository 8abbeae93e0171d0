//! A log record's wire JSON, serialized straight from the decoded [`Record`].
//!
//! [`LogRecord`](super::LogRecord) holds a record's fields as a `serde_json::Value`; building
//! that value (a map of owned keys and values) and then printing it costs more than everything
//! else a stream does per record. [`WireRecord`] borrows the record instead and prints the same
//! bytes: `offset`, `epoch`, `timestamp`, `name`, `fields`, with each record type's fields in the
//! order a `serde_json::Value` object prints them, which is sorted by key (serde_json without its
//! `preserve_order` feature keeps objects in a `BTreeMap`). The unit tests below hold the two
//! paths to the same bytes for every record type.

use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;
use uuid::Uuid;

use super::record::{
    BrokerRegistrationChangeBrokerRecord, BrokerStatus, PartitionRecord, ProducerIdsRecord, Record,
    RegisterBrokerRecord, SecurityProtocol, TopicRecord,
};

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
        st.serialize_field("fields", &WireFields(self.record))?;
        st.end()
    }
}

/// A record's fields in sorted key order, as [`Record::fields_json`] prints.
struct WireFields<'a>(&'a Record);

impl Serialize for WireFields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Record::RegisterBroker(r) => RegisterBrokerFields::from(r).serialize(s),
            Record::Topic(r) => TopicFields::from(r).serialize(s),
            Record::Partition(r) => PartitionFields::from(r).serialize(s),
            Record::ProducerIds(r) => ProducerIdsFields::from(r).serialize(s),
            Record::BrokerChange(r) => BrokerChangeFields::from(r).serialize(s),
        }
    }
}

// Each struct below lists its record's wire fields sorted by key (byte order: upper case first),
// with the same `skip_serializing_if` as the record itself.

#[derive(Serialize)]
struct RegisterBrokerFields<'a> {
    #[serde(rename = "brokerHost")]
    broker_host: &'a str,
    #[serde(rename = "brokerId")]
    broker_id: i32,
    #[serde(rename = "brokerPort")]
    broker_port: u16,
    #[serde(rename = "brokerStatus")]
    broker_status: BrokerStatus,
    epoch: u64,
    #[serde(rename = "internalUUID")]
    internal_uuid: &'a Uuid,
    #[serde(rename = "rackId", skip_serializing_if = "Option::is_none")]
    rack_id: Option<&'a str>,
    #[serde(rename = "securityProtocol")]
    security_protocol: SecurityProtocol,
}

impl<'a> From<&'a RegisterBrokerRecord> for RegisterBrokerFields<'a> {
    fn from(r: &'a RegisterBrokerRecord) -> Self {
        Self {
            broker_host: &r.broker_host,
            broker_id: r.broker_id,
            broker_port: r.broker_port,
            broker_status: r.broker_status,
            epoch: r.epoch,
            internal_uuid: &r.internal_uuid,
            rack_id: r.rack_id.as_deref(),
            security_protocol: r.security_protocol,
        }
    }
}

#[derive(Serialize)]
struct TopicFields<'a> {
    name: &'a str,
    #[serde(rename = "topicUUID")]
    topic_uuid: &'a Uuid,
}

impl<'a> From<&'a TopicRecord> for TopicFields<'a> {
    fn from(r: &'a TopicRecord) -> Self {
        Self {
            name: &r.name,
            topic_uuid: &r.topic_uuid,
        }
    }
}

#[derive(Serialize)]
struct PartitionFields<'a> {
    #[serde(rename = "ISR")]
    isr: &'a [i32],
    #[serde(rename = "addingReplicas")]
    adding_replicas: &'a [i32],
    leader: i32,
    #[serde(rename = "partitionEpoch")]
    partition_epoch: u64,
    #[serde(rename = "partitionId")]
    partition_id: i32,
    #[serde(rename = "removingReplicas")]
    removing_replicas: &'a [i32],
    replicas: &'a [i32],
    #[serde(rename = "topicUUID")]
    topic_uuid: &'a Uuid,
}

impl<'a> From<&'a PartitionRecord> for PartitionFields<'a> {
    fn from(r: &'a PartitionRecord) -> Self {
        Self {
            isr: &r.isr,
            adding_replicas: &r.adding_replicas,
            leader: r.leader,
            partition_epoch: r.partition_epoch,
            partition_id: r.partition_id,
            removing_replicas: &r.removing_replicas,
            replicas: &r.replicas,
            topic_uuid: &r.topic_uuid,
        }
    }
}

#[derive(Serialize)]
struct ProducerIdsFields {
    #[serde(rename = "brokerEpoch")]
    broker_epoch: u64,
    #[serde(rename = "brokerId")]
    broker_id: i32,
    #[serde(rename = "producerId")]
    producer_id: i64,
}

impl From<&ProducerIdsRecord> for ProducerIdsFields {
    fn from(r: &ProducerIdsRecord) -> Self {
        Self {
            broker_epoch: r.broker_epoch,
            broker_id: r.broker_id,
            producer_id: r.producer_id,
        }
    }
}

#[derive(Serialize)]
struct BrokerChangeFields<'a> {
    #[serde(rename = "brokerHost", skip_serializing_if = "Option::is_none")]
    broker_host: Option<&'a str>,
    #[serde(rename = "brokerId")]
    broker_id: i32,
    #[serde(rename = "brokerPort", skip_serializing_if = "Option::is_none")]
    broker_port: Option<u16>,
    #[serde(rename = "brokerStatus", skip_serializing_if = "Option::is_none")]
    broker_status: Option<BrokerStatus>,
    epoch: u64,
    #[serde(rename = "securityProtocol", skip_serializing_if = "Option::is_none")]
    security_protocol: Option<SecurityProtocol>,
}

impl<'a> From<&'a BrokerRegistrationChangeBrokerRecord> for BrokerChangeFields<'a> {
    fn from(r: &'a BrokerRegistrationChangeBrokerRecord) -> Self {
        Self {
            broker_host: r.broker_host.as_deref(),
            broker_id: r.broker_id,
            broker_port: r.broker_port,
            broker_status: r.broker_status,
            epoch: r.epoch,
            security_protocol: r.security_protocol,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::record::tests::sample_records;
    use crate::metadata::{LogRecord, MetadataCommand};
    use proptest::prelude::*;

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
                Record::Topic(_) => {}
            }
        }
        out
    }

    #[test]
    fn wire_record_prints_the_same_bytes_as_the_log_record_for_every_type() {
        let shapes = all_shapes();
        let names: std::collections::BTreeSet<_> = shapes.iter().map(Record::name).collect();
        assert_eq!(names.len(), 5, "every record type is covered");
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

    fn record() -> impl Strategy<Value = Record> {
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
                        partition_epoch: epoch,
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
