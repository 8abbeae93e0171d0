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

/// A one-line description of a payload for `yakt-dump`: its name and fields as JSON.
pub fn describe_payload(bytes: &[u8]) -> Option<(String, serde_json::Value)> {
    match decode_payload(bytes) {
        Ok(EntryPayload::Blank) => Some(("Blank".into(), serde_json::json!({}))),
        Ok(EntryPayload::Membership(m)) => {
            let voters: Vec<_> = m.voter_ids().collect();
            let nodes: serde_json::Map<String, serde_json::Value> = m
                .nodes()
                .map(|(id, n)| (id.to_string(), serde_json::json!(n.addr)))
                .collect();
            Some((
                "Membership".into(),
                serde_json::json!({"voters": voters, "nodes": nodes}),
            ))
        }
        Ok(EntryPayload::Normal(cmd)) => {
            Some((cmd.record.name().to_string(), cmd.record.fields_json()))
        }
        Err(e) => Some((
            "Undecodable".into(),
            serde_json::json!({"error": e.to_string()}),
        )),
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
