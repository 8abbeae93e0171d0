//! An image rebuilt from its `/get_metadata` JSON (what a stream reader receives in an
//! `event: snapshot`), and the invariants between the image's maps that every rebuild checks.

use serde_json::Value;

use super::{Image, StoredPartition, TopicName};
use crate::metadata::error::DecodeError;
use crate::metadata::record::{
    PartitionRecord, ProducerIdsRecord, RegisterBrokerRecord, TopicRecord,
};

impl Image {
    /// Rebuilds an image from its `/get_metadata` view ([`Image::metadata_json`]), as a stream
    /// reader receives it in an `event: snapshot`, so that it can fold the records after it.
    ///
    /// `last_offset`/`last_epoch` are the snapshot's; `last_timestamp_ms` and the brokers'
    /// registrations (broker epochs, which only the leader's liveness controller checks) are not
    /// in the view and read as 0; the next producer id is one above the largest registered (ids are never
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
            if image.topic_uuids.insert(t.topic_uuid, ()).is_some() {
                return Err(DecodeError {
                    what: "metadata view",
                    reason: format!("topicUUID {} is used twice", t.topic_uuid),
                });
            }
            if image
                .topics
                .insert(TopicName::new(&t.name), t.topic_uuid)
                .is_some()
            {
                return Err(DecodeError {
                    what: "metadata view",
                    reason: format!("topic {:?} is listed twice", t.name),
                });
            }
        }
        for p in list::<PartitionRecord>(metadata, "PartitionRecord")? {
            image
                .partitions
                .insert((p.topic_uuid, p.partition_id), StoredPartition::new(&p));
        }
        for p in list::<ProducerIdsRecord>(metadata, "ProducerIdsRecord")? {
            image.next_producer_id = image.next_producer_id.max(p.producer_id.saturating_add(1));
            image.producers.insert(p.producer_id, p);
        }
        image.broker_changes = list(metadata, "BrokerRegistrationChangeBrokerRecord")?
            .into_iter()
            .collect();
        image.partition_changes = list(metadata, "PartitionChangeRecord")?
            .into_iter()
            .collect();
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
            || self
                .topics
                .values()
                .any(|u| !self.topic_uuids.contains_key(u))
        {
            return Err("topic indexes disagree".into());
        }
        for (u, _) in self.partitions.keys() {
            if !self.topic_uuids.contains_key(u) {
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
}
