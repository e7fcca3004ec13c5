//! An async driver: one [`Connection`] over a tokio `AsyncRead + AsyncWrite` stream.
//!
//! [`WebSocketStream::connect`] opens `ws://` and, with the `tokio-rustls` feature,
//! `wss://` URLs itself ([`ClientStream`]); [`WebSocketStream::client_on`] and
//! [`WebSocketStream::accept`] take any stream.
//!
//! [`WebSocketStream::recv`] is cancel-safe: received bytes go straight into the
//! connection's buffer and output is consumed only once written, so dropping the future (in
//! `tokio::select!`, say) loses nothing; the next call carries on. Timers (keepalive, close
//! and handshake timeouts) run on `tokio::time` while a read waits. Underneath, receiving is
//! one poll function, [`WebSocketStream::poll_recv`], which `recv` and (with the `futures`
//! feature) `Stream::poll_next` both use.
//!
//! With the `http2` feature, [`http2::H2Connection`] opens WebSockets as RFC 8441 streams
//! on one HTTP/2 connection.
//!
//! [`Reconnect`] is a client that reconnects with exponential backoff, like Python
//! websockets' `async for ws in connect(...)`.
//!
//! [`Hub`] publishes to topics: each message prepared once, every subscriber's queue
//! bounded, slow consumers dropped or closed. With the `redis` feature, [`RedisRelay`]
//! shares its topics with other processes through Redis pub/sub.
//!
//! ```no_run
//! use wsproto::drivers::{tokio::WebSocketStream, Message};
//!
//! # async fn demo() -> Result<(), wsproto::drivers::Error> {
//! let mut ws = WebSocketStream::connect("ws://127.0.0.1:9001/").await?;
//! ws.send_text("hello").await?;
//! while let Some(message) = ws.recv().await? {
//!     if let Message::Text(text) = message {
//!         println!("{text}");
//!     }
//!     ws.close(wsproto::CloseCode::NORMAL, "").await?;
//! }
//! # Ok(())
//! # }
//! ```

mod client;
#[cfg(feature = "http2")]
pub mod http2;
mod hub;
mod reconnect;
#[cfg(feature = "redis")]
mod redis_relay;
mod serve;
#[cfg(feature = "futures")]
mod stream;

pub use client::ClientStream;
pub use hub::{Delivery, Hub, HubConfig, HubStats, SlowConsumer, Subscriber};
pub use reconnect::{Reconnect, ReconnectError};
#[cfg(feature = "redis")]
pub use redis_relay::{RedisRelay, RelayError, RelayStats};
pub use serve::{Server, ServerHandle, ServerReader, ServerStream, Shutdown};

use super::message_read::ReadProgress;
use super::{Answer, Connector, Error, Lent, Message, apply_answer, lent_write, write_outcome};
use crate::close::CloseCode;
use crate::config::Config;
use crate::connection::{Connection, ConnectionState};
use crate::error::UsageError;
use crate::event::{Event, MessageKind};
use crate::handshake::{Accept, ClientRequest, Request};
use crate::os_entropy;
use crate::prepared::PreparedMessage;
use crate::sender::Sender;
use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use ::tokio::time::{Instant, Sleep};
use core::future::poll_fn;
use core::pin::Pin;
use core::task::Waker;
use core::task::{Context, Poll, ready};
use std::boxed::Box;
use std::io;
use std::string::String;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Wake;
use std::vec::Vec;

/// Reads done while no frame is in progress go through a small stack buffer, so a
/// connection waiting for its peer holds no heap buffer.
const IDLE_READ: usize = 4096;

/// Timers and shutdown state shared by the whole stream and the reader half.
#[derive(Debug)]
struct Clock {
    origin: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Clock {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            sleep: None,
        }
    }

    /// Acts on due timers. Returns `Ready` when a timer fired (the caller loops), `Pending`
    /// with a wake-up registered otherwise.
    fn poll(&mut self, conn: &mut Connection, cx: &mut Context<'_>) -> Poll<()> {
        let Some(at) = conn.poll_timeout() else {
            self.sleep = None;
            return Poll::Pending;
        };
        let now = self.origin.elapsed();
        if at <= now {
            conn.handle_timeout(now);
            return Poll::Ready(());
        }
        let deadline = self.origin + at;
        match &mut self.sleep {
            Some(sleep) if sleep.deadline() == deadline => {}
            Some(sleep) => sleep.as_mut().reset(deadline),
            None => self.sleep = Some(Box::pin(::tokio::time::sleep_until(deadline))),
        }
        let sleep = self.sleep.as_mut().expect("set above");
        ready!(sleep.as_mut().poll(cx));
        conn.handle_timeout(self.origin.elapsed());
        Poll::Ready(())
    }
}

/// Reads once into the connection: straight into its buffer while a frame is partly there
/// or a kept buffer has room, else through a small stack buffer, so that waiting costs no
/// buffer.
fn poll_read_into<R: AsyncRead + Unpin>(
    reader: &mut R,
    conn: &mut Connection,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    let result = if conn.prefers_receive_buffer() {
        let mut buf = ReadBuf::new(conn.receive_buffer());
        let read = ready!(Pin::new(reader).poll_read(cx, &mut buf)).map(|()| buf.filled().len());
        read.map(|n| {
            if n == 0 {
                conn.receive_eof()
            } else {
                conn.commit(n)
            }
        })
    } else {
        // Left uninitialised: zeroing 4 KiB before every read of a small message was 2% of
        // the 100-connection echo's CPU time. `ReadBuf` tracks what the read filled.
        let mut idle = [core::mem::MaybeUninit::<u8>::uninit(); IDLE_READ];
        let mut buf = ReadBuf::uninit(&mut idle);
        ready!(Pin::new(reader).poll_read(cx, &mut buf)).map(|()| match buf.filled() {
            [] => conn.receive_eof(),
            bytes => conn.receive(bytes),
        })
    };
    match result {
        // A reset once the closing handshake is done just ends the stream.
        Err(_) if conn.state() == ConnectionState::Closed => conn.receive_eof(),
        other => other?,
    }
    Poll::Ready(Ok(()))
}

/// Writes all pending output, then shuts the stream down if the connection wants it.
fn poll_write_out<W: AsyncWrite + Unpin>(
    writer: &mut W,
    conn: &mut Connection,
    shut: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    let written = ready!(poll_write_pending(writer, conn, cx));
    write_outcome(conn, shut, written)?;
    if conn.wants_shutdown() && !*shut {
        // A peer that already closed makes shutdown fail; the connection is done either way.
        let _ = ready!(Pin::new(&mut *writer).poll_shutdown(cx));
        *shut = true;
    }
    Poll::Ready(Ok(()))
}

/// Writes all pending output and flushes.
fn poll_write_pending<W: AsyncWrite + Unpin>(
    writer: &mut W,
    conn: &mut Connection,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while conn.wants_write() {
        let n = ready!(Pin::new(&mut *writer).poll_write(cx, conn.pending_output()))?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        conn.consume_output(n);
    }
    Pin::new(&mut *writer).poll_flush(cx)
}

/// Writes a payload that `sender` lent, with the output queued before it, in vectored
/// writes, on streams that write vectored (on others the sender copies it behind its header
/// when dropped, and the ordinary flush writes both at once, so the header never travels
/// alone in a TCP segment or TLS record). What is left when it stops (an error, or the
/// future dropped) the sender copies into the connection's output when dropped.
fn write_lent<'a, W: AsyncWrite + Unpin>(
    writer: &'a mut W,
    sender: &'a mut Sender<'_>,
) -> impl Future<Output = io::Result<()>> + 'a {
    // A `poll_fn` rather than an `async fn`: the future is only its two references, and a
    // handler's receive future, which holds it, is the smaller for it.
    poll_fn(move |cx| poll_write_lent(writer, sender, cx))
}

/// Writes what `sender` lent for as long as the stream takes it without waiting.
fn try_write_lent<W: AsyncWrite + Unpin>(
    writer: &mut W,
    sender: &mut Sender<'_>,
    cx: &mut Context<'_>,
) -> io::Result<()> {
    match poll_write_lent(writer, sender, cx) {
        Poll::Ready(result) => result,
        Poll::Pending => Ok(()),
    }
}

/// Writes what `sender` lent until it is all written, or the stream is full. The slices
/// are made afresh at each call, so nothing of them is kept across a wait.
fn poll_write_lent<W: AsyncWrite + Unpin>(
    writer: &mut W,
    sender: &mut Sender<'_>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    if !writer.is_write_vectored() {
        return Poll::Ready(Ok(()));
    }
    while let Some(slices) = lent_write(sender) {
        match ready!(Pin::new(&mut *writer).poll_write_vectored(cx, &slices)) {
            Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => sender.consume_output(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
    Poll::Ready(Ok(()))
}

/// The Close frame the peer sent, as the receive path saw it: how a connection ended, for
/// [`Reconnect`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct PeerClose {
    code: CloseCode,
    reason: String,
}

impl PeerClose {
    /// Records `event` if it is the peer's Close, and hands it back. Taken and given back
    /// rather than borrowed: an async caller's borrowed local would keep its place in the
    /// caller's future across every later wait.
    fn note<'e>(slot: &mut Option<Box<Self>>, event: Event<'e>) -> Event<'e> {
        if let Event::Close { code, reason } = &event {
            *slot = Some(Box::new(Self {
                code: *code,
                reason: (*reason).into(),
            }));
        }
        event
    }
}

/// A WebSocket over an async stream.
///
/// # Stream and Sink (feature `futures`)
///
/// [`WebSocketStream`] and [`WebSocketReader`] are streams of `Result<Message, Error>`: each
/// `poll_next` is their `poll_recv`, the same receive path as `recv`, so it is cancel-safe in
/// the same way (a `next()` dropped in `tokio::select!` loses no message). The stream ends
/// (`None`) once the connection is closed and the socket shut; an error is yielded once and
/// the stream ends after it.
///
/// [`WebSocketStream`] and [`WebSocketWriter`] are sinks of [`Message`]: `start_send` queues
/// the message in the connection (a Text, Binary, Ping, Pong, or a Close with its code and
/// reason), `poll_ready` first writes out what is still queued (so a slow peer holds the
/// sender back instead of growing the queue), `poll_flush` writes it all, and `poll_close`
/// starts the closing handshake with 1000 if the connection is still open, then flushes.
/// The handshake finishes on the receiving side, which sees the peer's Close and then the end
/// of the stream.
///
/// The writer half shares the write side with the reader (which answers Pings) and with its
/// clones, without an async lock: each polls it under a plain lock, and the one waker the
/// stream keeps for writing wakes every task that waits to write.
///
/// ```no_run
/// use futures_util::{SinkExt, StreamExt};
/// use wsproto::drivers::{Message, tokio::WebSocketStream};
///
/// # async fn demo() -> Result<(), wsproto::drivers::Error> {
/// let mut ws = WebSocketStream::connect("ws://127.0.0.1:9001/").await?;
/// ws.send(Message::Text("hello".into())).await?;
/// println!("{:?}", ws.next().await);
///
/// // The halves: the reader is a Stream, the writer a Sink.
/// let (mut reader, mut writer) = ws.split();
/// writer.send(Message::Text("and again".into())).await?;
/// SinkExt::close(&mut writer).await?; // Close 1000 (the inherent `close` takes a code)
/// while let Some(message) = reader.next().await {
///     println!("{:?}", message?);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct WebSocketStream<S> {
    stream: S,
    conn: Connection,
    clock: Clock,
    shut: bool,
    /// The peer's Close frame, once the receive path handed it out.
    /// Boxed: every connection holds the slot, few ever fill it before they are dropped.
    peer_close: Option<Box<PeerClose>>,
    /// The receive path found our Close sent (the connection `Closing`): we started the
    /// closing handshake.
    sent_close: bool,
    /// `Stream::poll_next` returned its last item (`None`, or an error).
    #[cfg(feature = "futures")]
    terminated: bool,
}

impl WebSocketStream<ClientStream> {
    /// Connects to a `ws://` or `wss://` URL with the default [`Config`] and [`Connector`].
    ///
    /// # Errors
    /// An invalid URL, IO errors, TLS failures (`Error::Tls`, `Error::NoTlsRoots`; without the
    /// `tokio-rustls` feature `wss://` is [`Error::TlsRequired`]) and handshake failures.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(ClientRequest::new(url)?, Config::default()).await
    }

    /// Connects with a prepared request and configuration, through the default
    /// [`Connector`].
    ///
    /// # Errors
    /// As [`WebSocketStream::connect`].
    pub async fn connect_with(request: ClientRequest, config: Config) -> Result<Self, Error> {
        Self::connect_using(request, config, &Connector::default()).await
    }

    /// Connects through `connector` (a TLS configuration of your own, say), then runs the
    /// client handshake. For `wss://` the TLS handshake comes first, within
    /// `config.handshake_timeout`.
    ///
    /// # Errors
    /// As [`WebSocketStream::connect`].
    pub async fn connect_using(
        request: ClientRequest,
        config: Config,
        connector: &Connector,
    ) -> Result<Self, Error> {
        let stream = connector.connect_tokio(&request, &config).await?;
        Self::client_on(stream, request, config).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocketStream<S> {
    /// Runs the client handshake over an already-connected stream (a TLS stream, say).
    ///
    /// # Errors
    /// IO errors and handshake failures.
    pub async fn client_on(
        stream: S,
        request: ClientRequest,
        config: Config,
    ) -> Result<Self, Error> {
        let mut ws = Self::from_connection(stream, Connection::client(request, config, os_entropy));
        loop {
            match ws.conn.next_event() {
                Ok(Some(Event::Accepted(_))) => return Ok(ws),
                Ok(Some(_)) => {}
                Ok(None) if ws.shut => return Err(Error::Closed),
                Ok(None) => ws.fill().await?,
                Err(e) => return Err(ws.failed(e.into()).await),
            }
        }
    }

    /// Runs the server handshake and accepts any valid request. `config` is a [`Config`] or
    /// an `Arc<Config>` shared by many connections.
    ///
    /// # Errors
    /// IO errors and invalid requests (already answered with their 4xx).
    pub async fn accept(stream: S, config: impl Into<Arc<Config>>) -> Result<Self, Error> {
        Self::accept_with(stream, config, |_| Answer::Accept(Accept::new())).await
    }

    /// Runs the server handshake; `decide` accepts (choosing a subprotocol, adding headers)
    /// or rejects the request.
    ///
    /// # Errors
    /// IO errors, invalid requests (answered with their 4xx), a rejection, an invalid answer.
    pub async fn accept_with(
        stream: S,
        config: impl Into<Arc<Config>>,
        decide: impl FnOnce(&Request) -> Answer,
    ) -> Result<Self, Error> {
        Self::from_connection(stream, Connection::server(config))
            .finish_accept(decide)
            .await
    }

    /// Finishes the handshake of a server connection made by `Connection::server`, possibly
    /// already fed the bytes an application read itself (to route plain HTTP, say).
    ///
    /// # Errors
    /// As [`accept_with`](Self::accept_with).
    pub async fn finish_accept(
        self,
        decide: impl FnOnce(&Request) -> Answer,
    ) -> Result<Self, Error> {
        Ok(self.finish_accept_keeping_request(decide).await?.0)
    }

    /// [`finish_accept`](Self::finish_accept), handing over the request it accepted.
    pub(crate) async fn finish_accept_keeping_request(
        mut self,
        decide: impl FnOnce(&Request) -> Answer,
    ) -> Result<(Self, Box<Request>), Error> {
        let mut decide = Some(decide);
        loop {
            let answer = match self.conn.next_event() {
                Ok(Some(Event::Request(request))) => match decide.take() {
                    Some(decide) => decide(request),
                    None => continue,
                },
                Ok(Some(_)) => continue,
                Ok(None) if self.shut => return Err(Error::Closed),
                Ok(None) => {
                    self.fill().await?;
                    continue;
                }
                Err(e) => return Err(self.failed(e.into()).await),
            };
            let request = match apply_answer(&mut self.conn, answer) {
                Ok(request) => request,
                Err(e) => return Err(self.failed(e).await),
            };
            self.flush().await?;
            return Ok((self, request));
        }
    }

    /// Wraps a connection in any state, for streams upgraded elsewhere.
    pub fn from_connection(stream: S, conn: Connection) -> Self {
        Self {
            stream,
            conn,
            clock: Clock::new(),
            shut: false,
            peer_close: None,
            sent_close: false,
            #[cfg(feature = "futures")]
            terminated: false,
        }
    }

    /// The next message, owned; `Ok(None)` once the connection is closed and the stream
    /// shut. Cancel-safe.
    ///
    /// # Errors
    /// IO errors and connection failures (the Close frame was sent first).
    pub async fn recv(&mut self) -> Result<Option<Message>, Error> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next message: the one receive path under [`recv`](Self::recv) and
    /// `Stream::poll_next`. `Ready(Ok(None))` once the connection is closed and the stream
    /// shut. `Pending` keeps nothing outside the connection (received bytes are in its
    /// buffer, unwritten output in its queue), so a caller may stop polling at any point.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Message>, Error>> {
        self.poll_event(cx, usize::MAX, |event| Message::from_event(&event))
    }

    /// Hands the next event to `f` without copying its payload; `Ok(None)` once closed.
    /// Cancel-safe.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub async fn recv_with<R>(
        &mut self,
        f: impl FnOnce(Event<'_>) -> R,
    ) -> Result<Option<R>, Error> {
        let mut f = Some(f);
        // `poll_event` returns at the first event it hands over, so `f` is taken once.
        poll_fn(|cx| self.poll_event(cx, usize::MAX, |event| f.take().map(|f| f(event)))).await
    }

    /// The next data message as an [`AsyncRead`] of its bytes, for messages too large to
    /// hold: with `Config::stream_messages` each read takes the next piece straight from the
    /// connection's buffer into the caller's, and the message never sits in memory whole.
    /// Without it the message arrives whole first and is read out of it.
    ///
    /// Pings and Pongs before and inside the message are answered and passed over. The
    /// reader ends (reads give 0 bytes) where the message ends; a connection that closes
    /// before a message starts ends it empty, with [`kind`](MessageReader::kind) `None` (the
    /// Close is taken: the next [`recv`](Self::recv) reports the end). Closing inside the
    /// message is an `UnexpectedEof` error. Drop the reader only at its end: what is left of
    /// the message would be read as the start of the next one.
    ///
    /// ```no_run
    /// # async fn demo(mut ws: wsproto::drivers::tokio::WebSocketStream<tokio::net::TcpStream>)
    /// # -> std::io::Result<()> {
    /// let mut file = tokio::fs::File::create("upload.bin").await?;
    /// let mut message = ws.read_message();
    /// tokio::io::copy(&mut message, &mut file).await?;
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
    /// use wsproto::drivers::tokio::WebSocketStream;
    ///
    /// # async fn demo(mut ws: WebSocketStream<tokio::net::TcpStream>)
    /// # -> Result<(), wsproto::drivers::Error> {
    /// while let Some(()) = ws
    ///     .recv_with_sender(|event, sender| match event {
    ///         Event::Text(text) => sender.send_text_borrowed(text),
    ///         Event::Binary(data) => sender.send_binary_borrowed(data),
    ///         _ => Ok(()),
    ///     })
    ///     .await?
    /// {}
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Cancel-safe as far as the stream goes: dropped while the reply is being written, the
    /// event has been handled and the reply is written by the next call; only what `f`
    /// returned is lost, its error included.
    ///
    /// # Errors
    /// As [`recv`](Self::recv); and an error `f` returns, as [`Error::Usage`]. It is returned
    /// once the driver has written what was queued before it (what `f` sent, and what the
    /// connection queued, such as the echo of a Close). If that write fails as well, `f`'s
    /// error is still the one returned, and the unwritten bytes stay queued, ahead of
    /// anything sent later, for the next write.
    pub async fn recv_with_sender<R>(
        &mut self,
        f: impl for<'e> FnOnce(Event<'e>, &mut Sender<'e>) -> Result<R, UsageError>,
    ) -> Result<Option<R>, Error> {
        self.recv_with_sender_watched(f, |_, _| false).await
    }

    /// [`recv_with_sender`](Self::recv_with_sender), calling `watch` with the connection
    /// before each event is taken (`None`) and each time it waits for bytes (the waiting
    /// task's context, to be woken when `watch` has something to do): what it queues, such
    /// as a Close, goes out with the next write. How [`ServerStream`] sends its shutdown
    /// Close without a future of its own around this one. What `watch` returns is not
    /// needed here: an event's pass writes and flushes before returning.
    pub(crate) async fn recv_with_sender_watched<R>(
        &mut self,
        f: impl for<'e> FnOnce(Event<'e>, &mut Sender<'e>) -> Result<R, UsageError>,
        mut watch: impl FnMut(&mut Connection, Option<&mut Context<'_>>) -> bool,
    ) -> Result<Option<R>, Error> {
        // The event's pass of the loop writes the reply from the receive buffer and ends
        // the loop: its borrows (the event, the sender) end with it, before the flush. What
        // a handler holds while its connection idles is this future, so nothing large is
        // kept across a wait: the failure and `f`'s error are boxed, and the connection's
        // answer is taken apart before waiting for more bytes.
        let (result, written) = loop {
            watch(&mut self.conn, None);
            self.sent_close |= self.conn.state() == ConnectionState::Closing;
            let (event, mut sender) = match self.conn.next_event_with_sender() {
                Ok(Some(next)) => next,
                other => match other.err().map(Box::new) {
                    None if self.shut => return Ok(None),
                    None => {
                        poll_fn(|cx| {
                            watch(&mut self.conn, Some(cx));
                            self.poll_fill(cx)
                        })
                        .await?;
                        continue;
                    }
                    Some(e) => return Err(Box::pin(self.failed((*e).into())).await),
                },
            };
            let event = PeerClose::note(&mut self.peer_close, event);
            let result = f(event, &mut sender).map_err(Box::new);
            break (result, write_lent(&mut self.stream, &mut sender).await);
        };
        let flushed = match write_outcome(&self.conn, &mut self.shut, written) {
            Ok(()) => self.flush().await,
            Err(e) => Err(e.into()),
        };
        let reply = result.map_err(|e| *e)?;
        flushed?;
        Ok(Some(reply))
    }

    /// Sends a text message.
    ///
    /// # Errors
    /// [`Error::Usage`] when not open; IO errors.
    pub async fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.conn.send_text(text)?;
        self.flush().await
    }

    /// Sends a binary message. A server's large uncompressed payload is written from
    /// `data` itself, after the frame header in one vectored write, on streams that write
    /// vectored (`AsyncWrite::is_write_vectored`). Cancelled midway, the unwritten rest is
    /// copied into the connection's output and goes out with the next flush.
    ///
    /// # Errors
    /// As [`send_text`](Self::send_text).
    pub async fn send_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        self.send_lent(Lent::Binary(data)).await
    }

    /// Sends a [`PreparedMessage`]: a server writes its shared frame (compressed once for
    /// every connection without server context takeover) from the message itself, as
    /// [`send_binary`](Self::send_binary) writes a large payload; see
    /// [`Sender::send_prepared`].
    ///
    /// # Errors
    /// As [`send_text`](Self::send_text).
    pub async fn send_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        self.send_lent(Lent::Prepared(message)).await
    }

    /// Queues `lent` by reference where the connection allows, writes it from the caller's
    /// memory, then flushes.
    async fn send_lent(&mut self, lent: Lent<'_>) -> Result<(), Error> {
        let mut sender = self.conn.sender();
        lent.queue(&mut sender)?;
        let written = write_lent(&mut self.stream, &mut sender).await;
        drop(sender);
        write_outcome(&self.conn, &mut self.shut, written)?;
        self.flush().await
    }

    /// Sends one fragment of a message sent in pieces (see `Connection::send_fragment`).
    ///
    /// # Errors
    /// As [`send_text`](Self::send_text).
    pub async fn send_fragment(
        &mut self,
        kind: MessageKind,
        data: &[u8],
        is_final: bool,
    ) -> Result<(), Error> {
        self.conn.send_fragment(kind, data, is_final)?;
        self.flush().await
    }

    /// Sends a Ping.
    ///
    /// # Errors
    /// As [`send_text`](Self::send_text).
    pub async fn send_ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.conn.send_ping(payload)?;
        self.flush().await
    }

    /// Starts the closing handshake; keep calling [`recv`](Self::recv) until it returns
    /// `Ok(None)` to finish it.
    ///
    /// # Errors
    /// As [`send_text`](Self::send_text).
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.conn.close(code, reason)?;
        self.flush().await
    }

    /// Writes everything the connection has queued. Cancel-safe.
    ///
    /// # Errors
    /// IO errors.
    pub async fn flush(&mut self) -> Result<(), Error> {
        poll_fn(|cx| self.poll_write(cx)).await?;
        Ok(())
    }

    /// The connection, for queries such as `subprotocol()` or `state()`.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The connection, for commands the driver has no method for (flush afterwards).
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

    /// Splits into a reader and a writer usable from two tasks. They share the connection;
    /// the reader answers pings and runs the timers while it waits.
    pub fn split(self) -> (WebSocketReader<S>, WebSocketWriter<S>) {
        let (half, write) = ::tokio::io::split(self.stream);
        let waiters = Arc::new(Waiters::default());
        let shared = Arc::new(Shared {
            conn: Mutex::new(self.conn),
            writer: Mutex::new(WriteSide {
                half: write,
                shut: self.shut,
            }),
            waker: Waker::from(Arc::clone(&waiters)),
            waiters,
        });
        let reader = WebSocketReader {
            read: half,
            clock: self.clock,
            shared: Arc::clone(&shared),
            #[cfg(feature = "futures")]
            terminated: false,
        };
        (reader, WebSocketWriter { shared })
    }

    /// The receive path: hands events to `f` until it returns `Some`, reading and running
    /// the timers while the connection has none.
    fn poll_event<R>(
        &mut self,
        cx: &mut Context<'_>,
        max_chunk: usize,
        f: impl FnMut(Event<'_>) -> Option<R>,
    ) -> Poll<Result<Option<R>, Error>> {
        self.poll_event_watched(cx, max_chunk, f, |_, _| false)
    }

    /// [`poll_event`](Self::poll_event), calling `watch` with the connection before each
    /// event is taken (`None`) and before waiting for bytes (the task's context, to be woken
    /// when `watch` has something to do), as
    /// [`recv_with_sender_watched`](Self::recv_with_sender_watched) does. While `watch`
    /// returns `true` (what it queued, such as a Close, is not all written yet), the output
    /// is written before any event is handed over, waiting for the socket if it must: the
    /// caller may stop at the next event and drop the stream.
    pub(crate) fn poll_event_watched<R>(
        &mut self,
        cx: &mut Context<'_>,
        max_chunk: usize,
        mut f: impl FnMut(Event<'_>) -> Option<R>,
        mut watch: impl FnMut(&mut Connection, Option<&mut Context<'_>>) -> bool,
    ) -> Poll<Result<Option<R>, Error>> {
        loop {
            // What `watch` queued goes out before any event, waiting for the socket if it
            // must. The Pong to the next Ping would replace a waiting one: it is written
            // first too, but without waiting, so that each Ping of a burst is answered while
            // a peer that does not read gets only the newest.
            if watch(&mut self.conn, None) {
                ready!(self.poll_write(cx))?;
            } else if self.conn.pong_waiting()
                && let Poll::Ready(Err(e)) = self.poll_write(cx)
            {
                return Poll::Ready(Err(e.into()));
            }
            self.sent_close |= self.conn.state() == ConnectionState::Closing;
            match self.conn.next_event_up_to(max_chunk) {
                Ok(Some(event)) => {
                    if let Some(r) = f(PeerClose::note(&mut self.peer_close, event)) {
                        return Poll::Ready(Ok(Some(r)));
                    }
                    continue;
                }
                Ok(None) if self.shut => return Poll::Ready(Ok(None)),
                Ok(None) => {}
                Err(e) => {
                    // Send what the failure queued (Close frame or HTTP response); the peer
                    // may be gone, and the failure is the error worth reporting. A failed
                    // connection is sticky, so polled again after `Pending` it returns the
                    // same error: nothing to keep here meanwhile.
                    let _ = ready!(self.poll_write(cx));
                    return Poll::Ready(Err(e.into()));
                }
            }
            // What this queues goes out first thing in `poll_fill`.
            watch(&mut self.conn, Some(cx));
            ready!(self.poll_fill(cx))?;
        }
    }

    /// Writes everything queued, shutting the stream down when the connection wants it.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Self {
            stream, conn, shut, ..
        } = self;
        poll_write_out(stream, conn, shut, cx)
    }

    /// Flushes, then waits for input or a timer, and hands what came to the connection.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // Everything queued goes out before more is read: the one stream is the only
        // writer, so nothing else would write it meanwhile, and a peer that does not read
        // meets TCP backpressure instead of a growing output.
        ready!(self.poll_write(cx))?;
        if self.shut {
            return Poll::Ready(Ok(()));
        }
        let Self {
            stream,
            conn,
            clock,
            ..
        } = self;
        if clock.poll(conn, cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        ready!(poll_read_into(stream, conn, cx))?;
        Poll::Ready(Ok(()))
    }

    /// [`poll_fill`](Self::poll_fill) as a future.
    async fn fill(&mut self) -> Result<(), Error> {
        poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// Sends what the failure queued (Close frame or HTTP response), then returns `error`.
    async fn failed(&mut self, error: Error) -> Error {
        // The peer may already be gone; the original error is the one worth reporting.
        let _ = self.flush().await;
        error
    }
}

/// What the two halves share: the connection and the write half, each behind a lock taken
/// only for synchronous work, never across an await.
///
/// Several tasks may want to write at once (the reader answering a Ping, writers sending):
/// each polls the write half under the lock, and the stream keeps only one waker for
/// writing. So the write half is always polled with [`Shared::waker`], which wakes every
/// task that found it full ([`Waiters`]); each then polls again and one of them writes what
/// is queued. A task that stops polling (a dropped future) leaves at most a spurious wake-up
/// behind, and no other task's wake-up depends on it.
#[derive(Debug)]
struct Shared<S> {
    conn: Mutex<Connection>,
    writer: Mutex<WriteSide<S>>,
    waiters: Arc<Waiters>,
    /// Wakes all of `waiters`; the one waker the write half ever sees.
    waker: Waker,
}

/// The write half, and whether it was shut down.
#[derive(Debug)]
struct WriteSide<S> {
    half: WriteHalf<S>,
    shut: bool,
}

/// The tasks waiting for the write half to take more bytes.
#[derive(Debug, Default)]
struct Waiters(Mutex<Vec<Waker>>);

impl Waiters {
    fn add(&self, waker: &Waker) {
        let mut waiters = lock(&self.0);
        if !waiters.iter().any(|w| w.will_wake(waker)) {
            waiters.push(waker.clone());
        }
    }
}

impl Wake for Waiters {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let waiters = core::mem::take(&mut *lock(&self.0));
        for waker in waiters {
            waker.wake();
        }
    }
}

/// Locks `mutex`; a panic while it was held leaves the data as it was between calls.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<S: AsyncRead + AsyncWrite> Shared<S> {
    fn conn(&self) -> MutexGuard<'_, Connection> {
        lock(&self.conn)
    }

    /// Writes everything queued (and shuts the stream down when the connection wants it).
    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut side = lock(&self.writer);
        let WriteSide { half, shut } = &mut *side;
        let mut shared_cx = Context::from_waker(&self.waker);
        if let Poll::Ready(result) = poll_write_out(half, &mut self.conn(), shut, &mut shared_cx) {
            return Poll::Ready(result);
        }
        // Full: wait with the others, then try once more, in case the stream took bytes
        // (and woke the waiters) before this task was among them.
        self.waiters.add(cx.waker());
        poll_write_out(half, &mut self.conn(), shut, &mut shared_cx)
    }

    async fn flush(&self) -> Result<(), Error> {
        poll_fn(|cx| self.poll_flush(cx)).await?;
        Ok(())
    }

    /// Queues `lent` by reference where the connection allows and writes what the stream
    /// takes of it at once, under the locks (which are never held across an await): the
    /// sender copies the rest into the output as it drops, and the flush writes it.
    async fn send_lent(&self, lent: Lent<'_>) -> Result<(), Error> {
        loop {
            {
                // The write half first, as `poll_flush` takes them.
                let mut side = lock(&self.writer);
                let WriteSide { half, shut } = &mut *side;
                let mut conn = self.conn();
                let mut sender = conn.sender();
                match lent.queue(&mut sender) {
                    Ok(()) => {
                        let mut cx = Context::from_waker(&self.waker);
                        let written = try_write_lent(half, &mut sender, &mut cx);
                        drop(sender);
                        write_outcome(&conn, shut, written)?;
                        break;
                    }
                    // A clone filled the output: written down below the mark, then again.
                    // (Nothing queued and still full: a mark of 0, which admits nothing.)
                    Err(UsageError::OutputFull { buffered }) if buffered > 0 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            self.flush().await?;
        }
        self.flush().await
    }

    /// Queues with `send` once the output is under the high-water mark: clones sending at
    /// once wait for room (the output being written meanwhile) instead of failing with
    /// [`UsageError::OutputFull`]. The check and the queuing are under one lock.
    async fn send_when_room(
        &self,
        mut send: impl FnMut(&mut Connection) -> Result<(), UsageError>,
    ) -> Result<(), Error> {
        loop {
            // The lock ends with this statement, before any await.
            let sent = send(&mut self.conn());
            match sent {
                Ok(()) => return self.flush().await,
                Err(UsageError::OutputFull { buffered }) if buffered > 0 => self.flush().await?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn is_shut(&self) -> bool {
        lock(&self.writer).shut
    }
}

/// One data message read as bytes: [`WebSocketStream::read_message`].
#[derive(Debug)]
pub struct MessageReader<'a, S> {
    ws: &'a mut WebSocketStream<S>,
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

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MessageReader<'_, S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let out = buf.initialize_unfilled();
        let read = if let Some(n) = this.progress.take_kept(out) {
            Ok(n)
        } else if this.progress.finished() || out.is_empty() {
            Ok(0)
        } else {
            let progress = &mut this.progress;
            let limit = out.len();
            match ready!(
                this.ws
                    .poll_event(cx, limit, |event| progress.take(event, out))
            ) {
                Ok(Some(read)) => read,
                Ok(None) => progress.closed(),
                Err(e) => Err(io::Error::other(e)),
            }
        };
        buf.advance(read?);
        Poll::Ready(Ok(()))
    }
}

/// The receiving half of a split [`WebSocketStream`].
///
/// With the `futures` feature it is a `futures_core::Stream` of `Result<Message, Error>`.
#[derive(Debug)]
pub struct WebSocketReader<S> {
    read: ReadHalf<S>,
    clock: Clock,
    shared: Arc<Shared<S>>,
    /// `Stream::poll_next` returned its last item (`None`, or an error).
    #[cfg(feature = "futures")]
    terminated: bool,
}

impl<S: AsyncRead + AsyncWrite> WebSocketReader<S> {
    /// The next message, owned; `Ok(None)` once closed. Cancel-safe.
    ///
    /// # Errors
    /// IO errors and connection failures.
    pub async fn recv(&mut self) -> Result<Option<Message>, Error> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next message: the one receive path under [`recv`](Self::recv) and
    /// `Stream::poll_next`, as [`WebSocketStream::poll_recv`].
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Message>, Error>> {
        self.poll_recv_watched(cx, |_, _| false)
    }

    /// [`poll_recv`](Self::poll_recv), calling `watch` as
    /// [`WebSocketStream::poll_event_watched`] does: with the connection before each event
    /// is taken (`None`) and before waiting (the task's context). While it returns `true`,
    /// the output is written before any message is handed over, waiting for the socket if
    /// it must. Stateless between polls, so cancel-safe like `poll_recv`.
    pub(crate) fn poll_recv_watched(
        &mut self,
        cx: &mut Context<'_>,
        mut watch: impl FnMut(&mut Connection, Option<&mut Context<'_>>) -> bool,
    ) -> Poll<Result<Option<Message>, Error>> {
        loop {
            // As in `WebSocketStream::poll_event_watched`: what `watch` queued goes out
            // before any message, waiting for the socket if it must; a waiting Pong is
            // written, if the socket takes it, before the next Ping could replace it.
            let (watched, pong_waiting) = {
                let mut conn = self.shared.conn();
                (watch(&mut conn, None), conn.pong_waiting())
            };
            if watched {
                ready!(self.shared.poll_flush(cx))?;
            } else if pong_waiting && let Poll::Ready(Err(e)) = self.shared.poll_flush(cx) {
                return Poll::Ready(Err(e.into()));
            }
            let next = self
                .shared
                .conn()
                .next_event()
                .map(|e| e.map(|e| Message::from_event(&e)));
            match next {
                Ok(Some(Some(message))) => return Poll::Ready(Ok(Some(message))),
                Ok(Some(None)) => continue,
                Ok(None) => {}
                Err(e) => {
                    // Sticky, as in `WebSocketStream::poll_event`.
                    let _ = ready!(self.shared.poll_flush(cx));
                    return Poll::Ready(Err(e.into()));
                }
            }
            // The reader reads on while the stream is full, even at the high-water mark: the
            // writer half's sends are awaited by their callers, and reading adds at most one
            // Pong (the newest replaces it) and a Close echo. Waiting for the writes instead would
            // deadlock two peers that both send more than the socket buffers hold before
            // either reads. What `watch` queues goes out with this flush.
            watch(&mut self.shared.conn(), Some(cx));
            if let Poll::Ready(written) = self.shared.poll_flush(cx) {
                written?;
                if self.shared.is_shut() {
                    return Poll::Ready(Ok(None));
                }
            }
            let mut conn = self.shared.conn();
            if self.clock.poll(&mut conn, cx).is_ready() {
                continue;
            }
            ready!(poll_read_into(&mut self.read, &mut conn, cx))?;
        }
    }
}

/// The sending half of a split [`WebSocketStream`]; clones send on the same connection. A
/// send waits while the output is at [`Config::output_high_water`], writing it meanwhile,
/// so clones sending at once take turns instead of failing.
#[derive(Debug)]
pub struct WebSocketWriter<S> {
    shared: Arc<Shared<S>>,
}

impl<S> Clone for WebSocketWriter<S> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: AsyncRead + AsyncWrite> WebSocketWriter<S> {
    /// Sends a text message.
    ///
    /// # Errors
    /// [`Error::Usage`] when not open; IO errors.
    pub async fn send_text(&self, text: &str) -> Result<(), Error> {
        self.shared
            .send_when_room(|conn| conn.send_text(text))
            .await
    }

    /// Sends a binary message. A server's large uncompressed payload is written from `data`
    /// itself as far as the stream takes it at once (one vectored write, the header before
    /// it); the rest is copied into the connection's output and flushed.
    ///
    /// # Errors
    /// As [`send_text`](Self::send_text).
    pub async fn send_binary(&self, data: &[u8]) -> Result<(), Error> {
        self.shared.send_lent(Lent::Binary(data)).await
    }

    /// Sends a [`PreparedMessage`], its shared frame written from the message itself as
    /// [`send_binary`](Self::send_binary) writes a payload; see [`Sender::send_prepared`].
    ///
    /// # Errors
    /// As [`send_text`](Self::send_text).
    pub async fn send_prepared(&self, message: &PreparedMessage) -> Result<(), Error> {
        self.shared.send_lent(Lent::Prepared(message)).await
    }

    /// Sends a Ping.
    ///
    /// # Errors
    /// As [`send_text`](Self::send_text).
    pub async fn send_ping(&self, payload: &[u8]) -> Result<(), Error> {
        self.shared.conn().send_ping(payload)?;
        self.shared.flush().await
    }

    /// Starts the closing handshake; the reader sees it finish.
    ///
    /// # Errors
    /// As [`send_text`](Self::send_text).
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.shared.conn().close(code, reason)?;
        self.shared.flush().await
    }
}
