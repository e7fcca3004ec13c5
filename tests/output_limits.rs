//! Bounded output: automatic Pongs that never pile up (one waits; the next replaces it, as
//! RFC 6455 §5.5.3 lets a Pong answer only the latest Ping, and the drivers write it before
//! the next event so that a burst still gets a Pong each), the `output_high_water` mark that
//! refuses message sends and turns `wants_read` off, and the tokio reader half that keeps reading while its writer half is
//! stuck, so two peers that both send more than the socket buffers hold do not deadlock.
mod common;

use common::*;
use wsproto::drivers::Message;
use wsproto::{Connection, MessageKind, UsageError};

/// A masked client Ping frame (key 0).
fn ping(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x89, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    frame
}

/// An unmasked server Pong frame.
fn pong(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x8a, payload.len() as u8];
    frame.extend_from_slice(payload);
    frame
}

/// Pings taken without writing in between (a burst, or a flood from a peer that does not
/// read): one Pong waits, answering the latest, and `pong_waiting` says so until it is
/// written.
#[test]
fn pings_taken_without_writing_leave_one_pong() {
    let mut server = Connection::upgraded_server(quiet_config());
    assert!(!server.pong_waiting());
    let mut flood = Vec::new();
    for i in 0..10_000u32 {
        flood.extend_from_slice(&ping(format!("ping {i:04}").as_bytes()));
    }
    let events = feed(&mut server, &flood);
    assert_eq!(events.len(), 10_000, "every Ping is reported");
    assert_eq!(events[9_999], Ev::Ping(b"ping 9999".to_vec()));
    assert_eq!(server.pending_output(), pong(b"ping 9999"));
    assert_eq!(server.buffered_amount(), 11);
    assert!(server.pong_waiting());
    assert!(server.wants_read());
    server.consume_output(11);
    assert!(!server.pong_waiting());
    assert_eq!(server.buffered_amount(), 0);
}

/// Written after each Ping, as the drivers do while a Pong waits, a burst gets a Pong each,
/// in order (Autobahn|TestSuite 2.10 sends ten at once and wants ten back).
#[test]
fn a_burst_written_between_pings_gets_every_pong() {
    let mut server = Connection::upgraded_server(quiet_config());
    let burst: Vec<u8> = (0..10).flat_map(|i| ping(&[i; 3])).collect();
    server.receive(&burst);
    let mut written = Vec::new();
    let mut pings = 0;
    loop {
        if server.pong_waiting() {
            written.extend_from_slice(server.pending_output());
            server.consume_output(server.pending_output().len());
        }
        match server.next_event().unwrap() {
            Some(wsproto::Event::Ping(_)) => pings += 1,
            Some(other) => panic!("unexpected {other:?}"),
            None => break,
        }
    }
    written.extend_from_slice(server.pending_output());
    assert_eq!(pings, 10);
    let pongs: Vec<u8> = (0..10).flat_map(|i| pong(&[i; 3])).collect();
    assert_eq!(written, pongs);
}

/// The waiting Pong is replaced where it is, behind other queued bytes; one that started
/// going out is not touched (it must go out whole) and the next follows it.
#[test]
fn only_a_pong_still_waiting_whole_is_replaced() {
    let mut server = Connection::upgraded_server(quiet_config());
    server.send_text("data").unwrap();
    feed(&mut server, &ping(b"first"));
    feed(&mut server, &ping(b"new"));
    assert_eq!(
        server.pending_output(),
        [&b"\x81\x04data"[..], &pong(b"new")].concat()
    );
    // Bytes queued behind the Pong stay in order when it is replaced.
    server.send_text("more").unwrap();
    feed(&mut server, &ping(b"newer"));
    assert_eq!(
        server.pending_output(),
        [&b"\x81\x04data"[..], b"\x81\x04more", &pong(b"newer")].concat()
    );

    // Write everything but the Pong's last byte: it is being written.
    let all = server.pending_output().len();
    server.consume_output(all - 1);
    assert!(!server.pong_waiting());
    feed(&mut server, &ping(b"next"));
    assert_eq!(
        server.pending_output(),
        [&pong(b"newer")[6..], &pong(b"next")].concat()
    );
    // The new one is replaceable in turn.
    feed(&mut server, &ping(b"last"));
    assert_eq!(
        server.pending_output(),
        [&pong(b"newer")[6..], &pong(b"last")].concat()
    );
}

/// A client's automatic Pong is masked; the one left decodes at the server and answers the
/// latest Ping.
#[test]
fn a_client_keeps_one_masked_pong() {
    let mut p = Pair::new();
    for i in 0..100u8 {
        p.server.send_ping(&[i; 4]).unwrap();
    }
    assert_eq!(p.deliver_to_client().len(), 100);
    assert_eq!(p.client.buffered_amount(), 2 + 4 + 4, "one masked Pong");
    assert_eq!(p.deliver_to_server(), vec![Ev::Pong(vec![99; 4])]);
}

#[test]
fn the_high_water_mark_refuses_message_sends_until_the_output_drains() {
    let mut server = Connection::upgraded_server(quiet_config().output_high_water(Some(1000)));
    assert!(server.wants_read());
    // Under the mark a message of any size goes in; the check comes before the send.
    server.send_binary(&[1; 600]).unwrap();
    server.send_binary(&[2; 600]).unwrap();
    let queued = server.buffered_amount();
    assert_eq!(queued, 2 * (4 + 600));
    assert!(!server.wants_read());
    let full = Err(UsageError::OutputFull { buffered: queued });
    assert_eq!(server.send_text("more"), full);
    assert_eq!(server.send_binary(b"more"), full);
    assert_eq!(
        server.send_fragment(MessageKind::Text, b"more", false),
        full
    );
    assert_eq!(
        server.send_prepared(&wsproto::PreparedMessage::text("more")),
        full
    );
    let mut sender = server.sender();
    assert_eq!(sender.send_text("more"), full);
    drop(sender);
    assert_eq!(server.buffered_amount(), queued, "nothing was queued");
    // Control frames still go in: they are small, and the protocol needs them.
    server.send_ping(b"p").unwrap();
    server.send_pong(b"q").unwrap();
    assert_eq!(server.buffered_amount(), queued + 6);
    assert_eq!(
        UsageError::OutputFull { buffered: queued }.to_string(),
        "1208 bytes wait to be written, at or past the high-water mark: write them first"
    );

    // Written down below the mark, sends and reading resume.
    server.consume_output(queued + 6 - 999);
    assert!(server.wants_read());
    server.send_text("resumed").unwrap();
    assert_eq!(server.buffered_amount(), 999 + 9);
}

/// The mark counts a sender's own sends, the payload it lends by reference included.
#[test]
fn a_sender_stops_at_the_mark_too() {
    let mut server = Connection::upgraded_server(quiet_config().output_high_water(Some(4096)));
    let big = vec![7; 5000];
    let mut sender = server.sender();
    sender.send_binary_borrowed(&big).unwrap();
    assert_eq!(
        sender.send_text("after"),
        Err(UsageError::OutputFull { buffered: 4 + 5000 })
    );
    drop(sender);
    assert_eq!(server.buffered_amount(), 4 + 5000);
}

#[test]
fn no_mark_lets_the_output_grow() {
    let mut server = Connection::upgraded_server(quiet_config().output_high_water(None));
    for _ in 0..100 {
        server.send_binary(&[0; 4096]).unwrap();
    }
    assert_eq!(server.buffered_amount(), 100 * (4 + 4096));
    assert!(server.wants_read());
}

/// Both ends split, both sending 48 MiB in 1 MiB messages while their readers run: each
/// reader keeps reading while its writer half waits on a full socket, so neither side ends
/// up waiting for the other to read. (Before the reader read on, this deadlocked: 48 MiB is
/// more than loopback's socket buffers hold.)
#[test]
fn split_peers_that_both_send_more_than_the_sockets_hold_do_not_deadlock() {
    use wsproto::drivers::tokio::WebSocketStream;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let config = quiet_config().max_message_size(2 << 20);
        let server = tokio::spawn({
            let config = config.clone();
            async move {
                let (tcp, _) = listener.accept().await.unwrap();
                WebSocketStream::accept(tcp, config).await.unwrap()
            }
        });
        let request = wsproto::ClientRequest::new(&url).unwrap();
        let client = WebSocketStream::connect_with(request, config)
            .await
            .unwrap();
        let server = server.await.unwrap();
        let both = async { tokio::join!(exchange(client, 0), exchange(server, 1)) };
        tokio::time::timeout(std::time::Duration::from_secs(30), both)
            .await
            .expect("both sides received everything");
    });
}

const MESSAGES: usize = 48;

/// Message `i` of `side`: 1 MiB of one byte.
fn message(side: u8, i: usize) -> Vec<u8> {
    vec![side ^ (i as u8) << 1; 1 << 20]
}

/// Sends [`MESSAGES`] on the writer half while the reader half takes the other side's.
async fn exchange<S>(ws: wsproto::drivers::tokio::WebSocketStream<S>, side: u8)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut reader, writer) = ws.split();
    let send = tokio::spawn(async move {
        for i in 0..MESSAGES {
            writer.send_binary(&message(side, i)).await.unwrap();
        }
    });
    for i in 0..MESSAGES {
        let got = reader.recv().await.unwrap();
        assert!(got == Some(Message::Binary(message(side ^ 1, i))), "{i}");
    }
    send.await.unwrap();
}

/// Ten Pings in one write, then a Close, to a server whose driver receives with `recv`.
fn burst_then_close() -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..10).flat_map(|i| ping(&[i; 3])).collect();
    bytes.extend_from_slice(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]);
    bytes
}

/// What the server wrote back: ten Pongs in order, then its Close echo.
fn pongs_then_close() -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..10).flat_map(|i| pong(&[i; 3])).collect();
    bytes.extend_from_slice(&[0x88, 0x02, 0x03, 0xe8]);
    bytes
}

/// The tokio stream and its reader half write a waiting Pong before the next event, so a
/// burst read in one go still gets a Pong per Ping.
#[test]
fn the_tokio_drivers_answer_every_ping_of_a_burst() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use wsproto::drivers::tokio::WebSocketStream;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for split in [false, true] {
        runtime.block_on(async move {
            let (mut peer, stream) = tokio::io::duplex(1 << 16);
            let ws = WebSocketStream::from_connection(
                stream,
                Connection::upgraded_server(quiet_config()),
            );
            peer.write_all(&burst_then_close()).await.unwrap();
            let server = tokio::spawn(async move {
                let mut pings = 0;
                let mut count = |message: Option<Message>| match message {
                    Some(Message::Ping(_)) => pings += 1,
                    Some(Message::Close { .. }) | None => {}
                    other => panic!("unexpected {other:?}"),
                };
                if split {
                    let (mut reader, _writer) = ws.split();
                    while let Some(message) = reader.recv().await.unwrap() {
                        count(Some(message));
                    }
                } else {
                    let mut ws = ws;
                    while let Some(message) = ws.recv().await.unwrap() {
                        count(Some(message));
                    }
                }
                pings
            });
            let mut written = Vec::new();
            peer.read_to_end(&mut written).await.unwrap();
            assert_eq!(written, pongs_then_close(), "split: {split}");
            assert_eq!(server.await.unwrap(), 10);
        });
    }
}

/// The blocking driver likewise.
#[test]
fn the_blocking_driver_answers_every_ping_of_a_burst() {
    use std::io::{Read, Write};
    use wsproto::drivers::blocking::WebSocket;

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (stream, _) = listener.accept().unwrap();
    peer.write_all(&burst_then_close()).unwrap();
    let server = std::thread::spawn(move || {
        let mut ws =
            WebSocket::from_connection(stream, Connection::upgraded_server(quiet_config()));
        let mut pings = 0;
        while let Some(message) = ws.recv().unwrap() {
            if let Message::Ping(_) = message {
                pings += 1;
            }
        }
        pings
    });
    let mut written = Vec::new();
    peer.read_to_end(&mut written).unwrap();
    assert_eq!(written, pongs_then_close());
    assert_eq!(server.join().unwrap(), 10);
}

/// Writer clones that send at once over a full socket wait for room in turn: with a
/// high-water mark below one message, the second clone's send finds the first one's rest
/// queued and waits for it to be written (it used to fail with `OutputFull`). Every message
/// arrives whole, each clone's in order.
#[test]
fn writer_clones_wait_for_room_instead_of_failing() {
    use tokio::io::AsyncReadExt;
    use wsproto::drivers::tokio::WebSocketStream;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // 256 bytes fit in the pipe: a 600-byte message leaves 348 queued, past the mark.
        let (mut peer, stream) = tokio::io::duplex(256);
        let config = quiet_config().output_high_water(Some(300));
        let ws = WebSocketStream::from_connection(stream, Connection::upgraded_server(config));
        let (_reader, writer) = ws.split();
        let senders: Vec<_> = (0..2u8)
            .map(|id| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    for i in 0..10u8 {
                        writer.send_binary(&[id * 16 + i; 600]).await.unwrap();
                    }
                })
            })
            .collect();
        // 20 frames of 4 + 600 bytes, read slowly. (A sender that failed leaves frames
        // missing: the time limit turns that into a failure.)
        let mut received = vec![0; 20 * 604];
        let read = async {
            for chunk in received.chunks_mut(100) {
                peer.read_exact(chunk).await.unwrap();
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), read)
            .await
            .expect("all 20 messages within 10 s");
        for sender in senders {
            sender.await.unwrap();
        }
        let mut next = [0u8; 2];
        for frame in received.chunks(604) {
            assert_eq!(&frame[..4], &[0x82, 126, 0x02, 0x58]);
            let byte = frame[4];
            assert!(frame[4..].iter().all(|&b| b == byte));
            let (id, i) = ((byte / 16) as usize, byte % 16);
            assert_eq!(i, next[id], "clone {id}'s messages in order");
            next[id] += 1;
        }
        assert_eq!(next, [10, 10]);
    });
}
