//! The client side of TLS, one configuration for every HTTPS client of a node: the Raft
//! network, joining and forwarding (`Node::http`), the operator commands and the stream client.
//! It trusts one CA bundle and, when given one, presents a certificate (mutual TLS, and how a
//! node proves to its peers that it is one).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{files, CertStore, TlsError};

/// A CA to trust and an optional identity to present; `None` of it means plain HTTP.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTls")
    }
}

/// The files a client's TLS is read from (`--cacert`, `--cert`, `--key`).
#[derive(Clone, Debug, Default)]
pub struct ClientTlsFiles {
    /// The CA bundle servers' certificates must chain to.
    pub ca: PathBuf,
    /// The client certificate, for servers that require one.
    pub cert: Option<PathBuf>,
    /// Its key.
    pub key: Option<PathBuf>,
}

impl ClientTls {
    /// Trusts `ca` and presents `identity` (kept current by its reload task) when given.
    pub fn new(ca: &Path, identity: Option<Arc<CertStore>>) -> Result<Self, TlsError> {
        let roots = files::roots(ca)?;
        let builder = rustls::ClientConfig::builder_with_provider(super::provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Rustls {
                context: "TLS versions".into(),
                source,
            })?
            .with_root_certificates(roots);
        let mut config = match identity {
            Some(store) => builder.with_client_cert_resolver(store),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// From files: the CA, and a certificate and key when both are given.
    pub fn from_files(f: &ClientTlsFiles) -> Result<Self, TlsError> {
        let identity = match (&f.cert, &f.key) {
            (Some(c), Some(k)) => Some(CertStore::load(c, k)?),
            _ => None,
        };
        Self::new(&f.ca, identity)
    }

    /// `builder` set up to speak TLS with this configuration.
    pub fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        builder.use_preconfigured_tls((*self.config).clone())
    }

    /// The rustls configuration, for clients that are not reqwest (tests, probes).
    pub fn config(&self) -> Arc<rustls::ClientConfig> {
        self.config.clone()
    }
}

/// The URL scheme for a client with or without TLS.
pub fn scheme(tls: Option<&ClientTls>) -> &'static str {
    if tls.is_some() {
        "https"
    } else {
        "http"
    }
}
