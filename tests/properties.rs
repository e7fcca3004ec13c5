//! Properties of the connection over arbitrary input: chunking, round trips, hostile bytes.
mod common;
use common::*;
use proptest::prelude::*;
use wsproto::{Accept, ClientRequest, Config, Connection, DeflateConfig, Error, MessageKind};

/// One thing a sender does: a whole message, a fragmented one, or a Ping.
#[derive(Debug, Clone)]
enum Send {
    Text(String),
    Binary(Vec<u8>),
    /// A message split at these (sorted, deduplicated) byte offsets.
    Fragmented(MessageKind, Vec<u8>, Vec<usize>),
    Ping(Vec<u8>),
}

fn send_strategy() -> impl Strategy<Value = Send> {
    prop_oneof![
        "\\PC{0,40}".prop_map(Send::Text),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Send::Binary),
        (
            any::<bool>(),
            "\\PC{0,60}",
            proptest::collection::vec(any::<u8>(), 0..200),
            proptest::collection::vec(0usize..200, 0..6)
        )
            .prop_map(|(text, s, b, mut cuts)| {
                let (kind, data) = if text {
                    (MessageKind::Text, s.into_bytes())
                } else {
                    (MessageKind::Binary, b)
                };
                cuts.iter_mut().for_each(|c| *c = (*c).min(data.len()));
                cuts.sort_unstable();
                cuts.dedup();
                Send::Fragmented(kind, data, cuts)
            }),
        proptest::collection::vec(any::<u8>(), 0..=125).prop_map(Send::Ping),
    ]
}

/// Queues `sends` on `conn` and returns the events a receiver should report.
fn queue(conn: &mut Connection, sends: &[Send]) -> Vec<Ev> {
    let mut expected = Vec::new();
    for send in sends {
        match send {
            Send::Text(t) => {
                conn.send_text(t).unwrap();
                expected.push(Ev::Text(t.clone()));
            }
            Send::Binary(b) => {
                conn.send_binary(b).unwrap();
                expected.push(Ev::Binary(b.clone()));
            }
            Send::Fragmented(kind, data, cuts) => {
                let mut start = 0;
                for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
                    let last = cut == data.len();
                    conn.send_fragment(*kind, &data[start..cut], last).unwrap();
                    start = cut;
                    if last {
                        break;
                    }
                }
                expected.push(match kind {
                    MessageKind::Text => Ev::Text(String::from_utf8(data.clone()).unwrap()),
                    _ => Ev::Binary(data.clone()),
                });
            }
            Send::Ping(p) => {
                conn.send_ping(p).unwrap();
                expected.push(Ev::Ping(p.clone()));
            }
        }
    }
    expected
}

/// Splits `bytes` at the given cut points (any order, any value) and feeds each piece.
fn feed_split(conn: &mut Connection, bytes: &[u8], cuts: &[usize]) -> Vec<Ev> {
    feed_split_up_to(conn, bytes, cuts, usize::MAX)
}

/// As [`feed_split`], taking events with `next_event_up_to(limit)`.
fn feed_split_up_to(conn: &mut Connection, bytes: &[u8], cuts: &[usize], limit: usize) -> Vec<Ev> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut events = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain(std::iter::once(bytes.len())) {
        conn.receive(&bytes[start..cut]);
        loop {
            match conn.next_event_up_to(limit) {
                Ok(Some(event)) => events.push(Ev::from_event(&event)),
                Ok(None) => break,
                Err(e) => {
                    events.push(Ev::Error(e));
                    return events;
                }
            }
        }
        start = cut;
    }
    events
}

/// Folds streamed chunks back into whole messages. Every chunk but a message's last has
/// bytes, none is longer than `limit` (8 at least), and a chunk's kind never changes within
/// a message; other events pass through in place.
fn join_chunks(events: Vec<Ev>, limit: usize) -> Result<Vec<Ev>, TestCaseError> {
    let limit = limit.max(8);
    let mut joined = Vec::new();
    let mut text: Option<String> = None;
    let mut binary: Option<Vec<u8>> = None;
    for event in events {
        match event {
            Ev::TextChunk(chunk, fin) => {
                prop_assert!(binary.is_none(), "text chunk inside a binary message");
                prop_assert!(fin || !chunk.is_empty(), "empty chunk before the last");
                prop_assert!(chunk.len() <= limit, "{} bytes over {limit}", chunk.len());
                let message = text.get_or_insert_with(String::new);
                message.push_str(&chunk);
                if fin {
                    joined.push(Ev::Text(text.take().unwrap_or_default()));
                }
            }
            Ev::BinaryChunk(chunk, fin) => {
                prop_assert!(text.is_none(), "binary chunk inside a text message");
                prop_assert!(fin || !chunk.is_empty(), "empty chunk before the last");
                prop_assert!(chunk.len() <= limit, "{} bytes over {limit}", chunk.len());
                binary
                    .get_or_insert_with(Vec::new)
                    .extend_from_slice(&chunk);
                if fin {
                    joined.push(Ev::Binary(binary.take().unwrap_or_default()));
                }
            }
            Ev::Text(_) | Ev::Binary(_) => prop_assert!(false, "a whole message while streaming"),
            other => joined.push(other),
        }
    }
    prop_assert!(
        text.is_none() && binary.is_none(),
        "a message left unfinished"
    );
    Ok(joined)
}

/// A chunk limit: none, or a small one.
fn limit_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![Just(usize::MAX), 0usize..40]
}

/// A client and a server that agreed permessage-deflate (every message compressed); the
/// receiving side streams, with a 16-byte read buffer.
fn deflate_pair(client_sends: bool, no_context_takeover: bool) -> Pair {
    let deflate = DeflateConfig::default()
        .threshold(0)
        .server_no_context_takeover(no_context_takeover)
        .client_no_context_takeover(no_context_takeover);
    let plain = quiet_config().deflate(Some(deflate));
    let streaming = big_config()
        .deflate(plain.deflate.clone())
        .stream_messages(true);
    let (client, server) = if client_sends {
        (plain, streaming)
    } else {
        (streaming, plain)
    };
    Pair::handshake(
        ClientRequest::new("ws://example.com/").unwrap(),
        Accept::new(),
        client,
        server,
    )
}

fn big_config() -> Config {
    let mut c = quiet_config();
    c.read_buffer_size = 16;
    c
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Encode then decode round-trips, client to server (masked), under any chunking.
    #[test]
    fn client_to_server_round_trips_under_any_chunking(
        sends in proptest::collection::vec(send_strategy(), 0..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut client = Connection::upgraded_client(big_config(), counting_entropy());
        let expected = queue(&mut client, &sends);
        let bytes = take_output(&mut client);
        let mut whole = Connection::upgraded_server(big_config());
        prop_assert_eq!(&feed(&mut whole, &bytes), &expected);
        let mut split = Connection::upgraded_server(big_config());
        prop_assert_eq!(&feed_split(&mut split, &bytes, &cuts), &expected);
    }

    /// The same from the server to the client (unmasked).
    #[test]
    fn server_to_client_round_trips_under_any_chunking(
        sends in proptest::collection::vec(send_strategy(), 0..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut server = Connection::upgraded_server(big_config());
        let expected = queue(&mut server, &sends);
        let bytes = take_output(&mut server);
        let mut client = Connection::upgraded_client(big_config(), counting_entropy());
        prop_assert_eq!(&feed_split(&mut client, &bytes, &cuts), &expected);
    }

    /// Arbitrary bytes never panic; an error is sticky and its Close frame is queued with a
    /// code that may be sent.
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        server in any::<bool>(),
        chunk in 1usize..64,
    ) {
        let mut conn = if server {
            Connection::upgraded_server(quiet_config())
        } else {
            Connection::upgraded_client(quiet_config(), counting_entropy())
        };
        let events = feed_chunked(&mut conn, &bytes, chunk);
        if let Some(Ev::Error(error)) = events.last() {
            let code = error.close_code().expect("protocol errors send a Close");
            prop_assert!(code.is_sendable());
            prop_assert_eq!(conn.next_event(), Err(error.clone()));
            let out = take_output(&mut conn);
            // The last frame queued is the Close with this code (masked for a client).
            prop_assert!(out.len() >= 4);
            prop_assert!(conn.wants_shutdown());
            let mut peer = if server {
                Connection::upgraded_client(quiet_config(), counting_entropy())
            } else {
                Connection::upgraded_server(quiet_config())
            };
            let seen = feed(&mut peer, &out);
            let close = seen.iter().find_map(|e| match e { Ev::Close(c, _) => Some(*c), _ => None });
            prop_assert_eq!(close, Some(code.0));
        }
    }

    /// Streamed, any chunking of the input and any chunk limit give the messages of the
    /// complete-message API, at the same boundaries, in both directions.
    #[test]
    fn streamed_chunks_join_to_the_whole_messages(
        sends in proptest::collection::vec(send_strategy(), 0..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        limit in limit_strategy(),
        client_sends in any::<bool>(),
    ) {
        let streaming = big_config().stream_messages(true);
        let (mut sender, mut receiver) = if client_sends {
            (
                Connection::upgraded_client(big_config(), counting_entropy()),
                Connection::upgraded_server(streaming),
            )
        } else {
            (
                Connection::upgraded_server(big_config()),
                Connection::upgraded_client(streaming, counting_entropy()),
            )
        };
        let expected = queue(&mut sender, &sends);
        let bytes = take_output(&mut sender);
        let events = feed_split_up_to(&mut receiver, &bytes, &cuts, limit);
        prop_assert_eq!(join_chunks(events, limit)?, expected);
    }

    /// The same with permessage-deflate: compressed messages inflate a chunk at a time, with
    /// and without context takeover.
    #[test]
    fn streamed_compressed_chunks_join_to_the_whole_messages(
        sends in proptest::collection::vec(send_strategy(), 0..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        limit in limit_strategy(),
        client_sends in any::<bool>(),
        no_context_takeover in any::<bool>(),
    ) {
        let mut pair = deflate_pair(client_sends, no_context_takeover);
        let (sender, receiver) = if client_sends {
            (&mut pair.client, &mut pair.server)
        } else {
            (&mut pair.server, &mut pair.client)
        };
        let expected = queue(sender, &sends);
        let bytes = take_output(sender);
        let events = feed_split_up_to(receiver, &bytes, &cuts, limit);
        prop_assert_eq!(join_chunks(events, limit)?, expected);
    }

    /// Byte-at-a-time delivery gives exactly the events of one delivery.
    #[test]
    fn byte_at_a_time_equals_all_at_once(sends in proptest::collection::vec(send_strategy(), 0..6)) {
        let mut client = Connection::upgraded_client(quiet_config(), counting_entropy());
        let expected = queue(&mut client, &sends);
        let bytes = take_output(&mut client);
        let mut server = Connection::upgraded_server(quiet_config());
        prop_assert_eq!(feed_chunked(&mut server, &bytes, 1), expected);
    }
}

#[test]
fn errors_are_not_swallowed_by_chunking() {
    // A masked frame to a client fails the same way whether split or not.
    let bytes = [0x81, 0x85, 1, 2, 3, 4, 0, 0, 0, 0, 0];
    let mut a = Connection::upgraded_client(quiet_config(), counting_entropy());
    let mut b = Connection::upgraded_client(quiet_config(), counting_entropy());
    assert_eq!(feed(&mut a, &bytes), feed_chunked(&mut b, &bytes, 1));
    assert_eq!(
        feed(
            &mut Connection::upgraded_client(quiet_config(), counting_entropy()),
            &bytes
        ),
        [Ev::Error(Error::Protocol(
            wsproto::ProtocolError::MaskedFrame
        ))]
    );
}
