//! Serving a node over HTTP from start to stop: accept connections (with a header read timeout
//! that `axum::serve` does not set), watch the Raft core, and on the shutdown signal hand
//! leadership over, end the streams, and drain in-flight requests within a bound.
//!
//! The binary and the in-process tests both run a node as
//! `Node::start` → `Node::bootstrap` → [`run`] → `Node::shutdown`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use super::{router, ApiOptions};
use crate::config::Defaults;
use crate::raft::handoff::{hand_over_leadership, Handoff};
use crate::raft::{core_watch, Node};
use crate::tls::{PeerCert, ServerTls};

/// How a node is served: the HTTP layer's settings and the stop sequence's bounds.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// The router's settings (body limit, token, catch-up window, slow readers).
    pub api: ApiOptions,
    /// How long in-flight requests (writes waiting for their commit included) may take to
    /// finish once the node stops accepting connections; then they are cut.
    pub drain_timeout: Duration,
    /// How long a stopping leader waits for another node to take over before it stops anyway.
    pub handoff_timeout: Duration,
    /// How long a client may take to send a request's headers (and an idle keep-alive
    /// connection may wait for its next request): a slowloris client is cut after it.
    pub header_read_timeout: Duration,
    /// HTTPS instead of HTTP (then plain HTTP is refused: its bytes are no TLS handshake).
    pub tls: Option<ServerTls>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            api: ApiOptions::default(),
            drain_timeout: Defaults::DRAIN_TIMEOUT,
            handoff_timeout: Defaults::HANDOFF_TIMEOUT,
            header_read_timeout: Defaults::HEADER_READ_TIMEOUT,
            tls: None,
        }
    }
}

/// Why serving ended other than by the shutdown signal.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The Raft core stopped on its own (a panic, a fatal storage error) while the node was
    /// serving: the process must not outlive it, answering from an image that no longer moves.
    #[error("the Raft core stopped: {reason}")]
    CoreStopped {
        /// The core's fatal error, or that it panicked.
        reason: String,
    },
}

/// Serves `node` on `listener` until `shutdown` resolves, then: if this node leads, hands
/// leadership to the most caught-up voter (still serving meanwhile, at most
/// `handoff_timeout`); marks the node as shutting down (SSE streams end, `/fetch` long polls
/// answer); stops accepting; and lets open requests finish for at most `drain_timeout`.
/// Returns `Ok` once drained; the caller then calls [`Node::shutdown`]. Returns
/// [`ServerError::CoreStopped`] at once if the Raft core stops before the shutdown began.
pub async fn run(
    listener: TcpListener,
    node: Arc<Node>,
    opts: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let mut api = opts.api.clone();
    api.require_peer_cert = opts.tls.as_ref().is_some_and(|t| t.requires_peer_cert());
    let app = router(node.clone(), api);
    if let Some(tls) = &opts.tls {
        tokio::spawn(watch_certs(tls.certs.clone(), node.shutdown_signal()));
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let stopping = async {
        shutdown.await;
        hand_over(&node, opts.handoff_timeout).await;
        tracing::info!(
            node = node.id,
            "shutdown requested: finishing in-flight requests"
        );
        node.begin_shutdown();
    };
    tokio::pin!(stopping);
    let core_stopped = core_watch::core_stopped(&node.raft);
    tokio::pin!(core_stopped);
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning; the next accept retries.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stopping => break,
            reason = &mut core_stopped, if !node.is_shutting_down() => {
                tracing::error!(
                    node = node.id,
                    reason = %reason,
                    "the Raft core stopped; exiting instead of serving a state that no longer moves"
                );
                return Err(ServerError::CoreStopped { reason });
            }
        };
        while conns.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let timeout = opts.header_read_timeout;
        let stop = stop_rx.clone();
        match opts.tls.clone() {
            None => conns.spawn(serve_connection(stream, app, None, timeout, stop)),
            Some(tls) => conns.spawn(async move {
                // The handshake gets the header read timeout too: a client that opens a
                // connection and sends nothing is cut like a slow plain-HTTP one.
                let accepted = tokio::time::timeout(timeout, tls.acceptor().accept(stream)).await;
                let stream = match accepted {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake timed out");
                        return;
                    }
                };
                let peer = PeerCert(tls.is_peer(stream.get_ref().1.peer_certificates()));
                serve_connection(stream, app, Some(peer), timeout, stop).await
            }),
        };
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(opts.drain_timeout, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            node = node.id,
            secs = opts.drain_timeout.as_secs(),
            "in-flight requests did not finish in time; closing them"
        );
        conns.shutdown().await;
    }
    tracing::info!(node = node.id, "requests drained");
    Ok(())
}

/// Serves one connection until it ends, or until `stop` turns true and its open request (if
/// any) is answered. On a TLS connection every request carries the connection's [`PeerCert`].
async fn serve_connection<S>(
    stream: S,
    app: axum::Router,
    peer: Option<PeerCert>,
    header_read_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(app.map_request(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    if let Some(p) = peer {
                        req.extensions_mut().insert(p);
                    }
                    req
                },
            )),
        )
        .with_upgrades();
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Keeps the node's certificate current (file changes, SIGHUP) until the node shuts down.
async fn watch_certs(
    certs: std::sync::Arc<crate::tls::CertStore>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::select! {
        _ = certs.watch() => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

/// Before a leader stops serving: hands leadership to the most caught-up voter and waits (up
/// to `timeout`) until another node leads, so that writes pause for a leader transfer rather
/// than an election timeout.
async fn hand_over(node: &Node, timeout: Duration) {
    let started = Instant::now();
    let outcome = hand_over_leadership(&node.raft, node.id, timeout).await;
    let ms = started.elapsed().as_millis() as u64;
    match outcome {
        Handoff::NotLeader | Handoff::NoOtherVoter => {}
        Handoff::HandedTo(to) => {
            tracing::info!(
                node = node.id,
                to,
                ms,
                "leadership handed over before stopping"
            )
        }
        Handoff::TimedOut { target } => tracing::warn!(
            node = node.id,
            target,
            ms,
            "no other node took over leadership in time; stopping anyway"
        ),
        Handoff::CoreStopped(e) => {
            tracing::warn!(node = node.id, error = %e, "leadership hand-over failed")
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C): the signal `yakt node` and `yakt cluster`
/// stop on.
pub async fn terminate_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
