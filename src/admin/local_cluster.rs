//! A local cluster of `yakt node` child processes, started with the original YAKt start lines
//! (node 1 alone, the others with `-e` naming the earlier ones), their logs prefixed with
//! `[node-N]`, all stopped together when the shutdown signal comes.

use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// What to start.
#[derive(Clone, Debug)]
pub struct LocalCluster {
    /// The `yakt` executable to run each node with.
    pub exe: PathBuf,
    /// Number of nodes (1 to 50).
    pub nodes: u64,
    /// Port of node 1; node N listens on `base_port + 10*(N-1)`.
    pub base_port: u16,
    /// Directory holding each node's data (`node-1`, `node-2`, ...).
    pub data_dir: PathBuf,
    /// Host every node listens on and is reached at.
    pub host: String,
    /// Bearer token passed to every node through its environment.
    pub token: Option<String>,
    /// Extra `yakt node` flags for every node.
    pub node_args: Vec<String>,
    /// Nodes log JSON lines (each gets a `cluster_node` field) instead of text.
    pub json_logs: bool,
    /// Serve HTTPS and talk TLS between nodes, with a throwaway CA and node certificates made
    /// afresh under `data_dir/tls` on every run.
    pub tls: bool,
}

/// Why a local cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalClusterError {
    /// The ports do not fit.
    #[error("--base-port {base_port} leaves no room for {nodes} nodes spaced by 10")]
    Ports { base_port: u16, nodes: u64 },
    /// The data directory cannot be created.
    #[error("cannot create {dir}: {source}")]
    DataDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A node process could not be started.
    #[error("cannot start node {id}: {source}")]
    Spawn {
        id: u64,
        #[source]
        source: std::io::Error,
    },
    /// Every node exited before the shutdown signal.
    #[error("every node exited; see their logs above")]
    AllExited,
    /// The throwaway certificates could not be made.
    #[error("cannot make the TLS certificates: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// Some node exited with a failure, or had to be killed, when stopped.
    #[error("some nodes did not stop cleanly; see their logs above")]
    Unclean,
}

/// One started node.
struct Started {
    id: u64,
    addr: String,
    child: Child,
}

/// Copies `from` line by line to `to`, each line prefixed with `[node-N]`; a JSON log line
/// instead gets a `"cluster_node": N` field first, so it stays one JSON object.
fn pipe_lines<R, W>(from: R, mut to: W, id: u64, json: bool) -> tokio::task::JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut lines = BufReader::new(from).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let out = match line.strip_prefix('{') {
                Some(rest) if json => format!("{{\"cluster_node\":{id},{rest}\n"),
                _ => format!("[node-{id}] {line}\n"),
            };
            if to.write_all(out.as_bytes()).await.is_err() {
                return;
            }
            let _ = to.flush().await;
        }
    })
}

/// Runs the cluster until `shutdown` resolves (or every node has exited by itself), then
/// stops every node (SIGTERM, SIGKILL after 20 s) and waits for them.
pub async fn run(
    opts: LocalCluster,
    shutdown: impl Future<Output = ()>,
) -> Result<(), LocalClusterError> {
    let last_port = opts.base_port as u64 + 10 * opts.nodes.saturating_sub(1);
    if opts.nodes == 0 || last_port > u16::MAX as u64 {
        return Err(LocalClusterError::Ports {
            base_port: opts.base_port,
            nodes: opts.nodes,
        });
    }
    std::fs::create_dir_all(&opts.data_dir).map_err(|source| LocalClusterError::DataDir {
        dir: opts.data_dir.clone(),
        source,
    })?;
    let tls = match opts.tls {
        true => Some(make_certs(&opts.data_dir.join("tls"), opts.nodes)?),
        false => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut started: Vec<Started> = Vec::new();
    let mut pipes = Vec::new();
    for id in 1..=opts.nodes {
        let port = opts.base_port as u64 + 10 * (id - 1);
        let addr = format!("{}:{port}", opts.host);
        let data_dir = opts.data_dir.join(format!("node-{id}"));
        let seeds: Vec<String> = started
            .iter()
            .map(|s| format!("{}/{}", s.id, s.addr))
            .collect();
        let mut cmd = node_command(&opts, id, &addr, &data_dir, &seeds);
        if let Some(t) = &tls {
            let n = &t.nodes[(id - 1) as usize];
            cmd.arg("--tls-cert")
                .arg(&n.cert)
                .arg("--tls-key")
                .arg(&n.key)
                .arg("--peer-ca")
                .arg(&t.ca);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(source) => {
                stop_all(&mut started).await;
                return Err(LocalClusterError::Spawn { id, source });
            }
        };
        if let Some(out) = child.stdout.take() {
            pipes.push(pipe_lines(out, tokio::io::stdout(), id, opts.json_logs));
        }
        if let Some(err) = child.stderr.take() {
            pipes.push(pipe_lines(err, tokio::io::stderr(), id, opts.json_logs));
        }
        println!(
            "yakt cluster: node {id} listens on {scheme}://{addr} (data in {})",
            data_dir.display()
        );
        started.push(Started { id, addr, child });
    }
    let first = &started[0].addr;
    let auth = match &opts.token {
        Some(_) => " -H \"Authorization: Bearer $YAKT_TOKEN\"",
        None => "",
    };
    let ca = match &tls {
        Some(t) => format!(" --cacert {}", t.ca.display()),
        None => String::new(),
    };
    println!("yakt cluster: try  curl -s{ca} {scheme}://{first}/cluster");
    println!(
        "yakt cluster: then curl -s{ca}{auth} -X POST -H 'Content-Type: application/json' -d '{{\"name\":\"t1\"}}' {scheme}://{first}/create_topic"
    );
    println!("yakt cluster: Ctrl-C stops every node");

    // Run until the signal, or until every node has exited by itself.
    tokio::select! {
        _ = shutdown => {
            println!("yakt cluster: stopping {} nodes", started.len());
        }
        _ = all_exited(&mut started) => return Err(LocalClusterError::AllExited),
    }
    let clean = stop_all(&mut started).await;
    // Let the log pipes drain what the nodes wrote last.
    for p in pipes {
        let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
    }
    if !clean {
        return Err(LocalClusterError::Unclean);
    }
    println!("yakt cluster: all nodes stopped");
    Ok(())
}

/// The `yakt node` start line of node `id`: `-e` names the nodes started before it.
fn node_command(
    opts: &LocalCluster,
    id: u64,
    addr: &str,
    data_dir: &std::path::Path,
    seeds: &[String],
) -> Command {
    let mut cmd = Command::new(&opts.exe);
    cmd.arg("--log-format")
        .arg(if opts.json_logs { "json" } else { "text" })
        .arg("node")
        .arg("-i")
        .arg(id.to_string())
        .arg("-a")
        .arg(addr)
        .arg("--data-dir")
        .arg(data_dir);
    if !seeds.is_empty() {
        cmd.arg("-e").arg(seeds.join(","));
    }
    cmd.args(&opts.node_args);
    // The flags above are per node: never let this shell's per-node variables override
    // them. The token goes through the environment, not the visible command line.
    for var in [
        "YAKT_ID",
        "YAKT_ADDR",
        "YAKT_EXISTING",
        "YAKT_DATA_DIR",
        "YAKT_TOKEN",
    ] {
        cmd.env_remove(var);
    }
    if let Some(t) = opts.token.as_deref().filter(|t| !t.is_empty()) {
        cmd.env("YAKT_TOKEN", t);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe; a node whose `yakt cluster` dies gets SIGTERM.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    cmd
}

async fn all_exited(started: &mut [Started]) {
    for s in started.iter_mut() {
        let status = s.child.wait().await;
        eprintln!("yakt cluster: node {} exited: {status:?}", s.id);
    }
}

/// SIGTERM every node, wait for each (SIGKILL after 20 s); true when all exited successfully.
async fn stop_all(started: &mut [Started]) -> bool {
    for s in started.iter() {
        if let Some(pid) = s.child.id() {
            // SAFETY: plain kill(2) on our own child's pid (not yet reaped).
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
        }
    }
    let mut clean = true;
    for s in started.iter_mut() {
        match tokio::time::timeout(Duration::from_secs(20), s.child.wait()).await {
            Ok(Ok(st)) if st.success() => {}
            Ok(Ok(st)) => {
                eprintln!("yakt cluster: node {} exited with {st}", s.id);
                clean = false;
            }
            Ok(Err(e)) => {
                eprintln!("yakt cluster: waiting for node {}: {e}", s.id);
                clean = false;
            }
            Err(_) => {
                eprintln!(
                    "yakt cluster: node {} did not stop in 20 s; killing it",
                    s.id
                );
                let _ = s.child.kill().await;
                clean = false;
            }
        }
    }
    clean
}

/// The CA and node certificates of a `--tls` local cluster.
struct TlsFiles {
    ca: PathBuf,
    nodes: Vec<crate::tls::generate::Written>,
}

/// A fresh CA (`dir/ca.crt`) and one certificate per node (`dir/node-N.crt`, `.key`), for
/// 127.0.0.1 and localhost. The CA's key is not written: nothing else can be signed with it.
fn make_certs(dir: &std::path::Path, nodes: u64) -> Result<TlsFiles, crate::tls::TlsError> {
    std::fs::create_dir_all(dir).map_err(|source| crate::tls::TlsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let ca = crate::tls::generate::Ca::new("yakt cluster --tls CA")?;
    let ca_path = dir.join("ca.crt");
    ca.write(&ca_path)?;
    let nodes = (1..=nodes)
        .map(|id| ca.issue_into(dir, &format!("node-{id}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TlsFiles { ca: ca_path, nodes })
}
