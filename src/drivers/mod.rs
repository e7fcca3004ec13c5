//! Thin IO drivers over the sans-IO core: owned messages, errors with IO, OS entropy.
//!
//! The drivers move bytes between a stream and a [`Connection`] and hold
//! no protocol logic of their own.

#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "blocking")]
pub mod blocking;
mod connector;
#[cfg(feature = "hyper")]
pub mod hyper;
#[cfg(any(feature = "blocking", feature = "tokio"))]
mod message_read;
pub mod proxy;
#[cfg(any(feature = "blocking", feature = "tokio"))]
mod serve;
#[cfg(feature = "rustls")]
pub mod tls;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use connector::Connector;
#[cfg(any(feature = "blocking", feature = "tokio"))]
pub use serve::is_overload;
#[cfg(feature = "tokio")]
pub use serve::{HttpRequest, HttpResponse};

use crate::close::CloseCode;
use crate::connection::Connection;
use crate::error::{Error as ConnectionError, UsageError};
use crate::event::Event;
use crate::handshake::{Accept, HandshakeError};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// A message, owned: for applications that keep messages past the next read.
///
/// To look at a message without copying it, use the drivers' `recv_with`, which lends the
/// [`Event`] from the connection's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// With `Config::stream_messages`: the next piece of a text message (whole code points),
    /// as [`Event::TextChunk`]. Sent, it is a fragment of a text message; `fin` ends it.
    TextChunk {
        /// The piece.
        text: String,
        /// It ends the message.
        fin: bool,
    },
    /// With `Config::stream_messages`: the next piece of a binary message, as
    /// [`Event::BinaryChunk`]. Sent, it is a fragment of a binary message; `fin` ends it.
    BinaryChunk {
        /// The piece.
        data: Vec<u8>,
        /// It ends the message.
        fin: bool,
    },
    /// A Ping (already answered when `Config::auto_pong` is on).
    Ping(Vec<u8>),
    /// A Pong.
    Pong(Vec<u8>),
    /// The peer's Close frame; the closing handshake is under way.
    Close {
        /// Status code, 1005 if the frame had none.
        code: CloseCode,
        /// Reason, possibly empty.
        reason: String,
    },
}

impl Message {
    /// Copies an event's payload; handshake and `Closed` events have no message.
    #[must_use]
    pub fn from_event(event: &Event<'_>) -> Option<Self> {
        Some(match event {
            Event::Text(text) => Self::Text((*text).to_string()),
            Event::Binary(data) => Self::Binary(data.to_vec()),
            Event::TextChunk { text, fin } => Self::TextChunk {
                text: (*text).to_string(),
                fin: *fin,
            },
            Event::BinaryChunk { data, fin } => Self::BinaryChunk {
                data: data.to_vec(),
                fin: *fin,
            },
            Event::Ping(data) => Self::Ping(data.to_vec()),
            Event::Pong(data) => Self::Pong(data.to_vec()),
            Event::Close { code, reason } => Self::Close {
                code: *code,
                reason: (*reason).to_string(),
            },
            Event::Request(_) | Event::Accepted(_) | Event::Closed(_) => return None,
        })
    }
}

/// How a server answers a handshake request in the drivers' `accept_with`.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Accept, optionally choosing a subprotocol and adding headers.
    Accept(Accept),
    /// Refuse with an HTTP status (300-599), extra headers and a body.
    Reject {
        /// The HTTP status.
        status: u16,
        /// Extra response headers.
        headers: Vec<(String, String)>,
        /// The response body.
        body: Vec<u8>,
    },
}

/// What went wrong in a driver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The stream failed. An IO error that carries a TLS failure becomes `Error::Tls`
    /// (with the `rustls` feature).
    #[error("io: {0}")]
    Io(std::io::Error),
    /// The connection failed: the peer broke the protocol, the handshake failed or the
    /// keepalive timed out. The answer (Close frame or HTTP response) was sent.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// The call is not possible in the connection's state.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// `wss://` needs TLS, which this build of the driver lacks: enable the `rustls` feature
    /// (`tokio-rustls` for the tokio driver), or connect a TLS stream yourself and hand it to
    /// the driver's constructor that takes a stream.
    #[error(
        "wss:// needs the `rustls` feature (`tokio-rustls` for the tokio driver), or a TLS \
         stream passed to the constructor that takes a stream"
    )]
    TlsRequired,
    /// TLS failed: the handshake (a certificate refused, with its
    /// `rustls::Error::InvalidCertificate` reason, or an alert from the peer) or a record
    /// later on.
    #[cfg(feature = "rustls")]
    #[error("tls: {0}")]
    Tls(rustls::Error),
    /// `wss://` found no root certificates to trust: enable the `webpki-roots` or
    /// `native-roots` feature, or give the [`Connector`] a configuration with
    /// [`Connector::tls_config`].
    #[cfg(feature = "rustls")]
    #[error(
        "no trusted root certificates for wss://: enable the `webpki-roots` or \
         `native-roots` feature, or pass a rustls ClientConfig to Connector::tls_config"
    )]
    NoTlsRoots,
    /// The connection is closed; nothing more can be read or sent.
    #[error("the connection is closed")]
    Closed,
    /// The proxy did not open a tunnel to the server.
    #[error(transparent)]
    Proxy(#[from] proxy::ProxyError),
    /// The HTTP/2 connection or stream failed, as hyper reports it: the server reset the
    /// stream, went away, or broke HTTP/2.
    #[cfg(feature = "http2")]
    #[error("http/2: {0}")]
    Http2(::hyper::Error),
    /// The HTTP/2 server did not enable extended CONNECT in its SETTINGS (RFC 8441 §3,
    /// `SETTINGS_ENABLE_CONNECT_PROTOCOL`), so it cannot carry WebSockets: use HTTP/1.1, or
    /// enable it on the server (hyper's `enable_connect_protocol`).
    #[cfg(feature = "http2")]
    #[error(
        "the HTTP/2 server does not accept WebSockets: its SETTINGS did not enable extended \
         CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL, RFC 8441 section 3)"
    )]
    ExtendedConnectDisabled,
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        #[cfg(feature = "rustls")]
        if let Some(tls) = tls::tls_error(&e) {
            return Self::Tls(tls);
        }
        Self::Io(e)
    }
}

#[cfg(feature = "rustls")]
impl From<rustls::Error> for Error {
    fn from(e: rustls::Error) -> Self {
        Self::Tls(e)
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Self::Connection(e.into())
    }
}

/// Applies a server's answer to the connection awaiting it, and hands over the request it
/// answered. A rejection (or an invalid answer) comes back as the error the driver returns
/// once the response is flushed.
pub(crate) fn apply_answer(
    conn: &mut Connection,
    answer: Answer,
) -> Result<std::boxed::Box<crate::Request>, Error> {
    match answer {
        Answer::Accept(accept) => Ok(conn.accept_taking_request(accept)?),
        Answer::Reject {
            status,
            headers,
            body,
        } => {
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            conn.reject(status, &headers, &body)?;
            Err(conn.next_event().err().map_or(Error::Closed, Error::from))
        }
    }
}

/// A TCP connection to `host:port`: each of its addresses tried in turn, each attempt bounded
/// by `limit` (`None`: the system's own connect timeout, which can be minutes).
#[cfg(feature = "blocking")]
pub(crate) fn tcp_connect_blocking(
    host: &str,
    port: u16,
    limit: Option<core::time::Duration>,
) -> std::io::Result<std::net::TcpStream> {
    use std::net::{TcpStream, ToSocketAddrs};
    let Some(limit) = limit else {
        return TcpStream::connect((host, port));
    };
    let mut last = None;
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, limit) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the host name resolved to no address",
        )
    }))
}

/// What a failed write means: after the closing handshake the peer may reset the stream
/// before our last bytes reach it, and the connection is over either way (the stream counts
/// as shut); any other error is the caller's.
#[cfg(any(feature = "blocking", feature = "tokio"))]
pub(crate) fn write_outcome(
    conn: &Connection,
    shut: &mut bool,
    result: std::io::Result<()>,
) -> std::io::Result<()> {
    match result {
        Err(_) if conn.state() == crate::connection::ConnectionState::Closed => {
            *shut = true;
            Ok(())
        }
        other => other,
    }
}

/// A message a driver sends from the caller's memory where the connection allows (a
/// server's large uncompressed payload, a prepared frame): the sender lends it for a
/// vectored write and copies only what the stream did not take.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lent<'p> {
    Binary(&'p [u8]),
    Prepared(&'p crate::PreparedMessage),
}

impl<'p> Lent<'p> {
    /// Queues the message on `sender`, by reference where it can.
    pub(crate) fn queue(self, sender: &mut crate::Sender<'p>) -> Result<(), crate::UsageError> {
        match self {
            Self::Binary(data) => sender.send_binary_borrowed(data),
            Self::Prepared(message) => sender.send_prepared(message),
        }
    }
}

/// The most of a lent payload handed to one vectored write: `IoSlice` takes at most
/// `u32::MAX` bytes on some platforms, and no socket takes more than this at once anyway.
#[cfg(any(feature = "blocking", feature = "tokio"))]
const MAX_LENT_WRITE: usize = 1 << 30;

/// The slices of the next vectored write of a payload `sender` lent: the output queued
/// before it, then as much of the payload as one write may take. `None` once nothing is
/// lent (what is queued then goes out with the ordinary flush).
#[cfg(any(feature = "blocking", feature = "tokio"))]
pub(crate) fn lent_write<'s>(sender: &'s crate::Sender<'_>) -> Option<[std::io::IoSlice<'s>; 2]> {
    match sender.pending_output() {
        [queued, lent @ [_, ..]] => Some([
            std::io::IoSlice::new(queued),
            std::io::IoSlice::new(&lent[..lent.len().min(MAX_LENT_WRITE)]),
        ]),
        _ => None,
    }
}
