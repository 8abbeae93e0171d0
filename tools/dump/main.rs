//! `yakt-dump`: print and verify yakt segment, snapshot, vote and last-purged files offline,
//! like Kafka's `kafka-dump-log`. Read-only: it opens files for reading and never modifies
//! them, so it is safe to run against a live node's data directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Parser;
use serde_json::{json, Value};

use yakt::storage::frame::{scan_segment, BadRegion, ScannedFrame, SegmentScan};
use yakt::storage::log::{decode_last_purged, LAST_PURGED_FILE_NAME, LAST_PURGED_MAGIC};
use yakt::storage::recovering::{decode_recovering, RECOVERING_FILE_NAME, RECOVERING_MAGIC};
use yakt::storage::snapshot::{decode_snapshot, decode_snapshot_header, parse_snapshot_file_name};
use yakt::storage::vote::{VOTE_FILE_NAME, VOTE_MAGIC};
use yakt::storage::{decode_meta, parse_segment_file_name};

use yakt::raft::codec;

mod image;

const AFTER_HELP: &str = r#"PATH may be a segment file (<20-digit index>.log), a snapshot file (<offset>-<term>.snap), a log
directory, or a data directory (walks log/ and snapshots/, and reports log/last_purged and vote).

--verify checks every CRC from the raw bytes (independent of the log's recovery) and exits 1,
naming the file, byte offset and index, if any frame fails its CRC or is malformed AND valid data
follows it (corruption), if a snapshot/vote/last-purged file fails its checks, or if entry
indexes are not contiguous. A bad or cut-short last frame at the end of the newest segment (a
torn tail, which the node truncates at start) is reported as a warning and does not fail
--verify. Zero bytes after the last frame are the normal end of a preallocated segment.

--image prints the metadata image of a data directory as JSON, exactly what
`GET /get_metadata?at_offset=OFFSET` answers on the node: {"epoch", "metadata", "offset"}, where
offset is the last record at or below OFFSET. It starts from the newest kept snapshot at or below
OFFSET and folds the committed entries after it (the same rebuild the node runs). Without --at it
is the image at the committed watermark. It reads without taking the directory's lock and changes
nothing, so it works on a running node's directory too.

Examples:
  yakt-dump data/node-1                        every entry, snapshot and small file, as text
  yakt-dump --verify data/node-1               check every CRC
  yakt-dump --image data/node-1                the image at the last committed offset
  yakt-dump --image --at 1200 data/node-1      the image right after offset 1200

Exit codes: 0 clean (or dump without --verify), 1 verification failed (or, with --image, the
offset is compacted or past the committed end, the message names the range), 2 usage or I/O
error."#;

/// Dump and verify yakt storage files.
#[derive(Parser, Debug)]
#[command(name = "yakt-dump", version, after_help = AFTER_HELP)]
struct Args {
    /// Segment file, snapshot file, log directory or data directory.
    path: PathBuf,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    /// Check every CRC; exit 1 on corruption (torn tails are warnings).
    #[arg(long)]
    verify: bool,
    /// First index to print (inclusive).
    #[arg(long)]
    from: Option<u64>,
    /// Last index to print (inclusive).
    #[arg(long)]
    to: Option<u64>,
    /// Print the metadata image of the data directory PATH as JSON (see below).
    #[arg(long, conflicts_with_all = ["verify", "json", "from", "to"])]
    image: bool,
    /// With --image: the offset to rebuild the image at (default: the committed end).
    #[arg(long, requires = "image", value_name = "OFFSET")]
    at: Option<u64>,
}

struct Out {
    json: bool,
    failures: usize,
    /// Entries <= this index are logically purged (from `log/last_purged`), marked as such.
    purged_upto: Option<u64>,
}

impl Out {
    fn line(&self, text: String, obj: Value) {
        if self.json {
            println!("{obj}");
        } else {
            println!("{text}");
        }
    }
    fn fail(&mut self, text: String, obj: Value) {
        self.failures += 1;
        self.line(format!("ERROR {text}"), obj);
    }
}

fn ts_text(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .map_or_else(
            || format!("invalid({ms})"),
            |d| d.to_rfc3339_opts(SecondsFormat::Millis, true),
        )
}

fn ts_json(ms: u64) -> Value {
    if ms == 0 {
        Value::Null
    } else {
        Value::String(ts_text(ms))
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.image {
        return image::print(&args.path, args.at);
    }
    match run(&args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("yakt-dump: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Returns the number of verification failures (only counted with --verify).
fn run(args: &Args) -> Result<usize> {
    let mut out = Out {
        json: args.json,
        failures: 0,
        purged_upto: None,
    };
    let meta = fs::metadata(&args.path).with_context(|| format!("stat {}", args.path.display()))?;
    if meta.is_dir() {
        let log_dir = args.path.join("log");
        let snap_dir = args.path.join("snapshots");
        if log_dir.is_dir() || snap_dir.is_dir() || args.path.join(VOTE_FILE_NAME).exists() {
            if log_dir.is_dir() {
                dump_log_dir(args, &mut out, &log_dir)?;
            }
            if snap_dir.is_dir() {
                for p in list(&snap_dir, |n| parse_snapshot_file_name(n).is_some())? {
                    dump_snapshot(&mut out, &p)?;
                }
            }
            dump_vote(&mut out, &args.path.join(VOTE_FILE_NAME))?;
            let mark = args.path.join(RECOVERING_FILE_NAME);
            if mark.exists() {
                dump_recovering(&mut out, &mark)?;
            }
        } else {
            dump_log_dir(args, &mut out, &args.path)?;
        }
    } else {
        let name = args
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.ends_with(".snap") {
            dump_snapshot(&mut out, &args.path)?;
        } else if name == VOTE_FILE_NAME {
            dump_vote(&mut out, &args.path)?;
        } else if name == RECOVERING_FILE_NAME {
            dump_recovering(&mut out, &args.path)?;
        } else if name == LAST_PURGED_FILE_NAME {
            dump_last_purged(&mut out, &args.path)?;
        } else {
            // A lone segment file is treated as the newest: a torn tail is a warning.
            dump_segment(args, &mut out, &args.path, true, &mut None)?;
        }
    }
    Ok(if args.verify { out.failures } else { 0 })
}

fn list(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("read dir {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| keep(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    v.sort();
    Ok(v)
}

fn dump_log_dir(args: &Args, out: &mut Out, dir: &Path) -> Result<()> {
    let segs = list(dir, |n| parse_segment_file_name(n).is_some())?;
    // The newest segment that holds data is the one whose tail may be torn.
    let mut newest_with_data = None;
    for p in segs.iter().rev() {
        let bytes = fs::read(p).with_context(|| format!("read {}", p.display()))?;
        if bytes.iter().any(|&b| b != 0) {
            newest_with_data = Some(p.clone());
            break;
        }
    }
    let lp = dir.join(LAST_PURGED_FILE_NAME);
    out.purged_upto = fs::read(&lp)
        .ok()
        .and_then(|b| {
            decode_meta(LAST_PURGED_MAGIC, &b)
                .ok()
                .and_then(decode_last_purged)
        })
        .map(|id| id.index);
    let intent = dir.join(yakt::storage::truncation::TRUNCATING_FILE_NAME);
    if intent.exists() {
        // The node finishes this truncation at start, before classifying anything: zeros
        // followed by frames past the kept index are its half-done work, not corruption.
        let text = format!(
            "WARNING {} exists: a truncation was interrupted; the node finishes it at start (errors past the index it keeps are what it repairs)",
            intent.display()
        );
        out.line(
            text,
            json!({"type": "truncation_intent", "file": intent.display().to_string()}),
        );
    }
    let mut expected = None;
    for p in &segs {
        dump_segment(
            args,
            out,
            p,
            Some(p) == newest_with_data.as_ref(),
            &mut expected,
        )?;
    }
    dump_last_purged(out, &lp)
}

fn entry_line(out: &Out, path: &Path, buf: &[u8], f: &ScannedFrame) {
    let payload = buf.get(f.payload_range()).unwrap_or(&[]);
    let (name, fields) = codec::describe_payload(payload);
    let purged = out.purged_upto.is_some_and(|p| f.index <= p);
    let text = format!(
        "index={} term={} timestamp={} size={} crc=ok pos={} {} {}{}",
        f.index,
        f.term,
        ts_text(f.timestamp_ms),
        f.payload_len,
        f.pos,
        name,
        fields,
        if purged { " (purged)" } else { "" }
    );
    let obj = json!({
        "type": "entry", "file": path.display().to_string(), "pos": f.pos,
        "index": f.index, "term": f.term, "timestamp_ms": f.timestamp_ms, "timestamp": ts_json(f.timestamp_ms),
        "size": f.payload_len, "crc_ok": true, "name": name, "fields": fields, "purged": purged,
    });
    out.line(text, obj);
}

fn bad_line(out: &mut Out, path: &Path, b: &BadRegion, verify_failure: bool) {
    let idx = b.index.map_or("?".to_string(), |i| i.to_string());
    let text = format!(
        "{} at byte {} index={} crc=BAD: {} ({} bytes)",
        path.display(),
        b.pos,
        idx,
        b.reason,
        b.len
    );
    let obj = json!({
        "type": "bad_frame", "file": path.display().to_string(), "pos": b.pos, "index": b.index,
        "crc_ok": false, "reason": b.reason, "bytes": b.len,
    });
    if verify_failure {
        out.fail(text, obj);
    } else {
        out.line(format!("BAD {text}"), obj);
    }
}

fn dump_segment(
    args: &Args,
    out: &mut Out,
    path: &Path,
    newest: bool,
    expected: &mut Option<u64>,
) -> Result<()> {
    let buf = fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let base = path
        .file_name()
        .and_then(|n| parse_segment_file_name(&n.to_string_lossy()));
    let scan: SegmentScan = scan_segment(&buf);
    let in_range = |i: u64| args.from.is_none_or(|f| i >= f) && args.to.is_none_or(|t| i <= t);
    // Interleave frames and bad regions in file order.
    if let (Some(b), Some(e)) = (base, *expected) {
        if b != e && !scan.frames.is_empty() {
            out.fail(
                format!("{} at byte 0: segment starts at index {b} but the previous segment ends at {}", path.display(), e.wrapping_sub(1)),
                json!({"type": "index_gap", "file": path.display().to_string(), "pos": 0, "index": b, "expected": e}),
            );
        }
    }
    let mut bad = scan.corrupt.iter().peekable();
    let mut prev: Option<u64> = None;
    for (k, f) in scan.frames.iter().enumerate() {
        while let Some(b) = bad.next_if(|b| b.pos < f.pos) {
            bad_line(out, path, b, true);
        }
        let want = if k == 0 {
            base.or(*expected)
        } else {
            prev.map(|p| p + 1)
        };
        if let Some(w) = want {
            if f.index != w && scan.corrupt.is_empty() {
                out.fail(
                    format!("{} at byte {} index={}: expected index {w} (gap or disorder)", path.display(), f.pos, f.index),
                    json!({"type": "index_gap", "file": path.display().to_string(), "pos": f.pos, "index": f.index, "expected": w}),
                );
            }
        }
        prev = Some(f.index);
        if in_range(f.index) {
            entry_line(out, path, &buf, f);
        }
    }
    for b in bad {
        bad_line(out, path, b, true);
    }
    if let Some(t) = &scan.torn_tail {
        if newest {
            let text = format!(
                "WARNING torn tail at byte {} in {} ({} bytes): {}",
                t.pos,
                path.display(),
                t.len,
                t.reason
            );
            out.line(text, json!({"type": "torn_tail", "file": path.display().to_string(), "pos": t.pos, "bytes": t.len, "reason": t.reason, "index": t.index}));
        } else {
            bad_line(out, path, t, true);
        }
    }
    if let Some(p) = prev {
        *expected = Some(p + 1);
    }
    let first = scan.frames.first();
    let last = scan.frames.last();
    let first_ts = scan
        .frames
        .iter()
        .map(|f| f.timestamp_ms)
        .find(|&t| t != 0)
        .unwrap_or(0);
    let last_ts = scan
        .frames
        .iter()
        .rev()
        .map(|f| f.timestamp_ms)
        .find(|&t| t != 0)
        .unwrap_or(0);
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |x| x.to_string());
    let text = format!(
        "segment {}: first={} last={} entries={} bytes={} capacity={} first_timestamp={} last_timestamp={} bad={}{}",
        path.display(),
        opt(first.map(|f| f.index)),
        opt(last.map(|f| f.index)),
        scan.frames.len(),
        scan.data_end,
        buf.len(),
        ts_text(first_ts),
        ts_text(last_ts),
        scan.corrupt.len(),
        if scan.torn_tail.is_some() { " torn_tail" } else { "" },
    );
    let obj = json!({
        "type": "segment_summary", "file": path.display().to_string(), "base_index": base,
        "first_index": first.map(|f| f.index), "last_index": last.map(|f| f.index),
        "first_timestamp_ms": first_ts, "last_timestamp_ms": last_ts,
        "first_timestamp": ts_json(first_ts), "last_timestamp": ts_json(last_ts),
        "entries": scan.frames.len(), "bytes": scan.data_end, "capacity": buf.len(),
        "bad_frames": scan.corrupt.len(), "torn_tail": scan.torn_tail.as_ref().map(|t| t.pos),
    });
    out.line(text, obj);
    Ok(())
}

fn dump_snapshot(out: &mut Out, path: &Path) -> Result<()> {
    let buf = fs::read(path).with_context(|| format!("read {}", path.display()))?;
    match decode_snapshot_header(&buf) {
        Err((pos, reason)) => out.fail(
            format!("{} at byte {pos}: not a snapshot: {reason}", path.display()),
            json!({"type": "snapshot", "file": path.display().to_string(), "crc_ok": false, "pos": pos, "reason": reason}),
        ),
        Ok(h) => {
            let view = decode_snapshot(&buf);
            let payload = view.as_ref().ok().map(|v| v.payload);
            let verdict = view.map(|_| ());
            let crc_ok = verdict.is_ok();
            let text = format!(
                "snapshot {}: offset={} term={} meta_bytes={} payload_bytes={} file_bytes={} crc={}",
                path.display(),
                h.offset,
                h.term,
                h.meta_len,
                h.payload_len,
                buf.len(),
                if crc_ok { "ok" } else { "BAD" }
            );
            let obj = json!({
                "type": "snapshot", "file": path.display().to_string(), "offset": h.offset, "term": h.term,
                "meta_len": h.meta_len, "payload_len": h.payload_len, "size": buf.len(), "crc_ok": crc_ok,
            });
            out.line(text, obj);
            if let Err((pos, reason)) = verdict {
                out.fail(
                    format!("{} at byte {pos}: {reason}", path.display()),
                    json!({"type": "bad_snapshot", "file": path.display().to_string(), "pos": pos, "reason": reason}),
                );
            }
            if let Some(payload) = payload {
                dump_image(out, path, payload);
            }
        }
    }
    Ok(())
}

/// Decodes a snapshot's image (every rule of the payload format is checked) and prints its size.
fn dump_image(out: &mut Out, path: &Path, payload: &[u8]) {
    match yakt::metadata::Image::decode(payload) {
        Ok(img) => {
            let (brokers, topics) = (img.all_brokers().count(), img.all_topics().count());
            let (partitions, producers) =
                (img.all_partitions().count(), img.all_producers().count());
            let changes = img.broker_changes().len();
            let partition_changes = img.partition_changes().len();
            out.line(
                format!(
                    "  image: offset={} epoch={} brokers={brokers} topics={topics} partitions={partitions} producers={producers} broker_changes={changes} partition_changes={partition_changes}",
                    img.last_offset, img.last_epoch
                ),
                json!({
                    "type": "image", "file": path.display().to_string(), "offset": img.last_offset,
                    "epoch": img.last_epoch, "brokers": brokers, "topics": topics,
                    "partitions": partitions, "producers": producers, "broker_changes": changes,
                    "partition_changes": partition_changes,
                }),
            );
        }
        Err(e) => out.fail(
            format!(
                "{}: snapshot image does not decode: {}",
                path.display(),
                e.reason
            ),
            json!({"type": "bad_image", "file": path.display().to_string(), "reason": e.reason}),
        ),
    }
}

fn small_file(
    out: &mut Out,
    path: &Path,
    kind: &str,
    magic: u32,
    show: impl Fn(&[u8]) -> (String, Value),
) -> Result<()> {
    let buf = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            out.line(
                format!("{kind} {}: absent", path.display()),
                json!({"type": kind, "file": path.display().to_string(), "present": false}),
            );
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    match decode_meta(magic, &buf) {
        Ok(body) => {
            let (text, val) = show(body);
            out.line(
                format!("{kind} {}: crc=ok {text}", path.display()),
                json!({"type": kind, "file": path.display().to_string(), "present": true, "crc_ok": true, "value": val}),
            );
        }
        Err((pos, reason)) => out.fail(
            format!("{kind} {} at byte {pos}: crc=BAD {reason}", path.display()),
            json!({"type": kind, "file": path.display().to_string(), "present": true, "crc_ok": false, "pos": pos, "reason": reason}),
        ),
    }
    Ok(())
}

fn dump_last_purged(out: &mut Out, path: &Path) -> Result<()> {
    small_file(
        out,
        path,
        "last_purged",
        LAST_PURGED_MAGIC,
        |body| match decode_last_purged(body) {
            Some(id) => (
                format!("index={} term={}", id.index, id.term),
                json!({"index": id.index, "term": id.term}),
            ),
            None => (format!("unexpected {}-byte body", body.len()), Value::Null),
        },
    )
}

/// The recovering mark: present only while the node must be caught up before it votes.
fn dump_recovering(out: &mut Out, path: &Path) -> Result<()> {
    small_file(out, path, "recovering", RECOVERING_MAGIC, |body| {
        match decode_recovering(body) {
            Ok(u) => (
                format!(
                    "new_directory={} lost_data={} (the node does not vote until a leader has caught it up)",
                    u.new_directory, u.lost_data
                ),
                json!({"new_directory": u.new_directory, "lost_data": u.lost_data}),
            ),
            Err(e) => (e.clone(), json!({"error": e})),
        }
    })
}

fn dump_vote(out: &mut Out, path: &Path) -> Result<()> {
    small_file(
        out,
        path,
        "vote",
        VOTE_MAGIC,
        |body| match codec::decode_vote(body) {
            Ok(vote) => {
                let (term, node) = (vote.leader_id.term, vote.leader_id.voted_for);
                (
                    format!("term={term} voted_for={node} committed={}", vote.committed),
                    json!({"bytes": body.len(), "term": term, "voted_for": node, "committed": vote.committed}),
                )
            }
            Err(e) => (
                format!("bytes={} undecodable: {e}", body.len()),
                json!({"bytes": body.len(), "error": e.to_string()}),
            ),
        },
    )
}
