//! TLS for the API and between nodes (rustls on the `ring` provider, no OpenSSL).
//!
//! - [`files`]: reading PEM certificates, keys and CA bundles, with errors that name the file.
//! - [`reload`]: the node's own certificate and key, re-read when their files change or on
//!   SIGHUP; new handshakes use the new pair, open connections keep theirs.
//! - [`server`]: the listener's configuration (HTTPS, optional client certificates) and the
//!   check that a connection's client certificate was signed by the peer CA.
//! - [`client`]: the configuration nodes, operator commands and the stream client connect with.
//! - [`generate`]: a throwaway CA and node certificates (`yakt cluster --tls`, tests).

pub mod client;
pub mod files;
pub mod generate;
pub mod reload;
pub mod server;

use std::path::PathBuf;
use std::sync::Arc;

pub use client::ClientTls;
pub use reload::CertStore;
pub use server::{PeerCert, ServerTls};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or CA file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file held no PEM item of the kind expected.
    #[error("{path} holds no {what}")]
    Empty { path: PathBuf, what: &'static str },
    /// rustls refused the certificate, key or CA.
    #[error("{context}: {source}")]
    Rustls {
        context: String,
        #[source]
        source: rustls::Error,
    },
    /// The client-certificate verifier could not be built (an empty or unusable CA).
    #[error("client certificate verifier from {path}: {source}")]
    Verifier {
        path: PathBuf,
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
    /// Generating certificates failed.
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// Writing generated certificates failed.
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The one crypto provider: `ring` (aws-lc is not built).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
