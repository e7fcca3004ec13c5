//! The connection's two byte buffers: received bytes, processed in place, and bytes to send.
//!
//! Emptied buffers keep their memory for the next message until the connection releases them
//! (`Config::buffer_linger`), so an idle connection owns no payload buffers.

use crate::entropy::EntropySource;
use crate::frame::{FrameHeader, MAX_HEADER_LEN, MAX_SHORT_PAYLOAD, Opcode, first_byte};
use crate::mask::apply_mask;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

/// Live bytes move to the front when they are at most this fraction of the consumed bytes
/// before them.
const CHEAP_MOVE_RATIO: usize = 8;

/// A buffer that has to grow past its first read gets room for at least this many reads.
const READS_PER_BUFFER: usize = 4;

/// Received bytes. `buf[..filled]` holds data; `buf[filled..]` is zeroed spare room that
/// `spare` lends to the driver, so that reads go straight into the buffer.
#[derive(Debug, Default)]
pub(crate) struct RecvBuffer {
    buf: Vec<u8>,
    filled: usize,
    /// How much of the spare room the last `spare_up_to` lent and `commit` may still take.
    lent: usize,
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

    /// Makes `want` bytes of spare room behind the data, keeping `live_start..filled` and
    /// dropping what is before it. Returns how far the live bytes moved down.
    ///
    /// The live bytes move to the front when the room behind them is short, and also when
    /// they are few next to the consumed bytes before them: the next reads then land in the
    /// memory the last message used, which is still in cache, rather than ever further back
    /// in a large buffer (a 1 MiB message stream decoded twice as fast this way).
    ///
    /// Growth copies only the live bytes into the new buffer, at least doubles the capacity,
    /// gives room for several reads (so the live tail of one read is moved once per few
    /// reads, not after every read) and for the `expected` rest of a frame announced by its
    /// header (so a large message grows the buffer once, not once per doubling), but never
    /// past `bound` unless `want` needs more: the limits hold for memory too.
    pub(crate) fn make_room(
        &mut self,
        live_start: usize,
        want: usize,
        expected: usize,
        bound: usize,
    ) -> usize {
        let live = self.filled - live_start;
        let spare = self.buf.len() - self.filled;
        let cheap_to_move = live <= live_start / CHEAP_MOVE_RATIO;
        if spare >= want && !(live_start > 0 && cheap_to_move) {
            return 0;
        }
        let needed = live + want;
        if needed <= self.buf.len() {
            self.buf.copy_within(live_start..self.filled, 0);
        } else {
            // Room for one read when nothing is kept: most messages fit in it.
            let reads = if live == 0 { 1 } else { READS_PER_BUFFER };
            let capacity = self
                .buf
                .len()
                .saturating_mul(2)
                .max(want.saturating_mul(reads))
                .max(live.saturating_add(expected).saturating_add(want))
                .min(bound)
                .max(needed);
            // Zeroed memory from the allocator is free until touched; only the live bytes
            // are copied, not the whole old buffer as a reallocation would.
            let mut grown = alloc::vec![0; capacity];
            grown[..live].copy_from_slice(&self.buf[live_start..self.filled]);
            self.buf = grown;
        }
        self.filled = live;
        self.lent = 0;
        live_start
    }

    /// Drops `range` of the data, moving what follows down over it.
    pub(crate) fn remove(&mut self, range: core::ops::Range<usize>) {
        self.buf.copy_within(range.end..self.filled, range.start);
        self.filled -= range.len();
        self.lent = 0;
    }

    /// Room for the next read; fill a prefix of it and call [`RecvBuffer::commit`].
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        self.spare_up_to(usize::MAX)
    }

    /// As [`RecvBuffer::spare`], at most `limit` bytes of it.
    pub(crate) fn spare_up_to(&mut self, limit: usize) -> &mut [u8] {
        let end = self.buf.len().min(self.filled.saturating_add(limit));
        self.lent = end - self.filled;
        &mut self.buf[self.filled..end]
    }

    pub(crate) fn commit(&mut self, n: usize) {
        assert!(n <= self.lent, "committed more bytes than were lent");
        self.filled += n;
        self.lent -= n;
    }

    /// Forgets all bytes, keeping the memory for the next ones.
    pub(crate) fn clear(&mut self) {
        self.filled = 0;
        self.lent = 0;
    }

    /// Forgets all bytes and frees the memory.
    pub(crate) fn release(&mut self) {
        self.filled = 0;
        self.lent = 0;
        if self.buf.capacity() > 0 {
            self.buf = Vec::new();
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Room for a read without growing.
    pub(crate) fn room(&self) -> usize {
        self.buf.len() - self.filled
    }
}

/// Bytes queued for the wire, with the client's masking.
pub(crate) struct Output {
    buf: Vec<u8>,
    start: usize,
    masker: Option<Box<Masker>>,
    /// Payload bytes that a [`Sender`](crate::Sender) lends by reference and that belong
    /// right behind the queued bytes; the sender appends them before it goes away. Not zero
    /// outside a sender's life means one was leaked and the queued frame has lost its end.
    pub(crate) owed: usize,
    /// Where in `buf` the automatic Pong that waits starts, while none of it is written, and
    /// its length (0: none). The next one replaces it (RFC 6455 §5.5.3 lets a Pong answer
    /// only the latest Ping), so a flood from a peer that does not read leaves one. Kept
    /// small, as every connection holds them.
    pong_at: u32,
    pong_len: u8,
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
    pub(crate) fn new(entropy: Option<EntropySource>) -> Self {
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
            owed: 0,
            pong_at: 0,
            pong_len: 0,
        }
    }

    /// The bytes waiting to be written, a lent payload's included.
    #[inline]
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len() - self.start + self.owed
    }

    /// Queues an automatic Pong, in place of the one that waits unwritten if there is one,
    /// so that a peer that pings without reading cannot grow the output.
    pub(crate) fn auto_pong(&mut self, payload: &[u8]) {
        if self.pong_len > 0 {
            let at = self.pong_at as usize;
            self.buf.drain(at..at + usize::from(self.pong_len));
        }
        let at = self.buf.len();
        self.frame(Opcode::Pong, true, 0, payload);
        debug_assert!(at >= self.start, "a control frame is never copied aligned");
        // A Pong is at most 131 bytes; past 4 GiB of queued output it is not tracked.
        match (u32::try_from(at), u8::try_from(self.buf.len() - at)) {
            (Ok(pong_at), Ok(pong_len)) => (self.pong_at, self.pong_len) = (pong_at, pong_len),
            _ => self.pong_len = 0,
        }
    }

    /// Whether an automatic Pong waits with none of it written.
    pub(crate) fn pong_waiting(&self) -> bool {
        self.pong_len > 0
    }

    pub(crate) fn pending(&self) -> &[u8] {
        self.assert_not_owed();
        self.queued()
    }

    /// Panics if a leaked sender left a frame header without its payload: nothing may be
    /// sent or queued behind it.
    #[inline]
    pub(crate) fn assert_not_owed(&self) {
        assert_eq!(
            self.owed, 0,
            "a Sender holding a borrowed payload was leaked: its frame cannot be completed"
        );
    }

    /// The queued bytes, for the sender that owes what follows them.
    #[inline]
    pub(crate) fn queued(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Whether frames are masked (a client's).
    #[inline]
    pub(crate) fn masks(&self) -> bool {
        self.masker.is_some()
    }

    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        assert!(
            n <= self.buf.len() - self.start,
            "consumed more bytes than are pending"
        );
        self.start += n;
        if self.pong_len > 0 && (self.pong_at as usize) < self.start {
            // Being written: it must go out whole.
            self.pong_len = 0;
        }
        if self.start == self.buf.len() {
            self.start = 0;
            self.buf.clear();
        }
    }

    /// Frees the memory if nothing is pending.
    #[inline]
    pub(crate) fn release_if_empty(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
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

    /// Queues the header of an unmasked frame whose payload the caller appends or writes
    /// right behind it.
    pub(crate) fn unmasked_header(&mut self, opcode: Opcode, fin: bool, rsv: u8, len: usize) {
        debug_assert!(self.masker.is_none(), "clients mask every frame");
        let (head, head_len) = encode_header(opcode, fin, rsv, None, len);
        self.buf.extend_from_slice(&head[..head_len]);
    }

    /// Appends bytes that follow a queued header.
    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Queues one frame, masked when this is a client (RFC 6455 §5.3).
    #[inline]
    pub(crate) fn frame(&mut self, opcode: Opcode, fin: bool, rsv: u8, payload: &[u8]) {
        debug_assert_eq!(self.owed, 0, "a borrowed payload goes first");
        let mask = self.masker.as_deref_mut().map(Masker::next_key);
        if payload.len() as u64 <= MAX_SHORT_PAYLOAD {
            self.short_frame(opcode, fin, rsv, mask, payload);
            return;
        }
        self.long_frame(opcode, fin, rsv, mask, payload);
    }

    /// A frame whose length fits the header's first length byte: its header written without
    /// the general encoder, and space reserved once (a client's 16-byte message took 440
    /// instructions through the general path, 295 with this and the send path inlined).
    #[inline]
    fn short_frame(
        &mut self,
        opcode: Opcode,
        fin: bool,
        rsv: u8,
        mask: Option<[u8; 4]>,
        payload: &[u8],
    ) {
        // Written here rather than by `FrameHeader::encode`: with the length known to be 2
        // or 6 the header's copy is inlined (callgrind: 33 instructions fewer per message).
        let mut head = [0u8; 6];
        head[0] = first_byte(fin, rsv, opcode);
        head[1] = payload.len() as u8;
        let mut len = 2;
        if let Some(key) = mask {
            head[1] |= 0x80;
            head[2..6].copy_from_slice(&key);
            len = 6;
        }
        self.buf.reserve(len + payload.len());
        self.buf.extend_from_slice(&head[..len]);
        let at = self.buf.len();
        self.buf.extend_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut self.buf[at..], key, 0);
        }
    }

    /// A frame with a 16- or 64-bit length.
    fn long_frame(
        &mut self,
        opcode: Opcode,
        fin: bool,
        rsv: u8,
        mask: Option<[u8; 4]>,
        payload: &[u8],
    ) {
        let (head, head_len) = encode_header(opcode, fin, rsv, mask, payload.len());
        let aligned = self.buf.is_empty() && payload.len() >= ALIGNED_COPY_MIN;
        let gap_room = if aligned { COPY_ALIGN } else { 0 };
        self.buf.reserve(gap_room + head_len + payload.len());
        if aligned {
            // Start the frame a few bytes in, so that the payload's copy has the same
            // alignment as its source.
            let payload_at = self.buf.as_ptr() as usize + head_len;
            let gap = (payload.as_ptr() as usize).wrapping_sub(payload_at) % COPY_ALIGN;
            self.buf.resize(gap, 0);
            self.start = gap;
        }
        self.buf.extend_from_slice(&head[..head_len]);
        let payload_start = self.buf.len();
        self.buf.extend_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut self.buf[payload_start..], key, 0);
        }
    }
}

/// A frame header in the shortest form, and how many of the bytes it uses.
pub(crate) fn encode_header(
    opcode: Opcode,
    fin: bool,
    rsv: u8,
    mask: Option<[u8; 4]>,
    payload_len: usize,
) -> ([u8; MAX_HEADER_LEN], usize) {
    let header = FrameHeader {
        fin,
        rsv,
        opcode,
        mask,
        payload_len: payload_len as u64,
    };
    let mut head = [0; MAX_HEADER_LEN];
    let len = header.encode(&mut head);
    (head, len)
}

/// Large payloads are copied into the output at the same offset modulo this as their
/// source. `memcpy` (glibc's `rep movsb` on the AMD EPYC the benches ran on) copied 64 KiB
/// at 1.7 GiB/s instead of 28 when the destination was 1-31 bytes past the source modulo
/// 4 KiB, and the 64 KiB echo hit that for most messages: the receive and output buffers
/// of a connection sat 16 bytes apart and the headers differ by 4. Same alignment modulo 64
/// can never be in that window.
const COPY_ALIGN: usize = 64;

/// Payloads from this size on are copied aligned with their source; below it the gap is
/// not worth it.
const ALIGNED_COPY_MIN: usize = 4096;

/// Masking keys drawn per call to the entropy source: 256 frames' worth, so a client sending
/// small messages does not pay a `getrandom` system call every few frames (the encode bench
/// showed 43% of a 16-byte masked send in `getrandom` with a 64-byte pool).
const KEY_POOL: usize = 1024;

/// Hands out masking keys, drawing entropy `KEY_POOL` bytes at a time so the caller's
/// generator is not called for every frame. Boxed: only clients have one.
struct Masker {
    source: EntropySource,
    pool: [u8; KEY_POOL],
    used: usize,
}

impl Masker {
    #[inline]
    fn next_key(&mut self) -> [u8; 4] {
        if self.used == KEY_POOL {
            (self.source)(&mut self.pool);
            self.used = 0;
        }
        let key = self.pool[self.used..self.used + 4]
            .try_into()
            .expect("4-byte slice");
        self.used += 4;
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer holding `data` at the front, with `len` bytes of room in all.
    fn filled_with(data: &[u8], len: usize) -> RecvBuffer {
        let mut recv = RecvBuffer::default();
        recv.make_room(0, len, 0, usize::MAX);
        assert_eq!(recv.capacity(), len);
        recv.spare()[..data.len()].copy_from_slice(data);
        recv.commit(data.len());
        recv
    }

    #[test]
    fn large_payload_lands_at_its_source_alignment() {
        let source: Vec<u8> = (0..9_000u32).map(|i| i as u8).collect();
        for offset in 0..COPY_ALIGN {
            let payload = &source[offset..offset + ALIGNED_COPY_MIN];
            let mut out = Output::new(None);
            out.frame(Opcode::Binary, true, 0, payload);
            let header = [0x82, 0x7e, 0x10, 0x00];
            assert_eq!(&out.pending()[..4], &header);
            assert_eq!(&out.pending()[4..], payload);
            let copied_to = out.pending()[4..].as_ptr() as usize;
            assert_eq!(
                copied_to.wrapping_sub(payload.as_ptr() as usize) % COPY_ALIGN,
                0,
                "offset {offset}"
            );
            // Small payloads and frames behind pending bytes get no gap.
            out.frame(Opcode::Binary, true, 0, &payload[..10]);
            assert_eq!(out.pending().len(), 4 + ALIGNED_COPY_MIN + 2 + 10);
            out.consume(out.pending().len());
            out.frame(Opcode::Text, true, 0, b"hi");
            assert_eq!(out.pending(), b"\x81\x02hi");
            assert_eq!(out.start, 0);
        }
    }

    #[test]
    fn first_buffer_holds_one_read() {
        let mut recv = RecvBuffer::default();
        assert_eq!(recv.make_room(0, 4096, 0, usize::MAX), 0);
        assert_eq!(recv.capacity(), 4096);
        assert_eq!(recv.spare().len(), 4096);
    }

    #[test]
    fn enough_room_and_many_live_bytes_stay_put() {
        // 16 live bytes behind 16 consumed ones: moving them gains little.
        let data: Vec<u8> = (0..32).collect();
        let mut recv = filled_with(&data, 64);
        assert_eq!(recv.make_room(16, 32, 0, usize::MAX), 0);
        assert_eq!(recv.bytes(), &data[..]);
        assert_eq!(recv.spare().len(), 32);
    }

    #[test]
    fn few_live_bytes_far_back_move_to_the_front() {
        // 4 live bytes behind 60 consumed ones move even though 64 bytes of room are there.
        let data: Vec<u8> = (0..64).collect();
        let mut recv = filled_with(&data, 128);
        assert_eq!(recv.make_room(60, 16, 0, usize::MAX), 60);
        assert_eq!(recv.bytes(), &[60, 61, 62, 63]);
        assert_eq!(recv.capacity(), 128);
        assert_eq!(recv.spare().len(), 124);
    }

    #[test]
    fn short_room_moves_live_bytes_before_growing() {
        let data: Vec<u8> = (0..64).collect();
        let mut recv = filled_with(&data, 64);
        assert_eq!(recv.make_room(32, 32, 0, usize::MAX), 32);
        assert_eq!(recv.bytes(), &data[32..]);
        assert_eq!(recv.capacity(), 64, "moving made the room: no growth");
    }

    #[test]
    fn growth_keeps_only_live_bytes_and_leaves_room_for_several_reads() {
        let data: Vec<u8> = (0..64).collect();
        let mut recv = filled_with(&data, 64);
        assert_eq!(recv.make_room(8, 64, 0, usize::MAX), 8);
        assert_eq!(recv.bytes(), &data[8..]);
        assert_eq!(recv.capacity(), READS_PER_BUFFER * 64);
        // Doubling once past that.
        let live = recv.bytes().to_vec();
        let filled = recv.filled();
        recv.spare().fill(7);
        recv.commit(recv.capacity() - filled);
        assert_eq!(recv.make_room(0, 64, 0, usize::MAX), 0);
        assert_eq!(recv.capacity(), 2 * READS_PER_BUFFER * 64);
        assert_eq!(&recv.bytes()[..live.len()], &live[..]);
    }

    #[test]
    fn growth_makes_room_for_the_rest_of_an_announced_frame() {
        let data: Vec<u8> = (0..64).collect();
        let mut recv = filled_with(&data, 64);
        // 60 live bytes of a frame whose header announced 1,000 more.
        assert_eq!(recv.make_room(4, 64, 1000, usize::MAX), 4);
        assert_eq!(recv.bytes(), &data[4..]);
        assert_eq!(recv.capacity(), 60 + 1000 + 64);
        // The bound still caps it.
        let mut recv = filled_with(&data, 64);
        recv.make_room(4, 64, 1000, 500);
        assert_eq!(recv.capacity(), 500);
    }

    #[test]
    fn growth_stops_at_the_bound_unless_the_request_needs_more() {
        let data: Vec<u8> = (0..64).collect();
        let mut recv = filled_with(&data, 64);
        recv.make_room(0, 64, 0, 200);
        assert_eq!(recv.capacity(), 200);
        let mut recv = filled_with(&data, 64);
        recv.make_room(0, 100, 0, 120);
        assert_eq!(recv.capacity(), 164, "64 live bytes and 100 of room");
    }
}
