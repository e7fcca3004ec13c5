//! Queuing whole messages through the parts of a connection that sending needs, so that a
//! reply can be queued while an event still borrows the received payload.
//!
//! [`Connection::next_event_with_sender`](crate::Connection::next_event_with_sender) lends
//! both at once: an echo or a proxy then frames the payload straight from the receive buffer
//! into the output, with one copy instead of two (copying the payload out and then into
//! the output was a quarter of the 64 KiB echo's CPU time, most of it the slow alignment
//! case that `Output::frame` now avoids).

use crate::buffer::Output;
#[cfg(feature = "deflate")]
use crate::deflate::Codec;
use crate::error::UsageError;
#[cfg(feature = "deflate")]
use crate::extension::RSV1;
use crate::frame::Opcode;

/// Queues whole text and binary messages on the connection that lent it.
///
/// Lent by [`Connection::next_event_with_sender`](crate::Connection::next_event_with_sender)
/// together with the event; what it queues goes out with the connection's other output
/// ([`Connection::pending_output`](crate::Connection::pending_output)).
pub struct Sender<'a> {
    out: &'a mut Output,
    #[cfg(feature = "deflate")]
    codec: Option<&'a mut Codec>,
    /// Whether the connection can send a message now, decided when the sender was lent:
    /// nothing the sender does changes it.
    ready: Result<(), UsageError>,
}

impl core::fmt::Debug for Sender<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sender")
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

impl<'a> Sender<'a> {
    pub(crate) fn new(
        out: &'a mut Output,
        #[cfg(feature = "deflate")] codec: Option<&'a mut Codec>,
        ready: Result<(), UsageError>,
    ) -> Self {
        Self {
            out,
            #[cfg(feature = "deflate")]
            codec,
            ready,
        }
    }

    /// Queues a text message in one frame, as
    /// [`Connection::send_text`](crate::Connection::send_text).
    ///
    /// # Errors
    /// [`UsageError::NotOpen`] unless open; [`UsageError::MessageInProgress`] during a
    /// fragmented send.
    pub fn send_text(&mut self, text: &str) -> Result<(), UsageError> {
        self.ready.clone()?;
        self.queue(Opcode::Text, text.as_bytes());
        Ok(())
    }

    /// Queues a binary message in one frame, as
    /// [`Connection::send_binary`](crate::Connection::send_binary).
    ///
    /// # Errors
    /// As [`send_text`](Self::send_text).
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), UsageError> {
        self.ready.clone()?;
        self.queue(Opcode::Binary, data);
        Ok(())
    }

    /// Queues a whole message, compressed when permessage-deflate was agreed and it is
    /// large enough. The caller checked that a message may be sent.
    pub(crate) fn queue(&mut self, opcode: Opcode, payload: &[u8]) {
        #[cfg(feature = "deflate")]
        if let Some(codec) = self.codec.as_deref_mut()
            && codec.should_compress(payload.len())
        {
            let mut compressed = alloc::vec::Vec::new();
            codec.deflate(payload, &mut compressed, true);
            self.out.frame(opcode, true, RSV1, &compressed);
            return;
        }
        self.out.frame(opcode, true, 0, payload);
    }
}
