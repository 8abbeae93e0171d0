//! One parser an endpoint: the body (and path id) of each write, read into a [`WriteRequest`]
//! and checked with [`WriteRequest::validate`].

use serde_json::Value;

use super::fields::{
    check_keys, fields_of, opt_i32_id, opt_id_list, opt_int, opt_leader, opt_port, opt_protocol,
    opt_status, opt_str, opt_uuid, parse_json_body, required,
};
use super::path::parse_broker_id_path;
use super::WriteRequest;
use crate::metadata::error::MetadataError;
use crate::metadata::record::{BrokerStatus, PartitionRecord, RegisterBrokerRecord};

impl WriteRequest {
    /// `POST /register_broker` body.
    pub fn parse_register_broker(body: &[u8]) -> Result<Self, MetadataError> {
        Self::parse_register_broker_value(&parse_json_body(body)?)
    }

    /// [`Self::parse_register_broker`] for an already-parsed body.
    pub fn parse_register_broker_value(v: &Value) -> Result<Self, MetadataError> {
        const R: &str = "RegisterBrokerRecord";
        let f = fields_of(v, R, &[])?;
        check_keys(
            &f,
            R,
            &RegisterBrokerRecord::CLIENT_FIELDS,
            &["internalUUID", "epoch"],
        )?;
        let req = WriteRequest::RegisterBroker {
            broker_id: required("brokerId", opt_i32_id(&f, "brokerId")?)?,
            broker_host: required("brokerHost", opt_str(&f, "brokerHost")?)?.to_string(),
            broker_port: required("brokerPort", opt_port(&f)?)?,
            security_protocol: opt_protocol(&f)?.unwrap_or_default(),
            broker_status: opt_status(&f)?.unwrap_or(BrokerStatus::Alive),
            rack_id: opt_str(&f, "rackId")?.map(str::to_string),
        };
        req.validate()?;
        Ok(req)
    }

    /// `POST /create_topic` body.
    pub fn parse_create_topic(body: &[u8]) -> Result<Self, MetadataError> {
        Self::parse_create_topic_value(&parse_json_body(body)?)
    }

    /// [`Self::parse_create_topic`] for an already-parsed body.
    pub fn parse_create_topic_value(v: &Value) -> Result<Self, MetadataError> {
        const R: &str = "TopicRecord";
        let f = fields_of(v, R, &[])?;
        check_keys(&f, R, &["name"], &["topicUUID"])?;
        let req = WriteRequest::CreateTopic {
            name: required("name", opt_str(&f, "name")?)?.to_string(),
        };
        req.validate()?;
        Ok(req)
    }

    /// `POST /create_partition` body.
    pub fn parse_create_partition(body: &[u8]) -> Result<Self, MetadataError> {
        Self::parse_create_partition_value(&parse_json_body(body)?)
    }

    /// [`Self::parse_create_partition`] for an already-parsed body.
    pub fn parse_create_partition_value(v: &Value) -> Result<Self, MetadataError> {
        const R: &str = "PartitionRecord";
        let f = fields_of(v, R, &[])?;
        check_keys(
            &f,
            R,
            &PartitionRecord::CLIENT_FIELDS,
            &["partitionEpoch", "leaderEpoch"],
        )?;
        let replicas = required("replicas", opt_id_list(&f, "replicas")?)?;
        let req = WriteRequest::CreatePartition {
            partition_id: required("partitionId", opt_i32_id(&f, "partitionId")?)?,
            topic_uuid: required("topicUUID", opt_uuid(&f, "topicUUID")?)?,
            isr: opt_id_list(&f, "ISR")?.unwrap_or_else(|| replicas.clone()),
            removing_replicas: opt_id_list(&f, "removingReplicas")?.unwrap_or_default(),
            adding_replicas: opt_id_list(&f, "addingReplicas")?.unwrap_or_default(),
            leader: required("leader", opt_leader(&f)?)?,
            replicas,
        };
        req.validate()?;
        Ok(req)
    }

    /// `POST /register_producer/{broker_id}`: the path's id and the body. An empty body (or
    /// `{}`) lets the server allocate the next free producer id.
    pub fn parse_register_producer(
        broker_id_path: &str,
        body: &[u8],
    ) -> Result<Self, MetadataError> {
        let broker_id = parse_broker_id_path(broker_id_path)?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(WriteRequest::RegisterProducer {
                broker_id,
                producer_id: None,
            });
        }
        Self::parse_register_producer_value(broker_id, &parse_json_body(body)?)
    }

    /// [`Self::parse_register_producer`] for a parsed path id and an already-parsed body.
    pub fn parse_register_producer_value(broker_id: i32, v: &Value) -> Result<Self, MetadataError> {
        const R: &str = "ProducerIdsRecord";
        let f = fields_of(v, R, &[])?;
        check_keys(&f, R, &["producerId", "brokerId"], &["brokerEpoch"])?;
        if let Some(body_id) = opt_i32_id(&f, "brokerId")? {
            if body_id != broker_id {
                return Err(MetadataError::bad_request(format!(
                    "brokerId in the body ({body_id}) differs from the path ({broker_id}); \
                     the path's id is used, so leave brokerId out"
                )));
            }
        }
        let req = WriteRequest::RegisterProducer {
            broker_id,
            producer_id: opt_int(&f, "producerId", 0, i64::MAX)?,
        };
        req.validate()?;
        Ok(req)
    }

    /// `PUT /broker_registration_change` body; the envelope name may also be the original
    /// specification's `RegistrationChangeBrokerRecord`.
    pub fn parse_broker_change(body: &[u8]) -> Result<Self, MetadataError> {
        Self::parse_broker_change_value(&parse_json_body(body)?)
    }

    /// [`Self::parse_broker_change`] for an already-parsed body.
    pub fn parse_broker_change_value(v: &Value) -> Result<Self, MetadataError> {
        const R: &str = "BrokerRegistrationChangeBrokerRecord";
        let f = fields_of(v, R, &["RegistrationChangeBrokerRecord"])?;
        // A change may set every registration field but the last, the rack.
        check_keys(
            &f,
            R,
            &RegisterBrokerRecord::CLIENT_FIELDS[..5],
            &["epoch", "internalUUID"],
        )?;
        let req = WriteRequest::ChangeBroker {
            broker_id: required("brokerId", opt_i32_id(&f, "brokerId")?)?,
            broker_host: opt_str(&f, "brokerHost")?.map(str::to_string),
            broker_port: opt_port(&f)?,
            security_protocol: opt_protocol(&f)?,
            broker_status: opt_status(&f)?,
        };
        req.validate()?;
        Ok(req)
    }

    /// `PUT /delete_broker/{broker_id}`: the path's id.
    pub fn delete_broker(broker_id_path: &str) -> Result<Self, MetadataError> {
        Ok(WriteRequest::DeleteBroker {
            broker_id: parse_broker_id_path(broker_id_path)?,
        })
    }
}
