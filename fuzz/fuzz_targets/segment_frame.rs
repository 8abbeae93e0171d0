//! Segment bytes from disk: the frame decoder and the whole-segment scan (recovery and
//! `yakt-dump` share it) must never panic or allocate from an unchecked length, and every frame
//! they accept must hold its payload inside the buffer; payloads decode without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = yakt::storage::frame::decode_frame(data) {
        let _ = yakt::raft::codec::describe_payload(frame.payload);
    }
    let _ = yakt::storage::frame::scan_segment(data);
});
