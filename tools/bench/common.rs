//! What every mode shares: spawning local nodes, waiting for a leader, percentiles, RSS.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Local `yakt node` processes, stopped (SIGTERM, then SIGKILL) on drop.
pub struct Spawned {
    pub children: Vec<Child>,
    pub addrs: Vec<String>,
    /// The temporary data root, if this run owns it (removed on drop).
    pub _dir: Option<tempfile::TempDir>,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        for c in &mut self.children {
            stop_child(c);
        }
    }
}

/// SIGTERM, up to 10 s for a graceful stop, then SIGKILL.
pub fn stop_child(c: &mut Child) {
    if let Ok(Some(_)) = c.try_wait() {
        return;
    }
    unsafe {
        libc::kill(c.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

/// The `yakt` binary `--spawn` starts, when `--yakt-bin` names one (set once, by `main`).
static YAKT_BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Makes spawned nodes run `path` instead of the `yakt` next to this bench (`--yakt-bin`), so one
/// bench build can drive an older server for a before/after comparison.
pub fn use_yakt_binary(path: PathBuf) -> anyhow::Result<()> {
    if !path.is_file() {
        bail!("--yakt-bin {}: no such file", path.display());
    }
    let _ = YAKT_BIN.set(path);
    Ok(())
}

/// The `yakt` binary spawned nodes run: `--yakt-bin`, else the one next to `yakt-bench`.
pub fn yakt_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = YAKT_BIN.get() {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe()?;
    let yakt: PathBuf = exe.with_file_name("yakt");
    if !yakt.exists() {
        bail!(
            "spawning nodes needs the yakt binary next to yakt-bench ({})",
            yakt.display()
        );
    }
    Ok(yakt)
}

/// Starts `yakt node` number `id` on `addr` with data under `root/node-<id>`.
pub fn spawn_node(
    root: &Path,
    id: usize,
    addr: &str,
    seeds: &[String],
    extra: &[String],
) -> anyhow::Result<Child> {
    let mut cmd = Command::new(yakt_binary()?);
    cmd.args(["node", "-i", &id.to_string(), "-a", addr, "--data-dir"])
        .arg(root.join(format!("node-{id}")))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if !seeds.is_empty() {
        let seeds: Vec<String> = seeds
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}/{a}", i + 1))
            .collect();
        cmd.args(["-e", &seeds.join(",")]);
    }
    cmd.spawn().context("spawn yakt node")
}

/// Starts an `n`-node cluster under `root` (a fresh temporary directory if `None`).
pub fn spawn_cluster(n: usize, root: Option<&Path>, extra: &[String]) -> anyhow::Result<Spawned> {
    let (dir, path) = match root {
        Some(p) => (None, p.to_path_buf()),
        None => {
            let d = tempfile::tempdir()?;
            let p = d.path().to_path_buf();
            (Some(d), p)
        }
    };
    let mut addrs: Vec<String> = Vec::new();
    let mut children = Vec::new();
    for id in 1..=n {
        let addr = format!("127.0.0.1:{}", yakt::client::loopback::free_port()?);
        children.push(spawn_node(&path, id, &addr, &addrs, extra)?);
        addrs.push(addr);
    }
    Ok(Spawned {
        children,
        addrs,
        _dir: dir,
    })
}

/// Waits for a leader that sees `voters` voters; returns its address.
pub async fn wait_ready(
    http: &reqwest::Client,
    addrs: &[String],
    voters: usize,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        for a in addrs {
            if let Ok(r) = http
                .get(format!("{}://{a}/cluster", crate::common::scheme()))
                .send()
                .await
            {
                if let Ok(v) = r.json::<serde_json::Value>().await {
                    let n = v["members"]
                        .as_array()
                        .map(|m| m.iter().filter(|x| x["voter"] == true).count())
                        .unwrap_or(0);
                    if v["role"] == "leader" && n >= voters {
                        return Ok(a.clone());
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the cluster did not elect a leader with {voters} voters within 60 s")
}

/// The p-th percentile of sorted microsecond samples, in ms.
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

/// VmRSS of a process, MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    status_mib(pid, "VmRSS:")
}

/// A process's resident memory split the way `/proc/<pid>/status` splits it, MiB: `RssAnon` is
/// heap and stacks (what the process holds), `RssFile` is mapped file pages (segment reads
/// through mmap: page cache the kernel reclaims under pressure), `RssShmem` shared memory.
/// `VmRSS` is their sum, so it alone cannot tell a leak from a warm page cache.
pub fn memory_json(pid: u32) -> serde_json::Value {
    serde_json::json!({
        "vm_rss_mib": status_mib(pid, "VmRSS:"),
        "rss_anon_mib": status_mib(pid, "RssAnon:"),
        "rss_file_mib": status_mib(pid, "RssFile:"),
        "rss_shmem_mib": status_mib(pid, "RssShmem:"),
        "vm_hwm_mib": status_mib(pid, "VmHWM:"),
        // Transparent huge pages among the anonymous memory (a 2 MiB page counts whole even
        // when little of it is in use).
        "anon_huge_pages_mib": kib_field_mib(&format!("/proc/{pid}/smaps_rollup"), "AnonHugePages:"),
    })
}

/// A `Key:   123 kB` line of a /proc file, in MiB.
fn kib_field_mib(path: &str, key: &str) -> Option<f64> {
    let s = std::fs::read_to_string(path).ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The process's peak resident set (`VmHWM`) in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    status_mib(pid, "VmHWM:")
}

fn status_mib(pid: u32, key: &str) -> Option<f64> {
    kib_field_mib(&format!("/proc/{pid}/status"), key)
}

/// Waits (up to 10 min) until the node at `addr` has applied everything in its log: the
/// applied offset the API serves from (`/fetch`'s) reaches `/cluster`'s `last_log_offset`.
/// (`/cluster`'s `applied_offset`, openraft's metric, runs ahead of it during a replay.)
pub async fn wait_applied_to_log_end(http: &reqwest::Client, addr: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    let v: serde_json::Value = http
        .get(format!("{}://{addr}/cluster", crate::common::scheme()))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let last = v["last_log_offset"].as_u64().unwrap_or(0);
    while Instant::now() < deadline {
        if applied_offset(http, addr).await? >= last {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("{addr} did not apply its log up to {last} within 600 s")
}

/// This node's applied offset (the offset `/get_metadata` reports).
pub async fn applied_offset(http: &reqwest::Client, addr: &str) -> anyhow::Result<u64> {
    let v: serde_json::Value = http
        .get(format!(
            "{}://{addr}/fetch?offset=end&max_records=1",
            crate::common::scheme()
        ))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(v["next_offset"].as_u64().unwrap_or(1).saturating_sub(1))
}

pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The TLS the bench talks with (`--tls` or `--cacert`); unset: plain HTTP.
static TLS: std::sync::OnceLock<yakt::tls::ClientTls> = std::sync::OnceLock::new();

/// Makes every later client of the bench speak HTTPS trusting `tls`'s CA.
pub fn use_tls(tls: yakt::tls::ClientTls) {
    let _ = TLS.set(tls);
}

/// `http` or `https`, as set by [`use_tls`].
pub fn scheme() -> &'static str {
    yakt::tls::client::scheme(TLS.get())
}

/// A client builder with the bench's TLS applied.
pub fn client_builder() -> reqwest::ClientBuilder {
    match TLS.get() {
        Some(t) => t.apply(reqwest::Client::builder()),
        None => reqwest::Client::builder(),
    }
}

/// For `--spawn` with `--tls`: a throwaway CA and one certificate all spawned nodes serve (for
/// 127.0.0.1), in `dir`; returns the `yakt node` flags that use them and the CA's path.
pub fn spawn_tls_args(dir: &Path) -> anyhow::Result<(Vec<String>, PathBuf)> {
    let ca = yakt::tls::generate::Ca::new("yakt-bench CA")?;
    let ca_path = dir.join("ca.crt");
    ca.write(&ca_path)?;
    let node = ca.issue_into(dir, "node")?;
    let args = vec![
        format!("--tls-cert={}", node.cert.display()),
        format!("--tls-key={}", node.key.display()),
        format!("--peer-ca={}", ca_path.display()),
    ];
    Ok((args, ca_path))
}
