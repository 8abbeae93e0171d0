//! Node-to-node Raft RPC over HTTP: `POST /raft/{append,vote,snapshot}` on the peer's one
//! address, MessagePack bodies, one pooled keep-alive client per node, per-call timeouts.
//!
//! Request bodies are the openraft request in named MessagePack; responses are
//! `Result<response, RaftError>` in the same encoding. A snapshot body is framed as
//! `u32 big-endian header length, header (vote and snapshot meta), snapshot bytes`.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Cursor;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::errors::{
    NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::OptionalSend;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::codec::{decode_named, encode_named};
use super::{NodeId, SnapshotMeta, TypeConfig, Vote};
use crate::storage::Identity;

/// The content type of every Raft RPC body.
pub const MSGPACK: &str = "application/msgpack";

/// Where each peer is reached now, as the newest membership this node holds says.
///
/// openraft keeps a replication stream, and the client made for it, across a membership change
/// that only moves a member's address (a seat handed to a new incarnation on another host): a
/// client that kept the address it was made with would go on replicating to the old host, and
/// the new incarnation would never catch up under that leader. Clients look the address up
/// here on every request instead.
#[derive(Clone, Default)]
pub struct AddressBook(Arc<RwLock<BTreeMap<NodeId, String>>>);

impl AddressBook {
    /// The address of `id`, if the membership lists it.
    pub fn get(&self, id: NodeId) -> Option<String> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// Replaces every address with those of `members`.
    pub fn replace<'a>(&self, members: impl Iterator<Item = (&'a NodeId, &'a super::Member)>) {
        let fresh: BTreeMap<NodeId, String> =
            members.map(|(id, m)| (*id, m.addr.clone())).collect();
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = fresh;
    }
}

/// Makes one [`PeerClient`] per peer, all sharing one connection pool.
#[derive(Clone)]
pub struct Network {
    http: reqwest::Client,
    scheme: &'static str,
    token: Option<String>,
    identity: Arc<Identity>,
    addresses: AddressBook,
}

impl Network {
    /// A network whose requests carry `token` as a bearer token when one is set, and leave from
    /// `bind_ip` when one is given, and name this node's cluster (from `identity`); over TLS
    /// (checking peers against the peer CA, presenting this node's certificate) with `tls`. A
    /// client that cannot be built (bad TLS material) is an error, never a plain fallback.
    pub fn new(
        token: Option<String>,
        bind_ip: Option<std::net::IpAddr>,
        identity: Arc<Identity>,
        tls: Option<&crate::tls::ClientTls>,
    ) -> Result<Self, reqwest::Error> {
        let mut http = reqwest::Client::builder();
        if let Some(tls) = tls {
            http = tls.apply(http);
        }
        let http = http
            .no_proxy()
            .local_address(bind_ip)
            // Below the servers' 30 s header read timeout, so that a pooled connection is
            // never reused just as the peer closes it for idleness.
            .pool_idle_timeout(Duration::from_secs(20))
            .pool_max_idle_per_host(8)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_millis(500))
            .build()?;
        Ok(Self {
            http,
            scheme: crate::tls::client::scheme(tls),
            token,
            identity,
            addresses: AddressBook::default(),
        })
    }

    /// The address book its clients read; the node keeps it current (see `Node::start`).
    pub fn addresses(&self) -> AddressBook {
        self.addresses.clone()
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &super::Member) -> Self::Network {
        PeerClient {
            target,
            addresses: self.addresses.clone(),
            addr: node.addr.clone(),
            http: self.http.clone(),
            scheme: self.scheme,
            token: self.token.clone(),
            identity: self.identity.clone(),
        }
    }
}

/// The RPC client for one peer.
pub struct PeerClient {
    target: NodeId,
    addresses: AddressBook,
    /// The address the client was made with, used while the book does not list the target.
    addr: String,
    http: reqwest::Client,
    scheme: &'static str,
    token: Option<String>,
    identity: Arc<Identity>,
}

/// The framed header of a snapshot RPC body.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SnapshotHeader {
    pub vote: Vote,
    pub meta: SnapshotMeta,
}

/// Encodes a snapshot RPC body.
pub fn encode_snapshot_body(
    header: &SnapshotHeader,
    data: &[u8],
) -> Result<Vec<u8>, super::codec::CodecError> {
    let h = encode_named("snapshot header", header)?;
    let mut body = Vec::with_capacity(4 + h.len() + data.len());
    body.extend_from_slice(&(h.len() as u32).to_be_bytes());
    body.extend_from_slice(&h);
    body.extend_from_slice(data);
    Ok(body)
}

/// Decodes a snapshot RPC body into its header and the snapshot bytes.
pub fn decode_snapshot_body(body: &[u8]) -> Result<(SnapshotHeader, Vec<u8>), String> {
    if body.len() < 4 {
        return Err("snapshot body shorter than its length prefix".into());
    }
    let len = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
    let rest = &body[4..];
    if len > rest.len() {
        return Err(format!(
            "snapshot header length {len} exceeds body ({} bytes)",
            rest.len()
        ));
    }
    let header = decode_named("snapshot header", &rest[..len]).map_err(|e| e.to_string())?;
    Ok((header, rest[len..].to_vec()))
}

impl PeerClient {
    async fn post<Resp>(
        &self,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Resp, RPCError<TypeConfig>>
    where
        Result<Resp, RaftError<TypeConfig>>: DeserializeOwned,
    {
        let addr = self
            .addresses
            .get(self.target)
            .unwrap_or_else(|| self.addr.clone());
        let url = format!("{}://{addr}/raft/{path}", self.scheme);
        let mut req = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, MSGPACK)
            .body(body)
            .timeout(timeout);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(c) = self.identity.cluster_id() {
            req = req.header(super::CLUSTER_ID_HEADER, c.to_string());
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_connect() {
                RPCError::Unreachable(Unreachable::new(&e))
            } else {
                RPCError::Network(NetworkError::new(&e))
            }
        })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).to_string();
            return Err(RPCError::Network(NetworkError::from_string(format!(
                "HTTP {status} from {url}: {text}"
            ))));
        }
        let res: Result<Resp, RaftError<TypeConfig>> = decode_named("raft rpc response", &bytes)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        res.map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))
    }

    fn encode<T: Serialize>(what: &'static str, v: &T) -> Result<Vec<u8>, RPCError<TypeConfig>> {
        encode_named(what, v).map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let body = Self::encode("append request", &rpc)?;
        self.post("append", body, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let body = Self::encode("vote request", &rpc)?;
        self.post("vote", body, option.hard_ttl()).await
    }

    /// A stopping leader asks the chosen voter to campaign at once (`POST /raft/transfer_leader`).
    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let body = Self::encode("transfer leader request", &req)?;
        self.post("transfer_leader", body, option.hard_ttl()).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: openraft::alias::SnapshotOf<TypeConfig, Cursor<Vec<u8>>>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let header = SnapshotHeader {
            vote,
            meta: snapshot.meta,
        };
        let body = encode_snapshot_body(&header, snapshot.snapshot.get_ref())
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        // A snapshot can be large: allow it far longer than an append.
        let timeout = option.hard_ttl().max(Duration::from_secs(30));
        tokio::pin!(cancel);
        tokio::select! {
            closed = &mut cancel => Err(StreamingError::Closed(closed)),
            res = self.post::<SnapshotResponse<TypeConfig>>("snapshot", body, timeout) => Ok(res?),
        }
    }
}
