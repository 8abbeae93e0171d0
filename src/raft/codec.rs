//! How Raft entries, votes and snapshot metadata become bytes on disk and on the wire.
//!
//! An entry payload in a segment file is one kind byte followed by a body:
//! - `0` blank (Raft's own entry a new leader writes): no body;
//! - `1` membership change: the membership, MessagePack with field names;
//! - `2` metadata record: a [`MetadataCommand`], MessagePack with field names.
//!
//! Named MessagePack keeps old files readable when a struct gains a field.

use std::fmt;

use openraft::entry::RaftEntry;
use openraft::EntryPayload;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{log_id, Entry, SnapshotMeta, Vote};
use crate::metadata::{LogRecord, MetadataCommand};
use crate::storage::StoredEntry;

/// Payload kind byte of a blank entry.
pub const KIND_BLANK: u8 = 0;
/// Payload kind byte of a membership entry.
pub const KIND_MEMBERSHIP: u8 = 1;
/// Payload kind byte of a metadata record.
pub const KIND_RECORD: u8 = 2;

/// A payload, vote or snapshot header that could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The payload is empty: not even a kind byte.
    #[error("empty entry payload")]
    Empty,
    /// The kind byte is not one this version knows.
    #[error("unknown entry payload kind {0}")]
    UnknownKind(u8),
    /// The MessagePack body did not decode.
    #[error("undecodable {what}: {source}")]
    Decode {
        what: &'static str,
        #[source]
        source: rmp_serde::decode::Error,
    },
    /// Encoding failed (never expected for our own types).
    #[error("unencodable {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: rmp_serde::encode::Error,
    },
}

impl From<CodecError> for std::io::Error {
    fn from(e: CodecError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

impl fmt::Display for MetadataCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.record.name(), self.timestamp_ms)
    }
}

/// Encodes a value as MessagePack with field names.
pub fn encode_named<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, CodecError> {
    rmp_serde::to_vec_named(value).map_err(|source| CodecError::Encode { what, source })
}

/// Decodes MessagePack produced by [`encode_named`].
pub fn decode_named<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, CodecError> {
    rmp_serde::from_slice(bytes).map_err(|source| CodecError::Decode { what, source })
}

/// Turns an openraft entry into what the segment log stores. A metadata record's timestamp is
/// the leader's; Raft's own entries carry 0 (not in the time index).
pub fn entry_to_stored(entry: &Entry) -> Result<StoredEntry, CodecError> {
    let lid = entry.log_id();
    let (timestamp_ms, payload) = match &entry.payload {
        EntryPayload::Blank => (0, vec![KIND_BLANK]),
        EntryPayload::Membership(m) => {
            let mut p = vec![KIND_MEMBERSHIP];
            p.extend(encode_named("membership", m)?);
            (0, p)
        }
        EntryPayload::Normal(cmd) => {
            let mut p = vec![KIND_RECORD];
            p.extend(encode_named("metadata record", cmd)?);
            (cmd.timestamp_ms, p)
        }
    };
    Ok(StoredEntry {
        index: lid.index,
        term: lid.leader_id.term,
        timestamp_ms,
        payload,
    })
}

/// Rebuilds an openraft entry from a stored one.
pub fn stored_to_entry(stored: &StoredEntry) -> Result<Entry, CodecError> {
    let payload = decode_payload(&stored.payload)?;
    Ok(Entry::new(log_id(stored.term, stored.index), payload))
}

/// Decodes a payload's kind byte and body.
pub fn decode_payload(
    bytes: &[u8],
) -> Result<EntryPayload<MetadataCommand, super::NodeId, super::Member>, CodecError> {
    let (&kind, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    match kind {
        KIND_BLANK => Ok(EntryPayload::Blank),
        KIND_MEMBERSHIP => Ok(EntryPayload::Membership(decode_named("membership", body)?)),
        KIND_RECORD => Ok(EntryPayload::Normal(decode_named("metadata record", body)?)),
        other => Err(CodecError::UnknownKind(other)),
    }
}

/// The metadata command in a stored entry; `None` for Raft's own entries.
pub fn stored_to_command(stored: &StoredEntry) -> Result<Option<MetadataCommand>, CodecError> {
    match stored.payload.split_first() {
        Some((&KIND_RECORD, body)) => Ok(Some(decode_named("metadata record", body)?)),
        Some(_) => Ok(None),
        None => Err(CodecError::Empty),
    }
}

/// The metadata record in a stored entry, as the log, stream and catch-up endpoints show it;
/// `None` for Raft's own entries.
pub fn stored_to_log_record(stored: &StoredEntry) -> Result<Option<LogRecord>, CodecError> {
    Ok(stored_to_command(stored)?.map(|cmd| LogRecord::new(stored.index, stored.term, &cmd)))
}

/// A one-line description of a payload for `yakt-dump`: its name and fields as JSON (a record's
/// as [`Record::fields_json`](crate::metadata::Record::fields_json), the log's rendering).
pub fn describe_payload(bytes: &[u8]) -> (String, serde_json::Value) {
    match decode_payload(bytes) {
        Ok(EntryPayload::Blank) => ("Blank".into(), serde_json::json!({})),
        Ok(EntryPayload::Membership(m)) => {
            let voters: Vec<_> = m.voter_ids().collect();
            let nodes: serde_json::Map<String, serde_json::Value> = m
                .nodes()
                .map(|(id, n)| (id.to_string(), serde_json::json!(n.addr)))
                .collect();
            (
                "Membership".into(),
                serde_json::json!({"voters": voters, "nodes": nodes}),
            )
        }
        Ok(EntryPayload::Normal(cmd)) => (cmd.record.name().to_string(), cmd.record.fields_json()),
        Err(e) => (
            "Undecodable".into(),
            serde_json::json!({"error": e.to_string()}),
        ),
    }
}

/// Encodes a vote for the vote file.
pub fn encode_vote(vote: &Vote) -> Result<Vec<u8>, CodecError> {
    encode_named("vote", vote)
}

/// Decodes the vote file's contents.
pub fn decode_vote(bytes: &[u8]) -> Result<Vote, CodecError> {
    decode_named("vote", bytes)
}

/// Encodes snapshot metadata for the snapshot file header's opaque `meta` field.
pub fn encode_snapshot_meta(meta: &SnapshotMeta) -> Result<Vec<u8>, CodecError> {
    encode_named("snapshot meta", meta)
}

/// Decodes snapshot metadata.
pub fn decode_snapshot_meta(bytes: &[u8]) -> Result<SnapshotMeta, CodecError> {
    decode_named("snapshot meta", bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::record::tests::sample_records;
    use crate::metadata::wire::tests::record;
    use crate::metadata::{Record, SecurityProtocol};
    use proptest::prelude::*;

    /// A command as the node stores it: the segment log's view of its entry at (term 2, index 7).
    fn stored(cmd: &MetadataCommand) -> StoredEntry {
        entry_to_stored(&Entry::new(log_id(2, 7), EntryPayload::Normal(cmd.clone())))
            .expect("a command encodes")
    }

    /// The command a stored entry decodes to, through both of the node's read paths.
    fn read_back(s: &StoredEntry) -> Result<MetadataCommand, CodecError> {
        let by_command = stored_to_command(s)?.expect("a record entry");
        match stored_to_entry(s)?.payload {
            EntryPayload::Normal(c) => assert_eq!(c, by_command),
            _ => panic!("a record entry decoded as another kind"),
        }
        Ok(by_command)
    }

    #[test]
    fn commands_round_trip_through_the_entry_payload_and_json() {
        for (i, record) in sample_records().into_iter().enumerate() {
            let cmd = MetadataCommand {
                timestamp_ms: 1_764_000_000_123 + i as u64,
                record,
            };
            let s = stored(&cmd);
            assert_eq!(
                (s.index, s.term, s.timestamp_ms, s.payload[0]),
                (7, 2, cmd.timestamp_ms, KIND_RECORD)
            );
            assert_eq!(read_back(&s).unwrap(), cmd);
            let json = serde_json::to_string(&cmd).unwrap();
            assert_eq!(serde_json::from_str::<MetadataCommand>(&json).unwrap(), cmd);
        }
    }

    #[test]
    fn record_payloads_are_named_so_old_and_new_versions_interoperate() {
        let cmd = MetadataCommand {
            timestamp_ms: 5,
            record: sample_records().remove(0),
        };
        let payload = stored(&cmd).payload;
        // Named: the field names are in the bytes.
        let hay = String::from_utf8_lossy(&payload);
        assert!(hay.contains("timestamp_ms") && hay.contains("brokerHost"));
        // A newer writer's extra field is ignored; a missing optional field defaults.
        #[derive(Serialize)]
        struct Newer<'a> {
            timestamp_ms: u64,
            record: &'a Record,
            future_field: &'a str,
        }
        let mut newer = vec![KIND_RECORD];
        newer.extend(
            rmp_serde::to_vec_named(&Newer {
                timestamp_ms: 5,
                record: &cmd.record,
                future_field: "x",
            })
            .unwrap(),
        );
        let newer = StoredEntry {
            index: 7,
            term: 2,
            timestamp_ms: 5,
            payload: newer,
        };
        assert_eq!(read_back(&newer).unwrap(), cmd);
        let old_json = serde_json::json!({"timestamp_ms": 1, "record": {"RegisterBrokerRecord": {
            "brokerId": 1, "brokerHost": "h", "brokerPort": 1, "brokerStatus": "ALIVE",
            "internalUUID": "0123456789ab4def8123456789abcdef", "epoch": 0}}});
        let old: MetadataCommand = serde_json::from_value(old_json).unwrap();
        let Record::RegisterBroker(r) = old.record else {
            panic!("wrong variant")
        };
        assert_eq!(r.security_protocol, SecurityProtocol::Plaintext);
        assert_eq!(r.rack_id, None);
        // A PartitionRecord written before leaderEpoch existed reads as leader epoch 0.
        #[derive(Serialize)]
        struct OldPartition {
            #[serde(rename = "ISR")]
            isr: Vec<i32>,
            leader: i32,
            #[serde(rename = "partitionEpoch")]
            partition_epoch: u64,
            #[serde(rename = "partitionId")]
            partition_id: i32,
            replicas: Vec<i32>,
            #[serde(rename = "topicUUID")]
            topic_uuid: uuid::Uuid,
        }
        #[derive(Serialize)]
        enum OldRecord {
            PartitionRecord(OldPartition),
        }
        #[derive(Serialize)]
        struct OldCommand {
            timestamp_ms: u64,
            record: OldRecord,
        }
        let mut payload = vec![KIND_RECORD];
        payload.extend(
            rmp_serde::to_vec_named(&OldCommand {
                timestamp_ms: 3,
                record: OldRecord::PartitionRecord(OldPartition {
                    isr: vec![1],
                    leader: 1,
                    partition_epoch: 0,
                    partition_id: 0,
                    replicas: vec![1],
                    topic_uuid: uuid::Uuid::from_u128(5),
                }),
            })
            .unwrap(),
        );
        match decode_payload(&payload) {
            Ok(EntryPayload::Normal(MetadataCommand {
                record: Record::Partition(p),
                ..
            })) => assert_eq!((p.leader_epoch, p.adding_replicas.len()), (0, 0)),
            other => panic!("an old PartitionRecord did not decode: {other:?}"),
        }
    }

    #[test]
    fn undecodable_payloads_are_errors() {
        assert!(matches!(decode_payload(&[]), Err(CodecError::Empty)));
        assert!(matches!(
            decode_payload(&[9]),
            Err(CodecError::UnknownKind(9))
        ));
        for body in [&b""[..], b"\xc1", &[0xdb, 0xff, 0xff, 0xff, 0xff]] {
            let mut payload = vec![KIND_RECORD];
            payload.extend_from_slice(body);
            assert!(matches!(
                decode_payload(&payload),
                Err(CodecError::Decode { .. })
            ));
            let (name, _) = describe_payload(&payload);
            assert_eq!(name, "Undecodable");
        }
    }

    proptest! {
        #[test]
        fn any_record_round_trips_through_the_entry_payload(r in record(), ts in any::<u64>()) {
            let cmd = MetadataCommand { timestamp_ms: ts, record: r };
            prop_assert_eq!(read_back(&stored(&cmd)).unwrap(), cmd);
        }

        #[test]
        fn decode_random_payloads_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_payload(&bytes);
            let mut record = vec![KIND_RECORD];
            record.extend(&bytes);
            let _ = decode_payload(&record);
        }

        #[test]
        fn decode_mutated_payloads_never_panics(idx in 0usize..6, pos in any::<proptest::sample::Index>(), byte in any::<u8>()) {
            let cmd = MetadataCommand { timestamp_ms: 1, record: sample_records().remove(idx) };
            let mut bytes = stored(&cmd).payload;
            let i = pos.index(bytes.len());
            bytes[i] = byte;
            let _ = decode_payload(&bytes);
            bytes.truncate(i);
            let _ = decode_payload(&bytes);
        }
    }
}
