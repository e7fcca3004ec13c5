//! Properties of the connection over arbitrary input: chunking, round trips, hostile bytes.
mod common;
use common::*;
use proptest::prelude::*;
use wsproto::{Config, Connection, Error, MessageKind};

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
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut events = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain(std::iter::once(bytes.len())) {
        conn.receive(&bytes[start..cut]);
        events.extend(drain(conn));
        start = cut;
    }
    events
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
