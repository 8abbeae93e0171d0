//! `yakt cluster`: a local cluster of `yakt node` child processes, started with the original
//! YAKt start lines (node 1 alone, the others with `-e` naming the earlier ones), their logs
//! prefixed with `[node-N]`, all stopped together on Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use super::LogFormat;

/// Flags of `yakt cluster`.
#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Number of nodes to start.
    #[arg(long, env = "YAKT_NODES", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=50))]
    pub nodes: u64,
    /// Port of node 1; node N listens on BASE_PORT + 10*(N-1).
    #[arg(long, env = "YAKT_BASE_PORT", default_value_t = 5010)]
    pub base_port: u16,
    /// Directory holding each node's data (node-1, node-2, ...). A second run reuses it.
    #[arg(long, env = "YAKT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Host (IP or name) every node listens on and is reached at.
    #[arg(long, env = "YAKT_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Bearer token passed to every node (see `yakt node --help`).
    #[arg(long, env = "YAKT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Extra `yakt node` flags for every node, after `--` (e.g. `-- --protect-reads`).
    #[arg(last = true)]
    pub node_args: Vec<String>,
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

/// Runs the cluster until Ctrl-C or SIGTERM, then stops every node and waits for them.
pub async fn run(args: ClusterArgs, log_format: LogFormat) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the yakt executable")?;
    let last_port = args.base_port as u64 + 10 * (args.nodes - 1);
    if last_port > u16::MAX as u64 {
        bail!(
            "--base-port {} leaves no room for {} nodes spaced by 10",
            args.base_port,
            args.nodes
        );
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let format = match log_format {
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    };
    let mut started: Vec<Started> = Vec::new();
    let mut pipes = Vec::new();
    for id in 1..=args.nodes {
        let port = args.base_port as u64 + 10 * (id - 1);
        let addr = format!("{}:{port}", args.host);
        let data_dir = args.data_dir.join(format!("node-{id}"));
        let mut cmd = Command::new(&exe);
        cmd.arg("--log-format")
            .arg(format)
            .arg("node")
            .arg("-i")
            .arg(id.to_string())
            .arg("-a")
            .arg(&addr)
            .arg("--data-dir")
            .arg(&data_dir);
        if !started.is_empty() {
            let seeds: Vec<String> = started
                .iter()
                .map(|s| format!("{}/{}", s.id, s.addr))
                .collect();
            cmd.arg("-e").arg(seeds.join(","));
        }
        cmd.args(&args.node_args);
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
        if let Some(t) = args.token.as_deref().filter(|t| !t.is_empty()) {
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
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                stop_all(&mut started).await;
                return Err(e).context(format!("cannot start node {id}"));
            }
        };
        let json = log_format == LogFormat::Json;
        if let Some(out) = child.stdout.take() {
            pipes.push(pipe_lines(out, tokio::io::stdout(), id, json));
        }
        if let Some(err) = child.stderr.take() {
            pipes.push(pipe_lines(err, tokio::io::stderr(), id, json));
        }
        println!(
            "yakt cluster: node {id} listens on http://{addr} (data in {})",
            data_dir.display()
        );
        started.push(Started { id, addr, child });
    }
    let first = &started[0].addr;
    let auth = match &args.token {
        Some(_) => " -H \"Authorization: Bearer $YAKT_TOKEN\"",
        None => "",
    };
    println!("yakt cluster: try  curl -s http://{first}/cluster");
    println!(
        "yakt cluster: then curl -s{auth} -X POST -H 'Content-Type: application/json' -d '{{\"name\":\"t1\"}}' http://{first}/create_topic"
    );
    println!("yakt cluster: Ctrl-C stops every node");

    // Run until a signal, or until every node has exited by itself.
    tokio::select! {
        _ = yakt::api::server::terminate_signal() => {
            println!("yakt cluster: stopping {} nodes", started.len());
        }
        _ = all_exited(&mut started) => {
            bail!("every node exited; see their logs above");
        }
    }
    let clean = stop_all(&mut started).await;
    // Let the log pipes drain what the nodes wrote last.
    for p in pipes {
        let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
    }
    if clean {
        println!("yakt cluster: all nodes stopped");
        Ok(())
    } else {
        bail!("some nodes did not stop cleanly; see their logs above")
    }
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
