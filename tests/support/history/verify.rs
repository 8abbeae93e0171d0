//! The checker proper: pure functions from a recorded history (calls, stream events) and the
//! nodes' final logs to a list of violations. No I/O, so that `tests/checker.rs` can feed it
//! purpose-built broken histories and see each one caught.
//!
//! The expected image at an offset is the fold of the final log up to it, with the library's
//! `Image::apply` (the state machine's own fold): what is checked here is what clients were told
//! against the log, not the fold's validation rules (the metadata property tests cover those).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Instant;

use serde_json::{json, Value};
use yakt::metadata::{Image, MetadataCommand, Record};

use super::{Answer, Call, Outcome, Req, StreamLog};

/// Which rule a violation breaks (tests assert on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Two nodes hold different records at one offset.
    NodesDisagree,
    /// An acknowledged write is not at its offset, or not with the fields it was answered with.
    AckedMissing,
    /// An acknowledged write's record is in the log more than once.
    AckedTwice,
    /// An acknowledged write's record is in the log but the image refused it at apply (a `200`
    /// for something that exists nowhere).
    AckedRefused,
    /// A write that failed definitely is in the log (or more records than requests explain).
    FailedInLog,
    /// Acknowledged before another write was sent, yet at a higher (or the same) offset.
    RealTimeOrder,
    /// A consistent read misses a write acknowledged before the read was sent.
    StaleRead,
    /// A consistent read equals no image of the log between what it must and may show.
    ReadNotAPrefix,
    /// A stream event differs from the final log's record at its offset.
    StreamMismatch,
    /// A stream's ids do not strictly increase.
    StreamOrder,
    /// A stream skipped a record between two ids it received.
    StreamSkip,
    /// An answer the API never gives (a 5xx other than 503).
    BadStatus,
    /// The nodes' final image is not the fold of their log (or lacks an acknowledged topic).
    ImageNotFold,
}

/// One broken rule, with the requests and records involved, readable on its own.
#[derive(Clone, Debug)]
pub struct Violation {
    pub kind: Kind,
    pub text: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.text)
    }
}

/// One node's final log: every record from the common log start to the common applied offset.
#[derive(Clone, Debug)]
pub struct NodeLog {
    pub node: String,
    pub records: Vec<Value>,
}

/// Everything the checker reads.
pub struct Evidence<'a> {
    pub calls: &'a [Call],
    pub streams: &'a [StreamLog],
    pub logs: &'a [NodeLog],
    /// The first offset every node still holds (1 when nothing was purged).
    pub log_start: u64,
    /// The offset every node had applied when the logs were read.
    pub applied: u64,
    /// The nodes' common `/get_metadata` `metadata` at `applied`, when known.
    pub image: Option<&'a Value>,
}

/// What the checker looked at, for the test's report.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub acked: usize,
    pub failed: usize,
    pub unknown: usize,
    pub unknown_committed: usize,
    pub reads: usize,
    pub reads_checked_against_images: usize,
    pub stream_events: usize,
    pub records: usize,
    /// Records in the log that the image refused at apply (none acknowledged).
    pub refused: usize,
    /// Whether the log was complete (started at offset 1), so that images could be folded.
    pub complete: bool,
}

/// A call as one line: who sent what where, when, and what came of it.
pub fn describe_call(c: &Call, t0: Instant) -> String {
    let ms = |t: Instant| t.saturating_duration_since(t0).as_millis();
    let res = match &c.answer {
        Answer::Write(Outcome::Acked(o)) => format!("acknowledged at offset {o}"),
        Answer::Write(Outcome::Failed(w)) => format!("failed ({w})"),
        Answer::Write(Outcome::Unknown(w)) => format!("unknown ({w})"),
        Answer::Read(s, _) => format!("read {s}"),
        Answer::NoRead(w) => format!("no answer ({w})"),
    };
    format!(
        "[{} {:?} via {}, sent {} ms, answered {} ms: {res}]",
        c.client,
        c.req,
        c.node,
        ms(c.sent),
        ms(c.answered)
    )
}

/// The record JSON as a command the image folds.
fn command_of(rec: &Value) -> Option<MetadataCommand> {
    let name = rec["name"].as_str()?;
    let record: Record = serde_json::from_value(json!({ name: rec["fields"].clone() })).ok()?;
    Some(MetadataCommand {
        timestamp_ms: rec["timestamp"].as_u64()?,
        record,
    })
}

fn offset_of(rec: &Value) -> u64 {
    rec["offset"].as_u64().unwrap_or(0)
}

/// The log record name a write appends.
fn record_name(req: &Req) -> Option<&'static str> {
    Some(match req {
        Req::CreateTopic { .. } => "TopicRecord",
        Req::RegisterBroker { .. } => "RegisterBrokerRecord",
        Req::ChangeBroker { .. } | Req::DeleteBroker { .. } => {
            "BrokerRegistrationChangeBrokerRecord"
        }
        Req::RegisterProducer { .. } => "ProducerIdsRecord",
        _ => return None,
    })
}

/// A client-chosen value that only this request's record carries (the unique `brokerHost`).
fn token(req: &Req) -> Option<&str> {
    match req {
        Req::RegisterBroker { host, .. } | Req::ChangeBroker { host, .. } => Some(host),
        _ => None,
    }
}

/// Records that requests without a token may have produced, grouped by what they collide on.
fn collision_key(rec: &Value) -> Option<String> {
    let f = &rec["fields"];
    match rec["name"].as_str()? {
        "TopicRecord" => Some(format!("topic {}", f["name"].as_str()?)),
        "BrokerRegistrationChangeBrokerRecord"
            if f.get("brokerHost").is_none() && f["brokerStatus"] == "CLOSED" =>
        {
            Some(format!("delete_broker {}", f["brokerId"]))
        }
        "ProducerIdsRecord" => Some(format!("register_producer {}", f["brokerId"])),
        _ => None,
    }
}

fn call_key(req: &Req) -> Option<String> {
    match req {
        Req::CreateTopic { name } => Some(format!("topic {name}")),
        Req::DeleteBroker { id } => Some(format!("delete_broker {id}")),
        Req::RegisterProducer { broker } => Some(format!("register_producer {broker}")),
        _ => None,
    }
}

/// What a read of one entity shows: the `metadata` of a `200`, or `None` for a `404`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Entity<'a> {
    Topic(&'a str),
    Broker(i32),
}

fn view(image: &Image, e: Entity) -> Option<Value> {
    match e {
        Entity::Topic(n) => image.topic(n).ok(),
        Entity::Broker(id) => image.broker(id).ok(),
    }
}

/// The fold of the final log, with what the checks need from it.
struct Folded {
    /// offset -> why the image refused the record there.
    refused: HashMap<u64, String>,
    /// For each entity read: its view after each record that changed it, in offset order.
    changes: HashMap<String, Vec<(u64, Option<Value>)>>,
    /// The image after the whole log.
    last: Image,
}

fn entity_key(e: Entity) -> String {
    match e {
        Entity::Topic(n) => format!("topic {n}"),
        Entity::Broker(id) => format!("broker {id}"),
    }
}

fn fold(log: &[Value], read_entities: &[Entity]) -> Folded {
    let wanted: std::collections::HashSet<String> =
        read_entities.iter().map(|e| entity_key(*e)).collect();
    let mut image = Image::new();
    let mut refused = HashMap::new();
    let mut changes: HashMap<String, Vec<(u64, Option<Value>)>> = HashMap::new();
    for rec in log {
        let o = offset_of(rec);
        let Some(cmd) = command_of(rec) else {
            refused.insert(o, format!("the checker cannot decode {rec}"));
            continue;
        };
        if let Err(e) = image.apply(o, &cmd) {
            refused.insert(o, e.to_string());
            continue;
        }
        let touched = match &cmd.record {
            Record::Topic(t) => Some(Entity::Topic(&t.name)),
            Record::RegisterBroker(b) => Some(Entity::Broker(b.broker_id)),
            Record::BrokerChange(b) => Some(Entity::Broker(b.broker_id)),
            _ => None,
        };
        if let Some(e) = touched {
            let k = entity_key(e);
            if wanted.contains(&k) {
                let v = view(&image, e);
                changes.entry(k).or_default().push((o, v));
            }
        }
    }
    Folded {
        refused,
        changes,
        last: image,
    }
}

/// Checks the evidence; returns every violation found (empty when the history is clean).
pub fn verify(ev: &Evidence) -> (Vec<Violation>, Stats) {
    let mut out = Vec::new();
    let mut stats = Stats::default();
    let t0 = ev
        .calls
        .iter()
        .map(|c| c.sent)
        .min()
        .unwrap_or_else(Instant::now);
    let d = |c: &Call| describe_call(c, t0);
    let mut push = |kind: Kind, text: String| out.push(Violation { kind, text });

    // 1. The nodes agree, record by record.
    let Some(first) = ev.logs.first() else {
        push(Kind::NodesDisagree, "no node's log to check".into());
        return (out, stats);
    };
    let by_off = |l: &NodeLog| -> BTreeMap<u64, Value> {
        l.records
            .iter()
            .map(|r| (offset_of(r), r.clone()))
            .collect()
    };
    let log_map = by_off(first);
    for other in &ev.logs[1..] {
        let m = by_off(other);
        if let Some(o) = log_map
            .keys()
            .chain(m.keys())
            .find(|o| log_map.get(o) != m.get(o))
        {
            push(
                Kind::NodesDisagree,
                format!(
                    "node {} and node {} differ first at offset {o}: {:?} vs {:?}",
                    first.node,
                    other.node,
                    log_map.get(o),
                    m.get(o)
                ),
            );
        }
    }
    let log: Vec<Value> = log_map.values().cloned().collect();
    stats.records = log.len();
    let complete = ev.log_start <= 1;
    stats.complete = complete;

    // Which entities reads ask about, so the fold keeps their history.
    let entities: Vec<Entity> = ev
        .calls
        .iter()
        .filter_map(|c| match &c.req {
            Req::GetTopic { name } => Some(Entity::Topic(name)),
            Req::GetBroker { id } => Some(Entity::Broker(*id)),
            _ => None,
        })
        .collect();
    let folded = complete.then(|| fold(&log, &entities));
    if let Some(f) = &folded {
        stats.refused = f.refused.len();
    }

    // The nodes' image is the fold of the log.
    if let (Some(f), Some(img)) = (&folded, ev.image) {
        let want = f.last.metadata_json();
        if &want != img {
            push(
                Kind::ImageNotFold,
                format!(
                    "the nodes' image at {} is not the fold of their log: {}",
                    ev.applied,
                    first_difference(&want, img)
                ),
            );
        }
    }
    let folded_json = folded.as_ref().map(|f| f.last.metadata_json());
    let final_topics: Option<HashMap<&str, &str>> = folded_json.as_ref().or(ev.image).map(|img| {
        img["TopicRecord"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| Some((t["name"].as_str()?, t["topicUUID"].as_str()?)))
                    .collect()
            })
            .unwrap_or_default()
    });

    // 2. Writes against the log.
    let mut by_fields: HashMap<(String, String), Vec<u64>> = HashMap::new();
    let mut by_token: HashMap<String, Vec<u64>> = HashMap::new();
    let mut by_key: HashMap<String, Vec<u64>> = HashMap::new();
    for r in &log {
        let o = offset_of(r);
        by_fields
            .entry((r["name"].to_string(), r["fields"].to_string()))
            .or_default()
            .push(o);
        if let Some(h) = r["fields"]["brokerHost"].as_str() {
            by_token.entry(h.to_string()).or_default().push(o);
        }
        if let Some(k) = collision_key(r) {
            by_key.entry(k).or_default().push(o);
        }
    }
    // Which requests were acknowledged with each offset.
    let mut acked_at: HashMap<u64, Vec<&Call>> = HashMap::new();
    for c in ev.calls {
        if let Answer::Write(Outcome::Acked(o)) = c.answer {
            acked_at.entry(o).or_default().push(c);
        }
    }
    // Per collision key: (acknowledged, unknown, definitely failed calls).
    let mut explained: HashMap<String, (usize, usize, Vec<&Call>)> = HashMap::new();
    for c in ev.calls {
        let Answer::Write(outcome) = &c.answer else {
            continue;
        };
        if let Some(k) = call_key(&c.req) {
            let e = explained.entry(k).or_default();
            match outcome {
                Outcome::Acked(_) => e.0 += 1,
                Outcome::Unknown(_) => e.1 += 1,
                Outcome::Failed(_) => e.2.push(c),
            }
        }
        let tok = token(&c.req);
        let tok_offsets = tok
            .and_then(|t| by_token.get(t))
            .cloned()
            .unwrap_or_default();
        match outcome {
            Outcome::Acked(o) => {
                stats.acked += 1;
                check_acked(
                    c,
                    *o,
                    &log_map,
                    ev.log_start,
                    &by_fields,
                    &acked_at,
                    &mut |k, t| push(k, format!("{t}: {}", d(c))),
                );
                if tok.is_some() && *o >= ev.log_start && tok_offsets.len() > 1 {
                    push(
                        Kind::AckedTwice,
                        format!(
                            "its record (brokerHost {}) is in the log at offsets {tok_offsets:?}: {}",
                            tok.unwrap_or(""),
                            d(c)
                        ),
                    );
                }
                if let Some(f) = &folded {
                    if let Some(why) = f.refused.get(o) {
                        push(
                            Kind::AckedRefused,
                            format!(
                                "answered 200 but the image refused the record at {o} ({why}): {}",
                                d(c)
                            ),
                        );
                    }
                }
                // A topic is never removed: an acknowledged one is in the final image with the
                // id it was answered with (checkable even when the log was purged).
                if let Req::CreateTopic { name } = &c.req {
                    if let Some(topics) = &final_topics {
                        let want = c.body["metadata"]["topicUUID"].as_str();
                        let have = topics.get(name.as_str());
                        if have.is_none() || (want.is_some() && have.copied() != want) {
                            push(
                                Kind::AckedRefused,
                                format!(
                                    "answered topicUUID {want:?}, but the final image has {have:?} for {name}: {}",
                                    d(c)
                                ),
                            );
                        }
                    }
                }
            }
            Outcome::Failed(why) => {
                stats.failed += 1;
                if !tok_offsets.is_empty() {
                    push(
                        Kind::FailedInLog,
                        format!(
                            "failed definitely ({why}) but its record is in the log at {tok_offsets:?}: {}",
                            d(c)
                        ),
                    );
                }
            }
            Outcome::Unknown(_) => {
                stats.unknown += 1;
                if !tok_offsets.is_empty() {
                    stats.unknown_committed += 1;
                }
                if tok_offsets.len() > 1 {
                    push(
                        Kind::AckedTwice,
                        format!(
                            "an unknown-outcome write is in the log {} times, at {tok_offsets:?}: {}",
                            tok_offsets.len(),
                            d(c)
                        ),
                    );
                }
            }
        }
        if let Answer::Write(Outcome::Unknown(w)) = &c.answer {
            if w.starts_with("status 5") && !w.starts_with("status 503") {
                push(Kind::BadStatus, d(c));
            }
        }
    }
    // Records without a token: no more of them than acknowledged and unknown requests explain.
    if complete {
        for (k, offsets) in &by_key {
            let Some((acked, unknown, failed)) = explained.get(k) else {
                continue; // written by something outside the history
            };
            if offsets.len() > acked + unknown {
                let failed: Vec<String> = failed.iter().map(|c| d(c)).collect();
                push(
                    Kind::FailedInLog,
                    format!(
                        "{k}: {} records in the log (at {offsets:?}) but only {acked} acknowledged and {unknown} unknown requests; the definitely failed ones: {}",
                        offsets.len(),
                        failed.join(" ")
                    ),
                );
            }
        }
    }

    // 3. Real time: acknowledged before another was sent => a lower offset.
    let mut acked: Vec<(&Call, u64)> = ev
        .calls
        .iter()
        .filter_map(|c| match c.answer {
            Answer::Write(Outcome::Acked(o)) => Some((c, o)),
            _ => None,
        })
        .collect();
    acked.sort_by_key(|(c, _)| c.answered);
    // prefix_max[i]: the acknowledged write with the highest offset among the first i answers.
    let mut prefix_max: Vec<Option<(&Call, u64)>> = vec![None];
    for &(c, o) in &acked {
        let best = match prefix_max.last().copied().flatten() {
            Some((bc, bo)) if bo >= o => Some((bc, bo)),
            _ => Some((c, o)),
        };
        prefix_max.push(best);
    }
    let before = |t: Instant| -> Option<(&Call, u64)> {
        let n = acked.partition_point(|(c, _)| c.answered < t);
        prefix_max[n]
    };
    let mut by_sent = acked.clone();
    by_sent.sort_by_key(|(c, _)| c.sent);
    for &(b, ob) in &acked {
        if let Some((a, oa)) = before(b.sent) {
            if oa >= ob {
                push(
                    Kind::RealTimeOrder,
                    format!(
                        "{} was acknowledged at offset {oa} before {} was sent, which got offset {ob}",
                        d(a),
                        d(b)
                    ),
                );
            }
        }
    }
    // The lowest offset acknowledged to a write sent after `t`.
    let after = |t: Instant| -> Option<(&Call, u64)> {
        by_sent
            .iter()
            .filter(|(c, _)| c.sent > t)
            .min_by_key(|(_, o)| *o)
            .copied()
    };

    // 4. Consistent reads.
    let mut metadata_reads: Vec<(&Call, u64, &Value)> = Vec::new();
    for c in ev.calls {
        let Answer::Read(status, body) = &c.answer else {
            continue;
        };
        stats.reads += 1;
        let must = before(c.sent); // the read shows at least this write
        let may = after(c.answered); // and nothing from this one on
        let lo = must.map(|(_, o)| o).unwrap_or(0);
        let hi = may.map(|(_, o)| o).unwrap_or(u64::MAX);
        let window = format!(
            "it must show every write up to offset {lo}{} and none from {}",
            must.map(|(a, _)| format!(" (the last acknowledged before it was sent: {})", d(a)))
                .unwrap_or_default(),
            may.map(|(b, o)| format!("offset {o} ({}, sent after it was answered)", d(b)))
                .unwrap_or_else(|| "the end".into())
        );
        match &c.req {
            Req::GetMetadata => {
                let Some(o) = body["offset"].as_u64() else {
                    push(
                        Kind::ReadNotAPrefix,
                        format!("no offset in the answer: {}", d(c)),
                    );
                    continue;
                };
                if o < lo {
                    push(
                        Kind::StaleRead,
                        format!("the image is at offset {o}, but {window}: {}", d(c)),
                    );
                } else if o >= hi {
                    push(
                        Kind::ReadNotAPrefix,
                        format!("the image is at offset {o}, but {window}: {}", d(c)),
                    );
                } else if complete {
                    metadata_reads.push((c, o, body));
                }
            }
            Req::GetTopic { .. } | Req::GetBroker { .. } => {
                let e = match &c.req {
                    Req::GetTopic { name } => Entity::Topic(name),
                    Req::GetBroker { id } => Entity::Broker(*id),
                    _ => unreachable!(),
                };
                let shown = (*status == 200).then(|| body["metadata"].clone());
                if let Some(f) = &folded {
                    stats.reads_checked_against_images += 1;
                    let ch = f
                        .changes
                        .get(&entity_key(e))
                        .map(|v| v.as_slice())
                        .unwrap_or(&[]);
                    // The view in effect at `lo`, then every view it took before `hi`.
                    let at_lo = ch
                        .iter()
                        .rev()
                        .find(|(o, _)| *o <= lo)
                        .map(|(_, v)| v.clone())
                        .unwrap_or(None);
                    let mut allowed = vec![at_lo];
                    allowed.extend(
                        ch.iter()
                            .filter(|(o, _)| *o > lo && *o < hi)
                            .map(|(_, v)| v.clone()),
                    );
                    if !allowed.contains(&shown) {
                        let earlier = ch.iter().any(|(o, v)| *o <= lo && *v == shown)
                            || (shown.is_none() && ch.first().is_some_and(|(o, _)| *o <= lo));
                        let kind = if earlier {
                            Kind::StaleRead
                        } else {
                            Kind::ReadNotAPrefix
                        };
                        let hist: Vec<String> = ch
                            .iter()
                            .map(|(o, v)| {
                                format!(
                                    "{o}: {}",
                                    v.as_ref().map(|v| v.to_string()).unwrap_or("absent".into())
                                )
                            })
                            .collect();
                        push(
                            kind,
                            format!(
                                "it showed {} but {window}; the entity's history in the log: [{}]: {}",
                                shown.map(|v| v.to_string()).unwrap_or("404".into()),
                                hist.join(", "),
                                d(c)
                            ),
                        );
                    }
                } else if let (Entity::Topic(name), None) = (e, &shown) {
                    // Without the whole log: a topic acknowledged before the read must be there.
                    if let Some(a) = acked.iter().find(|(a, _)| {
                        a.answered < c.sent
                            && matches!(&a.req, Req::CreateTopic { name: n } if n == name)
                    }) {
                        push(
                            Kind::StaleRead,
                            format!(
                                "404 for topic {name}, created by {} before the read was sent: {}",
                                d(a.0),
                                d(c)
                            ),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    // A metadata read equals the fold of the log up to the offset it names.
    if !metadata_reads.is_empty() {
        metadata_reads.sort_by_key(|(_, o, _)| *o);
        let mut image = Image::new();
        let mut next = log.iter().peekable();
        for (c, o, body) in metadata_reads {
            while let Some(r) = next.peek() {
                if offset_of(r) > o {
                    break;
                }
                if let Some(cmd) = command_of(r) {
                    let _ = image.apply(offset_of(r), &cmd);
                }
                next.next();
            }
            stats.reads_checked_against_images += 1;
            let want = image.metadata_json();
            let got = body["metadata"].clone();
            if want != got {
                let diff = first_difference(&want, &got);
                push(
                    Kind::ReadNotAPrefix,
                    format!(
                        "the image it showed is not the fold of the log up to its offset {o}: {diff}: {}",
                        d(c)
                    ),
                );
            }
        }
    }

    // 5. Stream readers.
    let mut seen_below: HashMap<u64, (&str, &Value)> = HashMap::new();
    for s in ev.streams {
        let mut prev: Option<u64> = None;
        for e in &s.events {
            stats.stream_events += 1;
            let where_ = format!(
                "reader on {} (connection {}), event id {}",
                s.node, e.connection, e.id
            );
            if let Some(p) = prev {
                if e.id <= p {
                    push(Kind::StreamOrder, format!("{where_} came after id {p}"));
                    continue;
                }
            }
            if e.id > ev.applied {
                prev = Some(e.id);
                continue; // past what the logs were read up to
            }
            if e.kind == "snapshot" {
                if complete {
                    let img = fold_to(&log, e.id);
                    if img.metadata_json() != e.data["metadata"] {
                        push(
                            Kind::StreamMismatch,
                            format!(
                                "{where_}: the snapshot is not the fold of the log up to it: {}",
                                first_difference(&img.metadata_json(), &e.data["metadata"])
                            ),
                        );
                    }
                }
                prev = Some(e.id);
                continue;
            }
            if e.id >= ev.log_start {
                match log_map.get(&e.id) {
                    None => push(
                        Kind::StreamMismatch,
                        format!("{where_}: {} — the final log has no record there", e.data),
                    ),
                    Some(r) if *r != e.data => push(
                        Kind::StreamMismatch,
                        format!("{where_}: received {} but the final log holds {r}", e.data),
                    ),
                    _ => {}
                }
                // Nothing skipped since the previous id (or since the start, for the first).
                let from = prev.map(|p| p + 1).unwrap_or(0).max(ev.log_start);
                let skipped: Vec<u64> = log_map.range(from..e.id).map(|(o, _)| *o).collect();
                let from_known = prev.map(|p| p + 1 >= ev.log_start).unwrap_or(complete);
                if !skipped.is_empty() && from_known {
                    push(
                        Kind::StreamSkip,
                        format!(
                            "{where_}: after {} it skipped the records at {skipped:?}",
                            prev.map(|p| format!("id {p}"))
                                .unwrap_or("the start".into())
                        ),
                    );
                }
            } else {
                // Below the log's start: readers must at least agree with each other.
                match seen_below.get(&e.id) {
                    Some((n, v)) if *v != &e.data => push(
                        Kind::StreamMismatch,
                        format!(
                            "{where_}: received {} but the reader on {n} received {v}",
                            e.data
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        seen_below.insert(e.id, (&s.node, &e.data));
                    }
                }
            }
            prev = Some(e.id);
        }
    }
    (out, stats)
}

/// Checks one acknowledged write against the log: its record at its offset, with its fields,
/// and that record once.
fn check_acked(
    c: &Call,
    o: u64,
    log: &BTreeMap<u64, Value>,
    log_start: u64,
    by_fields: &HashMap<(String, String), Vec<u64>>,
    acked_at: &HashMap<u64, Vec<&Call>>,
    push: &mut dyn FnMut(Kind, String),
) {
    if o < log_start {
        return; // purged after a snapshot: the image checks still apply
    }
    let Some(rec) = log.get(&o) else {
        push(Kind::AckedMissing, format!("no record at offset {o}"));
        return;
    };
    let name = record_name(&c.req).unwrap_or("?");
    let fits = rec["name"] == name
        && match &c.req {
            Req::DeleteBroker { id } => {
                rec["fields"]["brokerId"] == json!(id) && rec["fields"]["brokerStatus"] == "CLOSED"
            }
            // Recorded by hand without the answer's fields: the name must match.
            Req::CreateTopic { name } if c.body.get("metadata").is_none() => {
                rec["fields"]["name"] == json!(name)
            }
            _ => c.body["metadata"] == rec["fields"],
        };
    if !fits {
        push(
            Kind::AckedMissing,
            format!(
                "the log holds {rec} at offset {o}, not what the client was told ({})",
                c.body
            ),
        );
        return;
    }
    if let Some(others) = acked_at.get(&o).filter(|v| v.len() > 1) {
        push(
            Kind::AckedTwice,
            format!("offset {o} was acknowledged to {} requests", others.len()),
        );
    }
    // The same record elsewhere, unless another request was acknowledged with that offset (two
    // deletes of one broker can carry identical fields).
    let same: Vec<u64> = by_fields
        .get(&(rec["name"].to_string(), rec["fields"].to_string()))
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|x| *x == o || !acked_at.contains_key(x))
        .collect();
    if same.len() > 1 {
        push(
            Kind::AckedTwice,
            format!("its record is in the log at offsets {same:?}"),
        );
    }
}

/// The image folded from the log up to `offset`.
fn fold_to(log: &[Value], offset: u64) -> Image {
    let mut image = Image::new();
    for r in log.iter().take_while(|r| offset_of(r) <= offset) {
        if let Some(cmd) = command_of(r) {
            let _ = image.apply(offset_of(r), &cmd);
        }
    }
    image
}

/// Where two metadata views first differ, short enough for a message.
pub fn first_difference(want: &Value, got: &Value) -> String {
    if let (Some(w), Some(g)) = (want.as_object(), got.as_object()) {
        for (k, wv) in w {
            let gv = g.get(k).unwrap_or(&Value::Null);
            if wv != gv {
                if let (Some(wa), Some(ga)) = (wv.as_array(), gv.as_array()) {
                    let i = (0..wa.len().max(ga.len()))
                        .find(|&i| wa.get(i) != ga.get(i))
                        .unwrap_or(0);
                    return format!(
                        "{k}[{i}]: the log's fold has {:?}, the answer {:?} ({} vs {} entries)",
                        wa.get(i).map(|v| v.to_string()),
                        ga.get(i).map(|v| v.to_string()),
                        wa.len(),
                        ga.len()
                    );
                }
                return format!("{k}: the log's fold has {wv}, the answer {gv}");
            }
        }
        return "keys differ".into();
    }
    format!("the log's fold has {want}, the answer {got}")
}
