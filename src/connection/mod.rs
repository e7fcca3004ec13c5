//! [`Connection`]: one WebSocket connection's state machine, the only place its state changes.
//!
//! | state | input | next state | queued on the wire |
//! |---|---|---|---|
//! | ReadingRequest | valid request head | AwaitingAnswer | nothing (`Event::Request`) |
//! | ReadingRequest | invalid request head | Failed | HTTP 4xx response |
//! | ReadingRequest | EOF | Closed | nothing (code 1006) |
//! | AwaitingAnswer | `accept(..)` | Open | HTTP 101 response |
//! | AwaitingAnswer | `reject(..)` | Failed | the application's response |
//! | AwaitingAnswer | EOF | AwaitingAnswer | nothing (the answer is still due) |
//! | ReadingResponse | valid 101 response | Open | nothing (`Event::Accepted`) |
//! | ReadingResponse | invalid response | Failed | nothing |
//! | ReadingResponse | EOF | Closed | nothing (code 1006) |
//! | ReadingRequest, AwaitingAnswer | handshake timeout | Failed | HTTP 408 |
//! | ReadingResponse | handshake timeout | Failed | nothing |
//! | Open | data, Ping or Pong frame | Open | a Pong for a Ping |
//! | Open | peer's Close | Closed | Close echo (same code) |
//! | Open | `close(code, reason)` | CloseSent | Close |
//! | Open | protocol error | Failed | Close with the error's code |
//! | Open | keepalive Pong overdue | Failed | Close 1011 |
//! | Open | EOF | Closed | nothing (code 1006) |
//! | CloseSent | peer's Close | Closed | nothing |
//! | CloseSent | data frame | CloseSent | nothing (the message is delivered) |
//! | CloseSent | close timeout | Closed | nothing (code 1006) |
//! | Open | `fail(code, reason)` | Closed | Close |
//! | ReadingRequest, AwaitingAnswer, ReadingResponse, CloseSent | `fail(code, reason)` | Closed | nothing |
//! | Closed, Failed | `fail(code, reason)` | unchanged | nothing |
//!
//! `wants_shutdown()` turns true, once the output is flushed, when the connection failed, when
//! a server reaches Closed (the server closes TCP first, RFC 6455 §7.1.1), and when a client in
//! Closed has seen EOF or waited `close_timeout`. `tests/state_table.rs` walks every row of
//! this table.
//!
//! The connection owns the state; the [`reader`] turns received bytes into frames, the
//! [`Writer`](crate::writer::Writer) queues everything sent, and the [`timers`] table says
//! what is due. Every change of state goes through [`Connection::transition`], which runs the
//! exit actions in one place.

mod handshake;
mod reader;
mod timers;

use crate::close::{CloseCode, ClosePayload, parse_close_payload};
use crate::config::{Config, Role};
use crate::entropy::Entropy;
use crate::entropy::EntropySource;
use crate::error::{Error, ProtocolError, UsageError};
use crate::event::{Event, MessageKind};
use crate::frame::Opcode;
use crate::handshake::{HandshakeError, HeadScanner, Request, Response};
use crate::prepared::PreparedMessage;
use crate::sender::Sender;
use crate::writer::Writer;
use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use core::ops::Range;
use core::time::Duration;
use handshake::PendingClient;
use reader::{Read, Reader};
use timers::{Timer, Timers};

/// The connection's state as the browser API names it (`readyState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// The opening handshake is in progress.
    Connecting,
    /// Messages flow both ways.
    Open,
    /// We sent a Close and wait for the peer's.
    Closing,
    /// The closing handshake is over, or the connection failed.
    Closed,
}

#[derive(Debug)]
enum State {
    /// Server: reading the request head.
    ReadingRequest(HeadScanner),
    /// Server: the request is read; waiting for `accept` or `reject`.
    AwaitingAnswer {
        request: Box<Request>,
        reported: bool,
    },
    /// Client: the request is queued; reading the response head.
    ReadingResponse(Box<PendingClient>),
    Open,
    CloseSent,
    Closed {
        code: CloseCode,
        /// The peer's Close reason, lent by `Event::Close`.
        reason: Box<str>,
        reported: bool,
    },
    /// Boxed: the error is the largest thing a state holds, and every connection holds
    /// its state.
    Failed(Box<Error>),
}

impl State {
    fn closed(code: CloseCode) -> Self {
        Self::Closed {
            code,
            reason: Box::default(),
            reported: false,
        }
    }

    fn is_handshake(&self) -> bool {
        matches!(
            self,
            Self::ReadingRequest(_) | Self::AwaitingAnswer { .. } | Self::ReadingResponse(_)
        )
    }
}

/// What `advance` stopped at, as buffer ranges, so that the event can borrow after the
/// mutation.
enum Step {
    NeedData,
    /// A compressed message, inflated by the reader.
    Inflated(MessageKind),
    /// A streamed message's chunk in the buffer, and whether it ends the message.
    Chunk(MessageKind, Range<usize>, bool),
    /// A compressed streamed message's chunk: this many inflated bytes.
    InflatedChunk(MessageKind, usize, bool),
    Request,
    Accepted,
    Continue,
    Text(Range<usize>),
    Binary(Range<usize>),
    Ping(Range<usize>),
    Pong(Range<usize>),
    Close(CloseCode),
    Closed(CloseCode),
}

/// What events borrow from a connection, apart from what sending needs.
struct EventLender<'a> {
    reader: &'a Reader,
    state: &'a State,
    response: Option<&'a Response>,
}

impl<'a> EventLender<'a> {
    /// The event for a step `advance` stopped at.
    #[inline(always)]
    fn event(self, step: Step) -> Event<'a> {
        let bytes = self.reader.bytes();
        match step {
            Step::Request => match self.state {
                State::AwaitingAnswer { request, .. } => Event::Request(request),
                _ => unreachable!("Step::Request is returned in AwaitingAnswer"),
            },
            Step::Accepted => match self.response {
                Some(response) => Event::Accepted(response),
                None => unreachable!("Step::Accepted stores the response"),
            },
            Step::Text(r) => Event::Text(validated_text(&bytes[r])),
            Step::Binary(r) => Event::Binary(&bytes[r]),
            Step::Inflated(MessageKind::Text) => {
                Event::Text(validated_text(self.reader.inflated()))
            }
            Step::Inflated(MessageKind::Binary) => Event::Binary(self.reader.inflated()),
            Step::Chunk(kind, r, fin) => chunk_event(kind, &bytes[r], fin),
            Step::InflatedChunk(kind, len, fin) => {
                chunk_event(kind, &self.reader.inflated()[..len], fin)
            }
            Step::Ping(r) => Event::Ping(&bytes[r]),
            Step::Pong(r) => Event::Pong(&bytes[r]),
            Step::Close(code) => match self.state {
                State::Closed { reason, .. } => Event::Close { code, reason },
                _ => unreachable!("Step::Close is returned in Closed"),
            },
            Step::Closed(code) => Event::Closed(code),
            Step::Continue | Step::NeedData => unreachable!("advance goes on past these"),
        }
    }
}

/// One WebSocket connection, either role, without IO.
///
/// Bytes in with [`receive`](Self::receive) (or [`receive_buffer`](Self::receive_buffer) +
/// [`commit`](Self::commit)), events out with [`next_event`](Self::next_event), bytes out
/// with [`pending_output`](Self::pending_output) + [`consume_output`](Self::consume_output).
pub struct Connection {
    role: Role,
    /// Shared by reference count: a server's connections can all hold one copy.
    config: Arc<Config>,
    state: State,
    reader: Reader,
    writer: Writer,
    timers: Timers,
    /// The client's view of the 101 response, lent by `Event::Accepted` and dropped after.
    response: Option<Box<Response>>,
    /// The subprotocol agreed in the handshake. A box of a `String` rather than a `Box<str>`,
    /// a thin pointer where that is a wide one: every connection holds the slot, few fill it.
    #[expect(
        clippy::box_collection,
        reason = "a thin pointer in every connection, where `String` or `Box<str>` is wider"
    )]
    subprotocol: Option<Box<String>>,
    shutdown: bool,
    eof: bool,
}

impl core::fmt::Debug for Connection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("buffered_in", &self.reader.unparsed())
            .field("out", &self.writer.out)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A server connection that starts by reading the client's opening handshake
    /// (RFC 6455 §4.2). [`Event::Request`] reports a valid request; answer it with
    /// [`accept`](Self::accept) or [`reject`](Self::reject). Invalid requests are answered
    /// with the right 4xx by the connection itself.
    ///
    /// `config` is a [`Config`], or an `Arc<Config>` that many connections share (a server
    /// accepting thousands keeps one copy of it).
    #[must_use]
    pub fn server(config: impl Into<Arc<Config>>) -> Self {
        Self::new(
            Role::Server,
            config.into(),
            None,
            State::ReadingRequest(HeadScanner::new()),
        )
    }

    /// A server connection on a stream whose upgrade is already done (for example by
    /// hyper or axum, or an HTTP/2 or HTTP/3 extended CONNECT stream, RFC 8441/9220).
    #[must_use]
    pub fn upgraded_server(config: impl Into<Arc<Config>>) -> Self {
        Self::new(Role::Server, config.into(), None, State::Open)
    }

    /// A client connection on a stream whose upgrade is already done. `entropy` supplies the
    /// masking keys and must be a CSPRNG (see [`Entropy`]; under `std`,
    /// [`os_entropy`](crate::os_entropy) is the operating system's).
    #[must_use]
    pub fn upgraded_client(
        config: impl Into<Arc<Config>>,
        entropy: impl Entropy + Send + 'static,
    ) -> Self {
        Self::new(
            Role::Client,
            config.into(),
            Some(Box::new(entropy)),
            State::Open,
        )
    }

    fn new(role: Role, config: Arc<Config>, entropy: Option<EntropySource>, state: State) -> Self {
        let mut conn = Self {
            role,
            reader: Reader::new(role),
            writer: Writer::new(
                entropy,
                config.buffer_linger.is_none(),
                config.output_high_water,
            ),
            config,
            state,
            timers: Timers::default(),
            response: None,
            subprotocol: None,
            shutdown: false,
            eof: false,
        };
        conn.enter_state();
        conn
    }

    /// Moves to `next`: the only place the state changes after construction.
    fn transition(&mut self, next: State) {
        self.state = next;
        self.enter_state();
    }

    /// The actions of entering the current state, which are also those of leaving the
    /// states before it: which timers stop, whether messages may be sent, whether received
    /// bytes still matter, whether the stream should shut.
    fn enter_state(&mut self) {
        match &self.state {
            State::ReadingRequest(_) | State::AwaitingAnswer { .. } | State::ReadingResponse(_) => {
                // Nothing stops here; `timer_to_arm` starts the handshake timer.
            }
            State::Open => {
                self.timers.set(Timer::Handshake, None);
                self.writer.open();
                // The handshake's buffers go as soon as they are drained (the receive
                // buffer now, unless frames came behind the head; the output once the 101
                // or the request is written), whatever `Config::buffer_linger` says.
                self.reader.release_buffers();
                self.writer.handshake_done();
            }
            State::CloseSent => {
                self.writer.shut();
                self.timers.set(Timer::Keepalive, None);
                self.timers.set(Timer::PongDue, None);
            }
            State::Closed { .. } => {
                self.writer.shut();
                self.timers.set(Timer::Handshake, None);
                self.timers.set(Timer::Keepalive, None);
                self.timers.set(Timer::PongDue, None);
                self.reader.drop_input();
                // RFC 6455 §7.1.1: the server closes TCP first; the client waits for it.
                if self.role == Role::Server || self.eof {
                    self.shutdown = true;
                }
            }
            State::Failed(_) => {
                self.writer.shut();
                self.timers.clear();
                self.reader.drop_input();
                self.shutdown = true;
            }
        }
    }

    /// The private state's name, as the state table writes it.
    pub(crate) fn state_name(&self) -> &'static str {
        match self.state {
            State::ReadingRequest(_) => "ReadingRequest",
            State::AwaitingAnswer { .. } => "AwaitingAnswer",
            State::ReadingResponse(_) => "ReadingResponse",
            State::Open => "Open",
            State::CloseSent => "CloseSent",
            State::Closed { .. } => "Closed",
            State::Failed(_) => "Failed",
        }
    }

    /// This connection's role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// The subprotocol agreed in the opening handshake, if any (RFC 6455 §1.9).
    #[must_use]
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref().map(String::as_str)
    }

    /// Whether permessage-deflate (RFC 7692) was agreed in the handshake.
    #[must_use]
    pub fn is_deflate_negotiated(&self) -> bool {
        self.writer.is_deflating()
    }

    /// The configuration it runs with.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    // ----- input -------------------------------------------------------------------------

    /// Buffers bytes received from the peer. Nothing is processed until
    /// [`next_event`](Self::next_event).
    pub fn receive(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || !self.accepts_input() {
            return;
        }
        self.reader.receive(&self.config, bytes);
        self.timers.activity = true;
    }

    /// Lends room for the next read, so the driver reads straight into the connection's
    /// buffer. Write into a prefix of it, then call [`commit`](Self::commit) with the count.
    /// It is at least `Config::read_buffer_size` long, except that it ends where a frame
    /// of at least that size ends (empty once input is no longer used).
    ///
    /// Stopping at the end of a large frame keeps the next frame's first bytes out of the
    /// buffer until the large one is consumed; read behind it, they would have to move to
    /// the front of the buffer afterwards (up to a read's worth every few messages, 5% of
    /// decoding a stream of 64 KiB messages), and the next read would land further back
    /// in memory. It costs one more, short read per large frame when the peer sends them
    /// back to back.
    pub fn receive_buffer(&mut self) -> &mut [u8] {
        if !self.accepts_input() {
            return &mut [];
        }
        self.reader.receive_buffer(&self.config)
    }

    /// Takes `n` bytes written into [`receive_buffer`](Self::receive_buffer) as received.
    ///
    /// # Panics
    /// If `n` is larger than the slice that was lent.
    pub fn commit(&mut self, n: usize) {
        if n > 0 && self.accepts_input() {
            self.reader.commit(n);
            self.timers.activity = true;
        }
    }

    /// Whether received bytes are waiting for the rest of their frame or message (for tests
    /// and fuzzing; drivers ask [`prefers_receive_buffer`](Self::prefers_receive_buffer)).
    pub(crate) fn has_partial_input(&self) -> bool {
        self.reader.has_partial_input()
    }

    /// Whether the next read should go straight into
    /// [`receive_buffer`](Self::receive_buffer): a frame or message is partly here, or a
    /// buffer kept from earlier traffic has room for a whole read. Otherwise a driver that
    /// reads through a small buffer of its own and [`receive`](Self::receive) keeps a
    /// waiting connection from growing a `read_buffer_size` buffer just to wait.
    #[must_use]
    pub fn prefers_receive_buffer(&self) -> bool {
        self.reader.prefers_receive_buffer(&self.config)
    }

    /// The peer closed its side of the stream (a read returned 0).
    pub fn receive_eof(&mut self) {
        if self.eof {
            return;
        }
        self.eof = true;
        // Bytes already received are still processed: `next_event` meets the EOF after them.
        if matches!(self.state, State::Closed { .. }) {
            self.shutdown = true;
        }
    }

    fn accepts_input(&self) -> bool {
        !self.eof && !matches!(self.state, State::Closed { .. } | State::Failed(_))
    }

    // ----- events ------------------------------------------------------------------------

    /// The next event, or `Ok(None)` when more input is needed. Call it until it returns
    /// `Ok(None)` after each receive.
    ///
    /// # Errors
    /// The connection failed: the peer broke the protocol (the Close frame with the mapped
    /// code is already queued) or the keepalive timed out. The same error is returned on
    /// every later call.
    pub fn next_event(&mut self) -> Result<Option<Event<'_>>, Error> {
        let Some(step) = self.advance(usize::MAX)? else {
            return Ok(None);
        };
        Ok(Some(self.lender().event(step)))
    }

    /// As [`next_event`](Self::next_event), but a chunk of a streamed message
    /// (`Config::stream_messages`) lends at most `max_chunk` bytes (at least 8, so that a
    /// split code point fits); the rest of what is here comes in the next chunks. For a
    /// reader that copies into a buffer of its own, such as an `io::Read` over one message:
    /// nothing is left over to keep between two calls.
    ///
    /// ```
    /// # use wsproto::{Config, Connection, Event};
    /// let mut conn = Connection::upgraded_server(Config::default().stream_messages(true));
    /// conn.receive(&[0x82, 0x8a, 0, 0, 0, 0]);
    /// conn.receive(b"0123456789");
    /// let mut got = Vec::new();
    /// while let Some(Event::BinaryChunk { data, fin }) = conn.next_event_up_to(8)? {
    ///     got.push((data.to_vec(), fin));
    /// }
    /// assert_eq!(got, [(b"01234567".to_vec(), false), (b"89".to_vec(), true)]);
    /// # Ok::<(), wsproto::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`next_event`](Self::next_event).
    pub fn next_event_up_to(&mut self, max_chunk: usize) -> Result<Option<Event<'_>>, Error> {
        let Some(step) = self.advance(max_chunk)? else {
            return Ok(None);
        };
        Ok(Some(self.lender().event(step)))
    }

    /// [`next_event`](Self::next_event) together with a [`Sender`] that can queue messages
    /// while the event borrows its payload: a reply is framed straight from the receive
    /// buffer, without copying the payload out first.
    ///
    /// ```
    /// # use wsproto::{Config, Connection, Event};
    /// # let mut conn = Connection::upgraded_server(Config::default());
    /// # conn.receive(&[0x81, 0x82, 0, 0, 0, 0, b'h', b'i']);
    /// while let Some((event, mut sender)) = conn.next_event_with_sender()? {
    ///     match event {
    ///         Event::Text(text) => sender.send_text(text)?,
    ///         Event::Binary(data) => sender.send_binary(data)?,
    ///         _ => {}
    ///     }
    /// }
    /// assert_eq!(conn.pending_output(), &[0x81, 0x02, b'h', b'i']);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`next_event`](Self::next_event).
    pub fn next_event_with_sender(&mut self) -> Result<Option<(Event<'_>, Sender<'_>)>, Error> {
        let Some(step) = self.advance(usize::MAX)? else {
            return Ok(None);
        };
        let (lender, sender) = self.parts();
        Ok(Some((lender.event(step), sender)))
    }

    /// What an event borrows.
    fn lender(&self) -> EventLender<'_> {
        EventLender {
            reader: &self.reader,
            state: &self.state,
            response: self.response.as_deref(),
        }
    }

    /// The parts an event borrows and the parts sending needs, borrowed apart.
    fn parts(&mut self) -> (EventLender<'_>, Sender<'_>) {
        (
            EventLender {
                reader: &self.reader,
                state: &self.state,
                response: self.response.as_deref(),
            },
            Sender::new(&mut self.writer),
        )
    }

    /// Processes input until the next event; `None` when more input is needed. A streamed
    /// chunk holds at most `chunk_limit` bytes. Inlined into its callers so the step reaches
    /// the event without a trip through memory.
    #[inline(always)]
    fn advance(&mut self, chunk_limit: usize) -> Result<Option<Step>, Error> {
        self.response = None;
        self.reader.start_event(&self.config);
        loop {
            match &mut self.state {
                State::ReadingRequest(_) => match self.read_request() {
                    Ok(true) => continue,
                    Ok(false) if self.eof => self.end_of_input(),
                    Ok(false) => return Ok(None),
                    Err(e) => return Err(self.fail_with(e.into())),
                },
                State::AwaitingAnswer { reported, .. } => {
                    if *reported {
                        return Ok(None);
                    }
                    *reported = true;
                    return Ok(Some(Step::Request));
                }
                State::ReadingResponse(_) => match self.read_response() {
                    Ok(true) => return Ok(Some(Step::Accepted)),
                    Ok(false) if self.eof => self.end_of_input(),
                    Ok(false) => return Ok(None),
                    Err(e) => return Err(self.fail_with(e.into())),
                },
                State::Failed(e) => return Err((**e).clone()),
                State::Closed { code, reported, .. } => {
                    if *reported {
                        return Ok(None);
                    }
                    *reported = true;
                    return Ok(Some(Step::Closed(*code)));
                }
                State::Open | State::CloseSent => {}
            }
            match self.step(chunk_limit) {
                Ok(Step::Continue) => {}
                Ok(Step::NeedData) if self.eof => self.end_of_input(),
                Ok(Step::NeedData) => {
                    self.reader.need_data(&self.config);
                    return Ok(None);
                }
                Ok(step) => return Ok(Some(step)),
                Err(e) => return Err(self.fail_with(e.into())),
            }
        }
    }

    /// Reads one frame's worth and decides what it means in this state.
    ///
    /// Messages that arrive after our Close are still delivered: the peer sends until it sees
    /// our Close (RFC 6455 §5.5.1 lets us drop them, but an application that sends its last
    /// requests and closes wants the answers already on their way).
    #[inline(always)]
    fn step(&mut self, chunk_limit: usize) -> Result<Step, ProtocolError> {
        Ok(match self.reader.read(&self.config, chunk_limit)? {
            Read::NeedData => Step::NeedData,
            Read::Continue => Step::Continue,
            Read::Control(opcode, payload) => self.on_control(opcode, payload)?,
            Read::Message(MessageKind::Text, range) => Step::Text(range),
            Read::Message(MessageKind::Binary, range) => Step::Binary(range),
            Read::Inflated(kind) => Step::Inflated(kind),
            Read::Chunk(kind, range, fin) => Step::Chunk(kind, range, fin),
            Read::InflatedChunk(kind, len, fin) => Step::InflatedChunk(kind, len, fin),
        })
    }

    fn on_control(&mut self, opcode: Opcode, payload: Range<usize>) -> Result<Step, ProtocolError> {
        let bytes = &self.reader.bytes()[payload.clone()];
        match opcode {
            Opcode::Ping => {
                // RFC 6455 §5.5.2: answer with a Pong carrying the same payload, even between
                // fragments of a message and after our Close (only the peer's Close ends it).
                // Past a burst's worth of waiting Pongs the last is replaced (§5.5.3): pings
                // from a peer that does not read cannot grow the output.
                if self.config.auto_pong && matches!(self.state, State::Open | State::CloseSent) {
                    self.writer.auto_pong(bytes);
                }
                Ok(Step::Ping(payload))
            }
            Opcode::Pong => {
                if let Some(due) = self.timers.get(Timer::PongDue)
                    && bytes == self.timers.ping_payload.to_be_bytes()
                {
                    // The keepalive is satisfied: the next Ping is due an interval after the
                    // last one went out, and later still if bytes keep arriving.
                    self.timers.set(Timer::PongDue, None);
                    let sent = due - self.config.keepalive_timeout.unwrap_or_default();
                    let next = after(sent, self.config.keepalive_interval);
                    self.timers.set(Timer::Keepalive, next);
                }
                Ok(Step::Pong(payload))
            }
            Opcode::Close => {
                let (code, reason) = parse_close_payload(bytes)?;
                if matches!(self.state, State::Open) {
                    // RFC 6455 §5.5.1: answer a Close with a Close, echoing the code.
                    self.writer.close(&ClosePayload::new(code, reason));
                }
                let reason = reason.into();
                self.transition(State::Closed {
                    code,
                    reason,
                    reported: false,
                });
                Ok(Step::Close(code))
            }
            _ => unreachable!("only control opcodes reach on_control"),
        }
    }

    /// The input ended before a closing handshake: RFC 6455 §7.1.5 calls that 1006 (never
    /// sent on the wire).
    fn end_of_input(&mut self) {
        self.transition(State::closed(CloseCode::ABNORMAL));
        self.shutdown = true;
    }

    /// Queues the Close for a failure (unless ours was already sent) and makes it sticky.
    fn fail_with(&mut self, error: Error) -> Error {
        match (&self.state, &error) {
            (State::Open, _) => {
                if let Some(code) = error.close_code() {
                    let reason = error.to_string();
                    self.writer.close(&ClosePayload::truncated(code, &reason));
                }
            }
            // A server answers a failed handshake with the HTTP status it maps to.
            (State::ReadingRequest(_) | State::AwaitingAnswer { .. }, Error::Handshake(e)) => {
                crate::handshake::write_error_response(self.writer.out.raw(), e);
            }
            _ => {}
        }
        self.transition(State::Failed(Box::new(error.clone())));
        error
    }

    // ----- commands ----------------------------------------------------------------------

    /// Queues a text message in one frame.
    ///
    /// # Errors
    /// [`UsageError::NotOpen`] unless open; [`UsageError::MessageInProgress`] during a
    /// fragmented send.
    pub fn send_text(&mut self, text: &str) -> Result<(), UsageError> {
        self.sender().send_text(text)
    }

    /// Queues a binary message in one frame.
    ///
    /// # Errors
    /// As [`send_text`](Self::send_text).
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), UsageError> {
        self.sender().send_binary(data)
    }

    /// Queues a [`PreparedMessage`]: a server copies its shared frame into the output whole
    /// (compressed once for every connection without server context takeover), without
    /// framing or compressing it again; [`Sender::send_prepared`] lends it instead. A client
    /// frames and masks the payload, as [`send_binary`](Self::send_binary) does.
    ///
    /// # Errors
    /// As [`send_text`](Self::send_text).
    pub fn send_prepared(&mut self, message: &PreparedMessage) -> Result<(), UsageError> {
        self.writer.check_can_send_message()?;
        if let Some(frame) = self.writer.prepared(message) {
            self.writer.out.extend(frame);
        }
        Ok(())
    }

    /// A [`Sender`] for this connection: its `*_borrowed` sends let a server write a large
    /// payload from the caller's memory with one vectored write, without copying it into
    /// the output first.
    #[inline]
    pub fn sender(&mut self) -> Sender<'_> {
        Sender::new(&mut self.writer)
    }

    /// Queues one fragment of a message sent in pieces (RFC 6455 §5.4): the first call starts
    /// the message, `is_final` ends it. Control frames may be sent in between.
    ///
    /// Text fragments may split a code point; the joined text must be UTF-8.
    ///
    /// # Errors
    /// [`UsageError::NotOpen`]; [`UsageError::FragmentKindMismatch`] when `kind` differs from
    /// the message in progress; [`UsageError::InvalidUtf8`] when text stops being UTF-8 (the
    /// fragment is not sent).
    pub fn send_fragment(
        &mut self,
        kind: MessageKind,
        data: &[u8],
        is_final: bool,
    ) -> Result<(), UsageError> {
        self.writer.fragment(kind, data, is_final)
    }

    /// Queues a Ping (RFC 6455 §5.5.2).
    ///
    /// # Errors
    /// [`UsageError::NotOpen`]; [`UsageError::ControlPayloadTooLarge`] over 125 bytes.
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), UsageError> {
        self.writer.send_control(Opcode::Ping, payload)
    }

    /// Queues an unsolicited Pong, a one-way heartbeat (RFC 6455 §5.5.3).
    ///
    /// # Errors
    /// As [`send_ping`](Self::send_ping).
    pub fn send_pong(&mut self, payload: &[u8]) -> Result<(), UsageError> {
        self.writer.send_control(Opcode::Pong, payload)
    }

    /// Starts the closing handshake (RFC 6455 §7.1.2): queues a Close, after which no message
    /// can be sent and incoming messages are dropped. [`Event::Closed`] follows the peer's
    /// Close. [`CloseCode::NO_STATUS_RECEIVED`] sends a Close without a body.
    ///
    /// # Errors
    /// [`UsageError::NotOpen`]; [`UsageError::InvalidCloseCode`];
    /// [`UsageError::CloseReasonTooLong`] over 123 bytes.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), UsageError> {
        self.writer.send_close(code, reason)?;
        self.transition(State::CloseSent);
        Ok(())
    }

    /// Fails the connection at once: queues a Close with `code` (unless one was sent) and
    /// asks to shut down without waiting for the peer. [`Event::Closed`] with `code` follows.
    ///
    /// # Errors
    /// [`UsageError::InvalidCloseCode`]; [`UsageError::CloseReasonTooLong`]. A connection
    /// already closed or failed is left as it is.
    pub fn fail(&mut self, code: CloseCode, reason: &str) -> Result<(), UsageError> {
        crate::close::check_sendable(code, reason)?;
        match self.state {
            State::Open => self.writer.close(&ClosePayload::new(code, reason)),
            State::Closed { .. } | State::Failed(_) => return Ok(()),
            _ => {}
        }
        self.transition(State::closed(code));
        self.shutdown = true;
        Ok(())
    }

    // ----- output and queries ------------------------------------------------------------

    /// Bytes to write to the peer. Write some, then [`consume_output`](Self::consume_output).
    #[must_use]
    pub fn pending_output(&self) -> &[u8] {
        self.writer.out.pending()
    }

    /// Marks the first `n` bytes of [`pending_output`](Self::pending_output) as written.
    ///
    /// # Panics
    /// If `n` exceeds the pending length.
    pub fn consume_output(&mut self, n: usize) {
        self.writer.out.consume(n);
        self.writer.after_consume();
    }

    /// Frees the buffers that hold no bytes still needed: the receive buffer once every
    /// byte is processed, the output once written, the inflate buffer between messages.
    ///
    /// The connection does this by itself `Config::buffer_linger` after they were emptied;
    /// call it to free them sooner, say before parking many idle connections.
    pub fn release_buffers(&mut self) {
        self.reader.release_buffers();
        self.writer.out.release_if_empty();
        self.timers.set(Timer::Release, None);
    }

    /// Whether emptied buffers are kept that `release_buffers` would free.
    fn holds_spare_buffers(&self) -> bool {
        let out = &self.writer.out;
        self.reader.holds_spare_buffers() || (out.capacity() > 0 && out.pending().is_empty())
    }

    /// There are bytes to write.
    #[must_use]
    pub fn wants_write(&self) -> bool {
        !self.writer.out.pending().is_empty()
    }

    /// The output is flushed and the driver should now close the stream (RFC 6455 §7.1.1).
    #[must_use]
    pub fn wants_shutdown(&self) -> bool {
        self.shutdown && !self.wants_write()
    }

    /// Bytes queued and not yet written, like the browser's `bufferedAmount`.
    #[must_use]
    pub fn buffered_amount(&self) -> usize {
        self.writer.out.pending().len()
    }

    /// Runs `send` with the output's high-water mark lifted, for a driver that already waited
    /// for room: a `Sink` whose `poll_ready` saw room must not fail its `start_send` because
    /// a clone sharing the connection queued in between. The output then holds at most the
    /// mark plus one message per such sender.
    #[cfg(feature = "futures")]
    pub(crate) fn past_the_mark<R>(&mut self, send: impl FnOnce(&mut Self) -> R) -> R {
        let mark = self.writer.take_high_water();
        let result = send(self);
        self.writer.set_high_water(mark);
        result
    }

    /// Whether an automatic Pong waits unwritten. The Pong to the next Ping replaces it
    /// (RFC 6455 §5.5.3: a Pong may answer only the latest Ping), so a flood of Pings from
    /// a peer that does not read leaves one Pong queued. A driver that wants each Ping of a
    /// burst answered, as peers expect, writes before taking the next event while this is
    /// true; this crate's drivers do.
    #[must_use]
    pub fn pong_waiting(&self) -> bool {
        self.writer.pong_waiting()
    }

    /// Whether the driver should read more: false while the output is at or past
    /// [`Config::output_high_water`], until enough of it is written. Reading then would only
    /// make more to write (replies, a Close echo) for a peer that is not reading; writing
    /// first applies TCP backpressure to it instead. Reading stays safe either way (at most
    /// one automatic Pong waits), so a driver that must read to make progress may: the
    /// tokio driver's reader half does, while its writer half's sends are under way.
    #[must_use]
    pub fn wants_read(&self) -> bool {
        self.writer.has_room()
    }

    /// The connection's state.
    #[must_use]
    pub fn state(&self) -> ConnectionState {
        match self.state {
            State::ReadingRequest(_) | State::AwaitingAnswer { .. } | State::ReadingResponse(_) => {
                ConnectionState::Connecting
            }
            State::Open => ConnectionState::Open,
            State::CloseSent => ConnectionState::Closing,
            State::Closed { .. } | State::Failed(_) => ConnectionState::Closed,
        }
    }

    /// Bytes of heap the connection holds now in its buffers: received bytes, bytes to send,
    /// and an inflated message. The deflate codec's own state (zlib's window and tables) is
    /// not counted.
    #[must_use]
    pub fn heap_size(&self) -> usize {
        self.reader.heap_size() + self.writer.out.capacity()
    }

    // ----- timers ------------------------------------------------------------------------

    /// When [`handle_timeout`](Self::handle_timeout) must next be called, on the driver's
    /// clock (any monotonic origin it picks). `Some(Duration::ZERO)` means now: a timer needs
    /// the current time to be armed, which happens when the connection opens, starts closing
    /// or keeps emptied buffers, never merely because bytes arrived. `None`: no timer is
    /// running.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.shutdown {
            return None;
        }
        if self.timer_to_arm().is_some() || self.release_needs_arming() {
            return Some(Duration::ZERO);
        }
        self.timers.next()
    }

    /// The timer this state runs that is not armed yet, and for how long it will run.
    fn timer_to_arm(&self) -> Option<(Timer, Duration)> {
        let t = &self.timers;
        let c = &self.config;
        let (timer, duration) = match self.state {
            _ if self.state.is_handshake() => (Timer::Handshake, c.handshake_timeout),
            State::Open if !t.is_set(Timer::PongDue) => (Timer::Keepalive, c.keepalive_interval),
            State::CloseSent => (Timer::Close, c.close_timeout),
            State::Closed { .. } if !self.shutdown => (Timer::Close, c.close_timeout),
            _ => return None,
        };
        match duration {
            Some(duration) if !t.is_set(timer) => Some((timer, duration)),
            _ => None,
        }
    }

    fn release_needs_arming(&self) -> bool {
        !self.timers.is_set(Timer::Release)
            && self.config.buffer_linger.is_some()
            && self.holds_spare_buffers()
    }

    /// Acts on the timers at time `now` (same clock as [`poll_timeout`](Self::poll_timeout)):
    /// sends the keepalive Ping, fails the connection when its Pong is overdue, gives up on a
    /// closing handshake. Calls before a deadline are harmless.
    pub fn handle_timeout(&mut self, now: Duration) {
        if let Some((timer, duration)) = self.timer_to_arm() {
            self.timers.set(timer, Some(now + duration));
            if timer == Timer::Keepalive {
                self.timers.activity = false;
            }
        }
        if self.timers.activity && self.timers.is_set(Timer::Keepalive) {
            // Bytes arrived since the deadline was set: it moves to an interval from now.
            self.timers.activity = false;
            self.timers
                .set(Timer::Keepalive, after(now, self.config.keepalive_interval));
        }
        if self.release_needs_arming() {
            self.timers
                .set(Timer::Release, after(now, self.config.buffer_linger));
        }
        while let Some(timer) = self.timers.take_expired(now) {
            match timer {
                Timer::Release => self.release_buffers(),
                Timer::Handshake => {
                    self.fail_with(HandshakeError::Timeout.into());
                }
                Timer::PongDue => {
                    self.fail_with(Error::KeepaliveTimeout);
                }
                Timer::Keepalive => {
                    let t = &mut self.timers;
                    t.ping_payload = t.ping_payload.wrapping_add(1);
                    let payload = t.ping_payload.to_be_bytes();
                    self.writer.control(Opcode::Ping, &payload);
                    match self.config.keepalive_timeout {
                        Some(timeout) => self.timers.set(Timer::PongDue, Some(now + timeout)),
                        // Without a deadline for the Pong, Ping again after an interval.
                        None => self
                            .timers
                            .set(Timer::Keepalive, after(now, self.config.keepalive_interval)),
                    }
                }
                Timer::Close => {
                    if matches!(self.state, State::CloseSent) {
                        self.transition(State::closed(CloseCode::ABNORMAL));
                    }
                    // A client that waited for the server to close TCP gives up and closes it.
                    self.shutdown = true;
                }
            }
        }
    }
}

/// `interval` after `at`, if there is one.
fn after(at: Duration, interval: Option<Duration>) -> Option<Duration> {
    interval.map(|d| at + d)
}

/// A streamed message's chunk as its event.
#[inline]
fn chunk_event(kind: MessageKind, bytes: &[u8], fin: bool) -> Event<'_> {
    match kind {
        MessageKind::Text => Event::TextChunk {
            text: validated_text(bytes),
            fin,
        },
        MessageKind::Binary => Event::BinaryChunk { data: bytes, fin },
    }
}

/// The bytes of a text message, which `Utf8Validator` accepted as they arrived.
///
/// Validating again here doubled the cost of text (the decode bench: multibyte text at 0.02x
/// the fastest peer before, most of it in the second pass), so the proof is the validator's.
fn validated_text(bytes: &[u8]) -> &str {
    debug_assert!(
        core::str::from_utf8(bytes).is_ok(),
        "text bypassed the validator"
    );
    // SAFETY: every byte of a text message, in order, went through `Utf8Validator::feed`
    // right after it was unmasked (or inflated) into its final place, and the message ended
    // with `finish`; or the message was one frame, all here, and went through
    // `utf8::validate_complete` once unmasked (reader.rs). Nothing writes inside a message's
    // bytes afterwards (later frames are joined after its end, control frames are unmasked
    // past it). A streamed text chunk starts where the chunk before it ended, on a code
    // point's first byte, and ends where `utf8::open_tail_start` finds no code point left
    // open; its bytes went through `feed` in order (the open code point carried to the next
    // chunk was fed before it moved), so a chunk is whole code points that the validator
    // accepted. Both validators accept exactly the valid UTF-8 texts: the properties
    // `pieces_agree_with_core`, `simd_errors_match_core` and `complete_agrees_with_core` in
    // utf8.rs, and the chunking properties of the connection, check it, with debug
    // assertions on in tests.
    unsafe { core::str::from_utf8_unchecked(bytes) }
}
