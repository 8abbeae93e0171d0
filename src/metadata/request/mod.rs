//! Client write requests: parsing a request body into a [`WriteRequest`] and the rules that need
//! no state (types, ranges, Kafka's topic-name rules, list shapes).
//!
//! Decisions where API.md is silent (also in the README):
//! - A body is either the YAKt envelope `{"type": "metadata", "name": ..., "fields": {...}}`
//!   (an object with a `fields` or `type` key) or a bare fields object. `type`, when sent, must be
//!   `"metadata"`; `name`, when sent, must be the endpoint's record name.
//! - Unknown fields are refused (a typo such as `brokerHots` must not be silently dropped).
//! - Server-set fields (`internalUUID`, `epoch`, `topicUUID` on create_topic, `partitionEpoch`,
//!   `brokerEpoch`) are refused with a message saying the server sets them. The one exception is
//!   `brokerId` in a register_producer body: accepted when it equals the path's id.
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

use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::MetadataError;
use super::record::{BrokerStatus, SecurityProtocol};

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
}

const I32_MAX: i64 = i32::MAX as i64;

fn bad(msg: impl Into<String>) -> MetadataError {
    MetadataError::bad_request(msg)
}

/// A short rendering of a client's value for error messages.
fn shown(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{cut}...")
    } else {
        s
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses a body's bytes as JSON; `BadRequest "body is not valid JSON: ..."` otherwise.
pub fn parse_json_body(body: &[u8]) -> Result<Value, MetadataError> {
    serde_json::from_slice(body).map_err(|e| bad(format!("body is not valid JSON: {e}")))
}

/// Unwraps the YAKt envelope (or takes a bare object) and returns the fields object.
fn fields_of(
    v: &Value,
    record: &'static str,
    aliases: &[&str],
) -> Result<Map<String, Value>, MetadataError> {
    let Value::Object(obj) = v else {
        return Err(bad(format!(
            "body must be a JSON object ({record} fields or the {{\"type\": \"metadata\", \
             \"name\": \"{record}\", \"fields\": {{...}}}} envelope), got {}",
            type_name(v)
        )));
    };
    if !(obj.contains_key("fields") || obj.contains_key("type")) {
        return Ok(obj.clone());
    }
    for k in obj.keys() {
        if !matches!(k.as_str(), "type" | "name" | "fields") {
            return Err(bad(format!(
                "unknown key {k:?} in the envelope; it holds only \"type\", \"name\" and \"fields\""
            )));
        }
    }
    match obj.get("type") {
        None => {}
        Some(Value::String(t)) if t == "metadata" => {}
        Some(t) => {
            return Err(bad(format!(
                "envelope \"type\" must be \"metadata\", got {}",
                shown(t)
            )))
        }
    }
    match obj.get("name") {
        None => {}
        Some(Value::String(n)) if n == record || aliases.contains(&n.as_str()) => {}
        Some(n) => {
            return Err(bad(format!(
                "envelope \"name\" must be \"{record}\" for this endpoint, got {}",
                shown(n)
            )))
        }
    }
    match obj.get("fields") {
        Some(Value::Object(f)) => Ok(f.clone()),
        Some(f) => Err(bad(format!(
            "envelope \"fields\" must be an object, got {}",
            type_name(f)
        ))),
        None => Err(bad("envelope has no \"fields\" object")),
    }
}

/// Refuses keys other than `allowed`; server-set keys get their own message.
fn check_keys(
    obj: &Map<String, Value>,
    record: &str,
    allowed: &[&str],
    server_set: &[&str],
) -> Result<(), MetadataError> {
    for k in obj.keys() {
        if allowed.contains(&k.as_str()) {
            continue;
        }
        if server_set.contains(&k.as_str()) {
            return Err(bad(format!(
                "{k} is set by the server; do not send it in {record}"
            )));
        }
        return Err(bad(format!(
            "unknown field {k:?} in {record}; its fields are {}",
            allowed.join(", ")
        )));
    }
    Ok(())
}

/// A present, non-null value.
fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn required<T>(key: &str, v: Option<T>) -> Result<T, MetadataError> {
    v.ok_or_else(|| bad(format!("missing required field {key}")))
}

/// An integer in `min..=max`; the message names the field, the range and what was sent.
fn int_value(key: &str, v: &Value, min: i64, max: i64) -> Result<i64, MetadataError> {
    v.as_i64()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            bad(format!(
                "{key} must be an integer from {min} to {max}, got {}",
                shown(v)
            ))
        })
}

fn opt_int(
    obj: &Map<String, Value>,
    key: &str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, MetadataError> {
    get(obj, key)
        .map(|v| int_value(key, v, min, max))
        .transpose()
}

fn opt_i32_id(obj: &Map<String, Value>, key: &str) -> Result<Option<i32>, MetadataError> {
    // The range check makes the narrowing exact.
    Ok(opt_int(obj, key, 0, I32_MAX)?.map(|n| n as i32))
}

/// `brokerPort`: an integer or a string of digits, 1–65535.
fn opt_port(obj: &Map<String, Value>) -> Result<Option<u16>, MetadataError> {
    let Some(v) = get(obj, "brokerPort") else {
        return Ok(None);
    };
    let n = match v {
        Value::String(s)
            if !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.parse::<i64>().ok()
        }
        _ => v.as_i64(),
    };
    match n {
        Some(n @ 1..=65535) => Ok(Some(n as u16)),
        _ => Err(bad(format!(
            "brokerPort must be an integer from 1 to 65535, got {}",
            shown(v)
        ))),
    }
}

fn opt_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, MetadataError> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(bad(format!("{key} must be a string, got {}", type_name(v)))),
    }
}

fn opt_protocol(obj: &Map<String, Value>) -> Result<Option<SecurityProtocol>, MetadataError> {
    opt_str(obj, "securityProtocol")?
        .map(|s| {
            s.parse().map_err(|_| {
                bad(format!(
                    "securityProtocol must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL, \
                     got {s:?}"
                ))
            })
        })
        .transpose()
}

fn opt_status(obj: &Map<String, Value>) -> Result<Option<BrokerStatus>, MetadataError> {
    opt_str(obj, "brokerStatus")?
        .map(|s| {
            s.parse().map_err(|_| {
                bad(format!(
                    "brokerStatus must be one of INIT, FENCED, UNFENCED, ALIVE, CLOSED, got {s:?}"
                ))
            })
        })
        .transpose()
}

fn opt_id_list(obj: &Map<String, Value>, key: &str) -> Result<Option<Vec<i32>>, MetadataError> {
    let Some(v) = get(obj, key) else {
        return Ok(None);
    };
    let Value::Array(items) = v else {
        return Err(bad(format!(
            "{key} must be an array of broker ids (integers from 0 to {I32_MAX}), got {}",
            type_name(v)
        )));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| int_value(&format!("{key}[{i}]"), item, 0, I32_MAX).map(|n| n as i32))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn opt_uuid(obj: &Map<String, Value>, key: &str) -> Result<Option<Uuid>, MetadataError> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Uuid::parse_str(s)
            .map(Some)
            .map_err(|_| bad(format!("{key} must be a UUID, got {s:?}"))),
        Some(v) => Err(bad(format!(
            "{key} must be a UUID string, got {}",
            type_name(v)
        ))),
    }
}

fn opt_leader(obj: &Map<String, Value>) -> Result<Option<LeaderRef>, MetadataError> {
    match get(obj, "leader") {
        None => Ok(None),
        Some(Value::String(s)) => Uuid::parse_str(s)
            .map(|u| Some(LeaderRef::InternalUuid(u)))
            .map_err(|_| {
                bad(format!(
                    "leader must be a broker id or a broker's internalUUID, got {s:?}"
                ))
            }),
        Some(v) => int_value("leader", v, 0, I32_MAX).map(|n| Some(LeaderRef::Id(n as i32))),
    }
}

/// Reads a broker id from a request path (`/get_broker/{id}`, `/delete_broker/{id}`, ...).
pub fn parse_broker_id_path(s: &str) -> Result<i32, MetadataError> {
    if !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = s.parse::<i32>() {
            return Ok(n);
        }
    }
    Err(bad(format!(
        "broker id in the path must be an integer from 0 to {I32_MAX}, got {s:?}"
    )))
}

/// Reads the `?topicUUID=` filter of `/get_partitions`.
pub fn parse_topic_uuid(s: &str) -> Result<Uuid, MetadataError> {
    Uuid::parse_str(s).map_err(|_| bad(format!("topicUUID must be a UUID, got {s:?}")))
}

/// Kafka's topic-name rule: 1–249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), MetadataError> {
    if name.is_empty() {
        return Err(bad("topic name must not be empty"));
    }
    if name == "." || name == ".." {
        return Err(bad(format!("topic name cannot be {name:?}")));
    }
    if name.len() > 249 {
        return Err(bad(format!(
            "topic name must be at most 249 characters, got {}",
            name.chars().count()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(bad(format!(
            "topic name may contain only ASCII letters, digits, '.', '_' and '-', got {c:?} in {name:?}"
        )));
    }
    Ok(())
}

/// A host name or rack id: 1–255 bytes, no whitespace or control characters.
fn validate_label(key: &str, s: &str) -> Result<(), MetadataError> {
    if s.is_empty() {
        return Err(bad(format!("{key} must not be empty")));
    }
    if s.len() > 255 {
        return Err(bad(format!(
            "{key} must be at most 255 bytes, got {}",
            s.len()
        )));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(format!(
            "{key} must not contain whitespace or control characters, got {s:?}"
        )));
    }
    Ok(())
}

fn non_negative(key: &str, n: i64) -> Result<(), MetadataError> {
    if n < 0 {
        Err(bad(format!("{key} must not be negative, got {n}")))
    } else {
        Ok(())
    }
}

fn no_repeats(key: &str, ids: &[i32]) -> Result<(), MetadataError> {
    for (i, id) in ids.iter().enumerate() {
        non_negative(key, i64::from(*id))?;
        if ids[..i].contains(id) {
            return Err(bad(format!("{key} lists broker {id} more than once")));
        }
    }
    Ok(())
}

fn subset(key: &str, ids: &[i32], replicas: &[i32]) -> Result<(), MetadataError> {
    match ids.iter().find(|id| !replicas.contains(id)) {
        Some(id) => Err(bad(format!(
            "{key} must be a subset of replicas {replicas:?}; broker {id} is not a replica"
        ))),
        None => Ok(()),
    }
}

impl WriteRequest {
    /// The record name this request appends, for messages and logs.
    pub fn record_name(&self) -> &'static str {
        match self {
            WriteRequest::RegisterBroker { .. } => "RegisterBrokerRecord",
            WriteRequest::CreateTopic { .. } => "TopicRecord",
            WriteRequest::CreatePartition { .. } => "PartitionRecord",
            WriteRequest::RegisterProducer { .. } => "ProducerIdsRecord",
            WriteRequest::ChangeBroker { .. } | WriteRequest::DeleteBroker { .. } => {
                "BrokerRegistrationChangeBrokerRecord"
            }
        }
    }

    /// Checks every rule that needs no image. The parsers call it; `Image::prepare` calls it
    /// again, so a request built directly in code is held to the same rules.
    pub fn validate(&self) -> Result<(), MetadataError> {
        match self {
            WriteRequest::RegisterBroker {
                broker_id,
                broker_host,
                broker_status,
                rack_id,
                ..
            } => {
                non_negative("brokerId", i64::from(*broker_id))?;
                validate_label("brokerHost", broker_host)?;
                if let Some(r) = rack_id {
                    validate_label("rackId", r)?;
                }
                if *broker_status == BrokerStatus::Closed {
                    return Err(bad(
                        "a broker cannot register as CLOSED; register it as INIT, FENCED, \
                         UNFENCED or ALIVE",
                    ));
                }
                Ok(())
            }
            WriteRequest::CreateTopic { name } => validate_topic_name(name),
            WriteRequest::CreatePartition {
                partition_id,
                replicas,
                isr,
                removing_replicas,
                adding_replicas,
                leader,
                ..
            } => {
                non_negative("partitionId", i64::from(*partition_id))?;
                if replicas.is_empty() {
                    return Err(bad("replicas must list at least one broker"));
                }
                no_repeats("replicas", replicas)?;
                no_repeats("ISR", isr)?;
                no_repeats("removingReplicas", removing_replicas)?;
                no_repeats("addingReplicas", adding_replicas)?;
                subset("ISR", isr, replicas)?;
                subset("removingReplicas", removing_replicas, replicas)?;
                subset("addingReplicas", adding_replicas, replicas)?;
                if let Some(id) = adding_replicas
                    .iter()
                    .find(|id| removing_replicas.contains(id))
                {
                    return Err(bad(format!(
                        "broker {id} cannot be both in addingReplicas and removingReplicas"
                    )));
                }
                if let LeaderRef::Id(id) = leader {
                    if !replicas.contains(id) {
                        return Err(bad(format!(
                            "leader must be one of the replicas {replicas:?}, got {id}"
                        )));
                    }
                }
                Ok(())
            }
            WriteRequest::RegisterProducer {
                broker_id,
                producer_id,
            } => {
                non_negative("brokerId", i64::from(*broker_id))?;
                if let Some(p) = producer_id {
                    non_negative("producerId", *p)?;
                }
                Ok(())
            }
            WriteRequest::ChangeBroker {
                broker_id,
                broker_host,
                broker_port,
                security_protocol,
                broker_status,
            } => {
                non_negative("brokerId", i64::from(*broker_id))?;
                if let Some(h) = broker_host {
                    validate_label("brokerHost", h)?;
                }
                if broker_port == &Some(0) {
                    return Err(bad("brokerPort must be an integer from 1 to 65535, got 0"));
                }
                if broker_host.is_none()
                    && broker_port.is_none()
                    && security_protocol.is_none()
                    && broker_status.is_none()
                {
                    return Err(bad(
                        "a broker change must set at least one of brokerHost, brokerPort, \
                         securityProtocol, brokerStatus",
                    ));
                }
                Ok(())
            }
            WriteRequest::DeleteBroker { broker_id } => {
                non_negative("brokerId", i64::from(*broker_id))
            }
        }
    }

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
            &[
                "brokerId",
                "brokerHost",
                "brokerPort",
                "securityProtocol",
                "brokerStatus",
                "rackId",
            ],
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
            &[
                "partitionId",
                "topicUUID",
                "replicas",
                "ISR",
                "removingReplicas",
                "addingReplicas",
                "leader",
            ],
            &["partitionEpoch"],
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
                return Err(bad(format!(
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
        check_keys(
            &f,
            R,
            &[
                "brokerId",
                "brokerHost",
                "brokerPort",
                "securityProtocol",
                "brokerStatus",
            ],
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::ErrorKind;
    use serde_json::json;

    fn rb(v: Value) -> Result<WriteRequest, MetadataError> {
        WriteRequest::parse_register_broker(v.to_string().as_bytes())
    }

    fn assert_bad<T: std::fmt::Debug>(r: Result<T, MetadataError>, needle: &str) {
        let e = r.expect_err("expected a BadRequest");
        assert_eq!(e.kind, ErrorKind::BadRequest, "{}", e.message);
        assert!(
            e.message.contains(needle),
            "message {:?} should contain {needle:?}",
            e.message
        );
    }

    fn broker_fields() -> Value {
        json!({"brokerId": 1, "brokerHost": "kafka-1", "brokerPort": 9092})
    }

    #[test]
    fn register_broker_bare_and_envelope_with_defaults() {
        let expected = WriteRequest::RegisterBroker {
            broker_id: 1,
            broker_host: "kafka-1".into(),
            broker_port: 9092,
            security_protocol: SecurityProtocol::Plaintext,
            broker_status: BrokerStatus::Alive,
            rack_id: None,
        };
        assert_eq!(rb(broker_fields()).unwrap(), expected);
        let env =
            json!({"type": "metadata", "name": "RegisterBrokerRecord", "fields": broker_fields()});
        assert_eq!(rb(env).unwrap(), expected);
        let no_name = json!({"type": "metadata", "fields": broker_fields()});
        assert_eq!(rb(no_name).unwrap(), expected);
        let full = json!({"brokerId": 0, "brokerHost": "10.0.0.1", "brokerPort": "9093",
            "securityProtocol": "SASL_SSL", "brokerStatus": "FENCED", "rackId": "eu-1a"});
        assert_eq!(
            rb(full).unwrap(),
            WriteRequest::RegisterBroker {
                broker_id: 0,
                broker_host: "10.0.0.1".into(),
                broker_port: 9093,
                security_protocol: SecurityProtocol::SaslSsl,
                broker_status: BrokerStatus::Fenced,
                rack_id: Some("eu-1a".into()),
            }
        );
    }

    #[test]
    fn envelope_errors() {
        let env = |name: &str| json!({"type": "metadata", "name": name, "fields": broker_fields()});
        assert_bad(rb(env("TopicRecord")), "must be \"RegisterBrokerRecord\"");
        assert_bad(
            rb(json!({"type": "other", "fields": broker_fields()})),
            "\"type\" must be \"metadata\"",
        );
        assert_bad(
            rb(json!({"type": "metadata", "fields": [1]})),
            "\"fields\" must be an object",
        );
        assert_bad(rb(json!({"type": "metadata"})), "no \"fields\"");
        assert_bad(
            rb(json!({"type": "metadata", "fields": broker_fields(), "extra": 1})),
            "unknown key \"extra\"",
        );
        assert_bad(
            WriteRequest::parse_register_broker(b"{nope"),
            "body is not valid JSON",
        );
        assert_bad(
            WriteRequest::parse_register_broker(b""),
            "body is not valid JSON",
        );
        assert_bad(rb(json!([1, 2])), "must be a JSON object");
        assert_bad(rb(json!("x")), "must be a JSON object");
    }

    #[test]
    fn register_broker_rejections() {
        let with = |k: &str, v: Value| {
            let mut f = broker_fields();
            f[k] = v;
            rb(f)
        };
        let without = |k: &str| {
            let mut f = broker_fields();
            f.as_object_mut().unwrap().remove(k);
            rb(f)
        };
        assert_bad(without("brokerId"), "missing required field brokerId");
        assert_bad(without("brokerHost"), "missing required field brokerHost");
        assert_bad(without("brokerPort"), "missing required field brokerPort");
        assert_bad(
            with("brokerId", json!("1")),
            "brokerId must be an integer from 0 to 2147483647, got \"1\"",
        );
        assert_bad(
            with("brokerId", json!(-1)),
            "brokerId must be an integer from 0 to 2147483647, got -1",
        );
        assert_bad(with("brokerId", json!(2147483648u64)), "got 2147483648");
        assert_bad(
            with("brokerId", json!(u64::MAX)),
            "brokerId must be an integer",
        );
        assert_bad(with("brokerId", json!(1.5)), "got 1.5");
        assert_bad(with("brokerId", json!(true)), "brokerId must be an integer");
        assert_bad(
            with("brokerPort", json!(70000)),
            "brokerPort must be an integer from 1 to 65535, got 70000",
        );
        assert_bad(with("brokerPort", json!(0)), "from 1 to 65535, got 0");
        assert_bad(with("brokerPort", json!(-1)), "got -1");
        assert_bad(with("brokerPort", json!("70000")), "got \"70000\"");
        assert_bad(with("brokerPort", json!("90a")), "got \"90a\"");
        assert_bad(with("brokerPort", json!("")), "brokerPort must be");
        assert_bad(with("brokerPort", json!(" 9092")), "brokerPort must be");
        assert_bad(with("brokerHost", json!(5)), "brokerHost must be a string");
        assert_bad(
            with("brokerHost", json!("")),
            "brokerHost must not be empty",
        );
        assert_bad(with("brokerHost", json!("a b")), "whitespace");
        assert_bad(with("brokerHost", json!("h".repeat(256))), "at most 255");
        assert!(with("brokerHost", json!("h".repeat(255))).is_ok());
        assert_bad(
            with("securityProtocol", json!("plaintext")),
            "securityProtocol must be one of",
        );
        assert_bad(
            with("securityProtocol", json!("")),
            "securityProtocol must be one of",
        );
        assert_bad(
            with("brokerStatus", json!("DEAD")),
            "brokerStatus must be one of",
        );
        assert_bad(
            with("brokerStatus", json!("CLOSED")),
            "cannot register as CLOSED",
        );
        assert_bad(with("rackId", json!("")), "rackId must not be empty");
        assert_bad(
            with("brokerHots", json!("x")),
            "unknown field \"brokerHots\"",
        );
        assert_bad(
            with("internalUUID", json!("x")),
            "internalUUID is set by the server",
        );
        assert_bad(with("epoch", json!(0)), "epoch is set by the server");
        // null means "not sent"
        assert!(with("rackId", Value::Null).is_ok());
        assert_bad(
            with("brokerId", Value::Null),
            "missing required field brokerId",
        );
    }

    #[test]
    fn topic_names_follow_kafka() {
        let ct =
            |n: Value| WriteRequest::parse_create_topic(json!({"name": n}).to_string().as_bytes());
        for ok in ["orders", "a", "A.b_c-9", "..a", "...", &"x".repeat(249)] {
            assert_eq!(
                ct(json!(ok)).unwrap(),
                WriteRequest::CreateTopic {
                    name: ok.to_string()
                }
            );
        }
        assert_bad(ct(json!(".")), "cannot be \".\"");
        assert_bad(ct(json!("..")), "cannot be \"..\"");
        assert_bad(ct(json!("")), "must not be empty");
        assert_bad(ct(json!("x".repeat(250))), "at most 249");
        assert_bad(ct(json!("tópico")), "only ASCII");
        assert_bad(ct(json!("a b")), "only ASCII");
        assert_bad(ct(json!("a/b")), "only ASCII");
        assert_bad(ct(json!(7)), "name must be a string");
        assert_bad(
            WriteRequest::parse_create_topic(b"{}"),
            "missing required field name",
        );
        assert_bad(
            WriteRequest::parse_create_topic(br#"{"name":"a","topicUUID":"x"}"#),
            "topicUUID is set by the server",
        );
        let env = json!({"type": "metadata", "name": "TopicRecord", "fields": {"name": "t"}});
        assert!(WriteRequest::parse_create_topic_value(&env).is_ok());
        // Bare object: "name" is the topic's name, not the envelope's.
        assert_eq!(
            WriteRequest::parse_create_topic(br#"{"name":"TopicRecord"}"#).unwrap(),
            WriteRequest::CreateTopic {
                name: "TopicRecord".into()
            }
        );
        let wrong = json!({"type": "metadata", "name": "PartitionRecord", "fields": {"name": "t"}});
        assert_bad(
            WriteRequest::parse_create_topic_value(&wrong),
            "must be \"TopicRecord\"",
        );
    }

    const U: &str = "0123e4567-e89b-42d3-a456-426614174000";

    fn part(extra: Value) -> Result<WriteRequest, MetadataError> {
        let mut f = json!({"partitionId": 0, "topicUUID": "123e4567-e89b-42d3-a456-426614174000",
            "replicas": [1, 2, 3], "leader": 1});
        for (k, v) in extra.as_object().unwrap() {
            if v == "REMOVE" {
                f.as_object_mut().unwrap().remove(k);
            } else {
                f[k] = v.clone();
            }
        }
        WriteRequest::parse_create_partition(f.to_string().as_bytes())
    }

    #[test]
    fn create_partition_parsing() {
        let WriteRequest::CreatePartition {
            isr,
            removing_replicas,
            adding_replicas,
            leader,
            ..
        } = part(json!({})).unwrap()
        else {
            panic!()
        };
        assert_eq!(isr, vec![1, 2, 3]);
        assert!(removing_replicas.is_empty() && adding_replicas.is_empty());
        assert_eq!(leader, LeaderRef::Id(1));
        let uuid = "9b2f0b8e-2b7c-4f7e-9a39-6f1a3f0b7c11";
        let WriteRequest::CreatePartition { leader, .. } = part(json!({"leader": uuid})).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            leader,
            LeaderRef::InternalUuid(Uuid::parse_str(uuid).unwrap())
        );
        assert!(
            part(json!({"ISR": [3, 1], "removingReplicas": [2], "addingReplicas": [3]})).is_ok()
        );

        assert_bad(part(json!({"replicas": []})), "at least one broker");
        assert_bad(
            part(json!({"replicas": [1, 1]})),
            "replicas lists broker 1 more than once",
        );
        assert_bad(
            part(json!({"replicas": [1, -2]})),
            "replicas[1] must be an integer",
        );
        assert_bad(
            part(json!({"replicas": "1,2"})),
            "replicas must be an array",
        );
        assert_bad(
            part(json!({"ISR": [1, 4]})),
            "ISR must be a subset of replicas",
        );
        assert_bad(
            part(json!({"ISR": [1, 1]})),
            "ISR lists broker 1 more than once",
        );
        assert_bad(
            part(json!({"removingReplicas": [9]})),
            "removingReplicas must be a subset",
        );
        assert_bad(
            part(json!({"addingReplicas": [9]})),
            "addingReplicas must be a subset",
        );
        assert_bad(
            part(json!({"addingReplicas": [2], "removingReplicas": [2]})),
            "both in addingReplicas and removingReplicas",
        );
        assert_bad(
            part(json!({"leader": 4})),
            "leader must be one of the replicas",
        );
        assert_bad(part(json!({"leader": -1})), "leader must be an integer");
        assert_bad(
            part(json!({"leader": "kafka-1"})),
            "leader must be a broker id or",
        );
        assert_bad(
            part(json!({"leader": "REMOVE"})),
            "missing required field leader",
        );
        assert_bad(part(json!({"topicUUID": U})), "topicUUID must be a UUID");
        assert_bad(
            part(json!({"topicUUID": 5})),
            "topicUUID must be a UUID string",
        );
        assert_bad(
            part(json!({"topicUUID": "REMOVE"})),
            "missing required field topicUUID",
        );
        assert_bad(
            part(json!({"partitionId": -1})),
            "partitionId must be an integer from 0",
        );
        assert_bad(
            part(json!({"partitionId": 3000000000u64})),
            "partitionId must be an integer from 0",
        );
        assert_bad(
            part(json!({"partitionEpoch": 0})),
            "partitionEpoch is set by the server",
        );
        assert_bad(part(json!({"isr": [1]})), "unknown field \"isr\"");
    }

    #[test]
    fn register_producer_parsing() {
        let p =
            |path: &str, body: &str| WriteRequest::parse_register_producer(path, body.as_bytes());
        let req = |producer_id| WriteRequest::RegisterProducer {
            broker_id: 3,
            producer_id,
        };
        assert_eq!(p("3", "").unwrap(), req(None));
        assert_eq!(p("3", "  \n").unwrap(), req(None));
        assert_eq!(p("3", "{}").unwrap(), req(None));
        assert_eq!(p("3", r#"{"producerId": null}"#).unwrap(), req(None));
        assert_eq!(
            p("3", r#"{"producerId": 9007199254740993}"#).unwrap(),
            req(Some(9007199254740993))
        );
        assert_eq!(
            p("3", r#"{"brokerId": 3, "producerId": 7}"#).unwrap(),
            req(Some(7))
        );
        assert_eq!(
            p(
                "3",
                r#"{"type":"metadata","name":"ProducerIdsRecord","fields":{"producerId":7}}"#
            )
            .unwrap(),
            req(Some(7))
        );
        assert_bad(p("3", r#"{"brokerId": 4}"#), "differs from the path");
        assert_bad(
            p("3", r#"{"producerId": -1}"#),
            "producerId must be an integer from 0 to 9223372036854775807, got -1",
        );
        assert_bad(
            p("3", r#"{"producerId": 9223372036854775808}"#),
            "producerId must be an integer",
        );
        assert_bad(
            p("3", r#"{"producerId": "7"}"#),
            "producerId must be an integer",
        );
        assert_bad(
            p("3", r#"{"brokerEpoch": 0}"#),
            "brokerEpoch is set by the server",
        );
        assert_bad(p("3", "nope"), "body is not valid JSON");
        assert_bad(p("x", ""), "broker id in the path must be an integer");
        assert_bad(p("-3", ""), "broker id in the path must be an integer");
        assert_bad(
            p("2147483648", ""),
            "broker id in the path must be an integer",
        );
        assert_bad(p("", ""), "broker id in the path must be an integer");
    }

    #[test]
    fn broker_change_parsing() {
        let c = |v: Value| WriteRequest::parse_broker_change(v.to_string().as_bytes());
        assert_eq!(
            c(json!({"brokerId": 2, "brokerPort": "9094", "brokerStatus": "FENCED"})).unwrap(),
            WriteRequest::ChangeBroker {
                broker_id: 2,
                broker_host: None,
                broker_port: Some(9094),
                security_protocol: None,
                broker_status: Some(BrokerStatus::Fenced),
            }
        );
        for name in [
            "BrokerRegistrationChangeBrokerRecord",
            "RegistrationChangeBrokerRecord",
        ] {
            let env = json!({"type": "metadata", "name": name, "fields": {"brokerId": 2, "brokerHost": "h2"}});
            assert!(c(env).is_ok(), "{name}");
        }
        let env = json!({"type": "metadata", "name": "RegisterBrokerRecord", "fields": {"brokerId": 2, "brokerHost": "h2"}});
        assert_bad(c(env), "must be \"BrokerRegistrationChangeBrokerRecord\"");
        assert_bad(c(json!({"brokerId": 2})), "at least one of");
        assert_bad(
            c(json!({"brokerHost": "h"})),
            "missing required field brokerId",
        );
        assert_bad(
            c(json!({"brokerId": 2, "epoch": 3})),
            "epoch is set by the server",
        );
        assert_bad(
            c(json!({"brokerId": 2, "rackId": "r"})),
            "unknown field \"rackId\"",
        );
        assert_bad(c(json!({"brokerId": 2, "brokerPort": 65536})), "got 65536");
        assert_bad(
            c(json!({"brokerId": 2, "brokerHost": ""})),
            "brokerHost must not be empty",
        );
        assert_bad(
            c(json!({"brokerId": 2, "brokerStatus": "alive"})),
            "brokerStatus must be one of",
        );
    }

    #[test]
    fn delete_broker_and_query_parsing() {
        assert_eq!(
            WriteRequest::delete_broker("0").unwrap(),
            WriteRequest::DeleteBroker { broker_id: 0 }
        );
        assert_eq!(parse_broker_id_path("2147483647").unwrap(), i32::MAX);
        assert_bad(WriteRequest::delete_broker("1.0"), "got \"1.0\"");
        assert_bad(WriteRequest::delete_broker("+1"), "must be an integer");
        assert_bad(parse_topic_uuid("nope"), "topicUUID must be a UUID");
        assert!(parse_topic_uuid("123e4567-e89b-42d3-a456-426614174000").is_ok());
    }

    #[test]
    fn validate_catches_requests_built_in_code() {
        let r = WriteRequest::RegisterProducer {
            broker_id: -1,
            producer_id: None,
        };
        assert_eq!(r.validate().unwrap_err().kind, ErrorKind::BadRequest);
        let r = WriteRequest::ChangeBroker {
            broker_id: 1,
            broker_host: None,
            broker_port: Some(0),
            security_protocol: None,
            broker_status: None,
        };
        assert!(r.validate().is_err());
    }
}
