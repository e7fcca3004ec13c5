//! What the connection reports: [`Event`], lending payloads from the receive buffer.

use crate::close::CloseCode;
use crate::handshake::{Request, Response};

/// Something that happened on the connection, returned by `Connection::next_event`.
///
/// Payloads are borrowed from the connection's receive buffer: no copy is made, and they stay
/// valid until the next call on the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// Server: a valid opening handshake request arrived. Answer it with
    /// `Connection::accept` or `Connection::reject`; until then nothing else happens.
    Request(&'a Request),
    /// Client: the server accepted the handshake; the connection is now open.
    Accepted(&'a Response),
    /// A complete text message, validated as UTF-8.
    Text(&'a str),
    /// A complete binary message.
    Binary(&'a [u8]),
    /// With `Config::stream_messages`: the next piece of a text message, validated. A code
    /// point split across reads or frames comes whole in the piece after the split. Every
    /// piece but the last has text in it; `fin` marks the last, which may be empty.
    TextChunk {
        /// The text that arrived since the last chunk.
        text: &'a str,
        /// This chunk ends the message.
        fin: bool,
    },
    /// With `Config::stream_messages`: the next piece of a binary message. Every piece but
    /// the last has bytes in it; `fin` marks the last, which may be empty.
    BinaryChunk {
        /// The bytes that arrived since the last chunk.
        data: &'a [u8],
        /// This chunk ends the message.
        fin: bool,
    },
    /// A Ping arrived; with `Config::auto_pong` the Pong is already queued.
    Ping(&'a [u8]),
    /// A Pong arrived.
    Pong(&'a [u8]),
    /// The peer's Close frame arrived (RFC 6455 §5.5.1). If we had not sent a Close yet, the
    /// echo with the same code is already queued. `code` is 1005 when the frame had none.
    Close {
        /// The status code, or [`CloseCode::NO_STATUS_RECEIVED`].
        code: CloseCode,
        /// The reason, possibly empty.
        reason: &'a str,
    },
    /// The connection is closed; no event follows. The code is the connection close code of
    /// RFC 6455 §7.1.5: the one the peer's Close carried, or 1006 when the connection ended
    /// without a closing handshake.
    Closed(CloseCode),
}

/// The type of a data message, for fragmented sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// UTF-8 text.
    Text,
    /// Arbitrary bytes.
    Binary,
}
