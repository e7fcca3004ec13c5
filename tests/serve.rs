//! `Server` (the tokio driver's `serve`) on loopback: it survives running out of file
//! descriptors, shuts 1,000 connections down with Close 1001 within `close_timeout`, answers
//! 503 past `max_connections`, and serves plain HTTP routes beside the WebSocket endpoint.
//! The blocking driver's `Server` gets the fd and cap tests too. And what held before
//! `Server` still holds on it: 10,000 concurrent connections, slow-loris handshakes dropped
//! at the handshake timeout, server memory bounded under a ping flood or a slow reader.

mod common;
#[path = "common/raw_peer.rs"]
mod raw_peer;

use common::Ev;
use raw_peer::RawPeer;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use wsproto::drivers::tokio::{Server, ServerHandle, ServerStream, WebSocketStream};
use wsproto::drivers::{HttpResponse, Message};
use wsproto::{CloseCode, Config, Event};

/// Set in the child process that runs a server: the driver, `tokio` or `blocking`.
const CHILD: &str = "WSPROTO_SERVE_CHILD";
/// The child server's `handshake_timeout` in milliseconds, when not the default.
const CHILD_HANDSHAKE_TIMEOUT_MS: &str = "WSPROTO_SERVE_CHILD_HANDSHAKE_TIMEOUT_MS";

/// Echoes text and binary messages until the connection ends.
async fn echo<S>(mut ws: ServerStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Ok(Some(())) = ws
        .recv_with_sender(|event, sender| match event {
            Event::Text(text) => sender.send_text_borrowed(text),
            Event::Binary(data) => sender.send_binary_borrowed(data),
            _ => Ok(()),
        })
        .await
    {}
}

/// Sends `text` and expects it back, exactly.
async fn round_trip(ws: &mut WebSocketStream<wsproto::drivers::tokio::ClientStream>, text: &str) {
    ws.send_text(text).await.expect("send");
    assert_eq!(
        ws.recv().await.expect("recv"),
        Some(Message::Text(text.into()))
    );
}

/// Waits (up to 5 s) until the server counts `n` open connections.
async fn wait_for_connections(handle: &ServerHandle, n: usize) {
    let start = Instant::now();
    while handle.connections() != n {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{} connections open, waiting for {n}",
            handle.connections()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A server with `close_timeout` running `handler` for each connection, with a count of the
/// handlers that ran to their end: its address, handle, count and serving task.
async fn serve_counting<H, F>(
    close_timeout: Duration,
    handler: H,
) -> (
    SocketAddr,
    ServerHandle,
    Arc<AtomicUsize>,
    tokio::task::JoinHandle<std::io::Result<()>>,
)
where
    H: Fn(ServerStream<TcpStream>) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let server = Server::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .close_timeout(close_timeout);
    let addr = server.local_addr().expect("addr");
    let handle = server.handle();
    let finished = Arc::new(AtomicUsize::new(0));
    let done = Arc::clone(&finished);
    let serving = tokio::spawn(server.serve(move |ws| {
        let done = Arc::clone(&done);
        let handling = handler(ws);
        async move {
            handling.await;
            done.fetch_add(1, Ordering::Relaxed);
        }
    }));
    (addr, handle, finished, serving)
}

/// Waits for `serving` to return, and checks when: `close_timeout` after `started` (the
/// shutdown), with 300 ms of slack.
async fn returns_at_close_timeout(
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
    started: Instant,
    close_timeout: Duration,
) {
    serving.await.expect("task").expect("serve");
    let took = started.elapsed();
    assert!(
        took >= close_timeout && took < close_timeout + Duration::from_millis(300),
        "{took:?}"
    );
}

/// Writes `request` on a new connection and reads the whole answer, until the server closes.
async fn raw_exchange(addr: SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer))
        .await
        .expect("answered and closed within 5 s")
        .expect("read");
    String::from_utf8(answer).expect("utf-8 answer")
}

const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// The child half of the tests that run a server in a process of its own (limited to 256
/// file descriptors, or holding 10,000 connections): an echo server that prints its
/// address. Does nothing in an ordinary test run.
#[test]
fn child_server() {
    let Some(driver) = std::env::var_os(CHILD) else {
        return;
    };
    if driver == "blocking" {
        let server = wsproto::drivers::blocking::Server::bind("127.0.0.1:0").expect("bind");
        println!("listening on {}", server.local_addr().expect("addr"));
        server
            .serve(|mut ws| {
                while let Ok(Some(())) = ws.recv_with_sender(|event, sender| match event {
                    Event::Text(text) => sender.send_text_borrowed(text),
                    _ => Ok(()),
                }) {}
            })
            .expect("serve");
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut config = Config::default();
    if let Ok(ms) = std::env::var(CHILD_HANDSHAKE_TIMEOUT_MS) {
        config.handshake_timeout = Some(Duration::from_millis(ms.parse().expect("ms")));
    }
    runtime.block_on(async {
        let server = Server::bind("127.0.0.1:0")
            .await
            .expect("bind")
            .config(config);
        println!("listening on {}", server.local_addr().expect("addr"));
        server.serve(echo).await.expect("serve");
    });
}

/// `child_server` running in a process of its own; killed on drop.
struct ChildServer {
    child: std::process::Child,
    addr: SocketAddr,
}

impl ChildServer {
    /// Starts `child_server` for `driver`, with at most `nofile` file descriptors (by
    /// util-linux's `prlimit`) and the given environment.
    fn start(driver: &str, nofile: Option<u32>, env: &[(&str, &str)]) -> Self {
        let exe = std::env::current_exe().expect("test executable");
        let mut command = match nofile {
            Some(n) => {
                let mut command = Command::new("prlimit");
                command.arg(format!("--nofile={n}")).arg(exe);
                command
            }
            None => Command::new(exe),
        };
        let mut child = command
            .args(["child_server", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, driver)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the child server starts (prlimit is util-linux's)");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("child printed its address")
                .expect("line");
            // The harness prints "test child_server ... " before it.
            if let Some((_, addr)) = line.split_once("listening on ") {
                break addr.parse().expect("address");
            }
        };
        Self { child, addr }
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    /// The child's resident set size in KiB (Linux: `VmRSS` in /proc/PID/status).
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Kills the child and returns what it wrote on stderr.
    fn stop(mut self) -> String {
        self.child.kill().expect("kill the child");
        self.child.wait().expect("reap");
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("stderr");
        stderr
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Issue 16: a server limited to 256 fds meets 1,000 connection attempts. It survives, keeps
/// echoing on the connections it has, and accepts again once they close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_fd_exhaustion() {
    fd_exhaustion("tokio").await;
}

/// The same with the blocking driver's `Server`, a thread per connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_survives_fd_exhaustion() {
    fd_exhaustion("blocking").await;
}

/// Runs the fd-limited server of `driver` in a child process and floods it.
async fn fd_exhaustion(driver: &str) {
    const ATTEMPTS: usize = 1000;
    let mut child = ChildServer::start(driver, Some(256), &[]);
    let url = format!("ws://{}/", child.addr);

    // Every attempt at once; those left in the backlog give up after 3 s.
    let started = Instant::now();
    let mut attempts = JoinSet::new();
    for _ in 0..ATTEMPTS {
        let url = url.clone();
        attempts.spawn(async move {
            tokio::time::timeout(Duration::from_secs(3), WebSocketStream::connect(&url)).await
        });
    }
    let (mut open, mut timed_out, mut failed) = (Vec::new(), 0, 0);
    while let Some(attempt) = attempts.join_next().await {
        match attempt.expect("task") {
            Ok(Ok(ws)) => open.push(ws),
            Ok(Err(_)) => failed += 1,
            Err(_) => timed_out += 1,
        }
    }
    let flood = started.elapsed();
    eprintln!(
        "flood done: {} open, {timed_out} timed out, {failed} failed",
        open.len()
    );
    assert!(child.is_running(), "the server died");
    assert_eq!(open.len() + timed_out + failed, ATTEMPTS);
    // 256 fds, less stdio, the runtime's and the listener's: most of them hold connections.
    assert!(
        (200..256).contains(&open.len()),
        "{} connections opened",
        open.len()
    );
    assert_eq!(failed, 0, "attempts fail only by waiting in the backlog");

    // The open connections still echo, exactly.
    for (i, ws) in open.iter_mut().enumerate() {
        round_trip(ws, &format!("message {i} after the flood")).await;
    }
    let opened = open.len();
    for mut ws in open {
        ws.close(CloseCode::NORMAL, "").await.expect("close");
        while ws.recv().await.expect("closing").is_some() {}
    }

    // Accepting again: the backlog drains (the abandoned attempts end at their EOF), then a
    // new connection opens and echoes.
    let again = Instant::now();
    let mut ws = loop {
        match tokio::time::timeout(Duration::from_secs(2), WebSocketStream::connect(&url)).await {
            Ok(Ok(ws)) => break ws,
            _ => assert!(again.elapsed() < Duration::from_secs(20), "no accept again"),
        }
    };
    round_trip(&mut ws, "accepted again").await;
    let reopened = again.elapsed();
    ws.close(CloseCode::NORMAL, "").await.expect("close");
    while ws.recv().await.expect("closing").is_some() {}

    assert!(child.is_running(), "the server died");
    let stderr = child.stop();
    let overloads = stderr
        .lines()
        .filter(|l| l.starts_with("serve: accept failed (Too many open files"))
        .count();
    assert!(overloads > 0, "no EMFILE logged:\n{stderr}");
    assert!(
        stderr
            .lines()
            .filter(|l| l.starts_with("serve: "))
            .all(|l| l.starts_with("serve: accept failed (Too many open files")),
        "{stderr}"
    );
    eprintln!(
        "{driver}, fd limit 256: {ATTEMPTS} attempts in {} ms, {opened} opened, {timed_out} timed out \
         in the backlog, {overloads} EMFILE backoffs logged; accepting again after {} ms",
        flood.as_millis(),
        reopened.as_millis()
    );
}

/// Issue 16: graceful shutdown sends 1001 to 1,000 open connections, every handler sees the
/// close in its `recv`, and `serve` returns well within `close_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_1001_to_1000_connections() {
    const CONNECTIONS: usize = 1000;
    const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
    let server = Server::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .close_timeout(CLOSE_TIMEOUT);
    let addr = server.local_addr().expect("addr");
    let handle = server.handle();
    let handlers_saw_close = Arc::new(AtomicUsize::new(0));
    let saw = Arc::clone(&handlers_saw_close);
    let serving = tokio::spawn(server.serve(move |mut ws| {
        let saw = Arc::clone(&saw);
        async move {
            let mut close = None;
            while let Ok(Some(message)) = ws.recv().await {
                if let Message::Close { code, reason } = message {
                    close = Some((code, reason));
                }
            }
            if close == Some((CloseCode::GOING_AWAY, "going away".into())) && ws.is_shutting_down()
            {
                saw.fetch_add(1, Ordering::Relaxed);
            }
        }
    }));

    let url = format!("ws://{addr}/");
    let mut connecting = JoinSet::new();
    for _ in 0..CONNECTIONS {
        let url = url.clone();
        connecting.spawn(async move { WebSocketStream::connect(&url).await.expect("connect") });
    }
    let mut clients = JoinSet::new();
    while let Some(ws) = connecting.join_next().await {
        let mut ws = ws.expect("task");
        clients.spawn(async move {
            let first = ws.recv().await.expect("the server's close");
            let end = ws.recv().await.expect("the end");
            (first, end)
        });
    }
    wait_for_connections(&handle, CONNECTIONS).await;

    let started = Instant::now();
    handle.shutdown();
    tokio::time::timeout(CLOSE_TIMEOUT * 2, serving)
        .await
        .expect("serve returned")
        .expect("task")
        .expect("serve");
    let took = started.elapsed();
    assert!(took < CLOSE_TIMEOUT, "shutdown took {took:?}");

    let mut closed = 0;
    while let Some(client) = clients.join_next().await {
        let (first, end) = client.expect("task");
        assert_eq!(
            first,
            Some(Message::Close {
                code: CloseCode::GOING_AWAY,
                reason: "going away".into()
            })
        );
        assert_eq!(end, None);
        closed += 1;
    }
    assert_eq!(closed, CONNECTIONS);
    assert_eq!(handlers_saw_close.load(Ordering::Relaxed), CONNECTIONS);
    assert_eq!(handle.connections(), 0);
    eprintln!(
        "shutdown of {CONNECTIONS} connections: {} ms (close_timeout {} ms)",
        took.as_millis(),
        CLOSE_TIMEOUT.as_millis()
    );
}

/// A peer that never answers the Close holds shutdown up to `close_timeout`, no longer; its
/// handler is aborted then. A given code and reason go out instead of 1001.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drops_silent_peers_at_close_timeout() {
    const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);
    let (addr, handle, finished, serving) = serve_counting(CLOSE_TIMEOUT, echo).await;
    // Not read until serve returns, so it never answers the Close.
    let mut silent = WebSocketStream::connect(&format!("ws://{addr}/"))
        .await
        .expect("connect");
    wait_for_connections(&handle, 1).await;

    let started = Instant::now();
    handle
        .shutdown_with(CloseCode::SERVICE_RESTART, "restarting")
        .expect("a sendable close");
    returns_at_close_timeout(serving, started, CLOSE_TIMEOUT).await;
    assert_eq!(
        finished.load(Ordering::Relaxed),
        0,
        "the handler was aborted"
    );
    assert_eq!(
        silent.recv().await.expect("the close"),
        Some(Message::Close {
            code: CloseCode::SERVICE_RESTART,
            reason: "restarting".into()
        })
    );
}

/// A handler that goes on after its connection ended still holds its place among the open
/// connections until its task ends: shutdown waits for it, and aborts one that outlasts
/// `close_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_handlers_that_outlive_their_streams() {
    const CLOSE_TIMEOUT: Duration = Duration::from_millis(800);
    const LINGER: Duration = Duration::from_millis(300);
    let (addr, handle, finished, serving) = serve_counting(CLOSE_TIMEOUT, |ws| async move {
        let hangs = ws.request().path() == "/hang";
        echo(ws).await;
        if hangs {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(LINGER).await;
    })
    .await;
    let mut lingering = WebSocketStream::connect(&format!("ws://{addr}/linger"))
        .await
        .expect("connect");
    let mut hanging = WebSocketStream::connect(&format!("ws://{addr}/hang"))
        .await
        .expect("connect");
    wait_for_connections(&handle, 2).await;

    let started = Instant::now();
    handle.shutdown();
    for client in [&mut lingering, &mut hanging] {
        assert_eq!(
            client.recv().await.expect("the close"),
            Some(Message::Close {
                code: CloseCode::GOING_AWAY,
                reason: "going away".into()
            })
        );
        assert_eq!(client.recv().await.expect("the end"), None);
    }
    returns_at_close_timeout(serving, started, CLOSE_TIMEOUT).await;
    assert_eq!(
        finished.load(Ordering::Relaxed),
        1,
        "the lingering handler ran to its end; the hanging one was aborted"
    );
    assert_eq!(handle.connections(), 0);
}

/// Connects and sends the texts "one" and "two" in one write, so that the server reads
/// them together.
async fn connect_and_send_one_and_two(
    addr: SocketAddr,
) -> WebSocketStream<wsproto::drivers::tokio::ClientStream> {
    let mut client = WebSocketStream::connect(&format!("ws://{addr}/"))
        .await
        .expect("connect");
    client.connection_mut().send_text("one").expect("queue");
    client.connection_mut().send_text("two").expect("queue");
    client.flush().await.expect("send");
    client
}

/// In a handler: waits until shutdown started, then receives the text "two".
async fn receive_two_after_shutdown(ws: &mut ServerStream<TcpStream>) {
    while !ws.is_shutting_down() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = ws.recv().await.expect("the second message");
    assert_eq!(second, Some(Message::Text("two".into())));
}

/// A handler that takes a message already in its connection's buffer after shutdown
/// started, then stops without another receive, has still sent the Close: the receive
/// that queued it writes it before handing the message over. (The two messages are one
/// write of 18 bytes, which loopback delivers to the server's first read together.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_close_goes_out_with_a_message_already_received() {
    const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
    let (took_first, mut first_taken) = tokio::sync::mpsc::unbounded_channel();
    let (addr, handle, finished, serving) = serve_counting(CLOSE_TIMEOUT, move |mut ws| {
        let took_first = took_first.clone();
        async move {
            let first = ws
                .recv_with(|event| match event {
                    Event::Text(text) => text.to_owned(),
                    other => panic!("{other:?}"),
                })
                .await
                .expect("the first message");
            took_first.send(first).expect("the test waits");
            receive_two_after_shutdown(&mut ws).await;
        }
    })
    .await;
    let mut client = connect_and_send_one_and_two(addr).await;
    assert_eq!(first_taken.recv().await, Some(Some("one".to_owned())));

    let started = Instant::now();
    handle.shutdown();
    assert_eq!(
        client.recv().await.expect("the close"),
        Some(Message::Close {
            code: CloseCode::GOING_AWAY,
            reason: "going away".into()
        })
    );
    serving.await.expect("task").expect("serve");
    assert!(started.elapsed() < CLOSE_TIMEOUT, "{:?}", started.elapsed());
    assert_eq!(finished.load(Ordering::Relaxed), 1);
    assert_eq!(handle.connections(), 0);
}

/// As above with the socket full: the handler's last sends are cut short and left queued
/// while the client does not read, so the Close waits behind them. The receive after
/// shutdown hands the buffered message over only once all of it is written, and the client
/// gets every queued message whole, then the Close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_close_waits_for_a_full_socket_before_a_message_already_received() {
    let shutdown = shutdown_behind_a_full_socket(|mut ws, progress| async move {
        let first = ws.recv().await.expect("the first message");
        assert_eq!(first, Some(Message::Text("one".into())));
        let piece = vec![0xa5; PIECE];
        fill_the_socket(async {
            loop {
                ws.send_binary(&piece).await.expect("send");
            }
        })
        .await;
        assert!(ws.connection().wants_write(), "output is left queued");
        progress.send("full").expect("the test waits");
        receive_two_after_shutdown(&mut ws).await;
        progress.send("second").expect("the test waits");
    })
    .await;
    shutdown.served().await;
}

/// The same through a split `ServerStream`: the writer half fills the socket, and the
/// reader half's receive after shutdown hands the buffered message over only once the
/// Close behind the queued output is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_reader_sends_the_close_before_a_message_already_received() {
    let mut shutdown = shutdown_behind_a_full_socket(|ws, progress| async move {
        let (mut reader, writer) = ws.split();
        let first = reader.recv().await.expect("the first message");
        assert_eq!(first, Some(Message::Text("one".into())));
        let piece = vec![0xa5; PIECE];
        fill_the_socket(async {
            loop {
                writer.send_binary(&piece).await.expect("send");
            }
        })
        .await;
        progress.send("full").expect("the test waits");
        while !reader.is_shutting_down() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let second = reader.recv().await.expect("the second message");
        assert_eq!(second, Some(Message::Text("two".into())));
        progress.send("second").expect("the test waits");
        // The client answers the Close; the reader sees it, then the end.
        assert_eq!(
            reader.recv().await.expect("the answer"),
            Some(Message::Close {
                code: CloseCode::GOING_AWAY,
                reason: "going away".into()
            })
        );
        assert_eq!(reader.recv().await.expect("the end"), None);
        progress.send("ended").expect("the test waits");
    })
    .await;
    assert_eq!(shutdown.client.recv().await.expect("the end"), None);
    assert_eq!(shutdown.handler_at.recv().await, Some("ended"));
    shutdown.served().await;
}

/// The size of each message that fills the socket in the full-socket shutdown tests.
const PIECE: usize = 256 << 10;

/// In a handler: runs `sending` (a loop of `PIECE`-byte sends of 0xa5) until the socket
/// is full; the send under way when time runs out leaves the rest of its message queued in
/// the connection.
async fn fill_the_socket(sending: impl Future<Output = std::convert::Infallible>) {
    let filling = tokio::time::timeout(Duration::from_millis(300), sending);
    assert!(filling.await.is_err(), "the client reads nothing yet");
}

/// A full-socket shutdown test after the client took the Close: what is left to check.
struct FullSocketShutdown {
    client: WebSocketStream<wsproto::drivers::tokio::ClientStream>,
    handler_at: tokio::sync::mpsc::UnboundedReceiver<&'static str>,
    handle: ServerHandle,
    finished: Arc<AtomicUsize>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Serves `handler` (given a channel to say "full" once it filled the socket, then
/// "second" once it received the second message), sends it "one" and "two", and starts the
/// shutdown once the socket is full. Checks that the handler gets nothing for 200 ms, that
/// the client then reads whole pieces and the Close 1001, and that the handler got the
/// second message after that.
async fn shutdown_behind_a_full_socket<H, F>(handler: H) -> FullSocketShutdown
where
    H: Fn(ServerStream<TcpStream>, tokio::sync::mpsc::UnboundedSender<&'static str>) -> F
        + Send
        + Sync
        + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let (progress, mut handler_at) = tokio::sync::mpsc::unbounded_channel();
    let (addr, handle, finished, serving) = serve_counting(Duration::from_secs(10), move |ws| {
        handler(ws, progress.clone())
    })
    .await;
    let mut client = connect_and_send_one_and_two(addr).await;
    assert_eq!(handler_at.recv().await, Some("full"));

    handle.shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        handler_at.try_recv().is_err(),
        "the buffered message waits for the Close to be written"
    );
    expect_pieces_then_going_away(&mut client, PIECE).await;
    assert_eq!(handler_at.recv().await, Some("second"));
    FullSocketShutdown {
        client,
        handler_at,
        handle,
        finished,
        serving,
    }
}

impl FullSocketShutdown {
    /// `serve` returns, the one handler having finished.
    async fn served(self) {
        self.serving.await.expect("task").expect("serve");
        assert_eq!(self.finished.load(Ordering::Relaxed), 1);
        assert_eq!(self.handle.connections(), 0);
    }
}

/// Reads whole `piece`-byte binary messages of 0xa5 (at least one) until the server's
/// Close 1001 "going away".
async fn expect_pieces_then_going_away(
    client: &mut WebSocketStream<wsproto::drivers::tokio::ClientStream>,
    piece: usize,
) {
    let mut pieces = 0;
    let close = loop {
        match client.recv().await.expect("a message") {
            Some(Message::Binary(data)) => {
                assert_eq!(data, vec![0xa5; piece]);
                pieces += 1;
            }
            other => break other,
        }
    };
    assert_eq!(
        close,
        Some(Message::Close {
            code: CloseCode::GOING_AWAY,
            reason: "going away".into()
        })
    );
    assert!(pieces > 0);
}

/// Issue 16: past `max_connections` the answer is exactly 503 with Retry-After, the handler
/// never runs for it, and once a connection closes a new one is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_answers_503_then_accepts_again() {
    let server = Server::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .max_connections(2)
        .retry_after(7);
    let addr = server.local_addr().expect("addr");
    let handle = server.handle();
    let handled = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&handled);
    let serving = tokio::spawn(server.serve(move |ws| {
        count.fetch_add(1, Ordering::Relaxed);
        echo(ws)
    }));
    let url = format!("ws://{addr}/");
    let mut first = WebSocketStream::connect(&url).await.expect("first");
    let mut second = WebSocketStream::connect(&url).await.expect("second");
    wait_for_connections(&handle, 2).await;

    let body = "too many connections, retry later\n";
    assert_eq!(
        raw_exchange(addr, UPGRADE).await,
        format!(
            "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Type: text/plain\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    );
    assert_eq!(handled.load(Ordering::Relaxed), 2);
    round_trip(&mut first, "still here").await;

    first.close(CloseCode::NORMAL, "").await.expect("close");
    while first.recv().await.expect("closing").is_some() {}
    wait_for_connections(&handle, 1).await;
    let mut third = WebSocketStream::connect(&url)
        .await
        .expect("accepted again");
    round_trip(&mut third, "third").await;
    round_trip(&mut second, "second").await;
    assert_eq!(handled.load(Ordering::Relaxed), 3);

    handle.shutdown();
    serving.await.expect("task").expect("serve");
}

const PAGE: &str = "<!doctype html><title>chat</title>\n";

/// Issue 16: plain HTTP beside the WebSocket endpoint on one port: the page at `/`, 200 at
/// `/health`, the handshake's own 400 for other plain requests, and a WebSocket at `/ws`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_routes_beside_the_websocket() {
    let server = Server::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .config(Config::default())
        .http(|request| match (request.method(), request.path()) {
            ("GET", "/") => Some(
                HttpResponse::new(200, PAGE).header("Content-Type", "text/html; charset=utf-8"),
            ),
            ("GET", "/health") => Some(HttpResponse::new(200, "ok\n")),
            _ => None,
        });
    let addr = server.local_addr().expect("addr");
    let handle = server.handle();
    let serving = tokio::spawn(server.serve(|ws| async move {
        assert_eq!(ws.request().path(), "/ws");
        echo(ws).await;
    }));

    assert_eq!(
        raw_exchange(addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await,
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{PAGE}",
            PAGE.len()
        )
    );
    assert_eq!(
        raw_exchange(addr, "GET /health?probe=1 HTTP/1.1\r\nHost: x\r\n\r\n").await,
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
    );
    let other = raw_exchange(addr, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(other.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{other}");

    let mut ws = WebSocketStream::connect(&format!("ws://{addr}/ws"))
        .await
        .expect("connect");
    round_trip(&mut ws, "over the same port").await;
    ws.close(CloseCode::NORMAL, "").await.expect("close");
    while ws.recv().await.expect("closing").is_some() {}

    handle.shutdown();
    serving.await.expect("task").expect("serve");
}

/// The blocking driver's `Server`: the same cap, 503 and accept-again as the tokio one.
#[test]
fn blocking_max_connections_answers_503_then_accepts_again() {
    use wsproto::drivers::blocking::{self, WebSocket};
    let server = blocking::Server::bind("127.0.0.1:0")
        .expect("bind")
        .max_connections(1)
        .retry_after(3);
    let addr = server.local_addr().expect("addr");
    let handle = server.handle();
    std::thread::spawn(move || {
        server.serve(|mut ws| {
            while let Ok(Some(())) = ws.recv_with_sender(|event, sender| match event {
                Event::Text(text) => sender.send_text_borrowed(text),
                _ => Ok(()),
            }) {}
        })
    });
    let url = format!("ws://{addr}/");
    let mut first = WebSocket::connect(&url).expect("first");
    first.send_text("one").expect("send");
    assert_eq!(
        first.recv().expect("recv"),
        Some(Message::Text("one".into()))
    );

    let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
    tcp.write_all(UPGRADE.as_bytes()).expect("write");
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).expect("read");
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\n"),
        "{answer}"
    );

    first.close(CloseCode::NORMAL, "").expect("close");
    while first.recv().expect("closing").is_some() {}
    let start = Instant::now();
    while handle.connections() != 0 {
        assert!(start.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut second = WebSocket::connect(&url).expect("accepted again");
    second.send_text("two").expect("send");
    assert_eq!(
        second.recv().expect("recv"),
        Some(Message::Text("two".into()))
    );
}

/// `shutdown_on_signals`: SIGTERM to this process closes the connection with 1001 and ends
/// `serve` (tokio's handler then keeps SIGTERM from ending the test process).
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_gracefully() {
    let server = Server::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .shutdown_on_signals();
    let addr = server.local_addr().expect("addr");
    let handle = server.handle();
    let serving = tokio::spawn(server.serve(echo));
    // Once a connection is open the accept loop runs, so the signal handlers are in place.
    let mut ws = WebSocketStream::connect(&format!("ws://{addr}/"))
        .await
        .expect("connect");
    round_trip(&mut ws, "before the signal").await;
    let status = Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    assert_eq!(
        ws.recv().await.expect("the close"),
        Some(Message::Close {
            code: CloseCode::GOING_AWAY,
            reason: "going away".into()
        })
    );
    assert_eq!(ws.recv().await.expect("the end"), None);
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .expect("serve returned")
        .expect("task")
        .expect("serve");
    assert!(handle.is_shutting_down());
}

/// What held before `Server` still holds on it: 10,000 connections open at once, each
/// echoing, with no error on either side. The server runs in a child process, so that each
/// side keeps its 10,000 sockets under the per-process file limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_connections() {
    const CONNECTIONS: usize = 10_000;
    let mut child = ChildServer::start("tokio", None, &[]);
    let url = format!("ws://{}/", child.addr);
    let idle_rss = child.rss_kib();
    let started = Instant::now();
    // At most 256 handshakes in flight, well inside the listener's backlog.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(256));
    let mut connecting = JoinSet::new();
    for i in 0..CONNECTIONS {
        let (url, in_flight) = (url.clone(), Arc::clone(&in_flight));
        connecting.spawn(async move {
            let _permit = in_flight.acquire().await.expect("semaphore");
            let mut ws = WebSocketStream::connect(&url).await?;
            let text = format!("connection {i} opens");
            ws.send_text(&text).await?;
            match ws.recv().await? {
                Some(Message::Text(echo)) if echo == text => {
                    Ok::<_, wsproto::drivers::Error>((i, ws))
                }
                other => panic!("connection {i}: {other:?}"),
            }
        });
    }
    let mut open = Vec::with_capacity(CONNECTIONS);
    let mut errors = Vec::new();
    while let Some(result) = connecting.join_next().await {
        match result.expect("task") {
            Ok(ws) => open.push(ws),
            Err(e) => errors.push(e),
        }
    }
    let opened = started.elapsed();
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        errors.first()
    );
    assert_eq!(open.len(), CONNECTIONS);
    let open_rss = child.rss_kib();

    // All 10,000 open at once: each echoes again, then closes with 1000.
    let mut closing = JoinSet::new();
    for (i, mut ws) in open {
        closing.spawn(async move {
            round_trip(&mut ws, &format!("connection {i} while all are open")).await;
            ws.close(CloseCode::NORMAL, "").await?;
            match ws.recv().await? {
                Some(Message::Close { code, .. }) => assert_eq!(code, CloseCode::NORMAL),
                other => panic!("connection {i}: {other:?}"),
            }
            assert_eq!(ws.recv().await?, None);
            Ok::<_, wsproto::drivers::Error>(())
        });
    }
    let mut closed = 0;
    while let Some(result) = closing.join_next().await {
        result.expect("task").expect("echo and close");
        closed += 1;
    }
    assert_eq!(closed, CONNECTIONS);
    assert!(child.is_running(), "the server died");
    eprintln!(
        "{CONNECTIONS} concurrent connections: opened in {} ms, 0 errors; server RSS {} KiB \
         idle, {} KiB with all open ({} B per connection, debug build)",
        opened.as_millis(),
        idle_rss,
        open_rss,
        (open_rss - idle_rss) * 1024 / CONNECTIONS as u64
    );
}

/// Slow-loris handshakes (a header line every 100 ms, never the blank line) are answered 408
/// and dropped at the handshake timeout, and the server goes on serving others meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_handshakes_are_dropped_at_the_handshake_timeout() {
    const LORISES: usize = 200;
    const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(1000);
    let timeout_ms = HANDSHAKE_TIMEOUT.as_millis().to_string();
    let mut child = ChildServer::start("tokio", None, &[(CHILD_HANDSHAKE_TIMEOUT_MS, &timeout_ms)]);
    let addr = child.addr;
    let mut lorises = JoinSet::new();
    for _ in 0..LORISES {
        lorises.spawn(async move {
            // Before the connect, so that the server's timer cannot start earlier.
            let started = Instant::now();
            let tcp = TcpStream::connect(addr).await.expect("connect");
            let (mut read, mut write) = tcp.into_split();
            write
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
                .await
                .expect("write");
            let mut answer = Vec::new();
            let mut buf = [0; 1024];
            let mut drip = tokio::time::interval(Duration::from_millis(100));
            // Drips until the server ends the connection (EOF, or a reset).
            let ended = tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    tokio::select! {
                        read = read.read(&mut buf) => match read {
                            Ok(0) | Err(_) => break,
                            Ok(n) => answer.extend_from_slice(&buf[..n]),
                        },
                        _ = drip.tick() => {
                            let _ = write.write_all(b"X-Slow: 1\r\n").await;
                        }
                    }
                }
            })
            .await;
            assert!(ended.is_ok(), "a slow-loris connection outlived 10 s");
            (started.elapsed(), answer)
        });
    }
    // An ordinary client meanwhile.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ws = WebSocketStream::connect(&format!("ws://{addr}/"))
        .await
        .expect("connect during the attack");
    round_trip(&mut ws, "served during the attack").await;

    let mut times = Vec::new();
    while let Some(result) = lorises.join_next().await {
        let (elapsed, answer) = result.expect("task");
        assert_eq!(
            String::from_utf8(answer).expect("utf-8"),
            "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Length: 20\r\n\r\n\
             handshake timed out\n"
        );
        times.push(elapsed);
    }
    times.sort();
    let (first, last) = (times[0], times[LORISES - 1]);
    assert!(first >= HANDSHAKE_TIMEOUT, "dropped after {first:?}");
    assert!(
        last < HANDSHAKE_TIMEOUT + Duration::from_secs(2),
        "dropped after {last:?}"
    );
    // The ordinary client still echoes once they are gone.
    round_trip(&mut ws, "served after the attack").await;
    assert!(child.is_running(), "the server died");
    eprintln!(
        "{LORISES} slow-loris handshakes dropped after {} to {} ms (handshake_timeout {} ms)",
        first.as_millis(),
        last.as_millis(),
        HANDSHAKE_TIMEOUT.as_millis()
    );
}

/// What a flooding peer that never reads sends.
#[derive(Clone, Copy, Debug)]
enum Flood {
    /// 125-byte pings with a sequence number: every one wants a pong.
    Pings,
    /// 64 KiB binary messages: every one wants an echo.
    Messages,
}

/// A peer that floods without reading stalls on TCP backpressure while the server's memory
/// stays bounded; once it reads again, nothing it was sent is lost.
#[test]
fn a_ping_flood_that_never_reads_keeps_server_memory_bounded() {
    flood_without_reading(Flood::Pings);
}

/// The same for a slow reader of echoes.
#[test]
fn a_slow_reader_keeps_server_memory_bounded() {
    flood_without_reading(Flood::Messages);
}

/// Floods the child server from a client `Connection` driven by hand over a std socket (its
/// reads and writes apart, which the drivers do not do: they write out what is queued before
/// reading more).
fn flood_without_reading(flood: Flood) {
    const MESSAGE: usize = 64 << 10;
    // Far below what is sent: the flood must not be buffered by the server.
    const MAX_GROWTH_KIB: u64 = 8 << 10;
    let mut child = ChildServer::start("tokio", None, &[]);
    let mut peer = RawPeer::connect(&format!("ws://{}/", child.addr), Config::default());
    peer.conn.send_text("before the flood").expect("send");
    assert_eq!(peer.next(), Some(Ev::Text("before the flood".into())));
    let before = child.rss_kib();
    let message = vec![0xa5; MESSAGE];
    let (mut sent, mut sent_bytes) = (0u64, 0usize);
    // Sends until a write has waited a second on a full socket: backpressure.
    peer.stream
        .set_write_timeout(Some(Duration::from_secs(1)))
        .expect("write timeout");
    'flood: loop {
        match flood {
            Flood::Pings => peer.conn.send_ping(&ping_payload(sent)),
            Flood::Messages => peer.conn.send_binary(&message),
        }
        .expect("send");
        sent += 1;
        sent_bytes += match flood {
            Flood::Pings => 125,
            Flood::Messages => MESSAGE,
        };
        while peer.conn.wants_write() {
            match peer.stream.write(peer.conn.pending_output()) {
                Ok(n) => peer.conn.consume_output(n),
                Err(e) if is_timeout(&e) => break 'flood,
                Err(e) => panic!("{flood:?}: write failed: {e}"),
            }
        }
        assert!(
            sent_bytes < 1 << 30,
            "{flood:?}: 1 GiB sent and no backpressure"
        );
    }
    let during = child.rss_kib();
    let growth = during.saturating_sub(before);
    assert!(
        growth < MAX_GROWTH_KIB,
        "{flood:?}: server RSS grew {growth} KiB while {sent_bytes} B were sent"
    );

    // Reading again, while writing the rest: every pong (in order, the last answering the
    // last ping) or every echo arrives, then an ordinary round trip.
    peer.conn.send_text("after the flood").expect("send");
    peer.stream.set_nonblocking(true).expect("nonblocking");
    let (mut pongs, mut echoes, mut last_pong) = (0u64, 0u64, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    'drain: loop {
        assert!(
            Instant::now() < deadline,
            "{flood:?}: the backlog did not drain"
        );
        while peer.conn.wants_write() {
            match peer.stream.write(peer.conn.pending_output()) {
                Ok(n) => peer.conn.consume_output(n),
                Err(e) if is_timeout(&e) => break,
                Err(e) => panic!("{flood:?}: write failed: {e}"),
            }
        }
        while let Some(event) = peer.conn.next_event().expect("a valid stream") {
            match Ev::from_event(&event) {
                Ev::Pong(data) => {
                    let n = u64::from_be_bytes(data[..8].try_into().expect("8 bytes"));
                    assert_eq!(data, ping_payload(n), "pong {n}");
                    assert!(
                        last_pong.is_none_or(|last| n > last),
                        "pong {n} out of order"
                    );
                    last_pong = Some(n);
                    pongs += 1;
                }
                Ev::Binary(data) => {
                    assert!(data == message, "echo {echoes}");
                    echoes += 1;
                }
                Ev::Text(text) => {
                    assert_eq!(text, "after the flood");
                    break 'drain;
                }
                other => panic!("{flood:?}: {other:?}"),
            }
        }
        match peer.stream.read(peer.conn.receive_buffer()) {
            Ok(0) => panic!("{flood:?}: the server closed"),
            Ok(n) => peer.conn.commit(n),
            Err(e) if is_timeout(&e) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("{flood:?}: read failed: {e}"),
        }
    }
    match flood {
        Flood::Pings => assert_eq!(last_pong, Some(sent - 1), "the last ping answered"),
        Flood::Messages => assert_eq!(echoes, sent, "every message echoed"),
    }
    assert!(child.is_running(), "the server died");
    eprintln!(
        "{flood:?} without reading: {sent} sent ({sent_bytes} B of payload) before backpressure; server \
         RSS {before} KiB before, {during} KiB during (+{growth} KiB); {pongs} pongs, {echoes} \
         echoes after"
    );
}

/// Ping `n`: its number, then filler up to the largest control payload (125 bytes).
fn ping_payload(n: u64) -> Vec<u8> {
    let mut payload = n.to_be_bytes().to_vec();
    payload.resize(125, b'.');
    payload
}

/// A write or read that would block: a timeout, or nothing ready on a nonblocking socket.
fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}
