//! Reading server-sent events (the `text/event-stream` format of `GET /stream`), incrementally,
//! from chunks of bytes as they arrive, without trusting the sender.
//!
//! Two levels, one grammar:
//! - [`LineReader`] splits the bytes into [`Line`]s (a field, a comment, or the blank line that
//!   ends an event), borrowed from its buffer: no copy, for readers that want only a few bytes of
//!   each event (the bench's hundred readers take just the offset).
//! - [`Parser`] assembles those lines into [`Event`]s as the SSE specification says: `data:` lines
//!   join with `\n`, `id:` and `event:` apply to the event being read, `retry:` sets the
//!   reconnection delay, `:` lines are comments (the server's keep-alives), and an event with no
//!   `data:` line is not dispatched.
//!
//! Lines end with `\n`, `\r\n` or a lone `\r`, split across chunks anywhere. A line or an event
//! larger than the limit given is an error ([`SseError::TooLarge`]), so a broken or hostile server
//! cannot make the reader buffer without bound. Unlike the specification (which replaces invalid
//! UTF-8), a field that is not UTF-8 is an error: yakt sends JSON, so such bytes mean a corrupt
//! stream, and a client should reconnect rather than read on.
//!
//! ```
//! use yakt::client::sse::Parser;
//! let mut p = Parser::new(1 << 20);
//! p.feed(b"id: 7\nevent: record\ndata: {\"offset\":7}\n\n").unwrap();
//! let ev = p.next_event().unwrap().unwrap();
//! assert_eq!((ev.id.as_deref(), ev.event.as_str(), ev.data.as_str()),
//!            (Some("7"), "record", "{\"offset\":7}"));
//! ```

use std::time::Duration;

/// Why a stream could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line, or the event being assembled, grew past the limit.
    #[error("an event is larger than {max} bytes")]
    TooLarge {
        /// The limit given to the reader.
        max: usize,
    },
    /// A field's name or value is not UTF-8.
    #[error("the {field} field of an event is not UTF-8")]
    NotUtf8 {
        /// The field's name (lossily decoded).
        field: String,
    },
}

/// One line of the stream, borrowed from the [`LineReader`]'s buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// `name: value` (one space after the colon is not part of the value); a line without a colon
    /// is a field with an empty value.
    Field {
        /// The field name (`data`, `id`, `event`, `retry`, or anything else).
        name: &'a [u8],
        /// The value.
        value: &'a [u8],
    },
    /// A line starting with `:` (without the colon): ignored by readers, sent as a keep-alive.
    Comment(&'a [u8]),
    /// An empty line: the end of an event.
    Blank,
}

/// Splits fed bytes into [`Line`]s; see the [module documentation](self).
#[derive(Debug)]
pub struct LineReader {
    buf: Vec<u8>,
    /// Where the next unread line starts in `buf`.
    pos: usize,
    /// The last line ended with a `\r` at the end of what was fed: a `\n` that comes next
    /// belongs to that line end.
    after_cr: bool,
    /// Whether the first line is still to be read (a leading byte-order mark is dropped).
    at_start: bool,
    max_line: usize,
}

impl LineReader {
    /// A reader that refuses lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        Self {
            buf: Vec::with_capacity(max_line.min(1 << 16)),
            pos: 0,
            after_cr: false,
            at_start: true,
            max_line,
        }
    }

    /// Adds bytes read from the stream. Errors if the line not yet ended is already too long.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), SseError> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
        if self.buf.len() > self.max_line
            && !self.buf.contains(&b'\n')
            && !self.buf.contains(&b'\r')
        {
            return Err(SseError::TooLarge { max: self.max_line });
        }
        Ok(())
    }

    /// The next complete line of what was fed, if any.
    pub fn next_line(&mut self) -> Result<Option<Line<'_>>, SseError> {
        if self.after_cr && self.pos < self.buf.len() {
            if self.buf[self.pos] == b'\n' {
                self.pos += 1;
            }
            self.after_cr = false;
        }
        if self.at_start {
            if self.buf.len() - self.pos < 3 && b"\xEF\xBB\xBF".starts_with(&self.buf[self.pos..]) {
                return Ok(None); // could still be a byte-order mark
            }
            if self.buf[self.pos..].starts_with(b"\xEF\xBB\xBF") {
                self.pos += 3;
            }
            self.at_start = false;
        }
        let rest = &self.buf[self.pos..];
        let Some(end) = memchr::memchr2(b'\n', b'\r', rest) else {
            return Ok(None);
        };
        if end > self.max_line {
            return Err(SseError::TooLarge { max: self.max_line });
        }
        let start = self.pos;
        self.pos += end + 1;
        if rest[end] == b'\r' {
            match rest.get(end + 1) {
                Some(b'\n') => self.pos += 1,
                Some(_) => {}
                None => self.after_cr = true,
            }
        }
        let line = &self.buf[start..start + end];
        Ok(Some(split_line(line)))
    }
}

/// Parses one line without its terminator.
fn split_line(line: &[u8]) -> Line<'_> {
    if line.is_empty() {
        return Line::Blank;
    }
    if let Some(comment) = line.strip_prefix(b":") {
        return Line::Comment(comment);
    }
    match memchr::memchr(b':', line) {
        Some(colon) => {
            let value = &line[colon + 1..];
            Line::Field {
                name: &line[..colon],
                value: value.strip_prefix(b" ").unwrap_or(value),
            }
        }
        None => Line::Field {
            name: line,
            value: b"",
        },
    }
}

/// One dispatched event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// The `id:` field of this event, if it had one. (The specification's "last event ID", which
    /// carries over to later events, is [`Parser::last_event_id`].)
    pub id: Option<String>,
    /// The `event:` field; empty if the event had none (the specification's `message`).
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// Assembles [`Event`]s from fed bytes; see the [module documentation](self).
#[derive(Debug)]
pub struct Parser {
    lines: LineReader,
    current: Event,
    /// Whether the event being read has had a `data:` line (an empty one counts).
    has_data: bool,
    last_event_id: Option<String>,
    retry: Option<Duration>,
    max: usize,
}

impl Parser {
    /// A parser that refuses events (and lines) larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            lines: LineReader::new(max_event_bytes),
            current: Event::default(),
            has_data: false,
            last_event_id: None,
            retry: None,
            max: max_event_bytes,
        }
    }

    /// Adds bytes read from the stream.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), SseError> {
        self.lines.feed(chunk)
    }

    /// The next complete event in what was fed, if any.
    pub fn next_event(&mut self) -> Result<Option<Event>, SseError> {
        while let Some(line) = self.lines.next_line()? {
            let (name, value) = match line {
                Line::Comment(_) => continue,
                Line::Blank => {
                    if !self.has_data {
                        // No data: nothing to dispatch (an `id:` alone still counted).
                        self.current = Event::default();
                        continue;
                    }
                    self.has_data = false;
                    return Ok(Some(std::mem::take(&mut self.current)));
                }
                Line::Field { name, value } => (name, value),
            };
            let text = |v: &[u8]| {
                std::str::from_utf8(v)
                    .map(str::to_string)
                    .map_err(|_| SseError::NotUtf8 {
                        field: String::from_utf8_lossy(name).into_owned(),
                    })
            };
            match name {
                b"data" => {
                    if self.current.data.len() + value.len() + 1 > self.max {
                        return Err(SseError::TooLarge { max: self.max });
                    }
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(&text(value)?);
                    self.has_data = true;
                }
                b"event" => self.current.event = text(value)?,
                // An id with a NUL is ignored, as the specification says.
                b"id" if !value.contains(&0) => {
                    let id = text(value)?;
                    self.last_event_id = Some(id.clone());
                    self.current.id = Some(id);
                }
                b"retry" => {
                    if let Some(ms) = ascii_digits(value) {
                        self.retry = Some(Duration::from_millis(ms));
                    }
                }
                _ => {} // unknown fields are ignored
            }
        }
        Ok(None)
    }

    /// The last `id:` seen in any event so far: what a reconnecting reader sends as
    /// `Last-Event-ID`.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// The reconnection delay the server last asked for with `retry:`.
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }
}

/// The value of a field made only of ASCII digits (as `retry:` and yakt's `id:` are), or `None`.
pub fn ascii_digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<Event> {
        let mut p = Parser::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c).expect("feed");
            while let Some(e) = p.next_event().expect("parse") {
                out.push(e);
            }
        }
        out
    }

    fn ev(id: Option<&str>, event: &str, data: &str) -> Event {
        Event {
            id: id.map(str::to_string),
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn frames_split_anywhere_parse_the_same() {
        let text = b"\xEF\xBB\xBF: keep-alive\n\nid: 5\nevent: record\ndata: {\"a\":1}\n\r\nevent: error\r\ndata: x\rdata: y\r\rdata:z\n\n";
        let whole = parse_all(&[text]);
        assert_eq!(
            whole,
            vec![
                ev(Some("5"), "record", "{\"a\":1}"),
                ev(None, "error", "x\ny"),
                ev(None, "", "z"),
            ]
        );
        for cut in 0..text.len() {
            assert_eq!(
                parse_all(&[&text[..cut], &text[cut..]]),
                whole,
                "cut at {cut}"
            );
        }
        let bytewise: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(parse_all(&bytewise), whole);
    }

    #[test]
    fn an_incomplete_event_is_not_dispatched() {
        assert!(parse_all(&[b"id: 1\nevent: record\ndata: {}\n"]).is_empty());
    }

    #[test]
    fn an_event_without_data_is_not_dispatched_but_its_id_is_kept() {
        let mut p = Parser::new(1 << 10);
        p.feed(b"id: 9\nevent: shutdown\n\ndata: after\n\n")
            .unwrap();
        assert_eq!(p.next_event().unwrap(), Some(ev(None, "", "after")));
        assert_eq!(p.last_event_id(), Some("9"));
        assert_eq!(p.next_event().unwrap(), None);
    }

    #[test]
    fn field_forms_follow_the_specification() {
        let got = parse_all(&[
            b"data\n\ndata:  two spaces\ndata:\nid:\nevent\n\nid: a\0b\ndata: x\n\nunknown: 1\ndata: y\n\n",
        ]);
        assert_eq!(
            got,
            vec![
                ev(None, "", ""),
                ev(Some(""), "", " two spaces\n"),
                ev(None, "", "x"),
                ev(None, "", "y"),
            ]
        );
    }

    #[test]
    fn retry_takes_only_digits() {
        let mut p = Parser::new(1 << 10);
        p.feed(b"retry: 2500\n\nretry: 1x\n\nretry: -1\n\n")
            .unwrap();
        assert_eq!(p.next_event().unwrap(), None);
        assert_eq!(p.retry(), Some(Duration::from_millis(2500)));
    }

    #[test]
    fn oversize_lines_and_events_are_refused() {
        let mut p = Parser::new(8);
        assert_eq!(
            p.feed(b"data: 0123456789"),
            Err(SseError::TooLarge { max: 8 })
        );
        let mut p = Parser::new(8);
        p.feed(b"data: 0123456789\n").unwrap();
        assert_eq!(p.next_event(), Err(SseError::TooLarge { max: 8 }));
        // Many small data lines add up.
        let mut p = Parser::new(12);
        p.feed(b"data:123456\ndata:123456\n\n").unwrap();
        assert_eq!(p.next_event(), Err(SseError::TooLarge { max: 12 }));
    }

    #[test]
    fn a_field_that_is_not_utf8_is_an_error() {
        let mut p = Parser::new(64);
        p.feed(b"data: \xff\n\n").unwrap();
        assert!(matches!(p.next_event(), Err(SseError::NotUtf8 { .. })));
    }

    #[test]
    fn the_line_reader_borrows_lines() {
        let mut r = LineReader::new(64);
        r.feed(b": ka\nid: 3\r\ndata\n\n").unwrap();
        assert_eq!(r.next_line().unwrap(), Some(Line::Comment(b" ka")));
        assert_eq!(
            r.next_line().unwrap(),
            Some(Line::Field {
                name: b"id",
                value: b"3"
            })
        );
        assert_eq!(
            r.next_line().unwrap(),
            Some(Line::Field {
                name: b"data",
                value: b""
            })
        );
        assert_eq!(r.next_line().unwrap(), Some(Line::Blank));
        assert_eq!(r.next_line().unwrap(), None);
    }

    #[test]
    fn ascii_digits_refuse_signs_spaces_and_overflow() {
        assert_eq!(ascii_digits(b"42"), Some(42));
        assert_eq!(ascii_digits(b""), None);
        assert_eq!(ascii_digits(b" 4"), None);
        assert_eq!(ascii_digits(b"-4"), None);
        assert_eq!(ascii_digits(b"99999999999999999999"), None);
    }
}
