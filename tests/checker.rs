//! Issue 13: the history checker must be able to fail. A small history is built in code (the
//! records by the library's own `Image::prepare`/`apply`, as a leader would), checked clean, and
//! then broken one way at a time; each broken variant must be reported with the right kind of
//! violation, naming the requests involved. No processes: these run in milliseconds.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::history::{
    verify, Answer, Call, Evidence, Kind, NodeLog, Outcome, Req, StreamEvent, StreamLog,
};
use yakt::metadata::{Image, LogRecord, MetadataCommand, WriteRequest};

/// A recorded history and the final logs of three nodes.
#[derive(Clone)]
struct Fixture {
    calls: Vec<Call>,
    streams: Vec<StreamLog>,
    log: Vec<Value>,
    image: Value,
    applied: u64,
}

/// Builds the history step by step, as a single leader would have served it.
struct Builder {
    t0: Instant,
    image: Image,
    offset: u64,
    log: Vec<Value>,
    calls: Vec<Call>,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            t0: Instant::now(),
            image: Image::new(),
            // Offset 1 is Raft's own entry (a new leader's blank entry): no record.
            offset: 1,
            log: Vec::new(),
            calls: Vec::new(),
        }
    }
    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }
    /// Prepares and commits `req`; returns the record's offset and fields.
    fn commit(&mut self, req: WriteRequest) -> (u64, Value) {
        let record = self.image.prepare(req).expect("a valid request");
        self.offset += 1;
        let cmd = MetadataCommand {
            timestamp_ms: 1_764_000_000_000 + self.offset,
            record,
        };
        self.image.apply(self.offset, &cmd).expect("applies");
        let rec = serde_json::to_value(LogRecord::new(self.offset, 1, &cmd)).unwrap();
        let fields = rec["fields"].clone();
        self.log.push(rec);
        (self.offset, fields)
    }
    fn call(
        &mut self,
        client: &str,
        req: Req,
        sent: u64,
        answered: u64,
        answer: Answer,
        body: Value,
    ) {
        self.calls.push(Call {
            client: client.into(),
            node: format!("n{}", self.calls.len() % 3 + 1),
            req,
            sent: self.at(sent),
            answered: self.at(answered),
            answer,
            body,
        });
    }
    fn acked(&mut self, client: &str, req: Req, w: WriteRequest, sent: u64, answered: u64) -> u64 {
        let (o, fields) = self.commit(w);
        let body = json!({"message": "ok", "offset": o, "metadata": fields});
        self.call(
            client,
            req,
            sent,
            answered,
            Answer::Write(Outcome::Acked(o)),
            body,
        );
        o
    }
}

fn topic(name: &str) -> WriteRequest {
    WriteRequest::parse_create_topic_value(&json!({ "name": name })).unwrap()
}

/// The clean history: colliding creates, broker registration, change and delete, an unknown
/// outcome that committed, three consistent reads, and two stream readers (one reconnecting).
fn fixture() -> Fixture {
    let mut b = Builder::new();
    let reg = WriteRequest::parse_register_broker_value(
        &json!({"brokerId": 1, "brokerHost": "h-c1-0", "brokerPort": 9092}),
    )
    .unwrap();
    b.acked(
        "c1",
        Req::RegisterBroker {
            id: 1,
            host: "h-c1-0".into(),
        },
        reg,
        0,
        10,
    ); // offset 2
    b.acked(
        "c2",
        Req::CreateTopic { name: "a".into() },
        topic("a"),
        5,
        20,
    ); // 3
    b.call(
        "c3",
        Req::CreateTopic { name: "a".into() },
        6,
        21,
        Answer::Write(Outcome::Failed("409 conflict".into())),
        json!({"error": "conflict"}),
    );
    let change = WriteRequest::parse_broker_change_value(
        &json!({"brokerId": 1, "brokerHost": "h-c1-1", "brokerStatus": "FENCED"}),
    )
    .unwrap();
    b.acked(
        "c1",
        Req::ChangeBroker {
            id: 1,
            host: "h-c1-1".into(),
            status: "FENCED".into(),
        },
        change,
        25,
        40,
    ); // 4
    let t = json!({"metadata": b.image.topic("a").unwrap()});
    b.call(
        "c2",
        Req::GetTopic { name: "a".into() },
        30,
        35,
        Answer::Read(200, t.clone()),
        t,
    );
    let m = json!({"offset": 4, "epoch": 1, "metadata": b.image.metadata_json()});
    b.call(
        "c3",
        Req::GetMetadata,
        41,
        45,
        Answer::Read(200, m.clone()),
        m,
    );
    // A create whose answer never came, committed anyway.
    b.commit(topic("b")); // 5
    b.call(
        "c1",
        Req::CreateTopic { name: "b".into() },
        42,
        80,
        Answer::Write(Outcome::Unknown("transport: timed out".into())),
        Value::Null,
    );
    let uuid = b.image.broker_record(1).unwrap().internal_uuid.to_string();
    let (o, _) = b.commit(WriteRequest::delete_broker("1").unwrap()); // 6
    let body = json!({"message": "broker closed", "offset": o, "brokerUUID": uuid});
    b.call(
        "c2",
        Req::DeleteBroker { id: 1 },
        50,
        60,
        Answer::Write(Outcome::Acked(o)),
        body,
    );
    let g = json!({"metadata": b.image.broker(1).unwrap()});
    b.call(
        "c3",
        Req::GetBroker { id: 1 },
        61,
        65,
        Answer::Read(200, g.clone()),
        g,
    );

    let events = |conn_after: Option<u64>| -> Vec<StreamEvent> {
        b.log
            .iter()
            .map(|r| {
                let id = r["offset"].as_u64().unwrap();
                StreamEvent {
                    id,
                    kind: "record".into(),
                    data: r.clone(),
                    connection: if conn_after.is_some_and(|a| id > a) {
                        2
                    } else {
                        1
                    },
                }
            })
            .collect()
    };
    let streams = vec![
        StreamLog {
            node: "n1".into(),
            events: events(None),
            notes: vec![],
        },
        StreamLog {
            node: "n2".into(),
            events: events(Some(4)),
            notes: vec!["connection 1 ended".into()],
        },
    ];
    Fixture {
        calls: b.calls,
        streams,
        image: b.image.metadata_json(),
        applied: b.offset,
        log: b.log,
    }
}

impl Fixture {
    /// The first call whose request `which` picks, to change its timing or answer.
    fn call(&mut self, which: impl Fn(&Req) -> bool) -> &mut Call {
        self.calls
            .iter_mut()
            .find(|c| which(&c.req))
            .expect("the fixture has such a call")
    }

    /// Commits a second record of topic "a" (with `topic_uuid`) at offset 7; returns it.
    fn second_topic_a_at_7(&mut self, topic_uuid: &str) -> Value {
        let mut rec = self.log[1].clone();
        rec["offset"] = json!(7);
        rec["fields"]["topicUUID"] = json!(topic_uuid);
        self.log.push(rec.clone());
        self.applied = 7;
        rec
    }
}

fn check(f: &Fixture) -> Vec<support::history::Violation> {
    let logs: Vec<NodeLog> = (1..=3)
        .map(|n| NodeLog {
            node: format!("n{n}"),
            records: f.log.clone(),
        })
        .collect();
    let (violations, stats) = verify(&Evidence {
        calls: &f.calls,
        streams: &f.streams,
        logs: &logs,
        log_start: 1,
        applied: f.applied,
        image: Some(&f.image),
    });
    for v in &violations {
        println!("{v}");
    }
    println!("{stats:?}");
    violations
}

/// Asserts that `kind` is among the violations and that its message names `mentions`.
fn caught(violations: &[support::history::Violation], kind: Kind, mentions: &str) {
    assert!(
        violations
            .iter()
            .any(|v| v.kind == kind && v.text.contains(mentions)),
        "expected a {kind:?} violation mentioning {mentions:?}, got: {violations:#?}"
    );
}

#[test]
fn the_clean_history_passes() {
    let v = check(&fixture());
    assert!(v.is_empty(), "{v:#?}");
}

#[test]
fn an_acknowledged_write_missing_from_the_log_is_caught() {
    let mut f = fixture();
    // The broker change acknowledged at offset 4 is lost everywhere (logs and streams).
    f.log.retain(|r| r["offset"] != 4);
    for s in &mut f.streams {
        s.events.retain(|e| e.id != 4);
    }
    let v = check(&f);
    caught(&v, Kind::AckedMissing, "no record at offset 4");
    caught(&v, Kind::AckedMissing, "h-c1-1");
}

#[test]
fn an_acknowledged_write_at_another_offset_is_caught() {
    let mut f = fixture();
    // The client was told offset 3 for topic "a", but the log holds it at 5 and "b" at 3.
    let (a, b) = (f.log[1].clone(), f.log[3].clone());
    f.log[1]["fields"] = b["fields"].clone();
    f.log[3]["fields"] = a["fields"].clone();
    f.streams.clear();
    let v = check(&f);
    caught(&v, Kind::AckedMissing, "offset 3");
}

#[test]
fn a_consistent_read_that_misses_an_earlier_write_is_caught() {
    let mut f = fixture();
    // get_topic "a" was sent at 30 ms, after create_topic "a" was acknowledged at 20 ms: a 404
    // is a stale read.
    let read = f.call(|r| matches!(r, Req::GetTopic { .. }));
    let body = json!({"error": "not_found"});
    read.answer = Answer::Read(404, body.clone());
    read.body = body;
    let v = check(&f);
    caught(&v, Kind::StaleRead, "GetTopic");
    caught(&v, Kind::StaleRead, "CreateTopic");
}

#[test]
fn a_metadata_read_at_an_offset_before_an_earlier_write_is_caught() {
    let mut f = fixture();
    // get_metadata sent at 41 ms answers the image at offset 3, missing the change acknowledged
    // at offset 4 (40 ms).
    let at3 = {
        let mut img = Image::new();
        for r in f
            .log
            .iter()
            .take_while(|r| r["offset"].as_u64().unwrap() <= 3)
        {
            let cmd = MetadataCommand {
                timestamp_ms: r["timestamp"].as_u64().unwrap(),
                record: serde_json::from_value(json!({ r["name"].as_str().unwrap(): r["fields"] }))
                    .unwrap(),
            };
            img.apply(r["offset"].as_u64().unwrap(), &cmd).unwrap();
        }
        img.metadata_json()
    };
    let read = f.call(|r| *r == Req::GetMetadata);
    let body = json!({"offset": 3, "epoch": 1, "metadata": at3});
    read.answer = Answer::Read(200, body.clone());
    read.body = body;
    let v = check(&f);
    caught(&v, Kind::StaleRead, "offset 3");
    caught(&v, Kind::StaleRead, "ChangeBroker");
}

#[test]
fn a_metadata_read_whose_image_is_not_the_log_at_its_offset_is_caught() {
    let mut f = fixture();
    let read = f.call(|r| *r == Req::GetMetadata);
    let mut body = read.body.clone();
    body["metadata"]["TopicRecord"] = json!([]);
    read.answer = Answer::Read(200, body.clone());
    read.body = body;
    let v = check(&f);
    caught(&v, Kind::ReadNotAPrefix, "TopicRecord");
}

#[test]
fn a_stream_event_that_differs_from_the_log_is_caught() {
    let mut f = fixture();
    f.streams[1].events[1].data["fields"]["topicUUID"] =
        json!("00000000-0000-4000-8000-000000000000");
    let v = check(&f);
    caught(&v, Kind::StreamMismatch, "reader on n2");
    caught(
        &v,
        Kind::StreamMismatch,
        "00000000-0000-4000-8000-000000000000",
    );
}

#[test]
fn a_stream_that_skips_or_repeats_a_record_is_caught() {
    let mut f = fixture();
    f.streams[0].events.remove(2); // offset 4
    let dup = f.streams[1].events[3].clone();
    f.streams[1].events.insert(4, dup); // offset 5 twice
    let v = check(&f);
    caught(&v, Kind::StreamSkip, "[4]");
    caught(&v, Kind::StreamOrder, "reader on n2");
}

#[test]
fn a_phantom_200_for_a_record_the_image_refused_is_caught() {
    let mut f = fixture();
    // A second create of "a" committed at offset 7 (validated against an image that had lost
    // the first) and answered 200: the image refuses it at apply.
    let rec = f.second_topic_a_at_7("11111111-1111-4111-8111-111111111111");
    let body = json!({"message": "topic created", "offset": 7, "metadata": rec["fields"]});
    let mut c = f.calls[1].clone();
    c.client = "c9".into();
    c.sent += Duration::from_millis(100);
    c.answered += Duration::from_millis(100);
    c.answer = Answer::Write(Outcome::Acked(7));
    c.body = body;
    f.calls.push(c);
    let v = check(&f);
    caught(&v, Kind::AckedRefused, "refused the record at 7");
}

#[test]
fn a_definitely_failed_write_in_the_log_is_caught() {
    let mut f = fixture();
    // The 409 create of "a" is in the log after all: two records of "a", one acknowledged and
    // no unknown request to explain the second.
    f.second_topic_a_at_7("22222222-2222-4222-8222-222222222222");
    let v = check(&f);
    caught(&v, Kind::FailedInLog, "topic a");
}

#[test]
fn offsets_against_real_time_are_caught() {
    let mut f = fixture();
    // The broker change (acknowledged at 40 ms with offset 4) claims it was sent after the
    // delete (offset 6) was acknowledged at 60 ms.
    let change = f.call(|r| matches!(r, Req::ChangeBroker { .. }));
    change.sent += Duration::from_millis(70);
    change.answered += Duration::from_millis(70);
    let v = check(&f);
    caught(&v, Kind::RealTimeOrder, "DeleteBroker");
}

#[test]
fn nodes_that_disagree_are_caught() {
    let f = fixture();
    let mut other = f.log.clone();
    other[2]["fields"]["brokerStatus"] = json!("ALIVE");
    let logs = vec![
        NodeLog {
            node: "n1".into(),
            records: f.log.clone(),
        },
        NodeLog {
            node: "n2".into(),
            records: other,
        },
    ];
    let (v, _) = verify(&Evidence {
        calls: &f.calls,
        streams: &f.streams,
        logs: &logs,
        log_start: 1,
        applied: f.applied,
        image: Some(&f.image),
    });
    caught(&v, Kind::NodesDisagree, "offset 4");
}

#[test]
fn an_acknowledged_write_applied_twice_is_caught() {
    let mut f = fixture();
    // The broker change acknowledged at offset 4 is in the log again at 7 (a retried proposal).
    let mut rec = f.log[2].clone();
    rec["offset"] = json!(7);
    f.log.push(rec);
    f.applied = 7;
    let v = check(&f);
    caught(&v, Kind::AckedTwice, "[4, 7]");
}

#[test]
fn one_offset_acknowledged_to_two_requests_is_caught() {
    let mut f = fixture();
    let mut c = f
        .calls
        .iter()
        .find(|c| matches!(c.req, Req::CreateTopic { .. }))
        .unwrap()
        .clone();
    c.client = "c8".into();
    f.calls.push(c);
    let v = check(&f);
    caught(
        &v,
        Kind::AckedTwice,
        "offset 3 was acknowledged to 2 requests",
    );
}
