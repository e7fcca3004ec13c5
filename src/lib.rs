//! A sans-IO WebSocket (RFC 6455) protocol core for clients and servers.
//!
//! `wsproto` is the protocol, not the plumbing: a [`Connection`] takes the bytes your socket
//! received and the current time, and gives back [`Event`]s and the bytes to write. It never
//! opens a socket, reads a clock, spawns a thread or draws random numbers, so any IO layer
//! drives it: blocking `std::net`, an async runtime, an embedded stack, a fuzzer, a test.
//! The core is `#![no_std]` + `alloc`.
//!
//! ```text
//!            receive(&[u8]) / receive_buffer()+commit(n)        next_event() -> Event
//!  socket ──────────────────────────────────────────▶ Connection ─────────────────────▶ app
//!  socket ◀────────────────────────────────────────── Connection ◀───────────────────── app
//!            pending_output() / consume_output(n)         send_text / send_binary / close
//!                        poll_timeout() ◀──── timers ────▶ handle_timeout(now)
//! ```
//!
//! What it is not: an HTTP server, a TLS stack or a runtime. Payloads are lent from the
//! connection's receive buffer (a single-frame message is never copied, a fragmented one is
//! joined in place) and stay valid until the next call on the connection. With
//! `Config::stream_messages` messages are lent in chunks as they arrive instead
//! ([`Event::TextChunk`], [`Event::BinaryChunk`]), and a message of any size takes at most two
//! reads of memory.
//!
//! # Driving a connection
//!
//! The call order, for any IO layer:
//! 1. Hand over received bytes: read into [`Connection::receive_buffer`] and
//!    [`Connection::commit`] the count, or [`Connection::receive`] a slice; on EOF,
//!    [`Connection::receive_eof`].
//! 2. Pull [`Connection::next_event`] until it returns `Ok(None)`.
//! 3. Write [`Connection::pending_output`] and [`Connection::consume_output`] what was written.
//! 4. Call [`Connection::handle_timeout`] when [`Connection::poll_timeout`] is due.
//! 5. Close the socket when [`Connection::wants_shutdown`] says so.
//!
//! A complete blocking echo loop over a TCP stream whose upgrade is already done:
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//! use std::time::Instant;
//! use wsproto::{Config, Connection, Event};
//!
//! fn echo(mut stream: TcpStream) -> Result<(), Box<dyn std::error::Error>> {
//!     let mut conn = Connection::upgraded_server(Config::default());
//!     let origin = Instant::now();
//!     loop {
//!         // Write what the connection queued, then stop if it is done.
//!         stream.write_all(conn.pending_output())?;
//!         conn.consume_output(conn.pending_output().len());
//!         if conn.wants_shutdown() {
//!             return Ok(());
//!         }
//!         // Wait for bytes, but no longer than the next timer.
//!         let timeout = conn.poll_timeout().map(|at| at.saturating_sub(origin.elapsed()));
//!         if timeout.is_some_and(|t| t.is_zero()) {
//!             conn.handle_timeout(origin.elapsed());
//!             continue;
//!         }
//!         stream.set_read_timeout(timeout)?;
//!         match stream.read(conn.receive_buffer()) {
//!             Ok(0) => conn.receive_eof(),
//!             Ok(n) => conn.commit(n),
//!             Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
//!                 || e.kind() == std::io::ErrorKind::TimedOut => continue,
//!             Err(e) => return Err(e.into()),
//!         }
//!         // Take every event; payloads borrow the connection until the next call.
//!         while let Some(event) = conn.next_event()? {
//!             match event {
//!                 Event::Text(text) => {
//!                     let reply = text.to_owned();
//!                     conn.send_text(&reply)?;
//!                 }
//!                 Event::Binary(data) => {
//!                     let reply = data.to_vec();
//!                     conn.send_binary(&reply)?;
//!                 }
//!                 Event::Closed(code) => println!("closed with {code}"),
//!                 _ => {} // Pings are answered automatically; Close is echoed.
//!             }
//!         }
//!     }
//! }
//! ```
//!
//! # Errors
//!
//! When the peer breaks the protocol, the connection queues the Close frame with the right
//! code first, then returns a [`ProtocolError`] (inside [`Error`]) from
//! [`Connection::next_event`], on that call and every later one. Mistakes of the caller
//! (sending after close, a control payload over 125 bytes) are [`UsageError`]s that change
//! nothing.
#![no_std]
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
mod prepared;
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
pub use prepared::PreparedMessage;
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

/// The README's Rust examples, compiled (and run, where they are not `no_run`) as doctests,
/// so that what a new user copies from it builds.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
