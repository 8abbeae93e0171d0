use super::*;

/// One record of each type, optional fields set where the type has them.
pub(crate) fn sample_records() -> Vec<Record> {
    let u = Uuid::from_u128(0x0123_4567_89ab_4def_8123_4567_89ab_cdef);
    vec![
        Record::RegisterBroker(RegisterBrokerRecord {
            broker_id: 1,
            broker_host: "kafka-1".into(),
            broker_port: 9092,
            security_protocol: SecurityProtocol::SaslSsl,
            broker_status: BrokerStatus::Alive,
            rack_id: Some("r1".into()),
            internal_uuid: u,
            epoch: 0,
        }),
        Record::Topic(TopicRecord {
            name: "orders".into(),
            topic_uuid: u,
        }),
        Record::Partition(PartitionRecord {
            partition_id: 0,
            topic_uuid: u,
            replicas: vec![1, 2],
            isr: vec![1],
            removing_replicas: vec![],
            adding_replicas: vec![2],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
        }),
        Record::ProducerIds(ProducerIdsRecord {
            broker_id: 1,
            broker_epoch: 3,
            producer_id: i64::MAX,
        }),
        Record::BrokerChange(BrokerRegistrationChangeBrokerRecord {
            broker_id: 1,
            broker_host: None,
            broker_port: Some(1),
            security_protocol: None,
            broker_status: Some(BrokerStatus::Closed),
            epoch: 4,
        }),
        Record::PartitionChange(PartitionChangeRecord {
            topic_uuid: u,
            partition_id: 0,
            leader: NO_LEADER,
            isr: vec![2],
            leader_epoch: 1,
            partition_epoch: 1,
        }),
    ]
}

#[test]
fn fields_json_uses_api_names() {
    let recs = sample_records();
    let b = recs[0].fields_json();
    assert_eq!(b["brokerId"], 1);
    assert_eq!(b["securityProtocol"], "SASL_SSL");
    assert_eq!(b["brokerStatus"], "ALIVE");
    assert_eq!(b["rackId"], "r1");
    assert_eq!(b["internalUUID"], "01234567-89ab-4def-8123-456789abcdef");
    // The names a client sends are the names a record is shown with.
    for k in RegisterBrokerRecord::CLIENT_FIELDS {
        assert!(b.get(k).is_some(), "{k} missing in {b}");
    }
    let p = recs[2].fields_json();
    for k in PartitionRecord::CLIENT_FIELDS
        .iter()
        .chain(&["partitionEpoch"])
    {
        assert!(p.get(k).is_some(), "{k} missing in {p}");
    }
    assert_eq!(p.as_object().unwrap().len(), 9);
    assert_eq!(p["leaderEpoch"], 0);
    let pc = recs[5].fields_json();
    assert_eq!(recs[5].name(), "PartitionChangeRecord");
    assert_eq!(pc["leader"], -1);
    assert_eq!(pc["ISR"], serde_json::json!([2]));
    for k in ["leaderEpoch", "partitionEpoch", "partitionId", "topicUUID"] {
        assert!(pc.get(k).is_some(), "{k} missing in {pc}");
    }
    assert!(p["leader"].is_i64());
    let c = recs[4].fields_json();
    assert!(c.get("brokerHost").is_none());
    assert_eq!(c["brokerStatus"], "CLOSED");
    assert_eq!(recs[4].name(), "BrokerRegistrationChangeBrokerRecord");
    assert_eq!(recs[3].fields_json()["producerId"], i64::MAX);
}

#[test]
fn log_record_and_grouping() {
    let recs = sample_records();
    let logs: Vec<LogRecord> = recs
        .iter()
        .enumerate()
        .rev()
        .map(|(i, r)| {
            LogRecord::new(
                10 + i as u64,
                2,
                &MetadataCommand {
                    timestamp_ms: 7,
                    record: r.clone(),
                },
            )
        })
        .collect();
    let v = serde_json::to_value(&logs[0]).unwrap();
    assert_eq!(v["offset"], 15);
    assert_eq!(v["epoch"], 2);
    assert_eq!(v["timestamp"], 7);
    assert_eq!(v["name"], "PartitionChangeRecord");
    let mut more = logs.clone();
    more.push(LogRecord::new(
        1,
        1,
        &MetadataCommand {
            timestamp_ms: 1,
            record: recs[1].clone(),
        },
    ));
    let g = group_by_name(&more, true);
    let topics = g["TopicRecord"].as_array().unwrap();
    assert_eq!(topics.len(), 2);
    assert_eq!(topics[0]["offset"], 1);
    assert_eq!(topics[1]["offset"], 11);
    assert_eq!(g["ProducerIdsRecord"].as_array().unwrap().len(), 1);
    let c = group_by_name(&more, false);
    assert!(c.get("ProducerIdsRecord").is_none());
    assert_eq!(c["PartitionRecord"].as_array().unwrap().len(), 1);
    assert_eq!(c["PartitionChangeRecord"].as_array().unwrap().len(), 1);
    assert_eq!(
        group_by_name(&[], false)["TopicRecord"],
        serde_json::json!([])
    );
}
