//! Ids read from a request's path or query string rather than its body.

use uuid::Uuid;

use super::fields::I32_MAX;
use crate::metadata::error::MetadataError;

/// Reads a broker id from a request path (`/get_broker/{id}`, `/delete_broker/{id}`, ...).
pub fn parse_broker_id_path(s: &str) -> Result<i32, MetadataError> {
    if !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = s.parse::<i32>() {
            return Ok(n);
        }
    }
    Err(MetadataError::bad_request(format!(
        "broker id in the path must be an integer from 0 to {I32_MAX}, got {s:?}"
    )))
}

/// Reads the `?topicUUID=` filter of `/get_partitions`.
pub fn parse_topic_uuid(s: &str) -> Result<Uuid, MetadataError> {
    Uuid::parse_str(s)
        .map_err(|_| MetadataError::bad_request(format!("topicUUID must be a UUID, got {s:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::request::tests::assert_bad;
    use crate::metadata::WriteRequest;

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
}
