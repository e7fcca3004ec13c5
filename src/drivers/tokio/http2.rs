//! WebSockets over HTTP/2 (RFC 8441): a client that opens each one as an extended CONNECT
//! stream on a shared hyper HTTP/2 connection.
//!
//! [`H2Connection::handshake`] starts HTTP/2 over a stream the caller connected (TCP for
//! h2c; TLS for h2, with a configuration offering ALPN `h2`, such as
//! [`tls::with_alpn_h2`](crate::drivers::tls::with_alpn_h2)'s) and runs the connection on a
//! tokio task. [`H2Connection::open`] then sends `CONNECT` with `:protocol = websocket`
//! (RFC 8441 §4), checks the answer with the rules of the HTTP/1.1 client, and returns a
//! [`WebSocketStream`] over the stream, already open. Clones of the `H2Connection` open
//! further WebSockets on the same TCP connection, each its own HTTP/2 stream with its own
//! flow control.
//!
//! ```no_run
//! use wsproto::drivers::tokio::http2::H2Connection;
//! use wsproto::{ClientRequest, Config};
//!
//! # async fn demo() -> Result<(), wsproto::drivers::Error> {
//! let tcp = tokio::net::TcpStream::connect("127.0.0.1:8080").await?;
//! let h2 = H2Connection::handshake(tcp).await?;
//! let request = ClientRequest::new("ws://127.0.0.1:8080/chat")?;
//! let mut chat = h2.open(request.clone(), Config::default()).await?;
//! let mut feed = h2.open(request, Config::default()).await?;
//! chat.send_text("hello").await?;
//! # let _ = feed.recv().await?;
//! # Ok(())
//! # }
//! ```
//!
//! A stream reset by either side (`RST_STREAM`) ends that WebSocket as a dropped TCP
//! connection ends one over HTTP/1.1: the connection closes with 1006
//! ([`CloseCode::ABNORMAL`](crate::CloseCode)). The other streams carry on. Dropping a
//! [`WebSocketStream`] before its closing handshake resets its stream.
//!
//! Read every WebSocket steadily. Each WebSocket frame travels as one DATA frame, and hyper's
//! h2 bounds the small DATA frames a connection holds unread: each one under 256 bytes costs
//! its shortfall from 256 against a budget of half the connection window, and past the
//! budget h2 closes the whole connection with `ENHANCE_YOUR_CALM`. A reader that falls far
//! behind a peer sending many small (or well-compressed) messages thus ends every WebSocket
//! on the connection, where over HTTP/1.1 it would only stall TCP; an application that
//! cannot keep up should bound the messages it has in flight.

use super::{WebSocketStream, lock};
use crate::config::Config;
use crate::drivers::Error;
use crate::handshake::http_client::ExtendedConnect;
use crate::handshake::{ClientRequest, HandshakeError};
use crate::os_entropy;
use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use ::tokio::sync::watch;
use core::future::{Future, poll_fn};
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper::ext::Protocol;
use hyper::upgrade::Upgraded;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::io::{self, IoSlice};
use std::string::String;
use std::sync::{Arc, Mutex};

/// The stream a WebSocket over HTTP/2 runs on: the CONNECT stream's DATA frames, both ways.
///
/// A reset stream (`RST_STREAM`, or the connection gone) often shows on the write side
/// first, as an error from hyper, while the read side has yet to report it. Bytes written
/// after a reset are lost, as after a TCP reset; so once a write fails, writes are taken
/// and dropped, and the read side reports how the stream ended: end of stream for
/// `NO_ERROR` and `CANCEL`, which the connection turns into 1006, an IO error otherwise.
#[derive(Debug)]
pub struct H2Stream {
    io: TokioIo<Upgraded>,
    /// A write failed: the stream is reset or the connection gone.
    reset: bool,
}

impl H2Stream {
    /// Whether a write found the stream reset (or the connection gone).
    #[must_use]
    pub fn is_reset(&self) -> bool {
        self.reset
    }

    /// Notes a failed write; the read side reports the end.
    fn written<T>(&mut self, polled: Poll<io::Result<T>>, done: T) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(Err(_)) => {
                self.reset = true;
                Poll::Ready(Ok(done))
            }
            other => other,
        }
    }
}

impl AsyncRead for H2Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.reset {
            return Poll::Ready(Ok(buf.len()));
        }
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.written(polled, buf.len())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.reset {
            return Poll::Ready(Ok(()));
        }
        let polled = Pin::new(&mut this.io).poll_flush(cx);
        this.written(polled, ())
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.reset {
            return Poll::Ready(Ok(()));
        }
        let polled = Pin::new(&mut this.io).poll_shutdown(cx);
        this.written(polled, ())
    }
}

/// One HTTP/2 connection to a server, on which WebSockets open as extended CONNECT streams.
///
/// Clones share the connection. It closes once every clone and every WebSocket opened on it
/// is dropped (or when the server ends it).
#[derive(Debug, Clone)]
pub struct H2Connection {
    sender: SendRequest<String>,
    /// Whether the server enabled extended CONNECT; `None` until its first SETTINGS frame
    /// is applied.
    settings: watch::Receiver<Option<bool>>,
}

impl H2Connection {
    /// Starts HTTP/2 over `io` (the client preface and SETTINGS, RFC 9113 §3.4) and runs the
    /// connection on a tokio task. `io` is a TCP stream for h2c (prior knowledge, RFC 9113
    /// §3.3) or a TLS stream that negotiated ALPN `h2`.
    ///
    /// # Errors
    /// [`Error::Http2`] when hyper refuses to start.
    pub async fn handshake<T>(io: T) -> Result<Self, Error>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (settings_tx, settings) = watch::channel(None);
        let applied = Arc::new(Applied::default());
        let io = SettingsWatch {
            io,
            first_frame: FirstFrame::default(),
            applied: Arc::clone(&applied),
        };
        let (sender, mut connection) = Builder::new(TokioExecutor::new())
            .handshake::<_, String>(TokioIo::new(io))
            .await
            .map_err(Error::Http2)?;
        // The connection ends on its own once every handle and stream is dropped; its error
        // reaches the streams and requests in flight, which report it. Meanwhile it tells
        // `open` what the server's first SETTINGS said, once they are applied.
        // hyper reads the socket on a task of its own, which wakes this one through
        // `applied`.
        ::tokio::spawn(poll_fn(move |cx| {
            let polled = Pin::new(&mut connection).poll(cx);
            if settings_tx.borrow().is_none() {
                if applied.done.load(Ordering::Acquire) {
                    settings_tx
                        .send_replace(Some(connection.is_extended_connect_protocol_enabled()));
                } else {
                    *lock(&applied.waker) = Some(cx.waker().clone());
                    // Set meanwhile: poll again rather than miss it.
                    if applied.done.load(Ordering::Acquire) {
                        cx.waker().wake_by_ref();
                    }
                }
            }
            polled
        }));
        Ok(Self { sender, settings })
    }

    /// Opens a WebSocket on a new stream (RFC 8441 §4-5): `CONNECT` with `:protocol =
    /// websocket`, `:scheme`, `:authority` and `:path` from `request`'s URL,
    /// `sec-websocket-version: 13`, its subprotocols, `Origin` and headers, and
    /// permessage-deflate when `config.deflate` asks for it. A 2xx answer opens it: the
    /// subprotocol and extensions the server chose are checked as an HTTP/1.1 client checks a
    /// 101's, and the returned stream's connection is open, in the client role, masking with
    /// keys from [`os_entropy`]. All of it within
    /// `config.handshake_timeout`.
    ///
    /// # Errors
    /// - [`Error::ExtendedConnectDisabled`] when the server's SETTINGS did not enable
    ///   extended CONNECT (RFC 8441 §3); nothing is sent then.
    /// - `HandshakeError::UnexpectedStatus` (in [`Error::Connection`]) for an answer
    ///   outside 2xx, with its status and headers.
    /// - The HTTP/1.1 client's errors for a subprotocol or extension that was not offered,
    ///   or a permessage-deflate answer that does not fit the offer.
    /// - `HandshakeError::Timeout` past `config.handshake_timeout`.
    /// - [`Error::Http2`] when the connection or the stream fails (the server reset it, say).
    pub async fn open(
        &self,
        request: ClientRequest,
        config: Config,
    ) -> Result<WebSocketStream<H2Stream>, Error> {
        match config.handshake_timeout {
            Some(limit) => ::tokio::time::timeout(limit, self.open_now(request, config))
                .await
                .map_err(|_| Error::from(HandshakeError::Timeout))?,
            None => self.open_now(request, config).await,
        }
    }

    async fn open_now(
        &self,
        request: ClientRequest,
        config: Config,
    ) -> Result<WebSocketStream<H2Stream>, Error> {
        // RFC 8441 §4: `:protocol` only once the server's SETTINGS said it understands it.
        let mut settings = self.settings.clone();
        let enabled = match settings.wait_for(Option::is_some).await {
            Ok(enabled) => *enabled == Some(true),
            Err(_) => return Err(Error::Closed),
        };
        if !enabled {
            return Err(Error::ExtendedConnectDisabled);
        }
        let connect = ExtendedConnect::new(request, config);
        let mut head = connect.request()?.map(|()| String::new());
        head.extensions_mut()
            .insert(Protocol::from_static("websocket"));
        let mut sender = self.sender.clone();
        sender.ready().await.map_err(Error::Http2)?;
        let response = sender.send_request(head).await.map_err(Error::Http2)?;
        let (parts, body) = response.into_parts();
        let conn = connect.finish(&parts, os_entropy)?;
        let upgraded = hyper::upgrade::on(hyper::Response::from_parts(parts, body))
            .await
            .map_err(Error::Http2)?;
        let stream = H2Stream {
            io: TokioIo::new(upgraded),
            reset: false,
        };
        Ok(WebSocketStream::from_connection(stream, conn))
    }
}

/// The first frame a server sends, as far as it has arrived: it must be SETTINGS
/// (RFC 9113 §3.4), and it is applied once fully read.
#[derive(Debug, Default)]
struct FirstFrame {
    /// The 9-byte frame header (RFC 9113 §4.1), for the payload length.
    header: [u8; 9],
    /// Bytes of the frame read so far.
    read: usize,
}

impl FirstFrame {
    /// Counts `bytes` read from the server.
    fn note(&mut self, bytes: &[u8]) {
        let mut bytes = bytes;
        while self.read < self.header.len()
            && let Some((&b, rest)) = bytes.split_first()
        {
            self.header[self.read] = b;
            self.read += 1;
            bytes = rest;
        }
        self.read = self.read.saturating_add(bytes.len());
    }

    fn is_complete(&self) -> bool {
        let [a, b, c, ..] = self.header;
        let payload = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
        self.read >= self.header.len() && self.read >= self.header.len() + payload
    }
}

/// Whether the server's first frame has been applied, and the task to tell.
#[derive(Debug, Default)]
struct Applied {
    done: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

/// The server's end of the connection, watched for its first SETTINGS frame being applied.
///
/// hyper says whether the server enabled extended CONNECT, but not whether its SETTINGS have
/// arrived yet (`false` either way). The connection task reads again only after handling what it read, and it
/// applies a peer's SETTINGS before reading the next frame, so the first read after the
/// whole first frame arrived marks it applied.
#[derive(Debug)]
struct SettingsWatch<T> {
    io: T,
    first_frame: FirstFrame,
    /// Set at the first read after the whole first frame arrived.
    applied: Arc<Applied>,
}

impl<T: AsyncRead + Unpin> AsyncRead for SettingsWatch<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let watching = !this.applied.done.load(Ordering::Relaxed);
        if watching && this.first_frame.is_complete() {
            this.applied.done.store(true, Ordering::Release);
            if let Some(waker) = lock(&this.applied.waker).take() {
                waker.wake();
            }
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if watching {
            this.first_frame.note(&buf.filled()[before..]);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SettingsWatch<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::FirstFrame;

    #[test]
    fn first_frame_complete_after_header_and_payload_in_pieces() {
        // RFC 9113 §6.5: a SETTINGS frame with one setting, RFC 8441 §3 ENABLE_CONNECT_PROTOCOL = 1.
        let frame = [0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 1];
        for split in 0..frame.len() {
            let mut first = FirstFrame::default();
            first.note(&frame[..split]);
            assert!(!first.is_complete(), "complete after {split} bytes");
            first.note(&frame[split..]);
            assert!(first.is_complete());
        }
        let mut empty = FirstFrame::default();
        empty.note(&[0, 0, 0, 4, 0, 0, 0, 0]);
        assert!(!empty.is_complete());
        empty.note(&[0]);
        assert!(empty.is_complete());
    }
}
