//! The receiving side: the receive buffer and every offset into it, frame parsing, the
//! RFC 6455 §5 checks, reassembly of fragments in place, and inflation.
//!
//! The reader knows nothing of the connection's state: it turns received bytes into frames
//! and messages, and the connection decides what they mean.
//!
//! A message is either joined in place and reported whole, or, under
//! `Config::stream_messages`, lent a chunk at a time as its bytes arrive: then the buffer
//! keeps only the few bytes of a code point split between two chunks (moved up next to the
//! payload that completes it), and compressed messages are inflated a chunk at a time into
//! a buffer of at most one read.

use crate::buffer::RecvBuffer;
use crate::config::{Config, Role};
use crate::deflate::{InflateError, Inflater};
use crate::error::ProtocolError;
use crate::event::MessageKind;
use crate::extension::RSV1;
use crate::frame::{FrameHeader, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, Opcode};
use crate::handshake::HeadScanner;
use crate::mask::apply_mask;
use crate::utf8::{self, Utf8Validator};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ops::Range;

/// Masked text is unmasked and validated in blocks of this size: small enough to stay in
/// L1 cache between the two.
const UNMASK_AND_VALIDATE_BLOCK: usize = 8 << 10;

/// Under `Config::stream_messages`, what the receive buffer may hold beyond one read: a
/// partial frame header or control frame, and a split code point. The chunks of a
/// compressed message are this much shorter than a read, so that the two buffers together
/// stay within two reads.
const STREAM_SLACK: usize = MAX_HEADER_LEN + MAX_CONTROL_PAYLOAD + 4;

/// The shortest chunk limit: room for a split code point and the one that completes it.
const MIN_CHUNK: usize = 8;

/// What one step of reading found.
pub(super) enum Read {
    /// More input is needed.
    NeedData,
    /// Progress without anything to report.
    Continue,
    /// A whole uncompressed message, unmasked (and validated, for text) in the buffer.
    Message(MessageKind, Range<usize>),
    /// A whole compressed message, inflated into [`Reader::inflated`].
    Inflated(MessageKind),
    /// A streamed message's next chunk, unmasked (and validated, for text) in the buffer;
    /// `true` when it ends the message.
    Chunk(MessageKind, Range<usize>, bool),
    /// A compressed streamed message's next chunk: the first bytes of
    /// [`Reader::inflated`], this many.
    InflatedChunk(MessageKind, usize, bool),
    /// A control frame, its payload unmasked in the buffer.
    Control(Opcode, Range<usize>),
}

/// A data frame whose header was read and whose payload is still arriving.
#[derive(Debug)]
struct FrameProgress {
    remaining: u64,
    mask: Option<[u8; 4]>,
    /// Payload bytes unmasked so far, for the key phase.
    unmasked: usize,
    fin: bool,
}

/// A data message being joined in place: `start..end` of the receive buffer holds its
/// unmasked payload so far.
#[derive(Debug)]
struct MessageProgress {
    kind: MessageKind,
    start: usize,
    end: usize,
    fragments: usize,
    utf8: Utf8Validator,
    /// RSV1 was set on the first frame: the payload is deflated (RFC 7692 §6).
    compressed: bool,
    /// Lent in chunks as it arrives (`Config::stream_messages`): `start..end` then holds
    /// only the bytes of a code point the last chunk left open.
    streamed: bool,
    /// Of a streamed message: its length so far (inflated, when compressed), for the limit.
    streamed_len: u64,
}

/// Received bytes, and what has been made of them so far.
#[derive(Debug)]
pub(super) struct Reader {
    recv: RecvBuffer,
    /// First byte of `recv` not yet parsed.
    parse_pos: usize,
    frame: Option<FrameProgress>,
    message: Option<MessageProgress>,
    /// RFC 6455 §5.1: a server receives masked frames, a client unmasked ones.
    expect_masked: bool,
    /// RSV bits that negotiated extensions define.
    rsv_allowed: u8,
    /// permessage-deflate's receiving half, when it was agreed.
    inflation: Option<Box<Inflation>>,
}

/// The receiving half of permessage-deflate, boxed: connections that did not agree it pay
/// one pointer.
#[derive(Debug)]
struct Inflation {
    inflater: Inflater,
    /// The inflated payload of the compressed message being received, lent by its event.
    out: Vec<u8>,
    /// How many bytes at the front of `out` the last streamed chunk lent.
    lent: usize,
    /// Of a streamed compressed frame: bytes after `parse_pos` already unmasked, which the
    /// inflater has not taken yet.
    ahead: usize,
}

impl Reader {
    pub(super) fn new(role: Role) -> Self {
        Self {
            recv: RecvBuffer::default(),
            parse_pos: 0,
            frame: None,
            message: None,
            expect_masked: role == Role::Server,
            rsv_allowed: 0,
            inflation: None,
        }
    }

    /// What the handshake agreed: the RSV bits extensions define, and the decompressor.
    pub(super) fn agree(&mut self, rsv_allowed: u8, inflater: Option<Inflater>) {
        self.rsv_allowed = rsv_allowed;
        self.inflation = inflater.map(|inflater| {
            Box::new(Inflation {
                inflater,
                out: Vec::new(),
                lent: 0,
                ahead: 0,
            })
        });
    }

    // ----- the buffer ------------------------------------------------------------------

    /// The received bytes, for events to borrow by range.
    #[inline(always)]
    pub(super) fn bytes(&self) -> &[u8] {
        self.recv.bytes()
    }

    /// The inflated message of [`Read::Inflated`].
    pub(super) fn inflated(&self) -> &[u8] {
        self.inflation.as_ref().map_or(&[], |i| &i.out)
    }

    /// Received bytes not yet parsed.
    pub(super) fn unparsed(&self) -> usize {
        self.recv.filled() - self.parse_pos
    }

    pub(super) fn receive(&mut self, config: &Config, bytes: &[u8]) {
        self.make_room(config, bytes.len());
        self.recv.spare()[..bytes.len()].copy_from_slice(bytes);
        self.recv.commit(bytes.len());
    }

    pub(super) fn receive_buffer(&mut self, config: &Config) -> &mut [u8] {
        self.make_room(config, config.read_buffer_size);
        let limit = self.large_frame_rest(config).unwrap_or(usize::MAX);
        self.recv.spare_up_to(limit)
    }

    pub(super) fn commit(&mut self, n: usize) {
        self.recv.commit(n);
    }

    /// The bytes still to come of the data frame being received, when that frame is at
    /// least a read long.
    fn large_frame_rest(&self, config: &Config) -> Option<usize> {
        let frame = self.frame.as_ref()?;
        let length = frame.remaining.saturating_add(frame.unmasked as u64);
        let rest = self.frame_rest();
        (length >= config.read_buffer_size as u64 && rest > 0).then_some(rest)
    }

    /// Payload bytes of the data frame being received that are not in the buffer yet.
    fn frame_rest(&self) -> usize {
        let Some(frame) = &self.frame else { return 0 };
        let buffered = self.unparsed() as u64;
        usize::try_from(frame.remaining.saturating_sub(buffered)).unwrap_or(usize::MAX)
    }

    pub(super) fn has_partial_input(&self) -> bool {
        self.live_start() < self.recv.filled()
    }

    pub(super) fn prefers_receive_buffer(&self, config: &Config) -> bool {
        self.has_partial_input() || self.recv.room() >= config.read_buffer_size
    }

    /// The first byte still needed: the message being joined, else the next unparsed byte.
    fn live_start(&self) -> usize {
        self.message.as_ref().map_or(self.parse_pos, |m| m.start)
    }

    fn make_room(&mut self, config: &Config, want: usize) {
        self.clear_if_drained(config);
        // Frame headers and control frames consumed inside a fragmented message leave dead
        // bytes between its joined payload and the next unparsed byte; close that gap first,
        // or a peer could grow the buffer with Pings between two fragments.
        if let Some(m) = &self.message
            && self.parse_pos > m.end
        {
            self.recv.remove(m.end..self.parse_pos);
            self.parse_pos = m.end;
        }
        let shift = self.recv.make_room(
            self.live_start(),
            want,
            self.expected_payload(),
            self.receive_bound(config),
        );
        if shift > 0 {
            self.shift_down(shift);
        }
    }

    /// Every offset into the buffer follows its bytes moving `by` towards the front.
    fn shift_down(&mut self, by: usize) {
        self.parse_pos -= by;
        if let Some(m) = &mut self.message {
            m.start -= by;
            m.end -= by;
        }
    }

    /// Bytes of the current data frame's payload still to come, which will have to sit in
    /// the buffer together (compressed and streamed payloads are used as they come, so none
    /// are).
    fn expected_payload(&self) -> usize {
        match &self.message {
            Some(message) if !message.compressed && !message.streamed => self.frame_rest(),
            _ => 0,
        }
    }

    /// The most the receive buffer needs: a whole message or request head, a control frame
    /// and the frame headers around them, and one read. Streamed messages hold no more than
    /// a split code point, so one read and [`STREAM_SLACK`] are enough then (a request head
    /// longer than that still gets room: the bound never refuses what a read needs).
    fn receive_bound(&self, config: &Config) -> usize {
        if config.stream_messages {
            return config.read_buffer_size.saturating_add(STREAM_SLACK);
        }
        let held = config.max_message_size.max(config.max_head_size);
        held.saturating_add(config.read_buffer_size)
            .saturating_add(2 * (MAX_HEADER_LEN + MAX_CONTROL_PAYLOAD))
    }

    /// Once every byte is processed the buffer starts over at its front; its memory is kept
    /// for the next message unless `Config::buffer_linger` is `None`.
    fn clear_if_drained(&mut self, config: &Config) {
        if self.live_start() == self.recv.filled() {
            if config.buffer_linger.is_some() {
                self.recv.clear();
            } else {
                self.recv.release();
            }
            self.parse_pos = 0;
            if let Some(m) = &mut self.message {
                m.start = 0;
                m.end = 0;
            }
        }
    }

    /// Forgets every received byte and any frame or message in progress.
    pub(super) fn drop_input(&mut self) {
        self.recv.release();
        self.parse_pos = 0;
        self.frame = None;
        self.message = None;
    }

    /// Before the next event: the last event's inflated message is gone, and a drained
    /// buffer starts over.
    #[inline(always)]
    pub(super) fn start_event(&mut self, config: &Config) {
        if let Some(inflation) = &mut self.inflation {
            if !self.message.as_ref().is_some_and(|m| m.compressed) {
                inflation.out.clear();
                if config.buffer_linger.is_none() {
                    inflation.out = Vec::new();
                }
            } else if inflation.lent > 0 {
                // A streamed chunk was lent: what stays is a code point it left open.
                inflation.out.drain(..inflation.lent);
            }
            inflation.lent = 0;
        }
        self.clear_if_drained(config);
    }

    /// After the input ran out: a drained buffer starts over.
    pub(super) fn need_data(&mut self, config: &Config) {
        self.clear_if_drained(config);
    }

    /// Frees the buffers that hold no bytes still needed.
    pub(super) fn release_buffers(&mut self) {
        if self.live_start() == self.recv.filled() {
            self.recv.release();
            self.parse_pos = 0;
            if let Some(m) = &mut self.message {
                m.start = 0;
                m.end = 0;
            }
        }
        if let Some(inflation) = &mut self.inflation
            && inflation.out.is_empty()
        {
            inflation.out = Vec::new();
        }
    }

    /// Whether emptied buffers are kept that `release_buffers` would free.
    pub(super) fn holds_spare_buffers(&self) -> bool {
        (self.recv.capacity() > 0 && self.live_start() == self.recv.filled())
            || self
                .inflation
                .as_ref()
                .is_some_and(|i| i.out.is_empty() && i.out.capacity() > 0)
    }

    pub(super) fn heap_size(&self) -> usize {
        self.recv.capacity() + self.inflation.as_ref().map_or(0, |i| i.out.capacity())
    }

    // ----- the opening handshake ---------------------------------------------------------

    /// Looks for the end of an HTTP head, in at most `max_head_size` bytes. `Ok(Some(end))`
    /// once complete: the head is `bytes()[..end]`, and what follows is the first frame.
    ///
    /// # Errors
    /// `Err(())` when no head ends within the limit.
    pub(super) fn scan_head(
        &mut self,
        config: &Config,
        scanner: &mut HeadScanner,
    ) -> Result<Option<usize>, ()> {
        let limit = config.max_head_size;
        let received = self.recv.bytes();
        match scanner.scan(&received[..received.len().min(limit)]) {
            Some(end) => Ok(Some(end)),
            None if received.len() >= limit => Err(()),
            None => Ok(None),
        }
    }

    /// The head ended at `end`: frames start after it, and are never lost.
    pub(super) fn skip_head(&mut self, end: usize) {
        self.parse_pos = end;
    }

    // ----- frames ------------------------------------------------------------------------

    /// Parses and processes as much input as one result needs.
    #[inline]
    ///
    /// A streamed chunk lends at most `chunk_limit` bytes (`Connection::next_event_up_to`).
    pub(super) fn read(
        &mut self,
        config: &Config,
        chunk_limit: usize,
    ) -> Result<Read, ProtocolError> {
        if let Some(message) = &self.message
            && message.streamed
        {
            if self.frame.is_some() {
                return if message.compressed {
                    self.continue_inflated_chunk(config, chunk_limit)
                } else {
                    self.continue_chunk(config, chunk_limit)
                };
            }
        } else if self.frame.is_some() {
            return self.continue_data_frame(config);
        }
        let Some((header, header_len)) = FrameHeader::parse(&self.recv.bytes()[self.parse_pos..])?
        else {
            return Ok(Read::NeedData);
        };
        if !self.starts_a_plain_message(config, &header) {
            self.check_header(config, &header)?;
        }
        if header.opcode.is_control() {
            // Control payloads are at most 125 bytes: wait until the whole frame is here.
            let start = self.parse_pos + header_len;
            let end = start + header.payload_len as usize;
            if self.recv.filled() < end {
                return Ok(Read::NeedData);
            }
            if let Some(key) = header.mask {
                apply_mask(&mut self.recv.bytes_mut()[start..end], key, 0);
            }
            self.parse_pos = end;
            return Ok(Read::Control(header.opcode, start..end));
        }
        self.parse_pos += header_len;
        if let Some(read) = self.whole_message_frame(config, &header, chunk_limit)? {
            return Ok(read);
        }
        match header.opcode {
            Opcode::Continuation => {
                if let Some(m) = &mut self.message {
                    m.fragments += 1;
                }
            }
            opcode => {
                self.message = Some(MessageProgress {
                    kind: data_kind(opcode),
                    start: self.parse_pos,
                    end: self.parse_pos,
                    fragments: 1,
                    utf8: Utf8Validator::default(),
                    compressed: header.rsv & RSV1 != 0,
                    streamed: config.stream_messages,
                    streamed_len: 0,
                });
            }
        }
        self.frame = Some(FrameProgress {
            remaining: header.payload_len,
            mask: header.mask,
            unmasked: 0,
            fin: header.fin,
        });
        if let Some(inflation) = &mut self.inflation {
            inflation.ahead = 0;
        }
        Ok(Read::Continue)
    }

    /// The common case in one go: an uncompressed single-frame message whose payload is all
    /// here is unmasked, validated and reported without the frame and message bookkeeping
    /// that payloads arriving in pieces need (half the time of a 16-byte message went
    /// there). `parse_pos` is just past the header. `None` leaves the frame to the general
    /// path. Inlined into `read`, so the result does not go through memory.
    /// Streamed, such a message is one chunk that ends it, when it is no longer than the
    /// chunk limit.
    #[inline(always)]
    fn whole_message_frame(
        &mut self,
        config: &Config,
        header: &FrameHeader,
        chunk_limit: usize,
    ) -> Result<Option<Read>, ProtocolError> {
        if !matches!(header.opcode, Opcode::Text | Opcode::Binary) {
            return Ok(None);
        }
        let kind = data_kind(header.opcode);
        let start = self.parse_pos;
        let here = (self.recv.filled() - start) as u64;
        if !header.fin || header.rsv & RSV1 != 0 || header.payload_len > here {
            return Ok(None);
        }
        let streamed = config.stream_messages;
        if streamed && header.payload_len > chunk_limit as u64 {
            return Ok(None);
        }
        let end = start + header.payload_len as usize;
        let payload = &mut self.recv.bytes_mut()[start..end];
        if let Some(key) = header.mask {
            apply_mask(payload, key, 0);
        }
        if kind == MessageKind::Text {
            // RFC 6455 §8.1: the whole text is here, so the first invalid byte is too.
            utf8::validate_complete(payload).map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        self.parse_pos = end;
        if streamed {
            return Ok(Some(Read::Chunk(kind, start..end, true)));
        }
        Ok(Some(Read::Message(kind, start..end)))
    }

    /// Whether `header` is the common case that [`check_header`](Self::check_header) passes
    /// without a question: a text or binary frame that starts a message, masked as it must
    /// be, with no RSV bit and within both size limits. A few comparisons inline, where the
    /// call to the full check, with its error returned through memory, was a tenth of the
    /// time of a 1 KiB message outside the read's copy.
    #[inline(always)]
    fn starts_a_plain_message(&self, config: &Config, header: &FrameHeader) -> bool {
        self.message.is_none()
            && header.rsv == 0
            && matches!(header.opcode, Opcode::Text | Opcode::Binary)
            && header.mask.is_some() == self.expect_masked
            && header.payload_len <= config.max_message_size as u64
            && config
                .max_frame_size
                .is_none_or(|max| header.payload_len <= max as u64)
    }

    /// Enforces the rules a header alone can break, before any payload is buffered.
    fn check_header(&self, config: &Config, header: &FrameHeader) -> Result<(), ProtocolError> {
        match (self.expect_masked, header.mask.is_some()) {
            // RFC 6455 §5.1: a server MUST close on an unmasked frame...
            (true, false) => return Err(ProtocolError::UnmaskedFrame),
            // ...and a client MUST close on a masked one.
            (false, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        // RFC 6455 §5.2: RSV bits MUST be 0 unless an extension defines them.
        if header.rsv & !self.rsv_allowed != 0 {
            return Err(ProtocolError::ReservedBits(header.rsv));
        }
        // RFC 7692 §6: RSV1 marks a compressed message on its first frame only, never on
        // continuation or control frames.
        if header.rsv & RSV1 != 0 && !matches!(header.opcode, Opcode::Text | Opcode::Binary) {
            return Err(ProtocolError::ReservedBits(header.rsv));
        }
        if header.opcode.is_control() {
            // RFC 6455 §5.5: control frames MUST NOT be fragmented...
            if !header.fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            // ...and carry at most 125 bytes.
            if header.payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::ControlFrameTooLong(header.payload_len));
            }
            return Ok(());
        }
        let so_far = match (&self.message, header.opcode) {
            // RFC 6455 §5.4: a continuation needs a fragmented message in progress...
            (None, Opcode::Continuation) => return Err(ProtocolError::UnexpectedContinuation),
            // ...and a new message cannot start inside one.
            (Some(_), Opcode::Text | Opcode::Binary) => {
                return Err(ProtocolError::ExpectedContinuation);
            }
            (Some(m), _) => {
                if m.fragments >= config.max_fragments_per_message {
                    return Err(ProtocolError::TooManyFragments {
                        max: config.max_fragments_per_message,
                    });
                }
                if m.streamed && !m.compressed {
                    m.streamed_len
                } else {
                    (m.end - m.start) as u64
                }
            }
            (None, _) => 0,
        };
        if let Some(max) = config.max_frame_size
            && header.payload_len > max as u64
        {
            return Err(ProtocolError::FrameTooLarge {
                len: header.payload_len,
                max,
            });
        }
        let total = so_far.saturating_add(header.payload_len);
        if total > config.max_message_size as u64 {
            return Err(ProtocolError::MessageTooLarge {
                len: total,
                max: config.max_message_size,
            });
        }
        Ok(())
    }

    /// Unmasks, joins and validates the payload bytes of the current data frame that are here.
    fn continue_data_frame(&mut self, config: &Config) -> Result<Read, ProtocolError> {
        let (Some(frame), Some(message)) = (&mut self.frame, &mut self.message) else {
            unreachable!("a data frame in progress belongs to a message");
        };
        let available = (self.recv.filled() - self.parse_pos) as u64;
        let n = frame.remaining.min(available) as usize;
        if n == 0 && frame.remaining > 0 {
            return Ok(Read::NeedData);
        }
        let bytes = self.recv.bytes_mut();
        let src = self.parse_pos..self.parse_pos + n;
        // Text that stays where it arrived is validated a block at a time right after the
        // block is unmasked, while it is still in L1 cache, rather than read again in full.
        let mut validated = false;
        if let Some(key) = frame.mask {
            if message.kind == MessageKind::Text && !message.compressed && message.end == src.start
            {
                let mut phase = frame.unmasked;
                for block in bytes[src.clone()].chunks_mut(UNMASK_AND_VALIDATE_BLOCK) {
                    apply_mask(block, key, phase);
                    phase += block.len();
                    // RFC 6455 §8.1: fail as soon as the text can no longer be valid UTF-8.
                    message
                        .utf8
                        .feed(block)
                        .map_err(|_| ProtocolError::InvalidUtf8)?;
                }
                validated = true;
            } else {
                apply_mask(&mut bytes[src.clone()], key, frame.unmasked);
            }
        }
        if message.compressed {
            inflate_into(
                self.inflation.as_deref_mut(),
                message,
                &bytes[src.clone()],
                config.max_message_size,
                false,
            )?;
            // Compressed bytes are used up as they are inflated: nothing of them is kept.
            message.start = src.end;
            message.end = src.end;
        } else {
            // Join fragments in place: move this payload down over the headers before it.
            if message.end != src.start {
                bytes.copy_within(src.clone(), message.end);
            }
            let joined = message.end..message.end + n;
            if message.kind == MessageKind::Text && !validated {
                message
                    .utf8
                    .feed(&bytes[joined.clone()])
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            message.end = joined.end;
        }
        frame.unmasked += n;
        frame.remaining -= n as u64;
        self.parse_pos = src.end;
        if frame.remaining > 0 {
            return Ok(Read::NeedData);
        }
        let fin = frame.fin;
        self.frame = None;
        if !fin {
            return Ok(Read::Continue);
        }
        if message.compressed {
            inflate_into(
                self.inflation.as_deref_mut(),
                message,
                &[],
                config.max_message_size,
                true,
            )?;
        }
        let message = self.finish_message()?;
        if message.compressed {
            return Ok(Read::Inflated(message.kind));
        }
        Ok(Read::Message(message.kind, message.start..message.end))
    }
}

impl Reader {
    /// Ends the message in progress: text must not stop inside a code point (RFC 6455
    /// §8.1).
    fn finish_message(&mut self) -> Result<MessageProgress, ProtocolError> {
        let mut message = self.message.take().expect("a message in progress");
        if message.kind == MessageKind::Text {
            message
                .utf8
                .finish()
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        Ok(message)
    }

    /// The most a chunk may hold: the caller's limit, and for inflated chunks a read less
    /// the slack the receive buffer keeps.
    fn chunk_cap(chunk_limit: usize, inflated: bool, config: &Config) -> usize {
        let cap = if inflated {
            chunk_limit.min(config.read_buffer_size.saturating_sub(STREAM_SLACK))
        } else {
            chunk_limit
        };
        cap.max(MIN_CHUNK)
    }

    /// Streaming: lends the payload bytes of the current data frame that are here, unmasked
    /// in place and, for text, validated up to the last complete code point.
    fn continue_chunk(&mut self, config: &Config, limit: usize) -> Result<Read, ProtocolError> {
        let cap = Self::chunk_cap(limit, false, config);
        let (Some(frame), Some(message)) = (&mut self.frame, &mut self.message) else {
            unreachable!("a data frame in progress belongs to a message");
        };
        let carried = message.end - message.start;
        let available = (self.recv.filled() - self.parse_pos) as u64;
        let n = frame.remaining.min(available).min((cap - carried) as u64) as usize;
        if n == 0 && frame.remaining > 0 {
            return Ok(Read::NeedData);
        }
        let bytes = self.recv.bytes_mut();
        let src = self.parse_pos..self.parse_pos + n;
        if let Some(key) = frame.mask {
            apply_mask(&mut bytes[src.clone()], key, frame.unmasked);
        }
        // The open code point moves up over the frame header between it and this payload,
        // so that the chunk is one slice.
        let start = src.start - carried;
        if carried > 0 && message.end != src.start {
            bytes.copy_within(message.start..message.end, start);
        }
        let mut end = src.end;
        if message.kind == MessageKind::Text {
            // RFC 6455 §8.1: fail as soon as the text can no longer be valid UTF-8.
            message
                .utf8
                .feed(&bytes[src.clone()])
                .map_err(|_| ProtocolError::InvalidUtf8)?;
            end = start + utf8::open_tail_start(&bytes[start..src.end]);
        }
        frame.unmasked += n;
        frame.remaining -= n as u64;
        message.streamed_len += n as u64;
        self.parse_pos = src.end;
        let frame_done = frame.remaining == 0;
        if frame_done && frame.fin {
            self.frame = None;
            let message = self.finish_message()?;
            return Ok(Read::Chunk(message.kind, start..src.end, true));
        }
        message.start = end;
        message.end = src.end;
        let kind = message.kind;
        if frame_done {
            self.frame = None;
        }
        Ok(if end > start {
            Read::Chunk(kind, start..end, false)
        } else if frame_done {
            Read::Continue
        } else {
            Read::NeedData
        })
    }

    /// Streaming: inflates the compressed bytes of the current data frame that are here
    /// into a chunk of at most a read, and lends it (text validated up to its last complete
    /// code point, which stays at the front of `inflated` for the next chunk).
    fn continue_inflated_chunk(
        &mut self,
        config: &Config,
        limit: usize,
    ) -> Result<Read, ProtocolError> {
        let cap = Self::chunk_cap(limit, true, config);
        let (Some(frame), Some(message)) = (&mut self.frame, &mut self.message) else {
            unreachable!("a data frame in progress belongs to a message");
        };
        // RSV1 is allowed only once permessage-deflate was agreed, so the inflater exists.
        let Inflation {
            inflater,
            out,
            lent,
            ahead,
        } = self
            .inflation
            .as_deref_mut()
            .ok_or(ProtocolError::ReservedBits(RSV1))?;
        let available = frame
            .remaining
            .min((self.recv.filled() - self.parse_pos) as u64);
        let available = available as usize;
        let bytes = self.recv.bytes_mut();
        let input = self.parse_pos..self.parse_pos + available;
        if let Some(key) = frame.mask
            && *ahead < available
        {
            let fresh = input.start + *ahead..input.end;
            apply_mask(&mut bytes[fresh], key, frame.unmasked + *ahead);
        }
        *ahead = available;
        let last = frame.fin && available as u64 == frame.remaining;
        let carried = out.len();
        // One byte past the limit is as far as inflation goes, as for whole messages.
        let to_limit = (config.max_message_size as u64)
            .saturating_add(1)
            .saturating_sub(message.streamed_len);
        let cap = cap.min(carried.saturating_add(usize::try_from(to_limit).unwrap_or(usize::MAX)));
        let inflated = inflater.inflate_bounded(&bytes[input], out, cap, last);
        // What came out before any error is validated first, as for whole messages: the
        // error reported is the first in the message.
        if message.kind == MessageKind::Text {
            message
                .utf8
                .feed(&out[carried..])
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        let (used, drained) = inflated.map_err(|_| ProtocolError::InvalidCompressedData)?;
        frame.unmasked += used;
        *ahead -= used;
        frame.remaining -= used as u64;
        self.parse_pos += used;
        message.start = self.parse_pos;
        message.end = self.parse_pos;
        let made = out.len() - carried;
        message.streamed_len += made as u64;
        // RFC 7692 §8: the limit applies to the inflated message.
        if message.streamed_len > config.max_message_size as u64 {
            return Err(ProtocolError::MessageTooLarge {
                len: message.streamed_len,
                max: config.max_message_size,
            });
        }
        let mut end = out.len();
        if message.kind == MessageKind::Text {
            end = utf8::open_tail_start(out);
        }
        if last && drained {
            self.frame = None;
            *lent = out.len();
            let whole = *lent;
            let message = self.finish_message()?;
            return Ok(Read::InflatedChunk(message.kind, whole, true));
        }
        let kind = message.kind;
        // A frame is done once the inflater holds nothing of it back: what it still has
        // must come out before the next frame's header is read.
        let frame_done = frame.remaining == 0 && !frame.fin && drained;
        if frame_done {
            self.frame = None;
        }
        if end > 0 {
            *lent = end;
            return Ok(Read::InflatedChunk(kind, end, false));
        }
        Ok(if frame_done || used > 0 || made > 0 {
            Read::Continue
        } else {
            Read::NeedData
        })
    }
}

/// The kind of message a Text or Binary frame starts.
fn data_kind(opcode: Opcode) -> MessageKind {
    if opcode == Opcode::Text {
        MessageKind::Text
    } else {
        MessageKind::Binary
    }
}

/// Inflates one piece of a compressed message (or, with `last`, ends it) into `inflated`,
/// validating text as it comes out.
fn inflate_into(
    inflation: Option<&mut Inflation>,
    message: &mut MessageProgress,
    input: &[u8],
    limit: usize,
    last: bool,
) -> Result<(), ProtocolError> {
    // RSV1 is allowed only once permessage-deflate was agreed, so the inflater exists.
    let Inflation {
        inflater,
        out: inflated,
        ..
    } = inflation.ok_or(ProtocolError::ReservedBits(RSV1))?;
    let before = inflated.len();
    let result = if last {
        inflater.finish_inflate(inflated, limit)
    } else {
        inflater.inflate(input, inflated, limit)
    };
    // Text that came out before an error is validated first: an invalid byte there comes
    // earlier in the message than the error (and streaming finds it in an earlier chunk).
    if message.kind == MessageKind::Text {
        message
            .utf8
            .feed(&inflated[before..])
            .map_err(|_| ProtocolError::InvalidUtf8)?;
    }
    result.map_err(|e| match e {
        // RFC 7692 §8: the limit applies to the inflated message.
        InflateError::TooBig => ProtocolError::MessageTooLarge {
            len: inflated.len() as u64,
            max: limit,
        },
        InflateError::Corrupt => ProtocolError::InvalidCompressedData,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every header the shortcut's test tries: each field that matters, at the edges of the
    /// test's limits (a 1 MiB message limit; frame limits of 50, 100 and 2000).
    fn headers() -> impl Iterator<Item = FrameHeader> {
        let opcodes = [
            Opcode::Continuation,
            Opcode::Text,
            Opcode::Binary,
            Opcode::Close,
            Opcode::Ping,
            Opcode::Pong,
        ];
        let lengths = [0, 99, 100, 101, 1 << 20, (1 << 20) + 1, u64::MAX];
        let masks = [None, Some([1, 2, 3, 4])];
        [false, true].into_iter().flat_map(move |fin| {
            (0..8).flat_map(move |rsv| {
                opcodes.into_iter().flat_map(move |opcode| {
                    masks.into_iter().flat_map(move |mask| {
                        lengths.into_iter().map(move |payload_len| FrameHeader {
                            fin,
                            rsv,
                            opcode,
                            mask,
                            payload_len,
                        })
                    })
                })
            })
        })
    }

    /// A reader in `role` that agreed to `rsv_allowed`, in the middle of a binary message
    /// or not.
    fn reader(role: Role, rsv_allowed: u8, mid_message: bool) -> Reader {
        let mut reader = Reader::new(role);
        reader.rsv_allowed = rsv_allowed;
        if mid_message {
            reader.message = Some(MessageProgress {
                kind: MessageKind::Binary,
                start: 0,
                end: 10,
                fragments: 1,
                utf8: Utf8Validator::default(),
                compressed: false,
                streamed: false,
                streamed_len: 0,
            });
        }
        reader
    }

    /// The inline shortcut only ever skips the full check for a header that passes it, and
    /// takes it for the plain frame it is there for: every combination of role, agreed
    /// RSV bits, message in progress, frame limit and header field that matters.
    #[test]
    fn plain_message_shortcut_implies_the_full_check_passes() {
        let (mut shortcuts, mut cases) = (0, 0);
        for role in [Role::Server, Role::Client] {
            for (rsv_allowed, mid_message) in [(0, false), (0, true), (RSV1, false), (RSV1, true)] {
                for max_frame_size in [None, Some(50), Some(100), Some(2000)] {
                    let reader = reader(role, rsv_allowed, mid_message);
                    let mut config = Config::default().max_message_size(1 << 20);
                    config.max_frame_size = max_frame_size;
                    for header in headers() {
                        cases += 1;
                        if reader.starts_a_plain_message(&config, &header) {
                            shortcuts += 1;
                            assert_eq!(
                                reader.check_header(&config, &header),
                                Ok(()),
                                "{header:?}, {role:?}, mid message {mid_message}, \
                                 {max_frame_size:?}"
                            );
                        }
                    }
                    let plain = FrameHeader {
                        fin: true,
                        rsv: 0,
                        opcode: Opcode::Binary,
                        mask: (role == Role::Server).then_some([1, 2, 3, 4]),
                        payload_len: 100,
                    };
                    let within = max_frame_size.is_none_or(|max| max >= 100);
                    assert_eq!(
                        reader.starts_a_plain_message(&config, &plain),
                        !mid_message && within
                    );
                }
            }
        }
        // Text and binary, FIN or not, the right mask, no RSV bit, up to the limits:
        // lengths 0, 99, 100, 101 and 1 MiB under no frame limit or 2000, fewer under 50 and
        // 100; for 2 roles x 2 RSV agreements, with no message in progress.
        assert_eq!(cases, 2 * 2 * 2 * 4 * 2 * 8 * 6 * 2 * 7);
        assert_eq!(shortcuts, 2 * 2 * (5 + 1 + 3 + 4) * 2 * 2);
    }
}
