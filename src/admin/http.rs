//! The one way the operator commands call a node: a request with the bearer token when one is
//! given, the JSON answer on success, and the node's own message when it refuses.

use std::time::Duration;

use serde_json::Value;

use crate::tls::ClientTls;

/// Why an operator command's call to a node failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// No answer (refused, timed out, not HTTP).
    #[error("{what}: no answer from {target}: {source}")]
    Unreachable {
        what: String,
        target: String,
        #[source]
        source: reqwest::Error,
    },
    /// The node answered with an error status.
    #[error("{what}: {status}: {message}")]
    Refused {
        what: String,
        status: reqwest::StatusCode,
        message: String,
    },
}

/// An HTTP client for operator commands: no proxy, short connect timeout, an optional token.
#[derive(Clone, Debug)]
pub struct AdminClient {
    http: reqwest::Client,
    scheme: &'static str,
    token: Option<String>,
}

impl AdminClient {
    /// A client whose calls time out after `timeout`; an empty token counts as none. With
    /// `tls`, it speaks HTTPS (and presents a client certificate when `tls` has one).
    pub fn new(
        token: Option<&str>,
        timeout: Duration,
        tls: Option<&ClientTls>,
    ) -> Result<Self, AdminError> {
        let mut http = reqwest::Client::builder();
        if let Some(t) = tls {
            http = t.apply(http);
        }
        let http = http
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .timeout(timeout)
            .build()
            .map_err(AdminError::Client)?;
        Ok(Self {
            http,
            scheme: crate::tls::client::scheme(tls),
            token: token.filter(|t| !t.is_empty()).map(str::to_string),
        })
    }

    /// `GET {scheme}://{addr}{path}`.
    pub async fn get(&self, addr: &str, path: &str) -> Result<Value, AdminError> {
        let url = format!("{}://{addr}{path}", self.scheme);
        self.call(self.http.get(&url), format!("GET {path}"), addr)
            .await
    }

    /// `POST {scheme}://{addr}{path}` with a JSON body.
    pub async fn post(&self, addr: &str, path: &str, body: &Value) -> Result<Value, AdminError> {
        let url = format!("{}://{addr}{path}", self.scheme);
        self.call(
            self.http.post(&url).json(body),
            format!("POST {path}"),
            addr,
        )
        .await
    }

    /// `DELETE {scheme}://{addr}{path}`.
    pub async fn delete(&self, addr: &str, path: &str) -> Result<Value, AdminError> {
        let url = format!("{}://{addr}{path}", self.scheme);
        self.call(self.http.delete(&url), format!("DELETE {path}"), addr)
            .await
    }

    async fn call(
        &self,
        req: reqwest::RequestBuilder,
        what: String,
        target: &str,
    ) -> Result<Value, AdminError> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await.map_err(|source| AdminError::Unreachable {
            what: what.clone(),
            target: target.to_string(),
            source,
        })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body["message"]
                .as_str()
                .map_or_else(|| body.to_string(), str::to_string);
            return Err(AdminError::Refused {
                what,
                status,
                message,
            });
        }
        Ok(body)
    }
}
