//! [`ClientStream`]: the stream a blocking client connects, plain TCP or TLS over it.

use super::Transport;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The stream [`WebSocket::connect`](super::WebSocket::connect) opens: TCP for `ws://`,
/// TLS over TCP for `wss://` (with the `rustls` feature).
///
/// Non-exhaustive because its variants depend on features that another crate in the build
/// may turn on.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientStream {
    /// `ws://`: the TCP connection itself.
    Plain(TcpStream),
    /// `wss://`: a rustls client session over TCP, its handshake done.
    #[cfg(feature = "rustls")]
    Tls(std::boxed::Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl ClientStream {
    /// The TCP connection underneath, for its addresses or socket options.
    #[must_use]
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(tcp) => tcp,
            #[cfg(feature = "rustls")]
            Self::Tls(tls) => tls.get_ref(),
        }
    }

    /// The TLS session, for what was negotiated (`alpn_protocol()`, `peer_certificates()`,
    /// `protocol_version()`); `None` on `ws://`.
    #[cfg(feature = "rustls")]
    #[must_use]
    pub fn tls(&self) -> Option<&rustls::ClientConnection> {
        match self {
            Self::Plain(_) => None,
            Self::Tls(tls) => Some(&tls.conn),
        }
    }
}

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => tcp.read(buf),
            #[cfg(feature = "rustls")]
            Self::Tls(tls) => tls.read(buf),
        }
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => tcp.read_vectored(bufs),
            #[cfg(feature = "rustls")]
            Self::Tls(tls) => tls.read_vectored(bufs),
        }
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => tcp.write(buf),
            #[cfg(feature = "rustls")]
            Self::Tls(tls) => tls.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => tcp.write_vectored(bufs),
            #[cfg(feature = "rustls")]
            Self::Tls(tls) => tls.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(tcp) => tcp.flush(),
            #[cfg(feature = "rustls")]
            Self::Tls(tls) => tls.flush(),
        }
    }
}

impl Transport for ClientStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp().set_read_timeout(timeout)
    }

    /// Over TLS, sends `close_notify` first, so the server sees a clean end of the session
    /// (RFC 8446 §6.1), then shuts the TCP connection.
    fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(tcp) => Transport::shutdown(tcp),
            #[cfg(feature = "rustls")]
            Self::Tls(tls) => {
                tls.conn.send_close_notify();
                while tls.conn.wants_write() {
                    match tls.conn.write_tls(&mut tls.sock) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        // The server may have gone first, as RFC 6455 §7.1.1 has it do; the
                        // session is over either way.
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::BrokenPipe
                                    | io::ErrorKind::ConnectionReset
                                    | io::ErrorKind::NotConnected
                            ) =>
                        {
                            break;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Transport::shutdown(&mut tls.sock)
            }
        }
    }

    /// TCP only: over TLS the frame header and its payload are copied into one write, so
    /// that they share a TLS record instead of paying one each.
    fn writes_vectored(&self) -> bool {
        matches!(self, Self::Plain(_))
    }
}
