//! The image: the current metadata, the fold of the log in offset order.
//!
//! `prepare` (leader, before proposing) validates a request against the image and decides every
//! server-set field; `apply` (every node, in offset order) folds a committed record. Both run the
//! same checks ([`Image::check`]), so a record `prepare` produced applies on the image it was
//! prepared on, and a record that no longer fits (another record committed in between) is refused
//! without touching the image, identically on every node.
//!
//! Decisions where API.md is silent (also in the README):
//! - A `CLOSED` broker cannot be a replica or leader of a new partition: NotFound, as it is not in
//!   `/get_all_brokers` either. `FENCED`/`INIT` brokers can.
//! - A `CLOSED` broker cannot be changed (Conflict): only a new registration brings it back, with
//!   a new `internalUUID`. A change record may itself set `brokerStatus: CLOSED` (like delete).
//! - `/get_broker/{id}` answers a `CLOSED` broker too (its status says so).
//! - A producer id given explicitly may be any free one; the next allocated id is always above
//!   every id ever registered, so no id is handed out twice.
//! - `ProducerIdsRecord.brokerEpoch` must equal the broker's epoch when applied (Kafka's fencing):
//!   a change committed between prepare and apply makes the record refused.
//! - `apply` advances `last_offset` even when it refuses a record: the entry was consumed.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use serde_json::{json, Value};
use uuid::Uuid;

use super::error::DecodeError;
use super::record::{
    to_json, BrokerRegistrationChangeBrokerRecord, BrokerStatus, PartitionRecord,
    ProducerIdsRecord, RegisterBrokerRecord, TopicRecord,
};
use super::request::{validate_topic_name, LeaderRef};
use super::{MetadataCommand, MetadataError, Record, WriteRequest};

/// The current metadata, the fold of the log.
///
/// Topics are the bulk of a large image (a million-record log is mostly topics), so each one
/// costs one name string and one UUID in `topics` plus one UUID in `topic_uuids`; the snapshot
/// encoding lives in [`super::image_codec`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Image {
    /// Current state of every broker ever registered, by id (CLOSED ones included).
    pub(super) brokers: BTreeMap<i32, RegisterBrokerRecord>,
    /// Topic UUIDs by topic name.
    pub(super) topics: BTreeMap<String, Uuid>,
    /// Every topic UUID in `topics` (the index partitions and new topics are checked against).
    pub(super) topic_uuids: UuidSet,
    /// Partitions by topicUUID, then partitionId.
    pub(super) partitions: BTreeMap<Uuid, BTreeMap<i32, PartitionRecord>>,
    /// Producer id registrations by producerId.
    pub(super) producers: BTreeMap<i64, ProducerIdsRecord>,
    /// The id the next allocation hands out: above every id ever registered.
    pub(super) next_producer_id: i64,
    /// Every applied BrokerRegistrationChangeBrokerRecord, in offset order.
    pub(super) broker_changes: Vec<BrokerRegistrationChangeBrokerRecord>,
    /// Offset (Raft index) of the last entry applied; set by `apply` or by the caller for entries
    /// that carry no record.
    pub last_offset: u64,
    /// Epoch (Raft term) of the last entry applied; set by `apply_entry` or by the caller.
    pub last_epoch: u64,
    /// Largest record timestamp applied, so a new leader never proposes an earlier one.
    pub(super) last_timestamp_ms: u64,
}

/// A set of UUIDs hashed with a cheap multiplicative hash: topic UUIDs are random (v4, drawn by
/// the leader), so SipHash's protection against chosen keys buys nothing and costs a lot when a
/// million of them are inserted at startup.
pub(super) type UuidSet = HashSet<Uuid, BuildHasherDefault<UuidHasher>>;

/// The hasher of [`UuidSet`]: FxHash-style folding of the bytes it is given.
#[derive(Default)]
pub(super) struct UuidHasher(u64);

impl Hasher for UuidHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

fn not_found(msg: impl Into<String>) -> MetadataError {
    MetadataError::not_found(msg)
}
fn conflict(msg: impl Into<String>) -> MetadataError {
    MetadataError::conflict(msg)
}
fn bad(msg: impl Into<String>) -> MetadataError {
    MetadataError::bad_request(msg)
}

fn label_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

impl Image {
    /// An empty image, the fold of an empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates a request against this image and decides the server-set fields.
    pub fn prepare(&self, req: WriteRequest) -> Result<Record, MetadataError> {
        req.validate()?;
        let record = match req {
            WriteRequest::RegisterBroker {
                broker_id,
                broker_host,
                broker_port,
                security_protocol,
                broker_status,
                rack_id,
            } => {
                let epoch = match self.brokers.get(&broker_id) {
                    None => 0,
                    Some(b) if b.broker_status == BrokerStatus::Closed => {
                        b.epoch.checked_add(1).ok_or_else(|| {
                            conflict(format!("broker {broker_id}'s epoch is exhausted"))
                        })?
                    }
                    Some(b) => {
                        return Err(conflict(format!(
                            "broker {broker_id} is already registered (status {}); a broker can \
                             register again only after delete_broker",
                            b.broker_status
                        )))
                    }
                };
                let mut internal_uuid = Uuid::new_v4();
                while self
                    .brokers
                    .values()
                    .any(|b| b.internal_uuid == internal_uuid)
                {
                    internal_uuid = Uuid::new_v4();
                }
                Record::RegisterBroker(RegisterBrokerRecord {
                    broker_id,
                    broker_host,
                    broker_port,
                    security_protocol,
                    broker_status,
                    rack_id,
                    internal_uuid,
                    epoch,
                })
            }
            WriteRequest::CreateTopic { name } => {
                let mut topic_uuid = Uuid::new_v4();
                while self.topic_uuids.contains(&topic_uuid) {
                    topic_uuid = Uuid::new_v4();
                }
                Record::Topic(TopicRecord { name, topic_uuid })
            }
            WriteRequest::CreatePartition {
                partition_id,
                topic_uuid,
                replicas,
                isr,
                removing_replicas,
                adding_replicas,
                leader,
            } => {
                let leader = match leader {
                    LeaderRef::Id(id) => id,
                    LeaderRef::InternalUuid(u) => self
                        .brokers
                        .values()
                        .find(|b| b.internal_uuid == u && b.broker_status != BrokerStatus::Closed)
                        .map(|b| b.broker_id)
                        .ok_or_else(|| {
                            not_found(format!("leader: no registered broker has internalUUID {u}"))
                        })?,
                };
                Record::Partition(PartitionRecord {
                    partition_id,
                    topic_uuid,
                    replicas,
                    isr,
                    removing_replicas,
                    adding_replicas,
                    leader,
                    partition_epoch: 0,
                })
            }
            WriteRequest::RegisterProducer {
                broker_id,
                producer_id,
            } => {
                let broker = self.live_broker(broker_id)?;
                let producer_id = match producer_id {
                    Some(p) => p,
                    None => {
                        if self.producers.contains_key(&self.next_producer_id) {
                            return Err(conflict("no producer id is left to allocate"));
                        }
                        self.next_producer_id
                    }
                };
                Record::ProducerIds(ProducerIdsRecord {
                    broker_id,
                    broker_epoch: broker.epoch,
                    producer_id,
                })
            }
            WriteRequest::ChangeBroker {
                broker_id,
                broker_host,
                broker_port,
                security_protocol,
                broker_status,
            } => {
                let broker = self.live_broker(broker_id)?;
                Record::BrokerChange(BrokerRegistrationChangeBrokerRecord {
                    broker_id,
                    broker_host,
                    broker_port,
                    security_protocol,
                    broker_status,
                    epoch: next_epoch(broker)?,
                })
            }
            WriteRequest::DeleteBroker { broker_id } => {
                let broker = match self.live_broker(broker_id) {
                    Err(e) if e.kind == super::ErrorKind::Conflict => {
                        return Err(conflict(format!("broker {broker_id} is already CLOSED")))
                    }
                    other => other?,
                };
                Record::BrokerChange(BrokerRegistrationChangeBrokerRecord {
                    broker_id,
                    broker_host: None,
                    broker_port: None,
                    security_protocol: None,
                    broker_status: Some(BrokerStatus::Closed),
                    epoch: next_epoch(broker)?,
                })
            }
        };
        self.check(&record)?;
        Ok(record)
    }

    /// A registered broker that is not CLOSED: NotFound when unknown, Conflict when CLOSED.
    fn live_broker(&self, id: i32) -> Result<&RegisterBrokerRecord, MetadataError> {
        match self.brokers.get(&id) {
            None => Err(not_found(format!("no broker {id} is registered"))),
            Some(b) if b.broker_status == BrokerStatus::Closed => Err(conflict(format!(
                "broker {id} is CLOSED; register it again first"
            ))),
            Some(b) => Ok(b),
        }
    }

    /// Whether `record` can be folded into this image; `Err` says why not. Used by both
    /// `prepare` and `apply`, so the two can never disagree.
    pub fn check(&self, record: &Record) -> Result<(), MetadataError> {
        match record {
            Record::RegisterBroker(r) => {
                if r.broker_id < 0 || !label_ok(&r.broker_host) || r.broker_port == 0 {
                    return Err(bad(format!(
                        "broker {} has an invalid id, host or port",
                        r.broker_id
                    )));
                }
                if r.rack_id.as_deref().is_some_and(|s| !label_ok(s)) {
                    return Err(bad("rackId is invalid"));
                }
                if r.broker_status == BrokerStatus::Closed {
                    return Err(bad("a broker cannot register as CLOSED"));
                }
                let expected = match self.brokers.get(&r.broker_id) {
                    None => 0,
                    Some(b) if b.broker_status == BrokerStatus::Closed => b
                        .epoch
                        .checked_add(1)
                        .ok_or_else(|| conflict("epoch exhausted"))?,
                    Some(b) => {
                        return Err(conflict(format!(
                            "broker {} is already registered (status {})",
                            r.broker_id, b.broker_status
                        )))
                    }
                };
                if r.epoch != expected {
                    return Err(conflict(format!(
                        "broker {} registration has epoch {}, expected {expected}",
                        r.broker_id, r.epoch
                    )));
                }
                if self
                    .brokers
                    .values()
                    .any(|b| b.internal_uuid == r.internal_uuid)
                {
                    return Err(conflict(format!(
                        "internalUUID {} is already used",
                        r.internal_uuid
                    )));
                }
                Ok(())
            }
            Record::Topic(t) => {
                validate_topic_name(&t.name)?;
                if self.topics.contains_key(&t.name) {
                    return Err(conflict(format!("topic {:?} already exists", t.name)));
                }
                if self.topic_uuids.contains(&t.topic_uuid) {
                    return Err(conflict(format!(
                        "topicUUID {} is already used",
                        t.topic_uuid
                    )));
                }
                Ok(())
            }
            Record::Partition(p) => {
                // Shape rules are the request's; re-run them on the record.
                WriteRequest::CreatePartition {
                    partition_id: p.partition_id,
                    topic_uuid: p.topic_uuid,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    removing_replicas: p.removing_replicas.clone(),
                    adding_replicas: p.adding_replicas.clone(),
                    leader: LeaderRef::Id(p.leader),
                }
                .validate()?;
                if !self.topic_uuids.contains(&p.topic_uuid) {
                    return Err(not_found(format!(
                        "no topic has topicUUID {}",
                        p.topic_uuid
                    )));
                }
                for id in &p.replicas {
                    match self.brokers.get(id) {
                        None => {
                            return Err(not_found(format!("replica broker {id} is not registered")))
                        }
                        Some(b) if b.broker_status == BrokerStatus::Closed => {
                            return Err(not_found(format!(
                                "replica broker {id} is CLOSED; register it again first"
                            )))
                        }
                        Some(_) => {}
                    }
                }
                if self
                    .partitions
                    .get(&p.topic_uuid)
                    .is_some_and(|m| m.contains_key(&p.partition_id))
                {
                    return Err(conflict(format!(
                        "partition {} of topic {} already exists",
                        p.partition_id, p.topic_uuid
                    )));
                }
                Ok(())
            }
            Record::ProducerIds(r) => {
                if r.producer_id < 0 {
                    return Err(bad(format!(
                        "producerId must not be negative, got {}",
                        r.producer_id
                    )));
                }
                let broker = self.live_broker(r.broker_id)?;
                if let Some(owner) = self.producers.get(&r.producer_id) {
                    return Err(conflict(format!(
                        "producerId {} is already registered to broker {}",
                        r.producer_id, owner.broker_id
                    )));
                }
                if r.broker_epoch != broker.epoch {
                    return Err(conflict(format!(
                        "brokerEpoch {} is stale: broker {} is at epoch {}",
                        r.broker_epoch, r.broker_id, broker.epoch
                    )));
                }
                Ok(())
            }
            Record::BrokerChange(c) => {
                let broker = self.live_broker(c.broker_id)?;
                if c.broker_host.is_none()
                    && c.broker_port.is_none()
                    && c.security_protocol.is_none()
                    && c.broker_status.is_none()
                {
                    return Err(bad("a broker change must set at least one field"));
                }
                if c.broker_host.as_deref().is_some_and(|h| !label_ok(h))
                    || c.broker_port == Some(0)
                {
                    return Err(bad("broker change has an invalid host or port"));
                }
                let expected = next_epoch(broker)?;
                if c.epoch != expected {
                    return Err(conflict(format!(
                        "change of broker {} has epoch {}, expected {expected}",
                        c.broker_id, c.epoch
                    )));
                }
                Ok(())
            }
        }
    }

    /// Folds one committed record into the image.
    ///
    /// Deterministic (no clock, no randomness). A record that does not fit is refused with the
    /// image's records untouched; `last_offset` (and `last_timestamp_ms`) advance either way.
    pub fn apply(&mut self, offset: u64, cmd: &MetadataCommand) -> Result<(), MetadataError> {
        self.last_offset = offset;
        self.last_timestamp_ms = self.last_timestamp_ms.max(cmd.timestamp_ms);
        self.check(&cmd.record)?;
        match &cmd.record {
            Record::RegisterBroker(r) => {
                self.brokers.insert(r.broker_id, r.clone());
            }
            Record::Topic(t) => {
                self.topic_uuids.insert(t.topic_uuid);
                self.topics.insert(t.name.clone(), t.topic_uuid);
            }
            Record::Partition(p) => {
                self.partitions
                    .entry(p.topic_uuid)
                    .or_default()
                    .insert(p.partition_id, p.clone());
            }
            Record::ProducerIds(r) => {
                self.producers.insert(r.producer_id, r.clone());
                self.next_producer_id = self.next_producer_id.max(r.producer_id.saturating_add(1));
            }
            Record::BrokerChange(c) => {
                if let Some(b) = self.brokers.get_mut(&c.broker_id) {
                    if let Some(h) = &c.broker_host {
                        b.broker_host = h.clone();
                    }
                    if let Some(p) = c.broker_port {
                        b.broker_port = p;
                    }
                    if let Some(s) = c.security_protocol {
                        b.security_protocol = s;
                    }
                    if let Some(s) = c.broker_status {
                        b.broker_status = s;
                    }
                    b.epoch = c.epoch;
                }
                self.broker_changes.push(c.clone());
            }
        }
        Ok(())
    }

    /// [`Image::apply`] that also records the entry's Raft term as `last_epoch`.
    pub fn apply_entry(
        &mut self,
        offset: u64,
        epoch: u64,
        cmd: &MetadataCommand,
    ) -> Result<(), MetadataError> {
        self.last_epoch = epoch;
        self.apply(offset, cmd)
    }

    /// Folds `(offset, command)` pairs into an empty image, skipping refused records as the
    /// state machine does: replaying the same log always gives the same image.
    pub fn fold<'a, I>(entries: I) -> Image
    where
        I: IntoIterator<Item = (u64, &'a MetadataCommand)>,
    {
        let mut image = Image::new();
        for (offset, cmd) in entries {
            let _ = image.apply(offset, cmd);
        }
        image
    }

    /// Rebuilds an image from its `/get_metadata` view ([`Image::metadata_json`]), as a stream
    /// reader receives it in an `event: snapshot`, so that it can fold the records after it.
    ///
    /// `last_offset`/`last_epoch` are the snapshot's; `last_timestamp_ms` is not in the view and
    /// reads as 0; the next producer id is one above the largest registered (ids are never
    /// removed, so this is what the server holds). An inconsistent view is refused.
    pub fn from_metadata_json(
        metadata: &Value,
        offset: u64,
        epoch: u64,
    ) -> Result<Image, DecodeError> {
        fn list<T: serde::de::DeserializeOwned>(
            metadata: &Value,
            name: &'static str,
        ) -> Result<Vec<T>, DecodeError> {
            match metadata.get(name) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(v) => serde_json::from_value(v.clone()).map_err(|e| DecodeError {
                    what: "metadata view",
                    reason: format!("{name}: {e}"),
                }),
            }
        }
        if !metadata.is_object() {
            return Err(DecodeError {
                what: "metadata view",
                reason: "not a JSON object".into(),
            });
        }
        let mut image = Image::new();
        for b in list::<RegisterBrokerRecord>(metadata, "RegisterBrokerRecord")? {
            image.brokers.insert(b.broker_id, b);
        }
        for t in list::<TopicRecord>(metadata, "TopicRecord")? {
            if !image.topic_uuids.insert(t.topic_uuid) {
                return Err(DecodeError {
                    what: "metadata view",
                    reason: format!("topicUUID {} is used twice", t.topic_uuid),
                });
            }
            if image.topics.insert(t.name.clone(), t.topic_uuid).is_some() {
                return Err(DecodeError {
                    what: "metadata view",
                    reason: format!("topic {:?} is listed twice", t.name),
                });
            }
        }
        for p in list::<PartitionRecord>(metadata, "PartitionRecord")? {
            image
                .partitions
                .entry(p.topic_uuid)
                .or_default()
                .insert(p.partition_id, p);
        }
        for p in list::<ProducerIdsRecord>(metadata, "ProducerIdsRecord")? {
            image.next_producer_id = image.next_producer_id.max(p.producer_id.saturating_add(1));
            image.producers.insert(p.producer_id, p);
        }
        image.broker_changes = list(metadata, "BrokerRegistrationChangeBrokerRecord")?;
        image.last_offset = offset;
        image.last_epoch = epoch;
        image.check_consistency().map_err(|reason| DecodeError {
            what: "metadata view",
            reason,
        })?;
        Ok(image)
    }

    /// The invariants between the image's maps; `decode` refuses an image that breaks one.
    pub(super) fn check_consistency(&self) -> Result<(), String> {
        if let Some((id, _)) = self.brokers.iter().find(|(id, b)| **id != b.broker_id) {
            return Err(format!("broker entry {id} holds another broker"));
        }
        if self.topics.len() != self.topic_uuids.len()
            || self.topics.values().any(|u| !self.topic_uuids.contains(u))
        {
            return Err("topic indexes disagree".into());
        }
        for (u, parts) in &self.partitions {
            if !self.topic_uuids.contains(u)
                || parts
                    .iter()
                    .any(|(id, p)| *id != p.partition_id || p.topic_uuid != *u)
            {
                return Err(format!("partitions of {u} disagree with the topics"));
            }
        }
        if self.producers.iter().any(|(id, p)| {
            *id != p.producer_id || (*id >= self.next_producer_id && *id != i64::MAX)
        }) {
            return Err("producer ids disagree with the next free id".into());
        }
        Ok(())
    }

    // ---- typed reads ----

    /// The largest record timestamp applied (0 for an empty image), kept in snapshots so that a
    /// node restarted from one never proposes a timestamp earlier than the log's.
    pub fn last_timestamp_ms(&self) -> u64 {
        self.last_timestamp_ms
    }

    /// How many entities the image holds (brokers, topics, partitions, producer ids, change
    /// records): what the cost of encoding it grows with.
    pub fn entity_count(&self) -> u64 {
        (self.brokers.len()
            + self.topics.len()
            + self.partitions.values().map(|m| m.len()).sum::<usize>()
            + self.producers.len()
            + self.broker_changes.len()) as u64
    }

    /// A broker's current state (CLOSED ones too).
    pub fn broker_record(&self, id: i32) -> Option<&RegisterBrokerRecord> {
        self.brokers.get(&id)
    }
    /// Every broker ever registered, by id.
    pub fn all_brokers(&self) -> impl Iterator<Item = &RegisterBrokerRecord> {
        self.brokers.values()
    }
    /// A topic by name.
    pub fn topic_record(&self, name: &str) -> Option<TopicRecord> {
        self.topics.get(name).map(|u| TopicRecord {
            name: name.to_string(),
            topic_uuid: *u,
        })
    }
    /// Whether a topic has this topicUUID.
    pub fn has_topic_uuid(&self, uuid: &Uuid) -> bool {
        self.topic_uuids.contains(uuid)
    }
    /// Every topic as (name, topicUUID), by name.
    pub fn all_topics(&self) -> impl Iterator<Item = (&str, &Uuid)> {
        self.topics.iter().map(|(n, u)| (n.as_str(), u))
    }
    /// Every partition, by (topicUUID, partitionId).
    pub fn all_partitions(&self) -> impl Iterator<Item = &PartitionRecord> {
        self.partitions.values().flat_map(|m| m.values())
    }
    /// Every producer registration, by producerId.
    pub fn all_producers(&self) -> impl Iterator<Item = &ProducerIdsRecord> {
        self.producers.values()
    }
    /// A partition by (topicUUID, partitionId).
    pub fn partition(&self, topic_uuid: &Uuid, partition_id: i32) -> Option<&PartitionRecord> {
        self.partitions.get(topic_uuid)?.get(&partition_id)
    }
    /// A producer id's registration.
    pub fn producer(&self, producer_id: i64) -> Option<&ProducerIdsRecord> {
        self.producers.get(&producer_id)
    }
    /// The id the next allocation would hand out.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }
    /// The change records, in offset order.
    pub fn broker_changes(&self) -> &[BrokerRegistrationChangeBrokerRecord] {
        &self.broker_changes
    }

    // ---- JSON views for the API ----

    /// `/get_metadata`'s `metadata`: the current state of each entity under its record name,
    /// and the change-record history. Brokers by id, topics by name, partitions by
    /// (topicUUID, partitionId), producers by id.
    pub fn metadata_json(&self) -> Value {
        json!({
            "RegisterBrokerRecord": self.brokers.values().map(to_json).collect::<Vec<_>>(),
            "TopicRecord": self
                .topics
                .iter()
                .map(|(name, u)| json!({"name": name, "topicUUID": u.to_string()}))
                .collect::<Vec<_>>(),
            "PartitionRecord": self.partitions(None),
            "ProducerIdsRecord": self.producer_ids(),
            "BrokerRegistrationChangeBrokerRecord":
                self.broker_changes.iter().map(to_json).collect::<Vec<_>>(),
        })
    }

    /// `/get_all_brokers`: brokers not CLOSED, by id.
    pub fn brokers_not_closed(&self) -> Value {
        Value::Array(
            self.brokers
                .values()
                .filter(|b| b.broker_status != BrokerStatus::Closed)
                .map(to_json)
                .collect(),
        )
    }

    /// `/get_broker/{id}`: one broker (a CLOSED one too), NotFound if never registered.
    pub fn broker(&self, id: i32) -> Result<Value, MetadataError> {
        self.brokers
            .get(&id)
            .map(to_json)
            .ok_or_else(|| not_found(format!("no broker {id} is registered")))
    }

    /// `/get_topic/{name}`: `{"name", "topicUUID", "partitions": [...]}`, NotFound if absent.
    pub fn topic(&self, name: &str) -> Result<Value, MetadataError> {
        let u = self
            .topics
            .get(name)
            .ok_or_else(|| not_found(format!("no topic is named {name:?}")))?;
        Ok(json!({
            "name": name,
            "topicUUID": u.to_string(),
            "partitions": self.partitions(Some(*u)),
        }))
    }

    /// `/get_partitions`: every partition, or those of one topicUUID (empty if unknown).
    pub fn partitions(&self, topic_uuid: Option<Uuid>) -> Value {
        let iter: Box<dyn Iterator<Item = &PartitionRecord>> = match topic_uuid {
            Some(u) => Box::new(self.partitions.get(&u).into_iter().flat_map(|m| m.values())),
            None => Box::new(self.partitions.values().flat_map(|m| m.values())),
        };
        Value::Array(iter.map(to_json).collect())
    }

    /// `/get_producer_ids`: every producer registration, by producerId.
    pub fn producer_ids(&self) -> Value {
        Value::Array(self.producers.values().map(to_json).collect())
    }
}

/// A broker's epoch + 1, the epoch of its next change record.
fn next_epoch(b: &RegisterBrokerRecord) -> Result<u64, MetadataError> {
    b.epoch
        .checked_add(1)
        .ok_or_else(|| conflict(format!("broker {}'s epoch is exhausted", b.broker_id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::record::SecurityProtocol;
    use crate::metadata::ErrorKind;
    use proptest::prelude::*;

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
        orphan
            .partitions
            .entry(Uuid::from_u128(7))
            .or_default()
            .insert(
                0,
                PartitionRecord {
                    partition_id: 0,
                    topic_uuid: Uuid::from_u128(7),
                    replicas: vec![1],
                    isr: vec![1],
                    removing_replicas: vec![],
                    adding_replicas: vec![],
                    leader: 1,
                    partition_epoch: 0,
                },
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

    #[derive(Clone, Debug)]
    enum Op {
        Reg(i32, u8, u16),
        Topic(u8),
        Part(u8, i32, Vec<i32>, usize, bool),
        Prod(i32, Option<i64>),
        Change(i32, Option<u16>, Option<u8>),
        Delete(i32),
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
            b.prop_map(Op::Delete),
        ]
    }

    fn to_request(image: &Image, op: Op) -> WriteRequest {
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
                        prop_assert_eq!(MetadataCommand::decode(&cmd.encode()).unwrap(), cmd.clone());
                        h.log.push((offset, cmd));
                    }
                }
            }
            prop_assert_eq!(Image::decode(&h.image.encode()).unwrap(), h.image.clone());
            let mut viewed = Image::from_metadata_json(&h.image.metadata_json(), h.image.last_offset, h.image.last_epoch).unwrap();
            viewed.last_timestamp_ms = h.image.last_timestamp_ms;
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
}
