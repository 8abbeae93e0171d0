//! The request bodies of the writes, as a client sends them: the fields, and the original YAKt
//! envelope around them (or the bare fields).

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::metadata::record::{BrokerStatus, SecurityProtocol};

/// A partition leader as a client may send it: a broker id or a broker's `internalUUID`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum LeaderValue {
    /// A broker id (one of `replicas`).
    Id(u32),
    /// A broker's `internalUUID` (the original specification's form).
    Uuid(Uuid),
}

/// The fields a client sends to register a broker.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBrokerFields {
    /// ≥ 0.
    #[serde(rename = "brokerId")]
    #[schema(minimum = 0)]
    pub broker_id: i32,
    /// Host clients connect to.
    #[serde(rename = "brokerHost")]
    #[schema(min_length = 1)]
    pub broker_host: String,
    /// Listener port (a numeric string is accepted too).
    #[serde(rename = "brokerPort")]
    #[schema(minimum = 1, maximum = 65535)]
    pub broker_port: u16,
    /// Default `PLAINTEXT`.
    #[serde(rename = "securityProtocol")]
    pub security_protocol: Option<SecurityProtocol>,
    /// Default `ALIVE`.
    #[serde(rename = "brokerStatus")]
    pub broker_status: Option<BrokerStatus>,
    /// Optional rack.
    #[serde(rename = "rackId")]
    pub rack_id: Option<String>,
}

/// The fields a client sends to create a topic.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTopicFields {
    /// 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
    #[schema(pattern = r"^[a-zA-Z0-9._-]{1,249}$")]
    pub name: String,
}

/// The fields a client sends to create a partition.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePartitionFields {
    /// ≥ 0.
    #[serde(rename = "partitionId")]
    #[schema(minimum = 0)]
    pub partition_id: i32,
    /// An existing topic.
    #[serde(rename = "topicUUID")]
    pub topic_uuid: Uuid,
    /// Registered broker ids, no repeats.
    #[schema(min_items = 1, value_type = Vec<u32>)]
    pub replicas: Vec<i32>,
    /// A subset of `replicas`.
    #[serde(rename = "ISR")]
    #[schema(value_type = Vec<u32>)]
    pub isr: Vec<i32>,
    /// Replicas being removed.
    #[serde(rename = "removingReplicas")]
    #[schema(value_type = Option<Vec<u32>>)]
    pub removing_replicas: Option<Vec<i32>>,
    /// Replicas being added.
    #[serde(rename = "addingReplicas")]
    #[schema(value_type = Option<Vec<u32>>)]
    pub adding_replicas: Option<Vec<i32>>,
    /// One of `replicas`.
    pub leader: LeaderValue,
}

/// The fields a client sends to register a producer id.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterProducerFields {
    /// ≥ 0; omitted, the server allocates the next free one.
    #[serde(rename = "producerId")]
    #[schema(minimum = 0)]
    pub producer_id: Option<i64>,
}

/// The fields a client sends to change a broker's registration.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BrokerChangeFields {
    /// The broker to change.
    #[serde(rename = "brokerId")]
    #[schema(minimum = 0)]
    pub broker_id: i32,
    /// New host.
    #[serde(rename = "brokerHost")]
    #[schema(min_length = 1)]
    pub broker_host: Option<String>,
    /// New port (a numeric string is accepted too).
    #[serde(rename = "brokerPort")]
    #[schema(minimum = 1, maximum = 65535)]
    pub broker_port: Option<u16>,
    /// New protocol.
    #[serde(rename = "securityProtocol")]
    pub security_protocol: Option<SecurityProtocol>,
    /// New status.
    #[serde(rename = "brokerStatus")]
    pub broker_status: Option<BrokerStatus>,
}

/// Declares a write body: the original YAKt envelope around the fields, or the bare fields.
macro_rules! write_body {
    ($(#[$doc:meta])* $name:ident, $envelope:ident, $fields:ty, $record:literal) => {
        /// The original YAKt write envelope: `{"type": "metadata", "name": <record>, "fields"}`.
        #[derive(Serialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $envelope {
            /// `metadata`.
            #[serde(rename = "type")]
            #[schema(pattern = "^metadata$")]
            pub kind: Option<String>,
            /// The record name; one that does not match the endpoint is a `400`.
            #[schema(pattern = $record)]
            pub name: Option<String>,
            /// The record's fields.
            pub fields: $fields,
        }
        $(#[$doc])*
        #[derive(Serialize, ToSchema)]
        #[serde(untagged)]
        pub enum $name {
            /// In the envelope.
            Envelope($envelope),
            /// The bare fields.
            Fields($fields),
        }
    };
}

write_body!(
    /// `POST /register_broker`'s body.
    RegisterBrokerBody,
    RegisterBrokerEnvelope,
    RegisterBrokerFields,
    "^RegisterBrokerRecord$"
);
write_body!(
    /// `POST /create_topic`'s body.
    CreateTopicBody,
    CreateTopicEnvelope,
    CreateTopicFields,
    "^TopicRecord$"
);
write_body!(
    /// `POST /create_partition`'s body.
    CreatePartitionBody,
    CreatePartitionEnvelope,
    CreatePartitionFields,
    "^PartitionRecord$"
);
write_body!(
    /// `POST /register_producer/{broker_id}`'s body (may be empty: `{}`).
    RegisterProducerBody,
    RegisterProducerEnvelope,
    RegisterProducerFields,
    "^ProducerIdsRecord$"
);
write_body!(
    /// `PUT /broker_registration_change`'s body.
    BrokerChangeBody,
    BrokerChangeEnvelope,
    BrokerChangeFields,
    "^(BrokerRegistrationChangeBrokerRecord|RegistrationChangeBrokerRecord)$"
);
