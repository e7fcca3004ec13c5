//! [`ClientStream`]: the stream a tokio client connects, plain TCP or TLS over it.

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use ::tokio::net::TcpStream;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::io::{self, IoSlice};

/// The stream [`WebSocketStream::connect`](super::WebSocketStream::connect) opens: TCP for
/// `ws://`, TLS over TCP for `wss://` (with the `tokio-rustls` feature).
///
/// Non-exhaustive because its variants depend on features that another crate in the build
/// may turn on.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientStream {
    /// `ws://`: the TCP connection itself.
    Plain(TcpStream),
    /// `wss://`: a rustls client session over TCP, its handshake done.
    #[cfg(feature = "tokio-rustls")]
    Tls(std::boxed::Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl ClientStream {
    /// The TCP connection underneath, for its addresses or socket options.
    #[must_use]
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(tcp) => tcp,
            #[cfg(feature = "tokio-rustls")]
            Self::Tls(tls) => tls.get_ref().0,
        }
    }

    /// The TLS session, for what was negotiated (`alpn_protocol()`, `peer_certificates()`,
    /// `protocol_version()`); `None` on `ws://`.
    #[cfg(feature = "tokio-rustls")]
    #[must_use]
    pub fn tls(&self) -> Option<&rustls::ClientConnection> {
        match self {
            Self::Plain(_) => None,
            Self::Tls(tls) => Some(tls.get_ref().1),
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            #[cfg(feature = "tokio-rustls")]
            Self::Tls(tls) => Pin::new(&mut **tls).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            #[cfg(feature = "tokio-rustls")]
            Self::Tls(tls) => Pin::new(&mut **tls).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            #[cfg(feature = "tokio-rustls")]
            Self::Tls(tls) => Pin::new(&mut **tls).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(tcp) => tcp.is_write_vectored(),
            #[cfg(feature = "tokio-rustls")]
            Self::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            #[cfg(feature = "tokio-rustls")]
            Self::Tls(tls) => Pin::new(&mut **tls).poll_flush(cx),
        }
    }

    /// Over TLS, sends `close_notify` before shutting the TCP write side.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            #[cfg(feature = "tokio-rustls")]
            Self::Tls(tls) => Pin::new(&mut **tls).poll_shutdown(cx),
        }
    }
}
