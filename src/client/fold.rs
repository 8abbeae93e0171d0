//! Folding a stream's items into a metadata image on the client side, with the server's own
//! fold rules, so a consumer holds the same image as the nodes.

use serde_json::Value;

use super::{ClientError, StreamItem};
use crate::metadata::{Image, MetadataCommand, Record};

/// Folds stream items into a metadata [`Image`], as the server's state machine does: a
/// snapshot replaces the image ([`Image::from_metadata_json`]); a record is decoded back into a
/// typed [`Record`] from its `name` and `fields` and applied with [`Image::apply_entry`]. A record
/// the image refuses is skipped and counted, as the server skips it. Meaningful only for an
/// unfiltered stream.
#[derive(Clone, Debug, Default)]
pub struct ImageFold {
    image: Image,
    offset: Option<u64>,
    refused: u64,
}

impl ImageFold {
    /// An empty image (the state before offset 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one item. Errors only on an item that cannot be decoded.
    pub fn apply(&mut self, item: &StreamItem) -> Result<(), ClientError> {
        match item {
            StreamItem::Snapshot {
                offset,
                epoch,
                metadata,
            } => {
                self.image = Image::from_metadata_json(metadata, *offset, *epoch)
                    .map_err(|e| ClientError::Fold(e.to_string()))?;
            }
            StreamItem::Record(r) => {
                let mut tagged = serde_json::Map::new();
                tagged.insert(r.name.clone(), r.fields.clone());
                let record: Record = serde_json::from_value(Value::Object(tagged))
                    .map_err(|e| ClientError::Fold(format!("record at {}: {e}", r.offset)))?;
                let cmd = MetadataCommand {
                    timestamp_ms: r.timestamp,
                    record,
                };
                if self.image.apply_entry(r.offset, r.epoch, &cmd).is_err() {
                    self.refused += 1;
                }
            }
            // Nothing changed: the image stays at the last record or snapshot folded.
            StreamItem::Progress(_) => return Ok(()),
        }
        self.offset = Some(item.offset());
        Ok(())
    }

    /// The image folded so far.
    pub fn image(&self) -> &Image {
        &self.image
    }

    /// The image in `/get_metadata`'s `metadata` form.
    pub fn metadata_json(&self) -> Value {
        self.image.metadata_json()
    }

    /// The offset of the last item folded.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// Records the image refused (as the server's state machine refuses them).
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

/// Puts a chunked snapshot back together: `snapshot_begin` (`{"offset", "epoch"}`), the lists of
/// each `snapshot_chunk` (`{"metadata": {name: [entities]}}`) appended per name, and
/// `snapshot_end` (whose id is the offset), as one [`StreamItem::Snapshot`].
#[derive(Debug, Default)]
pub struct SnapshotAssembly {
    open: Option<(u64, u64, serde_json::Map<String, Value>)>,
}

/// `snapshot_begin`'s and `snapshot_end`'s data.
#[derive(serde::Deserialize)]
struct SnapshotHead {
    offset: u64,
    epoch: u64,
}

impl SnapshotAssembly {
    /// Whether a snapshot is being received (begun, not ended).
    pub fn in_progress(&self) -> bool {
        self.open.is_some()
    }

    /// Drops a snapshot received in part (the connection broke: it is sent again in whole).
    pub fn reset(&mut self) {
        self.open = None;
    }

    /// `event: snapshot_begin`.
    pub fn begin(&mut self, data: &str) -> Result<(), ClientError> {
        let h: SnapshotHead = serde_json::from_str(data)
            .map_err(|e| ClientError::Fold(format!("snapshot_begin {data:?}: {e}")))?;
        self.open = Some((h.offset, h.epoch, serde_json::Map::new()));
        Ok(())
    }

    /// `event: snapshot_chunk`.
    pub fn chunk(&mut self, data: &str) -> Result<(), ClientError> {
        let Some((offset, _, lists)) = self.open.as_mut() else {
            return Err(ClientError::Fold(
                "snapshot_chunk without snapshot_begin".into(),
            ));
        };
        let mut v: Value = serde_json::from_str(data)
            .map_err(|e| ClientError::Fold(format!("snapshot_chunk of {offset}: {e}")))?;
        let Some(Value::Object(m)) = v.get_mut("metadata").map(Value::take) else {
            return Err(ClientError::Fold(format!(
                "snapshot_chunk of {offset} without a metadata object"
            )));
        };
        for (name, list) in m {
            let Value::Array(items) = list else {
                return Err(ClientError::Fold(format!(
                    "snapshot_chunk of {offset}: {name} is not a list"
                )));
            };
            match lists
                .entry(name)
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                Value::Array(into) => into.extend(items),
                _ => unreachable!("only lists are inserted"),
            }
        }
        Ok(())
    }

    /// `event: snapshot_end`: the whole image as one item.
    pub fn end(&mut self, data: &str) -> Result<StreamItem, ClientError> {
        let h: SnapshotHead = serde_json::from_str(data)
            .map_err(|e| ClientError::Fold(format!("snapshot_end {data:?}: {e}")))?;
        match self.open.take() {
            Some((offset, epoch, lists)) if (offset, epoch) == (h.offset, h.epoch) => {
                Ok(StreamItem::Snapshot {
                    offset,
                    epoch,
                    metadata: Value::Object(lists),
                })
            }
            Some((offset, ..)) => Err(ClientError::Fold(format!(
                "snapshot_end of {} closes the snapshot of {offset}",
                h.offset
            ))),
            None => Err(ClientError::Fold(
                "snapshot_end without snapshot_begin".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::LogRecord;

    #[test]
    fn fold_decodes_records_and_replaces_on_snapshot() {
        let topic = serde_json::json!({"name": "t", "topicUUID": uuid::Uuid::new_v4()});
        let rec = LogRecord {
            offset: 3,
            epoch: 1,
            timestamp: 1,
            name: "TopicRecord".into(),
            fields: topic.clone(),
        };
        let mut f = ImageFold::new();
        f.apply(&StreamItem::Record(rec)).expect("fold record");
        let view = f.metadata_json();
        assert_eq!(view["TopicRecord"], serde_json::json!([topic]));
        let mut g = ImageFold::new();
        g.apply(&StreamItem::Snapshot {
            offset: 3,
            epoch: 1,
            metadata: view.clone(),
        })
        .expect("fold snapshot");
        assert_eq!(g.metadata_json(), view);
        let mut parts = SnapshotAssembly::default();
        parts.begin(r#"{"offset":3,"epoch":1}"#).expect("begin");
        let half = |from: usize| {
            let list = view["TopicRecord"].as_array().unwrap()[from..].to_vec();
            serde_json::json!({"metadata": {"TopicRecord": list}}).to_string()
        };
        parts.chunk(&half(0)).expect("chunk");
        parts
            .chunk(r#"{"metadata":{"RegisterBrokerRecord":[]}}"#)
            .expect("chunk");
        let whole = parts.end(r#"{"offset":3,"epoch":1}"#).expect("end");
        let mut h = ImageFold::new();
        h.apply(&whole).expect("fold the assembled snapshot");
        assert_eq!(h.metadata_json(), view);
        assert!(!parts.in_progress());
        assert!(parts.chunk(&half(0)).is_err(), "a chunk outside a snapshot");
        assert!(g
            .apply(&StreamItem::Snapshot {
                offset: 4,
                epoch: 1,
                metadata: serde_json::json!([1])
            })
            .is_err());
    }
}
