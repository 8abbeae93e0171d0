//! The listener's TLS: HTTPS with the node's reloadable certificate; client certificates
//! required (`--tls-client-ca`, mutual TLS for the API) or accepted when offered
//! (`--peer-ca` alone, so that nodes can prove who they are); and, per connection, whether the
//! client presented a certificate signed by the peer CA — what `/raft/*` requires.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use tokio_rustls::TlsAcceptor;

use super::{files, CertStore, TlsError};

/// What the server side of TLS is built from (the `yakt node` flags).
#[derive(Clone, Debug, Default)]
pub struct ServerTlsFiles {
    /// `--tls-cert`: the node's certificate chain (PEM).
    pub cert: PathBuf,
    /// `--tls-key`: its private key (PEM).
    pub key: PathBuf,
    /// `--tls-client-ca`: when set, every client must present a certificate signed by it (or
    /// by the peer CA, for the other nodes).
    pub client_ca: Option<PathBuf>,
    /// `--peer-ca`: the CA the other nodes' certificates are signed by; `/raft/*` requires one.
    pub peer_ca: Option<PathBuf>,
}

/// Whether a connection's client proved it is a peer (a certificate signed by the peer CA).
/// Put on every request of a TLS connection; `/raft/*` checks it when a peer CA is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCert(pub bool);

/// The built server side: the acceptor and the peer check.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    peer_verifier: Option<Arc<dyn ClientCertVerifier>>,
    /// The node's own pair, shared with the reload task and the node's client side.
    pub certs: Arc<CertStore>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("peer_ca", &self.peer_verifier.is_some())
            .finish()
    }
}

fn verifier(
    roots: RootCertStore,
    optional: bool,
    path: &std::path::Path,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), super::provider());
    let b = if optional {
        b.allow_unauthenticated()
    } else {
        b
    };
    b.build().map_err(|source| TlsError::Verifier {
        path: path.to_path_buf(),
        source,
    })
}

impl ServerTls {
    /// Reads the files and builds the acceptor (HTTP/1.1 only, as the server speaks).
    pub fn new(f: &ServerTlsFiles) -> Result<Self, TlsError> {
        let certs = CertStore::load(&f.cert, &f.key)?;
        Self::with_store(f, certs)
    }

    /// As [`ServerTls::new`], around an already loaded pair.
    pub fn with_store(f: &ServerTlsFiles, certs: Arc<CertStore>) -> Result<Self, TlsError> {
        let peer_roots = f.peer_ca.as_deref().map(files::roots).transpose()?;
        let peer_verifier = match (&peer_roots, &f.peer_ca) {
            (Some(r), Some(p)) => Some(verifier(r.clone(), false, p)?),
            _ => None,
        };
        let builder = rustls::ServerConfig::builder_with_provider(super::provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Rustls {
                context: "TLS versions".into(),
                source,
            })?;
        let builder = match (&f.client_ca, &peer_roots) {
            // Mutual TLS for everyone: the API's clients (client CA) and the peers (peer CA).
            (Some(client_ca), peer) => {
                let mut roots = files::roots(client_ca)?;
                if let Some(p) = peer {
                    roots.roots.extend(p.roots.iter().cloned());
                }
                builder.with_client_cert_verifier(verifier(roots, false, client_ca)?)
            }
            // Clients need no certificate; peers offer theirs and it is checked when offered.
            (None, Some(p)) => {
                let path = f.peer_ca.as_deref().unwrap_or(&f.cert);
                builder.with_client_cert_verifier(verifier(p.clone(), true, path)?)
            }
            (None, None) => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(certs.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            peer_verifier,
            certs,
        })
    }

    /// The acceptor a connection's handshake runs through.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Whether a peer CA is configured (then `/raft/*` requires [`PeerCert`]`(true)`).
    pub fn requires_peer_cert(&self) -> bool {
        self.peer_verifier.is_some()
    }

    /// Whether `chain` (a handshake's client certificates, leaf first) is signed by the peer CA.
    pub fn is_peer(&self, chain: Option<&[CertificateDer<'static>]>) -> bool {
        match (&self.peer_verifier, chain) {
            (Some(v), Some([leaf, rest @ ..])) => {
                v.verify_client_cert(leaf, rest, UnixTime::now()).is_ok()
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::generate::Ca;

    fn chain(path: &std::path::Path) -> Vec<CertificateDer<'static>> {
        files::certs(path).expect("certs")
    }

    #[test]
    fn peer_check_accepts_the_peer_ca_only_and_reload_swaps_the_served_pair() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = Ca::new("peers").expect("ca");
        ca.write(&dir.path().join("ca.crt")).expect("write");
        let node = ca.issue_into(dir.path(), "node").expect("node");
        let other = Ca::new("other").expect("other");
        let stranger = other.issue_into(dir.path(), "stranger").expect("stranger");
        let files = ServerTlsFiles {
            cert: node.cert.clone(),
            key: node.key.clone(),
            client_ca: None,
            peer_ca: Some(dir.path().join("ca.crt")),
        };
        let tls = ServerTls::new(&files).expect("server tls");
        assert!(tls.requires_peer_cert());
        assert!(tls.is_peer(Some(&chain(&node.cert))));
        assert!(!tls.is_peer(Some(&chain(&stranger.cert))));
        assert!(!tls.is_peer(None));

        let before = tls.certs.current().cert[0].clone();
        let renewed = ca
            .issue_into(&dir.path().join("."), "renewed")
            .expect("renewed");
        std::fs::rename(&renewed.key, &node.key).expect("key");
        std::fs::rename(&renewed.cert, &node.cert).expect("cert");
        tls.certs.reload().expect("reload");
        let after = tls.certs.current().cert[0].clone();
        assert_ne!(before, after);
        assert_eq!(after, chain(&node.cert)[0]);
    }

    #[test]
    fn a_key_that_does_not_match_its_certificate_is_refused_and_the_old_pair_kept() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = Ca::new("peers").expect("ca");
        let a = ca.issue_into(dir.path(), "a").expect("a");
        let b = ca.issue_into(dir.path(), "b").expect("b");
        let store = CertStore::load(&a.cert, &a.key).expect("load");
        let before = store.current().cert[0].clone();
        std::fs::copy(&b.key, &a.key).expect("copy");
        assert!(store.reload().is_err());
        assert_eq!(store.current().cert[0], before);
        assert!(CertStore::load(&a.cert, &a.key).is_err());
    }
}
