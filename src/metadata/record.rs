//! The six record types of API.md (YAKt's five and KRaft's `PartitionChangeRecord`), the Raft
//! entry that carries one, and its wire view.
//!
//! Field names are API.md's exactly. Everything that reaches disk or another node is encoded with
//! `rmp_serde::to_vec_named` (structs as maps keyed by field name), so adding an optional field
//! (with `#[serde(default)]`) never breaks old entries or snapshots, and unknown fields written by a
//! newer version are ignored on read.
//!
//! Each record struct declares its fields in the byte order of their wire names. serde writes
//! fields in declaration order and a `serde_json::Value` object prints them sorted, so the one
//! `Serialize` of a record gives the same JSON bytes whether it is written straight out (the
//! stream's [`WireRecord`](super::WireRecord), `/get_metadata`) or through a `Value` (`/fetch`,
//! catch-up, `yakt-dump`); the tests in `wire.rs` hold the two to the same bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A broker's lifecycle status, the original YAKt specification's five values.
#[derive(
    utoipa::ToSchema,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum BrokerStatus {
    /// Starting up.
    Init,
    /// Registered but not allowed to serve (Kafka's fencing).
    Fenced,
    /// Allowed to serve again after being fenced.
    Unfenced,
    /// Serving; the default for a new registration.
    Alive,
    /// Gone: hidden from `/get_all_brokers`; only a new registration brings the id back.
    Closed,
}

impl BrokerStatus {
    /// Every status, for error messages and tests.
    pub const ALL: [BrokerStatus; 5] = [
        BrokerStatus::Init,
        BrokerStatus::Fenced,
        BrokerStatus::Unfenced,
        BrokerStatus::Alive,
        BrokerStatus::Closed,
    ];

    /// The wire spelling (`"ALIVE"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            BrokerStatus::Init => "INIT",
            BrokerStatus::Fenced => "FENCED",
            BrokerStatus::Unfenced => "UNFENCED",
            BrokerStatus::Alive => "ALIVE",
            BrokerStatus::Closed => "CLOSED",
        }
    }
}

impl fmt::Display for BrokerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BrokerStatus {
    type Err = ();
    /// Exact, case-sensitive wire spelling only.
    fn from_str(s: &str) -> Result<Self, ()> {
        BrokerStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or(())
    }
}

/// A broker listener's security protocol.
///
/// Decision: restricted to Kafka's four `SecurityProtocol` names (`PLAINTEXT`, `SSL`,
/// `SASL_PLAINTEXT`, `SASL_SSL`), case-sensitive, so that a typo such as `PLAINTXT` is refused
/// instead of being stored for brokers to trip over. `PLAINTEXT` is the default.
#[derive(
    utoipa::ToSchema,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
)]
pub enum SecurityProtocol {
    /// No TLS, no SASL; the default.
    #[default]
    #[serde(rename = "PLAINTEXT")]
    Plaintext,
    /// TLS.
    #[serde(rename = "SSL")]
    Ssl,
    /// SASL without TLS.
    #[serde(rename = "SASL_PLAINTEXT")]
    SaslPlaintext,
    /// SASL over TLS.
    #[serde(rename = "SASL_SSL")]
    SaslSsl,
}

impl SecurityProtocol {
    /// Every protocol, for error messages and tests.
    pub const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    /// The wire spelling (`"PLAINTEXT"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SecurityProtocol {
    type Err = ();
    /// Exact, case-sensitive wire spelling only.
    fn from_str(s: &str) -> Result<Self, ()> {
        SecurityProtocol::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or(())
    }
}

/// A broker's registration; also the image's view of a broker's current state.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBrokerRecord {
    /// Host name or address clients connect to.
    #[serde(rename = "brokerHost")]
    pub broker_host: String,
    /// The broker's id, Kafka's `int32`, ≥ 0.
    #[serde(rename = "brokerId")]
    pub broker_id: i32,
    /// Listener port, 1–65535.
    #[serde(rename = "brokerPort")]
    pub broker_port: u16,
    /// Lifecycle status.
    #[serde(rename = "brokerStatus")]
    pub broker_status: BrokerStatus,
    /// 0 at first registration, +1 at every change and re-registration.
    pub epoch: u64,
    /// Server-chosen UUID v4 of this registration; a re-registration gets a new one.
    #[serde(rename = "internalUUID")]
    pub internal_uuid: Uuid,
    /// Rack, when the broker has one.
    #[serde(rename = "rackId", default, skip_serializing_if = "Option::is_none")]
    pub rack_id: Option<String>,
    /// Listener security protocol.
    #[serde(rename = "securityProtocol", default)]
    pub security_protocol: SecurityProtocol,
}

impl RegisterBrokerRecord {
    /// The wire names of the fields a client sends to register (the server sets `internalUUID`
    /// and `epoch`); a change may send all but the last, `rackId`.
    pub const CLIENT_FIELDS: [&'static str; 6] = [
        "brokerId",
        "brokerHost",
        "brokerPort",
        "securityProtocol",
        "brokerStatus",
        "rackId",
    ];
}

/// A topic.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    /// The topic's name (Kafka's rules).
    pub name: String,
    /// Server-chosen UUID v4.
    #[serde(rename = "topicUUID")]
    pub topic_uuid: Uuid,
}

/// A partition of a topic and its replica assignment.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// In-sync replicas, a subset of `replicas`.
    #[serde(rename = "ISR")]
    pub isr: Vec<i32>,
    /// Replicas being added by a reassignment, a subset of `replicas` (Kafka's rule).
    #[serde(rename = "addingReplicas", default)]
    pub adding_replicas: Vec<i32>,
    /// The leader's broker id, one of `replicas` (normalized from an internalUUID if given so);
    /// `-1` once a [`PartitionChangeRecord`] found no replica that could lead.
    pub leader: i32,
    /// 0 at creation, +1 each time a change record gives the partition another leader. Absent
    /// in entries written before it existed, which read as 0 (always in what the server sends).
    #[serde(rename = "leaderEpoch", default)]
    #[schema(required = true)]
    pub leader_epoch: u64,
    /// 0 at creation, +1 at every change record.
    #[serde(rename = "partitionEpoch")]
    pub partition_epoch: u64,
    /// The partition's index within its topic, Kafka's `int32`, ≥ 0.
    #[serde(rename = "partitionId")]
    pub partition_id: i32,
    /// Replicas being removed by a reassignment, a subset of `replicas` (Kafka's rule).
    #[serde(rename = "removingReplicas", default)]
    pub removing_replicas: Vec<i32>,
    /// Broker ids holding a replica; registered, no repeats, non-empty.
    pub replicas: Vec<i32>,
    /// The topic it belongs to.
    #[serde(rename = "topicUUID")]
    pub topic_uuid: Uuid,
}

impl PartitionRecord {
    /// The wire names of the fields a client sends to create a partition (the server sets
    /// `partitionEpoch`).
    pub const CLIENT_FIELDS: [&'static str; 7] = [
        "partitionId",
        "topicUUID",
        "replicas",
        "ISR",
        "removingReplicas",
        "addingReplicas",
        "leader",
    ];
}

/// KRaft's `PartitionChangeRecord`: a partition's new leader and ISR, as the liveness controller
/// (a broker fenced or shutting down) or `/alter_partition` decided them.
///
/// It carries the whole new state of the two fields it changes (not a delta), and the epochs it
/// results in, so that folding it needs nothing but the partition it names and a reader of the
/// log sees each partition's state without replaying arithmetic.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionChangeRecord {
    /// The new in-sync replicas, a subset of the partition's `replicas`.
    #[serde(rename = "ISR")]
    pub isr: Vec<i32>,
    /// The new leader, one of the replicas, or `-1` when none can lead.
    pub leader: i32,
    /// The partition's leader epoch after this change: +1 when `leader` differs from before.
    #[serde(rename = "leaderEpoch")]
    pub leader_epoch: u64,
    /// The partition's epoch after this change: always its epoch before + 1.
    #[serde(rename = "partitionEpoch")]
    pub partition_epoch: u64,
    /// The partition changed, within its topic.
    #[serde(rename = "partitionId")]
    pub partition_id: i32,
    /// The topic of the partition changed.
    #[serde(rename = "topicUUID")]
    pub topic_uuid: Uuid,
}

/// `leader` of a partition that no replica can lead (Kafka's `NO_LEADER`).
pub const NO_LEADER: i32 = -1;

/// A producer id handed to a broker.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdsRecord {
    /// The broker's epoch when the id was handed out (Kafka's fencing check).
    #[serde(rename = "brokerEpoch")]
    pub broker_epoch: u64,
    /// The broker the id belongs to (from the request path).
    #[serde(rename = "brokerId")]
    pub broker_id: i32,
    /// The producer id, Kafka's `int64`, ≥ 0; never handed out twice.
    #[serde(rename = "producerId")]
    pub producer_id: i64,
}

/// A change to a registered broker; `delete_broker` is one with `brokerStatus: CLOSED`.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistrationChangeBrokerRecord {
    /// New host, if changed.
    #[serde(
        rename = "brokerHost",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub broker_host: Option<String>,
    /// The broker changed.
    #[serde(rename = "brokerId")]
    pub broker_id: i32,
    /// New port, if changed.
    #[serde(
        rename = "brokerPort",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub broker_port: Option<u16>,
    /// New status, if changed.
    #[serde(
        rename = "brokerStatus",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub broker_status: Option<BrokerStatus>,
    /// The broker's epoch after this change (its epoch before + 1).
    pub epoch: u64,
    /// New security protocol, if changed.
    #[serde(
        rename = "securityProtocol",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub security_protocol: Option<SecurityProtocol>,
}

/// One metadata record with all server-set fields decided.
///
/// Serialized externally tagged by API.md's record name (`{"TopicRecord": {...}}`), so an entry
/// names its own type on disk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Record {
    /// `RegisterBrokerRecord`
    #[serde(rename = "RegisterBrokerRecord")]
    RegisterBroker(RegisterBrokerRecord),
    /// `TopicRecord`
    #[serde(rename = "TopicRecord")]
    Topic(TopicRecord),
    /// `PartitionRecord`
    #[serde(rename = "PartitionRecord")]
    Partition(PartitionRecord),
    /// `ProducerIdsRecord`
    #[serde(rename = "ProducerIdsRecord")]
    ProducerIds(ProducerIdsRecord),
    /// `BrokerRegistrationChangeBrokerRecord`
    #[serde(rename = "BrokerRegistrationChangeBrokerRecord")]
    BrokerChange(BrokerRegistrationChangeBrokerRecord),
    /// `PartitionChangeRecord`
    #[serde(rename = "PartitionChangeRecord")]
    PartitionChange(PartitionChangeRecord),
}

/// API.md's record names, in the order `/get_metadata` lists them.
pub const RECORD_NAMES: [&str; 6] = [
    "RegisterBrokerRecord",
    "TopicRecord",
    "PartitionRecord",
    "ProducerIdsRecord",
    "BrokerRegistrationChangeBrokerRecord",
    "PartitionChangeRecord",
];

/// `serde_json::to_value` for the record structs: they have only string keys and plain values,
/// so it cannot fail; `Null` stands in rather than a panic should that ever change.
pub(crate) fn to_json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

impl Record {
    /// The record type's name as in API.md.
    pub fn name(&self) -> &'static str {
        match self {
            Record::RegisterBroker(_) => RECORD_NAMES[0],
            Record::Topic(_) => RECORD_NAMES[1],
            Record::Partition(_) => RECORD_NAMES[2],
            Record::ProducerIds(_) => RECORD_NAMES[3],
            Record::BrokerChange(_) => RECORD_NAMES[4],
            Record::PartitionChange(_) => RECORD_NAMES[5],
        }
    }
    /// The record's fields as JSON, API.md's names: [`RecordFields`] as a `Value`.
    pub fn fields_json(&self) -> serde_json::Value {
        to_json(&RecordFields(self))
    }
}

/// A record's fields without the record's name, as `fields` holds them in the log, the stream
/// and the dump: the record type's own `Serialize`, the one JSON rendering of a record.
pub struct RecordFields<'a>(pub &'a Record);

impl Serialize for RecordFields<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Record::RegisterBroker(r) => r.serialize(s),
            Record::Topic(r) => r.serialize(s),
            Record::Partition(r) => r.serialize(s),
            Record::ProducerIds(r) => r.serialize(s),
            Record::BrokerChange(r) => r.serialize(s),
            Record::PartitionChange(r) => r.serialize(s),
        }
    }
}

/// What one Raft entry carries: a record and the leader's timestamp.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetadataCommand {
    /// Set by the leader at proposal, ms since the Unix epoch (UTC); never goes backwards.
    pub timestamp_ms: u64,
    /// The record, every server-set field decided.
    pub record: Record,
}

/// A record as it appears in the log, stream and catch-up answers.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// The entry's Raft index.
    pub offset: u64,
    /// The Raft term the entry was written in (not a broker's epoch).
    pub epoch: u64,
    /// The leader's timestamp, ms since the Unix epoch.
    pub timestamp: u64,
    /// The record type's name ([`Record::name`]).
    #[schema(
        pattern = "^(RegisterBrokerRecord|TopicRecord|PartitionRecord|ProducerIdsRecord|BrokerRegistrationChangeBrokerRecord|PartitionChangeRecord)$"
    )]
    pub name: String,
    /// The record's fields ([`Record::fields_json`]).
    #[schema(value_type = Object)]
    pub fields: serde_json::Value,
}

impl LogRecord {
    /// The wire view of a committed entry at `offset` written in Raft term `epoch`.
    pub fn new(offset: u64, epoch: u64, cmd: &MetadataCommand) -> Self {
        LogRecord {
            offset,
            epoch,
            timestamp: cmd.timestamp_ms,
            name: cmd.record.name().to_string(),
            fields: cmd.record.fields_json(),
        }
    }
}

/// Groups log records by name for `/broker_mgmt` and `/client_mgmt` catch-up answers.
///
/// Every record name is present as a key, with an empty list when no record of that kind is in
/// `records` (so clients can index without checking); lists are in offset order. With
/// `include_producers == false` (`/client_mgmt`) `ProducerIdsRecord` is left out, key included.
/// Records whose name is not one of the six are dropped.
pub fn group_by_name(records: &[LogRecord], include_producers: bool) -> serde_json::Value {
    let mut sorted: Vec<&LogRecord> = records.iter().collect();
    sorted.sort_by_key(|r| r.offset);
    let mut out = serde_json::Map::new();
    for name in RECORD_NAMES {
        if name == "ProducerIdsRecord" && !include_producers {
            continue;
        }
        let list: Vec<serde_json::Value> = sorted
            .iter()
            .filter(|r| r.name == name)
            .map(|r| to_json(*r))
            .collect();
        out.insert(name.to_string(), serde_json::Value::Array(list));
    }
    serde_json::Value::Object(out)
}

#[cfg(test)]
pub(crate) mod tests;
