//! Error types: what the peer did wrong, what the caller did wrong, and how to answer.

use crate::close::CloseCode;
use crate::handshake::{BuildError, HandshakeError};

/// The peer broke RFC 6455. The connection has already queued a Close frame with
/// [`ProtocolError::close_code`] when this is returned, and stays failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A server received a frame without a masking key (RFC 6455 §5.1).
    #[error("received an unmasked frame from the client")]
    UnmaskedFrame,
    /// A client received a masked frame (RFC 6455 §5.1).
    #[error("received a masked frame from the server")]
    MaskedFrame,
    /// RSV bits set that no negotiated extension defines (RFC 6455 §5.2).
    #[error("reserved bits {0:#05b} set without a negotiated extension")]
    ReservedBits(u8),
    /// An opcode from the reserved ranges 0x3-0x7 or 0xB-0xF (RFC 6455 §5.2).
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A control frame with a payload over 125 bytes (RFC 6455 §5.5).
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlFrameTooLong(u64),
    /// A control frame without FIN (RFC 6455 §5.5).
    #[error("fragmented control frame")]
    FragmentedControlFrame,
    /// A continuation frame with no fragmented message in progress (RFC 6455 §5.4).
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    /// A new text or binary frame inside a fragmented message (RFC 6455 §5.4).
    #[error("new data frame inside a fragmented message")]
    ExpectedContinuation,
    /// A 64-bit payload length with the most significant bit set (RFC 6455 §5.2).
    #[error("64-bit payload length with the most significant bit set")]
    InvalidLength,
    /// A Close frame whose payload is a single byte (RFC 6455 §5.5.1).
    #[error("close frame with a 1-byte payload")]
    InvalidClosePayload,
    /// A Close frame with a code that may not be sent (RFC 6455 §7.4).
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// Text or a close reason that is not UTF-8 (RFC 6455 §8.1).
    #[error("invalid UTF-8 in text")]
    InvalidUtf8,
    /// A compressed message that is not valid deflate data (RFC 7692 §7.2.2).
    #[error("invalid compressed data")]
    InvalidCompressedData,
    /// A frame longer than `Config::max_frame_size`, rejected from its header.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The declared payload length.
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// A message longer than `Config::max_message_size`, rejected before it is buffered.
    #[error("message of at least {len} bytes exceeds the limit of {max}")]
    MessageTooLarge {
        /// The message length so far, counting the frame that crossed the limit.
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// A message in more fragments than `Config::max_fragments_per_message`.
    #[error("message exceeds the limit of {max} fragments")]
    TooManyFragments {
        /// The configured limit.
        max: usize,
    },
}

impl ProtocolError {
    /// The close code sent to the peer for this error (RFC 6455 §7.4.1).
    #[must_use]
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::UnmaskedFrame
            | Self::MaskedFrame
            | Self::ReservedBits(_)
            | Self::ReservedOpcode(_)
            | Self::ControlFrameTooLong(_)
            | Self::FragmentedControlFrame
            | Self::UnexpectedContinuation
            | Self::ExpectedContinuation
            | Self::InvalidLength
            | Self::InvalidClosePayload
            | Self::InvalidCloseCode(_) => CloseCode::PROTOCOL_ERROR,
            Self::InvalidUtf8 | Self::InvalidCompressedData => CloseCode::INVALID_PAYLOAD,
            Self::FrameTooLarge { .. } | Self::MessageTooLarge { .. } => CloseCode::MESSAGE_TOO_BIG,
            Self::TooManyFragments { .. } => CloseCode::POLICY_VIOLATION,
        }
    }
}

/// Why a connection failed. Returned by `Connection::next_event` once the failure happened,
/// and again on every later call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer broke the WebSocket protocol.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The opening handshake failed. A server has already queued the HTTP response
    /// ([`HandshakeError::status`]).
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The keepalive Ping got no Pong within `Config::keepalive_timeout`.
    #[error("no pong arrived within the keepalive timeout")]
    KeepaliveTimeout,
}

impl Error {
    /// The close code sent to the peer for this failure, if a Close frame was sent.
    #[must_use]
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Self::Protocol(e) => Some(e.close_code()),
            Self::KeepaliveTimeout => Some(CloseCode::INTERNAL_ERROR),
            Self::Handshake(_) => None,
        }
    }
}

/// The caller asked for something the connection cannot do now. The call did nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// Messages can be sent only while the connection is open.
    #[error("the connection is not open")]
    NotOpen,
    /// A control frame payload over 125 bytes (RFC 6455 §5.5).
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlPayloadTooLarge(usize),
    /// A close code that may not be sent (RFC 6455 §7.4).
    #[error("close code {0} may not be sent")]
    InvalidCloseCode(u16),
    /// A close reason over 123 bytes.
    #[error("close reason of {0} bytes exceeds 123")]
    CloseReasonTooLong(usize),
    /// A whole message was sent while a fragmented one is still in progress.
    #[error("a fragmented message is in progress")]
    MessageInProgress,
    /// A fragment of another kind than the message in progress.
    #[error("fragment kind does not match the message in progress")]
    FragmentKindMismatch,
    /// Text fragments that are not UTF-8 once joined.
    #[error("text fragments are not valid UTF-8")]
    InvalidUtf8,
    /// A message sent while the output holds [`Config::output_high_water`] bytes or more:
    /// write them out first. Nothing was queued.
    ///
    /// [`Config::output_high_water`]: crate::Config::output_high_water
    #[error(
        "{buffered} bytes wait to be written, at or past the high-water mark: write them first"
    )]
    OutputFull {
        /// The bytes waiting.
        buffered: usize,
    },
    /// `accept` or `reject` without a handshake request waiting for an answer.
    #[error("no handshake request is waiting for an answer")]
    NoRequestToAnswer,
    /// The handshake answer cannot be sent as built.
    #[error(transparent)]
    InvalidAnswer(#[from] BuildError),
}
