//! RFC 6455 §7: the closing handshake run between a client and a server, abnormal closure,
//! failing the connection, and what the API allows once closing has begun.
mod common;
use common::*;
use wsproto::{
    CloseCode, Connection, ConnectionState, Error, MessageKind, ProtocolError, UsageError,
};

/// The client's masking key (the RFC 6455 §5.7 example key), so its frames are predictable.
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn pair() -> Pair {
    Pair {
        client: Connection::upgraded_client(quiet_config(), fixed_key(KEY)),
        server: Connection::upgraded_server(quiet_config()),
    }
}

/// A frame as the server sends it.
fn unmasked(b0: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() <= 125);
    let mut f = vec![b0, payload.len() as u8];
    f.extend_from_slice(payload);
    f
}

/// A frame as the client sends it, masked with `KEY`.
fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() <= 125);
    let mut f = vec![b0, 0x80 | payload.len() as u8];
    f.extend_from_slice(&KEY);
    f.extend(payload.iter().zip(KEY.iter().cycle()).map(|(b, k)| b ^ k));
    f
}

fn close_body(code: u16, reason: &str) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(reason.as_bytes());
    body
}

#[track_caller]
fn assert_no_more_events(conn: &mut Connection) {
    for _ in 0..3 {
        assert!(matches!(conn.next_event(), Ok(None)));
    }
}

#[test]
fn sec_7_1_2_client_initiated_close() {
    let mut p = pair();
    assert_eq!(p.client.state(), ConnectionState::Open);
    assert_eq!(p.server.state(), ConnectionState::Open);

    p.client.close(NORMAL, "bye").unwrap();
    assert_eq!(p.client.state(), ConnectionState::Closing);
    let client_close = take_output(&mut p.client);
    assert_eq!(client_close, masked(0x88, b"\x03\xe8bye"));
    assert!(!p.client.wants_shutdown());

    assert_eq!(
        feed(&mut p.server, &client_close),
        [close(1000, "bye"), Ev::Closed(1000)]
    );
    assert_eq!(p.server.state(), ConnectionState::Closed);
    // The echo is queued; the server closes TCP once it is written (§7.1.1).
    assert!(!p.server.wants_shutdown());
    let echo = take_output(&mut p.server);
    assert_eq!(echo, b"\x88\x05\x03\xe8bye");
    assert!(p.server.wants_shutdown());

    assert_eq!(
        feed(&mut p.client, &echo),
        [close(1000, "bye"), Ev::Closed(1000)]
    );
    assert_eq!(p.client.state(), ConnectionState::Closed);
    // No second Close from the client, and it waits for the server to close TCP.
    assert!(p.client.pending_output().is_empty());
    assert!(!p.client.wants_shutdown());
    p.client.receive_eof();
    assert!(p.client.wants_shutdown());
    assert_eq!(p.client.state(), ConnectionState::Closed);
    assert_no_more_events(&mut p.client);
    assert_no_more_events(&mut p.server);
}

#[test]
fn sec_7_1_2_server_initiated_close() {
    let mut p = pair();
    p.server.close(NORMAL, "bye").unwrap();
    assert_eq!(p.server.state(), ConnectionState::Closing);
    let server_close = take_output(&mut p.server);
    assert_eq!(server_close, b"\x88\x05\x03\xe8bye");
    assert!(!p.server.wants_shutdown());

    assert_eq!(
        feed(&mut p.client, &server_close),
        [close(1000, "bye"), Ev::Closed(1000)]
    );
    assert_eq!(p.client.state(), ConnectionState::Closed);
    let echo = take_output(&mut p.client);
    assert_eq!(echo, masked(0x88, b"\x03\xe8bye"));
    // The client waits for the server to close TCP first (§7.1.1).
    assert!(!p.client.wants_shutdown());

    assert_eq!(
        feed(&mut p.server, &echo),
        [close(1000, "bye"), Ev::Closed(1000)]
    );
    assert_eq!(p.server.state(), ConnectionState::Closed);
    assert!(p.server.pending_output().is_empty());
    assert!(p.server.wants_shutdown());

    p.client.receive_eof();
    assert!(p.client.wants_shutdown());
    assert_no_more_events(&mut p.client);
    assert_no_more_events(&mut p.server);
}

#[test]
fn sec_7_1_5_close_with_empty_body() {
    let mut p = pair();
    p.client.close(CloseCode::NO_STATUS_RECEIVED, "").unwrap();
    let client_close = take_output(&mut p.client);
    assert_eq!(client_close, masked(0x88, b""));
    assert_eq!(
        feed(&mut p.server, &client_close),
        [close(1005, ""), Ev::Closed(1005)]
    );
    let echo = take_output(&mut p.server);
    assert_eq!(echo, [0x88, 0x00]);
    assert_eq!(
        feed(&mut p.client, &echo),
        [close(1005, ""), Ev::Closed(1005)]
    );
    assert!(p.client.pending_output().is_empty());

    // And from the server.
    let mut p = pair();
    p.server.close(CloseCode::NO_STATUS_RECEIVED, "").unwrap();
    let server_close = take_output(&mut p.server);
    assert_eq!(server_close, [0x88, 0x00]);
    assert_eq!(
        feed(&mut p.client, &server_close),
        [close(1005, ""), Ev::Closed(1005)]
    );
    let echo = take_output(&mut p.client);
    assert_eq!(echo, masked(0x88, b""));
    assert_eq!(
        feed(&mut p.server, &echo),
        [close(1005, ""), Ev::Closed(1005)]
    );
    assert!(p.server.pending_output().is_empty());
}

#[track_caller]
fn assert_sends_refused(conn: &mut Connection) {
    let before = conn.pending_output().to_vec();
    assert_eq!(conn.send_text("x"), Err(UsageError::NotOpen));
    assert_eq!(conn.send_binary(b"x"), Err(UsageError::NotOpen));
    assert_eq!(conn.send_ping(b"x"), Err(UsageError::NotOpen));
    assert_eq!(conn.send_pong(b"x"), Err(UsageError::NotOpen));
    assert_eq!(
        conn.send_fragment(MessageKind::Text, b"x", false),
        Err(UsageError::NotOpen)
    );
    assert_eq!(conn.close(NORMAL, ""), Err(UsageError::NotOpen));
    assert_eq!(conn.pending_output(), before);
}

#[test]
fn sec_5_5_1_after_close_no_sends_and_incoming_data_still_delivered() {
    // The client closes; the server keeps sending data until it sees the Close, and the
    // client still receives it (the answers to what it sent before closing).
    let mut p = pair();
    p.client.close(NORMAL, "").unwrap();
    assert_sends_refused(&mut p.client);
    let client_close = take_output(&mut p.client);
    assert_eq!(client_close, masked(0x88, b"\x03\xe8"));

    p.server.send_text("late").unwrap();
    p.server.send_binary(b"late").unwrap();
    p.server
        .send_fragment(MessageKind::Text, b"la", false)
        .unwrap();
    p.server
        .send_fragment(MessageKind::Text, b"ter", true)
        .unwrap();
    assert_eq!(
        p.deliver_to_client(),
        [
            Ev::Text("late".into()),
            Ev::Binary(b"late".to_vec()),
            Ev::Text("later".into())
        ]
    );
    assert!(p.client.pending_output().is_empty());
    assert_eq!(p.client.state(), ConnectionState::Closing);

    assert_eq!(
        feed(&mut p.server, &client_close),
        [close(1000, ""), Ev::Closed(1000)]
    );
    assert_eq!(p.deliver_to_client(), [close(1000, ""), Ev::Closed(1000)]);
    assert!(p.client.pending_output().is_empty());

    // The mirror image: the server closes, the client's data still reaches it.
    let mut p = pair();
    p.server.close(CloseCode::GOING_AWAY, "").unwrap();
    assert_sends_refused(&mut p.server);
    let server_close = take_output(&mut p.server);
    assert_eq!(server_close, b"\x88\x02\x03\xe9");
    p.client.send_text("late").unwrap();
    p.client.send_binary(&[0; 300]).unwrap();
    assert_eq!(
        p.deliver_to_server(),
        [Ev::Text("late".into()), Ev::Binary(vec![0; 300])]
    );
    assert!(p.server.pending_output().is_empty());
    assert_eq!(
        feed(&mut p.client, &server_close),
        [close(1001, ""), Ev::Closed(1001)]
    );
    assert_eq!(p.deliver_to_server(), [close(1001, ""), Ev::Closed(1001)]);
    assert!(p.server.pending_output().is_empty());
    assert!(p.server.wants_shutdown());
}

#[test]
fn sec_7_1_3_simultaneous_close() {
    let mut p = pair();
    p.client.close(NORMAL, "c").unwrap();
    p.server.close(CloseCode::GOING_AWAY, "s").unwrap();
    let client_close = take_output(&mut p.client);
    let server_close = take_output(&mut p.server);
    assert_eq!(client_close, masked(0x88, b"\x03\xe8c"));
    assert_eq!(server_close, b"\x88\x03\x03\xe9s");

    // §7.1.5: each reports the code of the first Close it received.
    assert_eq!(
        feed(&mut p.server, &client_close),
        [close(1000, "c"), Ev::Closed(1000)]
    );
    assert_eq!(
        feed(&mut p.client, &server_close),
        [close(1001, "s"), Ev::Closed(1001)]
    );
    // Neither answers with a second Close.
    assert!(p.server.pending_output().is_empty());
    assert!(p.client.pending_output().is_empty());
    assert_eq!(p.server.state(), ConnectionState::Closed);
    assert_eq!(p.client.state(), ConnectionState::Closed);
    assert!(p.server.wants_shutdown());
    assert!(!p.client.wants_shutdown());
    p.client.receive_eof();
    assert!(p.client.wants_shutdown());
    assert_no_more_events(&mut p.client);
    assert_no_more_events(&mut p.server);
}

#[test]
fn sec_7_1_5_eof_without_closing_handshake_is_1006() {
    let mut p = pair();
    for conn in [&mut p.client, &mut p.server] {
        conn.receive_eof();
        assert_eq!(drain(conn), [Ev::Closed(1006)]);
        assert!(conn.pending_output().is_empty());
        assert_eq!(conn.state(), ConnectionState::Closed);
        assert!(conn.wants_shutdown());
        assert_sends_refused(conn);
        assert_no_more_events(conn);
    }

    // In the middle of a fragmented message: no partial message is reported.
    let mut p = pair();
    assert_eq!(feed(&mut p.client, &unmasked(0x01, b"Hel")), []);
    p.client.receive_eof();
    assert_eq!(drain(&mut p.client), [Ev::Closed(1006)]);
    assert!(p.client.pending_output().is_empty());
    let mut frame = masked(0x02, b"Hel");
    frame.extend(masked(0x80, b"lo"));
    assert_eq!(feed(&mut p.server, &frame[..frame.len() - 1]), []);
    p.server.receive_eof();
    assert_eq!(drain(&mut p.server), [Ev::Closed(1006)]);
    assert!(p.server.pending_output().is_empty());

    // After our Close, before the peer's.
    let mut p = pair();
    p.client.close(NORMAL, "").unwrap();
    take_output(&mut p.client);
    p.client.receive_eof();
    assert_eq!(drain(&mut p.client), [Ev::Closed(1006)]);
    assert!(p.client.pending_output().is_empty());
    assert!(p.client.wants_shutdown());
}

#[test]

fn sec_7_1_5_bytes_received_before_eof_are_still_processed() {
    // `receive` only buffers; EOF arriving before the caller pulled the events must not lose
    // the message and the Close that were already received (§7.1.5: 1006 only when no Close
    // frame was received).
    let mut p = pair();
    let mut bytes = unmasked(0x81, b"hi");
    bytes.extend(unmasked(0x88, &close_body(1000, "bye")));
    p.client.receive(&bytes);
    p.client.receive_eof();
    assert_eq!(
        drain(&mut p.client),
        [Ev::Text("hi".into()), close(1000, "bye"), Ev::Closed(1000)]
    );
}

#[test]
fn sec_7_1_7_fail_with_policy_violation() {
    let mut p = pair();
    p.server
        .fail(CloseCode::POLICY_VIOLATION, "policy")
        .unwrap();
    assert_eq!(p.server.state(), ConnectionState::Closed);
    assert_eq!(p.server.pending_output(), b"\x88\x08\x03\xf0policy");
    assert!(!p.server.wants_shutdown());
    let out = take_output(&mut p.server);
    assert!(p.server.wants_shutdown());
    assert_eq!(drain(&mut p.server), [Ev::Closed(1008)]);
    assert_sends_refused(&mut p.server);
    assert_no_more_events(&mut p.server);
    // Failing again changes nothing.
    assert_eq!(p.server.fail(CloseCode::INTERNAL_ERROR, ""), Ok(()));
    assert!(p.server.pending_output().is_empty());
    assert_no_more_events(&mut p.server);

    assert_eq!(
        feed(&mut p.client, &out),
        [close(1008, "policy"), Ev::Closed(1008)]
    );

    // A failing client masks its Close and does not wait for the server to close TCP.
    let mut p = pair();
    p.client
        .fail(CloseCode::POLICY_VIOLATION, "policy")
        .unwrap();
    let out = take_output(&mut p.client);
    assert_eq!(out, masked(0x88, b"\x03\xf0policy"));
    assert!(p.client.wants_shutdown());
    assert_eq!(drain(&mut p.client), [Ev::Closed(1008)]);
    assert_sends_refused(&mut p.client);
    assert_eq!(
        feed(&mut p.server, &out),
        [close(1008, "policy"), Ev::Closed(1008)]
    );
}

#[test]
fn sec_7_1_7_protocol_error_after_close_sent_queues_no_second_close() {
    let mut p = pair();
    p.client.close(NORMAL, "").unwrap();
    take_output(&mut p.client);
    // A masked frame from the server breaks §5.1.
    let events = feed(&mut p.client, &masked(0x81, b"x"));
    assert_eq!(
        events,
        [Ev::Error(Error::Protocol(ProtocolError::MaskedFrame))]
    );
    assert!(p.client.pending_output().is_empty());
    assert!(p.client.wants_shutdown());
}

#[test]
fn sec_7_4_close_with_invalid_code_or_reason_is_refused() {
    let long = "x".repeat(124);
    let cases = [
        (1005, "x", UsageError::InvalidCloseCode(1005)),
        (1006, "", UsageError::InvalidCloseCode(1006)),
        (999, "", UsageError::InvalidCloseCode(999)),
        (0, "", UsageError::InvalidCloseCode(0)),
        (1004, "", UsageError::InvalidCloseCode(1004)),
        (1015, "", UsageError::InvalidCloseCode(1015)),
        (5000, "", UsageError::InvalidCloseCode(5000)),
        (1000, long.as_str(), UsageError::CloseReasonTooLong(124)),
    ];
    let mut p = pair();
    for conn in [&mut p.client, &mut p.server] {
        conn.send_text("queued").unwrap();
        let before = conn.pending_output().to_vec();
        for (code, reason, error) in cases.clone() {
            assert_eq!(conn.close(CloseCode(code), reason), Err(error.clone()));
            assert_eq!(conn.fail(CloseCode(code), reason), Err(error));
            assert_eq!(conn.state(), ConnectionState::Open);
            assert_eq!(conn.pending_output(), before);
            assert!(!conn.wants_shutdown());
            assert_no_more_events(conn);
        }
        conn.send_text("still open").unwrap();
    }
    assert_eq!(
        p.deliver_to_server(),
        [Ev::Text("queued".into()), Ev::Text("still open".into())]
    );
    assert_eq!(
        p.deliver_to_client(),
        [Ev::Text("queued".into()), Ev::Text("still open".into())]
    );

    // 123 bytes of reason is the most a Close frame holds: a 125-byte payload.
    let reason = "y".repeat(123);
    p.server.close(NORMAL, &reason).unwrap();
    let out = take_output(&mut p.server);
    assert_eq!(out[..4], [0x88, 125, 0x03, 0xe8]);
    assert_eq!(out.len(), 2 + 125);
    assert_eq!(
        feed(&mut p.client, &out),
        [close(1000, &reason), Ev::Closed(1000)]
    );
}

#[test]
fn buffered_amount_tracks_pending_output() {
    let mut p = pair();
    for (conn, header) in [(&mut p.server, 2), (&mut p.client, 6)] {
        assert_eq!(conn.buffered_amount(), 0);
        conn.send_text("hello").unwrap();
        assert_eq!(conn.buffered_amount(), header + 5);
        conn.send_ping(b"p").unwrap();
        assert_eq!(conn.buffered_amount(), 2 * header + 6);
        assert_eq!(conn.buffered_amount(), conn.pending_output().len());
        conn.consume_output(3);
        assert_eq!(conn.buffered_amount(), 2 * header + 3);
        assert_eq!(conn.buffered_amount(), conn.pending_output().len());
        assert!(conn.wants_write());
        let rest = conn.buffered_amount();
        conn.consume_output(rest);
        assert_eq!(conn.buffered_amount(), 0);
        assert!(!conn.wants_write());
        conn.close(NORMAL, "bye").unwrap();
        assert_eq!(conn.buffered_amount(), header + 5);
        assert_eq!(conn.buffered_amount(), conn.pending_output().len());
        conn.consume_output(header + 5);
        assert_eq!(conn.buffered_amount(), 0);
    }
}

#[test]
fn sec_7_1_4_no_event_after_closed() {
    // After a closing handshake: late bytes and EOF change nothing.
    let mut p = pair();
    p.client.close(NORMAL, "").unwrap();
    assert_eq!(p.deliver_to_server(), [close(1000, ""), Ev::Closed(1000)]);
    assert_eq!(p.deliver_to_client(), [close(1000, ""), Ev::Closed(1000)]);
    assert_no_more_events(&mut p.client);
    assert_no_more_events(&mut p.server);
    assert_eq!(feed(&mut p.client, &unmasked(0x81, b"late")), []);
    assert_eq!(feed(&mut p.client, &unmasked(0x88, b"\x03\xe8")), []);
    assert_eq!(feed(&mut p.server, &masked(0x89, b"late")), []);
    assert!(p.client.pending_output().is_empty());
    assert!(p.server.pending_output().is_empty());
    p.client.receive_eof();
    p.server.receive_eof();
    assert_no_more_events(&mut p.client);
    assert_no_more_events(&mut p.server);

    // After EOF.
    let mut p = pair();
    p.server.receive_eof();
    assert_eq!(drain(&mut p.server), [Ev::Closed(1006)]);
    assert_eq!(feed(&mut p.server, &masked(0x81, b"late")), []);
    assert_no_more_events(&mut p.server);

    // After fail().
    let mut p = pair();
    p.client.fail(CloseCode::INTERNAL_ERROR, "").unwrap();
    assert_eq!(drain(&mut p.client), [Ev::Closed(1011)]);
    assert_eq!(feed(&mut p.client, &unmasked(0x81, b"late")), []);
    p.client.receive_eof();
    assert_no_more_events(&mut p.client);
}

#[test]
fn sec_5_4_close_between_fragments_ends_the_connection() {
    // Control frames may be injected between fragments (§5.4); a Close there ends the
    // connection and the partial message is never reported.
    let mut p = pair();
    p.server
        .send_fragment(MessageKind::Text, b"Hel", false)
        .unwrap();
    p.server.close(NORMAL, "").unwrap();
    assert_eq!(p.deliver_to_client(), [close(1000, ""), Ev::Closed(1000)]);
    assert_eq!(take_output(&mut p.client), masked(0x88, b"\x03\xe8"));
}

#[test]

fn sec_5_5_2_ping_after_close_sent_is_still_answered() {
    // §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in response,
    // unless it already received a Close frame." Sending our Close is not that exception, and
    // `Event::Ping` says that with `auto_pong` the Pong is already queued.
    let mut p = pair();
    p.client.close(NORMAL, "").unwrap();
    take_output(&mut p.client);
    assert_eq!(
        feed(&mut p.client, &unmasked(0x89, b"p")),
        [Ev::Ping(b"p".to_vec())]
    );
    assert_eq!(take_output(&mut p.client), masked(0x8A, b"p"));

    let mut p = pair();
    p.server.close(NORMAL, "").unwrap();
    take_output(&mut p.server);
    assert_eq!(
        feed(&mut p.server, &masked(0x89, b"p")),
        [Ev::Ping(b"p".to_vec())]
    );
    assert_eq!(take_output(&mut p.server), unmasked(0x8A, b"p"));
}
