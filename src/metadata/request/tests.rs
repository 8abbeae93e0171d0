//! The per-endpoint parsers against client bodies: defaults, envelopes, every refusal's message.

use serde_json::{json, Value};
use uuid::Uuid;

use super::{LeaderRef, WriteRequest};
use crate::metadata::record::{BrokerStatus, SecurityProtocol};
use crate::metadata::{ErrorKind, MetadataError};

fn rb(v: Value) -> Result<WriteRequest, MetadataError> {
    WriteRequest::parse_register_broker(v.to_string().as_bytes())
}

/// Asserts a BadRequest whose message contains `needle`.
pub(super) fn assert_bad<T: std::fmt::Debug>(r: Result<T, MetadataError>, needle: &str) {
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
    let ct = |n: Value| WriteRequest::parse_create_topic(json!({"name": n}).to_string().as_bytes());
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
    assert!(part(json!({"ISR": [3, 1], "removingReplicas": [2], "addingReplicas": [3]})).is_ok());

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
    assert_bad(
        part(json!({"leaderEpoch": 0})),
        "leaderEpoch is set by the server",
    );
    assert_bad(part(json!({"isr": [1]})), "unknown field \"isr\"");
}

#[test]
fn register_producer_parsing() {
    let p = |path: &str, body: &str| WriteRequest::parse_register_producer(path, body.as_bytes());
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
