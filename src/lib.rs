//! A sans-IO WebSocket (RFC 6455) protocol core for clients and servers.
//!
//! `wsproto` is the protocol, not the plumbing: a [`Connection`] takes the bytes your socket
//! received and the current time, and gives back [`Event`]s and the bytes to write. It never
//! opens a socket, reads a clock, spawns a thread or draws random numbers, so any IO layer
//! drives it: blocking `std::net`, an async runtime, an embedded stack, a fuzzer, a test.
//! The core is `#![no_std]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

mod buffer;
mod close;
mod config;
mod connection;
#[cfg(feature = "deflate")]
mod deflate;
// Without the feature, the same names with no values: nothing is ever compressed.
#[cfg(not(feature = "deflate"))]
#[path = "deflate_off.rs"]
mod deflate;
#[cfg(any(feature = "blocking", feature = "tokio"))]
pub mod drivers;
mod entropy;
mod error;
mod event;
mod extension;
mod frame;
mod handshake;
mod mask;
mod sender;
mod utf8;
mod writer;

pub use close::{CloseCode, MAX_CLOSE_REASON};
pub use config::{Config, Role};
pub use connection::{Connection, ConnectionState};
#[cfg(feature = "deflate")]
pub use deflate::DeflateConfig;
pub use entropy::Entropy;
#[cfg(feature = "std")]
pub use entropy::os_entropy;
pub use error::{Error, ProtocolError, UsageError};
pub use event::{Event, MessageKind};
#[cfg(feature = "http")]
pub use handshake::http as handshake_http;
pub use handshake::{
    Accept, BuildError, ClientRequest, ExtensionOffer, HandshakeError, Request, Response, UrlError,
};
pub use sender::Sender;

/// Pieces of the core that the crate's own tests, benches and fuzz targets reach into: the
/// frame codec, the masking primitive and a look inside the receive buffer. Not part of the
/// API: they may change in any release.
#[doc(hidden)]
pub mod internals {
    pub use crate::frame::{FrameHeader, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, Opcode};
    pub use crate::mask::apply_mask;

    /// The name of the connection's private state, as the state table in the connection
    /// module's docs writes it (`ReadingRequest`, `Open`, `CloseSent`, ...).
    #[must_use]
    pub fn state_name(conn: &crate::Connection) -> &'static str {
        conn.state_name()
    }

    /// Whether received bytes are waiting for the rest of their frame or message.
    #[must_use]
    pub fn has_partial_input(conn: &crate::Connection) -> bool {
        conn.has_partial_input()
    }
}
