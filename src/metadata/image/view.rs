//! `/get_metadata`'s JSON written straight from the image, without building a
//! `serde_json::Value` tree first.
//!
//! For a large image the tree costs far more than the answer: a million-record image became
//! about 1.5 GiB of `Value`s for a 90 MB body. [`MetadataView`] serializes the same document
//! (the same keys, in the same order, and the same values as [`Image::metadata_json`]) while
//! walking the maps.

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};
use uuid::Uuid;

use super::image::Image;

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

/// Serializes an iterator as a JSON array without collecting it.
struct Each<F>(F);

impl<F, I> Serialize for Each<F>
where
    F: Fn() -> I,
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq((self.0)())
    }
}

impl Serialize for MetadataView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let img = self.0;
        // Keys in the order `serde_json::Value` (a sorted map) gives them.
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("BrokerRegistrationChangeBrokerRecord", img.broker_changes())?;
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
        let empty = serde_json::to_value(MetadataView(&img)).unwrap();
        assert_eq!(empty, img.metadata_json());
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
        // The same document; only the order of each record's own fields may differ (the tree
        // sorts them, the view keeps the record's declaration order).
        let direct: serde_json::Value =
            serde_json::from_slice(&serde_json::to_vec(&answer).unwrap()).unwrap();
        let tree = serde_json::json!({"offset": 9, "epoch": 2, "metadata": img.metadata_json()});
        assert_eq!(direct, tree);
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
