//! The node's own certificate and key, swappable while serving: a rustls resolver (server and
//! client side) that hands out whatever pair is current, and a task that re-reads the files
//! when their modification time changes (polled) or on SIGHUP. A handshake takes the pair once,
//! so open connections (an SSE stream) keep theirs and only new ones see the new pair.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;

use super::{files, TlsError};

/// How often the certificate and key files' modification times are looked at.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The current certificate chain and key, read from `cert` and `key`.
#[derive(Debug)]
pub struct CertStore {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Reads the pair once; fails if either file is missing or unusable.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        let current = read_pair(cert, key)?;
        Ok(Arc::new(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(current),
        }))
    }

    /// The pair new handshakes use.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the files and swaps the pair in; on an error (a half-written file) the old pair
    /// stays and the error is returned for the log.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = read_pair(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    fn mtimes(&self) -> (Option<SystemTime>, Option<SystemTime>) {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        (m(&self.cert), m(&self.key))
    }

    /// Re-reads the pair whenever a file's modification time changes (checked every
    /// [`POLL_INTERVAL`]) and on every SIGHUP, until the task is dropped.
    pub async fn watch(self: Arc<Self>) {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut seen = self.mtimes();
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        loop {
            let signalled = tokio::select! {
                _ = tick.tick() => false,
                Some(()) = async {
                    match hup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                } => true,
            };
            let now = self.mtimes();
            if !signalled && now == seen {
                continue;
            }
            match self.reload() {
                Ok(()) => {
                    seen = now;
                    tracing::info!(cert = %self.cert.display(), signalled, "TLS certificate reloaded");
                }
                // Not remembered as seen: the next tick tries again (the other file may still
                // be on its way).
                Err(e) => {
                    tracing::warn!(error = %e, "TLS certificate reload failed; keeping the old one")
                }
            }
        }
    }
}

fn read_pair(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = files::certs(cert)?;
    let key_der = files::key(key)?;
    let signing = super::provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|source| TlsError::Rustls {
            context: format!("private key {}", key.display()),
            source,
        })?;
    let pair = CertifiedKey::new(chain, signing);
    pair.keys_match().map_err(|source| TlsError::Rustls {
        context: format!("{} does not match {}", key.display(), cert.display()),
        source,
    })?;
    Ok(Arc::new(pair))
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for CertStore {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
