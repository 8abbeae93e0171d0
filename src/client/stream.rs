//! Tailing the metadata log over `GET /stream` (server-sent events).
//!
//! [`StreamClient`] is a [`futures::Stream`] of [`StreamItem`]s. It connects to one node of a
//! list (which it extends with the members `/cluster` names), reads the SSE frames with
//! [`sse::Parser`](super::sse::Parser) (`record`, `progress`, and chunked snapshots put back
//! together by [`SnapshotAssembly`]), and after **any** failure — connection refused or reset,
//! end of the body, no bytes for [`StreamOptions::idle_timeout`], an `event: stream_error` from
//! the server (`no_leader` included), a `416` (that node has not learned of what was read
//! elsewhere), a frame it cannot read — waits a backoff and connects to the next node with
//! `Last-Event-ID: <last id>`, where the last id is that of the last item yielded or of the last
//! `progress` event, whichever is later. Every node serves the same log at the same offsets, so
//! the stream continues where it broke: nothing missed, nothing repeated.
//!
//! Each offset is yielded at most once and offsets only grow: an item whose offset is at or below
//! the last id (a node that resent something) is dropped.
//!
//! ```no_run
//! # async fn demo() -> Result<(), yakt::client::ClientError> {
//! use futures::StreamExt;
//! use yakt::client::{StreamClient, StreamItem, StreamOptions};
//! let mut client = StreamClient::new(["127.0.0.1:5010"], StreamOptions::default())?;
//! // `StreamExt::next` (an `Option`); the inherent `client.next()` answers `Err(Stopped)` instead.
//! while let Some(item) = StreamExt::next(&mut client).await {
//!     match item? {
//!         StreamItem::Snapshot { offset, .. } => println!("image at {offset}"),
//!         StreamItem::Record(r) => println!("{} {}", r.offset, r.name),
//!         StreamItem::Progress(p) => println!("read up to {}", p.offset),
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt};
use serde_json::Value;
use tokio::sync::watch;

pub use super::options::{ClientError, StartAt, StopHandle, StreamItem, StreamOptions};
use super::sse;

mod resume;
pub(crate) use resume::{Handled, Resume};

/// An open `/stream` response.
struct Conn {
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    parser: sse::Parser,
}

/// Why a connection attempt failed.
enum ConnectError {
    Retry(String),
    Fatal(ClientError),
}

/// The connection state of a [`StreamClient`], moved into the future of each `next`.
struct Inner {
    nodes: Vec<String>,
    node: usize,
    opts: StreamOptions,
    http: reqwest::Client,
    conn: Option<Conn>,
    resume: Resume,
    failures: u32,
    connects: u64,
    last_error: Option<String>,
    stop_rx: watch::Receiver<bool>,
    /// Whether `/cluster` was asked since the last connection failure.
    members_learned: bool,
}

/// A `next` in progress: it owns the client's state and gives it back with the item.
type PendingNext = BoxFuture<'static, (Box<Inner>, Result<StreamItem, ClientError>)>;

/// What the accessors of a [`StreamClient`] report, copied from its state after every item.
#[derive(Clone, Debug, Default)]
struct Stats {
    last_id: Option<u64>,
    node: String,
    connects: u64,
    duplicates: u64,
    last_error: Option<String>,
}

/// Tails `/stream` across the nodes of a cluster; see the [module documentation](self).
pub struct StreamClient {
    inner: Option<Box<Inner>>,
    pending: Option<PendingNext>,
    stats: Stats,
    disconnect: bool,
    /// `Stopped` was yielded: the stream has ended.
    ended: bool,
    stop_tx: Arc<watch::Sender<bool>>,
}

/// `host:port` or a URL, as a base URL without a trailing slash.
fn base_url(addr: &str, scheme: &str) -> String {
    let a = addr.trim().trim_end_matches('/');
    if a.contains("://") {
        a.to_string()
    } else {
        format!("{scheme}://{a}")
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
    /// then round-robin after failures, with the other members `/cluster` names added. It
    /// connects lazily, on the first item asked for. It uses its own HTTP client, which ignores
    /// proxy settings (streams go direct); use [`with_http`](Self::with_http) to share or
    /// configure one.
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
            .map(|n| base_url(n.as_ref(), "https"))
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
        let nodes: Vec<String> = nodes
            .into_iter()
            .map(|n| base_url(n.as_ref(), "http"))
            .collect();
        if nodes.is_empty() {
            return Err(ClientError::NoNodes);
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let resume = Resume {
            yield_progress: opts.progress,
            ..Resume::default()
        };
        let inner = Inner {
            nodes,
            node: 0,
            opts,
            http,
            conn: None,
            resume,
            failures: 0,
            connects: 0,
            last_error: None,
            stop_rx,
            members_learned: false,
        };
        let mut client = Self {
            inner: Some(Box::new(inner)),
            pending: None,
            stats: Stats::default(),
            disconnect: false,
            ended: false,
            stop_tx: Arc::new(stop_tx),
        };
        client.refresh_stats();
        Ok(client)
    }

    /// The next item: waits for it, reconnecting (to the next node, with `Last-Event-ID`) as
    /// often as needed; [`ClientError::Stopped`] once stopped. Cancel-safe: dropping the future
    /// loses nothing (the read goes on at the next call).
    pub async fn next(&mut self) -> Result<StreamItem, ClientError> {
        match StreamExt::next(self).await {
            Some(r) => r,
            None => Err(ClientError::Stopped),
        }
    }

    /// A handle that stops this client from another task.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop_tx.clone())
    }

    /// Stops the client: closes its connection; `next` returns [`ClientError::Stopped`].
    pub fn stop(&mut self) {
        self.stop_tx.send_replace(true);
        self.disconnect();
    }

    /// Drops the current connection (if any); the next item is read from a new connection to
    /// the same node, with `Last-Event-ID`. For tests and for callers that know a connection
    /// went bad.
    pub fn disconnect(&mut self) {
        match self.inner.as_mut() {
            Some(inner) => {
                inner.conn = None;
                inner.resume.reconnected();
            }
            None => self.disconnect = true,
        }
    }

    /// The last id the client has: of the last item yielded or the last progress event, what
    /// `Last-Event-ID` carries on a reconnect.
    pub fn last_event_id(&self) -> Option<u64> {
        self.stats.last_id
    }

    /// The base URL of the node the client reads from (or will connect to next).
    pub fn current_node(&self) -> &str {
        &self.stats.node
    }

    /// Successful connections made so far (1 plus the reconnects).
    pub fn connects(&self) -> u64 {
        self.stats.connects
    }

    /// Items dropped because their offset was at or below the last id.
    pub fn duplicates_dropped(&self) -> u64 {
        self.stats.duplicates
    }

    /// The last failure that caused a reconnect, if any.
    pub fn last_error(&self) -> Option<&str> {
        self.stats.last_error.as_deref()
    }

    fn refresh_stats(&mut self) {
        if let Some(i) = self.inner.as_ref() {
            self.stats = Stats {
                last_id: i.resume.last_id,
                node: i.nodes[i.node].clone(),
                connects: i.connects,
                duplicates: i.resume.duplicates,
                last_error: i.last_error.clone(),
            };
        }
    }
}

impl Stream for StreamClient {
    type Item = Result<StreamItem, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        if this.pending.is_none() {
            let Some(mut inner) = this.inner.take() else {
                return Poll::Ready(None);
            };
            if std::mem::take(&mut this.disconnect) {
                inner.conn = None;
                inner.resume.reconnected();
            }
            this.pending = Some(
                async move {
                    let r = inner.next().await;
                    (inner, r)
                }
                .boxed(),
            );
        }
        let Some(pending) = this.pending.as_mut() else {
            return Poll::Ready(None);
        };
        let (inner, r) = match pending.poll_unpin(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(done) => done,
        };
        this.pending = None;
        this.inner = Some(inner);
        this.refresh_stats();
        match r {
            Err(ClientError::Stopped) => {
                if let Some(inner) = this.inner.as_mut() {
                    inner.conn = None;
                }
                // One `Stopped`, then the end of the stream.
                this.ended = true;
                Poll::Ready(Some(Err(ClientError::Stopped)))
            }
            other => Poll::Ready(Some(other)),
        }
    }
}

impl Inner {
    async fn next(&mut self) -> Result<StreamItem, ClientError> {
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

    /// Counts a failure, moves to the next node, and gives up past `max_failures`.
    fn fail(&mut self, why: String) -> Result<(), ClientError> {
        self.conn = None;
        self.resume.reconnected();
        self.members_learned = false;
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
                if self.opts.learn_members && !self.members_learned {
                    self.learn_members().await;
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
                match self.resume.handle(ev) {
                    Handled::Item(item) => {
                        self.failures = 0;
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

    fn get(&self, url: &str) -> reqwest::RequestBuilder {
        let req = self.http.get(url);
        match &self.opts.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Adds the members the current node's `/cluster` names to the nodes to fail over to
    /// (best effort: a node that does not answer is tried anyway).
    async fn learn_members(&mut self) {
        self.members_learned = true;
        let base = self.nodes[self.node].clone();
        let url = format!("{base}/cluster");
        let req = self.get(&url).timeout(self.opts.connect_timeout);
        let view: Option<Value> = async move {
            let resp = req.send().await.ok()?;
            resp.status().is_success().then_some(())?;
            resp.json().await.ok()
        }
        .await;
        let Some(members) = view.as_ref().and_then(|v| v["members"].as_array()) else {
            return;
        };
        let scheme = if base.starts_with("https://") {
            "https"
        } else {
            "http"
        };
        for m in members {
            if let Some(addr) = m["addr"].as_str() {
                let url = base_url(addr, scheme);
                if !self.nodes.contains(&url) {
                    self.nodes.push(url);
                }
            }
        }
    }

    /// Resolves [`StartAt::End`] to a concrete offset on the current node.
    async fn resolve_end(&mut self, base: &str) -> Result<u64, ConnectError> {
        let url = format!("{base}/fetch?offset=end&max_records=1");
        let resp = self
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
        let last_id = self.resume.last_id;
        if last_id.is_none() {
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
            .get(&url)
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(k) = last_id {
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
            // 416: this node has not learned of the offsets read elsewhere yet; 408/429: later.
            let retry = matches!(code, 408 | 416 | 429);
            if status.is_client_error() && !retry {
                return Err(ConnectError::Fatal(ClientError::Rejected {
                    node: base,
                    status: code,
                    body,
                }));
            }
            return Err(ConnectError::Retry(format!("{url}: {code} {body}")));
        }
        self.resume.reconnected();
        Ok(Conn {
            body: resp.bytes_stream().boxed(),
            parser: sse::Parser::new(self.opts.max_event_bytes),
        })
    }
}

#[cfg(test)]
mod tests;
