//! Typed reads of the image: what the state machine, the API views and the tests look up.

use imbl::Vector;
use uuid::Uuid;

use super::{Image, Registration};
use crate::metadata::record::{
    BrokerRegistrationChangeBrokerRecord, PartitionChangeRecord, PartitionRecord,
    ProducerIdsRecord, RegisterBrokerRecord, TopicRecord,
};

impl Image {
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
            + self.partitions.len()
            + self.producers.len()
            + self.broker_changes.len()
            + self.partition_changes.len()) as u64
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
    /// Every topic as (name, topicUUID), by name.
    pub fn all_topics(&self) -> impl Iterator<Item = (&str, &Uuid)> {
        self.topics.iter().map(|(n, u)| (n.as_str(), u))
    }
    /// Every partition, by (topicUUID, partitionId). Each is made from its compact stored
    /// form as it is read (two or so small allocations).
    pub fn all_partitions(&self) -> impl Iterator<Item = PartitionRecord> + '_ {
        self.partitions
            .iter()
            .map(|((u, id), p)| p.to_record(*u, *id))
    }
    /// Every producer registration, by producerId.
    pub fn all_producers(&self) -> impl Iterator<Item = &ProducerIdsRecord> {
        self.producers.values()
    }
    /// A partition by (topicUUID, partitionId).
    pub fn partition(&self, topic_uuid: &Uuid, partition_id: i32) -> Option<PartitionRecord> {
        self.partitions
            .get(&(*topic_uuid, partition_id))
            .map(|p| p.to_record(*topic_uuid, partition_id))
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
    pub fn broker_changes(&self) -> &Vector<BrokerRegistrationChangeBrokerRecord> {
        &self.broker_changes
    }
    /// The partition change records, in offset order.
    pub fn partition_changes(&self) -> &Vector<PartitionChangeRecord> {
        &self.partition_changes
    }
    /// A broker's latest registration (offset = broker epoch, watched or not); `None` when
    /// never registered. An image decoded from a format-2 snapshot has none for the brokers in
    /// it (see `segments-format.md`): they read as epoch 0, not watched.
    pub fn registration(&self, id: i32) -> Option<Registration> {
        self.brokers
            .contains_key(&id)
            .then(|| self.registrations.get(&id).copied().unwrap_or_default())
    }
    /// Every broker's registration, by id (for the liveness controller of a new leader).
    pub fn registrations(&self) -> impl Iterator<Item = (i32, Registration)> + '_ {
        self.brokers
            .keys()
            .map(|id| (*id, self.registrations.get(id).copied().unwrap_or_default()))
    }
}
