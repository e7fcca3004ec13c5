//! `Connection::next_event_with_sender`: replies queued while the event borrows its payload,
//! byte for byte, and large payloads queued at any alignment of their source.
mod common;
use common::*;
use wsproto::{CloseCode, Connection, Event, UsageError};

/// RFC 6455 §5.7: a masked "Hello" from a client.
const MASKED_HELLO: [u8; 11] = [
    0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
];

/// Echoes every text and binary event through the sender; returns the events seen.
fn echo_all(conn: &mut Connection) -> Vec<Ev> {
    let mut seen = Vec::new();
    while let Some((event, mut sender)) = conn.next_event_with_sender().unwrap() {
        seen.push(Ev::from_event(&event));
        match event {
            Event::Text(text) => sender.send_text(text).unwrap(),
            Event::Binary(data) => sender.send_binary(data).unwrap(),
            _ => {}
        }
    }
    seen
}

#[test]
fn server_echoes_sec_5_7_hello_unmasked() {
    let mut server = Connection::upgraded_server(quiet_config());
    server.receive(&MASKED_HELLO);
    assert_eq!(echo_all(&mut server), [Ev::Text("Hello".into())]);
    assert_eq!(take_output(&mut server), b"\x81\x05Hello");
}

#[test]
fn pong_and_reply_go_out_in_order() {
    let mut server = Connection::upgraded_server(quiet_config());
    // A masked Ping "Hello" (RFC 6455 §5.7, key 37 fa 21 3d), then the masked text.
    let mut input = vec![
        0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    input.extend_from_slice(&MASKED_HELLO);
    server.receive(&input);
    assert_eq!(
        echo_all(&mut server),
        [Ev::Ping(b"Hello".to_vec()), Ev::Text("Hello".into())]
    );
    assert_eq!(take_output(&mut server), b"\x8a\x05Hello\x81\x05Hello");
}

#[test]
fn client_reply_is_masked_with_its_next_key() {
    let mut client =
        Connection::upgraded_client(quiet_config(), fixed_key([0x37, 0xfa, 0x21, 0x3d]));
    client.receive(b"\x82\x03abc");
    assert_eq!(echo_all(&mut client), [Ev::Binary(b"abc".to_vec())]);
    let masked: Vec<u8> = b"abc"
        .iter()
        .zip([0x37, 0xfa, 0x21])
        .map(|(b, k)| b ^ k)
        .collect();
    let mut expected = vec![0x82, 0x83, 0x37, 0xfa, 0x21, 0x3d];
    expected.extend_from_slice(&masked);
    assert_eq!(take_output(&mut client), expected);
}

#[test]
fn sender_refuses_once_the_connection_is_not_open() {
    let mut server = Connection::upgraded_server(quiet_config());
    server.close(CloseCode::NORMAL, "").unwrap();
    let close = take_output(&mut server);
    assert_eq!(close, [0x88, 0x02, 0x03, 0xe8]);
    // The peer's Close (masked, code 1000) ends the handshake; a reply is refused.
    server.receive(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]);
    let (event, mut sender) = server.next_event_with_sender().unwrap().unwrap();
    assert_eq!(
        Ev::from_event(&event),
        Ev::Close(1000, String::new()),
        "the Close is still reported"
    );
    assert_eq!(sender.send_text("late"), Err(UsageError::NotOpen));
    assert_eq!(sender.send_binary(b"late"), Err(UsageError::NotOpen));
    drop(sender);
    assert_eq!(server.pending_output(), b"", "nothing was queued");
}

#[test]
fn sender_refuses_during_a_fragmented_send() {
    let mut server = Connection::upgraded_server(quiet_config());
    server
        .send_fragment(wsproto::MessageKind::Text, b"par", false)
        .unwrap();
    server.receive(&MASKED_HELLO);
    let (_, mut sender) = server.next_event_with_sender().unwrap().unwrap();
    assert_eq!(
        sender.send_text("Hello"),
        Err(UsageError::MessageInProgress)
    );
    drop(sender);
    assert_eq!(take_output(&mut server), b"\x01\x03par");
}

/// Large payloads start a few bytes into an empty output buffer, at the alignment of their
/// source; whatever that gap is, the pending output is exactly header + payload, and
/// consuming it in pieces gives the same bytes.
#[test]
fn large_payload_from_any_source_alignment_queues_exact_bytes() {
    let source: Vec<u8> = (0..70_000u32 + 64).map(|i| (i * 31 + 7) as u8).collect();
    for offset in 0..64 {
        let payload = &source[offset..offset + 70_000];
        // No high-water mark: the second message queues behind the first unwritten one.
        let mut server = Connection::upgraded_server(quiet_config().output_high_water(None));
        server.send_binary(payload).unwrap();
        let mut expected = vec![0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0x11, 0x70];
        expected.extend_from_slice(payload);
        assert_eq!(server.pending_output(), &expected[..], "offset {offset}");
        // A second message queued behind the first follows it directly.
        server.send_text("next").unwrap();
        expected.extend_from_slice(b"\x81\x04next");
        let mut written = Vec::new();
        while server.wants_write() {
            let n = server.pending_output().len().min(4_099);
            written.extend_from_slice(&server.pending_output()[..n]);
            server.consume_output(n);
        }
        assert_eq!(written, expected, "offset {offset}");
    }
}

/// A client masks a large payload after the aligned copy; the server gets it back exact.
#[test]
fn large_masked_payloads_round_trip_at_any_alignment() {
    let source: Vec<u8> = (0..5_000u32 + 64).map(|i| (i * 13 + 1) as u8).collect();
    let text = "é".repeat(3_000);
    for offset in 0..64 {
        let mut pair = Pair::new();
        pair.client
            .send_binary(&source[offset..offset + 5_000])
            .unwrap();
        pair.client.send_text(&text).unwrap();
        assert_eq!(
            pair.deliver_to_server(),
            [
                Ev::Binary(source[offset..offset + 5_000].to_vec()),
                Ev::Text(text.clone())
            ],
            "offset {offset}"
        );
    }
}

/// A masked binary frame of `payload` from a client with key 0 (so the masked bytes are the
/// payload itself), with the 16-bit length form.
fn client_binary(payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).unwrap().to_be_bytes();
    let mut frame = vec![0x82, 0xfe, len[0], len[1], 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    frame
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len as u32).map(|i| (i * 7 + 3) as u8).collect()
}

/// A server echo sent by reference: the header is queued, the payload is the event's own
/// bytes in the receive buffer, and writes that cross the boundary between the two slices
/// give exactly header + payload.
#[test]
fn borrowed_echo_writes_header_then_the_received_bytes() {
    let payload = pattern(5_000);
    let mut server = Connection::upgraded_server(quiet_config());
    server.receive(&client_binary(&payload));
    let mut written = Vec::new();
    {
        let (event, mut sender) = server.next_event_with_sender().unwrap().unwrap();
        let Event::Binary(data) = event else {
            panic!("expected binary, got {:?}", Ev::from_event(&event));
        };
        sender.send_binary_borrowed(data).unwrap();
        let [header, rest] = sender.pending_output();
        assert_eq!(header, [0x82, 0x7e, 0x13, 0x88]);
        assert_eq!(rest, &payload[..]);
        assert!(core::ptr::eq(rest, data), "the payload is lent, not copied");
        while sender.pending_output().iter().any(|s| !s.is_empty()) {
            let [a, b] = sender.pending_output();
            // Writes of 3 bytes, then 997-byte ones: the first crosses into the payload.
            let n = if written.is_empty() { 3 } else { 997 };
            let n = n.min(a.len() + b.len());
            let mut both = a.to_vec();
            both.extend_from_slice(b);
            written.extend_from_slice(&both[..n]);
            sender.consume_output(n);
        }
    }
    let mut expected = vec![0x82, 0x7e, 0x13, 0x88];
    expected.extend_from_slice(&payload);
    assert_eq!(written, expected);
    assert_eq!(server.pending_output(), b"", "nothing was left to copy");
}

/// Dropped half-written, the sender copies the unwritten rest behind what was written.
#[test]
fn dropped_sender_copies_the_unwritten_rest_into_the_output() {
    let payload = pattern(3_000);
    let mut server = Connection::upgraded_server(quiet_config());
    // Half the header written.
    let mut sender = server.sender();
    sender.send_binary_borrowed(&payload).unwrap();
    sender.consume_output(2);
    drop(sender);
    let mut expected = vec![0x0b, 0xb8];
    expected.extend_from_slice(&payload);
    assert_eq!(server.pending_output(), &expected[..]);
    let _ = take_output(&mut server);
    // The header and 100 payload bytes written.
    let mut sender = server.sender();
    sender.send_binary_borrowed(&payload).unwrap();
    sender.consume_output(4 + 100);
    drop(sender);
    let mut expected = payload[100..].to_vec();
    assert_eq!(server.pending_output(), &expected[..]);
    // Later frames go behind it.
    server.send_text("next").unwrap();
    expected.extend_from_slice(b"\x81\x04next");
    assert_eq!(take_output(&mut server), expected);
}

/// A second send settles the first: its payload is copied behind its header, and only the
/// newest payload stays lent.
#[test]
fn second_borrowed_send_copies_the_first_payload_behind_its_header() {
    let first = pattern(1_024);
    let second = "ü".repeat(600);
    let mut server = Connection::upgraded_server(quiet_config());
    let mut sender = server.sender();
    sender.send_binary_borrowed(&first).unwrap();
    sender.send_text_borrowed(&second).unwrap();
    let mut queued = vec![0x82, 0x7e, 0x04, 0x00];
    queued.extend_from_slice(&first);
    queued.extend_from_slice(&[0x81, 0x7e, 0x04, 0xb0]);
    assert_eq!(sender.pending_output(), [&queued[..], second.as_bytes()]);
    // A copied send behind a lent payload settles it too.
    sender.send_text("tail").unwrap();
    queued.extend_from_slice(second.as_bytes());
    queued.extend_from_slice(b"\x81\x04tail");
    assert_eq!(sender.pending_output(), [&queued[..], &[][..]]);
    drop(sender);
    assert_eq!(take_output(&mut server), queued);
}

/// Sends `payload` by reference and checks that it was copied instead: all of `expected` is
/// queued, nothing is lent, and the connection's output is `expected` once the sender drops.
fn assert_sent_as_copy(conn: &mut Connection, payload: &[u8], expected: &[u8]) {
    let mut sender = conn.sender();
    sender.send_binary_borrowed(payload).unwrap();
    assert_eq!(sender.pending_output(), [expected, &[][..]]);
    drop(sender);
    assert_eq!(take_output(conn), expected);
}

/// Short payloads and a client's (masked) are copied as `send_binary` would.
#[test]
fn short_and_masked_payloads_are_copied() {
    let short = pattern(1_023);
    let mut server = Connection::upgraded_server(quiet_config());
    let mut expected = vec![0x82, 0x7e, 0x03, 0xff];
    expected.extend_from_slice(&short);
    assert_sent_as_copy(&mut server, &short, &expected);

    let key = [0x37, 0xfa, 0x21, 0x3d];
    let payload = pattern(2_000);
    let mut client = Connection::upgraded_client(quiet_config(), fixed_key(key));
    let mut expected = vec![0x82, 0xfe, 0x07, 0xd0, 0x37, 0xfa, 0x21, 0x3d];
    expected.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    assert_sent_as_copy(&mut client, &payload, &expected);
}

#[test]
fn borrowed_sends_refuse_once_the_connection_is_not_open() {
    let payload = pattern(2_000);
    let mut server = Connection::upgraded_server(quiet_config());
    server.close(CloseCode::NORMAL, "").unwrap();
    let _ = take_output(&mut server);
    let mut sender = server.sender();
    assert_eq!(
        sender.send_binary_borrowed(&payload),
        Err(UsageError::NotOpen)
    );
    assert_eq!(sender.send_text_borrowed("late"), Err(UsageError::NotOpen));
    assert_eq!(sender.pending_output(), [&[][..], &[][..]]);
}

#[test]
#[should_panic(expected = "consumed more bytes than are pending")]
fn consuming_past_the_lent_payload_panics() {
    let payload = pattern(2_000);
    let mut server = Connection::upgraded_server(quiet_config());
    let mut sender = server.sender();
    sender.send_binary_borrowed(&payload).unwrap();
    sender.consume_output(4 + 2_001);
}

/// A leaked sender cannot append the payload its header announced: the connection refuses
/// to hand out output that would break the framing.
#[test]
#[should_panic(expected = "leaked")]
fn leaked_sender_with_a_lent_payload_is_caught() {
    let payload = pattern(2_000);
    let mut server = Connection::upgraded_server(quiet_config());
    let mut sender = server.sender();
    sender.send_binary_borrowed(&payload).unwrap();
    core::mem::forget(sender);
    let _ = server.pending_output();
}

/// A second sender after a leaked one would queue behind the orphaned header: it is refused.
#[test]
#[should_panic(expected = "leaked")]
fn sender_after_a_leaked_one_is_refused() {
    let payload = pattern(2_000);
    let mut server = Connection::upgraded_server(quiet_config());
    let mut sender = server.sender();
    sender.send_binary_borrowed(&payload).unwrap();
    core::mem::forget(sender);
    let _ = server.sender();
}
