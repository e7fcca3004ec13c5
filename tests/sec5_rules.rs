//! RFC 6455 §5 (and the §7.4/§8.1 rules a frame can break): every MUST a received frame can
//! violate, for both roles, with the exact Close frame queued before the error; limits; and
//! the rules of the sending side.
mod common;
use common::*;
use wsproto::{
    CloseCode, Config, Connection, ConnectionState, Error, MAX_CLOSE_REASON, MessageKind,
    ProtocolError, Role, UsageError,
};

/// The client's masking key in every test here (the RFC 6455 §5.7 example key).
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const ROLES: [Role; 2] = [Role::Server, Role::Client];

fn conn(role: Role, config: Config) -> Connection {
    match role {
        Role::Client => Connection::upgraded_client(config, fixed_key(KEY)),
        Role::Server => Connection::upgraded_server(config),
    }
}

fn open(role: Role) -> Connection {
    conn(role, quiet_config())
}

/// A frame header with the shortest length form, and `KEY` when `masked`.
fn header(b0: u8, len: u64, masked: bool) -> Vec<u8> {
    let m = if masked { 0x80 } else { 0 };
    let mut h = vec![b0];
    match len {
        0..=125 => h.push(m | len as u8),
        126..=0xFFFF => {
            h.push(m | 126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            h.push(m | 127);
            h.extend_from_slice(&len.to_be_bytes());
        }
    }
    if masked {
        h.extend_from_slice(&KEY);
    }
    h
}

fn frame(b0: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut f = header(b0, payload.len() as u64, masked);
    let key = KEY.iter().cycle();
    if masked {
        f.extend(payload.iter().zip(key).map(|(b, k)| b ^ k));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

/// A frame as the peer of a `role` endpoint sends it: masked when `role` is the server.
fn frame_to(role: Role, b0: u8, payload: &[u8]) -> Vec<u8> {
    frame(b0, payload, role == Role::Server)
}

/// Only the header of such a frame.
fn header_to(role: Role, b0: u8, len: u64) -> Vec<u8> {
    header(b0, len, role == Role::Server)
}

/// A frame as a `role` endpoint sends it: masked with `KEY` when `role` is the client.
fn frame_from(role: Role, b0: u8, payload: &[u8]) -> Vec<u8> {
    frame(b0, payload, role == Role::Client)
}

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// `events` is exactly the failure `expected`; the Close frame with its code and the error's
/// text was queued, the connection asks to shut down once it is written, and the failure is
/// sticky: later calls return the same error and later input is ignored.
#[track_caller]
fn assert_failed(conn: &mut Connection, events: &[Ev], expected: ProtocolError) {
    let code = expected.close_code().0;
    let error = Error::Protocol(expected);
    assert_eq!(events, [Ev::Error(error.clone())]);
    assert_eq!(error.close_code(), Some(CloseCode(code)));
    assert_eq!(conn.state(), ConnectionState::Closed);
    assert!(!conn.wants_shutdown(), "the Close frame is not written yet");

    let reason = error.to_string();
    let reason = &reason.as_bytes()[..reason.len().min(MAX_CLOSE_REASON)];
    let out = take_output(conn);
    let len = 2 + reason.len() as u8;
    let masked = conn.role() == Role::Client;
    let [hi, lo] = code.to_be_bytes();
    if masked {
        assert_eq!(
            out[..8],
            [
                0x88,
                0x80 | len,
                KEY[0],
                KEY[1],
                KEY[2],
                KEY[3],
                hi ^ KEY[0],
                lo ^ KEY[1]
            ]
        );
    } else {
        assert_eq!(out[..4], [0x88, len, hi, lo]);
    }
    assert_eq!(
        out,
        frame_from(conn.role(), 0x88, &close_payload(code, reason))
    );
    assert!(conn.wants_shutdown());

    // Sticky: the same error again, and input after the failure is not even buffered.
    assert_eq!(drain(conn), [Ev::Error(error.clone())]);
    let heap = conn.heap_size();
    conn.receive(&frame_to(conn.role(), 0x81, b"late"));
    conn.receive(&frame_to(conn.role(), 0x89, b"ping"));
    assert_eq!(conn.heap_size(), heap);
    assert_eq!(drain(conn), [Ev::Error(error)]);
    assert!(conn.pending_output().is_empty());
    assert!(conn.wants_shutdown());
    assert_eq!(conn.state(), ConnectionState::Closed);
}

/// Feeds `bytes` to a fresh connection of each role and expects the failure `expected`.
#[track_caller]
fn assert_rejects(role: Role, bytes: &[u8], expected: ProtocolError) {
    let mut c = open(role);
    let events = feed(&mut c, bytes);
    assert_failed(&mut c, &events, expected);
}

// ----- §5.1 masking ------------------------------------------------------------------------

#[test]
fn sec_5_1_server_rejects_unmasked_frame() {
    assert_rejects(
        Role::Server,
        &frame(0x81, b"Hello", false),
        ProtocolError::UnmaskedFrame,
    );
    // Control frames too, and from the header alone.
    assert_rejects(Role::Server, &[0x89, 0x00], ProtocolError::UnmaskedFrame);
    assert_rejects(Role::Server, &[0x82, 0x05], ProtocolError::UnmaskedFrame);
}

#[test]
fn sec_5_1_client_rejects_masked_frame() {
    assert_rejects(
        Role::Client,
        &frame(0x81, b"Hello", true),
        ProtocolError::MaskedFrame,
    );
    assert_rejects(
        Role::Client,
        &frame(0x8A, b"", true),
        ProtocolError::MaskedFrame,
    );
}

// ----- §5.2 base framing -------------------------------------------------------------------

#[test]
fn sec_5_2_rsv_bits_without_extension() {
    for role in ROLES {
        for rsv in [0b100u8, 0b010, 0b001, 0b111] {
            for opcode in [0x1u8, 0x2, 0x9] {
                let b0 = 0x80 | (rsv << 4) | opcode;
                assert_rejects(
                    role,
                    &frame_to(role, b0, b"x"),
                    ProtocolError::ReservedBits(rsv),
                );
            }
        }
    }
}

#[test]
fn sec_5_2_reserved_opcodes() {
    for role in ROLES {
        for opcode in (0x3..=0x7).chain(0xB..=0xF) {
            assert_rejects(
                role,
                &frame_to(role, 0x80 | opcode, b"x"),
                ProtocolError::ReservedOpcode(opcode),
            );
            // Without FIN too: the opcode is checked first.
            assert_rejects(
                role,
                &frame_to(role, opcode, b""),
                ProtocolError::ReservedOpcode(opcode),
            );
        }
    }
}

#[test]
fn sec_5_2_64_bit_length_with_top_bit_set() {
    for role in ROLES {
        let mut bytes = vec![0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0];
        if role == Role::Server {
            bytes[1] |= 0x80;
            bytes.extend_from_slice(&KEY);
        }
        assert_rejects(role, &bytes, ProtocolError::InvalidLength);
        bytes[2] = 0xFF;
        assert_rejects(role, &bytes, ProtocolError::InvalidLength);
    }
}

// ----- §5.5 control frames -----------------------------------------------------------------

#[test]
fn sec_5_5_control_frame_with_126_byte_payload() {
    for role in ROLES {
        for opcode in [0x88u8, 0x89, 0x8A] {
            let mut payload = vec![b'a'; 126];
            payload[..2].copy_from_slice(&1000u16.to_be_bytes());
            assert_rejects(
                role,
                &frame_to(role, opcode, &payload),
                ProtocolError::ControlFrameTooLong(126),
            );
        }
        // 125 bytes is the limit and fine.
        let mut c = open(role);
        assert_eq!(
            feed(&mut c, &frame_to(role, 0x89, &[7; 125])),
            [Ev::Ping(vec![7; 125])]
        );
        assert_eq!(take_output(&mut c), frame_from(role, 0x8A, &[7; 125]));
    }
}

#[test]
fn sec_5_5_fragmented_control_frame() {
    for role in ROLES {
        for opcode in [0x08u8, 0x09, 0x0A] {
            assert_rejects(
                role,
                &frame_to(role, opcode, b""),
                ProtocolError::FragmentedControlFrame,
            );
        }
        // A FIN=0 Ping in the middle of a fragmented message.
        let mut c = open(role);
        assert_eq!(feed(&mut c, &frame_to(role, 0x01, b"Hel")), []);
        let events = feed(&mut c, &frame_to(role, 0x09, b"p"));
        assert_failed(&mut c, &events, ProtocolError::FragmentedControlFrame);
    }
}

// ----- §5.4 fragmentation ------------------------------------------------------------------

#[test]
fn sec_5_4_continuation_without_message_in_progress() {
    for role in ROLES {
        for b0 in [0x80u8, 0x00] {
            assert_rejects(
                role,
                &frame_to(role, b0, b"lo"),
                ProtocolError::UnexpectedContinuation,
            );
        }
        // Also right after a message completed.
        let mut c = open(role);
        let mut bytes = frame_to(role, 0x01, b"Hel");
        bytes.extend(frame_to(role, 0x80, b"lo"));
        assert_eq!(feed(&mut c, &bytes), [Ev::Text("Hello".into())]);
        let events = feed(&mut c, &frame_to(role, 0x80, b"!"));
        assert_failed(&mut c, &events, ProtocolError::UnexpectedContinuation);
    }
}

#[test]
fn sec_5_4_new_data_frame_inside_fragmented_message() {
    for role in ROLES {
        for (first, second) in [(0x01u8, 0x81u8), (0x01, 0x02), (0x02, 0x81), (0x02, 0x82)] {
            let mut c = open(role);
            assert_eq!(feed(&mut c, &frame_to(role, first, b"ab")), []);
            let events = feed(&mut c, &frame_to(role, second, b"cd"));
            assert_failed(&mut c, &events, ProtocolError::ExpectedContinuation);
        }
    }
}

// ----- §5.5.1 close frames, §7.4 status codes ----------------------------------------------

#[test]
fn sec_5_5_1_close_payload_of_one_byte() {
    for role in ROLES {
        assert_rejects(
            role,
            &frame_to(role, 0x88, &[0x03]),
            ProtocolError::InvalidClosePayload,
        );
    }
}

#[test]
fn sec_7_4_invalid_close_codes_rejected() {
    for role in ROLES {
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert_rejects(
                role,
                &frame_to(role, 0x88, &close_payload(code, b"")),
                ProtocolError::InvalidCloseCode(code),
            );
            assert_rejects(
                role,
                &frame_to(role, 0x88, &close_payload(code, b"why")),
                ProtocolError::InvalidCloseCode(code),
            );
        }
    }
}

#[test]
fn sec_7_4_valid_close_codes_accepted_and_echoed() {
    for role in ROLES {
        for code in [1000u16, 1003, 1007, 1011, 1012, 1014, 3000, 4999] {
            let mut c = open(role);
            assert_eq!(
                feed(&mut c, &frame_to(role, 0x88, &close_payload(code, b""))),
                [Ev::Close(code, String::new()), Ev::Closed(code)],
                "code {code}"
            );
            assert_eq!(
                take_output(&mut c),
                frame_from(role, 0x88, &close_payload(code, b"")),
                "code {code}"
            );
            assert_eq!(c.state(), ConnectionState::Closed);
            assert_eq!(drain(&mut c), []);
        }
    }
}

#[test]
fn sec_5_5_1_close_reason_not_utf8() {
    for role in ROLES {
        for reason in [&b"\xff"[..], b"ok\xC3", b"\xED\xA0\x80", b"a\xC0\xAFb"] {
            assert_rejects(
                role,
                &frame_to(role, 0x88, &close_payload(1000, reason)),
                ProtocolError::InvalidUtf8,
            );
        }
    }
}

// ----- §8.1 UTF-8, fail fast ---------------------------------------------------------------

#[test]
fn sec_8_1_invalid_byte_in_first_fragment_fails_before_continuation() {
    for role in ROLES {
        let mut c = open(role);
        // FIN=0 Text "a\xFFb": no continuation ever arrives, yet the text is already invalid.
        let events = feed(&mut c, &frame_to(role, 0x01, b"a\xFFb"));
        assert_failed(&mut c, &events, ProtocolError::InvalidUtf8);

        // Even when the frame itself has not fully arrived: up to the bad byte is enough.
        let mut c = open(role);
        let bytes = frame_to(role, 0x01, b"a\xFFb");
        let events = feed(&mut c, &bytes[..bytes.len() - 1]);
        assert_failed(&mut c, &events, ProtocolError::InvalidUtf8);
    }
}

#[test]
fn sec_8_1_sequence_split_across_fragments_fails_at_second_fragments_bad_byte() {
    for role in ROLES {
        let mut c = open(role);
        // "a" then the first two bytes of "€" (E2 82 AC); the next fragment starts with "(".
        assert_eq!(feed(&mut c, &frame_to(role, 0x01, b"a\xE2\x82")), []);
        let second = frame_to(role, 0x80, b"(bc");
        let header_len = second.len() - 3;
        assert_eq!(feed_chunked(&mut c, &second[..header_len], 1), []);
        let events = feed(&mut c, &second[header_len..=header_len]);
        assert_failed(&mut c, &events, ProtocolError::InvalidUtf8);
    }
}

#[test]
fn sec_8_1_byte_by_byte_payload_fails_at_the_bad_byte() {
    // (payload, index of the first byte that makes it invalid)
    let cases: [(&[u8], usize); 6] = [
        (b"ab\xFFcd", 2),
        (b"\xC0\xAF", 0),
        (b"\xCE\xBA\xED\xA0\x80x", 3),  // "κ" then a UTF-16 surrogate
        (b"a\xF4\x90\x80\x80", 2),      // above U+10FFFF
        (b"xy\xE0\x80\x80", 3),         // overlong
        (b"\xF0\x9D\x84\x9E\xE2(z", 5), // "𝄞" then E2 28
    ];
    for role in ROLES {
        for (payload, bad) in cases {
            for b0 in [0x81u8, 0x01] {
                let bytes = frame_to(role, b0, payload);
                let bad_at = bytes.len() - payload.len() + bad;
                let mut c = open(role);
                // Nothing fails while the bytes up to the bad one arrive one by one...
                assert_eq!(
                    feed_chunked(&mut c, &bytes[..bad_at], 1),
                    [],
                    "{payload:x?}"
                );
                // ...and the bad byte alone fails the connection.
                let events = feed(&mut c, &bytes[bad_at..=bad_at]);
                assert_failed(&mut c, &events, ProtocolError::InvalidUtf8);

                // The same transcript with the whole frame fed a byte at a time.
                let mut c = open(role);
                let events = feed_chunked(&mut c, &bytes, 1);
                assert_failed(&mut c, &events, ProtocolError::InvalidUtf8);
            }
        }
    }
}

#[test]
fn sec_8_1_code_point_split_across_fragments_and_reads() {
    for role in ROLES {
        // "a𝄞b" with 𝄞 = F0 9D 84 9E split over three frames.
        let mut bytes = frame_to(role, 0x01, b"a\xF0");
        bytes.extend(frame_to(role, 0x00, b"\x9D"));
        bytes.extend(frame_to(role, 0x80, b"\x84\x9Eb"));
        for chunk in 1..=bytes.len() {
            let mut c = open(role);
            assert_eq!(
                feed_chunked(&mut c, &bytes, chunk),
                [Ev::Text("a𝄞b".into())],
                "chunk {chunk}"
            );
            assert!(c.pending_output().is_empty());
        }
    }
}

#[test]
fn sec_8_1_text_ending_in_truncated_code_point() {
    for role in ROLES {
        // One frame: "a" then 3 of the 4 bytes of 𝄞. It could still become valid until FIN.
        let bytes = frame_to(role, 0x81, b"a\xF0\x9D\x84");
        let mut c = open(role);
        assert_eq!(feed_chunked(&mut c, &bytes[..bytes.len() - 1], 1), []);
        let events = feed(&mut c, &bytes[bytes.len() - 1..]);
        assert_failed(&mut c, &events, ProtocolError::InvalidUtf8);

        // Fragmented: the final fragment leaves the code point unfinished.
        let mut c = open(role);
        assert_eq!(feed(&mut c, &frame_to(role, 0x01, b"a\xF0")), []);
        assert_eq!(feed(&mut c, &frame_to(role, 0x00, b"\x9D")), []);
        let events = feed(&mut c, &frame_to(role, 0x80, b"\x84"));
        assert_failed(&mut c, &events, ProtocolError::InvalidUtf8);
    }
}

/// Long text frames, whose payload is unmasked and validated in blocks as it arrives: a code
/// point split across blocks and reads is fine, and a bad byte deep inside fails as soon as
/// its read arrives, before the frame ends.
#[test]
fn sec_8_1_long_text_frame_in_reads_fails_at_the_read_with_the_bad_byte() {
    let text = "aé€𝄞".repeat(3_000); // 30,000 bytes: 1, 2, 3 and 4-byte sequences
    for role in ROLES {
        let bytes = frame_to(role, 0x81, text.as_bytes());
        for read in [1_000, 8_191, 8_192, 8_193, 20_000] {
            let mut c = open(role);
            assert_eq!(
                feed_chunked(&mut c, &bytes, read),
                [Ev::Text(text.clone())],
                "{role:?} read {read}"
            );
        }
        let mut bad = text.clone().into_bytes();
        let bad_at = 17_001; // inside the third 8 KiB block
        bad[bad_at] = 0xFF;
        let bytes = frame_to(role, 0x81, &bad);
        let bad_at = bytes.len() - bad.len() + bad_at;
        let mut c = open(role);
        assert_eq!(feed(&mut c, &bytes[..bad_at]), [], "{role:?}");
        let events = feed(&mut c, &bytes[bad_at..bad_at + 100]);
        assert_failed(&mut c, &events, ProtocolError::InvalidUtf8);
    }
}

// ----- limits (RFC 6455 §10.4) -------------------------------------------------------------

fn limited(role: Role, change: impl FnOnce(&mut Config)) -> Connection {
    let mut config = quiet_config();
    change(&mut config);
    conn(role, config)
}

#[test]
fn sec_10_4_max_message_size_rejects_frame_from_its_header() {
    for role in ROLES {
        for b0 in [0x81u8, 0x82, 0x01, 0x02] {
            let mut c = limited(role, |c| c.max_message_size = 1000);
            // Only the header declaring 1001 bytes arrives.
            let events = feed(&mut c, &header_to(role, b0, 1001));
            assert_failed(
                &mut c,
                &events,
                ProtocolError::MessageTooLarge {
                    len: 1001,
                    max: 1000,
                },
            );
        }
        // Exactly the limit is fine.
        let mut c = limited(role, |c| c.max_message_size = 1000);
        assert_eq!(
            feed(&mut c, &frame_to(role, 0x82, &[9; 1000])),
            [Ev::Binary(vec![9; 1000])]
        );
    }
}

#[test]
fn sec_10_4_max_message_size_counts_fragments() {
    for role in ROLES {
        let mut c = limited(role, |c| c.max_message_size = 1000);
        assert_eq!(feed(&mut c, &frame_to(role, 0x02, &[1; 600])), []);
        // The crossing fragment fails from its header alone.
        let events = feed(&mut c, &header_to(role, 0x80, 401));
        assert_failed(
            &mut c,
            &events,
            ProtocolError::MessageTooLarge {
                len: 1001,
                max: 1000,
            },
        );

        let mut c = limited(role, |c| c.max_message_size = 1000);
        assert_eq!(feed(&mut c, &frame_to(role, 0x01, &[b'a'; 500])), []);
        assert_eq!(feed(&mut c, &frame_to(role, 0x00, &[b'b'; 499])), []);
        let events = feed(&mut c, &header_to(role, 0x00, 2));
        assert_failed(
            &mut c,
            &events,
            ProtocolError::MessageTooLarge {
                len: 1001,
                max: 1000,
            },
        );

        // 600 + 400 is exactly the limit.
        let mut c = limited(role, |c| c.max_message_size = 1000);
        let mut bytes = frame_to(role, 0x02, &[1; 600]);
        bytes.extend(frame_to(role, 0x80, &[2; 400]));
        let mut expected = vec![1; 600];
        expected.extend([2; 400]);
        assert_eq!(feed(&mut c, &bytes), [Ev::Binary(expected)]);
    }
}

#[test]
fn sec_10_4_max_frame_size() {
    for role in ROLES {
        for b0 in [0x82u8, 0x01] {
            let mut c = limited(role, |c| c.max_frame_size = Some(100));
            let events = feed(&mut c, &header_to(role, b0, 101));
            assert_failed(
                &mut c,
                &events,
                ProtocolError::FrameTooLarge { len: 101, max: 100 },
            );
        }
        // A continuation over the limit too.
        let mut c = limited(role, |c| c.max_frame_size = Some(100));
        assert_eq!(feed(&mut c, &frame_to(role, 0x02, &[0; 100])), []);
        let events = feed(&mut c, &header_to(role, 0x80, 101));
        assert_failed(
            &mut c,
            &events,
            ProtocolError::FrameTooLarge { len: 101, max: 100 },
        );

        // Frames at the limit make a larger message.
        let mut c = limited(role, |c| c.max_frame_size = Some(100));
        let mut bytes = frame_to(role, 0x02, &[3; 100]);
        bytes.extend(frame_to(role, 0x80, &[3; 100]));
        assert_eq!(feed(&mut c, &bytes), [Ev::Binary(vec![3; 200])]);
    }
}

#[test]
fn sec_10_4_max_fragments_per_message() {
    for role in ROLES {
        let mut c = limited(role, |c| c.max_fragments_per_message = 3);
        assert_eq!(feed(&mut c, &frame_to(role, 0x01, b"a")), []);
        assert_eq!(feed(&mut c, &frame_to(role, 0x00, b"b")), []);
        assert_eq!(feed(&mut c, &frame_to(role, 0x00, b"c")), []);
        let events = feed(&mut c, &header_to(role, 0x80, 1));
        assert_failed(&mut c, &events, ProtocolError::TooManyFragments { max: 3 });

        // Three fragments are fine, and the count starts again with each message.
        let mut c = limited(role, |c| c.max_fragments_per_message = 3);
        for _ in 0..2 {
            let mut bytes = frame_to(role, 0x01, b"a");
            bytes.extend(frame_to(role, 0x00, b"b"));
            bytes.extend(frame_to(role, 0x80, b"c"));
            assert_eq!(feed(&mut c, &bytes), [Ev::Text("abc".into())]);
        }
    }
}

// ----- §5.4/§5.5.2 control frames between fragments -----------------------------------------

#[test]
fn sec_5_4_ping_between_fragments_is_answered_at_once() {
    for role in ROLES {
        let mut c = open(role);
        assert_eq!(feed(&mut c, &frame_to(role, 0x01, b"Hel")), []);
        assert_eq!(
            feed(&mut c, &frame_to(role, 0x89, b"p")),
            [Ev::Ping(b"p".to_vec())]
        );
        // The Pong is queued before the message completes.
        assert_eq!(take_output(&mut c), frame_from(role, 0x8A, b"p"));
        assert_eq!(feed(&mut c, &frame_to(role, 0x00, b"l")), []);
        assert_eq!(
            feed(&mut c, &frame_to(role, 0x8A, b"q")),
            [Ev::Pong(b"q".to_vec())]
        );
        assert!(c.pending_output().is_empty());
        assert_eq!(
            feed(&mut c, &frame_to(role, 0x80, b"o")),
            [Ev::Text("Hello".into())]
        );

        // All in one read, chunked any way: the same transcript.
        let mut bytes = frame_to(role, 0x02, b"Hel");
        bytes.extend(frame_to(role, 0x89, b"p"));
        bytes.extend(frame_to(role, 0x80, b"lo"));
        for chunk in 1..=bytes.len() {
            let mut c = open(role);
            assert_eq!(
                feed_chunked(&mut c, &bytes, chunk),
                [Ev::Ping(b"p".to_vec()), Ev::Binary(b"Hello".to_vec())]
            );
            assert_eq!(take_output(&mut c), frame_from(role, 0x8A, b"p"));
        }
    }
}

#[test]
fn sec_5_5_2_without_auto_pong_ping_is_reported_only() {
    for role in ROLES {
        let mut c = limited(role, |c| c.auto_pong = false);
        assert_eq!(feed(&mut c, &frame_to(role, 0x01, b"Hel")), []);
        assert_eq!(
            feed(&mut c, &frame_to(role, 0x89, b"p")),
            [Ev::Ping(b"p".to_vec())]
        );
        assert!(c.pending_output().is_empty());
        assert_eq!(
            feed(&mut c, &frame_to(role, 0x80, b"lo")),
            [Ev::Text("Hello".into())]
        );
        assert_eq!(feed(&mut c, &frame_to(role, 0x89, b"")), [Ev::Ping(vec![])]);
        assert!(c.pending_output().is_empty());
    }
}

// ----- §5.6 empty messages and many fragments ----------------------------------------------

#[test]
fn sec_5_6_zero_length_messages_and_fragments() {
    for role in ROLES {
        let mut c = open(role);
        assert_eq!(
            feed(&mut c, &frame_to(role, 0x81, b"")),
            [Ev::Text(String::new())]
        );
        assert_eq!(
            feed(&mut c, &frame_to(role, 0x82, b"")),
            [Ev::Binary(vec![])]
        );

        // A message made only of empty fragments.
        let mut bytes = frame_to(role, 0x01, b"");
        bytes.extend(frame_to(role, 0x00, b""));
        bytes.extend(frame_to(role, 0x80, b""));
        assert_eq!(feed(&mut c, &bytes), [Ev::Text(String::new())]);
        let mut bytes = frame_to(role, 0x02, b"");
        bytes.extend(frame_to(role, 0x80, b""));
        assert_eq!(feed(&mut c, &bytes), [Ev::Binary(vec![])]);

        // Empty fragments in between, first and last.
        let mut bytes = frame_to(role, 0x01, b"");
        bytes.extend(frame_to(role, 0x00, b"ab"));
        bytes.extend(frame_to(role, 0x00, b""));
        bytes.extend(frame_to(role, 0x00, b"c"));
        bytes.extend(frame_to(role, 0x80, b""));
        for chunk in 1..=bytes.len() {
            let mut c = open(role);
            assert_eq!(
                feed_chunked(&mut c, &bytes, chunk),
                [Ev::Text("abc".into())]
            );
        }
        assert!(c.pending_output().is_empty());
    }
}

#[test]
fn sec_5_4_message_in_100_one_byte_fragments() {
    for role in ROLES {
        let text: String = (0..100)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let mut bytes = Vec::new();
        for (i, b) in text.bytes().enumerate() {
            let b0 = match i {
                0 => 0x01,
                99 => 0x80,
                _ => 0x00,
            };
            bytes.extend(frame_to(role, b0, &[b]));
        }
        let mut c = open(role);
        assert_eq!(feed(&mut c, &bytes), [Ev::Text(text.clone())]);
        let mut c = open(role);
        assert_eq!(feed_chunked(&mut c, &bytes, 1), [Ev::Text(text.clone())]);

        let mut bytes = Vec::new();
        for i in 0..100u8 {
            let b0 = match i {
                0 => 0x02,
                99 => 0x80,
                _ => 0x00,
            };
            bytes.extend(frame_to(role, b0, &[i]));
        }
        let mut c = open(role);
        assert_eq!(feed(&mut c, &bytes), [Ev::Binary((0..100).collect())]);
    }
}

// ----- the sending side --------------------------------------------------------------------

#[test]
fn sec_5_4_send_fragment_opcodes_and_fin() {
    for role in ROLES {
        let mut c = open(role);
        c.send_fragment(MessageKind::Text, b"Hel", false).unwrap();
        c.send_fragment(MessageKind::Text, b"l", false).unwrap();
        c.send_fragment(MessageKind::Text, b"o", true).unwrap();
        let mut expected = frame_from(role, 0x01, b"Hel");
        expected.extend(frame_from(role, 0x00, b"l"));
        expected.extend(frame_from(role, 0x80, b"o"));
        assert_eq!(take_output(&mut c), expected);

        c.send_fragment(MessageKind::Binary, &[1, 2], false)
            .unwrap();
        c.send_fragment(MessageKind::Binary, &[3], true).unwrap();
        // A one-fragment message is a plain final frame.
        c.send_fragment(MessageKind::Text, b"x", true).unwrap();
        let mut expected = frame_from(role, 0x02, &[1, 2]);
        expected.extend(frame_from(role, 0x80, &[3]));
        expected.extend(frame_from(role, 0x81, b"x"));
        assert_eq!(take_output(&mut c), expected);
    }
}

#[test]
fn sec_5_4_ping_sent_between_fragments() {
    for role in ROLES {
        let mut c = open(role);
        c.send_fragment(MessageKind::Text, b"Hel", false).unwrap();
        c.send_ping(b"p").unwrap();
        c.send_pong(b"q").unwrap();
        c.send_fragment(MessageKind::Text, b"lo", true).unwrap();
        let mut expected = frame_from(role, 0x01, b"Hel");
        expected.extend(frame_from(role, 0x89, b"p"));
        expected.extend(frame_from(role, 0x8A, b"q"));
        expected.extend(frame_from(role, 0x80, b"lo"));
        assert_eq!(take_output(&mut c), expected);
    }
    // Through a pair: the peer sees the Ping first, then the whole message.
    let mut pair = Pair::new();
    pair.client
        .send_fragment(MessageKind::Binary, b"ab", false)
        .unwrap();
    pair.client.send_ping(b"p").unwrap();
    pair.client
        .send_fragment(MessageKind::Binary, b"cd", true)
        .unwrap();
    assert_eq!(
        pair.deliver_to_server(),
        [Ev::Ping(b"p".to_vec()), Ev::Binary(b"abcd".to_vec())]
    );
    assert_eq!(pair.deliver_to_client(), [Ev::Pong(b"p".to_vec())]);
}

/// Runs `call`, expects `expected`, and checks that nothing was queued or changed.
#[track_caller]
fn assert_rejected(
    c: &mut Connection,
    expected: UsageError,
    call: impl FnOnce(&mut Connection) -> Result<(), UsageError>,
) {
    let before = c.pending_output().to_vec();
    assert_eq!(call(c), Err(expected));
    assert_eq!(c.pending_output(), before);
    assert_eq!(c.state(), ConnectionState::Open);
}

#[test]
fn sec_5_5_send_control_payload_over_125_bytes() {
    for role in ROLES {
        let mut c = open(role);
        c.send_text("queued").unwrap();
        let big = [0u8; 126];
        assert_rejected(&mut c, UsageError::ControlPayloadTooLarge(126), |c| {
            c.send_ping(&big)
        });
        assert_rejected(&mut c, UsageError::ControlPayloadTooLarge(126), |c| {
            c.send_pong(&big)
        });
        c.send_ping(&big[..125]).unwrap();
        let mut expected = frame_from(role, 0x81, b"queued");
        expected.extend(frame_from(role, 0x89, &big[..125]));
        assert_eq!(take_output(&mut c), expected);
    }
}

#[test]
fn sec_5_4_send_whole_message_during_fragmented_send() {
    for role in ROLES {
        let mut c = open(role);
        c.send_fragment(MessageKind::Text, b"Hel", false).unwrap();
        assert_rejected(&mut c, UsageError::MessageInProgress, |c| c.send_text("x"));
        assert_rejected(&mut c, UsageError::MessageInProgress, |c| {
            c.send_binary(b"x")
        });
        c.send_fragment(MessageKind::Text, b"lo", true).unwrap();
        c.send_text("x").unwrap();
        let mut expected = frame_from(role, 0x01, b"Hel");
        expected.extend(frame_from(role, 0x80, b"lo"));
        expected.extend(frame_from(role, 0x81, b"x"));
        assert_eq!(take_output(&mut c), expected);
    }
}

#[test]
fn sec_5_4_send_fragment_of_another_kind() {
    for role in ROLES {
        let mut c = open(role);
        c.send_fragment(MessageKind::Text, b"ab", false).unwrap();
        assert_rejected(&mut c, UsageError::FragmentKindMismatch, |c| {
            c.send_fragment(MessageKind::Binary, b"cd", true)
        });
        let mut c = open(role);
        c.send_fragment(MessageKind::Binary, b"ab", false).unwrap();
        assert_rejected(&mut c, UsageError::FragmentKindMismatch, |c| {
            c.send_fragment(MessageKind::Text, b"cd", false)
        });
        // The message in progress continues as it was.
        c.send_fragment(MessageKind::Binary, b"cd", true).unwrap();
        let mut expected = frame_from(role, 0x02, b"ab");
        expected.extend(frame_from(role, 0x80, b"cd"));
        assert_eq!(take_output(&mut c), expected);
    }
}

#[test]
fn sec_8_1_send_invalid_utf8_across_text_fragments() {
    for role in ROLES {
        let mut c = open(role);
        // The first two bytes of "€" (E2 82 AC) are a valid start.
        c.send_fragment(MessageKind::Text, b"a\xE2\x82", false)
            .unwrap();
        // "(" cannot continue it.
        assert_rejected(&mut c, UsageError::InvalidUtf8, |c| {
            c.send_fragment(MessageKind::Text, b"(", false)
        });
        // Ending here would leave the code point unfinished.
        assert_rejected(&mut c, UsageError::InvalidUtf8, |c| {
            c.send_fragment(MessageKind::Text, b"", true)
        });
        // An invalid byte after a valid completion.
        assert_rejected(&mut c, UsageError::InvalidUtf8, |c| {
            c.send_fragment(MessageKind::Text, b"\xAC\xFF", true)
        });
        // The rejected calls left the validator where it was: the right byte completes it.
        c.send_fragment(MessageKind::Text, b"\xAC!", true).unwrap();
        let mut expected = frame_from(role, 0x01, b"a\xE2\x82");
        expected.extend(frame_from(role, 0x80, b"\xAC!"));
        assert_eq!(take_output(&mut c), expected);

        // Invalid in the first fragment: nothing is started.
        assert_rejected(&mut c, UsageError::InvalidUtf8, |c| {
            c.send_fragment(MessageKind::Text, b"\xFF", false)
        });
        c.send_text("ok").unwrap();
        assert_eq!(take_output(&mut c), frame_from(role, 0x81, b"ok"));
    }
    // Through a pair, the split code point arrives whole.
    let mut pair = Pair::new();
    pair.client
        .send_fragment(MessageKind::Text, b"\xF0\x9D", false)
        .unwrap();
    pair.client
        .send_fragment(MessageKind::Text, b"\x84\x9E", true)
        .unwrap();
    assert_eq!(pair.deliver_to_server(), [Ev::Text("𝄞".into())]);
}
