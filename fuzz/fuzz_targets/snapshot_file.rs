//! Snapshot files from disk or from the leader: header and body decoding, then the image and the
//! snapshot metadata inside, must reject malformed bytes without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = yakt::storage::snapshot::decode_snapshot_header(data);
    if let Ok(view) = yakt::storage::snapshot::decode_snapshot(data) {
        let _ = yakt::metadata::Image::decode(view.payload);
        let _ = yakt::raft::codec::decode_snapshot_meta(view.meta);
    }
    let _ = yakt::metadata::Image::decode(data);
});
