//! The resume rules of [`super::StreamClient`], apart from any connection: what each event
//! means, and the last id a reconnect resumes after.

use super::super::fold::SnapshotAssembly;
use super::super::options::{Progress, StreamItem};
use super::super::sse;
use crate::metadata::LogRecord;

/// What one event means for the client.
#[derive(Debug, PartialEq)]
pub(crate) enum Handled {
    Item(StreamItem),
    Skip,
    Reconnect(String),
}

/// Where a reader stands across connections: the last id it has (items yielded, progress
/// events) and the snapshot being received. Pure, so the resume rules are tested without nodes.
#[derive(Debug, Default)]
pub(crate) struct Resume {
    pub(in crate::client) last_id: Option<u64>,
    pub(in crate::client) assembly: SnapshotAssembly,
    pub(in crate::client) duplicates: u64,
    pub(in crate::client) yield_progress: bool,
}

impl Resume {
    /// A new connection: a snapshot received in part is dropped (it comes again in whole, since
    /// the resume point is before it).
    pub(crate) fn reconnected(&mut self) {
        self.assembly.reset();
    }

    /// One event of the stream.
    pub(crate) fn handle(&mut self, ev: sse::Event) -> Handled {
        let item = match ev.event.as_str() {
            "record" => match serde_json::from_str::<LogRecord>(&ev.data) {
                Ok(r) => StreamItem::Record(r),
                Err(e) => return Handled::Reconnect(format!("undecodable record event: {e}")),
            },
            "snapshot_begin" => {
                return match self.assembly.begin(&ev.data) {
                    Ok(()) => Handled::Skip,
                    Err(e) => Handled::Reconnect(e.to_string()),
                }
            }
            "snapshot_chunk" => {
                return match self.assembly.chunk(&ev.data) {
                    Ok(()) => Handled::Skip,
                    Err(e) => Handled::Reconnect(e.to_string()),
                }
            }
            "snapshot_end" => match self.assembly.end(&ev.data) {
                Ok(item) => item,
                Err(e) => return Handled::Reconnect(e.to_string()),
            },
            "progress" => {
                let Some(id) = ev.id.as_deref().and_then(|i| i.parse::<u64>().ok()) else {
                    return Handled::Skip; // before offset 0: nothing to resume after
                };
                let mut p: Progress = match serde_json::from_str(&ev.data) {
                    Ok(p) => p,
                    Err(e) => {
                        return Handled::Reconnect(format!("undecodable progress event: {e}"))
                    }
                };
                p.offset = id;
                if self.last_id.is_some_and(|l| id <= l) {
                    return Handled::Skip;
                }
                self.last_id = Some(id);
                return if self.yield_progress {
                    Handled::Item(StreamItem::Progress(p))
                } else {
                    Handled::Skip
                };
            }
            "stream_error" => {
                return Handled::Reconnect(format!("the node ended the stream: {}", ev.data))
            }
            _ => return Handled::Skip,
        };
        if self.last_id.is_some_and(|l| item.offset() <= l) {
            self.duplicates += 1;
            return Handled::Skip;
        }
        self.last_id = Some(item.offset());
        Handled::Item(item)
    }
}
