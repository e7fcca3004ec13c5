//! The bodies of the fuzz targets (each `fuzz_targets/*.rs` is one line calling one of these).
//!
//! Compiled by the fuzz crate and by `tests/fuzz_regressions.rs` (through `#[path]`), so a
//! crash input replays with `cargo test`. Only the tungstenite half of `differential` lives in
//! the fuzz crate alone (`differential.rs`).
//!
//! Input layouts (byte 0 always picks the chunk size for `receive`, see `chunk_size`):
//! - `frame_header`: raw bytes, parsed as a frame header and fed to both roles.
//! - `server_stream`: chunk, config (`config_from`), options (`Options`), then the raw stream
//!   a client sends: request head, then frames.
//! - `client_stream`: chunk, config, options, then the server's bytes; unless option bit 0 is
//!   set, a valid 101 for the client's key is sent first and the bytes follow it (with bit 6,
//!   before its blank line, so they add headers).
//! - `handshake_request`: chunk, config, then a request head; the same bytes read as UTF-8
//!   lines give a URL and `p:subprotocol`, `o:origin`, `name:value` builder calls.
//! - `differential`: chunk, then a program of client commands (`Command`).

use crate::harness::{
    Bytes, Driven, Ev, Options, accept_value, chunk_size, config_from, counting_entropy,
    quiet_config, with_streaming,
};
use wsproto::internals::{FrameHeader, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, Opcode};
use wsproto::{
    BuildError, ClientRequest, CloseCode, Config, Connection, ConnectionState, DeflateConfig,
    Error, HandshakeError, MAX_CLOSE_REASON, MessageKind, ProtocolError, Role, UsageError,
};

// ----- frame_header ------------------------------------------------------------------------

/// What an independent reading of RFC 6455 §5.2 says about the header at the start of `data`.
#[derive(Debug, PartialEq, Eq)]
struct Header {
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload_len: u64,
    len: usize,
}

fn expected_header(data: &[u8]) -> Result<Option<Header>, ProtocolError> {
    let [b0, b1, rest @ ..] = data else {
        return Ok(None);
    };
    let opcode = b0 & 0x0F;
    if matches!(opcode, 0x3..=0x7 | 0xB..=0xF) {
        return Err(ProtocolError::ReservedOpcode(opcode));
    }
    let ext = match b1 & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let Some(ext_bytes) = rest.get(..ext) else {
        return Ok(None);
    };
    let payload_len = match ext {
        0 => u64::from(b1 & 0x7F),
        _ => ext_bytes.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b)),
    };
    if payload_len >> 63 != 0 {
        return Err(ProtocolError::InvalidLength);
    }
    let masked = b1 & 0x80 != 0;
    let mask = if masked {
        match rest.get(ext..ext + 4) {
            Some(key) => Some([key[0], key[1], key[2], key[3]]),
            None => return Ok(None),
        }
    } else {
        None
    };
    Ok(Some(Header {
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 7,
        opcode,
        mask,
        payload_len,
        len: 2 + ext + if masked { 4 } else { 0 },
    }))
}

/// The shortest header for a payload length (RFC 6455 §5.2: the minimal number of bytes).
fn minimal_header_len(payload_len: u64, masked: bool) -> usize {
    let base = match payload_len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    };
    base + if masked { 4 } else { 0 }
}

/// The config `frame_header` feeds both roles with: limits small enough to reach.
pub fn frame_config() -> Config {
    let mut config = quiet_config();
    config.max_message_size = 1000;
    config.max_frame_size = Some(500);
    config
}

/// `FrameHeader::parse` against an independent reading of §5.2, the encode round trip with
/// and without a mask, and the first verdict of a server and of a client given the bytes.
pub fn frame_header(data: &[u8]) {
    let parsed = FrameHeader::parse(data);
    let expected = expected_header(data);
    match (&parsed, &expected) {
        (Ok(Some((header, len))), Ok(Some(want))) => {
            let got = Header {
                fin: header.fin,
                rsv: header.rsv,
                opcode: header.opcode.bits(),
                mask: header.mask,
                payload_len: header.payload_len,
                len: *len,
            };
            assert_eq!(&got, want);
            assert!(*len <= MAX_HEADER_LEN);
            assert_eq!(Opcode::from_bits(want.opcode), Ok(header.opcode));
            // Every shorter prefix needs more bytes.
            for k in 0..*len {
                assert_eq!(FrameHeader::parse(&data[..k]), Ok(None), "prefix {k}");
            }
            // Encode round trip, with the mask as parsed and toggled (both roles).
            let key = [data[0], data[1], 0x5a, 0xa5];
            for mask in [header.mask, header.mask.xor(Some(key))] {
                let header = FrameHeader { mask, ..*header };
                let mut buf = [0; MAX_HEADER_LEN];
                let n = header.encode(&mut buf);
                assert_eq!(n, minimal_header_len(header.payload_len, mask.is_some()));
                assert_eq!(FrameHeader::parse(&buf[..n]), Ok(Some((header, n))));
            }
            let mut buf = [0; MAX_HEADER_LEN];
            let n = header.encode(&mut buf);
            if n == *len {
                assert_eq!(
                    &buf[..n],
                    &data[..n],
                    "a minimal header re-encodes to itself"
                );
            } else {
                assert!(n < *len, "encode is never longer than what was parsed");
            }
        }
        (Ok(None), Ok(None)) => assert!(data.len() < MAX_HEADER_LEN),
        (Err(e), Err(want)) => {
            assert_eq!(e, want);
            assert_eq!(e.close_code(), CloseCode::PROTOCOL_ERROR);
        }
        _ => panic!("FrameHeader::parse gave {parsed:?}, RFC 6455 §5.2 says {expected:?}"),
    }
    for role in [Role::Server, Role::Client] {
        first_frame_verdict(data, role);
    }
}

/// What the first frame of a connection's input decides.
#[derive(Debug)]
enum Verdict {
    /// This event (or error) comes first.
    First(Ev),
    /// The frame is not all here: nothing may be reported.
    Nothing,
    /// The frame starts a message that the next frames decide.
    Later,
}

/// What a connection must report first when `data` arrives as its first frame.
fn expected_first(data: &[u8], role: Role, config: &Config) -> Verdict {
    let error = |e: ProtocolError| Verdict::First(Ev::Error(Error::Protocol(e)));
    let header = match expected_header(data) {
        Err(e) => return error(e),
        Ok(None) => return Verdict::Nothing,
        Ok(Some(header)) => header,
    };
    // RFC 6455 §5.1: clients mask, servers do not.
    match (role, header.mask.is_some()) {
        (Role::Server, false) => return error(ProtocolError::UnmaskedFrame),
        (Role::Client, true) => return error(ProtocolError::MaskedFrame),
        _ => {}
    }
    if header.rsv != 0 {
        return error(ProtocolError::ReservedBits(header.rsv));
    }
    let wire = &data[header.len..];
    let available = &wire[..wire
        .len()
        .min(usize::try_from(header.payload_len).unwrap_or(usize::MAX))];
    let mut payload = available.to_vec();
    if let Some(key) = header.mask {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    let complete = payload.len() as u64 == header.payload_len;
    if header.opcode >= 0x8 {
        // RFC 6455 §5.5: control frames are not fragmented and carry at most 125 bytes.
        if !header.fin {
            return error(ProtocolError::FragmentedControlFrame);
        }
        if header.payload_len > MAX_CONTROL_PAYLOAD as u64 {
            return error(ProtocolError::ControlFrameTooLong(header.payload_len));
        }
        if !complete {
            return Verdict::Nothing;
        }
        return Verdict::First(match header.opcode {
            0x9 => Ev::Ping(payload),
            0xA => Ev::Pong(payload),
            _ => match payload.as_slice() {
                [] => Ev::Close(CloseCode::NO_STATUS_RECEIVED.0, String::new()),
                [_] => return error(ProtocolError::InvalidClosePayload),
                [hi, lo, reason @ ..] => {
                    let code = u16::from_be_bytes([*hi, *lo]);
                    if !CloseCode(code).is_sendable() {
                        return error(ProtocolError::InvalidCloseCode(code));
                    }
                    match core::str::from_utf8(reason) {
                        Ok(reason) => Ev::Close(code, reason.into()),
                        Err(_) => return error(ProtocolError::InvalidUtf8),
                    }
                }
            },
        });
    }
    if header.opcode == 0x0 {
        return error(ProtocolError::UnexpectedContinuation);
    }
    if let Some(max) = config.max_frame_size
        && header.payload_len > max as u64
    {
        return error(ProtocolError::FrameTooLarge {
            len: header.payload_len,
            max,
        });
    }
    if header.payload_len > config.max_message_size as u64 {
        return error(ProtocolError::MessageTooLarge {
            len: header.payload_len,
            max: config.max_message_size,
        });
    }
    if header.opcode == 0x1 {
        // RFC 6455 §8.1: fail as soon as the text cannot become valid UTF-8.
        if let Err(e) = core::str::from_utf8(&payload)
            && (e.error_len().is_some() || (complete && header.fin))
        {
            return error(ProtocolError::InvalidUtf8);
        }
    }
    if !complete {
        return Verdict::Nothing;
    }
    if !header.fin {
        return Verdict::Later;
    }
    Verdict::First(match header.opcode {
        0x1 => Ev::Text(String::from_utf8(payload).expect("checked")),
        _ => Ev::Binary(payload),
    })
}

fn first_frame_verdict(data: &[u8], role: Role) {
    let config = frame_config();
    let conn = match role {
        Role::Server => Connection::upgraded_server(config.clone()),
        Role::Client => Connection::upgraded_client(config.clone(), counting_entropy()),
    };
    let mut driven = Driven::new(conn);
    driven.feed(data, false);
    let events = driven.drain();
    match expected_first(data, role, &config) {
        Verdict::First(want) => assert_eq!(events.first(), Some(&want), "{role:?}: first"),
        Verdict::Nothing => assert_eq!(events, [], "{role:?}: an incomplete frame"),
        Verdict::Later => {}
    }
    driven.end_round();
    driven.feed_eof();
    driven.drain();
    driven.end_round();
}

// ----- server_stream and client_stream -----------------------------------------------------

/// One round: take each event and let the application react to it at once (answer the
/// request, echo, close), as a driver's event loop does, then write everything out.
///
/// Echoing rounds alternate between copying the message (`send_text`/`send_binary` after
/// `next_event`) and sending it by reference from the receive buffer through
/// `next_event_with_sender`, with a varying part of the output written through the sender.
fn run_round(driven: &mut Driven, options: &Options, first_data: &mut bool) {
    // A chunk cannot be echoed as a message by reference: streamed, `echo` sends it whole.
    let by_reference = options.echo && driven.rounds() % 2 == 1 && !driven.streams();
    let mut written = driven.rounds() * 37 % 211;
    loop {
        let next = if by_reference {
            // Partial writes of 1-211 bytes, and every third time all of it.
            written = written * 5 % 211 + 1;
            let write = if written.is_multiple_of(3) {
                usize::MAX
            } else {
                written
            };
            driven.next_checked_echoing(write)
        } else {
            driven.next_checked()
        };
        let Some(ev) = next else { break };
        match &ev {
            Ev::Request(_) => {
                driven.answer(options);
            }
            Ev::Text(_) | Ev::Binary(_) => {
                if options.echo && !by_reference {
                    driven.echo(&ev);
                }
                if options.close_after_first && !*first_data {
                    driven.close();
                }
                *first_data = true;
            }
            _ => {}
        }
    }
    driven.end_round();
}

fn run_stream(driven: &mut Driven, stream: &[u8], chunk: usize, options: &Options) {
    let mut first_data = false;
    for piece in stream.chunks(chunk) {
        driven.feed(piece, options.use_buffer);
        run_round(driven, options, &mut first_data);
    }
    if options.eof {
        driven.feed_eof();
        run_round(driven, options, &mut first_data);
        // After EOF every connection has ended one way or another.
        assert!(driven.is_done(), "EOF but still {:?}", driven.conn.state());
    }
}

/// A `Connection::server` fed raw bytes: request head, then frames.
///
/// Each stream target runs its input twice, with whole messages and streamed
/// (`Config::stream_messages`), and the two transcripts must agree: the chunks join to the
/// same messages, and the same errors end them.
pub fn server_stream(data: &[u8]) -> Vec<Ev> {
    both_ways(|| server_stream_driven(data).transcript)
}

/// Runs a stream target with whole messages, then streamed, and checks that the transcripts
/// agree.
fn both_ways(target: impl Fn() -> Vec<Ev>) -> Vec<Ev> {
    let whole = with_streaming(false, &target);
    let streamed = with_streaming(true, &target);
    assert_eq!(streamed, whole, "streaming changed the transcript");
    whole
}

/// `server_stream`, returning the whole driven connection.
pub fn server_stream_driven(data: &[u8]) -> Driven {
    let mut input = Bytes::new(data);
    let chunk = chunk_size(input.byte());
    let config = config_from(input.byte());
    let options = Options::from_byte(input.byte());
    let mut driven = Driven::new(Connection::server(config));
    run_stream(&mut driven, input.rest(), chunk, &options);
    driven
}

/// The request the client target sends.
pub fn client_request() -> ClientRequest {
    ClientRequest::new("ws://server.example.com/chat")
        .expect("valid URL")
        .subprotocol("chat")
        .and_then(|r| r.subprotocol("superchat"))
        .and_then(|r| r.origin("http://example.com"))
        .expect("valid builder calls")
}

/// A valid 101 for the request head in `request`, selecting `subprotocol`.
pub fn valid_101(request: &[u8], subprotocol: Option<&str>) -> Vec<u8> {
    let mut slots = [httparse::EMPTY_HEADER; 16];
    let mut parsed = httparse::Request::new(&mut slots);
    assert!(
        matches!(parsed.parse(request), Ok(httparse::Status::Complete(n)) if n == request.len())
    );
    let key = parsed
        .headers
        .iter()
        .find(|h| h.name == "Sec-WebSocket-Key")
        .map(|h| core::str::from_utf8(h.value).expect("ASCII key"))
        .expect("a key");
    let mut out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        accept_value(key)
    );
    if let Some(p) = subprotocol {
        out.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// A `Connection::client` with deterministic entropy: a valid 101 for its key followed by the
/// fuzz bytes, or (option bit 0) the fuzz bytes as the whole response, or (option bit 6) a
/// valid 101 whose header section the fuzz bytes continue.
pub fn client_stream(data: &[u8]) -> Vec<Ev> {
    both_ways(|| client_stream_once(data))
}

fn client_stream_once(data: &[u8]) -> Vec<Ev> {
    let mut input = Bytes::new(data);
    let chunk = chunk_size(input.byte());
    let config = config_from(input.byte());
    let options = Options::from_byte(input.byte());
    let (max_head, max_headers) = (config.max_head_size, config.max_headers);
    let mut driven = Driven::new(Connection::client(
        client_request(),
        config,
        counting_entropy(),
    ));
    let request = driven.conn.pending_output().to_vec();
    driven.end_round();
    let mut stream = Vec::new();
    let subprotocol = options.subprotocol.then_some("chat");
    let response = valid_101(&request, subprotocol);
    if !options.alternative {
        let end = if options.open_head {
            response.len() - 2
        } else {
            response.len()
        };
        stream.extend_from_slice(&response[..end]);
    }
    stream.extend_from_slice(input.rest());
    run_stream(&mut driven, &stream, chunk, &options);
    if !options.alternative && !options.open_head {
        let headers = 3 + usize::from(subprotocol.is_some());
        let want_accept = response.len() <= max_head && headers <= max_headers;
        match driven.transcript.first() {
            Some(Ev::Accepted {
                subprotocol: got, ..
            }) => {
                assert!(want_accept, "accepted a 101 over the limits");
                assert_eq!(got.as_deref(), subprotocol);
            }
            other => assert!(!want_accept, "a valid 101 gave {other:?}"),
        }
    }
    driven.transcript
}

// ----- inflate ---------------------------------------------------------------------------

/// permessage-deflate on the receive path: a client that negotiated deflate (the 101 accepts
/// it, with parameters from the input) is fed the fuzz bytes as frames, so RSV1 frames carry
/// arbitrary compressed data. Besides the stream invariants, every message is within the
/// limit (inflation is bounded) and the deflate agreement held.
pub fn inflate(data: &[u8]) -> Vec<Ev> {
    both_ways(|| inflate_once(data))
}

fn inflate_once(data: &[u8]) -> Vec<Ev> {
    let mut input = Bytes::new(data);
    let chunk = chunk_size(input.byte());
    // The handshake limits stay at their defaults: this target is about the frames.
    let mut config = config_from(input.byte() & 0x1f);
    let params = input.byte();
    let mut deflate = DeflateConfig::default();
    deflate.server_no_context_takeover = params & 1 != 0;
    deflate.client_no_context_takeover = params & 2 != 0;
    let mut answer = String::from("permessage-deflate");
    for (bit, param) in [
        (1, "; server_no_context_takeover"),
        (2, "; client_no_context_takeover"),
        (4, "; server_max_window_bits=9"),
        (8, "; client_max_window_bits=8"),
    ] {
        if params & bit != 0 {
            answer.push_str(param);
        }
    }
    config.deflate = Some(deflate);
    let limit = config.max_message_size;
    let mut options = Options::from_byte(input.byte());
    options.alternative = false;
    options.open_head = false;
    let mut driven = Driven::new(Connection::client(
        client_request(),
        config,
        counting_entropy(),
    ));
    let request = driven.conn.pending_output().to_vec();
    driven.end_round();
    let mut stream = valid_101(&request, None);
    let blank = stream.len() - 2;
    stream.splice(
        blank..blank,
        format!("Sec-WebSocket-Extensions: {answer}\r\n").into_bytes(),
    );
    stream.extend_from_slice(input.rest());
    run_stream(&mut driven, &stream, chunk, &options);
    assert!(
        matches!(driven.transcript.first(), Some(Ev::Accepted { .. })),
        "a valid 101 with permessage-deflate gave {:?}",
        driven.transcript.first()
    );
    assert!(driven.conn.is_deflate_negotiated() || driven.is_done());
    for event in &driven.transcript {
        if let Ev::Text(text) = event {
            assert!(
                text.len() <= limit,
                "a {}-byte text past the limit {limit}",
                text.len()
            );
        }
        if let Ev::Binary(data) = event {
            assert!(
                data.len() <= limit,
                "a {}-byte message past the limit {limit}",
                data.len()
            );
        }
    }
    driven.transcript
}

// ----- handshake_request -------------------------------------------------------------------

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The request head parser through `Connection::server` alone, then `ClientRequest` built from
/// the same bytes read as text.
pub fn handshake_request(data: &[u8]) -> Vec<Ev> {
    let mut input = Bytes::new(data);
    let chunk = chunk_size(input.byte());
    let config = config_from(input.byte());
    let head = input.rest();
    let limit = config.max_head_size;
    let http_config = config.clone();
    let mut driven = Driven::new(Connection::server(config));
    let options = Options {
        subprotocol: true,
        ..Options::default()
    };
    let mut answered = false;
    for piece in head.chunks(chunk) {
        driven.feed(piece, false);
        if driven.drain().iter().any(|e| matches!(e, Ev::Request(_))) {
            // Frames behind the head are `server_stream`'s business.
            driven.answer(&options);
            answered = true;
        }
        driven.end_round();
        if answered || driven.is_done() {
            break;
        }
    }
    if !answered {
        driven.feed_eof();
        driven.drain();
        driven.end_round();
    }
    let transcript = driven.transcript;
    // The head limit, exactly: a head that ends within it is judged, a longer one gets 431.
    let end = find(head, b"\r\n\r\n").map(|i| i + 4);
    match end {
        Some(end) if end <= limit => assert!(
            !matches!(
                transcript.first(),
                Some(Ev::Error(Error::Handshake(HandshakeError::HeadTooLarge))) | None
            ),
            "a {end}-byte head within the {limit}-byte limit: {transcript:?}"
        ),
        _ if head.len() >= limit => assert_eq!(
            transcript.first(),
            Some(&Ev::Error(Error::Handshake(HandshakeError::HeadTooLarge))),
            "no blank line within {limit} bytes"
        ),
        _ => assert_eq!(transcript, [Ev::Closed(CloseCode::ABNORMAL.0)]),
    }
    if let Some(end) = end.filter(|&end| end <= limit) {
        http_differential(&head[..end], http_config, &transcript);
    }
    if let Ok(text) = core::str::from_utf8(head) {
        client_request_round_trip(text);
    }
    transcript
}

/// The request head as a framework built on `http` hands it over: httparse's reading of the
/// bytes in `http` types (as hyper builds them). `None` when that reading fails or loses
/// something the bytes-in path sees: a syntax error (the framework answers it), a bare-LF
/// head, a target the `Uri` type rewrites (it drops fragments), a name or value the `http`
/// types refuse.
pub fn http_request_from_head(head: &[u8]) -> Option<http::Request<()>> {
    let mut slots = [httparse::EMPTY_HEADER; 256];
    let mut parsed = httparse::Request::new(&mut slots);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(len)) if len == head.len() => {}
        _ => return None,
    }
    let target = parsed.path?;
    let uri: http::Uri = target.parse().ok()?;
    // Exactly as sent: `Uri`'s own comparison ignores case in the scheme and host.
    let rendered = uri.to_string();
    if rendered != target {
        return None;
    }
    let mut builder = http::Request::builder()
        .method(http::Method::from_bytes(parsed.method?.as_bytes()).ok()?)
        .uri(uri)
        .version(match parsed.version? {
            1 => http::Version::HTTP_11,
            _ => http::Version::HTTP_10,
        });
    for header in parsed.headers.iter() {
        let name = http::HeaderName::from_bytes(header.name.as_bytes()).ok()?;
        let value = http::HeaderValue::from_bytes(header.value).ok()?;
        builder = builder.header(name, value);
    }
    builder.body(()).ok()
}

/// The handshake over `http` types gives the bytes-in path's verdict for the same head: it
/// accepts what `Connection::server` reported as a request (and answers with a 101 for the
/// same key), and rejects the rest with the same error, status and body.
fn http_differential(head: &[u8], config: Config, transcript: &[Ev]) {
    let Some(request) = http_request_from_head(head) else {
        return;
    };
    let verdict = wsproto::handshake_http::Upgrade::from_request(&request, None, config);
    match (transcript.first(), verdict) {
        (Some(Ev::Request(expected)), Ok(upgrade)) => {
            assert_eq!(upgrade.request().subprotocols(), expected.subprotocols());
            assert_eq!(upgrade.request().extensions(), expected.extensions());
            assert_eq!(upgrade.request().key(), expected.key());
            let mut accept = wsproto::Accept::new();
            if let Some(chosen) = expected.subprotocols().first() {
                accept = accept.subprotocol(chosen);
            }
            let (response, conn) = upgrade.accept(accept).expect("an offered subprotocol");
            assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
            let accept_header = response.headers().get("sec-websocket-accept");
            let expected_accept = accept_value(expected.key());
            assert_eq!(
                accept_header.map(http::HeaderValue::as_bytes),
                Some(expected_accept.as_bytes())
            );
            assert_eq!(conn.state(), ConnectionState::Open);
        }
        (Some(Ev::Error(Error::Handshake(expected))), Err(rejection)) => {
            assert_eq!(rejection.error(), expected, "same reason");
            let response = rejection.response();
            assert_eq!(Some(response.status().as_u16()), expected.status());
            assert_eq!(response.body(), &format!("{expected}\n"));
        }
        (bytes_in, http) => panic!(
            "verdicts differ: bytes-in {bytes_in:?}, http {:?}",
            http.map(|u| u.request().clone())
        ),
    }
}

fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &s[start..end]
}

/// A URL and builder calls from `text`; whatever `ClientRequest` accepts, our own server must
/// accept as the same request, and the client must accept the server's 101.
pub fn client_request_round_trip(text: &str) {
    let mut lines = text.split('\n');
    let url = lines.next().unwrap_or_default();
    let mut request = match ClientRequest::new(url) {
        Ok(request) => request,
        Err(HandshakeError::InvalidUrl(_)) => return,
        Err(e) => panic!("ClientRequest::new failed with {e:?}"),
    };
    // RFC 6455 §3: the URL's parts, read independently.
    let (scheme, rest) = url.split_once("://").expect("accepted URLs have a scheme");
    assert_eq!(request.is_secure(), scheme.eq_ignore_ascii_case("wss"));
    let authority_len = rest.find(['/', '?']).unwrap_or(rest.len());
    let resource = &rest[authority_len..];
    let want_resource = if resource.starts_with('/') {
        resource.to_string()
    } else {
        format!("/{resource}")
    };
    assert_eq!(request.resource(), want_resource);
    assert!(!request.host().is_empty());
    assert_ne!(request.port(), 0);
    let default_port = if request.is_secure() { 443 } else { 80 };
    let mut host_header = if request.host().contains(':') {
        format!("[{}]", request.host())
    } else {
        request.host().to_string()
    };
    if request.port() != default_port {
        host_header.push_str(&format!(":{}", request.port()));
    }

    let mut subprotocols = Vec::new();
    let mut origin = None;
    let mut headers = Vec::new();
    for line in lines {
        if let Some(p) = line.strip_prefix("p:") {
            match request.clone().subprotocol(p) {
                Ok(r) => {
                    request = r;
                    subprotocols.push(p.to_string());
                }
                Err(BuildError::InvalidSubprotocol(_)) => {}
                Err(e) => panic!("subprotocol({p:?}): {e:?}"),
            }
        } else if let Some(o) = line.strip_prefix("o:") {
            match request.clone().origin(o) {
                Ok(r) => {
                    request = r;
                    origin = Some(o.to_string());
                }
                Err(BuildError::InvalidOrigin) => {}
                Err(e) => panic!("origin({o:?}): {e:?}"),
            }
        } else if let Some((name, value)) = line.split_once(':') {
            match request.clone().header(name, value) {
                Ok(r) => {
                    request = r;
                    headers.push((name.to_string(), value.to_string()));
                }
                Err(
                    BuildError::InvalidHeaderName(_)
                    | BuildError::InvalidHeaderValue(_)
                    | BuildError::ReservedHeader(_),
                ) => {}
                Err(e) => panic!("header({name:?}, {value:?}): {e:?}"),
            }
        }
    }
    assert_eq!(request.subprotocols(), subprotocols.as_slice());

    let mut client = Driven::new(Connection::client(
        request,
        quiet_config(),
        counting_entropy(),
    ));
    let head = client.conn.pending_output().to_vec();
    client.end_round();
    let mut server_config = quiet_config();
    server_config.max_headers = 4096;
    server_config.max_head_size = 1 << 20;
    let mut server = Driven::new(Connection::server(server_config));
    server.feed(&head, false);
    let events = server.drain();
    let Some(Ev::Request(got)) = events.first() else {
        panic!(
            "our server refused our client's request: {events:?}\n{}",
            String::from_utf8_lossy(&head)
        );
    };
    assert_eq!(got.target(), want_resource);
    assert_eq!(got.host(), host_header);
    assert_eq!(got.subprotocols(), subprotocols.as_slice());
    assert_eq!(
        got.origin().map(str::as_bytes),
        origin.as_deref().map(|o| trim_ows(o.as_bytes()))
    );
    for (name, value) in &headers {
        assert!(
            got.headers()
                .any(|(n, v)| n == name && trim_ows(v) == trim_ows(value.as_bytes())),
            "header {name:?}: {value:?} did not arrive"
        );
    }
    let got = got.clone();
    server.answer(&Options {
        subprotocol: true,
        ..Options::default()
    });
    let response = server.conn.pending_output().to_vec();
    server.end_round();
    client.feed(&response, false);
    let events = client.drain();
    assert_eq!(
        events.first(),
        Some(&Ev::Accepted {
            status: 101,
            subprotocol: got.subprotocols().first().cloned(),
        }),
        "our client refused our server's 101"
    );
    assert_eq!(client.conn.state(), ConnectionState::Open);
    client.end_round();
}

// ----- differential (our half) -------------------------------------------------------------

/// A message as both decoders report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(u16, String),
}

/// What our client sent, as bytes, and the messages a decoder must report from them.
#[derive(Debug)]
pub struct Program {
    pub chunk: usize,
    pub wire: Vec<u8>,
    pub expected: Vec<Msg>,
}

/// Close codes the program picks from: every class, sendable or not.
const CODES: [u16; 16] = [
    1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1011, 1014, 1015, 1016, 2999, 3000, 4999,
];

/// Lengths that cross the 7-bit, 16-bit and 64-bit length forms (RFC 6455 §5.2).
const BIG: [usize; 4] = [126, 65535, 65536, 65537];

/// Runs the command program in `data` on an upgraded client, checking each command's result
/// against the rules (`UsageError`s change nothing), and returns the wire bytes and the
/// messages they must decode to.
///
/// Commands (`byte % 8`): 0 text (a length byte, then bytes made UTF-8), 1 binary (a length
/// byte), 2 text fragment and 3 binary fragment (a length byte whose top bit is FIN), 4 ping
/// and 5 pong (a length byte, up to 130 so oversize is tried), 6 close (a code index and a
/// reason length), 7 a large binary message (once per program).
pub fn program(data: &[u8]) -> Program {
    let mut input = Bytes::new(data);
    let chunk = chunk_size(input.byte());
    // The program's whole output is its record, written out at the end: no high-water mark.
    let config = quiet_config().output_high_water(None);
    let mut client = Connection::upgraded_client(config, counting_entropy());
    let mut expected = Vec::new();
    let mut fragments: Option<(MessageKind, Vec<u8>)> = None;
    let mut closed = false;
    let mut big_used = false;
    while !input.is_empty() {
        let before = client.pending_output().len();
        let op = input.byte();
        let (result, on_ok): (Result<(), UsageError>, Option<Msg>) = match op % 8 {
            0 => {
                let n = usize::from(input.byte());
                let text = String::from_utf8_lossy(input.take(n)).into_owned();
                (client.send_text(&text), Some(Msg::Text(text)))
            }
            1 => {
                let n = usize::from(input.byte());
                let data = input.take(n).to_vec();
                (client.send_binary(&data), Some(Msg::Binary(data)))
            }
            2 | 3 => {
                let kind = if op % 8 == 2 {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                };
                let n = input.byte();
                let fin = n & 0x80 != 0;
                let piece = input.take(usize::from(n & 0x7F)).to_vec();
                let result = client.send_fragment(kind, &piece, fin);
                let mut joined = match &fragments {
                    Some((k, so_far)) if *k == kind => so_far.clone(),
                    _ => Vec::new(),
                };
                joined.extend_from_slice(&piece);
                let valid = kind == MessageKind::Binary
                    || match core::str::from_utf8(&joined) {
                        Ok(_) => true,
                        Err(e) => e.error_len().is_none() && !fin,
                    };
                let want = if closed {
                    Err(UsageError::NotOpen)
                } else if fragments.as_ref().is_some_and(|(k, _)| *k != kind) {
                    Err(UsageError::FragmentKindMismatch)
                } else if !valid {
                    Err(UsageError::InvalidUtf8)
                } else {
                    Ok(())
                };
                assert_eq!(result, want, "send_fragment({kind:?}, {piece:02x?}, {fin})");
                let mut done = None;
                if result.is_ok() {
                    if fin {
                        fragments = None;
                        done = Some(match kind {
                            MessageKind::Text => {
                                Msg::Text(String::from_utf8(joined).expect("valid"))
                            }
                            MessageKind::Binary => Msg::Binary(joined),
                        });
                    } else {
                        fragments = Some((kind, joined));
                    }
                }
                (result, done)
            }
            4 | 5 => {
                let n = usize::from(input.byte()) % 131;
                let payload = input.take(n).to_vec();
                let (result, msg) = if op % 8 == 4 {
                    (client.send_ping(&payload), Msg::Ping(payload.clone()))
                } else {
                    (client.send_pong(&payload), Msg::Pong(payload.clone()))
                };
                let want = if closed {
                    Err(UsageError::NotOpen)
                } else if payload.len() > MAX_CONTROL_PAYLOAD {
                    Err(UsageError::ControlPayloadTooLarge(payload.len()))
                } else {
                    Ok(())
                };
                assert_eq!(result, want);
                (result, Some(msg))
            }
            6 => {
                let code = CODES[usize::from(input.byte() % 16)];
                let n = usize::from(input.byte() % 128);
                let reason = String::from_utf8_lossy(input.take(n)).into_owned();
                let result = client.close(CloseCode(code), &reason);
                let sendable = CloseCode(code).is_sendable()
                    || (code == CloseCode::NO_STATUS_RECEIVED.0 && reason.is_empty());
                let want = if closed {
                    Err(UsageError::NotOpen)
                } else if !sendable {
                    Err(UsageError::InvalidCloseCode(code))
                } else if reason.len() > MAX_CLOSE_REASON {
                    Err(UsageError::CloseReasonTooLong(reason.len()))
                } else {
                    Ok(())
                };
                assert_eq!(result, want, "close({code}, {} bytes)", reason.len());
                if result.is_ok() {
                    closed = true;
                    fragments = None;
                }
                (result, Some(Msg::Close(code, reason)))
            }
            _ => {
                let len = BIG[usize::from(input.byte() % 4)];
                if big_used {
                    continue;
                }
                big_used = true;
                let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                (client.send_binary(&data), Some(Msg::Binary(data)))
            }
        };
        match result {
            Ok(()) => expected.extend(on_ok),
            Err(e) => {
                // A refused command changes nothing (UsageError).
                assert_eq!(client.pending_output().len(), before, "{e} queued output");
                if closed {
                    assert_eq!(e, UsageError::NotOpen);
                }
                if matches!(op % 8, 0 | 1 | 7) && !closed {
                    assert!(fragments.is_some() && e == UsageError::MessageInProgress);
                }
            }
        }
    }
    let wire = client.pending_output().to_vec();
    // Byte-at-a-time over 64 KiB is slow (tungstenite most of all) and finds nothing the
    // header splits don't: with a large message, chunks are 64 times larger.
    let chunk = if big_used {
        chunk.saturating_mul(64)
    } else {
        chunk
    };
    Program {
        chunk,
        wire,
        expected,
    }
}

/// Our half of `differential`: our server decodes our client's bytes into exactly the
/// messages the program sent, in order.
pub fn differential_ours(data: &[u8]) -> Program {
    let program = program(data);
    let mut config = quiet_config();
    config.max_message_size = 1 << 20;
    let mut server = Driven::new(Connection::upgraded_server(config));
    for piece in program.wire.chunks(program.chunk) {
        server.feed(piece, false);
        server.drain();
        server.end_round();
    }
    let got: Vec<Msg> = server
        .transcript
        .iter()
        .filter_map(|ev| match ev {
            Ev::Text(t) => Some(Msg::Text(t.clone())),
            Ev::Binary(b) => Some(Msg::Binary(b.clone())),
            Ev::Ping(p) => Some(Msg::Ping(p.clone())),
            Ev::Pong(p) => Some(Msg::Pong(p.clone())),
            Ev::Close(code, reason) => Some(Msg::Close(*code, reason.clone())),
            Ev::Closed(_) => None,
            other => panic!("our server: {other:?} on our client's bytes"),
        })
        .collect();
    assert_eq!(
        got, program.expected,
        "our server disagrees with what our client sent"
    );
    program
}
