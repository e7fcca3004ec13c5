//! permessage-deflate (RFC 7692) through the connection: negotiation, compressed messages
//! both ways, fragmentation, context takeover, limits and the rules on RSV1.
mod common;
use common::*;
use wsproto::{
    Accept, ClientRequest, CloseCode, Config, Connection, DeflateConfig, Error, MessageKind,
    ProtocolError,
};

fn deflate_config(deflate: DeflateConfig) -> Config {
    let mut config = quiet_config();
    config.deflate = Some(deflate);
    config
}

fn pair(client: DeflateConfig, server: DeflateConfig) -> Pair {
    Pair::handshake(
        ClientRequest::new("ws://example.com/").unwrap(),
        Accept::new(),
        deflate_config(client),
        deflate_config(server),
    )
}

/// Default settings changed by `change`.
fn with(change: impl FnOnce(&mut DeflateConfig)) -> DeflateConfig {
    let mut deflate = DeflateConfig::default();
    change(&mut deflate);
    deflate
}

fn text_of(len: usize) -> String {
    "compress me please ".repeat(len / 19 + 1)[..len].to_string()
}

#[test]
fn rfc_7692_5_negotiation_headers() {
    let mut client = Connection::client(
        ClientRequest::new("ws://example.com/").unwrap(),
        deflate_config(DeflateConfig::default()),
        counting_entropy(),
    );
    let request = String::from_utf8(take_output(&mut client)).unwrap();
    assert!(
        request.contains(
            "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        ),
        "{request}"
    );
    let mut server = Connection::server(deflate_config(DeflateConfig::default()));
    assert!(matches!(
        feed(&mut server, request.as_bytes()).as_slice(),
        [Ev::Request(_)]
    ));
    server.accept(Accept::new()).unwrap();
    let response = String::from_utf8(take_output(&mut server)).unwrap();
    assert!(
        response.contains("\r\nSec-WebSocket-Extensions: permessage-deflate\r\n"),
        "{response}"
    );
}

#[test]
fn rfc_7692_7_2_3_1_compressed_hello_from_the_server() {
    let mut p = pair(DeflateConfig::default(), DeflateConfig::default());
    assert_eq!(
        feed(
            &mut p.client,
            &[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
        ),
        [Ev::Text("Hello".into())]
    );
}

#[test]
fn rfc_7692_6_messages_round_trip_compressed_both_ways() {
    let mut p = pair(DeflateConfig::default(), DeflateConfig::default());
    let text = text_of(5000);
    p.client.send_text(&text).unwrap();
    let wire = take_output(&mut p.client);
    assert_eq!(wire[0], 0xc1, "FIN + RSV1 + text");
    assert!(
        wire.len() < 200,
        "5000 repetitive bytes compress to {} bytes",
        wire.len()
    );
    assert_eq!(feed(&mut p.server, &wire), [Ev::Text(text.clone())]);

    let binary: Vec<u8> = (0..70_000u32).map(|i| (i % 7) as u8).collect();
    p.server.send_binary(&binary).unwrap();
    let wire = take_output(&mut p.server);
    assert_eq!(wire[0], 0xc2, "FIN + RSV1 + binary");
    assert_eq!(feed(&mut p.client, &wire), [Ev::Binary(binary)]);
}

#[test]
fn rfc_7692_messages_below_the_threshold_go_uncompressed() {
    let mut p = pair(DeflateConfig::default(), DeflateConfig::default());
    p.server.send_text("tiny").unwrap();
    assert_eq!(take_output(&mut p.server), b"\x81\x04tiny");
    p.server.send_text("").unwrap();
    assert_eq!(take_output(&mut p.server), b"\x81\x00");
}

#[test]
fn rfc_7692_6_1_fragmented_compressed_message() {
    let mut p = pair(DeflateConfig::default(), DeflateConfig::default());
    let parts = [text_of(300), "é".repeat(200), text_of(10)];
    p.server
        .send_fragment(MessageKind::Text, parts[0].as_bytes(), false)
        .unwrap();
    p.server.send_ping(b"between").unwrap();
    p.server
        .send_fragment(MessageKind::Text, parts[1].as_bytes(), false)
        .unwrap();
    p.server
        .send_fragment(MessageKind::Text, parts[2].as_bytes(), true)
        .unwrap();
    let wire = take_output(&mut p.server);
    // RSV1 on the first frame only; the Ping and the continuations have it clear.
    assert_eq!(wire[0], 0x41, "RSV1 + text, no FIN");
    let events = feed_chunked(&mut p.client, &wire, 7);
    assert_eq!(
        events,
        [Ev::Ping(b"between".to_vec()), Ev::Text(parts.concat())]
    );
}

#[test]
fn rfc_7692_7_2_3_6_empty_compressed_message() {
    let mut p = pair(DeflateConfig::default(), DeflateConfig::default());
    // An empty deflate block: "\x00" (RFC 7692 §7.2.3.6), RSV1 set.
    assert_eq!(
        feed(&mut p.client, &[0xc1, 0x01, 0x00]),
        [Ev::Text(String::new())]
    );
    assert_eq!(feed(&mut p.client, &[0xc2, 0x00]), [Ev::Binary(Vec::new())]);
}

#[test]
fn rfc_7692_7_1_1_context_takeover_and_no_context_takeover() {
    let text = text_of(1000);
    let sizes = |client: DeflateConfig, server: DeflateConfig| {
        let mut p = pair(client, server);
        let mut sizes = Vec::new();
        for _ in 0..3 {
            p.server.send_text(&text).unwrap();
            let wire = take_output(&mut p.server);
            sizes.push(wire.len());
            assert_eq!(feed(&mut p.client, &wire), [Ev::Text(text.clone())]);
            p.client.send_text(&text).unwrap();
            assert_eq!(p.deliver_to_server(), [Ev::Text(text.clone())]);
        }
        sizes
    };
    let kept = sizes(DeflateConfig::default(), DeflateConfig::default());
    assert!(
        kept[1] < kept[0],
        "context takeover shrinks repeats: {kept:?}"
    );
    let reset = sizes(
        DeflateConfig::default(),
        with(|d| d.server_no_context_takeover = true),
    );
    assert_eq!(
        reset[0], reset[1],
        "no context takeover: every message alike: {reset:?}"
    );
    assert_eq!(reset[0], kept[0]);
}

#[test]
fn rfc_7692_7_1_2_1_window_of_8_bits_sends_uncompressed() {
    let mut p = pair(
        with(|d| d.server_max_window_bits = Some(8)),
        DeflateConfig::default(),
    );
    let text = text_of(1000);
    p.server.send_text(&text).unwrap();
    let wire = take_output(&mut p.server);
    assert_eq!(
        wire[0], 0x81,
        "zlib cannot honour a 256-byte window: sent plain"
    );
    assert_eq!(feed(&mut p.client, &wire), [Ev::Text(text.clone())]);
    // The client still compresses with its full window.
    p.client.send_text(&text).unwrap();
    let wire = take_output(&mut p.client);
    assert_eq!(wire[0], 0xc1);
    assert_eq!(feed(&mut p.server, &wire), [Ev::Text(text)]);
}

#[test]
fn rfc_7692_6_rsv1_on_control_or_continuation_frames_is_a_protocol_error() {
    for frame in [&[0xc9, 0x00][..], &[0x01, 0x01, b'a', 0xc0, 0x01, b'b'][..]] {
        let mut p = pair(DeflateConfig::default(), DeflateConfig::default());
        let events = feed(&mut p.client, frame);
        assert!(
            matches!(
                events.last(),
                Some(Ev::Error(Error::Protocol(ProtocolError::ReservedBits(_))))
            ),
            "{frame:x?}: {events:?}"
        );
        let close = take_output(&mut p.client);
        assert_eq!(
            feed(&mut p.server, &close)[0],
            Ev::Close(
                1002,
                "reserved bits 0b100 set without a negotiated extension".into()
            )
        );
    }
}

#[test]
fn rfc_7692_rsv1_without_negotiation_is_a_protocol_error() {
    let mut p = pair(DeflateConfig::default(), DeflateConfig::default());
    drop(p.client);
    p.client = Connection::upgraded_client(quiet_config(), counting_entropy());
    let events = feed(
        &mut p.client,
        &[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
    );
    assert_eq!(
        events,
        [Ev::Error(Error::Protocol(ProtocolError::ReservedBits(
            0b100
        )))]
    );
}

#[test]
fn server_without_deflate_declines_and_messages_stay_plain() {
    let mut p = Pair::handshake(
        ClientRequest::new("ws://example.com/").unwrap(),
        Accept::new(),
        deflate_config(DeflateConfig::default()),
        quiet_config(),
    );
    let text = text_of(1000);
    p.client.send_text(&text).unwrap();
    let wire = take_output(&mut p.client);
    assert_eq!(wire[0], 0x81);
    assert_eq!(feed(&mut p.server, &wire), [Ev::Text(text)]);
}

#[test]
fn corrupt_compressed_data_fails_with_1007() {
    let mut p = pair(DeflateConfig::default(), DeflateConfig::default());
    let events = feed(&mut p.client, &[0xc1, 0x04, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(
        events,
        [Ev::Error(Error::Protocol(
            ProtocolError::InvalidCompressedData
        ))]
    );
    let close = take_output(&mut p.client);
    assert_eq!(
        feed(&mut p.server, &close)[0],
        Ev::Close(1007, "invalid compressed data".into())
    );
}

#[test]
fn inflated_text_is_validated_fail_fast() {
    // The server's compressor is used to produce a compressed fragment with invalid UTF-8:
    // it is sent as binary, then the first byte is patched to say text.
    let mut p = pair(DeflateConfig::default(), DeflateConfig::default());
    let mut bad = text_of(500).into_bytes();
    bad[10] = 0xff;
    p.server
        .send_fragment(MessageKind::Binary, &bad, false)
        .unwrap();
    let mut wire = take_output(&mut p.server);
    assert_eq!(wire[0], 0x42);
    wire[0] = 0x41;
    // The first fragment alone fails: no need to wait for the end of the message.
    let events = feed(&mut p.client, &wire);
    assert_eq!(
        events,
        [Ev::Error(Error::Protocol(ProtocolError::InvalidUtf8))]
    );
}

#[test]
fn inflated_size_is_limited() {
    let mut client_config = deflate_config(DeflateConfig::default());
    client_config.max_message_size = 1000;
    let mut p = Pair::handshake(
        ClientRequest::new("ws://example.com/").unwrap(),
        Accept::new(),
        client_config,
        deflate_config(DeflateConfig::default()),
    );
    p.server.send_binary(&[0u8; 1000]).unwrap();
    assert_eq!(p.deliver_to_client(), [Ev::Binary(vec![0; 1000])]);
    p.server.send_binary(&[0u8; 1001]).unwrap();
    let events = p.deliver_to_client();
    assert_eq!(
        events,
        [Ev::Error(Error::Protocol(ProtocolError::MessageTooLarge {
            len: 1001,
            max: 1000
        }))]
    );
    assert_eq!(
        p.client.next_event().unwrap_err().close_code(),
        Some(CloseCode::MESSAGE_TOO_BIG)
    );
}

#[test]
fn idle_connection_with_no_context_takeover_holds_no_buffers() {
    let no_context = with(|d| {
        d.server_no_context_takeover = true;
        d.client_no_context_takeover = true;
    });
    let mut p = pair(no_context.clone(), no_context.clone());
    p.client.send_text(&text_of(5000)).unwrap();
    assert_eq!(p.deliver_to_server().len(), 1);
    assert_eq!(drain(&mut p.server), []);
    assert_eq!(p.server.heap_size(), 0);

    // With a linger, the inflate buffer is kept for the next message, then freed with the
    // others.
    let mut lingering = deflate_config(no_context);
    lingering.buffer_linger = Some(secs(1));
    let mut p = Pair::handshake(
        ClientRequest::new("ws://example.com/").unwrap(),
        Accept::new(),
        lingering.clone(),
        lingering,
    );
    p.client.send_text(&text_of(5000)).unwrap();
    assert_eq!(p.deliver_to_server().len(), 1);
    assert_eq!(drain(&mut p.server), []);
    assert!(p.server.heap_size() >= 5000);
    p.server.release_buffers();
    assert_eq!(p.server.heap_size(), 0);
}

/// A message sent by reference is compressed like any other: nothing stays lent.
#[test]
fn rfc_7692_borrowed_send_is_compressed() {
    let mut p = pair(DeflateConfig::default(), DeflateConfig::default());
    let text = text_of(4_000);
    let mut sender = p.server.sender();
    sender.send_text_borrowed(&text).unwrap();
    let [queued, lent] = sender.pending_output();
    assert_eq!(lent, b"", "compressed bytes are new bytes");
    assert_eq!(queued[0], 0xc1, "FIN, RSV1, text");
    assert!(queued.len() < 200, "compressed: {} bytes", queued.len());
    drop(sender);
    assert_eq!(p.deliver_to_client(), [Ev::Text(text)]);
}
