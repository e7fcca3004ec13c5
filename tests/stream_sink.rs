//! `futures_core::Stream` and `futures_sink::Sink` for the tokio driver over real 127.0.0.1
//! sockets: exact messages through `SinkExt::send`, `StreamExt::next` and `forward`, the
//! closing handshake `poll_close` starts, an error yielded once, and `next()` cancel-safety
//! under `tokio::select!` for the whole stream and the split halves (mirroring the `recv()`
//! tests in tests/drivers.rs).
//!
//! Every test listens on an ephemeral port and is bounded by a timeout, so none can hang.

mod common;
#[path = "common/raw_peer.rs"]
mod raw_peer;

use common::{Ev, quiet_config};
use futures_util::stream::FusedStream;
use futures_util::{SinkExt, StreamExt};
use raw_peer::{RawPeer, bursty_peer, check_stream, close_message, nth_message};
use std::io::Write;
use std::time::Duration;
use wsproto::drivers::tokio::{ClientStream, WebSocketStream};
use wsproto::drivers::{Error, Message};
use wsproto::{ClientRequest, ProtocolError};

const LIMIT: Duration = Duration::from_secs(30);

// ----- harness ---------------------------------------------------------------------------

/// Bounds an async test body.
async fn bounded<T>(body: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, body)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {LIMIT:?}"))
}

async fn tokio_listener() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    (listener, url)
}

/// An echo server for one connection (Text and Binary back as they came; Pings are answered
/// by the connection). Returns the peer's Close, if any.
fn echo_server(
    listener: tokio::net::TcpListener,
) -> tokio::task::JoinHandle<Option<(u16, String)>> {
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = WebSocketStream::accept(stream, quiet_config())
            .await
            .unwrap();
        let mut close = None;
        while let Some(message) = ws.recv().await.unwrap() {
            match message {
                Message::Text(text) => ws.send_text(&text).await.unwrap(),
                Message::Binary(data) => ws.send_binary(&data).await.unwrap(),
                Message::Close { code, reason } => close = Some((code.0, reason)),
                Message::Ping(_) | Message::Pong(_) => {}
                // A streaming server echoes each chunk as a fragment.
                Message::TextChunk { text, fin } => ws
                    .send_fragment(wsproto::MessageKind::Text, text.as_bytes(), fin)
                    .await
                    .unwrap(),
                Message::BinaryChunk { data, fin } => ws
                    .send_fragment(wsproto::MessageKind::Binary, &data, fin)
                    .await
                    .unwrap(),
            }
        }
        close
    })
}

/// A server that keeps every message it receives, for one connection, until the end.
fn collecting_server(listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<Vec<Message>> {
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = WebSocketStream::accept(stream, quiet_config())
            .await
            .unwrap();
        let mut received = Vec::new();
        while let Some(message) = ws.recv().await.unwrap() {
            received.push(message);
        }
        received
    })
}

async fn connect(url: &str) -> WebSocketStream<ClientStream> {
    WebSocketStream::connect_with(ClientRequest::new(url).unwrap(), quiet_config())
        .await
        .unwrap()
}

/// `next()` as a plain value: `Some(message)` or `None`, panicking on an error.
async fn next_message<St>(stream: &mut St) -> Option<Message>
where
    St: futures_util::Stream<Item = Result<Message, Error>> + Unpin,
{
    stream.next().await.map(Result::unwrap)
}

// ----- exact messages ----------------------------------------------------------------------

#[tokio::test]
async fn sink_send_and_stream_next_round_trip_exact_messages() {
    bounded(async {
        let (listener, url) = tokio_listener().await;
        let server = echo_server(listener);
        let mut ws = connect(&url).await;

        ws.send(Message::Text("h\u{e9}llo \u{1f600}".into()))
            .await
            .unwrap();
        assert_eq!(
            next_message(&mut ws).await,
            Some(Message::Text("h\u{e9}llo \u{1f600}".into()))
        );
        ws.send(Message::Binary(vec![0, 1, 2, 255])).await.unwrap();
        assert_eq!(
            next_message(&mut ws).await,
            Some(Message::Binary(vec![0, 1, 2, 255]))
        );
        // The server's connection answers the Ping itself.
        ws.send(Message::Ping(b"are you there".to_vec()))
            .await
            .unwrap();
        assert_eq!(
            next_message(&mut ws).await,
            Some(Message::Pong(b"are you there".to_vec()))
        );
        // An empty text message, then the closing handshake from `SinkExt::close`.
        ws.send(Message::Text(String::new())).await.unwrap();
        assert_eq!(
            next_message(&mut ws).await,
            Some(Message::Text(String::new()))
        );
        SinkExt::close(&mut ws).await.unwrap();
        assert_eq!(next_message(&mut ws).await, Some(close_message(1000, "")));
        assert!(!ws.is_terminated());
        assert_eq!(next_message(&mut ws).await, None);
        assert!(ws.is_terminated());
        assert_eq!(next_message(&mut ws).await, None);
        assert_eq!(server.await.unwrap(), Some((1000, String::new())));
    })
    .await;
}

#[tokio::test]
async fn sink_close_message_sends_its_code_and_reason() {
    bounded(async {
        let (listener, url) = tokio_listener().await;
        let server = echo_server(listener);
        let mut ws = connect(&url).await;
        ws.send(close_message(4001, "done here")).await.unwrap();
        // The server's connection echoes the Close (RFC 6455 §5.5.1).
        assert_eq!(
            next_message(&mut ws).await,
            Some(close_message(4001, "done here"))
        );
        assert_eq!(next_message(&mut ws).await, None);
        assert_eq!(server.await.unwrap(), Some((4001, "done here".into())));
        // Closed: the sink refuses more messages without writing anything.
        let refused = ws.send(Message::Text("late".into())).await.unwrap_err();
        assert!(matches!(refused, Error::Usage(_)), "{refused:?}");
    })
    .await;
}

#[tokio::test]
async fn forward_sends_every_message_then_closes_with_1000() {
    const COUNT: usize = 300;
    bounded(async {
        let (listener, url) = tokio_listener().await;
        let server = collecting_server(listener);
        let (mut reader, mut writer) = connect(&url).await.split();
        let messages = (0..COUNT).map(|i| Ok(nth_message(i)));
        // `forward` flushes and closes the sink once the stream of messages ends.
        futures_util::stream::iter(messages)
            .forward(&mut writer)
            .await
            .unwrap();
        // The server's echo of our Close ends the stream.
        assert_eq!(
            next_message(&mut reader).await,
            Some(close_message(1000, ""))
        );
        assert_eq!(next_message(&mut reader).await, None);
        assert!(reader.is_terminated());
        let received = server.await.unwrap();
        assert_eq!(received.len(), COUNT + 1, "message count");
        for (i, message) in received[..COUNT].iter().enumerate() {
            assert!(*message == nth_message(i), "message {i} differs");
        }
        assert_eq!(received[COUNT], close_message(1000, ""));
    })
    .await;
}

#[tokio::test]
async fn writer_poll_close_sends_close_1000_and_the_peer_sees_it() {
    bounded(async {
        let (listener, url) = tokio_listener().await;
        let server = echo_server(listener);
        let (mut reader, mut writer) = connect(&url).await.split();
        writer.send(Message::Text("last".into())).await.unwrap();
        assert_eq!(
            next_message(&mut reader).await,
            Some(Message::Text("last".into()))
        );
        SinkExt::close(&mut writer).await.unwrap();
        // Closing again is harmless: the handshake is already under way.
        SinkExt::close(&mut writer).await.unwrap();
        assert_eq!(
            next_message(&mut reader).await,
            Some(close_message(1000, ""))
        );
        assert_eq!(next_message(&mut reader).await, None);
        assert_eq!(server.await.unwrap(), Some((1000, String::new())));
    })
    .await;
}

#[tokio::test]
async fn stream_yields_an_error_once_then_ends() {
    bounded(async {
        let (listener, url) = tokio_listener().await;
        let peer = tokio::task::spawn_blocking(move || {
            let mut peer = RawPeer::connect(&url, quiet_config());
            // RFC 6455 §5.1: a client's frames are masked; this one is not.
            peer.stream.write_all(&[0x81, 0x02, b'h', b'i']).unwrap();
            peer.next()
        });
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = WebSocketStream::accept(stream, quiet_config())
            .await
            .unwrap();
        match ws.next().await {
            Some(Err(Error::Connection(wsproto::Error::Protocol(
                ProtocolError::UnmaskedFrame,
            )))) => {}
            other => panic!("expected the unmasked-frame error, got {other:?}"),
        }
        assert!(ws.is_terminated());
        assert!(ws.next().await.is_none());
        assert!(ws.next().await.is_none());
        // The failure's Close frame went out first (RFC 6455 §7.4.1: 1002).
        assert_eq!(
            peer.await.unwrap(),
            Some(Ev::Close(
                1002,
                "received an unmasked frame from the client".into()
            ))
        );
    })
    .await;
}

// ----- next() cancel-safety ----------------------------------------------------------------

#[tokio::test]
async fn stream_next_is_cancel_safe_in_select() {
    bounded(async {
        let (listener, url) = tokio_listener().await;
        let peer = tokio::task::spawn_blocking(move || bursty_peer(url));
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = WebSocketStream::accept(stream, quiet_config())
            .await
            .unwrap();
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        let (mut received, mut ticks) = (Vec::new(), 0);
        loop {
            tokio::select! {
                message = ws.next() => match message {
                    Some(message) => received.push(message.unwrap()),
                    None => break,
                },
                _ = tick.tick() => ticks += 1,
            }
        }
        assert!(ws.is_terminated());
        check_stream(&received, ticks, peer.await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn split_reader_next_is_cancel_safe_in_select() {
    bounded(async {
        let (listener, url) = tokio_listener().await;
        let peer = tokio::task::spawn_blocking(move || bursty_peer(url));
        let (stream, _) = listener.accept().await.unwrap();
        let ws = WebSocketStream::accept(stream, quiet_config())
            .await
            .unwrap();
        let (mut reader, _writer) = ws.split();
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        let (mut received, mut ticks) = (Vec::new(), 0);
        loop {
            tokio::select! {
                message = reader.next() => match message {
                    Some(message) => received.push(message.unwrap()),
                    None => break,
                },
                _ = tick.tick() => ticks += 1,
            }
        }
        assert!(reader.is_terminated());
        check_stream(&received, ticks, peer.await.unwrap());
    })
    .await;
}

/// The writer half as a Sink in one task and the reader half as a Stream under `select!` in
/// another, on two worker threads: both write (the reader's Pong answers, the writer's
/// messages) to the one socket, and every echo comes back once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_sink_and_stream_from_two_tasks_under_select() {
    const COUNT: usize = 1_000;
    bounded(async {
        let (listener, url) = tokio_listener().await;
        let server = echo_server(listener);
        let (mut reader, mut writer) = connect(&url).await.split();
        let sender = tokio::spawn(async move {
            for i in 0..COUNT {
                writer.send(nth_message(i)).await.unwrap();
                if i % 100 == 0 {
                    // Pings make the server's connection write Pongs between the echoes.
                    writer.send(Message::Ping(vec![i as u8])).await.unwrap();
                }
            }
            writer
        });
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        let (mut received, mut ticks) = (Vec::new(), 0);
        while received.len() < COUNT {
            tokio::select! {
                message = reader.next() => match message.unwrap().unwrap() {
                    Message::Pong(_) => {}
                    message => received.push(message),
                },
                _ = tick.tick() => ticks += 1,
            }
        }
        for (i, message) in received.iter().enumerate() {
            assert!(*message == nth_message(i), "message {i} differs");
        }
        let mut writer = sender.await.unwrap();
        SinkExt::close(&mut writer).await.unwrap();
        loop {
            match next_message(&mut reader).await {
                Some(Message::Pong(_)) => {}
                other => {
                    assert_eq!(other, Some(close_message(1000, "")));
                    break;
                }
            }
        }
        assert_eq!(next_message(&mut reader).await, None);
        assert_eq!(server.await.unwrap(), Some((1000, String::new())));
        assert!(ticks > 0, "the competing branch never fired");
    })
    .await;
}

/// Four clones of the writer half, each a Sink in its own task, send large messages to a
/// server that reads slowly and pings between reads, while the reader half (answering the
/// Pings, so writing too) runs in a fifth task: the socket fills up, so writers wait for
/// it together, and every one of them must be woken when it drains. Each writer's messages
/// arrive complete and in its order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_clones_as_sinks_share_a_full_socket() {
    const WRITERS: u8 = 4;
    const EACH: usize = 40;
    const SIZE: usize = 64 * 1024;
    bounded(async {
        let (listener, url) = tokio_listener().await;
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut ws = WebSocketStream::accept(stream, quiet_config())
                .await
                .unwrap();
            let mut received = Vec::new();
            while let Some(message) = ws.recv().await.unwrap() {
                if let Message::Binary(data) = message {
                    received.push(data);
                    if received.len() % 10 == 0 {
                        ws.send_ping(&[received.len() as u8]).await.unwrap();
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
            }
            received
        });
        let (mut reader, writer) = connect(&url).await.split();
        let reading = tokio::spawn(async move {
            let mut pings = 0;
            while let Some(message) = next_message(&mut reader).await {
                match message {
                    Message::Ping(_) => pings += 1,
                    Message::Close { code, .. } => assert_eq!(code.0, 1000),
                    other => panic!("unexpected {other:?}"),
                }
            }
            pings
        });
        let tasks: Vec<_> = (0..WRITERS)
            .map(|id| {
                let mut writer = writer.clone();
                tokio::spawn(async move {
                    for seq in 0..EACH {
                        let mut data = vec![id; SIZE];
                        data[1] = seq as u8;
                        writer.send(Message::Binary(data)).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let mut writer = writer;
        SinkExt::close(&mut writer).await.unwrap();
        let pings = reading.await.unwrap();
        let received = server.await.unwrap();
        assert_eq!(received.len(), WRITERS as usize * EACH);
        assert_eq!(pings, received.len() / 10);
        let mut next_seq = [0u8; WRITERS as usize];
        for data in &received {
            let id = data[0];
            assert_eq!(data.len(), SIZE);
            assert_eq!(data[1], next_seq[id as usize], "writer {id} out of order");
            assert!(
                data[2..].iter().all(|&b| b == id),
                "writer {id}'s bytes differ"
            );
            next_seq[id as usize] += 1;
        }
        assert_eq!(next_seq, [EACH as u8; WRITERS as usize]);
    })
    .await;
}
