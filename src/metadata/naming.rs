//! Kafka's naming rules for what a client names: topics, and the host names and rack ids of
//! brokers. Requests are checked against them when parsed, records again when folded.

use super::error::MetadataError;

/// Kafka's topic-name rule: 1–249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), MetadataError> {
    if name.is_empty() {
        return Err(MetadataError::bad_request("topic name must not be empty"));
    }
    if name == "." || name == ".." {
        return Err(MetadataError::bad_request(format!(
            "topic name cannot be {name:?}"
        )));
    }
    if name.len() > 249 {
        return Err(MetadataError::bad_request(format!(
            "topic name must be at most 249 characters, got {}",
            name.chars().count()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(MetadataError::bad_request(format!(
            "topic name may contain only ASCII letters, digits, '.', '_' and '-', got {c:?} in {name:?}"
        )));
    }
    Ok(())
}

/// A host name or rack id (`key` names which, for the message): 1–255 bytes, no whitespace or
/// control characters.
pub fn validate_label(key: &str, s: &str) -> Result<(), MetadataError> {
    if s.is_empty() {
        return Err(MetadataError::bad_request(format!(
            "{key} must not be empty"
        )));
    }
    if s.len() > 255 {
        return Err(MetadataError::bad_request(format!(
            "{key} must be at most 255 bytes, got {}",
            s.len()
        )));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(MetadataError::bad_request(format!(
            "{key} must not contain whitespace or control characters, got {s:?}"
        )));
    }
    Ok(())
}
