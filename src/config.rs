//! Every tunable's default, written once. The library's option structs
//! ([`crate::raft::NodeOptions`], [`crate::api::ApiOptions`], [`crate::api::server::ServerOptions`])
//! and the command line's flags (`default_value_t = Defaults::...`) both read these, so a
//! default cannot drift between `yakt node --help` and a node started from code.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The defaults, as associated constants (a namespace, never constructed).
pub struct Defaults;

impl Defaults {
    /// Where `yakt node` listens, and where `yakt status`/`yakt member` look for a node.
    pub const ADDR: &'static str = "127.0.0.1:5010";
    /// Snapshot after at least this many entries (more for a large image): a growing image is
    /// not re-encoded every few thousand writes, and a restart at a million entities replays no
    /// more than before, where entities/16 (62,500) sets the interval (docs/operations.md,
    /// "Snapshots").
    pub const SNAPSHOT_EVERY: u64 = 50_000;
    /// Entries kept below a snapshot for slow followers.
    pub const KEEP_AFTER_SNAPSHOT: u64 = 1_000;
    /// Snapshot files kept.
    pub const KEEP_SNAPSHOTS: usize = crate::storage::DEFAULT_KEEP_SNAPSHOTS;
    /// Minimum election timeout, ms.
    pub const ELECTION_TIMEOUT_MIN_MS: u64 = 1_000;
    /// Maximum election timeout, ms.
    pub const ELECTION_TIMEOUT_MAX_MS: u64 = 2_000;
    /// Heartbeat interval, ms.
    pub const HEARTBEAT_MS: u64 = 250;
    /// Largest accepted request body, bytes.
    pub const MAX_BODY: usize = 1024 * 1024;
    /// Catch-up window of `/broker_mgmt` and `/client_mgmt`.
    pub const CATCHUP_WINDOW: Duration = Duration::from_secs(600);
    /// How long an SSE reader's buffer may stay full before the reader is cut off.
    pub const SLOW_READER_TIMEOUT: Duration = Duration::from_secs(10);
    /// Longest a `/stream` reader goes without an event: a `progress` event then says where the
    /// node is.
    pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);
    /// A node without a leader this long ends its streams (`stream_error` `no_leader`).
    pub const STALE_AFTER: Duration = Duration::from_secs(5);
    /// A catch-up delta of more records than this is answered in snapshot mode.
    pub const CATCHUP_MAX_RECORDS: u64 = 100_000;
    /// How long in-flight requests may take to finish once a node stops.
    pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
    /// How long a stopping leader waits for another node to take over.
    pub const HANDOFF_TIMEOUT: Duration = Duration::from_secs(2);
    /// How long the leader waits for a watched broker's heartbeat before fencing it (KRaft's
    /// `broker.session.timeout.ms`).
    pub const BROKER_SESSION_TIMEOUT: Duration = Duration::from_secs(9);
    /// How long a client may take to send a request's headers (and an idle keep-alive
    /// connection may wait for its next request) before its connection is closed.
    pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

    /// Segment file size, bytes: the storage layer's own default.
    pub fn segment_bytes() -> u64 {
        crate::storage::LogOptions::default().segment_bytes
    }
}

/// A duration as an operator writes it: `600` (seconds), `90s`, `10m`, `1h` or `250ms`.
/// Displayed in the largest unit that divides it, so a default shows as `10m`, not `600s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

/// Why a duration could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not a duration ({why}; e.g. 600, 90s, 10m, 250ms)")]
pub struct DurationError {
    text: String,
    why: &'static str,
}

impl FromStr for HumanDuration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let err = |why| DurationError {
            text: s.to_string(),
            why,
        };
        let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, "s"),
        };
        let n: f64 = num.parse().map_err(|_| err("no number"))?;
        let secs = match unit {
            "ms" => n / 1000.0,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => return Err(err("unknown unit: use ms, s, m or h")),
        };
        if !secs.is_finite() || secs < 0.0 {
            return Err(err("out of range"));
        }
        Ok(Self(Duration::from_secs_f64(secs)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        match ms {
            0 => write!(f, "0s"),
            _ if ms.is_multiple_of(3_600_000) => write!(f, "{}h", ms / 3_600_000),
            _ if ms.is_multiple_of(60_000) => write!(f, "{}m", ms / 60_000),
            _ if ms.is_multiple_of(1_000) => write!(f, "{}s", ms / 1_000),
            _ => write!(f, "{ms}ms"),
        }
    }
}

impl From<HumanDuration> for Duration {
    fn from(d: HumanDuration) -> Self {
        d.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Option<Duration> {
        s.parse::<HumanDuration>().ok().map(Duration::from)
    }

    #[test]
    fn durations_read_in_every_unit_and_bare_numbers_are_seconds() {
        assert_eq!(parse("600"), Some(Duration::from_secs(600)));
        assert_eq!(parse("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse("10x"), None);
        assert_eq!(parse("s"), None);
        assert_eq!(parse("-1s"), None);
    }

    #[test]
    fn a_duration_shows_in_the_largest_unit_that_divides_it_and_reads_back() {
        for (d, text) in [
            (Defaults::CATCHUP_WINDOW, "10m"),
            (Defaults::SLOW_READER_TIMEOUT, "10s"),
            (Defaults::PROGRESS_INTERVAL, "500ms"),
            (Defaults::STALE_AFTER, "5s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(7200), "2h"),
            (Duration::ZERO, "0s"),
        ] {
            assert_eq!(HumanDuration(d).to_string(), text);
            assert_eq!(parse(text), Some(d));
        }
    }
}
