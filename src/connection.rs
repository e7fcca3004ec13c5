//! [`Connection`]: one WebSocket connection's state machine, the only place its state changes.
//!
//! | state      | input                         | next state | queued on the wire        |
//! |------------|-------------------------------|------------|---------------------------|
//! | ReadingRequest | complete valid request head | AwaitingAnswer | nothing (`Event::Request`) |
//! | ReadingRequest | invalid or oversized head   | Failed     | HTTP 4xx response         |
//! | AwaitingAnswer | `accept(..)`                | Open       | HTTP 101 response         |
//! | AwaitingAnswer | `reject(..)`                | Failed     | the application's response|
//! | ReadingResponse | valid 101 response         | Open       | nothing (`Event::Accepted`)|
//! | ReadingResponse | anything else              | Failed     | nothing                   |
//! | any handshake state | handshake timeout      | Failed     | HTTP 408 (server)         |
//! | Open       | data / Ping / Pong frame      | Open       | Pong for a Ping           |
//! | Open       | peer's Close                  | Closed     | Close echo (same code)    |
//! | Open       | `close(code, reason)`         | CloseSent  | Close                     |
//! | Open       | protocol error                | Failed     | Close with the error code |
//! | Open       | keepalive Pong overdue        | Failed     | Close 1011                |
//! | CloseSent  | peer's Close                  | Closed     | nothing                   |
//! | CloseSent  | data frame                    | CloseSent  | nothing (dropped)         |
//! | CloseSent  | close timeout                 | Closed     | nothing (code 1006)       |
//! | any        | `fail(code, reason)`          | Closed     | Close, unless already sent|
//! | any        | EOF before the handshake ends | Closed     | nothing (code 1006)       |
//!
//! `wants_shutdown()` turns true, once the output is flushed, when the connection failed, when
//! a server reaches Closed (the server closes TCP first, RFC 6455 §7.1.1), and when a client in
//! Closed has seen EOF or waited `close_timeout`.

use crate::buffer::{Output, RecvBuffer};
use crate::close::{CloseCode, ClosePayload, MAX_CLOSE_REASON, parse_close_payload};
use crate::config::{Config, Role};
#[cfg(feature = "deflate")]
use crate::deflate::{Codec, InflateError};
use crate::entropy::Entropy;
use crate::error::{Error, ProtocolError, UsageError};
use crate::event::{Event, MessageKind};
use crate::extension::{self, Negotiated, RSV1};
use crate::frame::{FrameHeader, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, Opcode};
use crate::handshake::{
    self, Accept, ClientRequest, HandshakeError, HeadScanner, Request, Response,
};
use crate::mask::apply_mask;
use crate::sender::Sender;
use crate::utf8::{self, Utf8Validator};
use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::ops::Range;
use core::time::Duration;

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
        reported: bool,
    },
    Failed(Error),
}

/// What a client must remember to check the server's response.
#[derive(Debug)]
struct PendingClient {
    scanner: HeadScanner,
    key: String,
    subprotocols: Vec<String>,
    extension_names: Vec<String>,
}

/// A data frame whose header was read and whose payload is still arriving.
#[derive(Debug)]
struct FrameProgress {
    remaining: u64,
    mask: Option<[u8; 4]>,
    /// Payload bytes unmasked so far, for the key phase.
    unmasked: usize,
    fin: bool,
}

/// A data message being joined in place: `start..end` of the receive buffer holds its
/// unmasked payload so far.
#[derive(Debug)]
struct MessageProgress {
    kind: MessageKind,
    start: usize,
    end: usize,
    fragments: usize,
    utf8: Utf8Validator,
    /// RSV1 was set on the first frame: the payload is deflated (RFC 7692 §6).
    compressed: bool,
}

/// A message being sent in fragments.
#[derive(Debug)]
struct Sending {
    kind: MessageKind,
    utf8: Utf8Validator,
    compressed: bool,
}

fn opcode_of(kind: MessageKind) -> Opcode {
    match kind {
        MessageKind::Text => Opcode::Text,
        MessageKind::Binary => Opcode::Binary,
    }
}

/// Masked text is unmasked and validated in blocks of this size: small enough to stay in
/// L1 cache between the two.
const UNMASK_AND_VALIDATE_BLOCK: usize = 8 << 10;

/// What `step` found, as buffer ranges, so that the event can borrow after the mutation.
enum Step {
    NeedData,
    /// A compressed message, inflated into `Connection::inflated`.
    #[cfg(feature = "deflate")]
    Inflated(MessageKind),
    Request,
    Accepted,
    Continue,
    Text(Range<usize>),
    Binary(Range<usize>),
    Ping(Range<usize>),
    Pong(Range<usize>),
    Close(CloseCode, Range<usize>),
    Closed(CloseCode),
}

/// What events borrow from a connection, apart from what sending needs.
struct EventLender<'a> {
    recv: &'a RecvBuffer,
    state: &'a State,
    response: Option<&'a Response>,
    #[cfg(feature = "deflate")]
    inflated: &'a [u8],
}

impl<'a> EventLender<'a> {
    /// The event for a step `advance` stopped at.
    #[inline(always)]
    fn event(self, step: Step) -> Event<'a> {
        let bytes = self.recv.bytes();
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
            #[cfg(feature = "deflate")]
            Step::Inflated(MessageKind::Text) => Event::Text(validated_text(self.inflated)),
            #[cfg(feature = "deflate")]
            Step::Inflated(MessageKind::Binary) => Event::Binary(self.inflated),
            Step::Ping(r) => Event::Ping(&bytes[r]),
            Step::Pong(r) => Event::Pong(&bytes[r]),
            Step::Close(code, r) => Event::Close {
                code,
                reason: core::str::from_utf8(&bytes[r]).unwrap_or_default(),
            },
            Step::Closed(code) => Event::Closed(code),
            Step::Continue | Step::NeedData => unreachable!("advance goes on past these"),
        }
    }
}

/// Deadlines on the driver's clock. `activity` and unarmed state timers make
/// `poll_timeout` ask for an immediate `handle_timeout`, which arms them with the current time.
#[derive(Debug, Default)]
struct Timers {
    activity: bool,
    keepalive_at: Option<Duration>,
    pong_due_at: Option<Duration>,
    close_at: Option<Duration>,
    handshake_at: Option<Duration>,
    /// When emptied buffers are freed (`Config::buffer_linger`).
    release_at: Option<Duration>,
    ping_payload: u32,
}

/// One WebSocket connection, either role, without IO.
///
/// Bytes in with [`receive`](Self::receive) (or [`receive_buffer`](Self::receive_buffer) +
/// [`commit`](Self::commit)), events out with [`next_event`](Self::next_event), bytes out
/// with [`pending_output`](Self::pending_output) + [`consume_output`](Self::consume_output).
pub struct Connection {
    role: Role,
    config: Config,
    state: State,
    recv: RecvBuffer,
    /// First byte of `recv` not yet parsed.
    parse_pos: usize,
    frame: Option<FrameProgress>,
    message: Option<MessageProgress>,
    out: Output,
    /// The fragmented message we are sending, if any.
    sending: Option<Sending>,
    timers: Timers,
    /// RSV bits that negotiated extensions define.
    rsv_allowed: u8,
    /// The client's view of the 101 response, lent by `Event::Accepted` and dropped after.
    response: Option<Box<Response>>,
    /// The subprotocol agreed in the handshake.
    subprotocol: Option<Box<str>>,
    /// permessage-deflate's compressor and decompressor, when it was agreed.
    #[cfg(feature = "deflate")]
    codec: Option<Box<Codec>>,
    /// The inflated payload of the compressed message being received, lent by its event.
    #[cfg(feature = "deflate")]
    inflated: Vec<u8>,
    shutdown: bool,
    eof: bool,
}

impl core::fmt::Debug for Connection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("buffered_in", &(self.recv.filled() - self.parse_pos))
            .field("out", &self.out)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A server connection that starts by reading the client's opening handshake
    /// (RFC 6455 §4.2). [`Event::Request`] reports a valid request; answer it with
    /// [`accept`](Self::accept) or [`reject`](Self::reject). Invalid requests are answered
    /// with the right 4xx by the connection itself.
    #[must_use]
    pub fn server(config: Config) -> Self {
        Self::new(
            Role::Server,
            config,
            None,
            State::ReadingRequest(HeadScanner::new()),
        )
    }

    /// A client connection that queues its opening handshake request at once (RFC 6455
    /// §4.1), with a fresh key from `entropy`, and opens when the server's 101 response is
    /// valid ([`Event::Accepted`]). `entropy` also supplies the masking keys and must be a
    /// CSPRNG (see [`Entropy`]).
    #[must_use]
    pub fn client(
        mut request: ClientRequest,
        config: Config,
        entropy: impl Entropy + Send + 'static,
    ) -> Self {
        let mut conn = Self::new(Role::Client, config, Some(Box::new(entropy)), State::Open);
        let mut nonce = [0; 16];
        conn.out.fill_random(&mut nonce);
        let key = handshake::client_key(nonce);
        request.extension_offers(extension::client_offers(&conn.config));
        request.write(conn.out.raw(), &key);
        let extension_names = request
            .offered_extension_names()
            .into_iter()
            .map(String::from)
            .collect();
        conn.state = State::ReadingResponse(Box::new(PendingClient {
            scanner: HeadScanner::new(),
            key,
            subprotocols: request.subprotocols().to_vec(),
            extension_names,
        }));
        conn
    }

    /// A server connection on a stream whose upgrade is already done (for example by
    /// hyper or axum, or an HTTP/2 or HTTP/3 extended CONNECT stream, RFC 8441/9220).
    #[must_use]
    pub fn upgraded_server(config: Config) -> Self {
        Self::new(Role::Server, config, None, State::Open)
    }

    /// A client connection on a stream whose upgrade is already done. `entropy` supplies the
    /// masking keys and must be a CSPRNG (see [`Entropy`]).
    #[must_use]
    pub fn upgraded_client(config: Config, entropy: impl Entropy + Send + 'static) -> Self {
        Self::new(Role::Client, config, Some(Box::new(entropy)), State::Open)
    }

    fn new(
        role: Role,
        config: Config,
        entropy: Option<Box<dyn Entropy + Send>>,
        state: State,
    ) -> Self {
        Self {
            role,
            config,
            state,
            recv: RecvBuffer::default(),
            parse_pos: 0,
            frame: None,
            message: None,
            out: Output::new(entropy),
            sending: None,
            timers: Timers {
                activity: true,
                ..Timers::default()
            },
            rsv_allowed: 0,
            response: None,
            subprotocol: None,
            #[cfg(feature = "deflate")]
            codec: None,
            #[cfg(feature = "deflate")]
            inflated: Vec::new(),
            shutdown: false,
            eof: false,
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
        self.subprotocol.as_deref()
    }

    /// Whether permessage-deflate (RFC 7692) was agreed in the handshake.
    #[cfg(feature = "deflate")]
    #[must_use]
    pub fn is_deflate_negotiated(&self) -> bool {
        self.codec.is_some()
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
        self.make_room(bytes.len());
        self.recv.spare()[..bytes.len()].copy_from_slice(bytes);
        self.recv.commit(bytes.len());
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
        self.make_room(self.config.read_buffer_size);
        let limit = self.large_frame_rest().unwrap_or(usize::MAX);
        self.recv.spare_up_to(limit)
    }

    /// The bytes still to come of the data frame being received, when that frame is at
    /// least a read long.
    fn large_frame_rest(&self) -> Option<usize> {
        let frame = self.frame.as_ref()?;
        let length = frame.remaining.saturating_add(frame.unmasked as u64);
        let rest = self.frame_rest();
        (length >= self.config.read_buffer_size as u64 && rest > 0).then_some(rest)
    }

    /// Payload bytes of the data frame being received that are not in the buffer yet.
    fn frame_rest(&self) -> usize {
        let Some(frame) = &self.frame else { return 0 };
        let buffered = (self.recv.filled() - self.parse_pos) as u64;
        usize::try_from(frame.remaining.saturating_sub(buffered)).unwrap_or(usize::MAX)
    }

    /// Takes `n` bytes written into [`receive_buffer`](Self::receive_buffer) as received.
    ///
    /// # Panics
    /// If `n` is larger than the slice that was lent.
    pub fn commit(&mut self, n: usize) {
        if n > 0 && self.accepts_input() {
            self.recv.commit(n);
            self.timers.activity = true;
        }
    }

    /// Whether received bytes are waiting for the rest of their frame or message. A driver
    /// then reads straight into the connection with [`receive_buffer`](Self::receive_buffer);
    /// otherwise it can wait for the next read with a small buffer of its own and hand the
    /// bytes over with [`receive`](Self::receive), so that an idle connection never grows a
    /// buffer of `read_buffer_size` just to wait (a kept buffer is reused by `receive` too).
    #[must_use]
    pub fn has_partial_input(&self) -> bool {
        self.live_start() < self.recv.filled()
    }

    /// Whether the next read should go straight into
    /// [`receive_buffer`](Self::receive_buffer): a frame or message is partly here, or a
    /// buffer kept from earlier traffic has room for a whole read. Otherwise a driver that
    /// reads through a small buffer of its own and [`receive`](Self::receive) keeps a
    /// waiting connection from growing a `read_buffer_size` buffer just to wait.
    #[must_use]
    pub fn prefers_receive_buffer(&self) -> bool {
        self.has_partial_input() || self.recv.room() >= self.config.read_buffer_size
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

    /// The input ended before a closing handshake: RFC 6455 §7.1.5 calls that 1006 (never
    /// sent on the wire).
    fn end_of_input(&mut self) {
        self.state = State::Closed {
            code: CloseCode::ABNORMAL,
            reported: false,
        };
        self.timers.handshake_at = None;
        self.shutdown = true;
        self.drop_input();
    }

    fn accepts_input(&self) -> bool {
        !self.eof && !matches!(self.state, State::Closed { .. } | State::Failed(_))
    }

    /// The first byte still needed: the message being joined, else the next unparsed byte.
    fn live_start(&self) -> usize {
        self.message.as_ref().map_or(self.parse_pos, |m| m.start)
    }

    fn make_room(&mut self, want: usize) {
        self.clear_if_drained();
        // Frame headers and control frames consumed inside a fragmented message leave dead
        // bytes between its joined payload and the next unparsed byte; close that gap first,
        // or a peer could grow the buffer with Pings between two fragments.
        if let Some(m) = &self.message
            && self.parse_pos > m.end
        {
            self.recv.remove(m.end..self.parse_pos);
            self.parse_pos = m.end;
        }
        let shift = self.recv.make_room(
            self.live_start(),
            want,
            self.expected_payload(),
            self.receive_bound(),
        );
        if shift > 0 {
            self.parse_pos -= shift;
            if let Some(m) = &mut self.message {
                m.start -= shift;
                m.end -= shift;
            }
        }
    }

    /// Bytes of the current data frame's payload still to come, which will have to sit in
    /// the buffer together (compressed payloads are inflated as they come, so none are).
    fn expected_payload(&self) -> usize {
        match &self.message {
            Some(message) if !message.compressed => self.frame_rest(),
            _ => 0,
        }
    }

    /// The most the receive buffer needs: a whole message or request head, a control frame
    /// and the frame headers around them, and one read.
    fn receive_bound(&self) -> usize {
        let held = self.config.max_message_size.max(self.config.max_head_size);
        held.saturating_add(self.config.read_buffer_size)
            .saturating_add(2 * (MAX_HEADER_LEN + MAX_CONTROL_PAYLOAD))
    }

    /// Once every byte is processed the buffer starts over at its front; its memory is kept
    /// for the next message unless `Config::buffer_linger` is `None`.
    fn clear_if_drained(&mut self) {
        if self.live_start() == self.recv.filled() {
            if self.config.buffer_linger.is_some() {
                self.recv.clear();
            } else {
                self.recv.release();
            }
            self.parse_pos = 0;
            if let Some(m) = &mut self.message {
                m.start = 0;
                m.end = 0;
            }
        }
    }

    fn drop_input(&mut self) {
        self.recv.release();
        self.parse_pos = 0;
        self.frame = None;
        self.message = None;
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
        let Some(step) = self.advance()? else {
            return Ok(None);
        };
        Ok(Some(self.parts().0.event(step)))
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
        let Some(step) = self.advance()? else {
            return Ok(None);
        };
        let (lender, sender) = self.parts();
        Ok(Some((lender.event(step), sender)))
    }

    /// The parts an event borrows and the parts sending needs, borrowed apart.
    fn parts(&mut self) -> (EventLender<'_>, Sender<'_>) {
        let ready = self.check_can_send_message();
        (
            EventLender {
                recv: &self.recv,
                state: &self.state,
                response: self.response.as_deref(),
                #[cfg(feature = "deflate")]
                inflated: &self.inflated,
            },
            Sender::new(
                &mut self.out,
                #[cfg(feature = "deflate")]
                self.codec.as_deref_mut(),
                ready,
                self.config.buffer_linger.is_none(),
            ),
        )
    }

    /// Processes input until the next event; `None` when more input is needed. Inlined into
    /// its two callers so the step reaches the event without a trip through memory.
    #[inline(always)]
    fn advance(&mut self) -> Result<Option<Step>, Error> {
        self.response = None;
        #[cfg(feature = "deflate")]
        if !self.message.as_ref().is_some_and(|m| m.compressed) {
            self.inflated.clear();
            if self.config.buffer_linger.is_none() {
                self.inflated = Vec::new();
            }
        }
        self.clear_if_drained();
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
                State::Failed(e) => return Err(e.clone()),
                State::Closed { code, reported } => {
                    if *reported {
                        return Ok(None);
                    }
                    *reported = true;
                    return Ok(Some(Step::Closed(*code)));
                }
                State::Open | State::CloseSent => {}
            }
            match self.step() {
                Ok(Step::Continue) => {}
                Ok(Step::NeedData) if self.eof => self.end_of_input(),
                Ok(Step::NeedData) => {
                    self.clear_if_drained();
                    return Ok(None);
                }
                Ok(step) => return Ok(Some(step)),
                Err(e) => return Err(self.fail_with(e.into())),
            }
        }
    }

    /// Server: looks for the end of the request head; parses and checks it once complete.
    /// Returns whether the state moved on.
    fn read_request(&mut self) -> Result<bool, HandshakeError> {
        let State::ReadingRequest(scanner) = &mut self.state else {
            unreachable!("read_request is called in ReadingRequest");
        };
        let limit = self.config.max_head_size;
        let Some(end) = scan_head(scanner, self.recv.bytes(), limit) else {
            return if self.recv.filled() >= limit {
                Err(HandshakeError::HeadTooLarge)
            } else {
                Ok(false)
            };
        };
        let request = handshake::parse_request(&self.recv.bytes()[..end], self.config.max_headers)?;
        if let Some(allowed) = &self.config.allowed_origins {
            // RFC 6455 §4.2.2 item 4 and §10.2: refuse origins the server does not trust.
            let origin_ok = request
                .origin()
                .is_some_and(|origin| allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)));
            if !origin_ok {
                return Err(HandshakeError::OriginNotAllowed);
            }
        }
        // Frames pipelined behind the head stay buffered until the answer.
        self.parse_pos = end;
        self.state = State::AwaitingAnswer {
            request: Box::new(request),
            reported: false,
        };
        Ok(true)
    }

    /// Client: looks for the end of the response head; validates it once complete.
    /// Returns whether the connection opened.
    fn read_response(&mut self) -> Result<bool, HandshakeError> {
        let State::ReadingResponse(pending) = &mut self.state else {
            unreachable!("read_response is called in ReadingResponse");
        };
        let limit = self.config.max_head_size;
        let Some(end) = scan_head(&mut pending.scanner, self.recv.bytes(), limit) else {
            return if self.recv.filled() >= limit {
                Err(HandshakeError::ResponseHeadTooLarge)
            } else {
                Ok(false)
            };
        };
        let names: Vec<&str> = pending.extension_names.iter().map(String::as_str).collect();
        let response = handshake::parse_response(
            &self.recv.bytes()[..end],
            self.config.max_headers,
            &pending.key,
            &pending.subprotocols,
            &names,
        )?;
        let negotiated = extension::apply_response(&self.config, response.extensions())?;
        self.apply_negotiated(negotiated);
        self.subprotocol = response.subprotocol().map(Into::into);
        self.response = Some(Box::new(response));
        // Frames the server sent right behind its response are processed next, never lost.
        self.parse_pos = end;
        self.enter_open();
        Ok(true)
    }

    fn apply_negotiated(&mut self, negotiated: Negotiated) {
        self.rsv_allowed = negotiated.rsv_allowed;
        #[cfg(feature = "deflate")]
        if let (Some(params), Some(wanted)) = (negotiated.deflate, &self.config.deflate) {
            self.codec = Some(Box::new(Codec::new(params, wanted)));
        }
    }

    fn enter_open(&mut self) {
        self.state = State::Open;
        self.timers.handshake_at = None;
        self.timers.activity = true;
    }

    /// Server: accepts the handshake request reported by [`Event::Request`]: queues the 101
    /// response (RFC 6455 §4.2.2) and opens the connection. Frames the client sent behind
    /// its request are processed by the next [`next_event`](Self::next_event).
    ///
    /// # Errors
    /// [`UsageError::NoRequestToAnswer`] unless a request awaits an answer;
    /// [`UsageError::InvalidAnswer`] when the subprotocol was not offered or a header is
    /// invalid. Nothing is sent then, and the request still awaits an answer.
    pub fn accept(&mut self, accept: Accept) -> Result<(), UsageError> {
        let State::AwaitingAnswer { request, .. } = &self.state else {
            return Err(UsageError::NoRequestToAnswer);
        };
        accept.check(request)?;
        let (extensions, negotiated) = extension::accept_offers(&self.config, request.extensions());
        handshake::write_accept(self.out.raw(), request, &accept, extensions.as_deref());
        self.apply_negotiated(negotiated);
        self.subprotocol = accept.selected_subprotocol().map(Into::into);
        self.enter_open();
        Ok(())
    }

    /// Server: refuses the handshake request with an HTTP response of `status` (3xx-5xx),
    /// extra `headers` and a `body`; `Connection: close` is added, and the connection then
    /// wants to shut down.
    ///
    /// # Errors
    /// [`UsageError::NoRequestToAnswer`]; [`UsageError::InvalidAnswer`] for a status outside
    /// 300-599 (or 304) or an invalid header. Nothing is sent then.
    pub fn reject(
        &mut self,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), UsageError> {
        if !matches!(self.state, State::AwaitingAnswer { .. }) {
            return Err(UsageError::NoRequestToAnswer);
        }
        handshake::check_rejection(status, headers)?;
        handshake::write_rejection(self.out.raw(), status, headers, body);
        self.state = State::Failed(Error::Handshake(HandshakeError::Rejected { status }));
        self.timers.handshake_at = None;
        self.shutdown = true;
        self.drop_input();
        Ok(())
    }

    /// Parses and processes as much input as one event needs.
    fn step(&mut self) -> Result<Step, ProtocolError> {
        if self.frame.is_some() {
            return self.continue_data_frame();
        }
        let Some((header, header_len)) = FrameHeader::parse(&self.recv.bytes()[self.parse_pos..])?
        else {
            return Ok(Step::NeedData);
        };
        self.check_header(&header)?;
        if header.opcode.is_control() {
            // Control payloads are at most 125 bytes: wait until the whole frame is here.
            let start = self.parse_pos + header_len;
            let end = start + header.payload_len as usize;
            if self.recv.filled() < end {
                return Ok(Step::NeedData);
            }
            if let Some(key) = header.mask {
                apply_mask(&mut self.recv.bytes_mut()[start..end], key, 0);
            }
            self.parse_pos = end;
            return self.on_control(header.opcode, start..end);
        }
        self.parse_pos += header_len;
        if let Some(step) = self.whole_message_frame(&header)? {
            return Ok(step);
        }
        match header.opcode {
            Opcode::Continuation => {
                if let Some(m) = &mut self.message {
                    m.fragments += 1;
                }
            }
            opcode => {
                let kind = if opcode == Opcode::Text {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                };
                self.message = Some(MessageProgress {
                    kind,
                    start: self.parse_pos,
                    end: self.parse_pos,
                    fragments: 1,
                    utf8: Utf8Validator::default(),
                    compressed: header.rsv & RSV1 != 0,
                });
            }
        }
        self.frame = Some(FrameProgress {
            remaining: header.payload_len,
            mask: header.mask,
            unmasked: 0,
            fin: header.fin,
        });
        Ok(Step::Continue)
    }

    /// The common case in one go: an uncompressed single-frame message whose payload is all
    /// here is unmasked, validated and reported without the frame and message bookkeeping
    /// that payloads arriving in pieces need (half the time of a 16-byte message went
    /// there). `parse_pos` is just past the header. `None` leaves the frame to the general
    /// path.
    fn whole_message_frame(&mut self, header: &FrameHeader) -> Result<Option<Step>, ProtocolError> {
        let kind = match header.opcode {
            Opcode::Text => MessageKind::Text,
            Opcode::Binary => MessageKind::Binary,
            _ => return Ok(None),
        };
        let start = self.parse_pos;
        let here = (self.recv.filled() - start) as u64;
        if !header.fin || header.rsv & RSV1 != 0 || header.payload_len > here {
            return Ok(None);
        }
        let end = start + header.payload_len as usize;
        let payload = &mut self.recv.bytes_mut()[start..end];
        if let Some(key) = header.mask {
            apply_mask(payload, key, 0);
        }
        if kind == MessageKind::Text {
            // RFC 6455 §8.1: the whole text is here, so the first invalid byte is too.
            utf8::validate_complete(payload).map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        self.parse_pos = end;
        if matches!(self.state, State::CloseSent) {
            // After our Close, incoming data is dropped (RFC 6455 §5.5.1).
            return Ok(Some(Step::Continue));
        }
        Ok(Some(match kind {
            MessageKind::Text => Step::Text(start..end),
            MessageKind::Binary => Step::Binary(start..end),
        }))
    }

    /// Enforces the rules a header alone can break, before any payload is buffered.
    fn check_header(&self, header: &FrameHeader) -> Result<(), ProtocolError> {
        match (self.role, header.mask.is_some()) {
            // RFC 6455 §5.1: a server MUST close on an unmasked frame...
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            // ...and a client MUST close on a masked one.
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        // RFC 6455 §5.2: RSV bits MUST be 0 unless an extension defines them.
        if header.rsv & !self.rsv_allowed != 0 {
            return Err(ProtocolError::ReservedBits(header.rsv));
        }
        // RFC 7692 §6: RSV1 marks a compressed message on its first frame only, never on
        // continuation or control frames.
        if header.rsv & RSV1 != 0 && !matches!(header.opcode, Opcode::Text | Opcode::Binary) {
            return Err(ProtocolError::ReservedBits(header.rsv));
        }
        if header.opcode.is_control() {
            // RFC 6455 §5.5: control frames MUST NOT be fragmented...
            if !header.fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            // ...and carry at most 125 bytes.
            if header.payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::ControlFrameTooLong(header.payload_len));
            }
            return Ok(());
        }
        let so_far = match (&self.message, header.opcode) {
            // RFC 6455 §5.4: a continuation needs a fragmented message in progress...
            (None, Opcode::Continuation) => return Err(ProtocolError::UnexpectedContinuation),
            // ...and a new message cannot start inside one.
            (Some(_), Opcode::Text | Opcode::Binary) => {
                return Err(ProtocolError::ExpectedContinuation);
            }
            (Some(m), _) => {
                if m.fragments >= self.config.max_fragments_per_message {
                    return Err(ProtocolError::TooManyFragments {
                        max: self.config.max_fragments_per_message,
                    });
                }
                (m.end - m.start) as u64
            }
            (None, _) => 0,
        };
        if let Some(max) = self.config.max_frame_size
            && header.payload_len > max as u64
        {
            return Err(ProtocolError::FrameTooLarge {
                len: header.payload_len,
                max,
            });
        }
        let total = so_far.saturating_add(header.payload_len);
        if total > self.config.max_message_size as u64 {
            return Err(ProtocolError::MessageTooLarge {
                len: total,
                max: self.config.max_message_size,
            });
        }
        Ok(())
    }

    /// Unmasks, joins and validates the payload bytes of the current data frame that are here.
    fn continue_data_frame(&mut self) -> Result<Step, ProtocolError> {
        let (Some(frame), Some(message)) = (&mut self.frame, &mut self.message) else {
            unreachable!("a data frame in progress belongs to a message");
        };
        let available = (self.recv.filled() - self.parse_pos) as u64;
        let n = frame.remaining.min(available) as usize;
        if n == 0 && frame.remaining > 0 {
            return Ok(Step::NeedData);
        }
        let bytes = self.recv.bytes_mut();
        let src = self.parse_pos..self.parse_pos + n;
        // Text that stays where it arrived is validated a block at a time right after the
        // block is unmasked, while it is still in L1 cache, rather than read again in full.
        let mut validated = false;
        if let Some(key) = frame.mask {
            if message.kind == MessageKind::Text && !message.compressed && message.end == src.start
            {
                let mut phase = frame.unmasked;
                for block in bytes[src.clone()].chunks_mut(UNMASK_AND_VALIDATE_BLOCK) {
                    apply_mask(block, key, phase);
                    phase += block.len();
                    // RFC 6455 §8.1: fail as soon as the text can no longer be valid UTF-8.
                    message
                        .utf8
                        .feed(block)
                        .map_err(|_| ProtocolError::InvalidUtf8)?;
                }
                validated = true;
            } else {
                apply_mask(&mut bytes[src.clone()], key, frame.unmasked);
            }
        }
        if message.compressed {
            #[cfg(feature = "deflate")]
            inflate_into(
                self.codec.as_deref_mut(),
                &mut self.inflated,
                message,
                &bytes[src.clone()],
                self.config.max_message_size,
                false,
            )?;
            // Compressed bytes are used up as they are inflated: nothing of them is kept.
            message.start = src.end;
            message.end = src.end;
        } else {
            // Join fragments in place: move this payload down over the headers before it.
            if message.end != src.start {
                bytes.copy_within(src.clone(), message.end);
            }
            let joined = message.end..message.end + n;
            if message.kind == MessageKind::Text && !validated {
                message
                    .utf8
                    .feed(&bytes[joined.clone()])
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            message.end = joined.end;
        }
        frame.unmasked += n;
        frame.remaining -= n as u64;
        self.parse_pos = src.end;
        if frame.remaining > 0 {
            return Ok(Step::NeedData);
        }
        let fin = frame.fin;
        self.frame = None;
        if !fin {
            return Ok(Step::Continue);
        }
        if message.compressed {
            #[cfg(feature = "deflate")]
            inflate_into(
                self.codec.as_deref_mut(),
                &mut self.inflated,
                message,
                &[],
                self.config.max_message_size,
                true,
            )?;
        }
        let mut message = self.message.take().expect("checked above");
        if message.kind == MessageKind::Text {
            message
                .utf8
                .finish()
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        if matches!(self.state, State::CloseSent) {
            // After our Close, incoming data is dropped (RFC 6455 §5.5.1).
            return Ok(Step::Continue);
        }
        #[cfg(feature = "deflate")]
        if message.compressed {
            return Ok(Step::Inflated(message.kind));
        }
        let range = message.start..message.end;
        Ok(match message.kind {
            MessageKind::Text => Step::Text(range),
            MessageKind::Binary => Step::Binary(range),
        })
    }

    fn on_control(&mut self, opcode: Opcode, payload: Range<usize>) -> Result<Step, ProtocolError> {
        match opcode {
            Opcode::Ping => {
                // RFC 6455 §5.5.2: answer with a Pong carrying the same payload, even between
                // fragments of a message and after our Close (only the peer's Close ends it).
                if self.config.auto_pong && matches!(self.state, State::Open | State::CloseSent) {
                    self.out
                        .frame(Opcode::Pong, true, 0, &self.recv.bytes()[payload.clone()]);
                }
                Ok(Step::Ping(payload))
            }
            Opcode::Pong => {
                if self.timers.pong_due_at.is_some()
                    && self.recv.bytes()[payload.clone()] == self.timers.ping_payload.to_be_bytes()
                {
                    self.timers.pong_due_at = None;
                    self.timers.activity = true;
                }
                Ok(Step::Pong(payload))
            }
            Opcode::Close => {
                let (code, reason) = parse_close_payload(&self.recv.bytes()[payload.clone()])?;
                let reason_range = payload.end - reason.len()..payload.end;
                if matches!(self.state, State::Open) {
                    // RFC 6455 §5.5.1: answer a Close with a Close, echoing the code.
                    self.out.frame(
                        Opcode::Close,
                        true,
                        0,
                        ClosePayload::new(code, reason).as_bytes(),
                    );
                }
                self.enter_closed(code);
                Ok(Step::Close(code, reason_range))
            }
            _ => unreachable!("only control opcodes reach on_control"),
        }
    }

    /// Both Close frames have been exchanged.
    fn enter_closed(&mut self, code: CloseCode) {
        self.state = State::Closed {
            code,
            reported: false,
        };
        self.sending = None;
        self.timers.keepalive_at = None;
        self.timers.handshake_at = None;
        self.timers.pong_due_at = None;
        // RFC 6455 §7.1.1: the server closes TCP first; the client waits for it.
        if self.role == Role::Server || self.eof {
            self.shutdown = true;
        }
    }

    /// Queues the Close for a failure (unless ours was already sent) and makes it sticky.
    fn fail_with(&mut self, error: Error) -> Error {
        match (&self.state, &error) {
            (State::Open, _) => {
                if let Some(code) = error.close_code() {
                    let reason = error.to_string();
                    let reason = truncate_utf8(&reason, MAX_CLOSE_REASON);
                    let payload = ClosePayload::new(code, reason);
                    self.out.frame(Opcode::Close, true, 0, payload.as_bytes());
                }
            }
            // A server answers a failed handshake with the HTTP status it maps to.
            (State::ReadingRequest(_) | State::AwaitingAnswer { .. }, Error::Handshake(e)) => {
                handshake::write_error_response(self.out.raw(), e);
            }
            _ => {}
        }
        self.state = State::Failed(error.clone());
        self.shutdown = true;
        self.sending = None;
        self.timers = Timers::default();
        self.drop_input();
        error
    }

    // ----- commands ----------------------------------------------------------------------

    /// Queues a text message in one frame.
    ///
    /// # Errors
    /// [`UsageError::NotOpen`] unless open; [`UsageError::MessageInProgress`] during a
    /// fragmented send.
    pub fn send_text(&mut self, text: &str) -> Result<(), UsageError> {
        self.check_can_send_message()?;
        self.send_message(Opcode::Text, text.as_bytes());
        Ok(())
    }

    /// Queues a binary message in one frame.
    ///
    /// # Errors
    /// As [`send_text`](Self::send_text).
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), UsageError> {
        self.check_can_send_message()?;
        self.send_message(Opcode::Binary, data);
        Ok(())
    }

    /// A [`Sender`] for this connection: its `*_borrowed` sends let a server write a large
    /// payload from the caller's memory with one vectored write, without copying it into
    /// the output first.
    pub fn sender(&mut self) -> Sender<'_> {
        self.parts().1
    }

    /// Queues a whole message, compressed when permessage-deflate was agreed and it is
    /// large enough.
    fn send_message(&mut self, opcode: Opcode, payload: &[u8]) {
        self.parts().1.queue(opcode, payload);
    }

    fn should_compress(&self, len: usize) -> bool {
        #[cfg(feature = "deflate")]
        if let Some(codec) = &self.codec {
            return codec.should_compress(len);
        }
        let _ = len;
        false
    }

    /// Deflates `data` (only called when `should_compress` said so).
    fn compress(&mut self, data: &[u8], last: bool) -> Vec<u8> {
        let mut compressed = Vec::new();
        #[cfg(feature = "deflate")]
        if let Some(codec) = &mut self.codec {
            codec.deflate(data, &mut compressed, last);
        }
        #[cfg(not(feature = "deflate"))]
        let _ = (data, last, &mut compressed);
        compressed
    }

    fn check_can_send_message(&self) -> Result<(), UsageError> {
        self.check_open()?;
        if self.sending.is_some() {
            return Err(UsageError::MessageInProgress);
        }
        Ok(())
    }

    fn check_open(&self) -> Result<(), UsageError> {
        match self.state {
            State::Open => Ok(()),
            _ => Err(UsageError::NotOpen),
        }
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
        self.check_open()?;
        let (opcode, mut utf8, compressed) = match &self.sending {
            Some(sending) if sending.kind != kind => return Err(UsageError::FragmentKindMismatch),
            Some(sending) => (
                Opcode::Continuation,
                sending.utf8.clone(),
                sending.compressed,
            ),
            // A streamed message is compressed unless it is one small final fragment.
            None => (
                opcode_of(kind),
                Utf8Validator::default(),
                self.should_compress(if is_final { data.len() } else { usize::MAX }),
            ),
        };
        if kind == MessageKind::Text {
            utf8.feed(data).map_err(|_| UsageError::InvalidUtf8)?;
            if is_final {
                utf8.finish().map_err(|_| UsageError::InvalidUtf8)?;
            }
        }
        if compressed {
            // RFC 7692 §6.1: RSV1 on the first frame only; each fragment is flushed so the
            // peer can inflate it as it arrives.
            let rsv = if opcode == Opcode::Continuation {
                0
            } else {
                RSV1
            };
            let payload = self.compress(data, is_final);
            self.out.frame(opcode, is_final, rsv, &payload);
        } else {
            self.out.frame(opcode, is_final, 0, data);
        }
        self.sending = (!is_final).then_some(Sending {
            kind,
            utf8,
            compressed,
        });
        Ok(())
    }

    /// Queues a Ping (RFC 6455 §5.5.2).
    ///
    /// # Errors
    /// [`UsageError::NotOpen`]; [`UsageError::ControlPayloadTooLarge`] over 125 bytes.
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), UsageError> {
        self.send_control(Opcode::Ping, payload)
    }

    /// Queues an unsolicited Pong, a one-way heartbeat (RFC 6455 §5.5.3).
    ///
    /// # Errors
    /// As [`send_ping`](Self::send_ping).
    pub fn send_pong(&mut self, payload: &[u8]) -> Result<(), UsageError> {
        self.send_control(Opcode::Pong, payload)
    }

    fn send_control(&mut self, opcode: Opcode, payload: &[u8]) -> Result<(), UsageError> {
        self.check_open()?;
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(UsageError::ControlPayloadTooLarge(payload.len()));
        }
        self.out.frame(opcode, true, 0, payload);
        Ok(())
    }

    /// Starts the closing handshake (RFC 6455 §7.1.2): queues a Close, after which no message
    /// can be sent and incoming messages are dropped. [`Event::Closed`] follows the peer's
    /// Close. [`CloseCode::NO_STATUS_RECEIVED`] sends a Close without a body.
    ///
    /// # Errors
    /// [`UsageError::NotOpen`]; [`UsageError::InvalidCloseCode`];
    /// [`UsageError::CloseReasonTooLong`] over 123 bytes.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), UsageError> {
        self.check_open()?;
        check_close(code, reason)?;
        self.out.frame(
            Opcode::Close,
            true,
            0,
            ClosePayload::new(code, reason).as_bytes(),
        );
        self.state = State::CloseSent;
        self.sending = None;
        self.timers.keepalive_at = None;
        self.timers.pong_due_at = None;
        self.timers.activity = true;
        Ok(())
    }

    /// Fails the connection at once: queues a Close with `code` (unless one was sent) and
    /// asks to shut down without waiting for the peer. [`Event::Closed`] with `code` follows.
    ///
    /// # Errors
    /// [`UsageError::InvalidCloseCode`]; [`UsageError::CloseReasonTooLong`]. A connection
    /// already closed or failed is left as it is.
    pub fn fail(&mut self, code: CloseCode, reason: &str) -> Result<(), UsageError> {
        check_close(code, reason)?;
        match self.state {
            State::Open => {
                self.out.frame(
                    Opcode::Close,
                    true,
                    0,
                    ClosePayload::new(code, reason).as_bytes(),
                );
            }
            State::CloseSent
            | State::ReadingRequest(_)
            | State::AwaitingAnswer { .. }
            | State::ReadingResponse(_) => {}
            State::Closed { .. } | State::Failed(_) => return Ok(()),
        }
        self.enter_closed(code);
        self.shutdown = true;
        self.drop_input();
        Ok(())
    }

    // ----- output and queries ------------------------------------------------------------

    /// Bytes to write to the peer. Write some, then [`consume_output`](Self::consume_output).
    #[must_use]
    pub fn pending_output(&self) -> &[u8] {
        self.out.pending()
    }

    /// Marks the first `n` bytes of [`pending_output`](Self::pending_output) as written.
    ///
    /// # Panics
    /// If `n` exceeds the pending length.
    pub fn consume_output(&mut self, n: usize) {
        self.out.consume(n);
        if self.config.buffer_linger.is_none() {
            self.out.release_if_empty();
        }
    }

    /// Frees the buffers that hold no bytes still needed: the receive buffer once every
    /// byte is processed, the output once written, the inflate buffer between messages.
    ///
    /// The connection does this by itself `Config::buffer_linger` after they were emptied;
    /// call it to free them sooner, say before parking many idle connections.
    pub fn release_buffers(&mut self) {
        if self.live_start() == self.recv.filled() {
            self.recv.release();
            self.parse_pos = 0;
            if let Some(m) = &mut self.message {
                m.start = 0;
                m.end = 0;
            }
        }
        self.out.release_if_empty();
        #[cfg(feature = "deflate")]
        if self.inflated.is_empty() {
            self.inflated = Vec::new();
        }
        self.timers.release_at = None;
    }

    /// Whether emptied buffers are kept that `release_buffers` would free.
    fn holds_spare_buffers(&self) -> bool {
        #[cfg(feature = "deflate")]
        let inflated = self.inflated.is_empty() && self.inflated.capacity() > 0;
        #[cfg(not(feature = "deflate"))]
        let inflated = false;
        (self.recv.capacity() > 0 && self.live_start() == self.recv.filled())
            || (self.out.capacity() > 0 && self.out.pending().is_empty())
            || inflated
    }

    /// There are bytes to write.
    #[must_use]
    pub fn wants_write(&self) -> bool {
        !self.out.pending().is_empty()
    }

    /// The output is flushed and the driver should now close the stream (RFC 6455 §7.1.1).
    #[must_use]
    pub fn wants_shutdown(&self) -> bool {
        self.shutdown && !self.wants_write()
    }

    /// Bytes queued and not yet written, like the browser's `bufferedAmount`.
    #[must_use]
    pub fn buffered_amount(&self) -> usize {
        self.out.pending().len()
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
        let inflated = {
            #[cfg(feature = "deflate")]
            {
                self.inflated.capacity()
            }
            #[cfg(not(feature = "deflate"))]
            {
                0
            }
        };
        self.recv.capacity() + self.out.capacity() + inflated
    }

    // ----- timers ------------------------------------------------------------------------

    /// When [`handle_timeout`](Self::handle_timeout) must next be called, on the driver's
    /// clock (any monotonic origin it picks). `Some(Duration::ZERO)` means now: a timer needs
    /// the current time to be armed. `None`: no timer is running.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.shutdown {
            return None;
        }
        if self.needs_arming() || self.release_needs_arming() {
            return Some(Duration::ZERO);
        }
        let t = &self.timers;
        [
            t.keepalive_at,
            t.pong_due_at,
            t.close_at,
            t.handshake_at,
            t.release_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn needs_arming(&self) -> bool {
        let t = &self.timers;
        match self.state {
            State::ReadingRequest(_) | State::AwaitingAnswer { .. } | State::ReadingResponse(_) => {
                t.handshake_at.is_none() && self.config.handshake_timeout.is_some()
            }
            State::Open => {
                t.activity && t.pong_due_at.is_none() && self.config.keepalive_interval.is_some()
            }
            State::CloseSent => t.close_at.is_none() && self.config.close_timeout.is_some(),
            State::Closed { .. } => {
                !self.shutdown && t.close_at.is_none() && self.config.close_timeout.is_some()
            }
            State::Failed(_) => false,
        }
    }

    fn release_needs_arming(&self) -> bool {
        self.timers.release_at.is_none()
            && self.config.buffer_linger.is_some()
            && self.holds_spare_buffers()
    }

    /// Acts on the timers at time `now` (same clock as [`poll_timeout`](Self::poll_timeout)):
    /// sends the keepalive Ping, fails the connection when its Pong is overdue, gives up on a
    /// closing handshake. Calls before a deadline are harmless.
    pub fn handle_timeout(&mut self, now: Duration) {
        if self.needs_arming() {
            self.arm(now);
        }
        if self.release_needs_arming() {
            self.timers.release_at = self.config.buffer_linger.map(|d| now + d);
        }
        if self.timers.release_at.is_some_and(|due| now >= due) {
            self.release_buffers();
        }
        let t = &mut self.timers;
        if t.handshake_at.is_some_and(|due| now >= due) {
            self.fail_with(HandshakeError::Timeout.into());
            return;
        }
        if t.pong_due_at.is_some_and(|due| now >= due) {
            self.fail_with(Error::KeepaliveTimeout);
            return;
        }
        if t.keepalive_at.is_some_and(|due| now >= due) {
            t.keepalive_at = None;
            t.ping_payload = t.ping_payload.wrapping_add(1);
            let payload = t.ping_payload.to_be_bytes();
            self.out.frame(Opcode::Ping, true, 0, &payload);
            self.timers.pong_due_at = self.config.keepalive_timeout.map(|d| now + d);
        }
        if self.timers.close_at.is_some_and(|due| now >= due) {
            self.timers.close_at = None;
            if matches!(self.state, State::CloseSent) {
                self.enter_closed(CloseCode::ABNORMAL);
                self.drop_input();
            }
            // A client that waited for the server to close TCP gives up and closes it.
            self.shutdown = true;
        }
    }

    fn arm(&mut self, now: Duration) {
        let t = &mut self.timers;
        t.activity = false;
        match self.state {
            State::ReadingRequest(_) | State::AwaitingAnswer { .. } | State::ReadingResponse(_) => {
                t.handshake_at = self.config.handshake_timeout.map(|d| now + d);
            }
            State::Open => t.keepalive_at = self.config.keepalive_interval.map(|d| now + d),
            State::CloseSent | State::Closed { .. } => {
                t.close_at = self.config.close_timeout.map(|d| now + d);
            }
            State::Failed(_) => {}
        }
    }
}

/// Inflates one piece of a compressed message (or, with `last`, ends it) into `inflated`,
/// validating text as it comes out.
#[cfg(feature = "deflate")]
fn inflate_into(
    codec: Option<&mut Codec>,
    inflated: &mut Vec<u8>,
    message: &mut MessageProgress,
    input: &[u8],
    limit: usize,
    last: bool,
) -> Result<(), ProtocolError> {
    // RSV1 is allowed only once permessage-deflate was agreed, so the codec exists.
    let codec = codec.ok_or(ProtocolError::ReservedBits(RSV1))?;
    let before = inflated.len();
    let result = if last {
        codec.finish_inflate(inflated, limit)
    } else {
        codec.inflate(input, inflated, limit)
    };
    result.map_err(|e| match e {
        // RFC 7692 §8: the limit applies to the inflated message.
        InflateError::TooBig => ProtocolError::MessageTooLarge {
            len: inflated.len() as u64,
            max: limit,
        },
        InflateError::Corrupt => ProtocolError::InvalidCompressedData,
    })?;
    if message.kind == MessageKind::Text {
        message
            .utf8
            .feed(&inflated[before..])
            .map_err(|_| ProtocolError::InvalidUtf8)?;
    }
    Ok(())
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
    // `utf8::validate_complete` once unmasked. Nothing writes inside a message's bytes
    // afterwards (later frames are joined after its end, control frames are unmasked past
    // it). Both accept exactly the valid UTF-8 texts: the properties
    // `pieces_agree_with_core`, `simd_errors_match_core` and `complete_agrees_with_core` in
    // utf8.rs, and the chunking properties of the connection, check it, with debug
    // assertions on in tests.
    unsafe { core::str::from_utf8_unchecked(bytes) }
}

/// Runs the head scanner over at most `limit` received bytes, so an endless head is cut off.
fn scan_head(scanner: &mut HeadScanner, received: &[u8], limit: usize) -> Option<usize> {
    scanner.scan(&received[..received.len().min(limit)])
}

fn check_close(code: CloseCode, reason: &str) -> Result<(), UsageError> {
    if !code.is_sendable() && code != CloseCode::NO_STATUS_RECEIVED {
        return Err(UsageError::InvalidCloseCode(code.0));
    }
    if code == CloseCode::NO_STATUS_RECEIVED && !reason.is_empty() {
        return Err(UsageError::InvalidCloseCode(code.0));
    }
    if reason.len() > MAX_CLOSE_REASON {
        return Err(UsageError::CloseReasonTooLong(reason.len()));
    }
    Ok(())
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
