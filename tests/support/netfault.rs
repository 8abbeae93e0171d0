//! Network partitions without root tools: each node listens on its own loopback IP
//! (127.0.0.11, .12, ...; all of 127.0.0.0/8 is loopback on Linux), and its outgoing
//! connections leave from that IP. In front of each node runs a TCP proxy that the node
//! advertises to its peers (`--advertise-addr`); a proxy drops, and refuses, connections whose
//! source IP is blocked. Test clients talk to the nodes directly from 127.0.0.1, which is never
//! blocked. Partitioning a node = its proxy blocks its peers' IPs and theirs block its IP.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::{free_port, Cluster, NodeProc, FAST};

/// A fault-injecting TCP proxy in front of one node.
pub struct Proxy {
    /// The address the proxy listens on (what the node advertises).
    pub listen: String,
    blocked: watch::Sender<BTreeSet<IpAddr>>,
    target: watch::Sender<String>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on `listen` and forwards every allowed connection to `target`.
    pub async fn start(listen: String, target: String) -> Proxy {
        let listener = TcpListener::bind(&listen).await.expect("bind proxy");
        let (blocked, rx) = watch::channel(BTreeSet::new());
        let (target, target_rx) = watch::channel(target);
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, peer)) = listener.accept().await else {
                    continue;
                };
                let mut rx = rx.clone();
                let target = target_rx.borrow().clone();
                tokio::spawn(async move {
                    let ip = peer.ip();
                    if rx.borrow().contains(&ip) {
                        return; // dropped: the peer sees a reset / EOF at once
                    }
                    let Ok(outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut a, mut b) = (inbound, outbound);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut a, &mut b) => {}
                        _ = rx.wait_for(|s| s.contains(&ip)) => {}
                    }
                });
            }
        });
        Proxy {
            listen,
            blocked,
            target,
            task,
        }
    }

    /// Blocks (and cuts the open connections of) these source IPs.
    pub fn block(&self, ips: &[IpAddr]) {
        self.blocked.send_modify(|s| s.extend(ips.iter().copied()));
    }

    /// Forwards new connections to `target` from now on (a node restarted on another port).
    pub fn retarget(&self, target: String) {
        self.target.send_replace(target);
    }

    /// Lets everyone through again.
    pub fn heal(&self) {
        self.blocked.send_modify(|s| s.clear());
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The loopback IP of node `id`.
pub fn node_ip(id: u64) -> IpAddr {
    format!("127.0.0.{}", 10 + id).parse().expect("ip")
}

/// A cluster whose nodes reach each other only through [`Proxy`]s.
pub struct ProxiedCluster {
    pub c: Cluster,
    pub proxies: Vec<Proxy>,
}

impl ProxiedCluster {
    /// Starts `n` nodes (node 1 first, the others joining through the earlier ones' proxies).
    pub async fn start(n: usize, extra: &[&str]) -> ProxiedCluster {
        Self::start_with_timing(n, FAST, extra).await
    }

    /// [`ProxiedCluster::start`] with other election and heartbeat flags than [`FAST`] (e.g.
    /// an election timeout longer than a test's partition, so that no election happens).
    pub async fn start_with_timing(n: usize, timing: &[&str], extra: &[&str]) -> ProxiedCluster {
        let mut pc = ProxiedCluster {
            c: Cluster::empty(extra),
            proxies: Vec::new(),
        };
        for _ in 0..n {
            pc.add_node(timing, false).await;
        }
        // Generous: some scenarios start with 20-30 s election timeouts, on a loaded machine.
        pc.c.wait_voters(n, Duration::from_secs(90)).await;
        pc
    }

    /// Starts one more node behind its own proxy, joining through the earlier nodes' proxies;
    /// returns its index. With `cut_off`, its proxy refuses the earlier nodes from the start:
    /// it can announce itself to the leader, but nothing the leader sends reaches it.
    pub async fn add_node(&mut self, timing: &[&str], cut_off: bool) -> usize {
        let k = self.c.nodes.len();
        let id = k as u64 + 1;
        let ip = node_ip(id);
        let addr = format!("{ip}:{}", free_port());
        let proxy = Proxy::start(format!("{ip}:{}", free_port()), addr.clone()).await;
        if cut_off {
            let earlier: Vec<IpAddr> = (1..id).map(node_ip).collect();
            proxy.block(&earlier);
        }
        let data_dir = self.c.dir.path().join(format!("node-{id}"));
        let mut args = vec![
            "node".to_string(),
            "-i".into(),
            id.to_string(),
            "-a".into(),
            addr.clone(),
            "--advertise-addr".into(),
            proxy.listen.clone(),
        ];
        if k > 0 {
            args.push("-e".into());
            args.push(
                self.proxies
                    .iter()
                    .enumerate()
                    .map(|(j, p)| format!("{}/{}", j + 1, p.listen))
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        args.push("--data-dir".into());
        args.push(data_dir.display().to_string());
        args.extend(timing.iter().map(|s| s.to_string()));
        args.extend(self.c.extra.iter().cloned());
        let mut node = NodeProc {
            id,
            addr,
            data_dir,
            args,
            child: None,
            log_path: self.c.dir.path().join(format!("node-{id}.log")),
        };
        node.spawn();
        self.c.nodes.push(node);
        // A node that lost the race for its port is started again on another one; the proxy
        // then forwards there (the address its peers know, the proxy's, stays).
        self.c.wait_listening(k).await;
        proxy.retarget(self.c.nodes[k].addr.clone());
        self.proxies.push(proxy);
        k
    }

    /// Cuts node index `i` off from every other node, both ways.
    pub fn isolate(&self, i: usize) {
        let me = node_ip(self.c.nodes[i].id);
        let others: Vec<IpAddr> = (0..self.c.nodes.len())
            .filter(|&j| j != i)
            .map(|j| node_ip(self.c.nodes[j].id))
            .collect();
        self.proxies[i].block(&others);
        for (j, p) in self.proxies.iter().enumerate() {
            if j != i {
                p.block(&[me]);
            }
        }
    }

    /// Removes every partition.
    pub fn heal(&self) {
        for p in &self.proxies {
            p.heal();
        }
    }
}
