//! A decompression bomb is stopped at the limit: 10 MB of zeros, about 10 KB compressed,
//! against a 1 MiB limit fails with 1009 while the heap never grows past limit + 64 KiB.
//!
//! A counting global allocator measures the peak; this file holds one test so nothing else
//! allocates while it measures.
mod common;
use common::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use wsproto::{
    Accept, ClientRequest, CloseCode, Config, DeflateConfig, Error, MessageKind, ProtocolError,
};

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Counting;

fn grew(bytes: usize) {
    let now = CURRENT.fetch_add(bytes, Relaxed) + bytes;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds as it does for `System`; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as received.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            // Counted as the change in size: large blocks are moved with mremap, not copied
            // into a second allocation.
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const LIMIT: usize = 1 << 20;
const BOMB: usize = 10_000_000;

fn config(max_message_size: usize) -> Config {
    let mut config = quiet_config();
    config.deflate = Some(DeflateConfig::default());
    config.max_message_size = max_message_size;
    config
}

fn pair() -> Pair {
    Pair::handshake(
        ClientRequest::new("ws://example.com/").unwrap(),
        Accept::new(),
        config(LIMIT),
        config(usize::MAX),
    )
}

/// Feeds `wire` to the client and returns the peak heap growth while it did.
fn peak_while_receiving(p: &mut Pair, wire: &[u8]) -> (Vec<Ev>, usize) {
    let baseline = CURRENT.load(Relaxed);
    PEAK.store(baseline, Relaxed);
    let events = feed(&mut p.client, wire);
    (events, PEAK.load(Relaxed) - baseline)
}

#[test]
fn rfc_7692_8_decompression_bomb_is_bounded() {
    let zeros = vec![0u8; BOMB];

    // One frame.
    let mut p = pair();
    p.server.send_binary(&zeros).unwrap();
    let wire = take_output(&mut p.server);
    assert!(
        wire.len() < 20_000,
        "the bomb is {} bytes on the wire",
        wire.len()
    );
    let (events, peak) = peak_while_receiving(&mut p, &wire);
    let too_big = Error::Protocol(ProtocolError::MessageTooLarge {
        len: LIMIT as u64 + 1,
        max: LIMIT,
    });
    assert_eq!(events, [Ev::Error(too_big.clone())]);
    assert_eq!(too_big.close_code(), Some(CloseCode::MESSAGE_TOO_BIG));
    println!(
        "single frame: {} bytes on the wire, peak heap growth {peak} bytes",
        wire.len()
    );
    assert!(peak < LIMIT + (64 << 10), "peak heap growth {peak} bytes");

    // The same bomb in 100 fragments of 100 KB.
    let mut p = pair();
    for (i, chunk) in zeros.chunks(100_000).enumerate() {
        p.server
            .send_fragment(MessageKind::Binary, chunk, i == 99)
            .unwrap();
    }
    let wire = take_output(&mut p.server);
    let (events, peak) = peak_while_receiving(&mut p, &wire);
    assert_eq!(events, [Ev::Error(too_big)]);
    println!(
        "fragmented: {} bytes on the wire, peak heap growth {peak} bytes",
        wire.len()
    );
    assert!(peak < LIMIT + (64 << 10), "peak heap growth {peak} bytes");
}
