//! The server handshake over the `http` crate's types (`wsproto::handshake_http`): the exact
//! 101 of RFC 6455 §4.2.2 with and without a subprotocol and permessage-deflate, the 200 of an
//! RFC 8441 extended CONNECT, every rejection answered with the status, headers and body the
//! bytes-in handshake sends for the same request, and connections that open ready to exchange
//! (compressed) frames with a client.
mod common;
use common::*;
use http::{Method, StatusCode, Version};
use wsproto::handshake_http::{Rejection, Upgrade};
use wsproto::{
    Accept, BuildError, ClientRequest, Config, Connection, ConnectionState, DeflateConfig, Error,
    HandshakeError,
};

/// RFC 6455 §1.2: the client's opening handshake.
const SEC_1_2_REQUEST: &str = "GET /chat HTTP/1.1\r\n\
    Host: server.example.com\r\n\
    Upgrade: websocket\r\n\
    Connection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Origin: http://example.com\r\n\
    Sec-WebSocket-Protocol: chat, superchat\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// RFC 6455 §1.3: the accept value for the §1.2 key.
const SEC_1_3_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

const DEFLATE_OFFER: &str = "permessage-deflate; client_max_window_bits";

// ----- helpers ---------------------------------------------------------------------------

/// The §1.2 request with the first `from` replaced by `to`.
fn request_with(from: &str, to: &str) -> String {
    assert!(
        SEC_1_2_REQUEST.contains(from),
        "{from:?} not in the request"
    );
    SEC_1_2_REQUEST.replacen(from, to, 1)
}

/// The §1.2 request with `line` (ending in CRLF) added before the blank line.
fn request_plus(line: &str) -> String {
    let head = SEC_1_2_REQUEST.strip_suffix("\r\n").unwrap();
    format!("{head}{line}\r\n\r\n")
}

/// The request head as a framework hands it over: httparse's reading of the bytes, turned
/// into `http` types (what hyper does for HTTP/1.1).
fn http_request(head: &str) -> http::Request<()> {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut slots);
    assert!(parsed.parse(head.as_bytes()).unwrap().is_complete());
    let mut builder = http::Request::builder()
        .method(parsed.method.unwrap())
        .uri(parsed.path.unwrap())
        .version(match parsed.version.unwrap() {
            1 => Version::HTTP_11,
            _ => Version::HTTP_10,
        });
    for header in parsed.headers.iter() {
        builder = builder.header(header.name, header.value);
    }
    builder.body(()).unwrap()
}

/// An RFC 8441 extended CONNECT for `wss://server.example.com/chat` with `headers`.
fn h2_request(method: Method, headers: &[(&str, &str)]) -> http::Request<()> {
    let mut builder = http::Request::builder()
        .method(method)
        .uri("https://server.example.com/chat")
        .version(Version::HTTP_2);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap()
}

/// Every header of a response, lowercase names, in order.
fn header_list(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            let value = String::from_utf8(v.as_bytes().to_vec()).unwrap();
            (n.as_str().to_owned(), value)
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// A response written by the bytes-in path: status, headers (lowercase names, in order) and
/// body.
#[derive(Debug, PartialEq, Eq)]
struct Wire {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn parse_wire(bytes: &[u8]) -> Wire {
    let mut slots = [httparse::EMPTY_HEADER; 16];
    let mut parsed = httparse::Response::new(&mut slots);
    let httparse::Status::Complete(len) = parsed.parse(bytes).unwrap() else {
        panic!("incomplete response {:?}", String::from_utf8_lossy(bytes));
    };
    let headers = parsed
        .headers
        .iter()
        .map(|h| {
            let value = String::from_utf8(h.value.to_vec()).unwrap();
            (h.name.to_ascii_lowercase(), value)
        })
        .collect();
    Wire {
        status: parsed.code.unwrap(),
        headers,
        body: bytes[len..].to_vec(),
    }
}

/// What the bytes-in path does with `head` under `config`, accepting with `accept`: the
/// verdict and the response it queues, and the connection.
fn bytes_path(head: &str, config: Config, accept: Accept) -> (Result<(), u16>, Wire, Connection) {
    let mut server = Connection::server(config);
    let events = feed(&mut server, head.as_bytes());
    let verdict = match events.as_slice() {
        [Ev::Request(_)] => {
            server.accept(accept).unwrap();
            Ok(())
        }
        [Ev::Error(Error::Handshake(err))] => Err(err.status().unwrap()),
        other => panic!("unexpected events {other:?}"),
    };
    let wire = parse_wire(&take_output(&mut server));
    (verdict, wire, server)
}

/// The same as a [`Wire`], from the `http` path.
fn http_wire<B: AsRef<[u8]>>(response: &http::Response<B>) -> Wire {
    Wire {
        status: response.status().as_u16(),
        headers: header_list(response.headers()),
        body: response.body().as_ref().to_vec(),
    }
}

fn http_path(head: &str, config: Config, accept: Accept) -> Result<Wire, Rejection> {
    let upgrade = Upgrade::from_request(&http_request(head), None, config)?;
    let (response, conn) = upgrade.accept(accept).unwrap();
    assert_eq!(conn.state(), ConnectionState::Open);
    assert_eq!(response.version(), Version::HTTP_11);
    Ok(Wire {
        status: response.status().as_u16(),
        headers: header_list(response.headers()),
        body: Vec::new(),
    })
}

/// Both paths on the same request: the same verdict and the same response, byte for byte in
/// every header value and the body. Returns the status.
#[track_caller]
fn assert_same_answer(head: &str, config: Config, accept: Accept) -> u16 {
    let (verdict, wire, _) = bytes_path(head, config.clone(), accept.clone());
    let ours = match http_path(head, config, accept) {
        Ok(wire) => wire,
        Err(rejection) => {
            assert_eq!(rejection.status().as_u16(), wire.status);
            http_wire(&rejection.response())
        }
    };
    assert_eq!(verdict.is_ok(), ours.status == 101, "{head:?}");
    assert_eq!(ours, wire, "{head:?}");
    wire.status
}

fn deflate_config() -> Config {
    quiet_config().deflate(Some(DeflateConfig::default()))
}

// ----- HTTP/1.1: the 101 -----------------------------------------------------------------

#[test]
fn sec_4_2_2_upgrade_answered_with_the_exact_101() {
    let upgrade =
        Upgrade::from_request(&http_request(SEC_1_2_REQUEST), None, quiet_config()).unwrap();
    assert!(!upgrade.is_extended_connect());
    assert_eq!(upgrade.request().host(), "server.example.com");
    assert_eq!(upgrade.request().origin(), Some("http://example.com"));
    assert_eq!(upgrade.request().subprotocols(), ["chat", "superchat"]);
    let (response, conn) = upgrade.accept(Accept::new().subprotocol("chat")).unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(response.version(), Version::HTTP_11);
    assert_eq!(
        header_list(response.headers()),
        pairs(&[
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-accept", SEC_1_3_ACCEPT),
            ("sec-websocket-protocol", "chat"),
        ])
    );
    assert_eq!(conn.state(), ConnectionState::Open);
    assert_eq!(conn.subprotocol(), Some("chat"));
    assert!(!conn.is_deflate_negotiated());
}

#[test]
fn sec_4_2_2_upgrade_without_subprotocol_and_with_extra_headers() {
    let parts = http_request(SEC_1_2_REQUEST).into_parts().0;
    let upgrade = Upgrade::new(&parts, None, quiet_config()).unwrap();
    let (response, conn) = upgrade
        .accept(Accept::new().header("Set-Cookie", "id=1"))
        .unwrap();
    assert_eq!(
        header_list(response.headers()),
        pairs(&[
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-accept", SEC_1_3_ACCEPT),
            ("set-cookie", "id=1"),
        ])
    );
    assert_eq!(conn.subprotocol(), None);
}

#[test]
fn rfc_7692_upgrade_negotiates_deflate_like_connection_server() {
    let head = request_plus(&format!("Sec-WebSocket-Extensions: {DEFLATE_OFFER}"));
    let upgrade = Upgrade::from_request(&http_request(&head), None, deflate_config()).unwrap();
    let (response, conn) = upgrade.accept(Accept::new().subprotocol("chat")).unwrap();
    assert_eq!(
        header_list(response.headers()),
        pairs(&[
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-accept", SEC_1_3_ACCEPT),
            ("sec-websocket-protocol", "chat"),
            ("sec-websocket-extensions", "permessage-deflate"),
        ])
    );
    assert!(conn.is_deflate_negotiated());
    // Exactly what `Connection::server` answers, deflate and all.
    assert_eq!(
        assert_same_answer(&head, deflate_config(), Accept::new().subprotocol("chat")),
        101
    );
    // Without deflate in the config the offer is declined, as the core declines it.
    let (response, conn) = Upgrade::from_request(&http_request(&head), None, quiet_config())
        .unwrap()
        .accept(Accept::new())
        .unwrap();
    assert!(!response.headers().contains_key("sec-websocket-extensions"));
    assert!(!conn.is_deflate_negotiated());
}

#[test]
fn sec_4_2_2_accept_refuses_what_connection_accept_refuses() {
    let upgrade =
        Upgrade::from_request(&http_request(SEC_1_2_REQUEST), None, quiet_config()).unwrap();
    assert_eq!(
        upgrade.accept(Accept::new().subprotocol("other")).err(),
        Some(BuildError::SubprotocolNotOffered("other".into()))
    );
    assert_eq!(
        upgrade
            .accept(Accept::new().header("Sec-WebSocket-Accept", "x"))
            .err(),
        Some(BuildError::ReservedHeader("Sec-WebSocket-Accept".into()))
    );
    assert_eq!(
        upgrade.accept(Accept::new().header("X-A", "a\r\nb")).err(),
        Some(BuildError::InvalidHeaderValue("X-A".into()))
    );
    // Still answerable.
    assert!(upgrade.accept(Accept::new()).is_ok());
}

// ----- HTTP/1.1: the same verdict as the bytes-in path ----------------------------------

#[test]
fn sec_4_2_1_every_rejection_matches_the_bytes_in_path() {
    let cases: Vec<(String, Config, u16)> = vec![
        (request_with("GET", "POST"), quiet_config(), 405),
        (request_with("HTTP/1.1", "HTTP/1.0"), quiet_config(), 400),
        (request_with("/chat", "*"), quiet_config(), 400),
        (
            request_with("Host: server.example.com\r\n", ""),
            quiet_config(),
            400,
        ),
        (request_plus("Host: other.example.com"), quiet_config(), 400),
        (
            request_with("Upgrade: websocket", "Upgrade: h2c"),
            quiet_config(),
            400,
        ),
        (
            request_with("Connection: Upgrade", "Connection: keep-alive"),
            quiet_config(),
            400,
        ),
        (
            request_with("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
            quiet_config(),
            426,
        ),
        (
            request_plus("Sec-WebSocket-Version: 13"),
            quiet_config(),
            426,
        ),
        (
            request_with("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
            quiet_config(),
            400,
        ),
        (
            request_with("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="),
            quiet_config(),
            400,
        ),
        (
            request_plus("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="),
            quiet_config(),
            400,
        ),
        (
            request_plus("Origin: http://evil.example"),
            quiet_config(),
            400,
        ),
        (
            request_plus("Sec-WebSocket-Extensions: permessage-deflate;;"),
            quiet_config(),
            400,
        ),
        (
            SEC_1_2_REQUEST.to_owned(),
            quiet_config().allowed_origins(Some(vec!["https://example.org".into()])),
            403,
        ),
        (
            SEC_1_2_REQUEST.to_owned(),
            quiet_config().max_headers(4),
            431,
        ),
        // And the ones both accept.
        (SEC_1_2_REQUEST.to_owned(), quiet_config(), 101),
        (
            request_with("GET /chat", "GET ws://server.example.com/chat?room=1"),
            quiet_config(),
            101,
        ),
        (
            request_with("Connection: Upgrade", "Connection: keep-alive, UPGRADE"),
            quiet_config(),
            101,
        ),
        (
            SEC_1_2_REQUEST.to_owned(),
            quiet_config().allowed_origins(Some(vec!["HTTP://EXAMPLE.COM".into()])),
            101,
        ),
        (
            SEC_1_2_REQUEST.to_owned(),
            quiet_config().max_headers(7),
            101,
        ),
    ];
    for (head, config, status) in cases {
        assert_eq!(
            assert_same_answer(&head, config, Accept::new()),
            status,
            "{head:?}"
        );
    }
}

#[test]
fn sec_4_2_2_rejection_response_is_the_exact_426() {
    let head = request_with("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
    let rejection = Upgrade::from_request(&http_request(&head), None, quiet_config()).unwrap_err();
    assert_eq!(rejection.error(), &HandshakeError::UnsupportedVersion);
    let response = rejection.response();
    assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
    let body = "unsupported Sec-WebSocket-Version: expected 13\n";
    assert_eq!(
        header_list(response.headers()),
        pairs(&[
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("connection", "Upgrade, close"),
            ("content-type", "text/plain; charset=utf-8"),
            ("content-length", &body.len().to_string()),
        ])
    );
    assert_eq!(response.body(), body);
    assert_eq!(
        HandshakeError::from(rejection),
        HandshakeError::UnsupportedVersion
    );
}

// ----- HTTP/2: RFC 8441 extended CONNECT -------------------------------------------------

#[test]
fn rfc_8441_5_extended_connect_answered_with_200_and_no_accept() {
    let request = h2_request(
        Method::CONNECT,
        &[
            ("sec-websocket-version", "13"),
            ("sec-websocket-protocol", "chat, superchat"),
            ("origin", "http://example.com"),
            ("sec-websocket-extensions", DEFLATE_OFFER),
        ],
    );
    let upgrade = Upgrade::from_request(&request, Some("websocket"), deflate_config()).unwrap();
    assert!(upgrade.is_extended_connect());
    assert_eq!(upgrade.request().method(), "CONNECT");
    assert_eq!(upgrade.request().host(), "server.example.com");
    assert_eq!(upgrade.request().path(), "/chat");
    assert_eq!(upgrade.request().key(), "");
    let (response, conn) = upgrade.accept(Accept::new().subprotocol("chat")).unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(
        header_list(response.headers()),
        pairs(&[
            ("sec-websocket-protocol", "chat"),
            ("sec-websocket-extensions", "permessage-deflate"),
        ])
    );
    assert_eq!(conn.state(), ConnectionState::Open);
    assert!(conn.is_deflate_negotiated());

    // The smallest one: no subprotocol, no extension, no headers at all in the answer.
    let request = h2_request(Method::CONNECT, &[("sec-websocket-version", "13")]);
    let (response, _) = Upgrade::from_request(&request, Some("websocket"), quiet_config())
        .unwrap()
        .accept(Accept::new())
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().is_empty());
}

/// A request, its `:protocol`, the error and the headers before the body's.
type H2Case = (
    http::Request<()>,
    Option<&'static str>,
    HandshakeError,
    Vec<(&'static str, &'static str)>,
);

#[test]
fn rfc_8441_rejections_carry_no_connection_specific_headers() {
    let version = [("sec-websocket-version", "13")];
    let cases: Vec<H2Case> = vec![
        (
            h2_request(Method::GET, &version),
            Some("websocket"),
            HandshakeError::MethodNotConnect,
            vec![("allow", "CONNECT")],
        ),
        (
            h2_request(Method::CONNECT, &version),
            None,
            HandshakeError::MissingProtocol,
            vec![],
        ),
        (
            h2_request(Method::CONNECT, &version),
            Some("chat"),
            HandshakeError::MissingProtocol,
            vec![],
        ),
        (
            h2_request(Method::CONNECT, &[("sec-websocket-version", "8")]),
            Some("websocket"),
            HandshakeError::UnsupportedVersion,
            vec![("sec-websocket-version", "13")],
        ),
        (
            h2_request(Method::CONNECT, &[]),
            Some("websocket"),
            HandshakeError::UnsupportedVersion,
            vec![("sec-websocket-version", "13")],
        ),
        (
            http::Request::builder()
                .method(Method::CONNECT)
                .uri("/chat")
                .version(Version::HTTP_2)
                .header("sec-websocket-version", "13")
                .body(())
                .unwrap(),
            Some("websocket"),
            HandshakeError::MissingHost,
            vec![],
        ),
    ];
    for (request, protocol, err, headers) in cases {
        let rejection = Upgrade::from_request(&request, protocol, quiet_config()).unwrap_err();
        assert_eq!(rejection.error(), &err);
        let response = rejection.response();
        assert_eq!(Some(response.status().as_u16()), err.status());
        let body = format!("{err}\n");
        let mut expected = pairs(&headers);
        expected.extend(pairs(&[
            ("content-type", "text/plain; charset=utf-8"),
            ("content-length", &body.len().to_string()),
        ]));
        assert_eq!(header_list(response.headers()), expected, "{err}");
        assert_eq!(response.body(), &body);
    }
    // A key is not needed, and one sent is not looked at (RFC 8441 §5).
    let request = h2_request(
        Method::CONNECT,
        &[("sec-websocket-version", "13"), ("sec-websocket-key", "x")],
    );
    assert!(Upgrade::from_request(&request, Some("websocket"), quiet_config()).is_ok());
    // `:protocol` means nothing over HTTP/1.1: the RFC 6455 rules apply.
    let request = http_request(SEC_1_2_REQUEST);
    assert!(Upgrade::from_request(&request, Some("chat"), quiet_config()).is_ok());
}

// ----- the connection that comes out ----------------------------------------------------

/// RFC 7692 §6 through the `http` path: a client's real request, the `http` answer written
/// back as bytes, and compressed messages both ways.
#[test]
fn rfc_7692_6_upgraded_connection_exchanges_compressed_frames_with_a_client() {
    let request = ClientRequest::new("ws://server.example.com/chat")
        .unwrap()
        .subprotocol("chat")
        .unwrap();
    let mut client = Connection::client(request, deflate_config(), counting_entropy());
    let head = String::from_utf8(take_output(&mut client)).unwrap();
    let upgrade = Upgrade::from_request(&http_request(&head), None, deflate_config()).unwrap();
    let (response, mut server) = upgrade.accept(Accept::new().subprotocol("chat")).unwrap();

    // What hyper would write for this response.
    let mut wire = String::from("HTTP/1.1 101 Switching Protocols\r\n");
    for (name, value) in response.headers() {
        wire.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    wire.push_str("\r\n");
    match feed(&mut client, wire.as_bytes()).as_slice() {
        [Ev::Accepted(accepted)] => assert_eq!(accepted.subprotocol(), Some("chat")),
        other => panic!("expected Accepted, got {other:?}"),
    }
    assert!(client.is_deflate_negotiated());
    assert!(server.is_deflate_negotiated());

    let text = "a compressible message, ".repeat(40);
    client.send_text(&text).unwrap();
    let frame = take_output(&mut client);
    assert_eq!(frame[0], 0xc1, "FIN + RSV1 + text");
    assert!(
        frame.len() < text.len() / 4,
        "compressed: {} bytes",
        frame.len()
    );
    assert_eq!(feed(&mut server, &frame), [Ev::Text(text.clone())]);

    server.send_binary(text.as_bytes()).unwrap();
    let frame = take_output(&mut server);
    assert_eq!(frame[0], 0xc2, "FIN + RSV1 + binary");
    assert_eq!(
        feed(&mut client, &frame),
        [Ev::Binary(text.clone().into_bytes())]
    );

    // Below the threshold, a message goes out plain.
    server.send_text("hi").unwrap();
    assert_eq!(take_output(&mut server), b"\x81\x02hi");
}

/// RFC 8441 §5: after the 200, the stream carries WebSocket frames as on HTTP/1.1.
#[test]
fn rfc_8441_5_upgraded_stream_exchanges_frames() {
    let request = h2_request(Method::CONNECT, &[("sec-websocket-version", "13")]);
    let (_, mut server) = Upgrade::from_request(&request, Some("websocket"), quiet_config())
        .unwrap()
        .accept(Accept::new())
        .unwrap();
    let mut client = Connection::upgraded_client(quiet_config(), counting_entropy());
    client.send_text("Hello").unwrap();
    assert_eq!(
        feed(&mut server, &take_output(&mut client)),
        [Ev::Text("Hello".into())]
    );
    server.send_text("Hello").unwrap();
    let frame = take_output(&mut server);
    assert_eq!(frame, b"\x81\x05Hello");
    assert_eq!(feed(&mut client, &frame), [Ev::Text("Hello".into())]);
}
