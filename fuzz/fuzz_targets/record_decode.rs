//! Record bytes and client JSON: the log payload decoder, the MessagePack record decoder and
//! every request-body parser must answer an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yakt::metadata::{MetadataCommand, WriteRequest};

fuzz_target!(|data: &[u8]| {
    let _ = MetadataCommand::decode(data);
    let _ = yakt::raft::codec::decode_payload(data);
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
