//! Server-sent-event framing for `/stream`: `id: ..`, `event: ..`, `data: ..`, blank line, as
//! bytes ready for the wire.

use bytes::{BufMut, Bytes, BytesMut};

use crate::metadata::{MetadataCommand, WireRecord};

/// Room reserved for one record event; a typical one is under 250 bytes, bigger ones grow.
const RECORD_EVENT_CAPACITY: usize = 320;

/// One event with a text payload. `data` is one line of JSON (compact JSON has no raw newlines).
pub fn event(id: Option<u64>, event: &str, data: &str) -> Bytes {
    debug_assert!(!data.contains(['\n', '\r']));
    event_bytes(id, event, data.as_bytes())
}

/// One event whose payload is already bytes of one-line JSON (a snapshot chunk).
pub fn event_bytes(id: Option<u64>, event: &str, data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(data.len() + event.len() + 40);
    if let Some(id) = id {
        put_id(&mut b, id);
    }
    b.extend_from_slice(b"event: ");
    b.extend_from_slice(event.as_bytes());
    b.extend_from_slice(b"\ndata: ");
    b.extend_from_slice(data);
    b.extend_from_slice(b"\n\n");
    b.freeze()
}

/// The `event: record` of the committed record `cmd` at `offset`, written in Raft term `epoch`:
/// the same bytes as [`event`] with the record's [`LogRecord`](crate::metadata::LogRecord)
/// JSON, printed straight from `cmd`.
pub fn record_event(
    offset: u64,
    epoch: u64,
    cmd: &MetadataCommand,
) -> Result<Bytes, serde_json::Error> {
    let mut b = BytesMut::with_capacity(RECORD_EVENT_CAPACITY);
    put_record_event(&mut b, offset, epoch, cmd)?;
    Ok(b.freeze())
}

/// Appends [`record_event`]'s bytes to `b`: a batch of records is encoded into one block this
/// way, each event a range of it. On an error `b` may hold part of the event.
pub fn put_record_event(
    b: &mut BytesMut,
    offset: u64,
    epoch: u64,
    cmd: &MetadataCommand,
) -> Result<(), serde_json::Error> {
    b.reserve(RECORD_EVENT_CAPACITY);
    put_id(b, offset);
    b.extend_from_slice(b"event: record\ndata: ");
    let wire = WireRecord {
        offset,
        epoch,
        timestamp: cmd.timestamp_ms,
        record: &cmd.record,
    };
    serde_json::to_writer(b.writer(), &wire)?;
    b.extend_from_slice(b"\n\n");
    Ok(())
}

fn put_id(b: &mut BytesMut, id: u64) {
    b.extend_from_slice(b"id: ");
    b.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
    b.extend_from_slice(b"\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::record::tests::sample_records;
    use crate::metadata::LogRecord;

    #[test]
    fn record_event_is_the_event_of_the_log_record_json() {
        for (i, record) in sample_records().into_iter().enumerate() {
            let cmd = MetadataCommand {
                timestamp_ms: 1_764_000_000_000 + i as u64,
                record,
            };
            let offset = 1000 + i as u64;
            let data = serde_json::to_string(&LogRecord::new(offset, 3, &cmd)).unwrap();
            let old = event(Some(offset), "record", &data);
            assert_eq!(record_event(offset, 3, &cmd).unwrap(), old);
        }
    }

    #[test]
    fn event_without_id() {
        assert_eq!(
            event(None, "stream_error", "{}"),
            Bytes::from_static(b"event: stream_error\ndata: {}\n\n")
        );
        assert_eq!(
            event(Some(7), "snapshot", "{}"),
            Bytes::from_static(b"id: 7\nevent: snapshot\ndata: {}\n\n")
        );
    }
}
