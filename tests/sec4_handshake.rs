//! RFC 6455 §4: the opening handshake driven through `Connection`, for both roles: the §1.2
//! example, every rejection a server sends itself or on the application's behalf, delivery in
//! pieces and with pipelined frames, the client's request and its checks of the 101, EOF and
//! the handshake timeout, and properties over chunking and arbitrary input.
mod common;
use common::*;
use proptest::prelude::*;
use wsproto::{
    Accept, BuildError, ClientRequest, Config, Connection, ConnectionState, Error, HandshakeError,
    ProtocolError, Request, UsageError,
};

/// RFC 6455 §1.2: the client's opening handshake.
const SEC_1_2_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
    Host: server.example.com\r\n\
    Upgrade: websocket\r\n\
    Connection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Origin: http://example.com\r\n\
    Sec-WebSocket-Protocol: chat, superchat\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// RFC 6455 §1.2/§1.3: the server's answer to it, selecting `chat`.
const SEC_1_3_RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\n\
    Upgrade: websocket\r\n\
    Connection: Upgrade\r\n\
    Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
    Sec-WebSocket-Protocol: chat\r\n\r\n";

/// The same answer when the server selects no subprotocol.
const SEC_1_3_RESPONSE_NO_PROTOCOL: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\n\
    Upgrade: websocket\r\n\
    Connection: Upgrade\r\n\
    Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

/// RFC 6455 §5.7: a single-frame masked text message "Hello", as a client sends it.
const MASKED_HELLO: &[u8] = &[
    0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
];

/// RFC 6455 §5.7: the same message unmasked, as a server sends it.
const UNMASKED_HELLO: &[u8] = b"\x81\x05Hello";

/// The key a client drawing `counting_entropy` sends: base64 of the bytes 0x01..=0x10.
const COUNTING_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEA==";
/// `Sec-WebSocket-Accept` for [`COUNTING_KEY`] (SHA-1 with the §1.3 GUID, base64).
const COUNTING_ACCEPT: &str = "C/0nmHhBztSRGR1CwL6Tf4ZjwpY=";

// ----- helpers ---------------------------------------------------------------------------

/// The §1.2 request with the first `from` replaced by `to`.
fn request_with(from: &str, to: &str) -> Vec<u8> {
    let text = std::str::from_utf8(SEC_1_2_REQUEST).unwrap();
    assert!(text.contains(from), "{from:?} not in the request");
    text.replacen(from, to, 1).into_bytes()
}

/// The §1.2 request without its `name` header line.
fn request_without(name: &str) -> Vec<u8> {
    let text = std::str::from_utf8(SEC_1_2_REQUEST).unwrap();
    let start = text.find(&format!("\r\n{name}:")).expect("header present") + 2;
    let end = start + text[start..].find("\r\n").unwrap() + 2;
    format!("{}{}", &text[..start], &text[end..]).into_bytes()
}

/// The §1.2 request with `extra` header lines added before the blank line.
fn request_plus(extra: &str) -> Vec<u8> {
    let mut head = SEC_1_2_REQUEST[..SEC_1_2_REQUEST.len() - 2].to_vec();
    head.extend_from_slice(extra.as_bytes());
    head.extend_from_slice(b"\r\n");
    head
}

/// The response a server writes for a failed handshake, built from its parts.
fn http_error(status_line: &str, headers: &[&str], connection: &str, body: &str) -> Vec<u8> {
    let mut out = format!("{status_line}\r\n");
    for header in headers {
        out.push_str(header);
        out.push_str("\r\n");
    }
    out.push_str(&format!(
        "Connection: {connection}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    out.into_bytes()
}

/// The reason phrase a server uses for each status it sends by itself.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        other => panic!("no phrase expected for {other}"),
    }
}

/// What `Connection::server` must queue for `err`: the status, the headers that status
/// requires (RFC 9110 §15.5.6 `Allow`, RFC 6455 §4.2.2 `Sec-WebSocket-Version`) and the
/// error's text as the body.
fn expected_error_response(err: &HandshakeError) -> Vec<u8> {
    let status = err.status().expect("a server-side error");
    let status_line = format!("HTTP/1.1 {status} {}", reason_phrase(status));
    let body = format!("{err}\n");
    match status {
        405 => http_error(&status_line, &["Allow: GET"], "close", &body),
        426 => http_error(
            &status_line,
            &["Upgrade: websocket", "Sec-WebSocket-Version: 13"],
            "Upgrade, close",
            &body,
        ),
        _ => http_error(&status_line, &[], "close", &body),
    }
}

#[track_caller]
fn only_request(events: &[Ev]) -> Request {
    match events {
        [Ev::Request(request)] => (**request).clone(),
        other => panic!("expected exactly one Request, got {other:?}"),
    }
}

#[track_caller]
fn assert_no_more_events(conn: &mut Connection) {
    for _ in 0..3 {
        assert!(matches!(conn.next_event(), Ok(None)));
    }
}

/// A failed connection returns the same error on every call, ignores input and queues
/// nothing more.
#[track_caller]
fn assert_sticky(conn: &mut Connection, err: &Error) {
    for _ in 0..3 {
        assert_eq!(conn.next_event().map(|_| ()), Err(err.clone()));
    }
    conn.receive(SEC_1_2_REQUEST);
    conn.receive(MASKED_HELLO);
    assert_eq!(conn.next_event().map(|_| ()), Err(err.clone()));
    assert!(
        conn.pending_output().is_empty(),
        "nothing queued after failing"
    );
    assert!(conn.wants_shutdown());
    assert_eq!(conn.state(), ConnectionState::Closed);
}

/// Feeds `request` to a fresh server with `config`; it must fail with `err`, queue exactly
/// `response` (before reporting the error), then want to shut down.
#[track_caller]
fn assert_server_rejects(config: Config, request: &[u8], err: HandshakeError, response: &[u8]) {
    let mut server = Connection::server(config);
    let err = Error::Handshake(err);
    assert_eq!(feed(&mut server, request), [Ev::Error(err.clone())]);
    assert_eq!(server.state(), ConnectionState::Closed);
    assert!(!server.wants_shutdown(), "the answer is written first");
    assert_eq!(
        String::from_utf8_lossy(&take_output(&mut server)),
        String::from_utf8_lossy(response)
    );
    assert!(server.wants_shutdown());
    assert_sticky(&mut server, &err);
}

/// A server with `config` that has read the §1.2 request and reported it.
fn server_with_request(config: Config) -> Connection {
    let mut server = Connection::server(config);
    only_request(&feed(&mut server, SEC_1_2_REQUEST));
    server
}

/// A client for `ws://server.example.com/chat` offering `chat` and `superchat`, with its
/// request already taken.
fn chat_client(config: Config) -> Connection {
    let request = ClientRequest::new("ws://server.example.com/chat")
        .unwrap()
        .subprotocol("chat")
        .unwrap()
        .subprotocol("superchat")
        .unwrap();
    let mut client = Connection::client(request, config, counting_entropy());
    let sent = take_output(&mut client);
    assert!(sent.starts_with(b"GET /chat HTTP/1.1\r\n"));
    client
}

/// A 101 for the counting client's key, with `extra` header lines.
fn response_101(extra: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {COUNTING_ACCEPT}\r\n{extra}\r\n"
    )
    .into_bytes()
}

/// Feeds `response` to a fresh chat client: it must fail with `err`, queue nothing and want
/// to shut down at once.
#[track_caller]
fn assert_client_fails(config: Config, response: &[u8], err: HandshakeError) {
    let mut client = chat_client(config);
    let err = Error::Handshake(err);
    assert_eq!(feed(&mut client, response), [Ev::Error(err.clone())]);
    assert!(
        client.pending_output().is_empty(),
        "a client answers nothing"
    );
    assert!(client.wants_shutdown());
    assert_eq!(client.subprotocol(), None);
    assert_sticky(&mut client, &err);
}

fn with_timeout(seconds: u64) -> Config {
    let mut config = quiet_config();
    config.handshake_timeout = Some(secs(seconds));
    config
}

// ----- RFC 6455 §1.2 / §1.3 ----------------------------------------------------------------

#[test]
fn sec_1_2_example_request_reported_then_accepted_with_sec_1_3_response() {
    let mut server = Connection::server(quiet_config());
    assert_eq!(server.state(), ConnectionState::Connecting);
    let request = only_request(&feed(&mut server, SEC_1_2_REQUEST));
    assert_eq!(request.method(), "GET");
    assert_eq!(request.target(), "/chat");
    assert_eq!(request.path(), "/chat");
    assert_eq!(request.query(), None);
    assert_eq!(request.host(), "server.example.com");
    assert_eq!(request.origin(), Some("http://example.com"));
    assert_eq!(request.key(), "dGhlIHNhbXBsZSBub25jZQ==");
    assert_eq!(request.subprotocols(), ["chat", "superchat"]);
    assert!(request.extensions().is_empty());
    assert_eq!(request.headers().count(), 7);
    // Reported once; nothing is queued until the application answers.
    assert_no_more_events(&mut server);
    assert!(server.pending_output().is_empty());
    assert_eq!(server.state(), ConnectionState::Connecting);
    assert_eq!(server.subprotocol(), None);

    server.accept(Accept::new().subprotocol("chat")).unwrap();
    assert_eq!(server.state(), ConnectionState::Open);
    assert_eq!(server.subprotocol(), Some("chat"));
    assert_eq!(
        String::from_utf8_lossy(&take_output(&mut server)),
        String::from_utf8_lossy(SEC_1_3_RESPONSE)
    );
    assert!(!server.wants_shutdown());
    assert_no_more_events(&mut server);
}

#[test]
fn sec_4_2_2_accept_without_subprotocol_omits_the_header() {
    let mut server = server_with_request(quiet_config());
    server.accept(Accept::new()).unwrap();
    assert_eq!(server.subprotocol(), None);
    assert_eq!(take_output(&mut server), SEC_1_3_RESPONSE_NO_PROTOCOL);
}

// ----- RFC 6455 §4.2.1: requests the server refuses itself ---------------------------------

#[test]
fn sec_4_2_1_wrong_method_405_with_allow() {
    assert_server_rejects(
        quiet_config(),
        &request_with("GET", "POST"),
        HandshakeError::MethodNotGet,
        &http_error(
            "HTTP/1.1 405 Method Not Allowed",
            &["Allow: GET"],
            "close",
            "method not allowed: expected GET\n",
        ),
    );
}

#[test]
fn sec_4_2_1_http_1_0_400() {
    assert_server_rejects(
        quiet_config(),
        &request_with("HTTP/1.1", "HTTP/1.0"),
        HandshakeError::HttpVersion,
        &http_error(
            "HTTP/1.1 400 Bad Request",
            &[],
            "close",
            "unsupported HTTP version: expected HTTP/1.1\n",
        ),
    );
}

#[test]
fn sec_4_2_1_missing_host_400() {
    assert_server_rejects(
        quiet_config(),
        &request_without("Host"),
        HandshakeError::MissingHost,
        &http_error(
            "HTTP/1.1 400 Bad Request",
            &[],
            "close",
            "missing or invalid Host header\n",
        ),
    );
}

#[test]
fn sec_4_2_1_missing_upgrade_websocket_400() {
    let response = http_error(
        "HTTP/1.1 400 Bad Request",
        &[],
        "close",
        "missing Upgrade: websocket header\n",
    );
    for request in [
        request_without("Upgrade"),
        request_with("Upgrade: websocket", "Upgrade: h2c"),
    ] {
        assert_server_rejects(
            quiet_config(),
            &request,
            HandshakeError::MissingUpgrade,
            &response,
        );
    }
}

#[test]
fn sec_4_2_1_missing_connection_upgrade_400() {
    let response = http_error(
        "HTTP/1.1 400 Bad Request",
        &[],
        "close",
        "missing Connection: upgrade header\n",
    );
    for request in [
        request_without("Connection"),
        request_with("Connection: Upgrade", "Connection: keep-alive"),
    ] {
        assert_server_rejects(
            quiet_config(),
            &request,
            HandshakeError::MissingConnectionUpgrade,
            &response,
        );
    }
}

#[test]
fn sec_4_2_1_bad_key_400() {
    let response = http_error(
        "HTTP/1.1 400 Bad Request",
        &[],
        "close",
        "invalid Sec-WebSocket-Key header\n",
    );
    // Not base64, and base64 of 15 bytes.
    for key in ["not a key!", "AAAAAAAAAAAAAAAAAAAA"] {
        assert_server_rejects(
            quiet_config(),
            &request_with("dGhlIHNhbXBsZSBub25jZQ==", key),
            HandshakeError::InvalidKey,
            &response,
        );
    }
    assert_server_rejects(
        quiet_config(),
        &request_without("Sec-WebSocket-Key"),
        HandshakeError::MissingKey,
        &http_error(
            "HTTP/1.1 400 Bad Request",
            &[],
            "close",
            "missing Sec-WebSocket-Key header\n",
        ),
    );
}

#[test]
fn sec_4_2_2_version_8_426_with_supported_version() {
    assert_server_rejects(
        quiet_config(),
        &request_with("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
        HandshakeError::UnsupportedVersion,
        &http_error(
            "HTTP/1.1 426 Upgrade Required",
            &["Upgrade: websocket", "Sec-WebSocket-Version: 13"],
            "Upgrade, close",
            "unsupported Sec-WebSocket-Version: expected 13\n",
        ),
    );
}

/// The §1.2 request padded with an `X-Pad` header to exactly `len` bytes.
fn request_of_len(len: usize) -> Vec<u8> {
    let base = request_plus("X-Pad: \r\n").len();
    assert!(len >= base);
    request_plus(&format!("X-Pad: {}\r\n", "a".repeat(len - base)))
}

#[test]
fn sec_4_2_1_head_over_max_head_size_431() {
    let mut config = quiet_config();
    config.max_head_size = 300;
    let too_large = http_error(
        "HTTP/1.1 431 Request Header Fields Too Large",
        &[],
        "close",
        "request head too large\n",
    );
    // A head of exactly the limit is accepted; one byte more is refused.
    let fits = request_of_len(300);
    assert_eq!(fits.len(), 300);
    let mut server = Connection::server(config.clone());
    only_request(&feed(&mut server, &fits));
    let over = request_of_len(301);
    assert_server_rejects(
        config.clone(),
        &over,
        HandshakeError::HeadTooLarge,
        &too_large,
    );

    // A head that never ends, trickled in small pieces: refused once the limit is reached,
    // not before, and nothing sent is buffered past it.
    let mut server = Connection::server(config);
    let mut endless = b"GET /chat HTTP/1.1\r\nX-Pad: ".to_vec();
    endless.resize(1000, b'a');
    let mut sent = 0;
    let mut events = Vec::new();
    for piece in endless.chunks(7) {
        server.receive(piece);
        sent += piece.len();
        events = drain(&mut server);
        if sent < 300 {
            assert_eq!(events, [], "under the limit after {sent} bytes");
            assert!(server.pending_output().is_empty());
        } else {
            break;
        }
    }
    assert_eq!(sent, 301, "the piece that reached the limit");
    let err = Error::Handshake(HandshakeError::HeadTooLarge);
    assert_eq!(events, [Ev::Error(err.clone())]);
    assert_eq!(take_output(&mut server), too_large);
    assert!(server.wants_shutdown());
    assert_sticky(&mut server, &err);
}

#[test]
fn sec_4_2_1_more_than_max_headers_431() {
    // The §1.2 request has 7 headers.
    let mut config = quiet_config();
    config.max_headers = 8;
    let mut server = Connection::server(config.clone());
    only_request(&feed(&mut server, &request_plus("X-A: 1\r\n")));
    assert_server_rejects(
        config,
        &request_plus("X-A: 1\r\nX-B: 2\r\n"),
        HandshakeError::TooManyHeaders,
        &http_error(
            "HTTP/1.1 431 Request Header Fields Too Large",
            &[],
            "close",
            "too many headers\n",
        ),
    );
}

#[test]
fn sec_10_2_origin_not_allowed_403_and_allowed_origin_case_insensitive() {
    let mut config = quiet_config();
    config.allowed_origins = Some(vec![
        "https://chat.example".into(),
        "HTTP://Example.COM".into(),
    ]);
    // The §1.2 origin matches the second entry, ignoring case.
    let mut server = Connection::server(config.clone());
    let request = only_request(&feed(&mut server, SEC_1_2_REQUEST));
    assert_eq!(request.origin(), Some("http://example.com"));
    server.accept(Accept::new()).unwrap();
    assert_eq!(server.state(), ConnectionState::Open);

    let forbidden = http_error(
        "HTTP/1.1 403 Forbidden",
        &[],
        "close",
        "origin not allowed\n",
    );
    for request in [
        request_with("http://example.com", "http://evil.example"),
        request_with("http://example.com", "http://example.com.evil.example"),
        request_without("Origin"),
    ] {
        assert_server_rejects(
            config.clone(),
            &request,
            HandshakeError::OriginNotAllowed,
            &forbidden,
        );
    }
}

// ----- RFC 6455 §4.2.2: the application's answer -------------------------------------------

#[test]
fn sec_4_2_2_application_reject_401_exact_bytes() {
    let mut server = server_with_request(quiet_config());
    server
        .reject(401, &[("WWW-Authenticate", "Basic")], b"no")
        .unwrap();
    assert_eq!(server.state(), ConnectionState::Closed);
    assert!(!server.wants_shutdown());
    assert_eq!(
        String::from_utf8_lossy(&take_output(&mut server)),
        "HTTP/1.1 401 Unauthorized\r\n\
         WWW-Authenticate: Basic\r\n\
         Connection: close\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: 2\r\n\
         \r\n\
         no"
    );
    assert!(server.wants_shutdown());
    let err = Error::Handshake(HandshakeError::Rejected { status: 401 });
    assert_sticky(&mut server, &err);
    assert_eq!(
        server.accept(Accept::new()),
        Err(UsageError::NoRequestToAnswer)
    );
}

#[test]
fn sec_4_2_2_invalid_rejection_changes_nothing() {
    let mut server = server_with_request(quiet_config());
    assert_eq!(
        server.reject(200, &[], b""),
        Err(UsageError::InvalidAnswer(BuildError::InvalidStatus(200)))
    );
    assert_eq!(
        server.reject(400, &[("X-A", "1\r\nSet-Cookie: x")], b""),
        Err(UsageError::InvalidAnswer(BuildError::InvalidHeaderValue(
            "X-A".into()
        )))
    );
    assert!(server.pending_output().is_empty());
    assert_eq!(server.state(), ConnectionState::Connecting);
    server.accept(Accept::new()).unwrap();
    assert_eq!(server.state(), ConnectionState::Open);
}

#[test]
fn sec_4_2_2_unoffered_subprotocol_is_refused_and_changes_nothing() {
    let mut server = server_with_request(quiet_config());
    assert_eq!(
        server.accept(Accept::new().subprotocol("mqtt")),
        Err(UsageError::InvalidAnswer(
            BuildError::SubprotocolNotOffered("mqtt".into())
        ))
    );
    assert!(server.pending_output().is_empty());
    assert_eq!(server.state(), ConnectionState::Connecting);
    assert_eq!(server.subprotocol(), None);
    assert!(!server.wants_shutdown());
    // The request is not reported again and can still be accepted.
    assert_no_more_events(&mut server);
    server.accept(Accept::new().subprotocol("chat")).unwrap();
    assert_eq!(take_output(&mut server), SEC_1_3_RESPONSE);
    assert_eq!(server.subprotocol(), Some("chat"));
}

#[test]
fn sec_4_2_2_answer_without_a_waiting_request() {
    // A server still reading the request.
    let mut server = Connection::server(quiet_config());
    assert_eq!(
        server.accept(Accept::new()),
        Err(UsageError::NoRequestToAnswer)
    );
    assert_eq!(
        server.reject(403, &[], b""),
        Err(UsageError::NoRequestToAnswer)
    );
    server.receive(&SEC_1_2_REQUEST[..40]);
    assert_eq!(drain(&mut server), []);
    assert_eq!(
        server.accept(Accept::new()),
        Err(UsageError::NoRequestToAnswer)
    );
    assert!(server.pending_output().is_empty());

    // A server that already accepted.
    let mut server = server_with_request(quiet_config());
    server.accept(Accept::new()).unwrap();
    take_output(&mut server);
    assert_eq!(
        server.accept(Accept::new()),
        Err(UsageError::NoRequestToAnswer)
    );
    assert_eq!(
        server.reject(403, &[], b""),
        Err(UsageError::NoRequestToAnswer)
    );
    assert!(server.pending_output().is_empty());
    assert_eq!(server.state(), ConnectionState::Open);

    // A client never has a request to answer.
    let mut client = chat_client(quiet_config());
    assert_eq!(
        client.accept(Accept::new()),
        Err(UsageError::NoRequestToAnswer)
    );
    assert_eq!(
        client.reject(403, &[], b""),
        Err(UsageError::NoRequestToAnswer)
    );
    assert!(client.pending_output().is_empty());
}

#[test]
fn sec_4_2_2_no_messages_before_the_handshake_ends() {
    let mut server = Connection::server(quiet_config());
    assert_eq!(server.send_text("early"), Err(UsageError::NotOpen));
    only_request(&feed(&mut server, SEC_1_2_REQUEST));
    assert_eq!(server.send_binary(b"early"), Err(UsageError::NotOpen));
    assert_eq!(server.send_ping(b""), Err(UsageError::NotOpen));
    assert!(server.pending_output().is_empty());
    let mut client = chat_client(quiet_config());
    assert_eq!(client.send_text("early"), Err(UsageError::NotOpen));
    assert!(client.pending_output().is_empty());
}

// ----- delivery ------------------------------------------------------------------------------

#[test]
fn sec_4_2_1_byte_at_a_time_gives_the_same_request() {
    let mut whole = Connection::server(quiet_config());
    let expected = only_request(&feed(&mut whole, SEC_1_2_REQUEST));
    let mut server = Connection::server(quiet_config());
    for (i, byte) in SEC_1_2_REQUEST.iter().enumerate() {
        server.receive(&[*byte]);
        let events = drain(&mut server);
        if i + 1 < SEC_1_2_REQUEST.len() {
            assert_eq!(events, [], "after {} bytes", i + 1);
        } else {
            assert_eq!(only_request(&events), expected);
        }
    }
    server.accept(Accept::new().subprotocol("chat")).unwrap();
    assert_eq!(take_output(&mut server), SEC_1_3_RESPONSE);
}

#[test]
fn sec_4_2_1_request_and_first_frame_in_one_receive() {
    let mut server = Connection::server(quiet_config());
    let mut bytes = SEC_1_2_REQUEST.to_vec();
    bytes.extend_from_slice(MASKED_HELLO);
    only_request(&feed(&mut server, &bytes));
    // The frame waits for the answer.
    assert_no_more_events(&mut server);
    server.accept(Accept::new().subprotocol("chat")).unwrap();
    assert_eq!(take_output(&mut server), SEC_1_3_RESPONSE);
    assert_eq!(drain(&mut server), [Ev::Text("Hello".into())]);

    // A frame arriving in pieces between the request and the answer is kept too.
    let mut server = Connection::server(quiet_config());
    assert_eq!(feed_chunked(&mut server, &bytes, 3).len(), 1);
    server.accept(Accept::new()).unwrap();
    assert_eq!(drain(&mut server), [Ev::Text("Hello".into())]);
}

#[test]
fn sec_9_1_extension_offer_declined_and_rsv1_still_refused() {
    let mut server = Connection::server(quiet_config());
    let offer =
        request_plus("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n");
    let request = only_request(&feed(&mut server, &offer));
    let names: Vec<&str> = request.extensions().iter().map(|e| e.name()).collect();
    assert_eq!(names, ["permessage-deflate"]);
    server.accept(Accept::new().subprotocol("chat")).unwrap();
    // RFC 6455 §9.1: the server declines by answering without Sec-WebSocket-Extensions.
    assert_eq!(take_output(&mut server), SEC_1_3_RESPONSE);

    // RFC 6455 §5.2: RSV1 has no meaning without a negotiated extension: fail with 1002.
    let mut compressed = MASKED_HELLO.to_vec();
    compressed[0] |= 0x40;
    let err = Error::Protocol(ProtocolError::ReservedBits(0b100));
    assert_eq!(feed(&mut server, &compressed), [Ev::Error(err.clone())]);
    let reason = "reserved bits 0b100 set without a negotiated extension";
    let mut close = vec![0x88, 2 + reason.len() as u8, 0x03, 0xea];
    close.extend_from_slice(reason.as_bytes());
    assert_eq!(take_output(&mut server), close);
    assert!(server.wants_shutdown());
    assert_eq!(server.next_event().map(|_| ()), Err(err));
}

#[test]
fn sec_7_1_5_eof_during_the_handshake_is_1006_for_both_roles() {
    // Server: nothing received, half a request.
    for received in [&b""[..], &SEC_1_2_REQUEST[..50]] {
        let mut server = Connection::server(quiet_config());
        server.receive(received);
        server.receive_eof();
        assert_eq!(drain(&mut server), [Ev::Closed(1006)]);
        assert_eq!(server.state(), ConnectionState::Closed);
        assert!(server.pending_output().is_empty());
        assert!(server.wants_shutdown());
        assert_no_more_events(&mut server);
    }
    // Client: nothing received, half a response.
    for received in [&b""[..], &SEC_1_3_RESPONSE[..30]] {
        let mut client = chat_client(quiet_config());
        client.receive(received);
        client.receive_eof();
        assert_eq!(drain(&mut client), [Ev::Closed(1006)]);
        assert_eq!(client.state(), ConnectionState::Closed);
        assert!(client.pending_output().is_empty());
        assert!(client.wants_shutdown());
        assert_no_more_events(&mut client);
    }
    // Server: EOF right behind a complete request. The request is still reported; once the
    // application answers, the input ends with 1006.
    let mut server = Connection::server(quiet_config());
    server.receive(SEC_1_2_REQUEST);
    server.receive_eof();
    only_request(&drain(&mut server));
    server.accept(Accept::new()).unwrap();
    assert_eq!(drain(&mut server), [Ev::Closed(1006)]);
    assert_eq!(take_output(&mut server), SEC_1_3_RESPONSE_NO_PROTOCOL);
    assert!(server.wants_shutdown());
}

// ----- RFC 6455 §4.1: the client ---------------------------------------------------------------

#[test]
fn sec_4_1_client_request_bytes() {
    let url = "ws://example.com:8080/chat?x=1";
    let mut client = Connection::client(
        ClientRequest::new(url).unwrap(),
        quiet_config(),
        counting_entropy(),
    );
    assert_eq!(client.state(), ConnectionState::Connecting);
    assert_eq!(
        String::from_utf8_lossy(&take_output(&mut client)),
        format!(
            "GET /chat?x=1 HTTP/1.1\r\n\
             Host: example.com:8080\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Key: {COUNTING_KEY}\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
    );
    assert!(!client.wants_shutdown());

    // The key is the base64 of the 16 bytes the entropy source gives first.
    let mut client = Connection::client(
        ClientRequest::new(url).unwrap(),
        quiet_config(),
        fixed_key([0x37, 0xfa, 0x21, 0x3d]),
    );
    let sent = String::from_utf8(take_output(&mut client)).unwrap();
    assert!(
        sent.contains("\r\nSec-WebSocket-Key: N/ohPTf6IT03+iE9N/ohPQ==\r\n"),
        "{sent}"
    );
}

#[test]
fn sec_4_1_client_request_with_subprotocols_and_origin() {
    let request = ClientRequest::new("ws://server.example.com/chat")
        .unwrap()
        .subprotocol("chat")
        .unwrap()
        .subprotocol("superchat")
        .unwrap()
        .origin("http://example.com")
        .unwrap();
    let mut client = Connection::client(request, quiet_config(), counting_entropy());
    assert_eq!(
        String::from_utf8_lossy(&take_output(&mut client)),
        format!(
            "GET /chat HTTP/1.1\r\n\
             Host: server.example.com\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Key: {COUNTING_KEY}\r\n\
             Sec-WebSocket-Version: 13\r\n\
             Origin: http://example.com\r\n\
             Sec-WebSocket-Protocol: chat, superchat\r\n\r\n"
        )
    );
}

#[test]
fn sec_4_1_valid_101_gives_accepted_then_open() {
    let mut client = chat_client(quiet_config());
    let response = response_101("Sec-WebSocket-Protocol: chat\r\nSet-Cookie: a=b\r\n");
    let events = feed(&mut client, &response);
    let [Ev::Accepted(accepted)] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(accepted.status(), 101);
    assert_eq!(accepted.subprotocol(), Some("chat"));
    assert!(accepted.extensions().is_empty());
    assert_eq!(accepted.header("set-cookie"), Some(&b"a=b"[..]));
    assert_eq!(accepted.headers().count(), 5);
    assert_eq!(client.state(), ConnectionState::Open);
    assert_eq!(client.subprotocol(), Some("chat"));
    assert!(client.pending_output().is_empty());
    assert_no_more_events(&mut client);
    // Open: the first frame is masked with the next entropy bytes, 0x11..=0x14.
    client.send_text("Hi").unwrap();
    assert_eq!(
        take_output(&mut client),
        [0x81, 0x82, 0x11, 0x12, 0x13, 0x14, b'H' ^ 0x11, b'i' ^ 0x12]
    );
}

#[test]
fn sec_4_1_frames_behind_the_101_are_delivered_after_accepted() {
    let mut client = chat_client(quiet_config());
    let mut bytes = response_101("");
    bytes.extend_from_slice(UNMASKED_HELLO);
    bytes.extend_from_slice(b"\x82\x02\x01\x02\x89\x00");
    let events = feed(&mut client, &bytes);
    assert!(matches!(events[0], Ev::Accepted(_)), "{events:?}");
    assert_eq!(
        events[1..],
        [
            Ev::Text("Hello".into()),
            Ev::Binary(vec![1, 2]),
            Ev::Ping(vec![])
        ]
    );
    assert_eq!(client.subprotocol(), None);
    // The Ping is answered, masked.
    assert_eq!(
        take_output(&mut client),
        [0x8a, 0x80, 0x11, 0x12, 0x13, 0x14]
    );
}

#[test]
fn sec_4_1_redirect_carries_status_headers_and_location() {
    assert_client_fails(
        quiet_config(),
        b"HTTP/1.1 302 Found\r\nLocation: ws://other.example/chat\r\nContent-Length: 0\r\n\r\n",
        HandshakeError::UnexpectedStatus {
            status: 302,
            headers: vec![
                ("Location".into(), b"ws://other.example/chat".to_vec()),
                ("Content-Length".into(), b"0".to_vec()),
            ],
            location: Some("ws://other.example/chat".into()),
        },
    );
}

#[test]
fn sec_4_1_status_200_fails() {
    assert_client_fails(
        quiet_config(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        HandshakeError::UnexpectedStatus {
            status: 200,
            headers: vec![("Content-Length".into(), b"2".to_vec())],
            location: None,
        },
    );
}

#[test]
fn sec_4_1_wrong_or_missing_accept_fails() {
    // The §1.3 accept value belongs to another key.
    assert_client_fails(
        quiet_config(),
        SEC_1_3_RESPONSE_NO_PROTOCOL,
        HandshakeError::WrongAccept,
    );
    assert_client_fails(
        quiet_config(),
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        HandshakeError::MissingAccept,
    );
}

#[test]
fn sec_4_1_subprotocol_not_offered_fails() {
    assert_client_fails(
        quiet_config(),
        &response_101("Sec-WebSocket-Protocol: mqtt\r\n"),
        HandshakeError::SubprotocolNotOffered("mqtt".into()),
    );
}

#[test]
fn sec_4_1_extension_not_offered_fails() {
    assert_client_fails(
        quiet_config(),
        &response_101("Sec-WebSocket-Extensions: permessage-deflate\r\n"),
        HandshakeError::ExtensionNotOffered("permessage-deflate".into()),
    );
}

#[test]
fn sec_4_1_missing_upgrade_fails() {
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {COUNTING_ACCEPT}\r\n\r\n"
    );
    assert_client_fails(
        quiet_config(),
        response.as_bytes(),
        HandshakeError::ResponseMissingUpgrade,
    );
}

#[test]
fn sec_4_1_response_head_over_the_limit_fails() {
    let mut config = quiet_config();
    config.max_head_size = 200;
    // Complete but too long.
    let long = response_101(&format!("X-Pad: {}\r\n", "a".repeat(200)));
    assert_client_fails(config.clone(), &long, HandshakeError::ResponseHeadTooLarge);
    // Never ending, in pieces: fails once the limit is reached.
    let mut client = chat_client(config);
    let mut endless = b"HTTP/1.1 101 Switching Protocols\r\nX-Pad: ".to_vec();
    endless.resize(1000, b'a');
    let mut sent = 0;
    for piece in endless.chunks(9) {
        client.receive(piece);
        sent += piece.len();
        let events = drain(&mut client);
        if sent < 200 {
            assert_eq!(events, []);
        } else {
            assert_eq!(
                events,
                [Ev::Error(Error::Handshake(
                    HandshakeError::ResponseHeadTooLarge
                ))]
            );
            break;
        }
    }
    assert!(client.wants_shutdown());
}

// ----- handshake timeout (simulated time) ------------------------------------------------------

#[test]
fn handshake_timeout_server_answers_408() {
    let mut server = Connection::server(with_timeout(5));
    // The deadline needs the current time before it can be armed.
    assert_eq!(server.poll_timeout(), Some(secs(0)));
    server.receive(&SEC_1_2_REQUEST[..60]);
    assert_eq!(drain(&mut server), []);
    assert_eq!(server.poll_timeout(), Some(secs(0)));
    server.handle_timeout(secs(100));
    assert_eq!(server.poll_timeout(), Some(secs(105)));
    // More bytes do not move the deadline; early calls are harmless.
    server.receive(&SEC_1_2_REQUEST[60..100]);
    assert_eq!(drain(&mut server), []);
    server.handle_timeout(secs(104));
    assert_eq!(server.poll_timeout(), Some(secs(105)));
    assert!(server.pending_output().is_empty());
    assert_eq!(server.state(), ConnectionState::Connecting);

    server.handle_timeout(secs(105));
    assert_eq!(
        String::from_utf8_lossy(&take_output(&mut server)),
        String::from_utf8_lossy(&http_error(
            "HTTP/1.1 408 Request Timeout",
            &[],
            "close",
            "handshake timed out\n"
        ))
    );
    assert!(server.wants_shutdown());
    assert_eq!(server.poll_timeout(), None);
    let err = Error::Handshake(HandshakeError::Timeout);
    assert_sticky(&mut server, &err);
}

#[test]
fn handshake_timeout_client_fails_and_sends_nothing_more() {
    let mut client = chat_client(with_timeout(5));
    assert_eq!(client.poll_timeout(), Some(secs(0)));
    client.handle_timeout(secs(7));
    assert_eq!(client.poll_timeout(), Some(secs(12)));
    client.receive(&response_101("")[..20]);
    assert_eq!(drain(&mut client), []);
    client.handle_timeout(secs(11));
    assert_eq!(client.state(), ConnectionState::Connecting);
    client.handle_timeout(secs(12));
    assert!(client.pending_output().is_empty());
    assert!(client.wants_shutdown());
    assert_eq!(client.poll_timeout(), None);
    let err = Error::Handshake(HandshakeError::Timeout);
    assert_sticky(&mut client, &err);
}

#[test]
fn handshake_timeout_no_longer_applies_once_open() {
    // Server: accepted before the deadline.
    let mut server = Connection::server(with_timeout(5));
    server.handle_timeout(secs(0));
    only_request(&feed(&mut server, SEC_1_2_REQUEST));
    assert_eq!(server.poll_timeout(), Some(secs(5)));
    server.handle_timeout(secs(4));
    server.accept(Accept::new()).unwrap();
    take_output(&mut server);
    assert_eq!(server.poll_timeout(), None);
    server.handle_timeout(secs(60));
    assert_eq!(server.state(), ConnectionState::Open);
    assert!(server.pending_output().is_empty());
    assert_eq!(feed(&mut server, MASKED_HELLO), [Ev::Text("Hello".into())]);

    // Client: with keepalive on, the next deadline is the keepalive's, not the handshake's.
    let mut config = with_timeout(5);
    config.keepalive_interval = Some(secs(20));
    let mut client = chat_client(config);
    client.handle_timeout(secs(0));
    assert!(matches!(
        feed(&mut client, &response_101("")).as_slice(),
        [Ev::Accepted(_)]
    ));
    assert_eq!(
        client.poll_timeout(),
        Some(secs(0)),
        "keepalive needs arming"
    );
    client.handle_timeout(secs(6));
    assert_eq!(client.poll_timeout(), Some(secs(26)));
    assert_eq!(client.state(), ConnectionState::Open);
    assert!(client.pending_output().is_empty());
}

// ----- the pair harness ------------------------------------------------------------------------

#[test]
fn sec_4_handshake_to_sec_7_close_between_a_pair() {
    let request = ClientRequest::new("ws://server.example.com/chat")
        .unwrap()
        .subprotocol("chat")
        .unwrap();
    let mut p = Pair::handshake(
        request,
        Accept::new().subprotocol("chat"),
        quiet_config(),
        quiet_config(),
    );
    assert_eq!(p.client.subprotocol(), Some("chat"));
    assert_eq!(p.server.subprotocol(), Some("chat"));

    p.client.send_text("hello server").unwrap();
    p.client.send_binary(&[0, 1, 2, 255]).unwrap();
    assert_eq!(
        p.deliver_to_server(),
        [
            Ev::Text("hello server".into()),
            Ev::Binary(vec![0, 1, 2, 255])
        ]
    );
    p.server.send_binary(&[9; 300]).unwrap();
    p.server.send_text("hello client").unwrap();
    assert_eq!(
        p.deliver_to_client(),
        [Ev::Binary(vec![9; 300]), Ev::Text("hello client".into())]
    );

    p.client.close(NORMAL, "done").unwrap();
    assert_eq!(
        p.deliver_to_server(),
        [close(1000, "done"), Ev::Closed(1000)]
    );
    assert_eq!(
        p.deliver_to_client(),
        [close(1000, "done"), Ev::Closed(1000)]
    );
    assert!(p.server.wants_shutdown());
    assert!(
        !p.client.wants_shutdown(),
        "the client waits for the server's EOF"
    );
    p.client.receive_eof();
    assert!(p.client.wants_shutdown());
    assert_eq!(p.client.state(), ConnectionState::Closed);
    assert_eq!(p.server.state(), ConnectionState::Closed);
}

// ----- properties ------------------------------------------------------------------------------

/// Splits `bytes` at `cuts` (any positions, any order) and feeds each piece, draining after.
fn feed_at_cuts(conn: &mut Connection, bytes: &[u8], cuts: &[usize]) -> Vec<Ev> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.push(bytes.len());
    cuts.sort_unstable();
    let mut events = Vec::new();
    let mut at = 0;
    for cut in cuts {
        conn.receive(&bytes[at..cut]);
        at = cut;
        events.extend(drain(conn));
    }
    events
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, u8),
    Insert(usize, u8),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Replace(at, b)),
        4 => (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Insert(at, b)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = SEC_1_2_REQUEST.to_vec();
    for m in mutations {
        match *m {
            Mutation::Replace(at, b) if !bytes.is_empty() => {
                let at = at % bytes.len();
                bytes[at] = b;
            }
            Mutation::Replace(..) => {}
            Mutation::Insert(at, b) => bytes.insert(at % (bytes.len() + 1), b),
            Mutation::Truncate(at) => bytes.truncate(at % (bytes.len() + 1)),
        }
    }
    bytes
}

/// Feeds `bytes` `step` at a time to a server: it must report a request, or fail with a 4xx
/// whose exact response is queued, or still be waiting for a head under the limit.
fn check_server_outcome(
    bytes: &[u8],
    step: usize,
    max_head_size: usize,
) -> Result<(), TestCaseError> {
    let mut config = quiet_config();
    config.max_head_size = max_head_size;
    let mut server = Connection::server(config);
    let events = feed_chunked(&mut server, bytes, step);
    match events.as_slice() {
        [Ev::Request(request)] => {
            prop_assert_eq!(request.method(), "GET");
            prop_assert!(server.pending_output().is_empty());
            prop_assert_eq!(server.state(), ConnectionState::Connecting);
        }
        [Ev::Error(Error::Handshake(e))] => {
            let status = e.status();
            prop_assert!(matches!(status, Some(400..=499)), "{e} -> {status:?}");
            let out = take_output(&mut server);
            let expected = expected_error_response(e);
            prop_assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&expected)
            );
            prop_assert!(server.wants_shutdown());
        }
        [] => {
            prop_assert!(bytes.len() < max_head_size, "{} bytes", bytes.len());
            prop_assert!(server.pending_output().is_empty());
            prop_assert_eq!(server.state(), ConnectionState::Connecting);
            prop_assert!(!server.wants_shutdown());
        }
        other => prop_assert!(false, "unexpected transcript {:?}", other),
    }
    Ok(())
}

fn head_limit() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(Config::default().max_head_size), 1 => 32usize..400]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sec_4_2_1_any_chunking_gives_the_same_request_and_101(
        cuts in proptest::collection::vec(any::<usize>(), 0..24)
    ) {
        let mut whole = Connection::server(quiet_config());
        let expected = only_request(&feed(&mut whole, SEC_1_2_REQUEST));
        let mut server = Connection::server(quiet_config());
        let events = feed_at_cuts(&mut server, SEC_1_2_REQUEST, &cuts);
        prop_assert_eq!(events, vec![Ev::Request(Box::new(expected))]);
        server.accept(Accept::new().subprotocol("chat")).unwrap();
        prop_assert_eq!(take_output(&mut server), SEC_1_3_RESPONSE);
    }

    #[test]
    fn sec_4_1_any_chunking_of_101_and_frame_gives_the_same_events(
        cuts in proptest::collection::vec(any::<usize>(), 0..24)
    ) {
        let mut bytes = response_101("Sec-WebSocket-Protocol: superchat\r\n");
        bytes.extend_from_slice(UNMASKED_HELLO);
        let mut whole = chat_client(quiet_config());
        let expected = feed(&mut whole, &bytes);
        prop_assert_eq!(expected.len(), 2);
        prop_assert!(matches!(&expected[0], Ev::Accepted(r) if r.subprotocol() == Some("superchat")));
        prop_assert_eq!(&expected[1], &Ev::Text("Hello".into()));
        let mut client = chat_client(quiet_config());
        prop_assert_eq!(feed_at_cuts(&mut client, &bytes, &cuts), expected);
        prop_assert_eq!(client.subprotocol(), Some("superchat"));
        prop_assert_eq!(client.state(), ConnectionState::Open);
    }

    #[test]
    fn sec_4_2_1_arbitrary_bytes_request_or_4xx(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        step in 1usize..64,
        max_head_size in head_limit(),
    ) {
        check_server_outcome(&bytes, step, max_head_size)?;
    }

    #[test]
    fn sec_4_2_1_mutated_requests_request_or_4xx(
        mutations in proptest::collection::vec(mutation(), 1..4),
        step in 1usize..64,
        max_head_size in head_limit(),
    ) {
        check_server_outcome(&mutate(&mutations), step, max_head_size)?;
    }
}

// ----- extra probes ------------------------------------------------------------------------

#[test]
fn sec_4_1_eof_right_behind_the_101_reports_accepted_then_1006() {
    let mut client = chat_client(quiet_config());
    client.receive(&response_101(""));
    client.receive(UNMASKED_HELLO);
    client.receive_eof();
    let events = drain(&mut client);
    assert!(matches!(events[0], Ev::Accepted(_)), "{events:?}");
    assert_eq!(events[1..], [Ev::Text("Hello".into()), Ev::Closed(1006)]);
    assert!(client.wants_shutdown());
}

#[test]
fn sec_4_1_masked_frame_behind_the_101_fails_with_1002_after_accepted() {
    let mut client = chat_client(quiet_config());
    let mut bytes = response_101("");
    bytes.extend_from_slice(MASKED_HELLO);
    let events = feed(&mut client, &bytes);
    assert!(matches!(events[0], Ev::Accepted(_)), "{events:?}");
    assert_eq!(
        events[1..],
        [Ev::Error(Error::Protocol(ProtocolError::MaskedFrame))]
    );
    // The Close is masked with the next entropy bytes.
    let reason = b"received a masked frame from the server";
    let mut body = vec![0x03, 0xea];
    body.extend_from_slice(reason);
    let key = [0x11, 0x12, 0x13, 0x14];
    let mut close = vec![0x88, 0x80 | body.len() as u8];
    close.extend_from_slice(&key);
    close.extend(body.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
    assert_eq!(take_output(&mut client), close);
    assert!(client.wants_shutdown());
}

#[test]
fn sec_4_2_1_head_limit_counts_the_head_not_the_frames_behind_it() {
    let mut config = quiet_config();
    config.max_head_size = 300;
    // Server: the request and a 1000-byte masked binary frame in one read.
    let mut server = Connection::server(config.clone());
    let mut bytes = SEC_1_2_REQUEST.to_vec();
    bytes.extend_from_slice(&[0x82, 0xfe, 0x03, 0xe8, 0, 0, 0, 0]);
    bytes.extend_from_slice(&[7; 1000]);
    only_request(&feed(&mut server, &bytes));
    server.accept(Accept::new()).unwrap();
    assert_eq!(drain(&mut server), [Ev::Binary(vec![7; 1000])]);
    // Client: the 101 and a 1000-byte frame in one read.
    let mut client = chat_client(config);
    let mut bytes = response_101("");
    bytes.extend_from_slice(&[0x82, 0x7e, 0x03, 0xe8]);
    bytes.extend_from_slice(&[7; 1000]);
    let events = feed(&mut client, &bytes);
    assert!(matches!(events[0], Ev::Accepted(_)), "{events:?}");
    assert_eq!(events[1..], [Ev::Binary(vec![7; 1000])]);
}

#[test]

fn handshake_timeout_after_eof_close_is_harmless() {
    // RFC 6455 §7.1.5: the connection closed with 1006 and `Event::Closed` said no event
    // follows; a later `handle_timeout` past the old handshake deadline must change nothing.
    let mut server = Connection::server(with_timeout(5));
    server.handle_timeout(secs(0));
    server.receive(&SEC_1_2_REQUEST[..50]);
    server.receive_eof();
    assert_eq!(drain(&mut server), [Ev::Closed(1006)]);
    server.handle_timeout(secs(10));
    assert_eq!(server.state(), ConnectionState::Closed);
    assert!(server.pending_output().is_empty());
    assert_no_more_events(&mut server);
}

#[test]

fn handshake_timeout_after_reject_keeps_the_rejection() {
    // A rejected handshake is sticky with `Rejected { status }`; the old handshake deadline
    // must not replace that error.
    let mut server = Connection::server(with_timeout(5));
    server.handle_timeout(secs(0));
    only_request(&feed(&mut server, SEC_1_2_REQUEST));
    server.reject(503, &[], b"busy").unwrap();
    take_output(&mut server);
    server.handle_timeout(secs(10));
    assert!(server.pending_output().is_empty());
    let err = Error::Handshake(HandshakeError::Rejected { status: 503 });
    assert_sticky(&mut server, &err);
}

#[test]

fn handshake_timeout_after_fail_during_handshake_is_harmless() {
    let mut client = chat_client(with_timeout(5));
    client.handle_timeout(secs(0));
    client.fail(wsproto::CloseCode::GOING_AWAY, "").unwrap();
    assert_eq!(drain(&mut client), [Ev::Closed(1001)]);
    client.handle_timeout(secs(10));
    assert_eq!(client.state(), ConnectionState::Closed);
    assert_no_more_events(&mut client);
}
