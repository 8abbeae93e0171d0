//! A follower whose newest snapshot is damaged while it is down, with the log below it purged:
//! it must start from the older snapshot it kept (or refuse, naming the file), and end up with
//! every acknowledged topic. It must never serve an empty image in place of its data.

mod support;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{eventually, Cluster};

const SECS_60: Duration = Duration::from_secs(60);

fn snapshot_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data_dir.join("snapshots"))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "snap"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn topic_names(v: &serde_json::Value) -> Vec<String> {
    v["metadata"]["TopicRecord"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_newest_snapshot_falls_back_to_the_older_one() {
    let mut c = Cluster::start(3, &["--snapshot-every", "40", "--keep-after-snapshot", "5"]).await;
    let leader = c.leader(SECS_60).await;
    let f = (leader + 1) % 3;
    let mut acked = Vec::new();
    // Write until the follower holds two snapshots and has purged its log.
    let deadline = std::time::Instant::now() + SECS_60;
    let mut n = 0;
    loop {
        for _ in 0..20 {
            let name = format!("snaprec-{n:05}");
            n += 1;
            c.create_topic(leader, &name).await;
            acked.push(name);
        }
        let purged = c.data_dir(f).join("log").join("last_purged").exists();
        if snapshot_files(c.data_dir(f)).len() >= 2 && purged {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no second snapshot and purge on the follower after {n} topics"
        );
    }
    let head = c.cluster_view(leader).await.expect("leader view")["applied_offset"]
        .as_u64()
        .expect("applied offset");
    c.wait_applied(f, head, SECS_60).await;

    c.nodes[f].kill();
    let snaps = snapshot_files(c.data_dir(f));
    let newest = snaps.last().expect("a snapshot").clone();
    let intact = std::fs::read(&newest).expect("read the snapshot");
    let len = intact.len() as u64;
    let at = len / 2;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&newest)
        .expect("open snapshot");
    let mut b = [0u8; 4];
    file.read_exact_at(&mut b, at).expect("read");
    for x in &mut b {
        *x ^= 0xff;
    }
    file.write_all_at(&b, at).expect("flip four bytes");
    file.sync_all().expect("sync");
    drop(file);

    // Acknowledged while the follower is down.
    for i in 0..10 {
        let name = format!("snaprec-down-{i:03}");
        c.create_topic(leader, &name).await;
        acked.push(name);
    }

    c.nodes[f].spawn();
    let newest_name = newest
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .expect("name");
    let node = f;
    let outcome = eventually(SECS_60, "the follower refuses or holds every topic", || {
        let c = &c;
        let acked = &acked;
        let newest_name = &newest_name;
        async move {
            let (s, v) = c.get(node, "/get_metadata").await;
            if s == 200 {
                let names = topic_names(&v);
                assert!(
                    !names.is_empty(),
                    "the restarted follower served an empty image: {v}"
                );
                if acked.iter().all(|a| names.contains(a)) {
                    return Some("started");
                }
            }
            let log = c.nodes[node].log();
            (log.contains("cannot load the newest snapshot") && log.contains(newest_name.as_str()))
                .then_some("refused")
        }
    })
    .await;
    let log = c.nodes[f].log();
    if outcome == "refused" {
        assert!(!c.nodes[f].running(), "a refusing node exits");
    } else {
        assert!(
            log.contains("snapshot fails verification") && log.contains(&newest_name),
            "the skipped file is named at WARN: {log}"
        );
        let mut corrupt_name = newest.clone().into_os_string();
        corrupt_name.push(".corrupt");
        let set_aside =
            std::fs::read(&corrupt_name).expect("the damaged file is set aside as *.corrupt");
        assert_ne!(set_aside, intact, "the file set aside is the damaged one");
        // Having replayed its log past that offset, the follower may write (or be sent) a new
        // snapshot at the same offset and term, under the same name. The encoding is
        // deterministic, so such a file must equal the one before the damage.
        if let Ok(now) = std::fs::read(&newest) {
            assert!(
                now == intact,
                "a snapshot under the damaged file's name is a good one, rebuilt"
            );
        }
    }
    println!("follower {}: {outcome}", c.nodes[f].id);
}
