//! Tailing the metadata log over `GET /stream` (server-sent events).
//!
//! [`StreamClient`] connects to one node of a list, reads the SSE frames itself (`id:`, `event:`,
//! `data:` lines; a blank line ends an event; `:` lines are keep-alives), and after **any**
//! failure — connection refused or reset, end of the body, no bytes for
//! [`StreamOptions::idle_timeout`], an `event: error` from the server, a frame it cannot read —
//! waits a backoff and connects to the next node with `Last-Event-ID: <last offset yielded>`.
//! Every node serves the same log at the same offsets, so the stream continues where it broke.
//!
//! Each offset is yielded at most once and offsets only grow: an item whose offset is at or below
//! the last one yielded (a node that resent something) is dropped.
//!
//! ```no_run
//! # async fn demo() -> Result<(), yakt::client::ClientError> {
//! use yakt::client::{StreamClient, StreamItem, StreamOptions};
//! let mut client = StreamClient::new(
//!     ["127.0.0.1:5010", "127.0.0.1:5011", "127.0.0.1:5012"],
//!     StreamOptions::default(),
//! )?;
//! loop {
//!     match client.next().await? {
//!         StreamItem::Snapshot { offset, .. } => println!("image at {offset}"),
//!         StreamItem::Record(r) => println!("{} {}", r.offset, r.name),
//!     }
//! }
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::watch;

use crate::metadata::{Image, LogRecord, MetadataCommand, Record};

/// One item of the log as the stream delivers it.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamItem {
    /// The whole image at `offset`: the reader's position was below the node's log start
    /// (purged after a snapshot). Replace what you hold with it; records after it follow.
    Snapshot {
        /// The last log offset the image includes.
        offset: u64,
        /// The Raft term of that offset.
        epoch: u64,
        /// The image in `/get_metadata`'s `metadata` form.
        metadata: Value,
    },
    /// One committed metadata record.
    Record(LogRecord),
}

impl StreamItem {
    /// The item's offset (a snapshot's is the last offset it includes).
    pub fn offset(&self) -> u64 {
        match self {
            StreamItem::Snapshot { offset, .. } => *offset,
            StreamItem::Record(r) => r.offset,
        }
    }
}

/// Where a new [`StreamClient`] starts reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StartAt {
    /// The start of the log (a snapshot first if the start was purged).
    #[default]
    Beginning,
    /// The first record at or after this offset.
    Offset(u64),
    /// Only records committed after the client first reaches a node: the position is fixed
    /// then (`/fetch?offset=end`), so a reconnect before the first record loses nothing.
    End,
}

/// Settings of a [`StreamClient`].
#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// Where to start.
    pub start: StartAt,
    /// Record names to receive (`?names=`); empty means all.
    pub names: Vec<String>,
    /// First wait before reconnecting after a failure; doubles per failure in a row.
    pub backoff_min: Duration,
    /// Longest wait between reconnects.
    pub backoff_max: Duration,
    /// A connection that delivers no byte (not even a keep-alive, sent every 10 s) for this long
    /// is treated as dead.
    pub idle_timeout: Duration,
    /// Limit on establishing one connection.
    pub connect_timeout: Duration,
    /// Give up ([`ClientError::Unavailable`]) after this many failures in a row without an item
    /// yielded in between; `None` retries forever.
    pub max_failures: Option<u32>,
    /// Largest event accepted (a snapshot of a big image is one event).
    pub max_event_bytes: usize,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            start: StartAt::Beginning,
            names: Vec::new(),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(35),
            connect_timeout: Duration::from_secs(3),
            max_failures: None,
            max_event_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Why [`StreamClient::next`] returned no item.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// [`StreamClient::stop`] or a [`StopHandle`] was used.
    #[error("the stream client was stopped")]
    Stopped,
    /// The client was given no node address.
    #[error("no node addresses given")]
    NoNodes,
    /// A node refused the request itself (a 4xx other than 408/429, e.g. an unknown record name
    /// in `names`): retrying elsewhere would not help.
    #[error("{node} refused the stream request: {status} {body}")]
    Rejected {
        /// The node's base URL.
        node: String,
        /// The HTTP status.
        status: u16,
        /// The response body (the API's JSON error).
        body: String,
    },
    /// [`StreamOptions::max_failures`] failures in a row.
    #[error("gave up after {attempts} failures in a row; last: {last}")]
    Unavailable {
        /// Failures counted.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// A stream item could not be folded ([`ImageFold`]).
    #[error("cannot fold stream item: {0}")]
    Fold(String),
}

/// Stops a [`StreamClient`] from another task: its pending and future `next` calls return
/// [`ClientError::Stopped`].
#[derive(Clone, Debug)]
pub struct StopHandle(Arc<watch::Sender<bool>>);

impl StopHandle {
    /// Stops the client.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

/// One parsed server-sent event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct SseEvent {
    id: Option<String>,
    event: String,
    data: String,
}

/// Incremental SSE frame parser (lines end with `\n` or `\r\n`).
#[derive(Debug, Default)]
struct SseParser {
    buf: Vec<u8>,
    pos: usize,
    current: SseEvent,
    has_data: bool,
    max: usize,
}

impl SseParser {
    fn new(max: usize) -> Self {
        Self {
            max,
            ..Self::default()
        }
    }

    fn feed(&mut self, chunk: &[u8]) -> Result<(), String> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
        if self.buf.len() + self.current.data.len() > self.max {
            return Err(format!("an event is larger than {} bytes", self.max));
        }
        Ok(())
    }

    /// The next complete event in what was fed, if any.
    fn next_event(&mut self) -> Result<Option<SseEvent>, String> {
        loop {
            let rest = &self.buf[self.pos..];
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                return Ok(None);
            };
            let mut line = &rest[..nl];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = std::str::from_utf8(line)
                .map_err(|_| "a stream line is not UTF-8".to_string())?
                .to_string();
            self.pos += nl + 1;
            if line.is_empty() {
                if !self.has_data && self.current.event.is_empty() {
                    continue;
                }
                self.has_data = false;
                return Ok(Some(std::mem::take(&mut self.current)));
            }
            if line.starts_with(':') {
                continue; // keep-alive comment
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_str(), ""),
            };
            match field {
                "event" => self.current.event = value.to_string(),
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                "id" => self.current.id = Some(value.to_string()),
                _ => {} // `retry` and unknown fields
            }
        }
    }
}

/// An open `/stream` response.
struct Conn {
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    parser: SseParser,
}

/// What one event means for the client.
enum Handled {
    Item(StreamItem),
    Skip,
    Reconnect(String),
}

/// Why a connection attempt failed.
enum ConnectError {
    Retry(String),
    Fatal(ClientError),
}

#[derive(Deserialize)]
struct SnapshotData {
    offset: u64,
    epoch: u64,
    metadata: Value,
}

/// Tails `/stream` across a list of nodes; see the [module documentation](self).
pub struct StreamClient {
    nodes: Vec<String>,
    node: usize,
    opts: StreamOptions,
    http: reqwest::Client,
    conn: Option<Conn>,
    last_yielded: Option<u64>,
    failures: u32,
    connects: u64,
    duplicates: u64,
    last_error: Option<String>,
    stop_tx: Arc<watch::Sender<bool>>,
    stop_rx: watch::Receiver<bool>,
}

/// `host:port` or a URL, as a base URL without a trailing slash.
fn base_url(addr: &str) -> String {
    let a = addr.trim().trim_end_matches('/');
    if a.starts_with("http://") || a.starts_with("https://") {
        a.to_string()
    } else {
        format!("http://{a}")
    }
}

/// Percent-encodes a query value (record names are plain identifiers; this is belt and braces).
fn encode_query(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.,".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl StreamClient {
    /// A client of the nodes at `nodes` (`HOST:PORT` or `http://HOST:PORT`), tried in order and
    /// then round-robin after failures. It connects lazily, on the first [`next`](Self::next).
    /// It uses its own HTTP client, which ignores proxy settings (streams go direct);
    /// use [`with_http`](Self::with_http) to share or configure one.
    pub fn new<I, S>(nodes: I, opts: StreamOptions) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(opts.connect_timeout)
            .tcp_nodelay(true)
            .build()?;
        Self::with_http(nodes, opts, http)
    }

    /// Like [`new`](Self::new) with a given HTTP client. It must not have an overall request
    /// timeout, which would cut every long-lived stream.
    pub fn with_http<I, S>(
        nodes: I,
        opts: StreamOptions,
        http: reqwest::Client,
    ) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nodes: Vec<String> = nodes.into_iter().map(|n| base_url(n.as_ref())).collect();
        if nodes.is_empty() {
            return Err(ClientError::NoNodes);
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        Ok(Self {
            nodes,
            node: 0,
            opts,
            http,
            conn: None,
            last_yielded: None,
            failures: 0,
            connects: 0,
            duplicates: 0,
            last_error: None,
            stop_tx: Arc::new(stop_tx),
            stop_rx,
        })
    }

    /// The next item: waits for it, reconnecting (to the next node, with `Last-Event-ID`) as
    /// often as needed. Cancel-safe: dropping the future loses nothing.
    pub async fn next(&mut self) -> Result<StreamItem, ClientError> {
        let mut stop = self.stop_rx.clone();
        if *stop.borrow() {
            return Err(ClientError::Stopped);
        }
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => Err(ClientError::Stopped),
            r = self.next_inner() => r,
        }
    }

    /// A handle that stops this client from another task.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop_tx.clone())
    }

    /// Stops the client: closes its connection; `next` returns [`ClientError::Stopped`].
    pub fn stop(&mut self) {
        self.stop_tx.send_replace(true);
        self.conn = None;
    }

    /// Drops the current connection (if any); the next `next` reconnects to the same node with
    /// `Last-Event-ID`. For tests and for callers that know a connection went bad.
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    /// The offset of the last item yielded: what `Last-Event-ID` carries on a reconnect.
    pub fn last_event_id(&self) -> Option<u64> {
        self.last_yielded
    }

    /// The base URL of the node the client reads from (or will connect to next).
    pub fn current_node(&self) -> &str {
        &self.nodes[self.node]
    }

    /// Successful connections made so far (1 plus the reconnects).
    pub fn connects(&self) -> u64 {
        self.connects
    }

    /// Items dropped because their offset was at or below the last one yielded.
    pub fn duplicates_dropped(&self) -> u64 {
        self.duplicates
    }

    /// The last failure that caused a reconnect, if any.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Counts a failure, moves to the next node, and gives up past `max_failures`.
    fn fail(&mut self, why: String) -> Result<(), ClientError> {
        self.conn = None;
        self.failures = self.failures.saturating_add(1);
        self.node = (self.node + 1) % self.nodes.len();
        tracing::debug!(node = %self.nodes[self.node], error = %why, "stream reconnecting");
        self.last_error = Some(why.clone());
        match self.opts.max_failures {
            Some(max) if self.failures >= max => Err(ClientError::Unavailable {
                attempts: self.failures,
                last: why,
            }),
            _ => Ok(()),
        }
    }

    fn backoff(&self) -> Duration {
        let shift = self.failures.saturating_sub(1).min(16);
        self.opts
            .backoff_min
            .saturating_mul(1u32 << shift)
            .min(self.opts.backoff_max)
    }

    async fn next_inner(&mut self) -> Result<StreamItem, ClientError> {
        loop {
            if self.conn.is_none() {
                if self.failures > 0 {
                    tokio::time::sleep(self.backoff()).await;
                }
                match self.connect().await {
                    Ok(c) => {
                        self.connects += 1;
                        self.conn = Some(c);
                    }
                    Err(ConnectError::Fatal(e)) => return Err(e),
                    Err(ConnectError::Retry(why)) => {
                        self.fail(why)?;
                        continue;
                    }
                }
            }
            let Some(conn) = self.conn.as_mut() else {
                continue;
            };
            let event = match conn.parser.next_event() {
                Ok(e) => e,
                Err(why) => {
                    self.fail(why)?;
                    continue;
                }
            };
            if let Some(ev) = event {
                match self.handle(ev) {
                    Handled::Item(item) => {
                        self.failures = 0;
                        self.last_yielded = Some(item.offset());
                        return Ok(item);
                    }
                    Handled::Skip => continue,
                    Handled::Reconnect(why) => {
                        self.fail(why)?;
                        continue;
                    }
                }
            }
            let why = match tokio::time::timeout(self.opts.idle_timeout, conn.body.next()).await {
                Ok(Some(Ok(bytes))) => match conn.parser.feed(&bytes) {
                    Ok(()) => continue,
                    Err(why) => why,
                },
                Ok(Some(Err(e))) => format!("reading the stream: {e}"),
                Ok(None) => "the node ended the stream".to_string(),
                Err(_) => format!("no data for {:?}", self.opts.idle_timeout),
            };
            self.fail(why)?;
        }
    }

    fn handle(&mut self, ev: SseEvent) -> Handled {
        let item = match ev.event.as_str() {
            "record" => match serde_json::from_str::<LogRecord>(&ev.data) {
                Ok(r) => StreamItem::Record(r),
                Err(e) => return Handled::Reconnect(format!("undecodable record event: {e}")),
            },
            "snapshot" => match serde_json::from_str::<SnapshotData>(&ev.data) {
                Ok(s) => StreamItem::Snapshot {
                    offset: s.offset,
                    epoch: s.epoch,
                    metadata: s.metadata,
                },
                Err(e) => return Handled::Reconnect(format!("undecodable snapshot event: {e}")),
            },
            "error" => {
                return Handled::Reconnect(format!("the node ended the stream: {}", ev.data))
            }
            _ => return Handled::Skip,
        };
        if self.last_yielded.is_some_and(|l| item.offset() <= l) {
            self.duplicates += 1;
            return Handled::Skip;
        }
        Handled::Item(item)
    }

    /// Resolves [`StartAt::End`] to a concrete offset on the current node.
    async fn resolve_end(&mut self, base: &str) -> Result<u64, ConnectError> {
        let url = format!("{base}/fetch?offset=end&max_records=1");
        let resp = self
            .http
            .get(&url)
            .timeout(self.opts.connect_timeout.max(Duration::from_secs(5)))
            .send()
            .await
            .map_err(|e| ConnectError::Retry(format!("{url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(ConnectError::Retry(format!("{url}: {}", resp.status())));
        }
        let v: Value = resp
            .json()
            .await
            .map_err(|e| ConnectError::Retry(format!("{url}: {e}")))?;
        v["next_offset"]
            .as_u64()
            .ok_or_else(|| ConnectError::Retry(format!("{url}: no next_offset in {v}")))
    }

    async fn connect(&mut self) -> Result<Conn, ConnectError> {
        let base = self.nodes[self.node].clone();
        let mut query = Vec::new();
        if self.last_yielded.is_none() {
            if self.opts.start == StartAt::End {
                let at = self.resolve_end(&base).await?;
                self.opts.start = StartAt::Offset(at);
            }
            if let StartAt::Offset(n) = self.opts.start {
                query.push(format!("offset={n}"));
            }
        }
        if !self.opts.names.is_empty() {
            query.push(format!(
                "names={}",
                encode_query(&self.opts.names.join(","))
            ));
        }
        let url = if query.is_empty() {
            format!("{base}/stream")
        } else {
            format!("{base}/stream?{}", query.join("&"))
        };
        let mut req = self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(k) = self.last_yielded {
            req = req.header("Last-Event-ID", k.to_string());
        }
        let resp = tokio::time::timeout(self.opts.connect_timeout, req.send())
            .await
            .map_err(|_| ConnectError::Retry(format!("{url}: no response in time")))?
            .map_err(|e| ConnectError::Retry(format!("{url}: {e}")))?;
        let status = resp.status();
        if !status.is_success() {
            let code = status.as_u16();
            let body = resp.text().await.unwrap_or_default();
            if status.is_client_error() && code != 408 && code != 429 {
                return Err(ConnectError::Fatal(ClientError::Rejected {
                    node: base,
                    status: code,
                    body,
                }));
            }
            return Err(ConnectError::Retry(format!("{url}: {code} {body}")));
        }
        Ok(Conn {
            body: resp.bytes_stream().boxed(),
            parser: SseParser::new(self.opts.max_event_bytes),
        })
    }
}

/// Folds stream items into a metadata [`Image`], as the server's state machine does: a
/// snapshot replaces the image ([`Image::from_metadata_json`]); a record is decoded back into a
/// typed [`Record`] from its `name` and `fields` and applied with [`Image::apply_entry`]. A record
/// the image refuses is skipped and counted, as the server skips it. Meaningful only for an
/// unfiltered stream.
#[derive(Clone, Debug, Default)]
pub struct ImageFold {
    image: Image,
    offset: Option<u64>,
    refused: u64,
}

impl ImageFold {
    /// An empty image (the state before offset 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one item. Errors only on an item that cannot be decoded.
    pub fn apply(&mut self, item: &StreamItem) -> Result<(), ClientError> {
        match item {
            StreamItem::Snapshot {
                offset,
                epoch,
                metadata,
            } => {
                self.image = Image::from_metadata_json(metadata, *offset, *epoch)
                    .map_err(|e| ClientError::Fold(e.to_string()))?;
            }
            StreamItem::Record(r) => {
                let mut tagged = serde_json::Map::new();
                tagged.insert(r.name.clone(), r.fields.clone());
                let record: Record = serde_json::from_value(Value::Object(tagged))
                    .map_err(|e| ClientError::Fold(format!("record at {}: {e}", r.offset)))?;
                let cmd = MetadataCommand {
                    timestamp_ms: r.timestamp,
                    record,
                };
                if self.image.apply_entry(r.offset, r.epoch, &cmd).is_err() {
                    self.refused += 1;
                }
            }
        }
        self.offset = Some(item.offset());
        Ok(())
    }

    /// The image folded so far.
    pub fn image(&self) -> &Image {
        &self.image
    }

    /// The image in `/get_metadata`'s `metadata` form.
    pub fn metadata_json(&self) -> Value {
        self.image.metadata_json()
    }

    /// The offset of the last item folded.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// Records the image refused (as the server's state machine refuses them).
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c).expect("feed");
            while let Some(e) = p.next_event().expect("parse") {
                out.push(e);
            }
        }
        out
    }

    #[test]
    fn sse_frames_split_anywhere_parse_the_same() {
        let text = b": keep-alive\n\nid: 5\nevent: record\ndata: {\"a\":1}\n\r\nevent: error\ndata: x\ndata: y\n\n";
        let whole = parse_all(&[text]);
        assert_eq!(
            whole,
            vec![
                SseEvent {
                    id: Some("5".into()),
                    event: "record".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    id: None,
                    event: "error".into(),
                    data: "x\ny".into()
                },
            ]
        );
        for cut in 0..text.len() {
            assert_eq!(
                parse_all(&[&text[..cut], &text[cut..]]),
                whole,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn an_incomplete_event_is_not_dispatched_and_oversize_is_refused() {
        assert!(parse_all(&[b"id: 1\nevent: record\ndata: {}\n"]).is_empty());
        let mut p = SseParser::new(8);
        assert!(p.feed(b"data: 0123456789\n").is_err());
    }

    #[test]
    fn fold_decodes_records_and_replaces_on_snapshot() {
        let topic = serde_json::json!({"name": "t", "topicUUID": uuid::Uuid::new_v4()});
        let rec = LogRecord {
            offset: 3,
            epoch: 1,
            timestamp: 1,
            name: "TopicRecord".into(),
            fields: topic.clone(),
        };
        let mut f = ImageFold::new();
        f.apply(&StreamItem::Record(rec)).expect("fold record");
        let view = f.metadata_json();
        assert_eq!(view["TopicRecord"], serde_json::json!([topic]));
        let mut g = ImageFold::new();
        g.apply(&StreamItem::Snapshot {
            offset: 3,
            epoch: 1,
            metadata: view.clone(),
        })
        .expect("fold snapshot");
        assert_eq!(g.metadata_json(), view);
        assert!(g
            .apply(&StreamItem::Snapshot {
                offset: 4,
                epoch: 1,
                metadata: serde_json::json!([1])
            })
            .is_err());
    }
}
