//! The image cut into `snapshot_chunk` payloads of bounded size: `{"metadata": {name:
//! [entities]}}`, each at most a given number of bytes, the lists of all chunks together being
//! the image. A reader below the log start gets the image this way, so neither the node nor the
//! reader ever holds the whole encoded image.

use super::walk::{walk, Visitor, WalkError};
use crate::metadata::Image;

/// Most bytes of one `snapshot_chunk` event on the wire (`event:` and `data:` lines included):
/// the contract's bound.
pub const MAX_CHUNK_EVENT: usize = 1024 * 1024;
/// The size the stream cuts chunks at: well under the bound, because each reader below the log
/// start holds a few chunks at once (one being encoded, one queued, one being written), and
/// chunks this small stay in the allocator's thread-local pages: with 256 KiB chunks, encoded on
/// one thread and freed on another, twenty readers of a 4.5 MB image raised the node's peak
/// memory by 49 MB; with 64 KiB chunks by 23 MB (docs/performance.md).
pub const CHUNK_TARGET: usize = 64 * 1024;

/// Bytes written around each chunk's payload: the SSE lines of a `snapshot_chunk` event, so a
/// chunk is handed on as the event itself, without another copy.
#[derive(Clone, Copy, Debug)]
pub struct Frame {
    /// Before the payload (`event: snapshot_chunk\ndata: `).
    pub prefix: &'static [u8],
    /// After it (`\n\n`).
    pub suffix: &'static [u8],
}

/// The `snapshot_chunk` event framing.
pub const SSE_FRAME: Frame = Frame {
    prefix: b"event: snapshot_chunk\ndata: ",
    suffix: b"\n\n",
};

const OPEN: &[u8] = b"{\"metadata\":{";
const CLOSE_LIST: &[u8] = b"]";
const CLOSE: &[u8] = b"}}";

/// Builds chunks from a walk and hands each complete one to `emit`.
struct Chunker<F> {
    max: usize,
    frame: Frame,
    buf: Vec<u8>,
    /// The record name whose list is open, as JSON (`"TopicRecord"`).
    name: Vec<u8>,
    /// Whether `buf` has an open list (`"name":[`).
    list_open: bool,
    /// Entities in the open list of `buf`.
    in_list: usize,
    /// Lists started in `buf`.
    lists: usize,
    emit: F,
}

impl<F: FnMut(Vec<u8>) -> Result<(), WalkError>> Chunker<F> {
    fn new(max: usize, frame: Frame, emit: F) -> Self {
        let mut buf = Vec::with_capacity(max);
        buf.extend_from_slice(frame.prefix);
        buf.extend_from_slice(OPEN);
        Self {
            max,
            frame,
            buf,
            name: Vec::new(),
            list_open: false,
            in_list: 0,
            lists: 0,
            emit,
        }
    }

    /// Closes `buf` as a chunk, hands it on, and starts the next one (reopening the current list
    /// when `reopen`).
    fn cut(&mut self, reopen: bool) -> Result<(), WalkError> {
        let mut done = std::mem::replace(&mut self.buf, Vec::with_capacity(self.max));
        if self.list_open {
            done.extend_from_slice(CLOSE_LIST);
        }
        done.extend_from_slice(CLOSE);
        done.extend_from_slice(self.frame.suffix);
        (self.emit)(done)?;
        self.buf.extend_from_slice(self.frame.prefix);
        self.buf.extend_from_slice(OPEN);
        self.lists = 0;
        self.in_list = 0;
        self.list_open = false;
        if reopen {
            self.open_list();
        }
        Ok(())
    }

    fn open_list(&mut self) {
        if self.lists > 0 {
            self.buf.push(b',');
        }
        self.buf.extend_from_slice(&self.name);
        self.buf.extend_from_slice(b":[");
        self.list_open = true;
        self.lists += 1;
        self.in_list = 0;
    }

    /// Bytes still to be written to close `buf` now.
    fn closing(&self) -> usize {
        CLOSE.len() + self.frame.suffix.len() + if self.list_open { CLOSE_LIST.len() } else { 0 }
    }

    /// Whether `buf` holds anything a chunk must carry.
    fn has_content(&self) -> bool {
        self.lists > 0
    }

    fn finish(mut self) -> Result<(), WalkError> {
        self.cut(false)
    }
}

impl<F: FnMut(Vec<u8>) -> Result<(), WalkError>> Visitor for Chunker<F> {
    fn name(&mut self, name: &str) -> Result<(), WalkError> {
        if self.list_open {
            self.buf.extend_from_slice(CLOSE_LIST);
            self.list_open = false;
        }
        self.name.clear();
        serde_json::to_writer(&mut self.name, name)
            .map_err(|e| WalkError::Shape(format!("record name {name:?}: {e}")))?;
        // `,"name":[` and the closing `]}}`.
        let need =
            1 + self.name.len() + 2 + CLOSE_LIST.len() + CLOSE.len() + self.frame.suffix.len();
        if self.has_content() && self.buf.len() + need > self.max {
            self.cut(false)?;
        }
        self.open_list();
        Ok(())
    }

    fn entity(&mut self, json: &[u8]) -> Result<(), WalkError> {
        let comma = usize::from(self.in_list > 0);
        // An entity that does not fit goes first into the next chunk; one larger than a whole
        // chunk goes alone (it cannot be split).
        if self.in_list > 0 && self.buf.len() + comma + json.len() + self.closing() > self.max {
            self.cut(true)?;
        } else if self.in_list == 0
            && self.lists > 1
            && self.buf.len() + json.len() + self.closing() > self.max
        {
            // The list was opened after other lists in this chunk: move it to the next one.
            let at = self.buf.len() - self.name.len() - 3;
            self.buf.truncate(at);
            self.lists -= 1;
            self.list_open = false;
            self.cut(true)?;
        }
        if self.in_list > 0 {
            self.buf.push(b',');
        }
        self.buf.extend_from_slice(json);
        self.in_list += 1;
        Ok(())
    }
}

/// Cuts `image` into chunks of at most `max` bytes each, `frame` included (an entity larger than
/// that would be sent alone: none is, an entity is a few hundred bytes), handing each to `emit`
/// as soon as it is complete; an `Err` from `emit` stops the walk.
pub fn chunk_image(
    image: &Image,
    max: usize,
    frame: Frame,
    emit: impl FnMut(Vec<u8>) -> Result<(), WalkError>,
) -> Result<(), WalkError> {
    let mut chunker = Chunker::new(max, frame, emit);
    walk(image, &mut chunker)?;
    chunker.finish()
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value};

    use super::*;
    use crate::metadata::{MetadataCommand, Record};

    /// An image of `topics` topics (long names, so a few hundred make several chunks of a small
    /// size) and `brokers` brokers.
    fn image(topics: usize, brokers: usize) -> Image {
        let mut img = Image::new();
        let mut offset = 0;
        let mut apply = |img: &mut Image, record: Value| {
            offset += 1;
            let record: Record = serde_json::from_value(record).expect("record");
            let cmd = MetadataCommand {
                timestamp_ms: 1_000 + offset,
                record,
            };
            img.apply_entry(offset, 1, &cmd).expect("apply");
        };
        for b in 0..brokers {
            apply(
                &mut img,
                serde_json::json!({"RegisterBrokerRecord": {
                    "brokerId": b, "brokerHost": "127.0.0.1", "brokerPort": 9000 + b,
                    "securityProtocol": "PLAINTEXT", "rackId": "r", "brokerStatus": "ALIVE",
                    "epoch": 0, "internalUUID": uuid::Uuid::new_v4()
                }}),
            );
        }
        for t in 0..topics {
            apply(
                &mut img,
                serde_json::json!({"TopicRecord": {
                    "name": format!("topic-{t:05}-{}", "x".repeat(60)),
                    "topicUUID": uuid::Uuid::new_v4()
                }}),
            );
        }
        img
    }

    /// The chunks of `img` cut at `max` as SSE events, each parsed.
    fn chunks(img: &Image, max: usize) -> Vec<(usize, Value)> {
        let mut out = Vec::new();
        chunk_image(img, max, SSE_FRAME, |c| {
            let text = std::str::from_utf8(&c).expect("utf-8");
            let data = text
                .strip_prefix("event: snapshot_chunk\ndata: ")
                .and_then(|t| t.strip_suffix("\n\n"))
                .expect("an SSE event");
            assert!(!data.contains('\n'), "one data line");
            let v: Value = serde_json::from_str(data).expect("a chunk is JSON");
            out.push((c.len(), v));
            Ok(())
        })
        .expect("chunk");
        out
    }

    /// The lists of all chunks, joined per name.
    fn union(chunks: &[(usize, Value)]) -> Value {
        let mut all: Map<String, Value> = Map::new();
        for (_, c) in chunks {
            let m = c["metadata"].as_object().expect("metadata object");
            for (name, list) in m {
                let into = all
                    .entry(name.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                into.as_array_mut()
                    .expect("list")
                    .extend(list.as_array().expect("a list").iter().cloned());
            }
        }
        Value::Object(all)
    }

    #[test]
    fn chunks_stay_under_the_limit_and_together_are_the_image() {
        let img = image(700, 30);
        let whole = img.metadata_json();
        for max in [400, 1000, 4096, 20_000, CHUNK_TARGET, MAX_CHUNK_EVENT] {
            let got = chunks(&img, max);
            for (len, c) in &got {
                assert!(*len <= max, "a chunk of {len} bytes over {max}: {c}");
            }
            assert_eq!(union(&got), whole, "cut at {max}");
            if max < 20_000 {
                assert!(got.len() > 3, "cut at {max}: {} chunks", got.len());
            } else if max == MAX_CHUNK_EVENT {
                assert_eq!(got.len(), 1, "a small image is one chunk");
            }
        }
    }

    #[test]
    fn an_empty_image_is_one_chunk_with_every_list() {
        let got = chunks(&Image::new(), MAX_CHUNK_EVENT);
        assert_eq!(got.len(), 1);
        assert_eq!(union(&got), Image::new().metadata_json());
    }

    #[test]
    fn a_stopped_emit_ends_the_walk() {
        let img = image(300, 0);
        let mut n = 0;
        let r = chunk_image(&img, 1000, SSE_FRAME, |_| {
            n += 1;
            if n == 2 {
                Err(WalkError::Stopped("reader gone".into()))
            } else {
                Ok(())
            }
        });
        assert!(matches!(r, Err(WalkError::Stopped(_))));
        assert_eq!(n, 2);
    }
}
