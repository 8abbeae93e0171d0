//! Where the image's heap goes at a million records shaped like `yakt-bench catchup`'s pre-fill
//! (issue 18's memory goal): 64 writers interleaved, each writing 80 % `/create_topic` (names
//! like `t-1a2b3c4d-0-63-15625`), 10 % `/create_partition` on one topic and 10 %
//! `/broker_registration_change`, prepared and applied as the leader does.
//!
//! Run: `cargo run --release --example image_heap [-- RECORDS]`. The allocator is the node's
//! (mimalloc) wrapped in a counter of the bytes it really hands out (`mi_usable_size`, so size
//! classes count), so the figures are the heap the records take, not their `size_of`. Printed:
//! the live heap each kind of record added while folded (an unshared image: nothing is copied
//! for a reader), the image's total, the same image decoded from its snapshot payload (a node
//! restarted from a snapshot), and the process's resident set as mimalloc sees it.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

use yakt::metadata::{Image, LeaderRef, MetadataCommand, Record, WriteRequest};

/// mimalloc, counting the usable size of every live block.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call forwards to mimalloc's own `GlobalAlloc`; the counter only reads the size
// of a block mimalloc just returned or is about to free.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { mimalloc::MiMalloc.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(usable(p), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(usable(ptr), Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(usable(p), Ordering::Relaxed);
        }
        p
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let before = usable(ptr);
        let p = unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(before, Ordering::Relaxed);
            LIVE.fetch_add(usable(p), Ordering::Relaxed);
        }
        p
    }
}

fn usable(p: *mut u8) -> usize {
    // SAFETY: `p` is a live block from mimalloc.
    unsafe { libmimalloc_sys::mi_usable_size(p.cast()) }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The process's resident set and mimalloc's committed bytes, from mimalloc's own accounting.
fn process() -> (usize, usize) {
    let (mut elapsed, mut user, mut sys, mut rss, mut peak_rss, mut commit, mut peak_commit) =
        (0, 0, 0, 0, 0, 0, 0);
    let mut faults = 0;
    // SAFETY: every pointer is to a local of the type mimalloc writes.
    unsafe {
        libmimalloc_sys::mi_process_info(
            &mut elapsed,
            &mut user,
            &mut sys,
            &mut rss,
            &mut peak_rss,
            &mut commit,
            &mut peak_commit,
            &mut faults,
        );
    }
    (rss, commit)
}

/// The kinds of record the pre-fill writes, for the per-kind totals.
#[derive(Clone, Copy)]
enum Kind {
    Topic,
    Partition,
    BrokerChange,
}

/// The entry that carries `record` as the next one of `image`'s log.
fn entry(image: &Image, record: Record) -> (u64, MetadataCommand) {
    let offset = image.last_offset + 1;
    let cmd = MetadataCommand {
        timestamp_ms: 1_764_000_000_000 + offset,
        record,
    };
    (offset, cmd)
}

fn fold(image: &mut Image, (offset, cmd): &(u64, MetadataCommand)) {
    image
        .apply_entry(*offset, 1, cmd)
        .expect("the pre-fill's records fit");
}

fn main() {
    let records: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let writers: u64 = 64;
    let run = "1a2b3c4d";
    let broker_id = 4242;
    let start = live();
    let mut image = Image::new();
    let prepare_and_fold = |image: &mut Image, req: WriteRequest| {
        let record = image
            .prepare(req)
            .expect("the pre-fill's requests are valid");
        fold(image, &entry(image, record));
    };
    prepare_and_fold(
        &mut image,
        WriteRequest::RegisterBroker {
            broker_id,
            broker_host: "10.0.0.1".into(),
            broker_port: 9092,
            security_protocol: Default::default(),
            broker_status: yakt::metadata::BrokerStatus::Alive,
            rack_id: None,
        },
    );
    prepare_and_fold(
        &mut image,
        WriteRequest::CreateTopic {
            name: format!("bench-{run}"),
        },
    );
    let topic_uuid = image
        .topic_record(&format!("bench-{run}"))
        .expect("the bench topic exists")
        .topic_uuid;
    let mut added = [0isize; 3];
    let mut counts = [0u64; 3];
    for i in 0..records {
        let (w, k) = (i % writers, i / writers + 1);
        let (kind, req) = match k % 10 {
            0 => (
                Kind::Partition,
                WriteRequest::CreatePartition {
                    partition_id: (w * 100_000 + k) as i32,
                    topic_uuid,
                    replicas: vec![broker_id],
                    isr: vec![broker_id],
                    removing_replicas: vec![],
                    adding_replicas: vec![],
                    leader: LeaderRef::Id(broker_id),
                },
            ),
            5 => (
                Kind::BrokerChange,
                WriteRequest::ChangeBroker {
                    broker_id,
                    broker_host: None,
                    broker_port: Some(9000 + (k % 1000) as u16),
                    security_protocol: None,
                    broker_status: None,
                },
            ),
            _ => (
                Kind::Topic,
                WriteRequest::CreateTopic {
                    name: format!("t-{run}-0-{w}-{k}"),
                },
            ),
        };
        let record = image
            .prepare(req)
            .expect("the pre-fill's requests are valid");
        // The entry is made before and dropped after the count, so what the image keeps of it
        // (a copy of the name, of the replica lists) counts and the entry itself does not.
        let e = entry(&image, record);
        let before = live() as isize;
        fold(&mut image, &e);
        added[kind as usize] += live() as isize - before;
        drop(e);
        counts[kind as usize] += 1;
    }
    let total = live() - start;
    println!("records folded: {records} ({writers} writers interleaved)");
    for (name, kind) in [
        ("topics", Kind::Topic),
        ("partitions", Kind::Partition),
        ("broker changes", Kind::BrokerChange),
    ] {
        let (bytes, n) = (added[kind as usize], counts[kind as usize]);
        println!(
            "  {name:<15} {n:>8} records {:>8.1} MiB {:>6.1} B each",
            bytes as f64 / (1024.0 * 1024.0),
            bytes as f64 / n.max(1) as f64
        );
    }
    println!("image heap (folded): {:.1} MiB", mib(total));
    let (rss, commit) = process();
    println!(
        "process: rss {:.1} MiB, mimalloc committed {:.1} MiB",
        mib(rss),
        mib(commit)
    );

    let payload = image.encode();
    let encoded = payload.len();
    drop(image);
    let base = live();
    let decoded = Image::decode(&payload).expect("the payload decodes");
    let decoded_heap = live() - base;
    drop(payload);
    println!(
        "snapshot payload {:.1} MiB; image decoded from it: {:.1} MiB of heap ({} entities)",
        mib(encoded),
        mib(decoded_heap),
        decoded.entity_count()
    );
    let before_copy = live();
    let copy = decoded.clone();
    println!("a copy of it costs {} bytes of heap", live() - before_copy);
    drop(copy);
}
