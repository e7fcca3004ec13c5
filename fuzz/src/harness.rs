//! The invariants every fuzz target checks on a `Connection`, and the input decoding they share.
//!
//! This file is compiled twice: as part of the fuzz crate, and by `tests/fuzz_regressions.rs`
//! (through `#[path]`), so every crash replays as a plain `cargo test`. It depends only on
//! `wsproto` and on crates `wsproto` already depends on (`httparse`, `sha1`, `base64`).
//!
//! What is checked, on every event and every error:
//! - reply before report: a peer's Ping is answered by exactly one Pong with its payload, a
//!   peer's Close by exactly one Close echoing its code, a protocol error by exactly one Close
//!   carrying `close_code()`, a bad request by one complete HTTP response with `status()` in
//!   400..=499, and nothing else is queued by `next_event`;
//! - every error maps to a sendable close code (protocol) or a 4xx (server handshake), and a
//!   client's handshake errors have no status and queue nothing;
//! - a failed connection stays failed: the same error again, `receive` is a no-op;
//! - no event after `Closed`, and `Close` is followed by `Closed` with the same code;
//! - the output after each round is bounded by what the peer sent plus one HTTP response and
//!   two Close frames; `heap_size()` is bounded by `max_message_size` + one read + the head
//!   limit.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest as _, Sha1};
use wsproto::internals::{MAX_CONTROL_PAYLOAD, has_partial_input};
use wsproto::{
    Accept, CloseCode, Config, Connection, ConnectionState, Error, Event, HandshakeError,
    MAX_CLOSE_REASON, MessageKind, PreparedMessage, ProtocolError, Request, Role, UsageError,
};

/// An echo of `payload` is one FIN frame: masked by a client, unmasked by a server, and
/// carrying `payload` itself unless it is compressed (RSV1).
fn check_echo_frame(frame: &[u8], payload: &[u8], role: Role) {
    assert!(frame.len() >= 2, "echo frame too short: {frame:02x?}");
    assert_eq!(frame[0] & 0x80, 0x80, "echo not FIN");
    assert!(
        matches!(frame[0] & 0x0f, 1 | 2),
        "echo opcode {:#x}",
        frame[0]
    );
    let masked = frame[1] & 0x80 != 0;
    assert_eq!(masked, role == Role::Client, "clients mask, servers do not");
    let (len, mut at) = match frame[1] & 0x7f {
        126 => (u64::from(u16::from_be_bytes([frame[2], frame[3]])), 4),
        127 => (
            u64::from_be_bytes(frame[2..10].try_into().expect("8 bytes")),
            10,
        ),
        short => (u64::from(short), 2),
    };
    let key = masked.then(|| {
        at += 4;
        <[u8; 4]>::try_from(&frame[at - 4..at]).expect("4 bytes")
    });
    let body = &frame[at..];
    assert_eq!(body.len() as u64, len, "echo length field");
    if frame[0] & 0x40 != 0 {
        return; // compressed: the bytes are deflate's, checked by the peer that inflates
    }
    let unmasked: Vec<u8> = match key {
        Some(key) => body
            .iter()
            .zip(key.iter().cycle())
            .map(|(b, k)| b ^ k)
            .collect(),
        None => body.to_vec(),
    };
    assert!(unmasked == payload, "echo payload differs");
}

/// RFC 6455 §1.3: the GUID appended to the key before hashing.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The largest Close or Pong frame a connection can queue: 125 bytes of payload, a 2-byte
/// header and, for a client, a 4-byte masking key.
pub const MAX_CONTROL_FRAME: usize = 2 + 4 + MAX_CONTROL_PAYLOAD;
/// Slack for one HTTP response (a 101 or a 4xx) on top of the request head it may echo.
pub const HTTP_RESPONSE_SLACK: usize = 512;
/// Slack on top of `max_message_size + read + max_head_size` for the receive buffer: a
/// partial frame header and a partial control frame held next to the message.
pub const RECV_SLACK: usize = 2 * (14 + MAX_CONTROL_PAYLOAD);
/// KNOWN BUG (tests/fuzz_regressions.rs, `recv_buffer_doubles_past_the_message_limit`): the
/// receive buffer grows by doubling, so it can hold twice the documented bound. Set this to 1
/// once `RecvBuffer::make_room` grows exactly; until then the fuzzers tolerate the factor so
/// that they keep looking for other bugs.
pub const RECV_GROWTH_FACTOR: usize = 1;

thread_local! {
    static GROWTH_FACTOR: core::cell::Cell<usize> = const { core::cell::Cell::new(RECV_GROWTH_FACTOR) };
    static STREAMING: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Runs `f` with `config_from` turning `Config::stream_messages` on (or off): the stream
/// targets run each input both ways and compare the transcripts.
pub fn with_streaming<R>(on: bool, f: impl FnOnce() -> R) -> R {
    let before = STREAMING.with(|s| s.replace(on));
    let result = f();
    STREAMING.with(|s| s.set(before));
    result
}

/// Checks the documented heap bound exactly (factor 1) on this thread, for the regression test
/// of the known bug.
pub fn strict_heap_bound() {
    GROWTH_FACTOR.with(|f| f.set(1));
}

// ----- input decoding ----------------------------------------------------------------------

/// Reads a fuzz input front to back; reads past the end give zeros and empty slices.
#[derive(Debug, Clone)]
pub struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self(data)
    }

    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    pub fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The first input byte picks how the rest is cut into `receive` calls: 0 hands it over in
/// one call, `n` in calls of `n` bytes (1 is a byte at a time).
pub fn chunk_size(byte: u8) -> usize {
    if byte == 0 {
        usize::MAX
    } else {
        usize::from(byte)
    }
}

/// A timer-free config whose limits the second input byte shrinks, so that small inputs reach
/// every limit: bits 0-1 `max_message_size` (1 MiB, 0, 125, 1000), bit 2 `max_frame_size` 64,
/// bit 3 three fragments per message, bit 4 no auto-Pong, bit 5 a 160-byte head limit, bit 6
/// four headers, bit 7 only `http://example.com` as origin.
pub fn config_from(byte: u8) -> Config {
    let mut config = quiet_config();
    config.stream_messages = STREAMING.with(core::cell::Cell::get);
    config.max_message_size = [1 << 20, 0, 125, 1000][usize::from(byte & 3)];
    if byte & 4 != 0 {
        config.max_frame_size = Some(64);
    }
    if byte & 8 != 0 {
        config.max_fragments_per_message = 3;
    }
    if byte & 16 != 0 {
        config.auto_pong = false;
    }
    if byte & 32 != 0 {
        config.max_head_size = 160;
    }
    if byte & 64 != 0 {
        config.max_headers = 4;
    }
    if byte & 128 != 0 {
        config.allowed_origins = Some(vec!["http://example.com".into()]);
    }
    config
}

/// The defaults without timers (time is not an input here) and with a small read buffer, so
/// `receive_buffer` is exercised with many short reads.
pub fn quiet_config() -> Config {
    let mut config = Config::default();
    config.keepalive_interval = None;
    config.keepalive_timeout = None;
    config.close_timeout = None;
    config.handshake_timeout = None;
    config.read_buffer_size = 64;
    config
}

/// What the application does, from the third input byte.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Server: reject the request (with a 4xx) instead of accepting it.
    /// Client: send the fuzz bytes as the whole response instead of after a valid 101.
    pub alternative: bool,
    /// Select the first subprotocol offered.
    pub subprotocol: bool,
    /// Hand bytes over through `receive_buffer` + `commit` instead of `receive`.
    pub use_buffer: bool,
    /// Signal EOF after the last byte.
    pub eof: bool,
    /// Echo every data message.
    pub echo: bool,
    /// Start the closing handshake after the first data message.
    pub close_after_first: bool,
    /// Client: leave the valid 101's header section open (no blank line), so the fuzz bytes
    /// add headers to an otherwise valid response (bit 6).
    pub open_head: bool,
    /// Server: reject with this 4xx (bits 6-7).
    pub status: u16,
}

impl Options {
    pub fn from_byte(byte: u8) -> Self {
        Self {
            alternative: byte & 1 != 0,
            subprotocol: byte & 2 != 0,
            use_buffer: byte & 4 != 0,
            eof: byte & 8 != 0,
            echo: byte & 16 != 0,
            close_after_first: byte & 32 != 0,
            open_head: byte & 64 != 0,
            status: [400, 401, 403, 404][usize::from(byte >> 6)],
        }
    }
}

/// Deterministic "entropy": 0x01, 0x02, 0x03, ...
pub fn counting_entropy() -> impl FnMut(&mut [u8]) + Send + 'static {
    let mut next = 0u8;
    move |dest: &mut [u8]| {
        for b in dest {
            next = next.wrapping_add(1);
            *b = next;
        }
    }
}

/// `Sec-WebSocket-Accept` for a key, computed here rather than trusted from the crate.
pub fn accept_value(key: &str) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key.as_bytes());
    sha1.update(GUID.as_bytes());
    STANDARD.encode(sha1.finalize())
}

// ----- owned events ------------------------------------------------------------------------

/// An owned copy of an event (or of the error that ended the transcript).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Request(Box<Request>),
    Accepted {
        status: u16,
        subprotocol: Option<String>,
    },
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(u16, String),
    Closed(u16),
    Error(Error),
}

impl Ev {
    fn from_event(event: &Event<'_>) -> Self {
        match event {
            Event::Request(request) => Ev::Request(Box::new((*request).clone())),
            Event::Accepted(response) => Ev::Accepted {
                status: response.status(),
                subprotocol: response.subprotocol().map(String::from),
            },
            Event::Text(text) => Ev::Text((*text).into()),
            Event::Binary(data) => Ev::Binary(data.to_vec()),
            Event::Ping(data) => Ev::Ping(data.to_vec()),
            Event::Pong(data) => Ev::Pong(data.to_vec()),
            Event::Close { code, reason } => Ev::Close(code.0, (*reason).into()),
            Event::Closed(code) => Ev::Closed(code.0),
            other => panic!("an event this harness does not know: {other:?}"),
        }
    }
}

/// Adds a streamed chunk to the message in progress, checking that every chunk but the
/// last has bytes and that a message keeps its kind; the whole message once `fin`.
fn join_chunk(
    message: &mut Option<(MessageKind, Vec<u8>)>,
    kind: MessageKind,
    chunk: &[u8],
    fin: bool,
) -> Option<Result<Option<Ev>, Error>> {
    assert!(fin || !chunk.is_empty(), "an empty chunk before the last");
    let (started, data) = message.get_or_insert_with(|| (kind, Vec::new()));
    assert_eq!(*started, kind, "a chunk of another kind inside a message");
    data.extend_from_slice(chunk);
    if !fin {
        return None;
    }
    let (kind, data) = message.take().expect("inserted above");
    Some(Ok(Some(match kind {
        MessageKind::Text => Ev::Text(String::from_utf8(data).expect("chunks are UTF-8")),
        MessageKind::Binary => Ev::Binary(data),
    })))
}

// ----- an independent frame decoder, to check what the connection queued ---------------------

/// One frame decoded without the crate's `FrameHeader`: FIN, RSV, opcode, whether it was
/// masked, the unmasked payload, and its total length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireFrame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
    pub len: usize,
}

/// Decodes the frame at the start of `bytes`, or `None` if it is not all there.
pub fn decode_frame(bytes: &[u8]) -> Option<WireFrame> {
    let (&b0, rest) = bytes.split_first()?;
    let (&b1, mut rest) = rest.split_first()?;
    let mut len = 2;
    let payload_len = match b1 & 0x7F {
        126 => {
            let (n, tail) = rest.split_first_chunk::<2>()?;
            rest = tail;
            len += 2;
            u64::from(u16::from_be_bytes(*n))
        }
        127 => {
            let (n, tail) = rest.split_first_chunk::<8>()?;
            rest = tail;
            len += 8;
            u64::from_be_bytes(*n)
        }
        n => u64::from(n),
    };
    let masked = b1 & 0x80 != 0;
    let key = if masked {
        let (key, tail) = rest.split_first_chunk::<4>()?;
        rest = tail;
        len += 4;
        Some(*key)
    } else {
        None
    };
    let payload_len = usize::try_from(payload_len).ok()?;
    let mut payload = rest.get(..payload_len)?.to_vec();
    if let Some(key) = key {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    Some(WireFrame {
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 7,
        opcode: b0 & 0x0F,
        masked,
        payload,
        len: len + payload_len,
    })
}

/// Checks that `bytes` is exactly one control frame with `opcode` and `payload`, masked iff
/// it was sent by a client.
fn assert_one_control_frame(bytes: &[u8], role: Role, opcode: u8, payload: &[u8], what: &str) {
    let frame = decode_frame(bytes)
        .unwrap_or_else(|| panic!("{what}: expected one frame, queued {bytes:02x?}"));
    assert_eq!(frame.len, bytes.len(), "{what}: more than one frame queued");
    assert!(frame.fin && frame.rsv == 0, "{what}: {frame:?}");
    assert_eq!(frame.opcode, opcode, "{what}: wrong opcode");
    assert_eq!(
        frame.masked,
        role == Role::Client,
        "{what}: masking by role"
    );
    assert_eq!(frame.payload, payload, "{what}: wrong payload");
    // The shortest length form (RFC 6455 §5.2).
    let header = 2 + if frame.masked { 4 } else { 0 };
    assert_eq!(
        frame.len,
        header + payload.len(),
        "{what}: non-minimal length"
    );
}

/// Checks that `bytes` is one Close frame with `code` and some UTF-8 reason; returns it.
fn assert_close_frame(bytes: &[u8], role: Role, code: CloseCode, what: &str) -> String {
    let frame = decode_frame(bytes)
        .unwrap_or_else(|| panic!("{what}: expected a Close frame, queued {bytes:02x?}"));
    let reason = frame.payload.get(2..).unwrap_or_default();
    assert!(reason.len() <= MAX_CLOSE_REASON, "{what}: reason too long");
    let reason = core::str::from_utf8(reason)
        .unwrap_or_else(|_| panic!("{what}: the reason is not UTF-8: {reason:02x?}"));
    let mut payload = code.0.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    assert_one_control_frame(bytes, role, 0x8, &payload, what);
    reason.into()
}

/// Parses `bytes` as exactly one HTTP/1.1 response with `status`; returns its headers.
pub fn assert_http_response(bytes: &[u8], status: u16) -> Vec<(String, Vec<u8>)> {
    let text = || String::from_utf8_lossy(bytes).into_owned();
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut slots);
    let head_len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!("queued response is not HTTP: {other:?}\n{}", text()),
    };
    assert_eq!(response.version, Some(1), "{}", text());
    assert_eq!(response.code, Some(status), "{}", text());
    let headers: Vec<(String, Vec<u8>)> = response
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    };
    let body = &bytes[head_len..];
    if status == 101 {
        assert!(body.is_empty(), "bytes after the 101 head: {}", text());
    } else {
        let declared = header("content-length").expect("Content-Length on an error response");
        assert_eq!(declared, body.len().to_string().as_bytes(), "{}", text());
        assert_eq!(
            header("connection").map(|c| c.ends_with(b"close")),
            Some(true)
        );
        if status == 426 {
            assert_eq!(header("sec-websocket-version"), Some(b"13".as_slice()));
        }
        if status == 405 {
            assert_eq!(header("allow"), Some(b"GET".as_slice()));
        }
    }
    headers
}

// ----- the driven connection ---------------------------------------------------------------

/// A connection driven like a real driver would (receive, drain events, write all output),
/// checking the invariants at every step and recording the transcript.
pub struct Driven {
    pub conn: Connection,
    role: Role,
    config: Config,
    pub transcript: Vec<Ev>,
    /// The largest single hand-over so far (one read).
    max_read: usize,
    /// The most output pending at once so far: an emptied output buffer keeps that much.
    max_pending: usize,
    /// Where the automatic Pong that waits is in the pending output (offset, length) while
    /// none of it is written: the connection replaces it with the next one.
    last_pong: Option<(usize, usize)>,
    /// Rounds ended so far; every other one frees the emptied buffers, so that both the
    /// kept and the freed buffers are exercised.
    rounds: usize,
    /// Messages echoed through `next_event_with_sender` with `send_*_borrowed`.
    pub echoed_by_reference: usize,
    /// Of those, the ones whose payload the sender lent rather than copied.
    pub echoes_lent: usize,
    /// Messages echoed by `echo`, and of those, as a `PreparedMessage`.
    echo_calls: usize,
    pub echoes_prepared: usize,
    /// Bytes received and written in the current round.
    round_in: usize,
    round_app: usize,
    /// Bytes the application queued with its own commands (sends, close, accept, reject).
    app_out: usize,
    eof: bool,
    we_closed: bool,
    answered: bool,
    rejected: Option<u16>,
    subprotocol: Option<String>,
    close_code: Option<u16>,
    closed: Option<u16>,
    failed: Option<Error>,
    /// Streaming: the message whose chunks arrived so far.
    chunks: Option<(MessageKind, Vec<u8>)>,
}

impl Driven {
    pub fn new(conn: Connection) -> Self {
        Self {
            role: conn.role(),
            config: conn.config().clone(),
            conn,
            transcript: Vec::new(),
            max_read: 0,
            max_pending: 0,
            last_pong: None,
            rounds: 0,
            echoed_by_reference: 0,
            echoes_lent: 0,
            echo_calls: 0,
            echoes_prepared: 0,
            round_in: 0,
            round_app: 0,
            app_out: 0,
            eof: false,
            we_closed: false,
            answered: false,
            rejected: None,
            subprotocol: None,
            close_code: None,
            closed: None,
            failed: None,
            chunks: None,
        }
    }

    /// Whether messages come in chunks (`Config::stream_messages`).
    pub fn streams(&self) -> bool {
        self.config.stream_messages
    }

    /// No more input is used: the connection failed, closed or saw EOF.
    fn inert(&self) -> bool {
        self.eof || self.failed.is_some() || self.closed.is_some()
    }

    /// Rounds ended so far.
    pub fn rounds(&self) -> usize {
        self.rounds
    }

    pub fn is_done(&self) -> bool {
        self.failed.is_some() || self.closed.is_some()
    }

    /// The application's first subprotocol choice, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// Hands `bytes` over as one read, through `receive` or `receive_buffer` + `commit`.
    pub fn feed(&mut self, bytes: &[u8], use_buffer: bool) {
        let inert = self.inert();
        let out_before = self.conn.pending_output().len();
        let heap_before = self.conn.heap_size();
        if use_buffer {
            let mut rest = bytes;
            while !rest.is_empty() {
                // A large frame in progress: part of it is here, or (compressed or
                // streamed) was used already.
                let in_frame = has_partial_input(&self.conn)
                    || self.conn.is_deflate_negotiated()
                    || self.streams();
                let room = self.conn.receive_buffer();
                if inert {
                    assert!(room.is_empty(), "receive_buffer lends room after the end");
                    break;
                }
                // Shorter only where a large frame ends.
                assert!(
                    room.len() >= self.config.read_buffer_size || (in_frame && !room.is_empty()),
                    "short receive_buffer"
                );
                let n = room.len().min(rest.len());
                room[..n].copy_from_slice(&rest[..n]);
                self.conn.commit(n);
                rest = &rest[n..];
            }
            self.max_read = self.max_read.max(self.config.read_buffer_size);
        } else {
            self.conn.receive(bytes);
        }
        self.max_read = self.max_read.max(bytes.len());
        self.round_in += bytes.len();
        if inert {
            assert_eq!(
                self.conn.pending_output().len(),
                out_before,
                "receive after the end"
            );
            assert_eq!(
                self.conn.heap_size(),
                heap_before,
                "receive after the end kept bytes"
            );
        }
        self.check_heap(false);
    }

    pub fn feed_eof(&mut self) {
        self.conn.receive_eof();
        self.eof = true;
    }

    /// Pulls events until `Ok(None)` or an error, checking each; returns the new ones.
    pub fn drain(&mut self) -> Vec<Ev> {
        let mut events = Vec::new();
        while let Some(ev) = self.next_checked() {
            events.push(ev);
        }
        events
    }

    /// One `next_event`, checked: the event or the (first) error, or `None` when the
    /// connection needs input or has already reported its error.
    ///
    /// Streaming, the chunks of a message are checked and joined, and the message is
    /// reported whole at its last chunk, so that transcripts compare with whole messages.
    pub fn next_checked(&mut self) -> Option<Ev> {
        loop {
            let before = self.conn.pending_output().to_vec();
            let state_before = self.conn.state();
            let result = match self.conn.next_event() {
                Ok(Some(Event::TextChunk { text, fin })) => {
                    join_chunk(&mut self.chunks, MessageKind::Text, text.as_bytes(), fin)
                }
                Ok(Some(Event::BinaryChunk { data, fin })) => {
                    join_chunk(&mut self.chunks, MessageKind::Binary, data, fin)
                }
                other => Some(other.map(|e| e.as_ref().map(Ev::from_event))),
            };
            let Some(result) = result else {
                // A chunk before the last: it queues nothing, and comes only while data may.
                assert_eq!(
                    self.conn.pending_output(),
                    &before[..],
                    "a chunk queued output"
                );
                assert!(
                    matches!(
                        self.conn.state(),
                        ConnectionState::Open | ConnectionState::Closing
                    ),
                    "a chunk while {:?}",
                    self.conn.state()
                );
                let held = self.chunks.as_ref().map_or(0, |(_, data)| data.len());
                assert!(
                    held <= self.config.max_message_size,
                    "chunks past the limit"
                );
                continue;
            };
            return self.check_next_queued(result, &before, state_before);
        }
    }

    /// `check_next` for an event whose output is checked as queued, `before` being the
    /// pending output before it: a Ping's Pong goes through the Pong model (appended, or in
    /// place of the last waiting one), anything else is appended.
    fn check_next_queued(
        &mut self,
        result: Result<Option<Ev>, Error>,
        before: &[u8],
        state_before: ConnectionState,
    ) -> Option<Ev> {
        if let Ok(Some(Ev::Ping(payload))) = &result
            && self.config.auto_pong
        {
            self.check_pong(before, payload);
            return self.check_next(result, &[], state_before);
        }
        let new = self.conn.pending_output()[before.len()..].to_vec();
        self.check_next(result, &new, state_before)
    }

    /// The output after a Ping: `before` with one Pong carrying `payload` at the end, the
    /// Pong that waited whole taken out.
    fn check_pong(&mut self, before: &[u8], payload: &[u8]) {
        let pong_len = 2 + if self.role == Role::Client { 4 } else { 0 } + payload.len();
        let expected_prefix = match self.last_pong {
            Some((at, len)) => [&before[..at], &before[at + len..]].concat(),
            None => before.to_vec(),
        };
        let out = self.conn.pending_output();
        assert_eq!(
            out.len(),
            expected_prefix.len() + pong_len,
            "the output after a Ping"
        );
        assert_eq!(&out[..expected_prefix.len()], &expected_prefix[..]);
        assert_one_control_frame(
            &out[expected_prefix.len()..],
            self.role,
            0xA,
            payload,
            "Pong for a Ping",
        );
        self.last_pong = Some((expected_prefix.len(), pong_len));
        assert!(self.conn.pong_waiting(), "a Pong waits after a Ping");
    }

    /// Follows the Pong model as `n` bytes of output are written.
    fn output_written(&mut self, n: usize) {
        self.last_pong = match self.last_pong {
            Some((at, len)) if at >= n => Some((at - n, len)),
            _ => None,
        };
        if self.conn.pending_output().is_empty() {
            self.last_pong = None;
        }
        assert_eq!(
            self.conn.pong_waiting(),
            self.last_pong.is_some(),
            "pong_waiting() after {n} bytes were written"
        );
    }

    /// `next_checked` through `next_event_with_sender`, as the echo examples run: a data
    /// message is echoed by reference from the receive buffer (`send_*_borrowed`), and the
    /// first `written` bytes of the output are written through the sender before it is
    /// dropped. Checks that the echo is one frame carrying the payload, that the sender's
    /// two slices are the output byte for byte, and that dropping it leaves exactly the
    /// unwritten rest queued.
    pub fn next_checked_echoing(&mut self, written: usize) -> Option<Ev> {
        let before_bytes = self.conn.pending_output().to_vec();
        let before = before_bytes.len();
        let state_before = self.conn.state();
        let mut echo = None;
        let result = match self.conn.next_event_with_sender() {
            Ok(Some((event, mut sender))) => {
                let ev = Ev::from_event(&event);
                let [queued, lent] = sender.pending_output();
                assert!(lent.is_empty(), "a payload lent before any send");
                let event_end = queued.len();
                let sent = match event {
                    Event::Text(text) => Some(sender.send_text_borrowed(text)),
                    Event::Binary(data) => Some(sender.send_binary_borrowed(data)),
                    _ => None,
                };
                let lent = sender.pending_output()[1].len();
                let full = sender.pending_output().concat();
                // Only an echo is written here: other events' output is checked as queued.
                let k = if sent.is_some() {
                    written.min(full.len())
                } else {
                    0
                };
                sender.consume_output(k);
                drop(sender);
                echo = sent.map(|sent| (sent, full, event_end, k, lent));
                Ok(Some(ev))
            }
            Ok(None) => Ok(None),
            Err(error) => Err(error),
        };
        let Some((sent, full, event_end, k, lent)) = echo else {
            return self.check_next_queued(result, &before_bytes, state_before);
        };
        self.output_written(k);
        assert_eq!(
            self.conn.pending_output(),
            &full[k..],
            "the unwritten rest, after the sender dropped"
        );
        let reported = self.check_next(result, &full[before..event_end], state_before);
        let Some(Ev::Text(_) | Ev::Binary(_)) = &reported else {
            unreachable!("only data messages are echoed");
        };
        let reply = &full[event_end..];
        match sent {
            Ok(()) => {
                assert_eq!(
                    self.conn.state(),
                    ConnectionState::Open,
                    "echo while not open"
                );
                self.check_send_result(&Ok(()), true, event_end, "echo by reference");
                let payload = match reported.as_ref() {
                    Some(Ev::Text(text)) => text.as_bytes(),
                    Some(Ev::Binary(data)) => data.as_slice(),
                    _ => unreachable!(),
                };
                check_echo_frame(reply, payload, self.role);
                // Lent exactly when it can go out as it is: a server's uncompressed payload
                // of at least 1 KiB (the sender's threshold).
                let lendable = self.role == Role::Server
                    && !self.conn.is_deflate_negotiated()
                    && payload.len() >= 1024;
                assert_eq!(lent > 0, lendable, "lent {lent} of {} bytes", payload.len());
                if lendable {
                    assert_eq!(lent, payload.len(), "the whole payload is lent");
                    self.echoes_lent += 1;
                }
                self.echoed_by_reference += 1;
                self.app_out += reply.len();
                self.round_app += reply.len();
            }
            Err(e) => {
                assert!(reply.is_empty(), "{e} queued output");
                let open = self.conn.state() == ConnectionState::Open;
                self.check_send_result(&Err(e), open, event_end, "echo by reference");
            }
        }
        reported
    }

    fn check_next(
        &mut self,
        result: Result<Option<Ev>, Error>,
        new: &[u8],
        state_before: ConnectionState,
    ) -> Option<Ev> {
        match result {
            Ok(None) => {
                assert!(new.is_empty(), "output queued without an event: {new:02x?}");
                assert!(
                    self.close_code.is_none() || self.closed.is_some(),
                    "Close not followed by Closed"
                );
                None
            }
            Ok(Some(ev)) => {
                assert!(self.closed.is_none(), "event after Closed: {ev:?}");
                assert!(self.failed.is_none(), "event after an error: {ev:?}");
                self.check_event(&ev, new, state_before);
                self.transcript.push(ev.clone());
                Some(ev)
            }
            Err(error) => {
                if let Some(failed) = &self.failed {
                    assert_eq!(&error, failed, "the error changed");
                    assert!(new.is_empty(), "output queued by a failed connection");
                    return None;
                }
                assert!(self.closed.is_none(), "error after Closed: {error}");
                self.check_error(&error, new, state_before);
                self.failed = Some(error.clone());
                self.transcript.push(Ev::Error(error.clone()));
                self.check_sticky();
                Some(Ev::Error(error))
            }
        }
    }

    fn check_event(&mut self, ev: &Ev, new: &[u8], state_before: ConnectionState) {
        let state = self.conn.state();
        match ev {
            Ev::Request(request) => {
                assert_eq!(self.role, Role::Server);
                assert!(self.transcript.is_empty(), "a second Request");
                assert_eq!(state, ConnectionState::Connecting);
                assert!(new.is_empty());
                check_request(request, &self.config);
            }
            Ev::Accepted {
                status,
                subprotocol,
            } => {
                assert_eq!(self.role, Role::Client);
                assert!(self.transcript.is_empty(), "a second Accepted");
                assert_eq!(*status, 101);
                assert_eq!(state, ConnectionState::Open);
                assert_eq!(self.conn.subprotocol(), subprotocol.as_deref());
                assert!(new.is_empty());
            }
            Ev::Text(_) | Ev::Binary(_) => {
                let len = match ev {
                    Ev::Text(t) => t.len(),
                    Ev::Binary(b) => b.len(),
                    _ => unreachable!(),
                };
                assert!(
                    len <= self.config.max_message_size,
                    "message over the limit"
                );
                // Data is delivered while open and after our Close (the peer sends until it
                // sees it); never once the closing handshake is over.
                assert!(
                    matches!(state, ConnectionState::Open | ConnectionState::Closing),
                    "data reported while {state:?}"
                );
                assert!(new.is_empty(), "data message queued output");
            }
            Ev::Ping(payload) => {
                assert!(payload.len() <= MAX_CONTROL_PAYLOAD);
                // The Pong was checked against the model (`check_pong`).
                if !self.config.auto_pong {
                    assert!(new.is_empty(), "Pong queued without auto_pong");
                }
            }
            Ev::Pong(payload) => {
                assert!(payload.len() <= MAX_CONTROL_PAYLOAD);
                assert!(new.is_empty());
            }
            Ev::Close(code, reason) => {
                let code = CloseCode(*code);
                assert!(code.is_sendable() || code == CloseCode::NO_STATUS_RECEIVED);
                assert!(reason.len() <= MAX_CLOSE_REASON);
                assert!(code != CloseCode::NO_STATUS_RECEIVED || reason.is_empty());
                assert_eq!(state, ConnectionState::Closed);
                if state_before == ConnectionState::Open {
                    // RFC 6455 §5.5.1: echo the code (and here the reason).
                    let payload = if code == CloseCode::NO_STATUS_RECEIVED {
                        Vec::new()
                    } else {
                        [&code.0.to_be_bytes()[..], reason.as_bytes()].concat()
                    };
                    assert_one_control_frame(new, self.role, 0x8, &payload, "Close echo");
                } else {
                    assert_eq!(state_before, ConnectionState::Closing);
                    assert!(new.is_empty(), "a second Close queued");
                }
                self.close_code = Some(code.0);
            }
            Ev::Closed(code) => {
                match self.close_code {
                    Some(close) => assert_eq!(*code, close, "Closed code differs from Close"),
                    None => assert_eq!(*code, CloseCode::ABNORMAL.0, "Closed without a Close"),
                }
                assert_eq!(state, ConnectionState::Closed);
                assert!(new.is_empty());
                self.closed = Some(*code);
            }
            Ev::Error(_) => unreachable!("errors are not events"),
        }
    }

    fn check_error(&mut self, error: &Error, new: &[u8], state_before: ConnectionState) {
        assert_eq!(
            self.conn.state(),
            ConnectionState::Closed,
            "failed but {error}"
        );
        match error {
            Error::Protocol(e) => {
                let code = e.close_code();
                assert!(code.is_sendable(), "{e} maps to unsendable {code:?}");
                assert_eq!(error.close_code(), Some(code));
                check_protocol_error_shape(e, &self.config);
                if state_before == ConnectionState::Open {
                    // Reply before report: the Close with the mapped code is queued.
                    let reason = assert_close_frame(new, self.role, code, "Close for an error");
                    assert!(error.to_string().starts_with(&reason), "reason {reason:?}");
                } else {
                    assert_eq!(state_before, ConnectionState::Closing);
                    assert!(new.is_empty(), "a second Close queued for {e}");
                }
            }
            Error::Handshake(HandshakeError::Rejected { status }) => {
                assert_eq!(self.rejected, Some(*status), "Rejected without reject()");
                assert!(new.is_empty());
            }
            Error::Handshake(e) => {
                assert_eq!(error.close_code(), None);
                assert_eq!(
                    state_before,
                    ConnectionState::Connecting,
                    "{e} after the handshake"
                );
                match self.role {
                    Role::Server => {
                        let status = e.status().unwrap_or_else(|| panic!("{e} has no status"));
                        assert!((400..=499).contains(&status), "{e} maps to {status}");
                        assert_http_response(new, status);
                        if status == 431 {
                            assert!(matches!(
                                e,
                                HandshakeError::HeadTooLarge | HandshakeError::TooManyHeaders
                            ));
                        }
                        if self.config.allowed_origins.is_none() {
                            assert_ne!(e, &HandshakeError::OriginNotAllowed);
                        }
                    }
                    Role::Client => {
                        assert_eq!(e.status(), None, "client error {e} has a status");
                        assert!(new.is_empty(), "a client answered a bad response");
                    }
                }
            }
            Error::KeepaliveTimeout => panic!("keepalive timeout without timers"),
            other => panic!("an error this harness does not know: {other:?}"),
        }
    }

    /// After an error: the same error again, `receive` does nothing, still the same error.
    fn check_sticky(&mut self) {
        let failed = self.failed.clone().expect("called after an error");
        let out = self.conn.pending_output().len();
        assert_eq!(self.conn.next_event().err(), Some(failed.clone()));
        self.conn.receive(b"\x88\x80\0\0\0\0GET / HTTP/1.1\r\n\r\n");
        assert_eq!(self.conn.next_event().err(), Some(failed));
        assert_eq!(
            self.conn.pending_output().len(),
            out,
            "a failed connection queued output"
        );
        assert!(self.conn.receive_buffer().is_empty());
        assert_eq!(self.conn.state(), ConnectionState::Closed);
    }

    /// Server: answers the reported request as `options` say. Returns whether it was accepted.
    pub fn answer(&mut self, options: &Options) -> bool {
        let Some(Ev::Request(request)) = self.transcript.first().cloned() else {
            panic!("answer without a request");
        };
        assert!(!self.answered, "answered twice");
        self.answered = true;
        let before = self.conn.pending_output().len();
        if options.alternative {
            let result = self
                .conn
                .reject(options.status, &[("X-Fuzz", "rejected")], b"no\n");
            assert_eq!(result, Ok(()));
            let new = &self.conn.pending_output()[before..];
            assert_http_response(new, options.status);
            self.rejected = Some(options.status);
            self.app_out += new.len();
            self.round_app += new.len();
            assert_eq!(self.conn.state(), ConnectionState::Closed);
            return false;
        }
        let mut accept = Accept::new();
        let chosen = request
            .subprotocols()
            .first()
            .filter(|_| options.subprotocol);
        if let Some(chosen) = chosen {
            accept = accept.subprotocol(chosen);
        }
        assert_eq!(self.conn.accept(accept), Ok(()));
        let new = self.conn.pending_output()[before..].to_vec();
        let headers = assert_http_response(&new, 101);
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_slice())
        };
        assert_eq!(header("upgrade"), Some(b"websocket".as_slice()));
        assert_eq!(header("connection"), Some(b"Upgrade".as_slice()));
        let expected = accept_value(request.key());
        assert_eq!(header("sec-websocket-accept"), Some(expected.as_bytes()));
        assert_eq!(
            header("sec-websocket-protocol"),
            chosen.map(|c| c.as_bytes())
        );
        assert_eq!(self.conn.subprotocol(), chosen.map(String::as_str));
        self.subprotocol = chosen.cloned();
        assert_eq!(self.conn.state(), ConnectionState::Open);
        // A second answer is refused without output.
        let out = self.conn.pending_output().len();
        assert_eq!(
            self.conn.accept(Accept::new()),
            Err(UsageError::NoRequestToAnswer)
        );
        assert_eq!(
            self.conn.reject(400, &[], b""),
            Err(UsageError::NoRequestToAnswer)
        );
        assert_eq!(self.conn.pending_output().len(), out);
        self.app_out += new.len();
        self.round_app += new.len();
        true
    }

    /// Runs an application command, checking that an error leaves the output untouched.
    pub fn command(
        &mut self,
        f: impl FnOnce(&mut Connection) -> Result<(), UsageError>,
    ) -> Result<(), UsageError> {
        let before = self.conn.pending_output().len();
        let state = self.conn.state();
        let result = f(&mut self.conn);
        let after = self.conn.pending_output().len();
        match &result {
            Ok(()) => {
                self.app_out += after - before;
                self.round_app += after - before;
            }
            Err(e) => {
                assert_eq!(after, before, "{e} queued output");
                assert_eq!(self.conn.state(), state, "{e} changed the state");
                if state != ConnectionState::Open {
                    assert_eq!(e, &UsageError::NotOpen);
                }
            }
        }
        result
    }

    /// The application echoes a data message (as an echo server would): copied, or, every
    /// other time, as a `PreparedMessage` (a broadcast's path), whose frame must carry the
    /// payload as the copy's does.
    pub fn echo(&mut self, ev: &Ev) {
        let open = self.conn.state() == ConnectionState::Open;
        let buffered = self.conn.buffered_amount();
        self.echo_calls += 1;
        let prepared = self.echo_calls.is_multiple_of(2);
        let (result, payload) = match ev {
            Ev::Text(text) if prepared => {
                let message = PreparedMessage::text(text);
                (self.command(|c| c.send_prepared(&message)), text.as_bytes())
            }
            Ev::Binary(data) if prepared => {
                let message = PreparedMessage::binary(data);
                (self.command(|c| c.send_prepared(&message)), data.as_slice())
            }
            Ev::Text(text) => (self.command(|c| c.send_text(text)), text.as_bytes()),
            Ev::Binary(data) => (self.command(|c| c.send_binary(data)), data.as_slice()),
            _ => return,
        };
        self.check_send_result(&result, open, buffered, "echo");
        if result.is_ok() {
            check_echo_frame(&self.conn.pending_output()[buffered..], payload, self.role);
            if prepared {
                self.echoes_prepared += 1;
            }
        }
    }

    /// A message send succeeds exactly when the connection is open and its output under the
    /// high-water mark; at the mark it is refused with `OutputFull` and what was buffered.
    fn check_send_result(
        &self,
        result: &Result<(), UsageError>,
        open: bool,
        buffered: usize,
        what: &str,
    ) {
        let full = self
            .config
            .output_high_water
            .is_some_and(|mark| buffered >= mark);
        match result {
            Err(UsageError::OutputFull { buffered: said }) => {
                assert!(open && full, "{what}: {result:?}");
                assert_eq!(*said, buffered, "{what}");
            }
            _ => assert_eq!(result.is_ok(), open && !full, "{what}: {result:?}"),
        }
    }

    /// The application starts the closing handshake.
    pub fn close(&mut self) {
        let open = self.conn.state() == ConnectionState::Open;
        let result = self.command(|c| c.close(CloseCode::NORMAL, "bye"));
        assert_eq!(result.is_ok(), open, "close: {result:?}");
        if result.is_ok() {
            self.we_closed = true;
            assert_eq!(self.conn.state(), ConnectionState::Closing);
        }
    }

    /// Ends a round like a driver: checks the output and memory bounds, writes everything.
    pub fn end_round(&mut self) {
        let pending = self.conn.pending_output().len();
        self.max_pending = self.max_pending.max(pending);
        assert_eq!(self.conn.buffered_amount(), pending);
        assert_eq!(self.conn.wants_write(), pending > 0);
        // A Pong is at most as long as its Ping for a server; a client's masked Pong may be
        // 4 bytes longer than an unmasked 2-byte Ping: at most three times as long.
        let factor = if self.role == Role::Server { 1 } else { 3 };
        let bound = factor * (self.round_in + MAX_CONTROL_FRAME)
            + 2 * MAX_CONTROL_FRAME
            + HTTP_RESPONSE_SLACK
            + self.config.max_head_size
            + self.round_app;
        assert!(
            pending <= bound,
            "pending output {pending} > {bound} after {} bytes in",
            self.round_in
        );
        self.check_heap(true);
        self.conn.consume_output(pending);
        self.output_written(pending);
        assert!(!self.conn.wants_write());
        self.check_heap(false);
        self.rounds += 1;
        if self.rounds.is_multiple_of(2) {
            let held = self.conn.heap_size();
            self.conn.release_buffers();
            assert!(
                self.conn.heap_size() <= held,
                "release_buffers grew the heap"
            );
            // (A compressed message in progress keeps its inflated part.)
            if !has_partial_input(&self.conn) && !self.conn.is_deflate_negotiated() {
                assert_eq!(
                    self.conn.heap_size(),
                    0,
                    "buffers left after release_buffers with no input in progress"
                );
            }
        }
        if self.failed.is_some() || (self.closed.is_some() && self.role == Role::Server) {
            // RFC 6455 §7.1.1: the server closes TCP first; a failed connection is done.
            assert!(
                self.conn.wants_shutdown(),
                "failed or closed but no shutdown"
            );
        }
        if self.conn.state() == ConnectionState::Open && !self.eof {
            assert!(!self.conn.wants_shutdown(), "open but wants shutdown");
        }
        self.round_in = 0;
        self.round_app = 0;
    }

    /// `heap_size()` ≤ `max_message_size` + one read + the head limit + slack, plus the output
    /// buffer when it still holds bytes.
    fn check_heap(&self, with_output: bool) {
        let heap = self.conn.heap_size();
        // Streamed messages hold no more than a chunk, which is at most a read.
        let held = if self.streams() {
            self.config.read_buffer_size
        } else {
            self.config.max_message_size
        };
        let recv_bound = GROWTH_FACTOR.with(core::cell::Cell::get)
            * (held
                // One read: the larger of what `receive_buffer` offers (the buffer may grow
                // to it even when the reads made are smaller) and the largest `receive`.
                + self.max_read.max(self.config.read_buffer_size).min(1 << 20)
                + self.config.max_head_size
                + RECV_SLACK);
        // An emptied output buffer keeps the memory of the most output pending at once.
        let out_bound = if with_output {
            2 * self.conn.pending_output().len().max(self.max_pending) + 64
        } else {
            2 * self.max_pending + 64
        };
        assert!(
            heap <= recv_bound + out_bound,
            "heap_size {heap} > {recv_bound} + {out_bound} (max_message_size {}, read {}, head {})",
            self.config.max_message_size,
            self.max_read,
            self.config.max_head_size
        );
    }
}

/// A reported request passed RFC 6455 §4.2.1.
fn check_request(request: &Request, config: &Config) {
    assert_eq!(request.method(), "GET");
    assert!(request.path().starts_with('/'), "path {:?}", request.path());
    assert!(!request.target().contains('#'));
    assert!(!request.host().is_empty());
    let nonce = STANDARD.decode(request.key()).expect("key is base64");
    assert_eq!(nonce.len(), 16, "key is not 16 bytes");
    for p in request.subprotocols() {
        assert!(
            !p.is_empty() && !p.contains(',') && p.trim() == p,
            "subprotocol {p:?}"
        );
    }
    if let Some(allowed) = &config.allowed_origins {
        let origin = request.origin().expect("origin checked");
        assert!(allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)));
    }
}

/// Errors that carry numbers carry the right ones.
fn check_protocol_error_shape(e: &ProtocolError, config: &Config) {
    match e {
        ProtocolError::ControlFrameTooLong(len) => assert!(*len > MAX_CONTROL_PAYLOAD as u64),
        ProtocolError::FrameTooLarge { len, max } => {
            assert_eq!(Some(*max), config.max_frame_size);
            assert!(*len > *max as u64);
        }
        ProtocolError::MessageTooLarge { len, max } => {
            assert_eq!(*max, config.max_message_size);
            assert!(*len > *max as u64);
        }
        ProtocolError::TooManyFragments { max } => {
            assert_eq!(*max, config.max_fragments_per_message);
        }
        ProtocolError::ReservedOpcode(op) => assert!(matches!(op, 0x3..=0x7 | 0xB..=0xF)),
        ProtocolError::ReservedBits(rsv) => assert!(*rsv != 0 && *rsv <= 7),
        ProtocolError::InvalidCloseCode(code) => assert!(!CloseCode(*code).is_sendable()),
        _ => {}
    }
}
