//! The image as the API shows it: `/get_metadata`, `/get_all_brokers`, `/get_broker`,
//! `/get_topic`, `/get_partitions` and `/get_producer_ids`.
//!
//! `/get_metadata` is written straight from the image, without building a `serde_json::Value`
//! tree first: for a large image the tree costs far more than the answer (a million-record image
//! became about 1.5 GiB of `Value`s for a 90 MB body). [`MetadataView`] is the one rendering of
//! the whole image; [`Image::metadata_json`] is that view as a `Value`, for the readers that need
//! one (snapshot events, the stream client's rebuild, the tests).

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};
use serde_json::{json, Value};
use uuid::Uuid;

use super::seq::Each;
use super::Image;
use crate::metadata::record::{to_json, BrokerStatus, PartitionRecord};
use crate::metadata::MetadataError;

/// The `metadata` object of `/get_metadata`, borrowed from an image.
pub struct MetadataView<'a>(pub &'a Image);

/// One topic as `{"name", "topicUUID"}`, the TopicRecord's wire form.
struct TopicView<'a>(&'a str, &'a Uuid);

impl Serialize for TopicView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("TopicRecord", 2)?;
        st.serialize_field("name", self.0)?;
        st.serialize_field("topicUUID", self.1)?;
        st.end()
    }
}

impl Serialize for MetadataView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let img = self.0;
        // Keys in the order `serde_json::Value` (a sorted map) gives them.
        let mut m = s.serialize_map(Some(6))?;
        m.serialize_entry(
            "BrokerRegistrationChangeBrokerRecord",
            &Each(|| img.broker_changes().iter()),
        )?;
        m.serialize_entry(
            "PartitionChangeRecord",
            &Each(|| img.partition_changes().iter()),
        )?;
        m.serialize_entry("PartitionRecord", &Each(|| img.all_partitions()))?;
        m.serialize_entry("ProducerIdsRecord", &Each(|| img.all_producers()))?;
        m.serialize_entry("RegisterBrokerRecord", &Each(|| img.all_brokers()))?;
        m.serialize_entry(
            "TopicRecord",
            &Each(|| img.all_topics().map(|(n, u)| TopicView(n, u))),
        )?;
        m.end()
    }
}

/// `/get_metadata`'s whole answer: `{"epoch", "metadata", "offset"}`.
pub struct MetadataAnswer<'a> {
    /// The image.
    pub image: &'a Image,
    /// The applied offset the image reflects.
    pub offset: u64,
    /// The Raft term of that offset.
    pub epoch: u64,
}

impl Serialize for MetadataAnswer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("epoch", &self.epoch)?;
        m.serialize_entry("metadata", &MetadataView(self.image))?;
        m.serialize_entry("offset", &self.offset)?;
        m.end()
    }
}

impl Image {
    /// `/get_metadata`'s `metadata` as a `Value`: [`MetadataView`] (the current state of each
    /// entity under its record name, and the two change-record histories), for the snapshot events
    /// and the readers that compare or rebuild it.
    pub fn metadata_json(&self) -> Value {
        to_json(&MetadataView(self))
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
            .ok_or_else(|| MetadataError::not_found(format!("no broker {id} is registered")))
    }

    /// `/get_topic/{name}`: `{"name", "topicUUID", "partitions": [...]}`, NotFound if absent.
    pub fn topic(&self, name: &str) -> Result<Value, MetadataError> {
        let u = self
            .topics
            .get(name)
            .ok_or_else(|| MetadataError::not_found(format!("no topic is named {name:?}")))?;
        Ok(json!({
            "name": name,
            "topicUUID": u.to_string(),
            "partitions": self.partitions(Some(*u)),
        }))
    }

    /// `/get_partitions`: every partition, or those of one topicUUID (empty if unknown).
    pub fn partitions(&self, topic_uuid: Option<Uuid>) -> Value {
        let iter: Box<dyn Iterator<Item = PartitionRecord>> = match topic_uuid {
            Some(u) => Box::new(
                self.partitions
                    .range(super::topic_range(u))
                    .map(|((u, id), p)| p.to_record(*u, *id)),
            ),
            None => Box::new(self.all_partitions()),
        };
        Value::Array(iter.map(|p| to_json(&p)).collect())
    }

    /// `/get_producer_ids`: every producer registration, by producerId.
    pub fn producer_ids(&self) -> Value {
        Value::Array(self.producers.values().map(to_json).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{
        BrokerStatus, LeaderRef, MetadataCommand, SecurityProtocol, WriteRequest,
    };

    fn run(img: &mut Image, req: WriteRequest) {
        let record = img.prepare(req).expect("valid request");
        let offset = img.last_offset + 1;
        img.apply(
            offset,
            &MetadataCommand {
                timestamp_ms: offset,
                record,
            },
        )
        .expect("applies");
    }

    #[test]
    fn view_equals_the_value_tree() {
        let mut img = Image::new();
        let empty = serde_json::to_string(&MetadataView(&img)).unwrap();
        assert_eq!(
            empty,
            r#"{"BrokerRegistrationChangeBrokerRecord":[],"PartitionChangeRecord":[],"PartitionRecord":[],"ProducerIdsRecord":[],"RegisterBrokerRecord":[],"TopicRecord":[]}"#
        );
        for id in 1..=3 {
            run(
                &mut img,
                WriteRequest::RegisterBroker {
                    broker_id: id,
                    broker_host: format!("h{id}"),
                    broker_port: 9092,
                    security_protocol: SecurityProtocol::default(),
                    broker_status: BrokerStatus::Alive,
                    rack_id: None,
                },
            );
        }
        for t in ["b", "a", "c"] {
            run(&mut img, WriteRequest::CreateTopic { name: t.into() });
        }
        let u = img.topic_record("a").unwrap().topic_uuid;
        run(
            &mut img,
            WriteRequest::CreatePartition {
                partition_id: 0,
                topic_uuid: u,
                replicas: vec![1, 2],
                isr: vec![1, 2],
                removing_replicas: vec![],
                adding_replicas: vec![],
                leader: LeaderRef::Id(1),
            },
        );
        run(
            &mut img,
            WriteRequest::RegisterProducer {
                broker_id: 2,
                producer_id: None,
            },
        );
        run(
            &mut img,
            WriteRequest::ChangeBroker {
                broker_id: 3,
                broker_host: None,
                broker_port: Some(9093),
                security_protocol: None,
                broker_status: Some(BrokerStatus::Fenced),
            },
        );
        let answer = MetadataAnswer {
            image: &img,
            offset: 9,
            epoch: 2,
        };
        // The document built independently as a `Value` tree from the typed reads: the same
        // bytes (the records' fields are declared in the sorted order a tree prints).
        let tree = serde_json::json!({"offset": 9, "epoch": 2, "metadata": {
            "RegisterBrokerRecord": img.all_brokers().map(to_json).collect::<Vec<_>>(),
            "TopicRecord": img.all_topics()
                .map(|(name, u)| serde_json::json!({"name": name, "topicUUID": u.to_string()}))
                .collect::<Vec<_>>(),
            "PartitionRecord": img.all_partitions().map(|p| to_json(&p)).collect::<Vec<_>>(),
            "ProducerIdsRecord": img.all_producers().map(to_json).collect::<Vec<_>>(),
            "BrokerRegistrationChangeBrokerRecord":
                img.broker_changes().iter().map(to_json).collect::<Vec<_>>(),
            "PartitionChangeRecord":
                img.partition_changes().iter().map(to_json).collect::<Vec<_>>(),
        }});
        assert_eq!(
            serde_json::to_string(&answer).unwrap(),
            serde_json::to_string(&tree).unwrap()
        );
        assert_eq!(img.metadata_json(), tree["metadata"]);
        let direct: serde_json::Value = serde_json::to_value(&answer).unwrap();
        assert_eq!(
            direct["metadata"]["TopicRecord"].as_array().unwrap().len(),
            3
        );
        assert_eq!(
            direct["metadata"]["BrokerRegistrationChangeBrokerRecord"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }
}
