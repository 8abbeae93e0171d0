//! TLS on real processes: a cluster whose nodes serve HTTPS and talk to each other over TLS
//! with a peer CA; plain HTTP refused; mutual TLS for the API; peers with certificates from
//! another CA kept out; a certificate swapped on disk served to new connections while an open
//! stream keeps delivering.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use futures::StreamExt;
use support::{eventually, Cluster};
use yakt::tls::generate::Ca;
use yakt::tls::{CertStore, ClientTls};

/// Certificates of the tests, under `<cluster dir>/certs`: `ca.crt` signs node-1..3, node-5
/// and `client`; another CA (`rogue-ca.crt`) signs node-4 and `rogue-client`.
fn make_certs(dir: &Path) -> (PathBuf, Ca) {
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).expect("certs dir");
    let ca = Ca::new("yakt test CA").expect("CA");
    ca.write(&certs.join("ca.crt")).expect("write CA");
    let rogue = Ca::new("another CA").expect("rogue CA");
    rogue
        .write(&certs.join("rogue-ca.crt"))
        .expect("write rogue CA");
    for name in ["node-1", "node-2", "node-3", "node-5", "client"] {
        ca.issue_into(&certs, name).expect("issue");
    }
    for name in ["node-4", "rogue-client"] {
        rogue.issue_into(&certs, name).expect("issue");
    }
    (certs, ca)
}

fn cert_args(dir: &Path, id: u64) -> Vec<String> {
    let c = dir.join("certs");
    vec![
        "--tls-cert".into(),
        c.join(format!("node-{id}.crt")).display().to_string(),
        "--tls-key".into(),
        c.join(format!("node-{id}.key")).display().to_string(),
        "--peer-ca".into(),
        c.join("ca.crt").display().to_string(),
    ]
}

fn mtls_args(dir: &Path, id: u64) -> Vec<String> {
    let mut a = cert_args(dir, id);
    a.push("--tls-client-ca".into());
    a.push(dir.join("certs/ca.crt").display().to_string());
    a
}

/// An HTTPS client trusting `certs/ca.crt`, presenting `certs/<identity>.crt` when given.
fn client(certs: &Path, identity: Option<&str>) -> reqwest::Client {
    let id = identity.map(|n| {
        CertStore::load(
            &certs.join(format!("{n}.crt")),
            &certs.join(format!("{n}.key")),
        )
        .expect("client identity")
    });
    let tls = ClientTls::new(&certs.join("ca.crt"), id).expect("client TLS");
    tls.apply(reqwest::Client::builder())
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client")
}

/// A cluster whose nodes get per-node TLS flags from `args`, with an HTTPS client.
fn tls_cluster(args: fn(&Path, u64) -> Vec<String>, extra: &[&str]) -> (Cluster, PathBuf, Ca) {
    let mut c = Cluster::empty(extra);
    let (certs, ca) = make_certs(c.dir.path());
    c.scheme = "https";
    c.node_args = Some(args);
    c.http = client(&certs, Some("client"));
    (c, certs, ca)
}

/// The DER of the certificate the node at `addr` serves to a new connection.
async fn served_cert(addr: &str, certs: &Path) -> Vec<u8> {
    let tls = ClientTls::new(&certs.join("ca.crt"), None).expect("client TLS");
    let connector = tokio_rustls::TlsConnector::from(tls.config());
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let conn = connector.connect(name, tcp).await.expect("handshake");
    conn.get_ref().1.peer_certificates().expect("a certificate")[0].to_vec()
}

/// Status of a request, 0 when no HTTP answer came (refused handshake, closed connection).
async fn status(req: reqwest::RequestBuilder) -> u16 {
    match req.send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// Reads an open SSE response until its text contains `needle`.
async fn read_until(
    body: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    seen: &mut String,
    needle: &str,
) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while !seen.contains(needle) {
            match body.next().await {
                Some(Ok(chunk)) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                other => panic!("stream ended before {needle:?}: {other:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{needle:?} not on the stream within 20 s"));
}

#[tokio::test]
#[ignore = "slow: a three-node cluster over TLS"]
async fn three_nodes_over_tls_elect_replicate_and_stream() {
    let (mut c, certs, _) = tls_cluster(cert_args, &[]);
    for _ in 0..3 {
        c.add_node();
    }
    c.wait_voters(3, Duration::from_secs(40)).await;
    let leader = c.leader(Duration::from_secs(20)).await;
    let offset = c.create_topic(leader, "over-tls").await;
    for i in 0..3 {
        c.wait_applied(i, offset, Duration::from_secs(20)).await;
    }
    // A follower answers from its own replicated image.
    let follower = (leader + 1) % 3;
    let records = serde_json::to_string(&c.records_from(follower, 0).await).expect("json");
    assert!(records.contains("over-tls"), "follower's log: {records}");
    // A write sent to a follower is forwarded to the leader over HTTPS (with the peer identity).
    let forwarded = c.create_topic(follower, "forwarded-over-tls").await;
    c.wait_applied(leader, forwarded, Duration::from_secs(20))
        .await;

    // curl, as docs/operations.md shows it, reads the stream over HTTPS.
    let out = Command::new("curl")
        .args(["-sS", "-N", "--max-time", "3", "--cacert"])
        .arg(certs.join("ca.crt"))
        .arg(format!(
            "https://{}/stream?offset=0",
            c.nodes[follower].addr
        ))
        .output()
        .expect("curl is installed (.ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("over-tls"),
        "curl --cacert /stream: {text} / {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Plain HTTP on the TLS address gets no HTTP answer.
    let plain = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let url = format!("http://{}/cluster", c.nodes[leader].addr);
    assert_eq!(status(plain.get(&url)).await, 0, "plain HTTP was answered");

    // Raft RPCs need a peer certificate: none, or one from another CA, is refused.
    let vote = format!("https://{}/raft/vote", c.nodes[leader].addr);
    let no_cert = client(&certs, None);
    assert_eq!(status(no_cert.post(&vote).body(vec![0u8; 4])).await, 403);
    let rogue = client(&certs, Some("rogue-client"));
    assert_eq!(
        status(rogue.post(&vote).body(vec![0u8; 4])).await,
        0,
        "a certificate from another CA completed a handshake"
    );
    let join = format!("https://{}/raft/join", c.nodes[leader].addr);
    assert_eq!(
        status(rogue.post(&join).json(&serde_json::json!({}))).await,
        0
    );

    // A node whose certificate another CA signed (node-4) cannot join; a proper one (node-5)
    // joins meanwhile, so the cluster was admitting nodes all along.
    let rogue_node = c.add_node();
    let good_node = c.add_node();
    c.wait_voters(4, Duration::from_secs(40)).await;
    let view = c.cluster_view(leader).await.expect("cluster view");
    let members = view.to_string();
    assert!(
        !c.nodes[leader].log().contains("node=4"),
        "the leader dealt with node 4: {}",
        c.nodes[leader].log()
    );
    assert!(members.contains(&c.nodes[good_node].addr), "{members}");
    assert!(!members.contains(&c.nodes[rogue_node].addr), "{members}");
}

#[tokio::test]
#[ignore = "slow: starts a node"]
async fn mutual_tls_refuses_clients_without_a_certificate() {
    let (mut c, certs, _) = tls_cluster(mtls_args, &["--token", "s3cret"]);
    c.add_node();
    c.wait_voters(1, Duration::from_secs(30)).await;
    let url = format!("https://{}/cluster", c.nodes[0].addr);
    assert_eq!(status(c.http.get(&url)).await, 200);
    assert_eq!(status(client(&certs, None).get(&url)).await, 0);
    assert_eq!(
        status(client(&certs, Some("rogue-client")).get(&url)).await,
        0
    );
    // The token is still checked on top of the certificate.
    let create = format!("https://{}/create_topic", c.nodes[0].addr);
    let body = serde_json::json!({"name": "t"});
    assert_eq!(status(c.http.post(&create).json(&body)).await, 401);
    assert_eq!(
        status(c.http.post(&create).bearer_auth("s3cret").json(&body)).await,
        200
    );
}

#[tokio::test]
#[ignore = "slow: starts a node and waits for a certificate reload"]
async fn swapped_certificate_is_served_without_restart_and_open_stream_keeps_going() {
    let (mut c, certs, ca) = tls_cluster(cert_args, &[]);
    c.add_node();
    c.wait_voters(1, Duration::from_secs(30)).await;
    let addr = c.nodes[0].addr.clone();
    let before = served_cert(&addr, &certs).await;
    assert_eq!(
        before,
        rustls_pemfile::certs(&mut std::io::BufReader::new(
            std::fs::File::open(certs.join("node-1.crt")).expect("cert")
        ))
        .next()
        .expect("one cert")
        .expect("pem")
        .to_vec()
    );

    c.create_topic(0, "before-swap").await;
    let resp = c
        .http
        .get(format!("https://{addr}/stream?offset=0"))
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("stream");
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    read_until(&mut body, &mut seen, "before-swap").await;

    // A new certificate from the same CA, put in place the way a renewal tool would.
    let wanted_der = renew_node_1(&certs, &ca);
    assert_ne!(wanted_der, before);
    eventually(
        Duration::from_secs(20),
        "the new certificate served to new connections",
        || {
            let (addr, certs, wanted) = (addr.clone(), certs.clone(), wanted_der.clone());
            async move { (served_cert(&addr, &certs).await == wanted).then_some(()) }
        },
    )
    .await;
    assert!(c.nodes[0].running());
    // The stream opened under the old certificate still delivers.
    c.create_topic(0, "after-swap").await;
    read_until(&mut body, &mut seen, "after-swap").await;
}

/// Renews node-1's certificate in `certs` (written aside, renamed over the old files, as a
/// renewal tool does) and returns the new certificate's DER.
fn renew_node_1(certs: &Path, ca: &Ca) -> Vec<u8> {
    let aside = tempfile::tempdir_in(certs).expect("dir");
    let renewed = ca.issue_into(aside.path(), "node-1").expect("renewal");
    for (from, to) in [
        (&renewed.key, certs.join("node-1.key")),
        (&renewed.cert, certs.join("node-1.crt")),
    ] {
        std::fs::rename(from, to).expect("rename");
    }
    let pem = std::fs::read(certs.join("node-1.crt")).expect("read");
    let der = rustls_pemfile::certs(&mut &pem[..])
        .next()
        .expect("cert")
        .expect("pem")
        .to_vec();
    der
}

#[tokio::test]
#[ignore = "slow: starts a node and waits for a certificate reload"]
async fn sighup_reloads_a_certificate_whose_files_kept_their_modification_times() {
    let (mut c, certs, ca) = tls_cluster(cert_args, &[]);
    c.add_node();
    c.wait_voters(1, Duration::from_secs(30)).await;
    let addr = c.nodes[0].addr.clone();
    let before = served_cert(&addr, &certs).await;
    let mtime = |name: &str| {
        std::fs::metadata(certs.join(name))
            .and_then(|m| m.modified())
            .expect("mtime")
    };
    let (cert_time, key_time) = (mtime("node-1.crt"), mtime("node-1.key"));
    let wanted = renew_node_1(&certs, &ca);
    assert_ne!(wanted, before);
    // Back-dated to the old files' times: the modification-time poll sees nothing new, so only
    // SIGHUP can make the node read them.
    for (name, time) in [("node-1.crt", cert_time), ("node-1.key", key_time)] {
        std::fs::File::options()
            .write(true)
            .open(certs.join(name))
            .and_then(|f| f.set_modified(time))
            .expect("set mtime");
    }
    assert_eq!(
        (mtime("node-1.crt"), mtime("node-1.key")),
        (cert_time, key_time)
    );
    c.nodes[0].signal(libc::SIGHUP);
    eventually(
        Duration::from_secs(20),
        "the certificate read on SIGHUP served to new connections",
        || {
            let (addr, certs, wanted) = (addr.clone(), certs.clone(), wanted.clone());
            async move { (served_cert(&addr, &certs).await == wanted).then_some(()) }
        },
    )
    .await;
    assert!(
        c.nodes[0].running(),
        "SIGHUP reloads, it does not stop the node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: a three-node local cluster over TLS"]
async fn cluster_tls_makes_certificates_and_status_member_and_client_use_cacert() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = support::free_base_port(3);
    let addrs: Vec<String> = (0..3)
        .map(|k| format!("127.0.0.1:{}", base + 10 * k))
        .collect();
    let data = dir.path().join("data");
    let mut args = vec![
        "cluster".to_string(),
        "--tls".into(),
        "--base-port".into(),
        base.to_string(),
        "--data-dir".into(),
        data.display().to_string(),
        "--".into(),
    ];
    args.extend(support::FAST.iter().map(|s| s.to_string()));
    let _cluster = support::spawn_yakt(&args, &dir.path().join("cluster.log"));
    let ca = data.join("tls/ca.crt");
    let yakt = |args: &[&str]| {
        let out = Command::new(support::YAKT)
            .args(args)
            .arg("--cacert")
            .arg(&ca)
            .output()
            .expect("run yakt");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let members = eventually(
        Duration::from_secs(60),
        "three members over TLS",
        || async {
            let (ok, out) = yakt(&["member", "-a", &addrs[0], "list"]);
            (ok && addrs.iter().all(|a| out.contains(a))).then_some(out)
        },
    )
    .await;
    let (ok, status) = yakt(&["status", "-a", &addrs[1]]);
    assert!(ok, "yakt status --cacert: {status}");
    // Without --cacert the operator commands cannot talk to a TLS node.
    let plain = Command::new(support::YAKT)
        .args(["status", "-a", &addrs[1]])
        .output()
        .expect("run yakt");
    assert!(!plain.status.success(), "plain status answered: {members}");

    let http = client_for(&ca);
    eventually(
        Duration::from_secs(30),
        "a topic created over TLS",
        || async {
            let r = http
                .post(format!("https://{}/create_topic", addrs[0]))
                .json(&serde_json::json!({"name": "via-cluster-tls"}))
                .send()
                .await
                .ok()?;
            r.status().is_success().then_some(())
        },
    )
    .await;
    let tls = ClientTls::new(&ca, None).expect("client TLS");
    let mut stream = yakt::client::StreamClient::with_tls(
        [addrs[2].as_str()],
        yakt::client::StreamOptions::default(),
        &tls,
    )
    .expect("stream client");
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let item = stream.next().await.expect("stream item");
            if format!("{item:?}").contains("via-cluster-tls") {
                break;
            }
        }
    })
    .await
    .expect("the Rust client read the topic over HTTPS");
}

fn client_for(ca: &Path) -> reqwest::Client {
    ClientTls::new(ca, None)
        .expect("client TLS")
        .apply(reqwest::Client::builder())
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client")
}
