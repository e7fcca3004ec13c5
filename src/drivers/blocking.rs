//! A blocking driver: one [`Connection`] over a `std::io::Read + Write` stream.
//!
//! [`WebSocket::connect`] opens `ws://` and, with the `rustls` feature, `wss://` URLs
//! itself ([`ClientStream`]); [`WebSocket::client_on`] and [`WebSocket::accept`] take any
//! stream that implements [`Transport`].
//!
//! ```no_run
//! use wsproto::drivers::{blocking::WebSocket, Message};
//!
//! let mut ws = WebSocket::connect("ws://127.0.0.1:9001/")?;
//! ws.send_text("hello")?;
//! while let Some(message) = ws.recv()? {
//!     println!("{message:?}");
//!     ws.close(wsproto::CloseCode::NORMAL, "bye")?;
//! }
//! # Ok::<(), wsproto::drivers::Error>(())
//! ```

mod client;
mod serve;

pub use client::ClientStream;
pub use serve::{Server, ServerHandle};

use super::message_read::ReadProgress;
use super::{Answer, Connector, Error, Lent, Message, apply_answer, lent_write, write_outcome};
use crate::close::CloseCode;
use crate::config::Config;
use crate::connection::{Connection, ConnectionState};
use crate::error::UsageError;
use crate::event::{Event, MessageKind};
use crate::handshake::{ClientRequest, Request};
use crate::os_entropy;
use crate::prepared::PreparedMessage;
use crate::sender::Sender;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A stream the blocking driver can run on. Timers need a read timeout; streams without one
/// (the default methods) still work, without keepalive or timeouts while blocked in a read.
pub trait Transport: Read + Write {
    /// Sets how long a read may block (`None`: forever).
    ///
    /// # Errors
    /// As [`TcpStream::set_read_timeout`].
    fn set_read_timeout(&mut self, _timeout: Option<Duration>) -> io::Result<()> {
        Ok(())
    }

    /// Closes the stream in both directions once the closing handshake is done.
    ///
    /// # Errors
    /// As [`TcpStream::shutdown`].
    fn shutdown(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Whether `write_vectored` writes from several slices at once. Only then does the
    /// driver write a large payload by reference after its frame header; otherwise (the
    /// default) the payload is copied behind the header and goes out in one `write`, so
    /// the header never travels alone in a TCP segment or TLS record.
    fn writes_vectored(&self) -> bool {
        false
    }
}

impl Transport for TcpStream {
    fn writes_vectored(&self) -> bool {
        true
    }

    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }

    fn shutdown(&mut self) -> io::Result<()> {
        match TcpStream::shutdown(self, Shutdown::Both) {
            // The peer may have closed first.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        }
    }
}

/// A rustls stream over TCP, either side (`ClientConnection` or `ServerConnection`): a server
/// accepts on a `StreamOwned<ServerConnection, TcpStream>` it built itself. Reads time out on
/// the socket; shutting down sends the TLS `close_notify` alert, then closes the socket. Writes
/// are not vectored, so a frame header and its payload go out in one TLS record.
#[cfg(feature = "rustls")]
impl<C, D> Transport for rustls::StreamOwned<C, TcpStream>
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<D>>,
    D: rustls::SideData,
{
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.sock.set_read_timeout(timeout)
    }

    fn shutdown(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        match self.flush() {
            // The closing handshake is done; a peer that already went away misses only the
            // alert.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotConnected
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::ConnectionReset
                ) => {}
            other => other?,
        }
        Transport::shutdown(&mut self.sock)
    }
}

/// Reads done while no frame is in progress go through a small stack buffer, so a
/// connection blocked waiting for its peer holds no heap buffer.
const IDLE_READ: usize = 4096;

/// One data message read as bytes: [`WebSocket::read_message`].
#[derive(Debug)]
pub struct MessageReader<'a, S> {
    ws: &'a mut WebSocket<S>,
    progress: ReadProgress,
}

impl<S> MessageReader<'_, S> {
    /// The message's kind, once its first bytes were read; `None` before, and when the
    /// connection closed before a message started.
    #[must_use]
    pub fn kind(&self) -> Option<MessageKind> {
        self.progress.kind
    }
}

impl<S: Transport> Read for MessageReader<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(n) = self.progress.take_kept(buf) {
            return Ok(n);
        }
        if self.progress.finished() || buf.is_empty() {
            return Ok(0);
        }
        let progress = &mut self.progress;
        loop {
            match self
                .ws
                .recv_up_to(buf.len(), |event| progress.take(event, buf))
            {
                Ok(Some(Some(read))) => return read,
                Ok(Some(None)) => {}
                Ok(None) => return progress.closed(),
                Err(e) => return Err(io::Error::other(e)),
            }
        }
    }
}

/// A WebSocket over a blocking stream.
#[derive(Debug)]
pub struct WebSocket<S> {
    stream: S,
    conn: Connection,
    clock: Instant,
    shut: bool,
}

impl WebSocket<ClientStream> {
    /// Connects to a `ws://` or `wss://` URL with the default [`Config`] and [`Connector`].
    ///
    /// # Errors
    /// An invalid URL, IO errors, TLS failures (`Error::Tls`, `Error::NoTlsRoots`; without the
    /// `rustls` feature `wss://` is [`Error::TlsRequired`]) and handshake failures.
    pub fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(ClientRequest::new(url)?, Config::default())
    }

    /// Connects with a prepared request (subprotocols, origin, headers) and configuration,
    /// through the default [`Connector`].
    ///
    /// # Errors
    /// As [`WebSocket::connect`].
    pub fn connect_with(request: ClientRequest, config: Config) -> Result<Self, Error> {
        Self::connect_using(request, config, &Connector::default())
    }

    /// Connects through `connector` (a TLS configuration of your own, say), then runs the
    /// client handshake. For `wss://` the TLS handshake is done first, within
    /// `config.handshake_timeout`.
    ///
    /// # Errors
    /// As [`WebSocket::connect`].
    pub fn connect_using(
        request: ClientRequest,
        config: Config,
        connector: &Connector,
    ) -> Result<Self, Error> {
        let stream = connector.connect_blocking(&request, &config)?;
        Self::client_on(stream, request, config)
    }
}

impl<S: Transport> WebSocket<S> {
    /// Runs the client handshake over an already-connected stream (a TLS stream, say).
    ///
    /// # Errors
    /// IO errors and handshake failures.
    pub fn client_on(stream: S, request: ClientRequest, config: Config) -> Result<Self, Error> {
        let conn = Connection::client(request, config, os_entropy);
        let mut ws = Self::from_connection(stream, conn);
        loop {
            ws.fill()?;
            match ws.conn.next_event() {
                Ok(Some(Event::Accepted(_))) => return Ok(ws),
                Ok(Some(_)) => {}
                Ok(None) if ws.shut => return Err(Error::Closed),
                Ok(None) => {}
                Err(e) => return Err(ws.failed(e.into())),
            }
        }
    }

    /// Runs the server handshake and accepts any valid request. `config` is a [`Config`] or
    /// an `Arc<Config>` shared by many connections.
    ///
    /// # Errors
    /// IO errors and invalid requests (already answered with their 4xx).
    pub fn accept(stream: S, config: impl Into<Arc<Config>>) -> Result<Self, Error> {
        Self::accept_with(stream, config, |_| Answer::Accept(crate::Accept::new()))
    }

    /// Runs the server handshake; `decide` looks at the request and accepts (choosing a
    /// subprotocol, adding headers) or rejects it.
    ///
    /// # Errors
    /// IO errors, invalid requests (answered with their 4xx), a rejection, or an invalid
    /// answer.
    pub fn accept_with(
        stream: S,
        config: impl Into<Arc<Config>>,
        decide: impl FnOnce(&Request) -> Answer,
    ) -> Result<Self, Error> {
        let mut ws = Self::from_connection(stream, Connection::server(config));
        let mut decide = Some(decide);
        loop {
            ws.fill()?;
            let answer = match ws.conn.next_event() {
                Ok(Some(Event::Request(request))) => match decide.take() {
                    Some(decide) => decide(request),
                    None => continue,
                },
                Ok(Some(_)) => continue,
                Ok(None) if ws.shut => return Err(Error::Closed),
                Ok(None) => continue,
                Err(e) => return Err(ws.failed(e.into())),
            };
            if let Err(e) = apply_answer(&mut ws.conn, answer) {
                return Err(ws.failed(e));
            }
            ws.flush()?;
            return Ok(ws);
        }
    }

    /// Wraps a connection in any state, for streams upgraded elsewhere.
    pub fn from_connection(stream: S, conn: Connection) -> Self {
        Self {
            stream,
            conn,
            clock: Instant::now(),
            shut: false,
        }
    }

    /// The next message, owned; `Ok(None)` once the connection is closed and the stream shut.
    /// Pings are answered and reported; keepalive runs while this blocks.
    ///
    /// # Errors
    /// IO errors and connection failures (the Close frame was sent first).
    pub fn recv(&mut self) -> Result<Option<Message>, Error> {
        loop {
            match self.recv_with(|event| Message::from_event(&event))? {
                Some(Some(message)) => return Ok(Some(message)),
                Some(None) => {}
                None => return Ok(None),
            }
        }
    }

    /// Hands the next event to `f` without copying its payload; `Ok(None)` once closed.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn recv_with<R>(&mut self, f: impl FnOnce(Event<'_>) -> R) -> Result<Option<R>, Error> {
        self.recv_up_to(usize::MAX, f)
    }

    /// The next data message as an [`io::Read`] of its bytes, for messages too large to hold:
    /// with `Config::stream_messages` each read takes the next piece straight from the
    /// connection's buffer into the caller's, and the message never sits in memory whole.
    /// Without it the message arrives whole first and is read out of it.
    ///
    /// Pings and Pongs before and inside the message are answered and passed over. The
    /// reader ends (reads return 0) where the message ends; a connection that closes before
    /// a message starts ends it empty, with [`kind`](MessageReader::kind) `None` (the Close
    /// is taken: the next [`recv`](Self::recv) reports the end). Closing inside the message
    /// is an `UnexpectedEof` error. Drop the reader only at its end: what is left of the
    /// message would be read as the start of the next one.
    ///
    /// ```no_run
    /// # fn demo(mut ws: wsproto::drivers::blocking::WebSocket<std::net::TcpStream>)
    /// # -> std::io::Result<()> {
    /// let mut file = std::fs::File::create("upload.bin")?;
    /// let mut message = ws.read_message();
    /// std::io::copy(&mut message, &mut file)?;
    /// println!("a {:?} message", message.kind());
    /// # Ok(())
    /// # }
    /// ```
    pub fn read_message(&mut self) -> MessageReader<'_, S> {
        MessageReader {
            ws: self,
            progress: ReadProgress::default(),
        }
    }

    /// As [`recv_with`](Self::recv_with), a streamed chunk holding at most `max_chunk` bytes.
    fn recv_up_to<R>(
        &mut self,
        max_chunk: usize,
        f: impl FnOnce(Event<'_>) -> R,
    ) -> Result<Option<R>, Error> {
        loop {
            // The Pong to the next Ping would replace a waiting one: each Ping of a burst is
            // answered. (A blocking write waits for a peer that does not read, as `fill`
            // does before reading.)
            if self.conn.pong_waiting() {
                self.flush()?;
            }
            match self.conn.next_event_up_to(max_chunk) {
                Ok(Some(event)) => return Ok(Some(f(event))),
                Ok(None) if self.shut => return Ok(None),
                Ok(None) => {}
                Err(e) => return Err(self.failed(e.into())),
            }
            self.fill()?;
        }
    }

    /// Hands the next event to `f` together with a [`Sender`] for replies, then writes what
    /// `f` queued: an echo or a relay frames the payload straight from the receive buffer,
    /// without copying it out first. `Ok(Some(_))` carries what `f` returned, `Ok(None)`
    /// comes once closed.
    ///
    /// `f` returns the result of its sends, so an echo is one match and a send that fails
    /// ends the loop with the error:
    ///
    /// ```no_run
    /// use wsproto::Event;
    /// use wsproto::drivers::blocking::WebSocket;
    ///
    /// # fn demo(mut ws: WebSocket<std::net::TcpStream>) -> Result<(), wsproto::drivers::Error> {
    /// while let Some(()) = ws.recv_with_sender(|event, sender| match event {
    ///     Event::Text(text) => sender.send_text_borrowed(text),
    ///     Event::Binary(data) => sender.send_binary_borrowed(data),
    ///     _ => Ok(()),
    /// })? {}
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`recv`](Self::recv); and an error `f` returns, as [`Error::Usage`]. It is returned
    /// once the driver has written what was queued before it (what `f` sent, and what the
    /// connection queued, such as the echo of a Close). If that write fails as well, `f`'s
    /// error is still the one returned, and the unwritten bytes stay queued, ahead of
    /// anything sent later, for the next write.
    pub fn recv_with_sender<R>(
        &mut self,
        f: impl for<'e> FnOnce(Event<'e>, &mut Sender<'e>) -> Result<R, UsageError>,
    ) -> Result<Option<R>, Error> {
        // Taken by the one pass of the loop that has an event; the borrow checker cannot
        // see that this pass returns, as the reply is written before the event's borrow ends.
        let mut f = Some(f);
        loop {
            let next = match self.conn.next_event_with_sender() {
                Ok(Some((event, mut sender))) => {
                    let f = f.take().expect("the loop returns after the first event");
                    let result = f(event, &mut sender);
                    let written = write_lent(&mut self.stream, &mut sender);
                    Ok(Some((result, written)))
                }
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            match next {
                Ok(Some((result, written))) => {
                    let flushed = match write_outcome(&self.conn, &mut self.shut, written) {
                        Ok(()) => self.flush(),
                        Err(e) => Err(e.into()),
                    };
                    let reply = result?;
                    flushed?;
                    return Ok(Some(reply));
                }
                Ok(None) if self.shut => return Ok(None),
                Ok(None) => {}
                Err(e) => return Err(self.failed(e.into())),
            }
            self.fill()?;
        }
    }

    /// Sends a text message.
    ///
    /// # Errors
    /// [`Error::Usage`] when not open; IO errors.
    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.conn.send_text(text)?;
        self.flush()
    }

    /// Sends a binary message. A server's large uncompressed payload is written from
    /// `data` itself, after the frame header in one vectored write, on streams that write
    /// vectored ([`Transport::writes_vectored`]).
    ///
    /// # Errors
    /// As [`send_text`](Self::send_text).
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        self.send_lent(Lent::Binary(data))
    }

    /// Sends a [`PreparedMessage`]: a server writes its shared frame (compressed once for
    /// every connection without server context takeover) from the message itself, as
    /// [`send_binary`](Self::send_binary) writes a large payload; see
    /// [`Sender::send_prepared`].
    ///
    /// # Errors
    /// As [`send_text`](Self::send_text).
    pub fn send_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        self.send_lent(Lent::Prepared(message))
    }

    /// Queues `lent` by reference where the connection allows, writes it from the caller's
    /// memory, then flushes.
    fn send_lent(&mut self, lent: Lent<'_>) -> Result<(), Error> {
        let mut sender = self.conn.sender();
        lent.queue(&mut sender)?;
        let written = write_lent(&mut self.stream, &mut sender);
        drop(sender);
        write_outcome(&self.conn, &mut self.shut, written)?;
        self.flush()
    }

    /// Sends one fragment of a message sent in pieces (see `Connection::send_fragment`).
    ///
    /// # Errors
    /// As [`send_text`](Self::send_text).
    pub fn send_fragment(
        &mut self,
        kind: MessageKind,
        data: &[u8],
        is_final: bool,
    ) -> Result<(), Error> {
        self.conn.send_fragment(kind, data, is_final)?;
        self.flush()
    }

    /// Sends a Ping.
    ///
    /// # Errors
    /// As [`send_text`](Self::send_text).
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.conn.send_ping(payload)?;
        self.flush()
    }

    /// Starts the closing handshake; keep calling [`recv`](Self::recv) until it returns
    /// `Ok(None)` to finish it.
    ///
    /// # Errors
    /// As [`send_text`](Self::send_text).
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.conn.close(code, reason)?;
        self.flush()
    }

    /// Writes everything the connection has queued.
    ///
    /// # Errors
    /// IO errors.
    pub fn flush(&mut self) -> Result<(), Error> {
        let written = self.write_out();
        write_outcome(&self.conn, &mut self.shut, written)?;
        if self.conn.wants_shutdown() && !self.shut {
            self.shut = true;
            self.stream.shutdown()?;
        }
        Ok(())
    }

    fn write_out(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            let n = match self.stream.write(self.conn.pending_output()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.conn.consume_output(n);
        }
        self.stream.flush()
    }

    /// The connection, for queries such as `subprotocol()` or `state()`.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The connection, for commands the driver has no method for.
    pub fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The stream, for settings such as timeouts or `TCP_NODELAY`. Bytes written or read
    /// through it past the driver would break the framing.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Flushes, then reads once into the connection, acting on timers while it waits.
    fn fill(&mut self) -> Result<(), Error> {
        self.flush()?;
        if self.shut {
            return Ok(());
        }
        let now = self.clock.elapsed();
        let timeout = match self.conn.poll_timeout() {
            Some(at) if at <= now => {
                self.conn.handle_timeout(now);
                return Ok(());
            }
            Some(at) => Some(at - now),
            None => None,
        };
        self.stream.set_read_timeout(timeout)?;
        let result = if self.conn.prefers_receive_buffer() {
            self.stream
                .read(self.conn.receive_buffer())
                .map(|n| (n, None))
        } else {
            let mut idle = [0; IDLE_READ];
            self.stream.read(&mut idle).map(|n| (n, Some(idle)))
        };
        match result {
            Ok((0, _)) => self.conn.receive_eof(),
            Ok((n, None)) => self.conn.commit(n),
            Ok((n, Some(idle))) => self.conn.receive(&idle[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            // A reset once the closing handshake is done just ends the stream.
            Err(_) if self.conn.state() == ConnectionState::Closed => self.conn.receive_eof(),
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Sends what the failure queued (Close frame or HTTP response), then returns `error`.
    fn failed(&mut self, error: Error) -> Error {
        // The peer may already be gone; the original error is the one worth reporting.
        let _ = self.flush();
        error
    }
}

/// Writes a payload that `sender` lent, with the output queued before it, in vectored
/// writes, on streams that write vectored (on others the sender copies it behind its header
/// when dropped, and the ordinary flush writes both at once). What is left when a write fails
/// the sender copies into the connection's output when dropped.
fn write_lent<T: Transport>(stream: &mut T, sender: &mut Sender<'_>) -> io::Result<()> {
    if !stream.writes_vectored() {
        return Ok(());
    }
    while let Some(slices) = lent_write(sender) {
        match stream.write_vectored(&slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => sender.consume_output(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
