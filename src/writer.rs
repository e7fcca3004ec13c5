//! The one send path: every frame a connection sends is queued here, with the rules for
//! sending in one place (open or not, one fragmented message at a time, RSV1 on a compressed
//! message's first frame only, control payload sizes, Close codes through `close.rs`).
//!
//! The writer owns the output queue (with the client's masker) and the compressor; the
//! connection tells it when messages may flow ([`Writer::open`], [`Writer::shut`]).
//! [`Sender`](crate::Sender) queues through it too.

use crate::buffer::Output;
use crate::close::{self, CloseCode, ClosePayload};
use crate::deflate::Deflater;
use crate::entropy::EntropySource;
use crate::error::UsageError;
use crate::event::MessageKind;
use crate::extension::RSV1;
use crate::frame::{MAX_CONTROL_PAYLOAD, Opcode};
use crate::prepared::PreparedMessage;
use crate::utf8::Utf8Validator;
use alloc::boxed::Box;
use alloc::vec::Vec;

/// A message being sent in fragments.
#[derive(Debug)]
struct Sending {
    kind: MessageKind,
    utf8: Utf8Validator,
    compressed: bool,
}

/// Queues frames for the wire.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) out: Output,
    /// permessage-deflate's compressor, when it was agreed.
    deflater: Option<Box<Deflater>>,
    /// The fragmented message we are sending, if any.
    sending: Option<Sending>,
    /// Messages may be sent: the connection is open and our Close is not sent.
    open: bool,
    /// Free the output's memory once it is written (no `Config::buffer_linger`).
    release_when_empty: bool,
    /// The output holds the opening handshake's last head: free it once written, whatever
    /// `Config::buffer_linger` says (see [`handshake_done`](Self::handshake_done)).
    release_once_written: bool,
    /// `Config::output_high_water`, capped at 4 GiB, or [`NO_MARK`] (a plain `u32` packs
    /// beside the flags, where an `Option` would take eight bytes: every connection holds
    /// one).
    high_water: u32,
}

/// `Writer::high_water` when there is no mark.
const NO_MARK: u32 = u32::MAX;

impl Writer {
    pub(crate) fn new(
        entropy: Option<EntropySource>,
        release_when_empty: bool,
        high_water: Option<usize>,
    ) -> Self {
        Self {
            out: Output::new(entropy),
            deflater: None,
            sending: None,
            open: false,
            release_when_empty,
            release_once_written: false,
            high_water: high_water.map_or(NO_MARK, |mark| {
                u32::try_from(mark).map_or(NO_MARK - 1, |mark| mark.min(NO_MARK - 1))
            }),
        }
    }

    /// Whether the output is under the high-water mark.
    #[inline]
    pub(crate) fn has_room(&self) -> bool {
        self.high_water == NO_MARK || self.out.buffered() < self.high_water as usize
    }

    /// The high-water mark, removed until [`set_high_water`](Self::set_high_water).
    #[cfg(feature = "futures")]
    pub(crate) fn take_high_water(&mut self) -> u32 {
        core::mem::replace(&mut self.high_water, NO_MARK)
    }

    #[cfg(feature = "futures")]
    pub(crate) fn set_high_water(&mut self, mark: u32) {
        self.high_water = mark;
    }

    /// [`UsageError::OutputFull`] once the output reached the high-water mark.
    #[inline]
    pub(crate) fn check_room(&self) -> Result<(), UsageError> {
        if self.has_room() {
            Ok(())
        } else {
            Err(UsageError::OutputFull {
                buffered: self.out.buffered(),
            })
        }
    }

    /// Messages may be sent from now on.
    pub(crate) fn open(&mut self) {
        self.open = true;
    }

    /// No message may be sent from now on (our Close is queued, or the connection ended); a
    /// fragmented message in progress is abandoned.
    pub(crate) fn shut(&mut self) {
        self.open = false;
        self.sending = None;
    }

    pub(crate) fn set_deflater(&mut self, deflater: Deflater) {
        self.deflater = Some(Box::new(deflater));
    }

    pub(crate) fn is_deflating(&self) -> bool {
        self.deflater.is_some()
    }

    #[inline]
    fn check_open(&self) -> Result<(), UsageError> {
        if self.open {
            Ok(())
        } else {
            Err(UsageError::NotOpen)
        }
    }

    /// Whether a whole message can be queued now.
    ///
    /// # Errors
    /// [`UsageError::NotOpen`] unless open; [`UsageError::MessageInProgress`] during a
    /// fragmented send; [`UsageError::OutputFull`] at the high-water mark.
    pub(crate) fn check_can_send_message(&self) -> Result<(), UsageError> {
        self.check_message_state()?;
        self.check_room()
    }

    /// Whether the state allows a whole message (open, no fragmented one under way),
    /// whatever the output holds.
    #[inline]
    pub(crate) fn check_message_state(&self) -> Result<(), UsageError> {
        self.check_open()?;
        if self.sending.is_some() {
            return Err(UsageError::MessageInProgress);
        }
        Ok(())
    }

    /// Whether a message of `len` bytes goes out compressed (permessage-deflate agreed and
    /// the message large enough).
    #[inline]
    pub(crate) fn compresses(&self, len: usize) -> bool {
        self.deflater
            .as_ref()
            .is_some_and(|d| d.should_compress(len))
    }

    /// Queues a whole message in one frame. The caller checked that a message may be sent.
    #[inline]
    pub(crate) fn message(&mut self, opcode: Opcode, payload: &[u8]) {
        let compressed = self.compresses(payload.len());
        self.data_frame(opcode, true, compressed, payload);
    }

    /// Sends a prepared message the way this connection must: returns the shared frame to
    /// send as it is, or `None` once the message was framed into the output here (a client
    /// masks each frame; a compressor that keeps its context, or runs at another level than
    /// the shared copy, compresses for itself). The caller checked that a message may be
    /// sent.
    pub(crate) fn prepared<'m>(&mut self, message: &'m PreparedMessage) -> Option<&'m [u8]> {
        let (opcode, payload) = (Opcode::of(message.kind()), message.payload());
        if self.out.masks() {
            self.message(opcode, payload);
            return None;
        }
        if !self.compresses(payload.len()) {
            return Some(message.frame());
        }
        let shared = self
            .deflater
            .as_ref()
            .and_then(|deflater| deflater.shared_settings())
            .and_then(|settings| message.deflated_frame(settings));
        if shared.is_none() {
            message.count_connection_deflate();
            self.message(opcode, payload);
        }
        shared
    }

    /// Queues one fragment of a message sent in pieces (RFC 6455 §5.4).
    ///
    /// # Errors
    /// [`UsageError::NotOpen`]; [`UsageError::FragmentKindMismatch`];
    /// [`UsageError::InvalidUtf8`]; [`UsageError::OutputFull`] (the fragment is not sent).
    pub(crate) fn fragment(
        &mut self,
        kind: MessageKind,
        data: &[u8],
        is_final: bool,
    ) -> Result<(), UsageError> {
        self.check_open()?;
        self.check_room()?;
        let (opcode, mut utf8, compressed) = match &self.sending {
            Some(sending) if sending.kind != kind => return Err(UsageError::FragmentKindMismatch),
            Some(sending) => (
                Opcode::Continuation,
                sending.utf8.clone(),
                sending.compressed,
            ),
            // A streamed message is compressed unless it is one small final fragment.
            None => (
                Opcode::of(kind),
                Utf8Validator::default(),
                self.compresses(if is_final { data.len() } else { usize::MAX }),
            ),
        };
        if kind == MessageKind::Text {
            utf8.feed(data).map_err(|_| UsageError::InvalidUtf8)?;
            if is_final {
                utf8.finish().map_err(|_| UsageError::InvalidUtf8)?;
            }
        }
        self.data_frame(opcode, is_final, compressed, data);
        self.sending = (!is_final).then_some(Sending {
            kind,
            utf8,
            compressed,
        });
        Ok(())
    }

    /// Queues a data frame, deflated when its message is compressed.
    #[inline]
    fn data_frame(&mut self, opcode: Opcode, fin: bool, compressed: bool, payload: &[u8]) {
        if !compressed {
            self.out.frame(opcode, fin, 0, payload);
            return;
        }
        let mut deflated = Vec::new();
        if let Some(deflater) = &mut self.deflater {
            // Each fragment is flushed so the peer can inflate it as it arrives.
            deflater.deflate(payload, &mut deflated, fin);
        }
        // RFC 7692 §6.1: RSV1 on the first frame of a compressed message only.
        let rsv = if opcode == Opcode::Continuation {
            0
        } else {
            RSV1
        };
        self.out.frame(opcode, fin, rsv, &deflated);
    }

    /// Queues a Ping or Pong the application asked for.
    ///
    /// # Errors
    /// [`UsageError::NotOpen`]; [`UsageError::ControlPayloadTooLarge`] over 125 bytes.
    pub(crate) fn send_control(
        &mut self,
        opcode: Opcode,
        payload: &[u8],
    ) -> Result<(), UsageError> {
        self.check_open()?;
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(UsageError::ControlPayloadTooLarge(payload.len()));
        }
        self.control(opcode, payload);
        Ok(())
    }

    /// Queues our Close and shuts the writer (RFC 6455 §7.1.2).
    ///
    /// # Errors
    /// [`UsageError::NotOpen`]; the Close rules of [`close::check_sendable`].
    pub(crate) fn send_close(&mut self, code: CloseCode, reason: &str) -> Result<(), UsageError> {
        self.check_open()?;
        close::check_sendable(code, reason)?;
        self.close(&ClosePayload::new(code, reason));
        Ok(())
    }

    /// Queues a Close the protocol calls for (an echo, a failure) and shuts the writer.
    pub(crate) fn close(&mut self, payload: &ClosePayload) {
        self.control(Opcode::Close, payload.as_bytes());
        self.shut();
    }

    /// Queues the automatic Pong to a Ping, replacing one that still waits whole.
    pub(crate) fn auto_pong(&mut self, payload: &[u8]) {
        self.out.auto_pong(payload);
    }

    /// Whether an automatic Pong waits with none of it written.
    pub(crate) fn pong_waiting(&self) -> bool {
        self.out.pong_waiting()
    }

    /// Queues a control frame the protocol calls for (a Pong, the keepalive Ping).
    pub(crate) fn control(&mut self, opcode: Opcode, payload: &[u8]) {
        self.out.frame(opcode, true, 0, payload);
    }

    /// After output was consumed: frees the output's memory once written when buffers do
    /// not linger.
    #[inline]
    pub(crate) fn after_consume(&mut self) {
        if self.release_when_empty || self.release_once_written {
            self.release_once_written &= !self.out.pending().is_empty();
            self.out.release_if_empty();
        }
    }

    /// The opening handshake is over: the output that carried its heads is freed as soon
    /// as it is written, rather than kept `Config::buffer_linger` for a next head that will
    /// not come. Most connections idle right after opening, and a fleet of them would
    /// otherwise hold that memory for the linger, then leave it as holes between what stays.
    pub(crate) fn handshake_done(&mut self) {
        self.release_once_written = true;
        self.after_consume();
    }
}
