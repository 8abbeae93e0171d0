//! Client write requests: parsing a request body into a [`WriteRequest`] and the rules that need
//! no state (types, ranges, Kafka's topic-name rules, list shapes).
//!
//! Decisions where API.md is silent (also in the README):
//! - A body is either the YAKt envelope `{"type": "metadata", "name": ..., "fields": {...}}`
//!   (an object with a `fields` or `type` key) or a bare fields object. `type`, when sent, must be
//!   `"metadata"`; `name`, when sent, must be the endpoint's record name.
//! - Unknown fields are refused (a typo such as `brokerHots` must not be silently dropped).
//! - Server-set fields (`internalUUID`, `epoch`, `topicUUID` on create_topic, `partitionEpoch`,
//!   `leaderEpoch`, `brokerEpoch`) are refused with a message saying the server sets them. The
//!   one exception is `brokerId` in a register_producer body: accepted when it equals the path's
//!   id.
//! - Widths are Kafka's: `brokerId` and `partitionId` int32, `producerId` int64, all ≥ 0.
//! - `brokerPort` may be a JSON integer or a string of digits; 1–65535 either way.
//! - `null` for an optional field means "not sent".
//! - create_partition: `ISR` defaults to `replicas`, `removingReplicas`/`addingReplicas` to `[]`;
//!   `replicas` must be non-empty; as in Kafka, `removingReplicas` and `addingReplicas` are subsets
//!   of `replicas` and disjoint; `leader` is required and must be a replica (it need not be in ISR,
//!   as after an unclean election).
//! - A broker may not register with `brokerStatus: "CLOSED"`; closing is `delete_broker` (or a
//!   change record with `brokerStatus: "CLOSED"`).
//! - Host names and rack ids: 1–255 bytes, no whitespace or control characters.
//!
//! Files: `fields.rs` reads typed fields out of a JSON body, `path.rs` reads ids from paths and
//! queries, `validate.rs` holds the rules that need no image, `parse.rs` one parser an endpoint.

mod fields;
mod parse;
mod path;
#[cfg(test)]
mod tests;
mod validate;

use uuid::Uuid;

use super::record::{BrokerStatus, SecurityProtocol};

pub use path::{parse_broker_id_path, parse_topic_uuid};
pub(super) use validate::{
    broker_change_shape, broker_registration_shape, partition_change_shape, partition_shape,
    producer_id_shape,
};

/// How the leader of a new partition is named: by broker id, or (the original specification's
/// form) by the broker's `internalUUID`; the image normalizes the latter to an id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaderRef {
    /// A broker id.
    Id(i32),
    /// A broker's current `internalUUID`.
    InternalUuid(Uuid),
}

/// A validated-for-shape client write.
#[derive(Clone, Debug, PartialEq)]
pub enum WriteRequest {
    /// `POST /register_broker`.
    RegisterBroker {
        /// `brokerId`, ≥ 0.
        broker_id: i32,
        /// `brokerHost`.
        broker_host: String,
        /// `brokerPort`, 1–65535.
        broker_port: u16,
        /// `securityProtocol`, default PLAINTEXT.
        security_protocol: SecurityProtocol,
        /// `brokerStatus`, default ALIVE, never CLOSED.
        broker_status: BrokerStatus,
        /// `rackId`.
        rack_id: Option<String>,
    },
    /// `POST /create_topic`.
    CreateTopic {
        /// The topic's name.
        name: String,
    },
    /// `POST /create_partition`.
    CreatePartition {
        /// `partitionId`, ≥ 0.
        partition_id: i32,
        /// `topicUUID` of an existing topic.
        topic_uuid: Uuid,
        /// `replicas`: broker ids, non-empty, no repeats.
        replicas: Vec<i32>,
        /// `ISR` ⊆ replicas (defaults to replicas when not sent).
        isr: Vec<i32>,
        /// `removingReplicas` ⊆ replicas.
        removing_replicas: Vec<i32>,
        /// `addingReplicas` ⊆ replicas, disjoint from removing.
        adding_replicas: Vec<i32>,
        /// `leader`, one of the replicas.
        leader: LeaderRef,
    },
    /// `POST /register_producer/{broker_id}`; `producer_id: None` lets the server allocate.
    RegisterProducer {
        /// The path's broker id.
        broker_id: i32,
        /// `producerId`, ≥ 0, or `None` for the next free one.
        producer_id: Option<i64>,
    },
    /// `PUT /broker_registration_change`; at least one of the optional fields.
    ChangeBroker {
        /// The broker to change.
        broker_id: i32,
        /// New `brokerHost`.
        broker_host: Option<String>,
        /// New `brokerPort`.
        broker_port: Option<u16>,
        /// New `securityProtocol`.
        security_protocol: Option<SecurityProtocol>,
        /// New `brokerStatus`.
        broker_status: Option<BrokerStatus>,
    },
    /// `PUT /delete_broker/{broker_id}`.
    DeleteBroker {
        /// The path's broker id.
        broker_id: i32,
    },
    /// `POST /alter_partition` (KRaft's AlterPartition): the partition's leader sets its ISR.
    /// The body's `brokerEpoch` is checked by the liveness controller against the applied image
    /// (see [`crate::metadata::image::Registration`]), so it is not part of the request.
    AlterPartition {
        /// The broker asking: must be the partition's leader.
        broker_id: i32,
        /// The partition's topic.
        topic_uuid: Uuid,
        /// The partition.
        partition_id: i32,
        /// The partition epoch the leader last saw: must be the current one.
        partition_epoch: u64,
        /// The new ISR: a subset of the replicas, no fenced broker.
        isr: Vec<i32>,
    },
    /// The liveness controller's move: `leaving` (fenced or shutting down) leaves the partition's
    /// leadership and ISR, and a new leader is elected avoiding `avoid`
    /// ([`crate::metadata::image::election::reelect`]). With `leaving: None` it elects a leader
    /// for a leaderless partition. Refused (Conflict) when it would change nothing.
    Reelect {
        /// The partition's topic.
        topic_uuid: Uuid,
        /// The partition.
        partition_id: i32,
        /// The broker leaving the partition.
        leaving: Option<i32>,
        /// Brokers that must not be elected (shutting down).
        avoid: Vec<i32>,
    },
}
