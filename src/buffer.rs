//! The connection's two byte buffers: received bytes, processed in place, and bytes to send.
//!
//! Both hold memory only while they hold bytes: once drained they are released, so an idle
//! connection owns no payload buffers.

use crate::entropy::Entropy;
use crate::frame::{FrameHeader, MAX_HEADER_LEN, Opcode};
use crate::mask::apply_mask;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

/// Received bytes. `buf[..filled]` holds data; `buf[filled..]` is zeroed spare room that
/// `spare` lends to the driver, so that reads go straight into the buffer.
#[derive(Debug, Default)]
pub(crate) struct RecvBuffer {
    buf: Vec<u8>,
    filled: usize,
}

impl RecvBuffer {
    pub(crate) fn filled(&self) -> usize {
        self.filled
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[..self.filled]
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.filled]
    }

    /// Moves `live_start..filled` to the front when the spare room is below `want`, then
    /// grows the buffer to `want` spare bytes. Returns how far the live bytes moved down.
    ///
    /// Growth doubles the capacity, for few reallocations on large messages, but never past
    /// `bound` (unless `want` itself needs more), so the limits hold for memory too.
    pub(crate) fn make_room(&mut self, live_start: usize, want: usize, bound: usize) -> usize {
        let mut shift = 0;
        if self.buf.len() - self.filled < want && live_start > 0 {
            self.buf.copy_within(live_start..self.filled, 0);
            self.filled -= live_start;
            shift = live_start;
        }
        let needed = self.filled + want;
        if self.buf.len() < needed {
            if self.buf.capacity() < needed {
                let capacity = needed.max(self.buf.capacity().saturating_mul(2).min(bound));
                self.buf.reserve_exact(capacity - self.buf.len());
            }
            self.buf.resize(needed, 0);
        }
        shift
    }

    /// Drops `range` of the data, moving what follows down over it.
    pub(crate) fn remove(&mut self, range: core::ops::Range<usize>) {
        self.buf.copy_within(range.end..self.filled, range.start);
        self.filled -= range.len();
    }

    /// Room for the next read; fill a prefix of it and call [`RecvBuffer::commit`].
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.filled..]
    }

    pub(crate) fn commit(&mut self, n: usize) {
        assert!(
            n <= self.buf.len() - self.filled,
            "committed more bytes than were lent"
        );
        self.filled += n;
    }

    /// Forgets all bytes and frees the memory.
    pub(crate) fn release(&mut self) {
        self.filled = 0;
        if self.buf.capacity() > 0 {
            self.buf = Vec::new();
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

/// Bytes queued for the wire, with the client's masking.
pub(crate) struct Output {
    buf: Vec<u8>,
    start: usize,
    masker: Option<Box<Masker>>,
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("pending", &(self.buf.len() - self.start))
            .field("masks", &self.masker.is_some())
            .finish()
    }
}

impl Output {
    pub(crate) fn new(entropy: Option<Box<dyn Entropy + Send>>) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            masker: entropy.map(|source| {
                Box::new(Masker {
                    source,
                    pool: [0; KEY_POOL],
                    used: KEY_POOL,
                })
            }),
        }
    }

    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub(crate) fn consume(&mut self, n: usize) {
        assert!(
            n <= self.buf.len() - self.start,
            "consumed more bytes than are pending"
        );
        self.start += n;
        if self.start == self.buf.len() {
            self.start = 0;
            self.buf = Vec::new();
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Appends raw bytes, for HTTP heads.
    pub(crate) fn raw(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Fills `dest` from the caller's entropy source (clients only have one).
    pub(crate) fn fill_random(&mut self, dest: &mut [u8]) {
        if let Some(masker) = &mut self.masker {
            masker.source.fill(dest);
        }
    }

    /// Queues one frame, masked when this is a client (RFC 6455 §5.3).
    pub(crate) fn frame(&mut self, opcode: Opcode, fin: bool, rsv: u8, payload: &[u8]) {
        let mask = self.masker.as_deref_mut().map(Masker::next_key);
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len: payload.len() as u64,
        };
        let mut head = [0; MAX_HEADER_LEN];
        let head_len = header.encode(&mut head);
        self.buf.reserve(head_len + payload.len());
        self.buf.extend_from_slice(&head[..head_len]);
        let payload_start = self.buf.len();
        self.buf.extend_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut self.buf[payload_start..], key, 0);
        }
    }
}

/// Masking keys drawn per call to the entropy source: 256 frames' worth, so a client sending
/// small messages does not pay a `getrandom` system call every few frames (the encode bench
/// showed 43% of a 16-byte masked send in `getrandom` with a 64-byte pool).
const KEY_POOL: usize = 1024;

/// Hands out masking keys, drawing entropy `KEY_POOL` bytes at a time so the caller's
/// generator is not called for every frame. Boxed: only clients have one.
struct Masker {
    source: Box<dyn Entropy + Send>,
    pool: [u8; KEY_POOL],
    used: usize,
}

impl Masker {
    fn next_key(&mut self) -> [u8; 4] {
        if self.used == KEY_POOL {
            self.source.fill(&mut self.pool);
            self.used = 0;
        }
        let key = self.pool[self.used..self.used + 4]
            .try_into()
            .expect("4-byte slice");
        self.used += 4;
        key
    }
}
