//! The TLS flags every client command shares (`yakt status`, `yakt member`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use yakt::tls::client::ClientTlsFiles;
use yakt::tls::ClientTls;

/// `--cacert` (HTTPS) and, for nodes that require client certificates, `--cert`/`--key`.
#[derive(Args, Debug, Clone, Default)]
pub struct ClientTlsArgs {
    /// Talk HTTPS, trusting the nodes' certificates signed by this CA (PEM).
    #[arg(long, global = true, env = "YAKT_CACERT")]
    pub cacert: Option<PathBuf>,
    /// Client certificate (PEM) for nodes started with --tls-client-ca.
    #[arg(long, global = true, env = "YAKT_CERT", requires_all = ["cacert", "key"])]
    pub cert: Option<PathBuf>,
    /// Key of --cert (PEM).
    #[arg(long, global = true, env = "YAKT_KEY", requires_all = ["cacert", "cert"])]
    pub key: Option<PathBuf>,
}

impl ClientTlsArgs {
    /// The client TLS the flags ask for; `None` (plain HTTP) without `--cacert`.
    pub fn client_tls(&self) -> anyhow::Result<Option<ClientTls>> {
        let Some(ca) = &self.cacert else {
            return Ok(None);
        };
        let files = ClientTlsFiles {
            ca: ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
        };
        Ok(Some(
            ClientTls::from_files(&files).context("--cacert/--cert/--key")?,
        ))
    }
}
