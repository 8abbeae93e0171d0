//! A small library for reading a client's JSON body: the YAKt envelope, allowed and server-set
//! keys, and typed fields whose errors name the field, the expected range and what was sent.

use serde_json::{Map, Value};
use uuid::Uuid;

use super::LeaderRef;
use crate::metadata::error::MetadataError;
use crate::metadata::record::{BrokerStatus, SecurityProtocol};

/// The largest id Kafka's `int32` fields hold.
pub(super) const I32_MAX: i64 = i32::MAX as i64;

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
pub(super) fn parse_json_body(body: &[u8]) -> Result<Value, MetadataError> {
    serde_json::from_slice(body).map_err(|e| bad(format!("body is not valid JSON: {e}")))
}

/// Unwraps the YAKt envelope (or takes a bare object) and returns the fields object.
pub(super) fn fields_of(
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
pub(super) fn check_keys(
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

/// The value of a required field, or `BadRequest "missing required field ..."`.
pub(super) fn required<T>(key: &str, v: Option<T>) -> Result<T, MetadataError> {
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

/// An optional integer field in `min..=max`.
pub(super) fn opt_int(
    obj: &Map<String, Value>,
    key: &str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, MetadataError> {
    get(obj, key)
        .map(|v| int_value(key, v, min, max))
        .transpose()
}

/// An optional id field: an integer from 0 to `i32::MAX`.
pub(super) fn opt_i32_id(
    obj: &Map<String, Value>,
    key: &str,
) -> Result<Option<i32>, MetadataError> {
    // The range check makes the narrowing exact.
    Ok(opt_int(obj, key, 0, I32_MAX)?.map(|n| n as i32))
}

/// `brokerPort`: an integer or a string of digits, 1–65535.
pub(super) fn opt_port(obj: &Map<String, Value>) -> Result<Option<u16>, MetadataError> {
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

/// An optional string field.
pub(super) fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, MetadataError> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(bad(format!("{key} must be a string, got {}", type_name(v)))),
    }
}

/// `securityProtocol`: one of Kafka's four names.
pub(super) fn opt_protocol(
    obj: &Map<String, Value>,
) -> Result<Option<SecurityProtocol>, MetadataError> {
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

/// `brokerStatus`: one of the five statuses.
pub(super) fn opt_status(obj: &Map<String, Value>) -> Result<Option<BrokerStatus>, MetadataError> {
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

/// An optional list of broker ids.
pub(super) fn opt_id_list(
    obj: &Map<String, Value>,
    key: &str,
) -> Result<Option<Vec<i32>>, MetadataError> {
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

/// An optional UUID string field.
pub(super) fn opt_uuid(obj: &Map<String, Value>, key: &str) -> Result<Option<Uuid>, MetadataError> {
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

/// `leader`: a broker id or a broker's `internalUUID`.
pub(super) fn opt_leader(obj: &Map<String, Value>) -> Result<Option<LeaderRef>, MetadataError> {
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
