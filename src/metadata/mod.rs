//! The metadata model: the five record types, the image they fold into, and validation.
//!
//! Storage does not know this module; the raft, api and CLI layers use it. Everything here is
//! pure: no I/O, no clock except the UUIDs `Image::prepare` draws, no Raft types.

#![warn(missing_docs)]

pub mod error;
pub mod image;
pub mod image_codec;
pub mod image_view;
pub mod record;
pub mod request;
pub mod timestamp;
pub mod wire;

pub use error::{DecodeError, ErrorKind, MetadataError};
pub use image::Image;
pub use record::{
    group_by_name, BrokerRegistrationChangeBrokerRecord, BrokerStatus, LogRecord, MetadataCommand,
    PartitionRecord, ProducerIdsRecord, Record, RegisterBrokerRecord, SecurityProtocol,
    TopicRecord, RECORD_NAMES,
};
pub use request::{parse_broker_id_path, parse_topic_uuid, LeaderRef, WriteRequest};
pub use timestamp::{format_rfc3339_ms, parse_timestamp};
pub use wire::WireRecord;
