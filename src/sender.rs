//! Queuing whole messages through the parts of a connection that sending needs, so that a
//! reply can be queued while an event still borrows the received payload.
//!
//! [`Connection::next_event_with_sender`](crate::Connection::next_event_with_sender) lends
//! both at once: an echo or a proxy then frames the payload straight from the receive buffer
//! into the output, with one copy instead of two (copying the payload out and then into
//! the output was a quarter of the 64 KiB echo's CPU time, most of it the slow alignment
//! case that `Output::frame` now avoids).
//!
//! The `*_borrowed` sends copy nothing at all when the payload can go out as it is (a
//! server's uncompressed message): the sender queues the header and keeps a reference to
//! the payload, and the caller writes both with one vectored write. Whatever is left
//! unwritten is copied into the output when the sender goes away, so the connection's
//! output always ends on a whole frame.

use crate::error::UsageError;
use crate::frame::Opcode;
use crate::prepared::PreparedMessage;
use crate::writer::Writer;

/// Queues whole text and binary messages on the connection that lent it.
///
/// Lent by [`Connection::next_event_with_sender`](crate::Connection::next_event_with_sender)
/// together with the event, or by [`Connection::sender`](crate::Connection::sender); what it
/// queues goes out with the connection's other output
/// ([`Connection::pending_output`](crate::Connection::pending_output)).
///
/// It holds the connection until it is dropped (let it go out of scope, or `drop` it,
/// before using the connection again): dropping it copies the unwritten rest of a payload
/// sent by reference into the output. Leaking it instead (`mem::forget`) leaves a frame
/// header without its payload, and the connection's output then panics rather than put a
/// broken frame on the wire.
pub struct Sender<'a> {
    writer: &'a mut Writer,
    /// The unwritten rest of a payload sent by reference: it goes on the wire right after
    /// the output's queued bytes (`writer.out.owed` is its length).
    borrowed: &'a [u8],
}

/// Payloads shorter than this are copied even when sent by reference: a second slice in the
/// write costs more than copying a few hundred bytes.
const BORROW_MIN: usize = 1024;

impl core::fmt::Debug for Sender<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sender")
            .field("ready", &self.check_ready().is_ok())
            .finish_non_exhaustive()
    }
}

impl<'a> Sender<'a> {
    #[inline]
    pub(crate) fn new(writer: &'a mut Writer) -> Self {
        writer.out.assert_not_owed();
        Self {
            writer,
            borrowed: &[],
        }
    }

    /// Queues a text message in one frame, as
    /// [`Connection::send_text`](crate::Connection::send_text).
    ///
    /// # Errors
    /// [`UsageError::NotOpen`] unless open; [`UsageError::MessageInProgress`] during a
    /// fragmented send; [`UsageError::OutputFull`] once the output (this sender's own
    /// sends included) reached [`Config::output_high_water`](crate::Config::output_high_water).
    #[inline]
    pub fn send_text(&mut self, text: &str) -> Result<(), UsageError> {
        self.check_ready()?;
        self.queue(Opcode::Text, text.as_bytes());
        Ok(())
    }

    /// Queues a binary message in one frame, as
    /// [`Connection::send_binary`](crate::Connection::send_binary).
    ///
    /// # Errors
    /// As [`send_text`](Self::send_text).
    #[inline]
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), UsageError> {
        self.check_ready()?;
        self.queue(Opcode::Binary, data);
        Ok(())
    }

    /// Sends a text message in one frame without copying it where it can go out as it is:
    /// write [`pending_output`](Self::pending_output) with one vectored write, or let the
    /// sender copy the unwritten rest into the connection's output when it is dropped.
    ///
    /// Only a server's uncompressed messages of at least 1 KiB are kept by reference;
    /// others are queued as [`send_text`](Self::send_text) queues them (a client masks
    /// every payload, and compression makes new bytes anyway).
    ///
    /// # Errors
    /// As [`send_text`](Self::send_text).
    #[inline]
    pub fn send_text_borrowed(&mut self, text: &'a str) -> Result<(), UsageError> {
        self.check_ready()?;
        self.queue_borrowed(Opcode::Text, text.as_bytes());
        Ok(())
    }

    /// Sends a binary message, by reference where it can go out as it is (see
    /// [`send_text_borrowed`](Self::send_text_borrowed)).
    ///
    /// ```
    /// # use wsproto::{Config, Connection};
    /// # use std::io::{IoSlice, Write};
    /// let mut conn = Connection::upgraded_server(Config::default());
    /// let payload = vec![7u8; 4096];
    /// let mut socket = Vec::new();
    /// let mut sender = conn.sender();
    /// sender.send_binary_borrowed(&payload)?;
    /// let [header, rest] = sender.pending_output();
    /// assert_eq!(header, &[0x82, 0x7e, 0x10, 0x00]);
    /// let written = socket.write_vectored(&[IoSlice::new(header), IoSlice::new(rest)])?;
    /// sender.consume_output(written);
    /// drop(sender);
    /// assert_eq!(socket.len(), 4 + 4096);
    /// assert!(conn.pending_output().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`send_text`](Self::send_text).
    #[inline]
    pub fn send_binary_borrowed(&mut self, data: &'a [u8]) -> Result<(), UsageError> {
        self.check_ready()?;
        self.queue_borrowed(Opcode::Binary, data);
        Ok(())
    }

    /// Sends a [`PreparedMessage`]: a server lends its shared frame (compressed, when this
    /// connection compresses it and agreed no server context takeover), to be written as
    /// [`send_binary_borrowed`](Self::send_binary_borrowed) writes a payload, with no copy
    /// and no framing; a frame under 1 KiB behind other queued bytes is copied into the
    /// output instead, to keep the write to one slice. A client, or
    /// a connection that compresses with its own context, frames the payload itself.
    ///
    /// # Errors
    /// As [`send_text`](Self::send_text).
    pub fn send_prepared(&mut self, message: &'a PreparedMessage) -> Result<(), UsageError> {
        self.check_ready()?;
        self.settle();
        if let Some(frame) = self.writer.prepared(message) {
            // The frame brings its own header: lent behind an empty queue it is one slice,
            // so only a small one behind queued bytes is worth copying.
            if frame.len() < BORROW_MIN && !self.writer.out.queued().is_empty() {
                self.writer.out.extend(frame);
            } else {
                self.borrowed = frame;
                self.writer.out.owed = frame.len();
            }
        }
        Ok(())
    }

    /// The bytes to write, in order: the connection's queued output, then the unwritten
    /// part of a payload sent by reference (empty when there is none).
    #[must_use]
    #[inline]
    pub fn pending_output(&self) -> [&[u8]; 2] {
        [self.writer.out.queued(), self.borrowed]
    }

    /// Marks the first `n` bytes of [`pending_output`](Self::pending_output) (both slices
    /// counted) as written.
    ///
    /// # Panics
    /// If `n` exceeds the pending length.
    #[inline]
    pub fn consume_output(&mut self, n: usize) {
        let queued = self.writer.out.queued().len();
        let from_borrowed = n.saturating_sub(queued);
        assert!(
            from_borrowed <= self.borrowed.len(),
            "consumed more bytes than are pending"
        );
        self.writer.out.consume(n - from_borrowed);
        self.borrowed = &self.borrowed[from_borrowed..];
        self.writer.out.owed = self.borrowed.len();
    }

    /// Whether a message may be queued now: the connection's state (which nothing a sender
    /// does changes; asked again rather than kept, as a handler's receive future holds the
    /// sender across the reply's write), and room under the high-water mark (which this
    /// sender's own sends use up).
    #[inline]
    fn check_ready(&self) -> Result<(), UsageError> {
        self.writer.check_message_state()?;
        self.writer.check_room()
    }

    /// Queues by reference what can go out as it is, else as `queue` does.
    #[inline]
    fn queue_borrowed(&mut self, opcode: Opcode, payload: &'a [u8]) {
        self.settle();
        if payload.len() < BORROW_MIN
            || self.writer.out.masks()
            || self.writer.compresses(payload.len())
        {
            self.writer.message(opcode, payload);
            return;
        }
        self.writer
            .out
            .unmasked_header(opcode, true, 0, payload.len());
        self.borrowed = payload;
        self.writer.out.owed = payload.len();
    }

    /// Copies the unwritten rest of a payload sent by reference into the output, behind
    /// its header.
    #[inline]
    fn settle(&mut self) {
        if !self.borrowed.is_empty() {
            self.writer.out.extend(self.borrowed);
            self.borrowed = &[];
            self.writer.out.owed = 0;
        }
    }

    /// Queues a whole message through the writer, behind what was lent before.
    #[inline]
    fn queue(&mut self, opcode: Opcode, payload: &[u8]) {
        self.settle();
        self.writer.message(opcode, payload);
    }
}

impl Drop for Sender<'_> {
    #[inline]
    fn drop(&mut self) {
        self.settle();
        self.writer.after_consume();
    }
}
