//! WebSockets over HTTP/2 (RFC 8441) on loopback: the `http2` client against a hyper HTTP/2
//! server that accepts with `handshake_http::Upgrade`. Many streams on one h2c connection,
//! a stream reset, a refused CONNECT, subprotocol negotiation, a server without extended
//! CONNECT.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::ext::Protocol;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use wsproto::drivers::tokio::WebSocketStream;
use wsproto::drivers::tokio::http2::H2Connection;
use wsproto::drivers::{Error, Message};
use wsproto::handshake_http::Upgrade;
use wsproto::{
    Accept, ClientRequest, CloseCode, Config, ConnectionState, DeflateConfig, Event, HandshakeError,
};

/// Debug builds deflate slowly: the 100-stream echo takes about 100 s there on 2 cores.
const LIMIT: Duration = Duration::from_secs(300);
/// Messages each stream of the multiplexing test keeps in flight.
const IN_FLIGHT: usize = 8;

fn deflate() -> Config {
    let mut config = Config::default();
    config.deflate = Some(DeflateConfig::default());
    config
}

/// What the server does with an accepted WebSocket.
async fn echo(mut ws: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>) {
    loop {
        let mut reset = false;
        let step = ws
            .recv_with_sender(|event, sender| match event {
                // Drop the upgraded stream mid-connection: hyper resets the HTTP/2 stream.
                Event::Text("reset") => {
                    reset = true;
                    Ok(())
                }
                Event::Text(text) => sender.send_text_borrowed(text),
                Event::Binary(data) => sender.send_binary_borrowed(data),
                _ => Ok(()),
            })
            .await;
        match step {
            Ok(Some(())) if !reset => {}
            Ok(_) => return,
            Err(e) => panic!("server: {e:?}"),
        }
    }
}

/// The server's answer to one request: 403 on `/forbidden`; elsewhere the WebSocket
/// handshake, choosing `chat` when offered, and an echo on the upgraded stream.
async fn handle(request: Request<Incoming>) -> Result<Response<String>, Infallible> {
    if request.uri().path() == "/forbidden" {
        let mut response = Response::new("no".to_string());
        *response.status_mut() = StatusCode::FORBIDDEN;
        return Ok(response);
    }
    let (parts, body) = request.into_parts();
    let protocol = parts.extensions.get::<Protocol>().map(Protocol::as_str);
    let upgrade = match Upgrade::new(&parts, protocol, deflate()) {
        Ok(upgrade) => upgrade,
        Err(rejection) => return Ok(rejection.response()),
    };
    let mut accept = Accept::new();
    if upgrade.request().subprotocols().iter().any(|p| p == "chat") {
        accept = accept.subprotocol("chat");
    }
    let (response, conn) = upgrade.accept(accept).expect("a valid answer");
    let request = Request::from_parts(parts, body);
    tokio::spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(request).await {
            echo(WebSocketStream::from_connection(
                TokioIo::new(upgraded),
                conn,
            ))
            .await;
        }
    });
    Ok(response.map(|()| String::new()))
}

/// An HTTP/2 server (h2c, prior knowledge) on an ephemeral port; `extended_connect` says
/// whether its SETTINGS enable RFC 8441.
async fn server(extended_connect: bool) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            if extended_connect {
                builder.enable_connect_protocol();
            }
            tokio::spawn(builder.serve_connection(TokioIo::new(tcp), service_fn(handle)));
        }
    });
    addr
}

/// Bytes through a stream each way.
#[derive(Debug, Default)]
struct Counts {
    read: AtomicU64,
    written: AtomicU64,
}

/// Counts the bytes on the wire of the client's TCP connection.
struct Counting {
    tcp: TcpStream,
    counts: Arc<Counts>,
}

impl AsyncRead for Counting {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.tcp).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        this.counts.read.fetch_add(n as u64, Ordering::Relaxed);
        polled
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.tcp).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.counts.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            this.counts.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

async fn h2c(addr: std::net::SocketAddr) -> (H2Connection, Arc<Counts>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let counts = Arc::new(Counts::default());
    let io = Counting {
        tcp,
        counts: Arc::clone(&counts),
    };
    (H2Connection::handshake(io).await.unwrap(), counts)
}

fn url(addr: std::net::SocketAddr, path: &str) -> ClientRequest {
    ClientRequest::new(&format!("ws://{addr}{path}")).unwrap()
}

/// Message `i` of stream `s`: 4 KiB of text that names both, so that a mix-up between
/// streams or messages shows, and that compresses as chat or JSON does.
fn payload(s: usize, i: usize) -> Vec<u8> {
    let line = format!("{{\"stream\":{s},\"message\":{i},\"text\":\"hello over h2\"}}\n");
    line.bytes().cycle().take(4096).collect()
}

/// Sends `count` messages on `ws` and checks each echo, byte for byte; the reads run
/// beside the writes, as HTTP/2 flow control needs.
async fn echo_round(
    ws: WebSocketStream<wsproto::drivers::tokio::http2::H2Stream>,
    s: usize,
    count: usize,
) {
    let (mut reader, writer) = ws.split();
    // At most this many messages in flight per stream, as an application's own flow control
    // would have: h2 limits how many small DATA frames a peer may leave buffered
    // (ENHANCE_YOUR_CALM past it), and each deflated message is one small frame.
    let in_flight = tokio::sync::Semaphore::new(IN_FLIGHT);
    let send = async {
        for i in 0..count {
            in_flight.acquire().await.unwrap().forget();
            writer.send_binary(&payload(s, i)).await.unwrap();
        }
    };
    let receive = async {
        for i in 0..count {
            in_flight.add_permits(1);
            match reader.recv().await.unwrap() {
                Some(Message::Binary(data)) => {
                    assert!(data == payload(s, i), "stream {s} message {i}")
                }
                other => panic!("stream {s} message {i}: {other:?}"),
            }
        }
    };
    tokio::join!(send, receive);
    writer.close(CloseCode::NORMAL, "").await.unwrap();
    match reader.recv().await.unwrap() {
        Some(Message::Close { code, .. }) => assert_eq!(code, CloseCode::NORMAL),
        other => panic!("stream {s}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8441_100_streams_echo_1000_deflated_messages_each_on_one_connection() {
    const STREAMS: usize = 100;
    const MESSAGES: usize = 1000;
    let addr = server(true).await;
    let (h2, counts) = h2c(addr).await;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..STREAMS {
        let h2 = h2.clone();
        tasks.push(tokio::spawn(async move {
            let ws = h2.open(url(addr, "/echo"), deflate()).await.unwrap();
            assert!(ws.connection().is_deflate_negotiated());
            assert_eq!(ws.connection().state(), ConnectionState::Open);
            echo_round(ws, s, MESSAGES).await;
        }));
    }
    tokio::time::timeout(LIMIT, async {
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await
    .expect("all streams done in time");
    let elapsed = start.elapsed();
    let messages = (STREAMS * MESSAGES) as f64;
    let payload = (STREAMS * MESSAGES * 4096) as u64;
    let (written, read) = (
        counts.written.load(Ordering::Relaxed),
        counts.read.load(Ordering::Relaxed),
    );
    eprintln!(
        "h2c: {STREAMS} streams x {MESSAGES} x 4 KiB echoed in {:.2} s: {:.0} messages/s each way; \
         wire bytes (TCP, HTTP/2 framing included) client->server {written}, server->client \
         {read}, against {payload} payload bytes each way ({:.1}% and {:.1}%)",
        elapsed.as_secs_f64(),
        messages / elapsed.as_secs_f64(),
        100.0 * written as f64 / payload as f64,
        100.0 * read as f64 / payload as f64,
    );
    // permessage-deflate shrinks this text well below its size on the wire.
    assert!(written < payload / 4 && read < payload / 4);
}

/// The events until the connection's end: the close code it ended with.
async fn closed_code(
    ws: &mut WebSocketStream<wsproto::drivers::tokio::http2::H2Stream>,
) -> Result<CloseCode, Error> {
    loop {
        match ws
            .recv_with(|event| match event {
                Event::Closed(code) => Some(code),
                _ => None,
            })
            .await?
        {
            Some(Some(code)) => return Ok(code),
            Some(None) => {}
            None => panic!("ended without Event::Closed"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8441_stream_reset_ends_that_websocket_with_1006_and_spares_the_others() {
    let addr = server(true).await;
    let (h2, _) = h2c(addr).await;
    let mut doomed = h2.open(url(addr, "/reset"), deflate()).await.unwrap();
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(h2.open(url(addr, "/echo"), deflate()).await.unwrap());
    }
    for ws in &mut others {
        ws.send_text("before").await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap(),
            Some(Message::Text("before".into()))
        );
    }
    // The server drops that stream's IO: RST_STREAM reaches the client.
    doomed.send_text("reset").await.unwrap();
    let start = Instant::now();
    let code = tokio::time::timeout(Duration::from_secs(2), closed_code(&mut doomed))
        .await
        .expect("the reset is seen within 2 s")
        .unwrap();
    assert_eq!(code, CloseCode::ABNORMAL);
    assert_eq!(doomed.connection().state(), ConnectionState::Closed);
    eprintln!("server reset seen as 1006 after {:?}", start.elapsed());

    // The client drops one: its stream is reset, and the rest still echo.
    drop(others.pop());
    for round in 0..100 {
        for ws in &mut others {
            let text = format!("after {round}");
            ws.send_text(&text).await.unwrap();
            assert_eq!(ws.recv().await.unwrap(), Some(Message::Text(text)));
        }
    }
    // A new stream opens on the same connection too.
    let mut late = h2.open(url(addr, "/echo"), deflate()).await.unwrap();
    late.send_text("late").await.unwrap();
    assert_eq!(
        late.recv().await.unwrap(),
        Some(Message::Text("late".into()))
    );
}

#[tokio::test]
async fn rfc8441_403_answer_is_unexpected_status_403() {
    let addr = server(true).await;
    let (h2, _) = h2c(addr).await;
    match h2.open(url(addr, "/forbidden"), Config::default()).await {
        Err(Error::Connection(wsproto::Error::Handshake(HandshakeError::UnexpectedStatus {
            status,
            location,
            ..
        }))) => {
            assert_eq!(status, 403);
            assert_eq!(location, None);
        }
        other => panic!("{other:?}"),
    }
    // The connection stays usable after the refusal.
    let mut ws = h2
        .open(url(addr, "/echo"), Config::default())
        .await
        .unwrap();
    assert!(!ws.connection().is_deflate_negotiated());
    ws.send_text("still here").await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap(),
        Some(Message::Text("still here".into()))
    );
}

#[tokio::test]
async fn rfc8441_subprotocol_negotiated_as_over_http11() {
    let addr = server(true).await;
    let (h2, _) = h2c(addr).await;
    let request = url(addr, "/echo")
        .subprotocol("superchat")
        .unwrap()
        .subprotocol("chat")
        .unwrap();
    let mut ws = h2.open(request, deflate()).await.unwrap();
    assert_eq!(ws.connection().subprotocol(), Some("chat"));
    assert!(ws.connection().is_deflate_negotiated());
    ws.send_text("chat").await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some(Message::Text("chat".into())));

    let mut plain = h2
        .open(
            url(addr, "/echo").subprotocol("other").unwrap(),
            Config::default(),
        )
        .await
        .unwrap();
    assert_eq!(plain.connection().subprotocol(), None);
    plain.send_text("none").await.unwrap();
    assert_eq!(
        plain.recv().await.unwrap(),
        Some(Message::Text("none".into()))
    );
}

#[tokio::test]
async fn rfc8441_server_without_extended_connect_is_a_clear_error() {
    let addr = server(false).await;
    let (h2, _) = h2c(addr).await;
    let result = tokio::time::timeout(
        Duration::from_secs(5),
        h2.open(url(addr, "/echo"), Config::default()),
    )
    .await
    .expect("answered at once");
    assert!(
        matches!(result, Err(Error::ExtendedConnectDisabled)),
        "{result:?}"
    );
}
