//! Tailing the metadata log over `GET /stream` (server-sent events).
//!
//! [`StreamClient`] connects to one node of a list, reads the SSE frames with
//! [`sse::Parser`](super::sse::Parser) (`event: record` and `event: snapshot` are items; `:`
//! lines are keep-alives), and after **any**
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

pub use super::options::{ClientError, StartAt, StopHandle, StreamItem, StreamOptions};
use super::sse;
use crate::metadata::LogRecord;

/// An open `/stream` response.
struct Conn {
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    parser: sse::Parser,
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

    /// Like [`new`](Self::new) over HTTPS: the nodes' certificates must chain to `tls`'s CA, and
    /// its client certificate, if any, is presented (nodes with `--tls-client-ca`). Bare
    /// `HOST:PORT` addresses are reached with `https://`.
    pub fn with_tls<I, S>(
        nodes: I,
        opts: StreamOptions,
        tls: &crate::tls::ClientTls,
    ) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let http = tls
            .apply(reqwest::Client::builder())
            .no_proxy()
            .connect_timeout(opts.connect_timeout)
            .tcp_nodelay(true)
            .build()?;
        let nodes: Vec<String> = nodes
            .into_iter()
            .map(|n| {
                let a = n.as_ref().trim();
                if a.contains("://") {
                    a.to_string()
                } else {
                    format!("https://{a}")
                }
            })
            .collect();
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
                    self.fail(why.to_string())?;
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
                    Err(why) => why.to_string(),
                },
                Ok(Some(Err(e))) => format!("reading the stream: {e}"),
                Ok(None) => "the node ended the stream".to_string(),
                Err(_) => format!("no data for {:?}", self.opts.idle_timeout),
            };
            self.fail(why)?;
        }
    }

    fn handle(&mut self, ev: sse::Event) -> Handled {
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
            parser: sse::Parser::new(self.opts.max_event_bytes),
        })
    }
}
