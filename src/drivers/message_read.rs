//! What the drivers' message readers (`io::Read` and tokio's `AsyncRead` over one message)
//! share: copying a message's pieces into the caller's buffer as they are lent.
//!
//! Under `Config::stream_messages` each read asks the connection for a chunk no longer than
//! the caller's buffer (`Connection::next_event_up_to`), so the bytes are copied once, from
//! the receive buffer to the caller's. Only what cannot fit is kept here: a whole message,
//! when messages are not streamed, or a chunk's few bytes past a buffer under 8 bytes.

use crate::event::{Event, MessageKind};
use std::io;
use std::vec::Vec;

/// How far a message reader is through its message.
#[derive(Debug, Default)]
pub(crate) struct ReadProgress {
    /// The message's kind, once its first piece came.
    pub(crate) kind: Option<MessageKind>,
    /// Bytes of the last piece that did not fit the caller's buffer, from `spill_at` on.
    spill: Vec<u8>,
    spill_at: usize,
    /// The message ended (or the connection closed before one started).
    pub(crate) ended: bool,
}

impl ReadProgress {
    /// Copies kept bytes into `buf`, if any are kept; `None` when the next piece is needed.
    pub(crate) fn take_kept(&mut self, buf: &mut [u8]) -> Option<usize> {
        if self.spill_at == self.spill.len() {
            return None;
        }
        let n = buf.len().min(self.spill.len() - self.spill_at);
        buf[..n].copy_from_slice(&self.spill[self.spill_at..self.spill_at + n]);
        self.spill_at += n;
        if self.spill_at == self.spill.len() {
            self.spill = Vec::new();
            self.spill_at = 0;
        }
        Some(n)
    }

    /// Whether nothing more is to be read: the message ended and nothing is kept.
    pub(crate) fn finished(&self) -> bool {
        self.ended && self.spill_at == self.spill.len()
    }

    /// Takes the next event: a piece of the message is copied into `buf` (what does not fit
    /// is kept) and its length returned; control frames are passed over (`None`). A Close
    /// before the message starts ends the reader empty; inside the message it is an error.
    pub(crate) fn take(&mut self, event: Event<'_>, buf: &mut [u8]) -> Option<io::Result<usize>> {
        let (kind, piece, fin) = match event {
            Event::TextChunk { text, fin } => (MessageKind::Text, text.as_bytes(), fin),
            Event::BinaryChunk { data, fin } => (MessageKind::Binary, data, fin),
            Event::Text(text) => (MessageKind::Text, text.as_bytes(), true),
            Event::Binary(data) => (MessageKind::Binary, data, true),
            Event::Close { .. } | Event::Closed(_) => return Some(self.closed()),
            _ => return None,
        };
        if self.kind.is_some_and(|started| started != kind) {
            return Some(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a message of another kind inside the message",
            )));
        }
        self.kind = Some(kind);
        self.ended = fin;
        let n = buf.len().min(piece.len());
        buf[..n].copy_from_slice(&piece[..n]);
        if n < piece.len() {
            self.spill = piece[n..].to_vec();
            self.spill_at = 0;
        }
        Some(Ok(n))
    }

    /// The connection closed (or ended): the end of the reader if no message had started,
    /// an error inside one.
    pub(crate) fn closed(&mut self) -> io::Result<usize> {
        if self.kind.is_some() && !self.ended {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed inside the message",
            ));
        }
        self.ended = true;
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_piece_longer_than_the_buffer_is_kept_for_the_next_reads() {
        let mut progress = ReadProgress::default();
        let mut buf = [0; 4];
        let event = Event::BinaryChunk {
            data: b"0123456789",
            fin: true,
        };
        assert_eq!(progress.take(event, &mut buf).unwrap().unwrap(), 4);
        assert_eq!(&buf, b"0123");
        assert!(!progress.finished());
        assert_eq!(progress.take_kept(&mut buf), Some(4));
        assert_eq!(&buf, b"4567");
        assert_eq!(progress.take_kept(&mut buf), Some(2));
        assert_eq!(&buf[..2], b"89");
        assert_eq!(progress.take_kept(&mut buf), None);
        assert!(progress.finished());
        assert_eq!(progress.kind, Some(MessageKind::Binary));
    }

    #[test]
    fn control_frames_pass_and_a_close_ends_or_breaks_the_message() {
        let mut buf = [0; 8];
        let mut progress = ReadProgress::default();
        assert!(progress.take(Event::Ping(b"p"), &mut buf).is_none());
        let close = Event::Close {
            code: crate::CloseCode::NORMAL,
            reason: "",
        };
        assert_eq!(progress.take(close.clone(), &mut buf).unwrap().unwrap(), 0);
        assert!(progress.finished() && progress.kind.is_none());

        let mut progress = ReadProgress::default();
        let first = Event::TextChunk {
            text: "ab",
            fin: false,
        };
        assert_eq!(progress.take(first, &mut buf).unwrap().unwrap(), 2);
        let error = progress.take(close, &mut buf).unwrap().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }
}
