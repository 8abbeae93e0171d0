//! The metadata model: the six record types, the client requests that produce them, and the
//! image they fold into. Pure: no I/O, no clock (only `Image::prepare`'s UUIDs), no Raft types.
//!
//! Storage does not know this module; the raft, api and CLI layers use it. `record.rs` and
//! `wire.rs` are the records and their JSON, `request/` parses and checks client writes,
//! `naming.rs` is Kafka's naming rules, `image/` folds records and shows the result.

#![warn(missing_docs)]

pub mod error;
pub mod image;
pub mod naming;
pub mod record;
pub mod request;
pub mod timestamp;
pub mod wire;

pub use error::{DecodeError, ErrorKind, MetadataError};
pub use image::{Image, MetadataAnswer};
pub use record::{
    group_by_name, BrokerRegistrationChangeBrokerRecord, BrokerStatus, LogRecord, MetadataCommand,
    PartitionChangeRecord, PartitionRecord, ProducerIdsRecord, Record, RegisterBrokerRecord,
    SecurityProtocol, TopicRecord, NO_LEADER, RECORD_NAMES,
};
pub use request::{parse_broker_id_path, parse_topic_uuid, LeaderRef, WriteRequest};
pub use timestamp::{format_rfc3339_ms, parse_timestamp};
pub use wire::WireRecord;
