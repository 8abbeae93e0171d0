//! Timestamp forms accepted in the catch-up paths (`/broker_mgmt/{timestamp}`,
//! `/client_mgmt/{timestamp}`), and the one form the dump tool prints.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

use super::error::MetadataError;

/// The latest instant accepted, 9999-12-31T23:59:59.999Z, in ms: beyond it the forms disagree
/// (a 13-digit value would be milliseconds, a 12-digit one seconds in year 33658).
pub const MAX_TIMESTAMP_MS: u64 = 253_402_300_799_999;

fn bad(s: &str, why: &str) -> MetadataError {
    MetadataError::bad_request(format!(
        "timestamp {s:?} {why}; use YYYY-MM-DD_HH:MM:SS (UTC), Unix seconds (1764000000 or \
         1764000000.5), Unix milliseconds (13 digits) or RFC 3339 (2025-11-24T16:00:00Z)"
    ))
}

fn in_range(s: &str, ms: u64) -> Result<u64, MetadataError> {
    if ms > MAX_TIMESTAMP_MS {
        Err(bad(s, "is after the year 9999"))
    } else {
        Ok(ms)
    }
}

/// Reads a path timestamp into milliseconds since the Unix epoch (UTC).
///
/// Accepted: `YYYY-MM-DD_HH:MM:SS` (the original YAKt form, read as UTC); Unix seconds as 1–12
/// digits, optionally with a fraction (truncated to the millisecond); Unix milliseconds as exactly
/// 13 digits; RFC 3339 with `Z` or an offset. Everything else, negatives and instants before 1970
/// or after 9999 are a BadRequest.
pub fn parse_timestamp(s: &str) -> Result<u64, MetadataError> {
    if s.is_empty() {
        return Err(bad(s, "is empty"));
    }
    if s.starts_with('-') {
        return Err(bad(s, "is negative"));
    }
    let bytes = s.as_bytes();
    // Numeric forms: seconds, fractional seconds, milliseconds.
    if bytes.iter().all(|b| b.is_ascii_digit() || *b == b'.') {
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (s, None),
        };
        if int.is_empty() || frac.is_some_and(|f| f.is_empty() || f.contains('.')) {
            return Err(bad(s, "is not a number"));
        }
        let n: u64 = if int.len() > 13 {
            return Err(bad(s, "has too many digits"));
        } else {
            int.parse().map_err(|_| bad(s, "is not a number"))?
        };
        return match frac {
            None if int.len() == 13 => in_range(s, n),
            None => in_range(s, n * 1000),
            Some(_) if int.len() == 13 => Err(bad(
                s,
                "is milliseconds with a fraction; send whole milliseconds",
            )),
            Some(f) => {
                let digits: String = f.chars().chain("000".chars()).take(3).collect();
                let millis: u64 = digits.parse().map_err(|_| bad(s, "is not a number"))?;
                in_range(s, n * 1000 + millis)
            }
        };
    }
    // The original's form: exactly YYYY-MM-DD_HH:MM:SS.
    if bytes.len() == 19 && bytes[10] == b'_' {
        let shape_ok = bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => *b == b'_',
            13 | 16 => *b == b':',
            _ => b.is_ascii_digit(),
        });
        if !shape_ok {
            return Err(bad(s, "is not a date"));
        }
        let dt = NaiveDateTime::parse_from_str(s, "%Y-%m-%d_%H:%M:%S")
            .map_err(|e| bad(s, &format!("is not a valid date ({e})")))?;
        let ms = dt.and_utc().timestamp_millis();
        return u64::try_from(ms)
            .map_err(|_| bad(s, "is before 1970"))
            .and_then(|ms| in_range(s, ms));
    }
    match DateTime::parse_from_rfc3339(s) {
        Ok(dt) => u64::try_from(dt.timestamp_millis())
            .map_err(|_| bad(s, "is before 1970"))
            .and_then(|ms| in_range(s, ms)),
        Err(e) => Err(bad(s, &format!("is not a recognized timestamp ({e})"))),
    }
}

/// Formats milliseconds since the epoch as RFC 3339 UTC with milliseconds
/// (`2025-11-24T16:00:00.123Z`), the dump tool's human-readable time. Out-of-range values (not
/// representable by chrono) come out as `"<ms>ms"` rather than panicking.
pub fn format_rfc3339_ms(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .map(|dt| dt.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{ms}ms"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::ErrorKind;
    use proptest::prelude::*;

    const T: u64 = 1_764_000_000_000; // 2025-11-24T16:00:00Z

    #[test]
    fn accepts_every_form() {
        assert_eq!(parse_timestamp("2025-11-24_16:00:00").unwrap(), T);
        assert_eq!(parse_timestamp("1764000000").unwrap(), T);
        assert_eq!(parse_timestamp("1764000000.5").unwrap(), T + 500);
        assert_eq!(parse_timestamp("1764000000.123456").unwrap(), T + 123);
        assert_eq!(parse_timestamp("1764000000.05").unwrap(), T + 50);
        assert_eq!(parse_timestamp("1764000000123").unwrap(), T + 123);
        assert_eq!(parse_timestamp("2025-11-24T16:00:00Z").unwrap(), T);
        assert_eq!(
            parse_timestamp("2025-11-24T16:00:00.250Z").unwrap(),
            T + 250
        );
        assert_eq!(parse_timestamp("2025-11-24T18:00:00+02:00").unwrap(), T);
        assert_eq!(parse_timestamp("2025-11-24T11:30:00-04:30").unwrap(), T);
        assert_eq!(parse_timestamp("0").unwrap(), 0);
        assert_eq!(parse_timestamp("1970-01-01_00:00:00").unwrap(), 0);
    }

    #[test]
    fn rejects_garbage_negative_and_out_of_range() {
        for s in [
            "",
            "abc",
            "-1",
            "-1764000000",
            "1.2.3",
            ".5",
            "5.",
            "12345678901234",
            "1764000000123.5",
            "999999999999",
            "2025-13-01_00:00:00",
            "2025-02-30_00:00:00",
            "2025-11-24 16:00:00",
            "2025-11-24_16:00",
            "+025-11-24_16:00:00",
            "1969-12-31T23:59:59Z",
            "2025-11-24T16:00:00",
            "10000-01-01T00:00:00Z",
            "1e9",
            " 1764000000",
            "١٧٦٤",
        ] {
            let e = parse_timestamp(s).expect_err(s);
            assert_eq!(e.kind, ErrorKind::BadRequest, "{s}");
            assert!(e.message.contains("timestamp"), "{}", e.message);
        }
    }

    #[test]
    fn formats_rfc3339_with_millis() {
        assert_eq!(format_rfc3339_ms(T + 7), "2025-11-24T16:00:00.007Z");
        assert_eq!(format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339_ms(u64::MAX), format!("{}ms", u64::MAX));
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(ms in 0u64..=MAX_TIMESTAMP_MS) {
            prop_assert_eq!(parse_timestamp(&format_rfc3339_ms(ms)).unwrap(), ms);
        }

        #[test]
        fn never_panics(s in "\\PC{0,30}") {
            let _ = parse_timestamp(&s);
        }
    }
}
