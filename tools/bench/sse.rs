//! A lean `/stream` reader for the bench: it takes the library's SSE lines
//! ([`yakt::client::sse::LineReader`], borrowed, no copy) and keeps only the offset (`id:`) and,
//! for `event: record`, the leader's `timestamp` out of the JSON text, so that 100 readers in one
//! process cost little next to the server they measure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::bail;
use futures::StreamExt;
use yakt::client::sse::{ascii_digits, Line, LineReader};

/// Longest SSE line a reader accepts (a snapshot of a big image is one line).
const MAX_LINE: usize = 64 * 1024 * 1024;

/// What one reader saw.
#[derive(Default)]
pub struct Tally {
    pub records: u64,
    pub snapshots: u64,
    pub last_offset: u64,
    /// Receipt time minus the record's timestamp, ms (only when asked for).
    pub lags_ms: Vec<u32>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// The number after the first `key` in `hay` (the key's searcher built once per reader).
fn number_after(hay: &[u8], key: &memchr::memmem::Finder<'_>) -> Option<u64> {
    let i = key.find(hay)? + key.needle().len();
    let mut n: u64 = 0;
    let mut any = false;
    for &b in &hay[i..] {
        if b.is_ascii_digit() {
            n = n * 10 + (b - b'0') as u64;
            any = true;
        } else if any || b != b' ' {
            break;
        }
    }
    any.then_some(n)
}

/// Reads `GET /stream?offset=<from>` on `addr` until an item at or past `until` arrives
/// (`until` may be set while it runs; `u64::MAX` means not yet known). `seen` counts records as
/// they arrive; the tally is added to `tally` however the read ends.
pub async fn read(
    http: &reqwest::Client,
    addr: &str,
    from: u64,
    until: Arc<AtomicU64>,
    lag: bool,
    seen: Arc<AtomicU64>,
    tally: Arc<std::sync::Mutex<Tally>>,
) -> anyhow::Result<()> {
    let resp = http
        .get(format!(
            "{}://{addr}/stream?offset={from}",
            crate::common::scheme()
        ))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("/stream answered {}", resp.status());
    }
    let mut body = resp.bytes_stream();
    let mut local = Tally::default();
    let mut unseen: u64 = 0;
    let timestamp_key = memchr::memmem::Finder::new(b"\"timestamp\":");
    let r =
        async {
            let mut lines = LineReader::new(MAX_LINE);
            let mut event_is_record = false;
            let mut id: u64 = 0;
            loop {
                if local.last_offset >= until.load(Ordering::Relaxed) {
                    break;
                }
                let next =
                    match tokio::time::timeout(std::time::Duration::from_millis(200), body.next())
                        .await
                    {
                        Ok(n) => n,
                        Err(_) => continue,
                    };
                let Some(chunk) = next else {
                    bail!("/stream ended");
                };
                // One shared-counter update per chunk, not per record: a thousand readers
                // bumping one cache line per event cost the bench more than parsing them.
                seen.fetch_add(std::mem::take(&mut unseen), Ordering::Relaxed);
                let now = if lag { now_ms() } else { 0 };
                lines.feed(&chunk?)?;
                while let Some(line) = lines.next_line()? {
                    match line {
                        Line::Blank => {
                            // An event ends at its blank line; only then is its id reached. (The
                            // `id:` line comes before `data:`: counting it there stopped a reader
                            // that met the last offset one record short, before its data.)
                            event_is_record = false;
                            local.last_offset = local.last_offset.max(id);
                            if local.last_offset >= until.load(Ordering::Relaxed) {
                                return anyhow::Ok(());
                            }
                        }
                        Line::Comment(_) => {}
                        Line::Field { name: b"id", value } => {
                            id = ascii_digits(value).unwrap_or(id);
                        }
                        Line::Field {
                            name: b"event",
                            value,
                        } => {
                            event_is_record = value == b"record";
                            if value == b"snapshot_end" {
                                local.snapshots += 1;
                            } else if value == b"stream_error" || value == b"shutdown" {
                                bail!("/stream sent event {}", String::from_utf8_lossy(value));
                            }
                        }
                        Line::Field {
                            name: b"data",
                            value,
                        } if event_is_record => {
                            local.records += 1;
                            unseen += 1;
                            if lag {
                                if let Some(ts) = number_after(value, &timestamp_key) {
                                    local.lags_ms.push(now.saturating_sub(ts) as u32);
                                }
                            }
                        }
                        Line::Field { .. } => {}
                    }
                }
            }
            anyhow::Ok(())
        }
        .await;
    seen.fetch_add(unseen, Ordering::Relaxed);
    let mut t = tally.lock().unwrap();
    t.records += local.records;
    t.snapshots += local.snapshots;
    t.last_offset = t.last_offset.max(local.last_offset);
    t.lags_ms.extend(local.lags_ms);
    r
}
