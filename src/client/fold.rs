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
        assert!(g
            .apply(&StreamItem::Snapshot {
                offset: 4,
                epoch: 1,
                metadata: serde_json::json!([1])
            })
            .is_err());
    }
}
