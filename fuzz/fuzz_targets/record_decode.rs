//! Record bytes and client JSON: the entry-payload codec the node reads its log with
//! (`yakt::raft::codec`) and every request-body parser must answer an error, never panic, and a
//! record payload that decodes must encode back to a payload that decodes to the same command.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yakt::metadata::WriteRequest;
use yakt::raft::codec::{self, KIND_RECORD};
use yakt::storage::StoredEntry;

fuzz_target!(|data: &[u8]| {
    let _ = codec::decode_payload(data);
    // The input as the body of a record entry, so every input reaches the record decoder.
    let stored = StoredEntry {
        index: 1,
        term: 1,
        timestamp_ms: 0,
        payload: [&[KIND_RECORD][..], data].concat(),
    };
    if let Ok(Some(cmd)) = codec::stored_to_command(&stored) {
        let entry = codec::stored_to_entry(&stored).expect("a payload that decoded decodes again");
        let again = codec::entry_to_stored(&entry).expect("a decoded command encodes");
        assert_eq!(codec::stored_to_command(&again).ok().flatten(), Some(cmd));
    }
    let _ = WriteRequest::parse_register_broker(data);
    let _ = WriteRequest::parse_create_topic(data);
    let _ = WriteRequest::parse_create_partition(data);
    let _ = WriteRequest::parse_broker_change(data);
    let _ = WriteRequest::parse_register_producer("1", data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = yakt::metadata::timestamp::parse_timestamp(s);
        let _ = WriteRequest::delete_broker(s);
    }
});
