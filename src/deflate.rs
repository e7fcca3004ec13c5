//! permessage-deflate (RFC 7692): the settings, the agreed parameters, and the per-message
//! codec with bounded inflation.
//!
//! Inflation never produces more than the message limit allows: output grows only up to
//! `max_message_size + 1` bytes, so a message that crosses the limit is stopped at the byte
//! where it does, without inflating the rest (a 10 MB bomb in 10 KB costs at most the limit).

use crate::config::Config;
use crate::extension::Negotiated;
use alloc::boxed::Box;
use alloc::vec::Vec;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// permessage-deflate settings, for `Config::deflate` (negotiation is opt-in per connection).
///
/// The same settings serve both roles: a client asks for them in its offer, a server applies
/// them to the offer it accepts. Built from the default with a setter per field:
///
/// ```
/// use wsproto::{Config, DeflateConfig};
/// let config = Config::default().deflate(Some(
///     DeflateConfig::default().server_no_context_takeover(true).threshold(256),
/// ));
/// assert_eq!(config.deflate.unwrap().threshold, 256);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// zlib compression level, 0-9 (default 6, zlib's default).
    pub level: u32,
    /// Messages shorter than this many bytes are sent uncompressed (default 128): below that,
    /// the deflate block overhead outweighs the saving.
    pub threshold: usize,
    /// The server resets its compressor after every message (RFC 7692 §7.1.1.1); saves the
    /// server's 32 KiB+ of compression state between messages, costs ratio.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message (RFC 7692 §7.1.1.2).
    pub client_no_context_takeover: bool,
    /// The largest LZ77 window the server may use, as bits, 8-15 (RFC 7692 §7.1.2.1).
    pub server_max_window_bits: Option<u8>,
    /// The largest LZ77 window the client may use, as bits, 8-15 (RFC 7692 §7.1.2.2).
    pub client_max_window_bits: Option<u8>,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            level: 6,
            threshold: 128,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: None,
            client_max_window_bits: None,
        }
    }
}

crate::config::setters! { DeflateConfig {
    level: u32;
    threshold: usize;
    server_no_context_takeover: bool;
    client_no_context_takeover: bool;
    server_max_window_bits: Option<u8>;
    client_max_window_bits: Option<u8>;
}}

/// What the handshake agreed, seen from this endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeflateParams {
    /// Reset our compressor after each message.
    pub(crate) send_no_context_takeover: bool,
    /// The peer resets its compressor after each message, so our inflater may too.
    pub(crate) receive_no_context_takeover: bool,
    /// The largest window our compressor may use.
    pub(crate) send_max_window_bits: u8,
}

/// The empty stored block that ends a sync flush; RFC 7692 §7.2.1 strips it from each message
/// and §7.2.2 has the receiver put it back.
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// zlib cannot produce raw deflate with a 256-byte window (it silently uses 512 bytes), so
/// when the peer limits us to 8 bits we send every message uncompressed, which RFC 7692
/// always allows (RSV1 is per message).
const SMALLEST_ZLIB_WINDOW: u8 = 9;

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// It inflates past the limit.
    TooBig,
    /// It is not valid deflate data.
    Corrupt,
}

/// The codec for what the handshake agreed, when permessage-deflate was agreed and the
/// configuration asks for it.
pub(crate) fn agreed(negotiated: &Negotiated, config: &Config) -> Option<(Inflater, Deflater)> {
    let (params, wanted) = (negotiated.deflate?, config.deflate.as_ref()?);
    Some(codec_pair(params, wanted))
}

/// The two halves of what the handshake agreed: the receiving side's inflater and the sending
/// side's deflater, each created lazily on first use.
pub(crate) fn codec_pair(params: DeflateParams, config: &DeflateConfig) -> (Inflater, Deflater) {
    (
        Inflater {
            receive_no_context_takeover: params.receive_no_context_takeover,
            inflater: None,
            received_tail: [0; 4],
            tail_fed: 0,
            ended: false,
        },
        Deflater {
            level: config.level.min(9),
            threshold: config.threshold,
            send_no_context_takeover: params.send_no_context_takeover,
            send_max_window_bits: params.send_max_window_bits,
            deflater: None,
        },
    )
}

/// One connection's decompressor: inflates received messages within the message limit.
pub(crate) struct Inflater {
    /// The peer resets its compressor after each message, so ours may drop its window too.
    receive_no_context_takeover: bool,
    inflater: Option<Box<Decompress>>,
    /// The last four compressed bytes of the message being inflated.
    received_tail: [u8; 4],
    /// How much of [`SYNC_TAIL`] a streamed message's end has fed so far.
    tail_fed: u8,
    /// The peer ended the deflate stream (BFINAL) inside this message: the rest of the
    /// message, the tail included, is ignored, as zlib leaves data after a stream's end
    /// unused, and the next message starts a new stream.
    ended: bool,
}

impl core::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Inflater")
            .field("inflating", &self.inflater.is_some())
            .finish_non_exhaustive()
    }
}

impl Inflater {
    /// Inflates the next piece of a compressed message onto `out`, which never grows past
    /// `limit + 1` bytes.
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), InflateError> {
        if self.ended {
            return Ok(());
        }
        remember_tail(&mut self.received_tail, input);
        let inflater = self
            .inflater
            .get_or_insert_with(|| Box::new(Decompress::new(false)));
        let mut input = input;
        loop {
            if out.len() == out.capacity() {
                // Grow geometrically, but never past one byte over the limit: that byte is
                // how the crossing is detected without inflating further.
                let cap = (out.capacity() * 2)
                    .max(INFLATE_STEP)
                    .min(limit.saturating_add(1));
                if cap <= out.len() {
                    return Err(InflateError::TooBig);
                }
                out.reserve_exact(cap - out.len());
            }
            let (in_before, out_before) = (inflater.total_in(), out.len());
            let status = inflater
                .decompress_vec(input, out, FlushDecompress::Sync)
                .map_err(|_| InflateError::Corrupt)?;
            input = &input[(inflater.total_in() - in_before) as usize..];
            if out.len() > limit {
                return Err(InflateError::TooBig);
            }
            if status == Status::StreamEnd {
                // The peer ended the deflate stream (BFINAL); the next message starts afresh.
                inflater.reset(false);
                self.ended = true;
                return Ok(());
            }
            let room_left = out.len() < out.capacity();
            if input.is_empty() && room_left {
                return Ok(());
            }
            let consumed = inflater.total_in() != in_before;
            if room_left && !consumed && out.len() == out_before {
                // Room to write, input left, yet no progress: the data cannot be inflated.
                return Err(InflateError::Corrupt);
            }
        }
    }

    /// Ends a compressed message: restores the stripped tail (RFC 7692 §7.2.2) and resets
    /// the inflater when the peer does not keep its context.
    pub(crate) fn finish_inflate(
        &mut self,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), InflateError> {
        // Some peers (Python websockets among them) flush every fragment and then send an
        // empty final fragment, so the message already ends with the whole empty block. A
        // conforming message never ends in 0xff (its last byte holds the stripped block's
        // header bits and zero padding), so this cannot misread one; appending the tail
        // again would leave the inflater inside a half-read block header.
        if self.received_tail != SYNC_TAIL && !self.ended {
            self.inflate(&SYNC_TAIL, out, limit)?;
        }
        self.end_message();
        Ok(())
    }

    /// The message is inflated: the next one starts with no tail, and without the window
    /// when the peer does not keep its context.
    fn end_message(&mut self) {
        self.received_tail = [0; 4];
        self.tail_fed = 0;
        self.ended = false;
        if self.receive_no_context_takeover {
            // Nothing is carried over, so the 32 KiB window need not be kept either.
            self.inflater = None;
        }
    }

    /// Streaming: inflates from `input` onto `out` until `out` holds `cap` bytes or the
    /// input is used up. Returns how much input it used, and whether it is drained: all of
    /// `input` is in and all it makes is out (the inflater may hold output back when `out`
    /// fills). With `last` (`input` is all that is left of the message) it also puts the
    /// stripped tail back (RFC 7692 §7.2.2), and drained means the message is all out.
    /// Until drained the caller calls again, with what is left of `input`, after taking
    /// bytes off `out`.
    ///
    /// The size limit is the caller's: `out` never holds more than `cap` bytes.
    pub(crate) fn inflate_bounded(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        cap: usize,
        last: bool,
    ) -> Result<(usize, bool), InflateError> {
        if self.ended {
            if last {
                self.end_message();
            }
            return Ok((input.len(), true));
        }
        let inflater = self
            .inflater
            .get_or_insert_with(|| Box::new(Decompress::new(false)));
        let mut used = 0;
        loop {
            let room = cap.saturating_sub(out.len());
            if room == 0 {
                return Ok((used, false));
            }
            // The message's own bytes first, then what is left of the tail.
            let tail_left = last && used == input.len() && self.received_tail != SYNC_TAIL;
            let piece = if used < input.len() {
                &input[used..]
            } else if tail_left {
                &SYNC_TAIL[usize::from(self.tail_fed)..]
            } else {
                &[]
            };
            let at = out.len();
            if out.capacity() < cap {
                out.reserve_exact(cap - out.len());
            }
            out.resize(cap, 0);
            let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
            let status = inflater.decompress(piece, &mut out[at..], FlushDecompress::Sync);
            let made = (inflater.total_out() - out_before) as usize;
            out.truncate(at + made);
            let status = status.map_err(|_| InflateError::Corrupt)?;
            let took = (inflater.total_in() - in_before) as usize;
            if tail_left && used == input.len() {
                self.tail_fed += took as u8;
            } else {
                remember_tail(&mut self.received_tail, &piece[..took]);
                used += took;
            }
            if status == Status::StreamEnd {
                // The peer ended the deflate stream (BFINAL): the rest of the message is
                // ignored, and the next starts afresh.
                inflater.reset(false);
                self.ended = true;
                if last {
                    self.end_message();
                }
                return Ok((input.len(), true));
            }
            if made == room {
                // Full: more may be waiting inside the inflater.
                return Ok((used, false));
            }
            if took == piece.len() {
                // All of this piece is in and all its output is out.
                let tail_pending = last && self.received_tail != SYNC_TAIL && self.tail_fed < 4;
                if used < input.len() || tail_pending {
                    continue;
                }
                if last {
                    self.end_message();
                }
                return Ok((used, true));
            }
            if took == 0 && made == 0 {
                // Room to write, input left, yet no progress: the data cannot be inflated.
                return Err(InflateError::Corrupt);
            }
        }
    }
}

/// One connection's compressor: deflates sent messages (RFC 7692 §7.2.1).
pub(crate) struct Deflater {
    level: u32,
    threshold: usize,
    /// Reset our compressor after each message.
    send_no_context_takeover: bool,
    /// The largest window our compressor may use.
    send_max_window_bits: u8,
    deflater: Option<Box<Compress>>,
}

impl core::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Deflater")
            .field("deflating", &self.deflater.is_some())
            .finish_non_exhaustive()
    }
}

impl Deflater {
    /// Whether a message of `len` bytes (or starting with a fragment of `len`) is sent
    /// compressed.
    pub(crate) fn should_compress(&self, len: usize) -> bool {
        self.send_max_window_bits >= SMALLEST_ZLIB_WINDOW && len >= self.threshold
    }

    /// Appends `data` compressed to `out`, flushed so the peer can inflate it now; `last`
    /// ends the message (strips the tail, resets when context is not kept).
    pub(crate) fn deflate(&mut self, data: &[u8], out: &mut Vec<u8>, last: bool) {
        let (level, bits) = (self.level, self.send_max_window_bits);
        let deflater = self.deflater.get_or_insert_with(|| {
            Box::new(Compress::new_with_window_bits(
                Compression::new(level),
                false,
                bits,
            ))
        });
        let start = out.len();
        let mut input = data;
        loop {
            out.reserve(input.len() / 2 + 64);
            let before = deflater.total_in();
            deflater
                .compress_vec(input, out, FlushCompress::Sync)
                .expect("deflate only fails on a corrupted stream, which is never handed to it");
            input = &input[(deflater.total_in() - before) as usize..];
            // A sync flush is complete once all input is taken and the output was not full.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if last {
            if out.ends_with(&SYNC_TAIL) {
                out.truncate(out.len() - SYNC_TAIL.len());
            }
            if out.len() == start {
                // Nothing new since the previous fragment's flush (zlib will not flush
                // twice): the message must still end in an empty stored block's header,
                // whose length bytes are the stripped tail (RFC 7692 §7.2.1, §7.2.3.6).
                out.push(0x00);
            }
            if self.send_no_context_takeover {
                self.deflater = None;
            }
        }
    }
}

/// The settings that decide, alone, what a connection's compressor makes of a message: so a
/// message compressed once with them serves every connection that has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SharedDeflate {
    pub(crate) level: u32,
    pub(crate) window_bits: u8,
}

impl Deflater {
    /// This compressor's settings when it compresses every message from a fresh state (no
    /// context takeover, RFC 7692 §7.1.1), so that its output for a whole message depends on
    /// nothing else; `None` when it keeps its context.
    pub(crate) fn shared_settings(&self) -> Option<SharedDeflate> {
        self.send_no_context_takeover.then_some(SharedDeflate {
            level: self.level,
            window_bits: self.send_max_window_bits,
        })
    }
}

/// A whole message compressed as a fresh compressor with `settings` compresses it: the bytes
/// any connection with those settings would send.
pub(crate) fn deflate_whole(settings: SharedDeflate, payload: &[u8]) -> Vec<u8> {
    let mut deflater = Deflater {
        level: settings.level,
        threshold: 0,
        send_no_context_takeover: true,
        send_max_window_bits: settings.window_bits,
        deflater: None,
    };
    let mut out = Vec::new();
    deflater.deflate(payload, &mut out, true);
    out
}

/// Keeps the last four bytes of the compressed stream in `tail`.
fn remember_tail(tail: &mut [u8; 4], input: &[u8]) {
    if input.len() >= 4 {
        tail.copy_from_slice(&input[input.len() - 4..]);
    } else {
        tail.rotate_left(input.len());
        tail[4 - input.len()..].copy_from_slice(input);
    }
}

/// The first inflate buffer; it then doubles up to the limit.
const INFLATE_STEP: usize = 16 << 10;

#[cfg(test)]
mod tests {
    use super::*;

    /// Both halves, as the two ends of one direction use them.
    fn codec(send_bits: u8) -> Codec {
        let params = DeflateParams {
            send_no_context_takeover: false,
            receive_no_context_takeover: false,
            send_max_window_bits: send_bits,
        };
        let (inflater, deflater) = codec_pair(
            params,
            &DeflateConfig {
                threshold: 0,
                ..DeflateConfig::default()
            },
        );
        Codec { inflater, deflater }
    }

    struct Codec {
        inflater: Inflater,
        deflater: Deflater,
    }

    impl Codec {
        fn inflate(&mut self, i: &[u8], o: &mut Vec<u8>, limit: usize) -> Result<(), InflateError> {
            self.inflater.inflate(i, o, limit)
        }
        fn finish_inflate(&mut self, o: &mut Vec<u8>, limit: usize) -> Result<(), InflateError> {
            self.inflater.finish_inflate(o, limit)
        }
        fn deflate(&mut self, data: &[u8], o: &mut Vec<u8>, last: bool) {
            self.deflater.deflate(data, o, last);
        }
        fn should_compress(&self, len: usize) -> bool {
            self.deflater.should_compress(len)
        }
    }

    #[test]
    fn rfc_7692_7_2_3_1_hello_inflates() {
        // RFC 7692 §7.2.3.1: "Hello" compressed, tail stripped.
        let mut c = codec(15);
        let mut out = Vec::new();
        c.inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut out, 100)
            .unwrap();
        c.finish_inflate(&mut out, 100).unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn rfc_7692_7_2_3_2_context_takeover_shrinks_the_second_hello() {
        let mut c = codec(15);
        let mut first = Vec::new();
        c.deflate(b"Hello", &mut first, true);
        assert_eq!(first, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        let mut second = Vec::new();
        c.deflate(b"Hello", &mut second, true);
        assert_eq!(second, [0xf2, 0x00, 0x11, 0x00, 0x00]);
        let mut d = codec(15);
        for message in [&first, &second] {
            let mut out = Vec::new();
            d.inflate(message, &mut out, 100).unwrap();
            d.finish_inflate(&mut out, 100).unwrap();
            assert_eq!(out, b"Hello");
        }
    }

    #[test]
    fn bomb_stops_at_the_limit() {
        let mut c = codec(15);
        let mut bomb = Vec::new();
        c.deflate(&alloc::vec![0u8; 10_000_000], &mut bomb, true);
        assert!(bomb.len() < 20_000, "{} bytes", bomb.len());
        let mut d = codec(15);
        let mut out = Vec::new();
        assert_eq!(
            d.inflate(&bomb, &mut out, 1 << 20),
            Err(InflateError::TooBig)
        );
        assert!(
            out.capacity() <= (1 << 20) + 1,
            "capacity {}",
            out.capacity()
        );
    }

    #[test]
    fn empty_final_fragment_after_a_flush() {
        let mut first = Vec::new();
        let mut last = Vec::new();
        let mut sender = codec(15);
        sender.deflate(b"Hello", &mut first, false);
        assert!(first.ends_with(&SYNC_TAIL));
        sender.deflate(b"", &mut last, true);
        assert_eq!(
            last,
            [0x00],
            "a fresh empty block header, its length bytes stripped"
        );
        let mut next = Vec::new();
        sender.deflate(b"again", &mut next, true);
        // The conforming ending and the empty one some peers send both inflate, and the
        // next message still does.
        for ending in [&last[..], &[][..]] {
            let mut receiver = codec(15);
            let mut out = Vec::new();
            receiver.inflate(&first, &mut out, 100).unwrap();
            receiver.inflate(ending, &mut out, 100).unwrap();
            receiver.finish_inflate(&mut out, 100).unwrap();
            assert_eq!(out, b"Hello");
            let mut out = Vec::new();
            receiver.inflate(&next, &mut out, 100).unwrap();
            receiver.finish_inflate(&mut out, 100).unwrap();
            assert_eq!(out, b"again");
        }
    }

    #[test]
    fn corrupt_data_is_an_error() {
        let mut d = codec(15);
        let mut out = Vec::new();
        assert_eq!(
            d.inflate(&[0xff, 0xff, 0xff, 0xff], &mut out, 100),
            Err(InflateError::Corrupt)
        );
    }

    #[test]
    fn window_8_never_compresses() {
        assert!(!codec(8).should_compress(1000));
        assert!(codec(9).should_compress(1000));
    }
}
