//! `yakt-bench`: the load tool.
//!
//! * `write`: C concurrent writers over persistent HTTP connections for D seconds write realistic
//!   records (topics, partitions, broker changes) to a running cluster (or one it starts itself
//!   with `--spawn N`), then it prints committed records/s and latency percentiles.
//! * `tail`: S SSE readers on one node (`--read-from all`: spread over every node) while writers
//!   run at `--rate` records/s (default half of an unthrottled 5 s write run): delivery lag from
//!   the leader's record timestamp to receipt.
//! * `catchup`: a one-node cluster with a log of `--records R` (pre-filled by C writers), then one
//!   reader from offset 0 over `/stream` and over `/fetch` pages: records/s.
//! * `restart`: the same node restarted on that data directory: time from process start to
//!   serving reads (applied offset back at the pre-stop offset and `/get_all_brokers` answered
//!   from the image), VmRSS then; after that one full `/get_metadata` (time, bytes, peak RSS).
//! * `brokers`: `--brokers N` simulated KRaft brokers (register FENCED, heartbeat every 2 s with
//!   the offset a shared `/stream` reader reached, lead partitions; 1% stop, 1% shut down):
//!   heartbeat latency, unfence and fence delays, false fences, the leader's CPU; with
//!   `--tailers N`, N more `/stream` readers tail the log over the nodes meanwhile.
//! * `stall`: a one-node cluster with an image of `--entities N` (default 1,000,000; pre-filled
//!   by C writers, or reused from `--data-root`), then writers at `--rate` (default 2,000/s) for
//!   `-d` seconds while snapshots are taken (`--snapshot-every 1` unless given) and full
//!   `/get_metadata` reads run in a loop: write p50/p99/max and how many of each happened.
//!
//! `--yakt-bin PATH` makes `--spawn` (and catchup/restart) run that `yakt` binary instead of the
//! one next to `yakt-bench`, so one bench build measures an older server for a before/after.
//!
//! `--json` prints the result as one JSON object; a progress line goes to stderr meanwhile.

mod brokers;
mod catchup;
mod common;
mod sse;
mod stall;
mod tail;
mod write;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{Parser, ValueEnum};

/// Load generator for a yakt cluster.
#[derive(Parser, Debug)]
#[command(name = "yakt-bench", version, about)]
struct Args {
    /// What to measure.
    #[arg(value_enum, default_value_t = Mode::Write)]
    mode: Mode,
    /// Node addresses (HOST:PORT), comma-separated; writers spread over them.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:5010")]
    addrs: Vec<String>,
    /// Start a local cluster of this many nodes in a temporary directory instead.
    #[arg(long)]
    spawn: Option<usize>,
    /// Concurrent writers.
    #[arg(short = 'c', long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds to run (write, tail).
    #[arg(short = 'd', long, default_value_t = 10)]
    duration: u64,
    /// Send writes to the leader only (as a client that follows redirects would).
    #[arg(long)]
    leader_only: bool,
    /// tail: SSE readers.
    #[arg(long, default_value_t = 100)]
    readers: usize,
    /// tail: total write rate, records/s [default: half of an unthrottled 5 s write run].
    #[arg(long)]
    rate: Option<f64>,
    /// tail: read from the leader instead of a follower.
    #[arg(long)]
    read_leader: bool,
    /// tail: which nodes the readers connect to: `one` (a follower, or the leader with
    /// --read-leader) or `all` (spread round-robin over every node).
    #[arg(long, value_enum, default_value_t = ReadFrom::One)]
    read_from: ReadFrom,
    /// brokers: `/stream` readers tailing from the end meanwhile, spread over the nodes.
    #[arg(long, default_value_t = 0)]
    tailers: usize,
    /// The `yakt` binary `--spawn` starts [default: the one next to yakt-bench].
    #[arg(long)]
    yakt_bin: Option<PathBuf>,
    /// catchup, restart: records in the log.
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    /// catchup, restart: data root to build the log in and reuse (kept); a temp dir otherwise.
    #[arg(long)]
    data_root: Option<PathBuf>,
    /// catchup, restart: measurements to take (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Extra flags for spawned `yakt node`s, e.g. `--node-arg=--snapshot-every=100000000`.
    #[arg(long, allow_hyphen_values = true)]
    node_arg: Vec<String>,
    /// write, tail with --spawn: the nodes serve HTTPS and talk TLS to each other (a throwaway
    /// CA), and the bench speaks HTTPS to them.
    #[arg(long)]
    tls: bool,
    /// Talk HTTPS to the nodes at --addrs, trusting this CA (PEM).
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// brokers: simulated brokers.
    #[arg(long, default_value_t = 100)]
    brokers: usize,
    /// brokers: the nodes' --broker-session-timeout (passed to spawned nodes), seconds.
    #[arg(long, default_value_t = 9)]
    session_timeout: u64,
    /// Print the result as JSON.
    /// `stall`: entities (records) the image is pre-filled to.
    #[arg(long, default_value_t = 1_000_000)]
    entities: u64,
    /// `stall`: concurrent full `/get_metadata` loops (0 for a baseline without them).
    #[arg(long, default_value_t = 1)]
    metadata_readers: usize,
    #[arg(long)]
    json: bool,
}

/// Where `tail`'s readers connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ReadFrom {
    /// One node.
    One,
    /// Every node, round-robin.
    All,
}

/// Benchmark modes.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    /// Committed writes/s and latency.
    Write,
    /// SSE delivery lag with S readers while writes run.
    Tail,
    /// One reader from offset 0: records/s over /stream and /fetch.
    Catchup,
    /// Time to serve reads after a restart, and RSS.
    Restart,
    /// N simulated brokers heartbeating: liveness latencies, false fences, leader CPU.
    Brokers,
    Stall,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if let Some(bin) = args.yakt_bin.take() {
        common::use_yakt_binary(bin)?;
    }
    let tls_dir = tempfile::tempdir()?;
    if args.tls {
        if args.spawn.is_none() {
            bail!("--tls is for --spawn; give --cacert for a running TLS cluster");
        }
        let (node_args, ca) = common::spawn_tls_args(tls_dir.path())?;
        args.node_arg.extend(node_args);
        args.cacert = Some(ca);
    }
    if let Some(ca) = &args.cacert {
        common::use_tls(yakt::tls::ClientTls::new(ca, None)?);
    }
    let http = common::client_builder()
        .no_proxy()
        .pool_max_idle_per_host(args.concurrency.max(1))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .build()?;
    let result = match args.mode {
        Mode::Write | Mode::Tail => {
            let spawned = match args.spawn {
                Some(n) => Some(common::spawn_cluster(n, None, &args.node_arg)?),
                None => None,
            };
            let addrs = spawned
                .as_ref()
                .map(|s| s.addrs.clone())
                .unwrap_or_else(|| args.addrs.clone());
            let voters = args.spawn.unwrap_or(1);
            let leader = common::wait_ready(&http, &addrs, voters).await?;
            let targets = if args.leader_only {
                vec![leader.clone()]
            } else {
                addrs.clone()
            };
            if let Mode::Write = args.mode {
                let setup = write::setup(&http, &leader).await?;
                let r = write::run_for(
                    &http,
                    &targets,
                    args.concurrency,
                    args.rate,
                    args.duration as f64,
                    &setup,
                    args.json,
                )
                .await;
                if !args.json {
                    write::print_write(&r);
                }
                r
            } else {
                let read_addrs = if args.read_from == ReadFrom::All {
                    addrs.clone()
                } else if args.read_leader {
                    vec![leader.clone()]
                } else {
                    vec![addrs
                        .iter()
                        .find(|a| **a != leader)
                        .cloned()
                        .unwrap_or_else(|| leader.clone())]
                };
                // Stream readers hold no timeout: a separate client.
                let r = tail::run(
                    &http,
                    &leader,
                    &read_addrs,
                    &targets,
                    args.readers,
                    args.rate,
                    args.concurrency,
                    args.duration,
                    args.json,
                )
                .await?;
                if !args.json {
                    tail::print(&r);
                }
                r
            }
        }
        Mode::Brokers => {
            let mut node_args = args.node_arg.clone();
            node_args.push(format!(
                "--broker-session-timeout={}s",
                args.session_timeout
            ));
            let spawned = match args.spawn {
                Some(n) => Some(common::spawn_cluster(n, None, &node_args)?),
                None => None,
            };
            let addrs = spawned
                .as_ref()
                .map(|s| s.addrs.clone())
                .unwrap_or_else(|| args.addrs.clone());
            let leader = common::wait_ready(&http, &addrs, args.spawn.unwrap_or(1)).await?;
            let leader_pid = spawned.as_ref().and_then(|s| {
                let i = s.addrs.iter().position(|a| *a == leader)?;
                Some(s.children[i].id())
            });
            let r = brokers::run(&brokers::Setup {
                http: &http,
                addrs: &addrs,
                leader: &leader,
                leader_pid,
                brokers: args.brokers,
                tailers: args.tailers,
                steady_secs: args.duration,
                session_timeout: Duration::from_secs(args.session_timeout),
                quiet: args.json,
            })
            .await?;
            if !args.json {
                brokers::print(&r);
            }
            r
        }
        Mode::Catchup | Mode::Restart | Mode::Stall => {
            if args.spawn.is_some_and(|n| n != 1) {
                bail!("catchup, restart and stall run one node of their own");
            }
            let tmp;
            let root = match &args.data_root {
                Some(r) => r.clone(),
                None => {
                    tmp = tempfile::tempdir()?;
                    tmp.path().to_path_buf()
                }
            };
            let long = common::client_builder()
                .no_proxy()
                .pool_max_idle_per_host(args.concurrency.max(1))
                .tcp_nodelay(true)
                .build()?;
            let mut extra = args.node_arg.clone();
            if let Mode::Stall = args.mode {
                if !extra.iter().any(|a| a.starts_with("--snapshot-every")) {
                    extra.push("--snapshot-every=1".into());
                }
            }
            let bench = catchup::LogBench {
                root: &root,
                records: match args.mode {
                    Mode::Stall => args.entities,
                    _ => args.records,
                },
                concurrency: args.concurrency,
                extra: &extra,
                repeat: args.repeat,
                quiet: args.json,
            };
            if let Mode::Stall = args.mode {
                let run = stall::StallRun {
                    rate: args.rate.unwrap_or(2_000.0),
                    concurrency: args.concurrency,
                    secs: args.duration,
                    metadata_readers: args.metadata_readers,
                };
                let r = stall::run(&http, &long, &bench, &run).await?;
                if args.json {
                    println!("{r}");
                } else {
                    stall::print(&r);
                }
                return Ok(());
            }
            let r = if let Mode::Catchup = args.mode {
                catchup::catchup(&long, &bench).await?
            } else {
                catchup::restart(&long, &bench).await?
            };
            if !args.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            }
            r
        }
    };
    if args.json {
        println!("{result}");
    }
    Ok(())
}
