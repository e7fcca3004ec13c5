//! The blocking and tokio drivers over real 127.0.0.1 sockets: handshake, echo, closing codes,
//! subprotocols, rejection, `recv()` cancel-safety, split halves and keepalive.
//!
//! Every test listens on an ephemeral port and is bounded by a timeout, so none can hang.

mod common;
#[path = "common/raw_peer.rs"]
mod raw_peer;

use common::{Ev, quiet_config};
use raw_peer::{RawPeer, bursty_peer, check_stream, close_message};
use std::io::{Read, Write};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};
use wsproto::drivers::blocking::WebSocket;
use wsproto::drivers::tokio::WebSocketStream;
use wsproto::drivers::{Answer, Error, Message};
use wsproto::{
    Accept, ClientRequest, CloseCode, Config, Connection, ConnectionState, HandshakeError,
    MessageKind,
};

const LIMIT: Duration = Duration::from_secs(30);

// ----- harness ---------------------------------------------------------------------------

/// Runs a blocking test body on its own thread and fails the test if it takes over `limit`.
fn within<T: Send + 'static>(limit: Duration, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = mpsc::channel();
    let runner = thread::spawn(move || {
        let _ = done.send(body());
    });
    match result.recv_timeout(limit) {
        Ok(value) => value,
        // The body panicked: join to re-raise its panic message.
        Err(mpsc::RecvTimeoutError::Disconnected) => match runner.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the body sent nothing but did not panic"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test did not finish within {limit:?}"),
    }
}

/// Bounds an async test body.
async fn bounded<T>(body: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, body)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {LIMIT:?}"))
}

fn std_listener() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    (listener, url)
}

async fn tokio_listener() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    (listener, url)
}

/// What a test echo server saw: the peer's Close, if any, and how its read loop ended.
#[derive(Debug)]
struct ServerLog {
    close: Option<(u16, String)>,
    end: Result<(), String>,
}

/// A blocking echo server for one connection. After `close_after` echoed messages it starts
/// the closing handshake itself with `close_with`.
fn blocking_echo_server(
    listener: std::net::TcpListener,
    config: Config,
    close_after: Option<(usize, CloseCode, &'static str)>,
) -> thread::JoinHandle<ServerLog> {
    thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut ws = WebSocket::accept(stream, config).unwrap();
        let mut log = ServerLog {
            close: None,
            end: Ok(()),
        };
        let mut echoed = 0;
        loop {
            let message = match ws.recv() {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(e) => {
                    log.end = Err(e.to_string());
                    break;
                }
            };
            match message {
                Message::Text(text) => ws.send_text(&text).unwrap(),
                Message::Binary(data) => ws.send_binary(&data).unwrap(),
                Message::Close { code, reason } => log.close = Some((code.0, reason)),
                Message::Ping(_) | Message::Pong(_) => continue,
                Message::TextChunk { .. } | Message::BinaryChunk { .. } => {
                    unreachable!("messages come whole without Config::stream_messages")
                }
            }
            echoed += 1;
            if let Some((after, code, reason)) = close_after
                && echoed == after
            {
                ws.close(code, reason).unwrap();
            }
        }
        assert_eq!(ws.connection().state(), ConnectionState::Closed);
        log
    })
}

/// The tokio twin of [`blocking_echo_server`].
fn tokio_echo_server(
    listener: tokio::net::TcpListener,
    config: Config,
    close_after: Option<(usize, CloseCode, &'static str)>,
) -> tokio::task::JoinHandle<ServerLog> {
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = WebSocketStream::accept(stream, config).await.unwrap();
        let mut log = ServerLog {
            close: None,
            end: Ok(()),
        };
        let mut echoed = 0;
        loop {
            let message = match ws.recv().await {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(e) => {
                    log.end = Err(e.to_string());
                    break;
                }
            };
            match message {
                Message::Text(text) => ws.send_text(&text).await.unwrap(),
                Message::Binary(data) => ws.send_binary(&data).await.unwrap(),
                Message::Close { code, reason } => log.close = Some((code.0, reason)),
                Message::Ping(_) | Message::Pong(_) => continue,
                Message::TextChunk { .. } | Message::BinaryChunk { .. } => {
                    unreachable!("messages come whole without Config::stream_messages")
                }
            }
            echoed += 1;
            if let Some((after, code, reason)) = close_after
                && echoed == after
            {
                ws.close(code, reason).await.unwrap();
            }
        }
        assert_eq!(ws.connection().state(), ConnectionState::Closed);
        log
    })
}

/// A binary payload that is not all one byte, 70,000 bytes: a 64-bit length on the wire.
fn big_binary() -> Vec<u8> {
    (0..70_000u32).map(|i| (i * 7 + i / 251) as u8).collect()
}

// ----- handshake, echo and closing codes ---------------------------------------------------

#[test]
fn blocking_echo_then_client_closes_with_its_code() {
    within(LIMIT, || {
        let (listener, url) = std_listener();
        let server = blocking_echo_server(listener, Config::default(), None);
        let mut ws = WebSocket::connect(&url).unwrap();
        assert_eq!(ws.connection().state(), ConnectionState::Open);

        ws.send_text("hello \u{2713}").unwrap();
        assert_eq!(
            ws.recv().unwrap(),
            Some(Message::Text("hello \u{2713}".into()))
        );
        ws.send_binary(&big_binary()).unwrap();
        assert_eq!(ws.recv().unwrap(), Some(Message::Binary(big_binary())));
        ws.send_binary(&[]).unwrap();
        assert_eq!(ws.recv().unwrap(), Some(Message::Binary(Vec::new())));

        ws.close(CloseCode(4000), "done here").unwrap();
        assert_eq!(ws.recv().unwrap(), Some(close_message(4000, "done here")));
        assert_eq!(ws.recv().unwrap(), None);
        assert_eq!(ws.connection().state(), ConnectionState::Closed);

        let log = server.join().unwrap();
        assert_eq!(log.close, Some((4000, "done here".into())));
        assert_eq!(log.end, Ok(()));
    });
}

#[test]
fn blocking_server_closes_with_its_code() {
    within(LIMIT, || {
        let (listener, url) = std_listener();
        let server = blocking_echo_server(
            listener,
            Config::default(),
            Some((1, CloseCode::GOING_AWAY, "shutting down")),
        );
        let mut ws = WebSocket::connect(&url).unwrap();
        ws.send_text("last").unwrap();
        assert_eq!(ws.recv().unwrap(), Some(Message::Text("last".into())));
        assert_eq!(
            ws.recv().unwrap(),
            Some(close_message(1001, "shutting down"))
        );
        assert_eq!(ws.recv().unwrap(), None);
        // The echo of the server's Close carries the same code (RFC 6455 §5.5.1).
        let log = server.join().unwrap();
        assert_eq!(log.close, Some((1001, "shutting down".into())));
        assert_eq!(log.end, Ok(()));
    });
}

#[tokio::test]
async fn tokio_echo_then_client_closes_with_its_code() {
    bounded(async {
        let (listener, url) = tokio_listener().await;
        let server = tokio_echo_server(listener, Config::default(), None);
        let mut ws = WebSocketStream::connect(&url).await.unwrap();
        assert_eq!(ws.connection().state(), ConnectionState::Open);

        ws.send_text("hello \u{2713}").await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap(),
            Some(Message::Text("hello \u{2713}".into()))
        );
        ws.send_binary(&big_binary()).await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap(),
            Some(Message::Binary(big_binary()))
        );
        // A message sent in fragments arrives joined.
        ws.send_fragment(
            MessageKind::Text,
            "caf\u{e9}".as_bytes()[..4].as_ref(),
            false,
        )
        .await
        .unwrap();
        ws.send_fragment(MessageKind::Text, &"caf\u{e9}".as_bytes()[4..], true)
            .await
            .unwrap();
        assert_eq!(
            ws.recv().await.unwrap(),
            Some(Message::Text("caf\u{e9}".into()))
        );

        ws.close(CloseCode(4000), "done here").await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap(),
            Some(close_message(4000, "done here"))
        );
        assert_eq!(ws.recv().await.unwrap(), None);
        assert_eq!(ws.connection().state(), ConnectionState::Closed);

        let log = server.await.unwrap();
        assert_eq!(log.close, Some((4000, "done here".into())));
        assert_eq!(log.end, Ok(()));
    })
    .await;
}

#[tokio::test]
async fn tokio_server_closes_with_its_code() {
    bounded(async {
        let (listener, url) = tokio_listener().await;
        let server = tokio_echo_server(
            listener,
            Config::default(),
            Some((1, CloseCode::GOING_AWAY, "shutting down")),
        );
        let mut ws = WebSocketStream::connect(&url).await.unwrap();
        ws.send_binary(b"last").await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap(),
            Some(Message::Binary(b"last".to_vec()))
        );
        assert_eq!(
            ws.recv().await.unwrap(),
            Some(close_message(1001, "shutting down"))
        );
        assert_eq!(ws.recv().await.unwrap(), None);
        let log = server.await.unwrap();
        assert_eq!(log.close, Some((1001, "shutting down".into())));
        assert_eq!(log.end, Ok(()));
    })
    .await;
}

#[test]
fn blocking_client_and_tokio_server_interoperate() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (listener, url) = runtime.block_on(tokio_listener());
    let server = runtime.spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = WebSocketStream::accept(stream, Config::default())
            .await
            .unwrap();
        while let Some(message) = ws.recv().await.unwrap() {
            if let Message::Text(text) = message {
                ws.send_text(&text.to_uppercase()).await.unwrap();
            }
        }
    });
    within(LIMIT, move || {
        let mut ws = WebSocket::connect(&url).unwrap();
        ws.send_text("mixed drivers").unwrap();
        assert_eq!(
            ws.recv().unwrap(),
            Some(Message::Text("MIXED DRIVERS".into()))
        );
        ws.close(CloseCode::NORMAL, "").unwrap();
        assert_eq!(ws.recv().unwrap(), Some(close_message(1000, "")));
        assert_eq!(ws.recv().unwrap(), None);
    });
    runtime.block_on(async { bounded(server).await.unwrap() });
}

// ----- subprotocols and rejection ---------------------------------------------------------

/// The server picks the one subprotocol it speaks from the client's list.
fn pick_v1(request: &wsproto::Request) -> Answer {
    assert_eq!(request.subprotocols(), ["chat.v2", "chat.v1"]);
    assert_eq!(request.path(), "/room");
    Answer::Accept(Accept::new().subprotocol("chat.v1"))
}

fn subprotocol_request(url: &str) -> ClientRequest {
    ClientRequest::new(&format!("{url}room"))
        .unwrap()
        .subprotocol("chat.v2")
        .unwrap()
        .subprotocol("chat.v1")
        .unwrap()
}

#[test]
fn blocking_accept_with_selects_subprotocol() {
    within(LIMIT, || {
        let (listener, url) = std_listener();
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let ws = WebSocket::accept_with(stream, Config::default(), pick_v1).unwrap();
            ws.connection().subprotocol().map(str::to_string)
        });
        let ws = WebSocket::connect_with(subprotocol_request(&url), Config::default()).unwrap();
        assert_eq!(ws.connection().subprotocol(), Some("chat.v1"));
        assert_eq!(server.join().unwrap().as_deref(), Some("chat.v1"));
    });
}

#[tokio::test]
async fn tokio_accept_with_selects_subprotocol() {
    bounded(async {
        let (listener, url) = tokio_listener().await;
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let ws = WebSocketStream::accept_with(stream, Config::default(), pick_v1)
                .await
                .unwrap();
            ws.connection().subprotocol().map(str::to_string)
        });
        let ws = WebSocketStream::connect_with(subprotocol_request(&url), Config::default())
            .await
            .unwrap();
        assert_eq!(ws.connection().subprotocol(), Some("chat.v1"));
        assert_eq!(server.await.unwrap().as_deref(), Some("chat.v1"));
    })
    .await;
}

fn reject_403(_: &wsproto::Request) -> Answer {
    Answer::Reject {
        status: 403,
        headers: vec![("X-Reason".into(), "members only".into())],
        body: b"members only\n".to_vec(),
    }
}

/// The client sees the status and the headers of the rejection.
fn assert_rejected(error: Error) {
    match error {
        Error::Connection(wsproto::Error::Handshake(HandshakeError::UnexpectedStatus {
            status,
            headers,
            ..
        })) => {
            assert_eq!(status, 403);
            assert!(
                headers
                    .iter()
                    .any(|(name, value)| name.eq_ignore_ascii_case("x-reason")
                        && value == b"members only"),
                "headers: {headers:?}"
            );
        }
        other => panic!("expected UnexpectedStatus 403, got {other:?}"),
    }
}

/// The server's own view of the rejection.
fn assert_server_rejected<T: std::fmt::Debug>(result: Result<T, Error>) {
    match result {
        Err(Error::Connection(wsproto::Error::Handshake(HandshakeError::Rejected {
            status: 403,
        }))) => {}
        other => panic!("expected Rejected 403, got {other:?}"),
    }
}

#[test]
fn blocking_rejection_reaches_client_as_unexpected_status() {
    within(LIMIT, || {
        let (listener, url) = std_listener();
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            assert_server_rejected(WebSocket::accept_with(
                stream,
                Config::default(),
                reject_403,
            ));
        });
        assert_rejected(WebSocket::connect(&url).unwrap_err());
        server.join().unwrap();
    });
}

#[tokio::test]
async fn tokio_rejection_reaches_client_as_unexpected_status() {
    bounded(async {
        let (listener, url) = tokio_listener().await;
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            assert_server_rejected(
                WebSocketStream::accept_with(stream, Config::default(), reject_403).await,
            );
        });
        assert_rejected(WebSocketStream::connect(&url).await.unwrap_err());
        server.await.unwrap();
    })
    .await;
}

// ----- recv() cancel-safety ---------------------------------------------------------------

#[tokio::test]
async fn tokio_recv_is_cancel_safe_in_select() {
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
                message = ws.recv() => match message.unwrap() {
                    Some(message) => received.push(message),
                    None => break,
                },
                _ = tick.tick() => ticks += 1,
            }
        }
        check_stream(&received, ticks, peer.await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn tokio_split_reader_recv_is_cancel_safe_in_select() {
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
                message = reader.recv() => match message.unwrap() {
                    Some(message) => received.push(message),
                    None => break,
                },
                _ = tick.tick() => ticks += 1,
            }
        }
        check_stream(&received, ticks, peer.await.unwrap());
    })
    .await;
}

// ----- split halves -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_split_halves_work_from_two_tasks() {
    const COUNT: usize = 500;
    bounded(async {
        let (listener, url) = tokio_listener().await;
        // The server is split too: its reader task feeds its writer task.
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let ws = WebSocketStream::accept(stream, quiet_config())
                .await
                .unwrap();
            let (mut reader, writer) = ws.split();
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
            let echo = tokio::spawn(async move {
                while let Some(text) = rx.recv().await {
                    writer.send_text(&text).await.unwrap();
                }
            });
            let mut close = None;
            while let Some(message) = reader.recv().await.unwrap() {
                match message {
                    Message::Text(text) => tx.send(text).unwrap(),
                    Message::Close { code, reason } => close = Some((code.0, reason)),
                    _ => {}
                }
            }
            drop(tx);
            echo.await.unwrap();
            close
        });

        let ws = WebSocketStream::connect(&url).await.unwrap();
        let (mut reader, writer) = ws.split();
        let sender = tokio::spawn(async move {
            for i in 0..COUNT {
                writer.send_text(&format!("message {i}")).await.unwrap();
            }
            writer
        });
        let receiver = tokio::spawn(async move {
            for i in 0..COUNT {
                let message = reader.recv().await.unwrap();
                assert_eq!(message, Some(Message::Text(format!("message {i}"))));
            }
            reader
        });
        let writer = sender.await.unwrap();
        let mut reader = receiver.await.unwrap();
        writer.close(CloseCode::NORMAL, "bye").await.unwrap();
        assert_eq!(
            reader.recv().await.unwrap(),
            Some(close_message(1000, "bye"))
        );
        assert_eq!(reader.recv().await.unwrap(), None);
        // Sending after the close is a usage error, not a panic or a hang.
        assert!(matches!(
            writer.send_text("late").await,
            Err(Error::Usage(wsproto::UsageError::NotOpen))
        ));
        assert_eq!(server.await.unwrap(), Some((1000, "bye".into())));
    })
    .await;
}

// ----- keepalive ----------------------------------------------------------------------------

/// Keepalive every 50 ms, failing 100 ms after an unanswered Ping.
fn fast_keepalive() -> Config {
    let mut config = Config::default();
    config.keepalive_interval = Some(Duration::from_millis(50));
    config.keepalive_timeout = Some(Duration::from_millis(100));
    config
}

/// A peer with auto-pong off that never writes: it should see Pings, then a Close 1011.
fn silent_peer(url: String) -> Vec<Ev> {
    let mut config = quiet_config();
    config.auto_pong = false;
    let mut peer = RawPeer::connect(&url, config);
    let mut events = Vec::new();
    while let Some(event) = peer.next() {
        events.push(event);
    }
    events
}

fn check_silent_peer(events: &[Ev]) {
    assert!(
        matches!(events.first(), Some(Ev::Ping(payload)) if !payload.is_empty()),
        "events: {events:?}"
    );
    let close = events
        .iter()
        .find(|e| matches!(e, Ev::Close(..)))
        .unwrap_or_else(|| panic!("no Close frame: {events:?}"));
    assert!(matches!(close, Ev::Close(1011, _)), "close: {close:?}");
    assert!(
        matches!(events.last(), Some(Ev::Closed(_))),
        "events: {events:?}"
    );
}

fn assert_keepalive_timeout<T: std::fmt::Debug>(result: Result<T, Error>, started: Instant) {
    assert!(
        matches!(
            result,
            Err(Error::Connection(wsproto::Error::KeepaliveTimeout))
        ),
        "expected KeepaliveTimeout, got {result:?}"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(100) && elapsed < Duration::from_secs(5),
        "failed after {elapsed:?}"
    );
}

#[test]
fn blocking_keepalive_fails_with_1011_when_no_pong() {
    within(LIMIT, || {
        let (listener, url) = std_listener();
        let peer = thread::spawn(move || silent_peer(url));
        let (stream, _) = listener.accept().unwrap();
        let mut ws = WebSocket::accept(stream, fast_keepalive()).unwrap();
        let started = Instant::now();
        let result = ws.recv();
        assert_keepalive_timeout(result, started);
        check_silent_peer(&peer.join().unwrap());
    });
}

#[tokio::test]
async fn tokio_keepalive_fails_with_1011_when_no_pong() {
    bounded(async {
        let (listener, url) = tokio_listener().await;
        let peer = tokio::task::spawn_blocking(move || silent_peer(url));
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = WebSocketStream::accept(stream, fast_keepalive())
            .await
            .unwrap();
        let started = Instant::now();
        let result = ws.recv().await;
        assert_keepalive_timeout(result, started);
        check_silent_peer(&peer.await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn tokio_split_reader_keepalive_fails_with_1011_when_no_pong() {
    bounded(async {
        let (listener, url) = tokio_listener().await;
        let peer = tokio::task::spawn_blocking(move || silent_peer(url));
        let (stream, _) = listener.accept().await.unwrap();
        let ws = WebSocketStream::accept(stream, fast_keepalive())
            .await
            .unwrap();
        let (mut reader, _writer) = ws.split();
        let started = Instant::now();
        let result = reader.recv().await;
        assert_keepalive_timeout(result, started);
        check_silent_peer(&peer.await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn tokio_keepalive_answered_keeps_connection_open() {
    bounded(async {
        let (listener, url) = tokio_listener().await;
        let server = tokio_echo_server(listener, fast_keepalive(), None);
        let mut ws = WebSocketStream::connect(&url).await.unwrap();
        // The client answers each Ping while it waits in recv().
        let mut pings = 0;
        while pings < 5 {
            match ws.recv().await.unwrap() {
                Some(Message::Ping(_)) => pings += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        ws.send_text("still here").await.unwrap();
        loop {
            match ws.recv().await.unwrap() {
                Some(Message::Ping(_)) => {}
                other => {
                    assert_eq!(other, Some(Message::Text("still here".into())));
                    break;
                }
            }
        }
        ws.close(CloseCode::NORMAL, "").await.unwrap();
        while let Some(message) = ws.recv().await.unwrap() {
            assert!(matches!(message, Message::Ping(_) | Message::Close { .. }));
        }
        let log = server.await.unwrap();
        assert_eq!(log.end, Ok(()));
        assert_eq!(log.close, Some((1000, String::new())));
    })
    .await;
}

// ----- the end of a connection after the closing handshake ------------------------------

/// A server that sends Close right after the handshake, then lets the client's Close echo
/// arrive unread and drops the socket: the kernel answers with a reset instead of a FIN
/// (this is what the Autobahn fuzzing server does on `/getCaseCount`).
fn closing_then_resetting_server(listener: std::net::TcpListener) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut conn = Connection::server(quiet_config());
        let mut buf = [0; 4096];
        loop {
            let n = stream.read(&mut buf).unwrap();
            conn.receive(&buf[..n]);
            if let Some(wsproto::Event::Request(_)) = conn.next_event().unwrap() {
                break;
            }
        }
        conn.accept(Accept::new()).unwrap();
        conn.send_text("1").unwrap();
        conn.close(CloseCode::NORMAL, "").unwrap();
        stream.write_all(conn.pending_output()).unwrap();
        // The client's Close echo arrives and stays unread: closing now sends RST.
        thread::sleep(Duration::from_millis(200));
        drop(stream);
    })
}

#[test]
fn blocking_reset_after_closing_handshake_ends_cleanly() {
    within(LIMIT, || {
        let (listener, url) = std_listener();
        let server = closing_then_resetting_server(listener);
        let mut ws = WebSocket::connect(&url).unwrap();
        assert_eq!(ws.recv().unwrap(), Some(Message::Text("1".into())));
        assert_eq!(ws.recv().unwrap(), Some(close_message(1000, "")));
        ws.flush().unwrap(); // the Close echo reaches the server, which leaves it unread
        server.join().unwrap();
        assert_eq!(ws.connection().state(), ConnectionState::Closed);
        assert_eq!(ws.recv().unwrap(), None);
    });
}

#[tokio::test]
async fn tokio_reset_after_closing_handshake_ends_cleanly() {
    bounded(async {
        let (listener, url) = std_listener();
        let server = closing_then_resetting_server(listener);
        let mut ws = WebSocketStream::connect(&url).await.unwrap();
        assert_eq!(ws.recv().await.unwrap(), Some(Message::Text("1".into())));
        assert_eq!(ws.recv().await.unwrap(), Some(close_message(1000, "")));
        ws.flush().await.unwrap(); // the Close echo reaches the server, which leaves it unread
        tokio::task::spawn_blocking(move || server.join().unwrap())
            .await
            .unwrap();
        assert_eq!(ws.connection().state(), ConnectionState::Closed);
        assert_eq!(ws.recv().await.unwrap(), None);
    })
    .await;
}

// ----- replies through the sender ------------------------------------------------------------

/// The messages a sender-echo test sends, and expects back in order.
fn sender_echo_messages() -> Vec<Message> {
    vec![
        Message::Text("hello \u{2713}".into()),
        Message::Binary(big_binary()),
        Message::Text("last".into()),
    ]
}

#[test]
fn blocking_recv_with_sender_echoes_without_copying() {
    within(LIMIT, || {
        let (listener, url) = std_listener();
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut ws = WebSocket::accept(stream, quiet_config()).unwrap();
            let mut replies = 0;
            while let Some(sent) = ws
                .recv_with_sender(|event, sender| match event {
                    wsproto::Event::Text(text) => sender.send_text(text).map(|()| 1),
                    wsproto::Event::Binary(data) => sender.send_binary_borrowed(data).map(|()| 1),
                    _ => Ok(0),
                })
                .unwrap()
            {
                replies += sent;
            }
            replies
        });
        let mut ws = WebSocket::connect(&url).unwrap();
        for message in sender_echo_messages() {
            match &message {
                Message::Text(text) => ws.send_text(text).unwrap(),
                Message::Binary(data) => ws.send_binary(data).unwrap(),
                _ => unreachable!(),
            }
            assert_eq!(ws.recv().unwrap(), Some(message));
        }
        ws.close(CloseCode::NORMAL, "bye").unwrap();
        assert_eq!(ws.recv().unwrap(), Some(close_message(1000, "bye")));
        assert_eq!(ws.recv().unwrap(), None);
        assert_eq!(server.join().unwrap(), 3);
    });
}

#[tokio::test]
async fn tokio_recv_with_sender_echoes_without_copying() {
    bounded(async {
        let (listener, url) = tokio_listener().await;
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut ws = WebSocketStream::accept(stream, quiet_config())
                .await
                .unwrap();
            let mut replies = 0;
            while let Some(sent) = ws
                .recv_with_sender(|event, sender| match event {
                    wsproto::Event::Text(text) => sender.send_text(text).map(|()| 1),
                    wsproto::Event::Binary(data) => sender.send_binary_borrowed(data).map(|()| 1),
                    _ => Ok(0),
                })
                .await
                .unwrap()
            {
                replies += sent;
            }
            replies
        });
        let mut ws = WebSocketStream::connect(&url).await.unwrap();
        for message in sender_echo_messages() {
            match &message {
                Message::Text(text) => ws.send_text(text).await.unwrap(),
                Message::Binary(data) => ws.send_binary(data).await.unwrap(),
                _ => unreachable!(),
            }
            assert_eq!(ws.recv().await.unwrap(), Some(message));
        }
        ws.close(CloseCode::NORMAL, "bye").await.unwrap();
        assert_eq!(ws.recv().await.unwrap(), Some(close_message(1000, "bye")));
        assert_eq!(ws.recv().await.unwrap(), None);
        assert_eq!(server.await.unwrap(), 3);
    })
    .await;
}

/// A server whose reply to the client's Close is a text message: the send fails, as the
/// connection is no longer open (RFC 6455 §5.5.1: no data frames after a Close).
fn reply_even_to_close(
    event: wsproto::Event<'_>,
    sender: &mut wsproto::Sender<'_>,
) -> Result<(), wsproto::UsageError> {
    match event {
        wsproto::Event::Text(text) => sender.send_text(text),
        wsproto::Event::Close { .. } => sender.send_text("too late"),
        _ => Ok(()),
    }
}

fn assert_not_open<T: std::fmt::Debug>(result: Result<T, Error>) {
    assert!(
        matches!(result, Err(Error::Usage(wsproto::UsageError::NotOpen))),
        "expected Usage(NotOpen), got {result:?}"
    );
}

/// The client's side of the failing-send tests: its message echoed, then the echo of its
/// Close, which the server wrote before its `recv_with_sender` returned the error (the
/// server makes no call after it).
fn blocking_client_sees_close_echo(url: &str) {
    let mut ws = WebSocket::connect(url).unwrap();
    ws.send_text("hi").unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::Text("hi".into())));
    ws.close(CloseCode::NORMAL, "bye").unwrap();
    assert_eq!(ws.recv().unwrap(), Some(close_message(1000, "bye")));
    assert_eq!(ws.recv().unwrap(), None);
}

#[test]
fn blocking_recv_with_sender_returns_a_failed_send_as_usage_error() {
    within(LIMIT, || {
        let (listener, url) = std_listener();
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut ws = WebSocket::accept(stream, quiet_config()).unwrap();
            assert_eq!(ws.recv_with_sender(reply_even_to_close).unwrap(), Some(()));
            assert_not_open(ws.recv_with_sender(reply_even_to_close));
        });
        blocking_client_sees_close_echo(&url);
        server.join().unwrap();
    });
}

#[tokio::test]
async fn tokio_recv_with_sender_returns_a_failed_send_as_usage_error() {
    bounded(async {
        let (listener, url) = tokio_listener().await;
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut ws = WebSocketStream::accept(stream, quiet_config())
                .await
                .unwrap();
            let first = ws.recv_with_sender(reply_even_to_close).await;
            assert_eq!(first.unwrap(), Some(()));
            assert_not_open(ws.recv_with_sender(reply_even_to_close).await);
        });
        tokio::task::spawn_blocking(move || blocking_client_sees_close_echo(&url))
            .await
            .unwrap();
        server.await.unwrap();
    })
    .await;
}
