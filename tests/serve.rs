//! `Server` (the tokio driver's `serve`) on loopback: it survives running out of file
//! descriptors, shuts 1,000 connections down with Close 1001 within `close_timeout`, answers
//! 503 past `max_connections`, and serves plain HTTP routes beside the WebSocket endpoint.
//! The blocking driver's `Server` gets the fd and cap tests too.

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

/// Set in the child process that runs the fd-limited server.
const CHILD: &str = "WSPROTO_SERVE_FD_CHILD";

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

/// The child half of `survives_fd_exhaustion`: an echo server in a process limited to 256
/// file descriptors. Does nothing in an ordinary test run.
#[test]
fn fd_limited_server() {
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
    runtime.block_on(async {
        let server = Server::bind("127.0.0.1:0").await.expect("bind");
        println!("listening on {}", server.local_addr().expect("addr"));
        server.serve(echo).await.expect("serve");
    });
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
    let mut child = Command::new("prlimit")
        .arg("--nofile=256")
        .arg(std::env::current_exe().expect("test executable"))
        .args([
            "fd_limited_server",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, driver)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) runs the child");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr: SocketAddr = loop {
        let line = lines
            .next()
            .expect("child printed its address")
            .expect("line");
        // The harness prints "test fd_limited_server ... " before it.
        if let Some((_, addr)) = line.split_once("listening on ") {
            break addr.parse().expect("address");
        }
    };
    let url = format!("ws://{addr}/");

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
    assert!(child.try_wait().expect("wait").is_none(), "the server died");
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

    assert!(child.try_wait().expect("wait").is_none(), "the server died");
    child.kill().expect("kill the child");
    child.wait().expect("reap");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
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
    let server = Server::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .close_timeout(CLOSE_TIMEOUT);
    let addr = server.local_addr().expect("addr");
    let handle = server.handle();
    let finished = Arc::new(AtomicUsize::new(0));
    let done = Arc::clone(&finished);
    let serving = tokio::spawn(server.serve(move |ws| {
        let done = Arc::clone(&done);
        async move {
            echo(ws).await;
            done.fetch_add(1, Ordering::Relaxed);
        }
    }));
    // Not read until serve returns, so it never answers the Close.
    let mut silent = WebSocketStream::connect(&format!("ws://{addr}/"))
        .await
        .expect("connect");
    wait_for_connections(&handle, 1).await;

    let started = Instant::now();
    handle
        .shutdown_with(CloseCode::SERVICE_RESTART, "restarting")
        .expect("a sendable close");
    serving.await.expect("task").expect("serve");
    let took = started.elapsed();
    assert!(
        took >= CLOSE_TIMEOUT && took < CLOSE_TIMEOUT + Duration::from_millis(300),
        "{took:?}"
    );
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
