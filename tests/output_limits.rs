//! Bounded output: automatic Pongs that never pile up (past 16 waiting, the last is replaced:
//! RFC 6455 §5.5.3 lets a Pong answer only the latest Ping), the `output_high_water` mark that refuses message sends and turns
//! `wants_read` off, and the tokio reader half that keeps reading while its writer half is
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

/// A burst of pings gets a Pong each, in order (Autobahn 2.10 sends ten at once).
#[test]
fn a_burst_of_pings_gets_every_pong() {
    let mut server = Connection::upgraded_server(quiet_config());
    let burst: Vec<u8> = (0..10).flat_map(|i| ping(&[i; 3])).collect();
    feed(&mut server, &burst);
    let pongs: Vec<u8> = (0..10).flat_map(|i| pong(&[i; 3])).collect();
    assert_eq!(server.pending_output(), pongs);
}

/// 10,000 pings never written: 16 Pongs wait, the last answering the latest Ping.
#[test]
fn a_ping_flood_that_is_never_written_leaves_sixteen_pongs() {
    let mut server = Connection::upgraded_server(quiet_config());
    let mut flood = Vec::new();
    for i in 0..10_000u32 {
        flood.extend_from_slice(&ping(format!("ping {i:04}").as_bytes()));
    }
    let events = feed(&mut server, &flood);
    assert_eq!(events.len(), 10_000, "every Ping is reported");
    assert_eq!(events[9_999], Ev::Ping(b"ping 9999".to_vec()));
    let mut expected: Vec<u8> = (0..15)
        .flat_map(|i| pong(format!("ping {i:04}").as_bytes()))
        .collect();
    expected.extend_from_slice(&pong(b"ping 9999"));
    assert_eq!(server.pending_output(), expected);
    assert_eq!(server.buffered_amount(), 16 * 11);
    assert!(server.wants_read());
}

/// Past the sixteenth, the last Pong is replaced while it waits whole; one that started
/// going out is not touched (it must go out whole) and the next follows it. Once the output
/// drains, a new burst gets its Pongs again.
#[test]
fn only_a_pong_still_waiting_whole_is_replaced() {
    let mut server = Connection::upgraded_server(quiet_config());
    server.send_text("data").unwrap();
    for i in 0..16u8 {
        feed(&mut server, &ping(&[i]));
    }
    let sixteen: Vec<u8> = (0..16).flat_map(|i| pong(&[i])).collect();
    assert_eq!(
        server.pending_output(),
        [&b"\x81\x04data"[..], &sixteen].concat()
    );
    feed(&mut server, &ping(b"new"));
    let fifteen = &sixteen[..15 * 3];
    assert_eq!(
        server.pending_output(),
        [&b"\x81\x04data"[..], fifteen, &pong(b"new")].concat()
    );

    // Write everything but the last Pong's last byte: it is being written.
    let all = server.pending_output().len();
    server.consume_output(all - 1);
    feed(&mut server, &ping(b"next"));
    assert_eq!(
        server.pending_output(),
        [&pong(b"new")[4..], &pong(b"next")].concat()
    );
    // The new one is replaceable in turn.
    feed(&mut server, &ping(b"last"));
    assert_eq!(
        server.pending_output(),
        [&pong(b"new")[4..], &pong(b"last")].concat()
    );
    // Drained, the count starts over.
    server.consume_output(server.pending_output().len());
    feed(&mut server, &ping(b"a"));
    feed(&mut server, &ping(b"b"));
    assert_eq!(server.pending_output(), [pong(b"a"), pong(b"b")].concat());
}

/// A client's automatic Pongs are masked; those left decode at the server, the last
/// answering the latest Ping.
#[test]
fn a_client_keeps_sixteen_masked_pongs() {
    let mut p = Pair::new();
    for i in 0..100u8 {
        p.server.send_ping(&[i; 4]).unwrap();
    }
    assert_eq!(p.deliver_to_client().len(), 100);
    assert_eq!(
        p.client.buffered_amount(),
        16 * (2 + 4 + 4),
        "16 masked Pongs"
    );
    let mut expected: Vec<Ev> = (0..15).map(|i| Ev::Pong(vec![i; 4])).collect();
    expected.push(Ev::Pong(vec![99; 4]));
    assert_eq!(p.deliver_to_server(), expected);
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
