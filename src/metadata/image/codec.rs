//! The image's snapshot encoding (format 3): a short sequence of MessagePack values, written
//! and read in one pass, that a node restarting on a large log can load fast. Format 2 (the same
//! without the last two parts) is still read.
//!
//! Format 1 serialized the in-memory maps as named MessagePack maps, which stored every topic
//! name three times and rebuilt each map one insert at a time. Format 2 stores each entity once,
//! in key order, so decoding bulk-builds the maps from sorted runs. The byte layout is specified
//! in `segments-format.md` ("Snapshot payload").
//!
//! Every value is read with bounds checks: any input gives an image or a [`DecodeError`],
//! never a panic, and an image whose parts disagree (a partition of an unknown topic, a topic
//! listed twice) is refused.

use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use super::seq::Each;
use super::{Image, Registration, RunMap, StoredPartition, TopicName};
use crate::metadata::error::DecodeError;
use crate::metadata::record::{
    BrokerRegistrationChangeBrokerRecord, PartitionChangeRecord, PartitionRecord,
    ProducerIdsRecord, RegisterBrokerRecord,
};

/// The first value of every snapshot payload: `["yakt-image", FORMAT]`.
const MAGIC: &str = "yakt-image";
/// The payload format this build writes.
const IMAGE_FORMAT: u32 = 3;
/// The oldest payload format this build reads: format 2 lacks the registrations and the
/// partition change records (it was written before they existed).
const OLDEST_FORMAT: u32 = 2;

fn err(reason: impl Into<String>) -> DecodeError {
    DecodeError {
        what: "image",
        reason: reason.into(),
    }
}

impl Image {
    /// The snapshot payload (format 3): `["yakt-image", 3]`, then `[last_offset, last_epoch,
    /// last_timestamp_ms, next_producer_id]`, then five arrays in key order: brokers, topics as
    /// `[name, uuid]` pairs, partitions, producers (named maps), broker changes (offset order);
    /// then registrations as `[brokerId, {"brokerEpoch", "watched"}]` pairs by id and the
    /// partition change records (offset order).
    pub fn encode(&self) -> Vec<u8> {
        // A topic is about 40 bytes encoded; partitions about 150.
        let estimate = 64 + self.topics.len() * 40 + self.partitions.len() * 150;
        let mut out = Vec::with_capacity(estimate);
        let mut ser = rmp_serde::Serializer::new(&mut out).with_struct_map();
        // Cannot fail: writing plain data into a Vec.
        let _ = (MAGIC, IMAGE_FORMAT).serialize(&mut ser);
        let _ = (
            self.last_offset,
            self.last_epoch,
            self.last_timestamp_ms,
            self.next_producer_id,
        )
            .serialize(&mut ser);
        let _ = Each(|| self.brokers.values()).serialize(&mut ser);
        let _ = Each(|| self.topics.iter()).serialize(&mut ser);
        let _ = Each(|| self.all_partitions()).serialize(&mut ser);
        let _ = Each(|| self.producers.values()).serialize(&mut ser);
        let _ = Each(|| self.broker_changes.iter()).serialize(&mut ser);
        let _ = Each(|| self.registrations.iter()).serialize(&mut ser);
        let _ = Each(|| self.partition_changes.iter()).serialize(&mut ser);
        out
    }

    /// Reads a snapshot payload written by [`Image::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Image, DecodeError> {
        let mut rest = bytes;
        let image = decode_parts(&mut rmp_serde::Deserializer::new(&mut rest))?;
        if !rest.is_empty() {
            return Err(err(format!(
                "{} bytes after the last part of the image",
                rest.len()
            )));
        }
        Ok(image)
    }
}

/// The deserializer over the payload's remaining bytes.
type De<'a, 'b> = rmp_serde::Deserializer<rmp_serde::decode::ReadReader<&'a mut &'b [u8]>>;

/// Reads the next value of the payload, naming the part on failure.
fn part<T: DeserializeOwned>(de: &mut De<'_, '_>, what: &str) -> Result<T, DecodeError> {
    T::deserialize(de).map_err(|e| err(format!("{what}: {e}")))
}

fn decode_parts(de: &mut De<'_, '_>) -> Result<Image, DecodeError> {
    let (magic, format): (String, u32) = part(de, "header")?;
    if magic != MAGIC {
        return Err(err(format!("header names {magic:?}, not {MAGIC:?}")));
    }
    if !(OLDEST_FORMAT..=IMAGE_FORMAT).contains(&format) {
        return Err(err(format!(
            "payload format {format} is not one of the formats {OLDEST_FORMAT}-{IMAGE_FORMAT} \
             this build reads"
        )));
    }
    let (last_offset, last_epoch, last_timestamp_ms, next_producer_id): (u64, u64, u64, i64) =
        part(de, "positions")?;
    let mut image = Image {
        last_offset,
        last_epoch,
        last_timestamp_ms,
        next_producer_id,
        ..Image::default()
    };

    // Each part is checked as it is read (keys unique, in order, pointing at known topics), so
    // the decoded image is consistent by construction.
    for b in part::<Vec<RegisterBrokerRecord>>(de, "brokers")? {
        let id = b.broker_id;
        if image.brokers.insert(id, b).is_some() {
            return Err(err(format!("broker {id} is listed twice")));
        }
    }

    // Topics come sorted by name, so the map is bulk-built rather than inserted one by one.
    let topics: Vec<(TopicName, Uuid)> = part(de, "topics")?;
    if let Some(w) = topics.windows(2).find(|w| w[0].0 >= w[1].0) {
        return Err(err(format!(
            "topics out of order or repeated at {:?}",
            w[1].0
        )));
    }
    let mut uuids: Vec<(Uuid, ())> = topics.iter().map(|(_, u)| (*u, ())).collect();
    uuids.sort_unstable_by_key(|(u, _)| *u);
    if let Some(w) = uuids.windows(2).find(|w| w[0].0 == w[1].0) {
        let u = w[0].0;
        let names: Vec<&TopicName> = topics
            .iter()
            .filter(|(_, t)| *t == u)
            .map(|(n, _)| n)
            .collect();
        return Err(err(format!("topicUUID {u} of {names:?} is used twice")));
    }
    image.topic_uuids = RunMap::from_sorted(uuids);
    image.topics = RunMap::from_sorted(topics);

    for p in part::<Vec<PartitionRecord>>(de, "partitions")? {
        let (u, id) = (p.topic_uuid, p.partition_id);
        if !image.topic_uuids.contains_key(&u) {
            return Err(err(format!("partition {id} of unknown topicUUID {u}")));
        }
        if image
            .partitions
            .insert((u, id), StoredPartition::new(&p))
            .is_some()
        {
            return Err(err(format!("partition {id} of {u} is listed twice")));
        }
    }
    for p in part::<Vec<ProducerIdsRecord>>(de, "producers")? {
        let id = p.producer_id;
        if id >= image.next_producer_id && id != i64::MAX {
            return Err(err(format!(
                "producer id {id} is not below the next free id {}",
                image.next_producer_id
            )));
        }
        if image.producers.insert(id, p).is_some() {
            return Err(err(format!("producer id {id} is listed twice")));
        }
    }
    image.broker_changes = part::<Vec<BrokerRegistrationChangeBrokerRecord>>(de, "broker changes")?
        .into_iter()
        .collect();
    if format < 3 {
        return Ok(image);
    }
    for (id, r) in part::<Vec<(i32, Registration)>>(de, "registrations")? {
        if !image.brokers.contains_key(&id) {
            return Err(err(format!("registration of unknown broker {id}")));
        }
        if image.registrations.insert(id, r).is_some() {
            return Err(err(format!("registration of broker {id} is listed twice")));
        }
    }
    image.partition_changes = part::<Vec<PartitionChangeRecord>>(de, "partition changes")?
        .into_iter()
        .collect();
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_image_round_trips_and_starts_with_the_header() {
        let bytes = Image::new().encode();
        assert_eq!(Image::decode(&bytes).unwrap(), Image::new());
        // fixarray(2), fixstr(10) "yakt-image", positive fixint 3
        assert_eq!(&bytes[..13], b"\x92\xaayakt-image\x03");
    }

    #[test]
    fn format_2_payloads_still_read_without_registrations() {
        let mut img = Image::new();
        img.brokers.insert(
            7,
            RegisterBrokerRecord {
                broker_host: "h".into(),
                broker_id: 7,
                broker_port: 9092,
                broker_status: crate::metadata::BrokerStatus::Alive,
                epoch: 0,
                internal_uuid: Uuid::from_u128(9),
                rack_id: None,
                security_protocol: Default::default(),
            },
        );
        img.registrations.insert(
            7,
            Registration {
                broker_epoch: 5,
                watched: true,
            },
        );
        let v3 = img.encode();
        assert_eq!(Image::decode(&v3).unwrap(), img);
        // A format-2 payload is the format-3 one without its last two parts (two empty lists
        // would be two bytes; here the registration list is not empty, so cut it off by
        // re-encoding without it).
        let mut v2 = img.clone();
        v2.registrations.clear();
        let mut bytes = v2.encode();
        bytes.truncate(bytes.len() - 2);
        bytes[12] = 2;
        let read = Image::decode(&bytes).unwrap();
        assert_eq!(read.registration(7), Some(Registration::default()));
        assert_eq!(read.brokers, img.brokers);
    }

    #[test]
    fn a_format_2_image_folds_a_partition_led_by_a_fenced_registration_as_a_replay_does() {
        use crate::metadata::record::PartitionRecord;
        use crate::metadata::{
            BrokerStatus, MetadataCommand, Record, SecurityProtocol, WriteRequest,
        };
        let fold = |img: &mut Image, record: Record| {
            let offset = img.last_offset + 1;
            img.apply(
                offset,
                &MetadataCommand {
                    timestamp_ms: offset,
                    record,
                },
            )
        };
        // Replayed: broker 7 registered FENCED (opted into liveness, never unfenced), a topic.
        let mut replayed = Image::new();
        for req in [
            WriteRequest::RegisterBroker {
                broker_id: 7,
                broker_host: "h".into(),
                broker_port: 9092,
                security_protocol: SecurityProtocol::Plaintext,
                broker_status: BrokerStatus::Fenced,
                rack_id: None,
            },
            WriteRequest::CreateTopic { name: "t".into() },
        ] {
            let record = replayed.prepare(req).expect("prepares");
            fold(&mut replayed, record).expect("folds");
        }
        // The same image as a node that upgraded reads it from a format-2 snapshot.
        let mut v2 = replayed.clone();
        v2.registrations.clear();
        let mut bytes = v2.encode();
        bytes.truncate(bytes.len() - 2);
        bytes[12] = 2;
        let mut restored = Image::decode(&bytes).expect("format 2 reads");
        let topic_uuid = replayed.topic_record("t").expect("topic").topic_uuid;
        let led_by_7 = Record::Partition(PartitionRecord {
            partition_id: 0,
            topic_uuid,
            replicas: vec![7],
            isr: vec![7],
            removing_replicas: vec![],
            adding_replicas: vec![],
            leader: 7,
            leader_epoch: 0,
            partition_epoch: 0,
        });
        // Apply is the same on every node, whichever way it got its image.
        assert_eq!(
            fold(&mut replayed, led_by_7.clone()).is_ok(),
            fold(&mut restored, led_by_7).is_ok(),
            "the two nodes' images diverge on the same committed record"
        );
    }

    #[test]
    fn refuses_other_formats_trailing_bytes_and_disorder() {
        let mut other = Image::new().encode();
        other[12] = 1;
        assert!(Image::decode(&other)
            .unwrap_err()
            .reason
            .contains("format 1"));
        other[12] = 4;
        assert!(Image::decode(&other)
            .unwrap_err()
            .reason
            .contains("format 4"));
        let mut trailing = Image::new().encode();
        trailing.push(0xc0);
        assert!(Image::decode(&trailing)
            .unwrap_err()
            .reason
            .contains("after the last part"));
        for cut in 0..Image::new().encode().len() {
            assert!(Image::decode(&Image::new().encode()[..cut]).is_err());
        }
        let mut img = Image::new();
        img.topics.insert("b".into(), Uuid::from_u128(1));
        img.topics.insert("a".into(), Uuid::from_u128(1));
        img.topic_uuids.insert(Uuid::from_u128(1), ());
        assert!(Image::decode(&img.encode())
            .unwrap_err()
            .reason
            .contains("used twice"));
    }
}
